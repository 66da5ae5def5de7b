//! Which agents are offered an update, and when. Pure functions, no I/O: the caller passes in
//! the agents' state and the current time, so tests control the clock.
//!
//! - **Cohort**: a stable hash of (agent id, channel) into `[0, 10000)`. An agent is in a
//!   rollout at `p` percent iff `cohort < p * 100`, so raising `p` only ever adds agents, and
//!   the same early agents go first in every release of a channel (a stable canary set).
//! - **Concurrency cap**: offers out at once (offered or downloading) never exceed the cap.
//! - **Maintenance window**: days of week plus start/end local time in an IANA time zone;
//!   `end <= start` means the window crosses midnight (`end == start`: 24 hours). Evaluated on
//!   the local wall clock of the instant, so on a DST spring-forward day the skipped hour simply
//!   does not occur, and on a fall-back day a window in the repeated hour is open twice.
//! - **Auto-pause**: when more than a set share of finished attempts failed or rolled back,
//!   once a minimum number of attempts has finished.
//! - **Versions**: semver precedence; a target older than the agent's version is a downgrade,
//!   refused unless the rollout explicitly allows it.

use chrono::{DateTime, Datelike as _, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use semver::Version;
use sha2::{Digest as _, Sha256};
use std::cmp::Ordering;

/// Cohorts are numbers in `[0, COHORT_BUCKETS)`: 100 per percent.
pub const COHORT_BUCKETS: u32 = 10_000;
/// Domain separation for the cohort hash; changing it reshuffles every rollout.
const COHORT_CONTEXT: &[u8] = b"rmm-rollout-cohort-v1\0";

/// The agent's stable position in a channel's rollouts, in `[0, 10000)`.
pub fn cohort(agent_id: &str, channel: &str) -> u32 {
    let mut h = Sha256::new();
    h.update(COHORT_CONTEXT);
    // Length prefix: ("ab", "c") and ("a", "bc") must not collide.
    h.update((channel.len() as u64).to_be_bytes());
    h.update(channel.as_bytes());
    h.update(agent_id.as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    // 2^64 mod 10000 is tiny next to 2^64: the bias is far below anything measurable.
    (u64::from_be_bytes(first) % u64::from(COHORT_BUCKETS)) as u32
}

/// Whether a cohort is inside a rollout at `percent` (values above 100 count as 100).
pub fn in_rollout(cohort: u32, percent: u8) -> bool {
    cohort < u32::from(percent.min(100)) * (COHORT_BUCKETS / 100)
}

/// How many new offers may go out with `in_flight` updates under way and a cap of
/// `max_concurrent` (0 stops new offers).
pub fn offer_budget(max_concurrent: u32, in_flight: u32) -> u32 {
    max_concurrent.saturating_sub(in_flight)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("maintenance_window.{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> WindowError {
    WindowError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// When updates may be installed on an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceWindow {
    /// Indexed by `Weekday::num_days_from_monday`: the days on which the window *starts*.
    days: [bool; 7],
    start: NaiveTime,
    end: NaiveTime,
    tz: Tz,
}

impl MaintenanceWindow {
    pub fn new(days: &[Weekday], start: NaiveTime, end: NaiveTime, tz: Tz) -> MaintenanceWindow {
        let mut set = [false; 7];
        for d in days {
            set[d.num_days_from_monday() as usize] = true;
        }
        MaintenanceWindow {
            days: set,
            start,
            end,
            tz,
        }
    }

    /// From the effective policy's `updates.maintenance_window` object:
    /// `{"days": ["mon", …], "start": "HH:MM", "end": "HH:MM", "time_zone": "Europe/Paris"}`.
    /// Missing `days`: every day; missing `time_zone`: UTC; missing `start`/`end`: 00:00.
    pub fn from_policy(value: &serde_json::Value) -> Result<MaintenanceWindow, WindowError> {
        let obj = value
            .as_object()
            .ok_or_else(|| invalid("(object)", "expected an object"))?;
        let days = match obj.get("days") {
            None | Some(serde_json::Value::Null) => ALL_DAYS.to_vec(),
            Some(v) => {
                let list = v
                    .as_array()
                    .ok_or_else(|| invalid("days", "expected a list of weekday names"))?;
                list.iter()
                    .map(|d| {
                        d.as_str()
                            .and_then(|s| s.parse::<Weekday>().ok())
                            .ok_or_else(|| invalid("days", format!("{d} is not a weekday name")))
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        let time = |field: &'static str| -> Result<NaiveTime, WindowError> {
            match obj.get(field) {
                None | Some(serde_json::Value::Null) => Ok(NaiveTime::MIN),
                Some(v) => v
                    .as_str()
                    .and_then(|s| NaiveTime::parse_from_str(s, "%H:%M").ok())
                    .ok_or_else(|| invalid(field, format!("{v} is not a time HH:MM"))),
            }
        };
        let tz = match obj.get("time_zone") {
            None | Some(serde_json::Value::Null) => Tz::UTC,
            Some(v) => v
                .as_str()
                .and_then(|s| s.parse::<Tz>().ok())
                .ok_or_else(|| invalid("time_zone", format!("{v} is not an IANA time zone")))?,
        };
        Ok(MaintenanceWindow::new(
            &days,
            time("start")?,
            time("end")?,
            tz,
        ))
    }

    /// Whether `now` falls inside the window, on the local wall clock of the window's zone.
    pub fn contains(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.tz);
        let t = local.time();
        let today = self.days[local.weekday().num_days_from_monday() as usize];
        if self.start < self.end {
            today && self.start <= t && t < self.end
        } else {
            // Crosses midnight (or lasts 24 hours): the part before midnight belongs to
            // today's window, the part after it to the one that started yesterday.
            let yesterday = self.days[local.weekday().pred().num_days_from_monday() as usize];
            (today && t >= self.start) || (yesterday && t < self.end)
        }
    }
}

const ALL_DAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

/// An agent's update schedule from its effective policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// No maintenance window configured.
    Anytime,
    Window(MaintenanceWindow),
}

impl Schedule {
    /// From the effective policy's `updates.maintenance_window` (absent or null: anytime).
    pub fn from_policy(window: Option<&serde_json::Value>) -> Result<Schedule, WindowError> {
        match window {
            None | Some(serde_json::Value::Null) => Ok(Schedule::Anytime),
            Some(v) => MaintenanceWindow::from_policy(v).map(Schedule::Window),
        }
    }

    pub fn allows(&self, now: DateTime<Utc>) -> bool {
        match self {
            Schedule::Anytime => true,
            Schedule::Window(w) => w.contains(now),
        }
    }
}

/// Finished update attempts of one rollout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcomes {
    pub installed: u32,
    pub failed: u32,
    pub rolled_back: u32,
}

impl Outcomes {
    pub fn attempted(&self) -> u64 {
        u64::from(self.installed) + u64::from(self.failed) + u64::from(self.rolled_back)
    }

    pub fn bad(&self) -> u64 {
        u64::from(self.failed) + u64::from(self.rolled_back)
    }
}

/// When a rollout pauses itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PausePolicy {
    /// Pause when the failed + rolled-back share of attempts is above this (0.0–1.0).
    pub max_bad_share: f64,
    /// … but only once at least this many attempts have finished.
    pub min_attempts: u32,
}

/// Whether the failures seen so far should pause the rollout.
pub fn should_pause(outcomes: &Outcomes, policy: &PausePolicy) -> bool {
    let attempted = outcomes.attempted();
    attempted > 0
        && attempted >= u64::from(policy.min_attempts)
        && outcomes.bad() as f64 > policy.max_bad_share * attempted as f64
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("{value:?} is not a semantic version (MAJOR.MINOR.PATCH): {reason}")]
    Invalid { value: String, reason: String },
    #[error(
        "target version {target} is older than the agent's {current}: a downgrade, refused \
         without the explicit downgrade flag"
    )]
    Downgrade { current: Version, target: Version },
}

/// A version as agents report it; a leading `v` is accepted.
pub fn parse_version(s: &str) -> Result<Version, VersionError> {
    let t = s.trim();
    Version::parse(t.strip_prefix('v').unwrap_or(t)).map_err(|e| VersionError::Invalid {
        value: s.to_owned(),
        reason: e.to_string(),
    })
}

/// What moving from `current` to `target` would be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionChange {
    Upgrade,
    /// Same precedence (build metadata aside): nothing to do.
    Same,
    /// Only returned when downgrades are allowed.
    Downgrade,
}

/// Compare by semver precedence; a downgrade is an error unless `allow_downgrade`.
pub fn check_version_change(
    current: &Version,
    target: &Version,
    allow_downgrade: bool,
) -> Result<VersionChange, VersionError> {
    match target.cmp_precedence(current) {
        Ordering::Greater => Ok(VersionChange::Upgrade),
        Ordering::Equal => Ok(VersionChange::Same),
        Ordering::Less if allow_downgrade => Ok(VersionChange::Downgrade),
        Ordering::Less => Err(VersionError::Downgrade {
            current: current.clone(),
            target: target.clone(),
        }),
    }
}

/// Per-agent update status of a rollout's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpdateStatus {
    Offered,
    Downloading,
    Installed,
    Failed,
    RolledBack,
}

impl UpdateStatus {
    pub const ALL: [UpdateStatus; 5] = [
        UpdateStatus::Offered,
        UpdateStatus::Downloading,
        UpdateStatus::Installed,
        UpdateStatus::Failed,
        UpdateStatus::RolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UpdateStatus::Offered => "offered",
            UpdateStatus::Downloading => "downloading",
            UpdateStatus::Installed => "installed",
            UpdateStatus::Failed => "failed",
            UpdateStatus::RolledBack => "rolled_back",
        }
    }

    pub fn parse(s: &str) -> Option<UpdateStatus> {
        UpdateStatus::ALL.into_iter().find(|u| u.as_str() == s)
    }

    /// Counts against the concurrency cap.
    pub fn in_flight(self) -> bool {
        matches!(self, UpdateStatus::Offered | UpdateStatus::Downloading)
    }
}

/// One channel's rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    pub channel: String,
    pub target: Version,
    /// 0–100.
    pub percent: u8,
    pub max_concurrent: u32,
    pub paused: bool,
    pub allow_downgrade: bool,
}

/// What the planner needs to know about one agent of the channel.
#[derive(Debug, Clone)]
pub struct AgentState<'a> {
    pub id: &'a str,
    /// As reported; `None` if unknown (the agent is offered the target).
    pub current_version: Option<&'a str>,
    pub schedule: &'a Schedule,
    /// Status of this rollout's target on the agent, if it was ever offered.
    pub status: Option<UpdateStatus>,
    /// An operator asked to update this agent now: bypasses pause, percentage, window and cap
    /// (never the downgrade check).
    pub forced: bool,
}

/// Why an agent gets no offer this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    Paused,
    NotInCohort,
    UpToDate,
    InFlight,
    /// Failed or rolled back before: only an operator's force retries it.
    AlreadyAttempted(UpdateStatus),
    Version(VersionError),
    OutsideWindow,
    CapReached,
}

/// The result of one planning round.
#[derive(Debug, Clone, Default)]
pub struct Plan<'a> {
    /// Agents to offer the target to now: forced ones first, then by ascending cohort.
    pub offers: Vec<&'a str>,
    /// Updates under way before this round.
    pub in_flight: u32,
    pub skipped: Vec<(&'a str, Skip)>,
}

/// Decide which agents of the rollout's channel are offered its target at `now`.
pub fn plan<'a>(rollout: &Rollout, agents: &[AgentState<'a>], now: DateTime<Utc>) -> Plan<'a> {
    let mut out = Plan {
        in_flight: agents
            .iter()
            .filter(|a| a.status.is_some_and(UpdateStatus::in_flight))
            .count() as u32,
        ..Plan::default()
    };
    let mut eligible: Vec<(u32, &'a str)> = Vec::new();
    for a in agents {
        if let Some(skip) = version_skip(rollout, a) {
            out.skipped.push((a.id, skip));
            continue;
        }
        match a.status {
            Some(s) if s.in_flight() => {
                out.skipped.push((a.id, Skip::InFlight));
                continue;
            }
            Some(UpdateStatus::Installed) => {
                out.skipped.push((a.id, Skip::UpToDate));
                continue;
            }
            Some(s) if !a.forced => {
                out.skipped.push((a.id, Skip::AlreadyAttempted(s)));
                continue;
            }
            _ => {}
        }
        if a.forced {
            out.offers.push(a.id);
            continue;
        }
        let c = cohort(a.id, &rollout.channel);
        let skip = if rollout.paused {
            Some(Skip::Paused)
        } else if !in_rollout(c, rollout.percent) {
            Some(Skip::NotInCohort)
        } else if !a.schedule.allows(now) {
            Some(Skip::OutsideWindow)
        } else {
            None
        };
        match skip {
            Some(s) => out.skipped.push((a.id, s)),
            None => eligible.push((c, a.id)),
        }
    }
    // Forced offers are in flight too: they use up the budget before the rollout does.
    let busy = out.in_flight.saturating_add(out.offers.len() as u32);
    let budget = offer_budget(rollout.max_concurrent, busy) as usize;
    eligible.sort_unstable();
    for (i, (_, id)) in eligible.into_iter().enumerate() {
        if i < budget {
            out.offers.push(id);
        } else {
            out.skipped.push((id, Skip::CapReached));
        }
    }
    out
}

fn version_skip(rollout: &Rollout, a: &AgentState<'_>) -> Option<Skip> {
    let current = match a.current_version.map(parse_version)? {
        Ok(v) => v,
        Err(e) => return Some(Skip::Version(e)),
    };
    match check_version_change(&current, &rollout.target, rollout.allow_downgrade) {
        Ok(VersionChange::Same) => Some(Skip::UpToDate),
        Ok(_) => None,
        Err(e) => Some(Skip::Version(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn cohort_is_stable_in_range_and_channel_dependent() {
        let a = cohort("agent-1", "stable");
        assert_eq!(a, cohort("agent-1", "stable"));
        assert!(a < COHORT_BUCKETS);
        let differs = (0..100)
            .filter(|i| {
                let id = format!("agent-{i}");
                cohort(&id, "stable") != cohort(&id, "beta")
            })
            .count();
        assert!(differs > 90, "channels should shuffle cohorts: {differs}");
    }

    #[test]
    fn percent_edges() {
        assert!(!in_rollout(0, 0));
        assert!(in_rollout(0, 1));
        assert!(in_rollout(99, 1));
        assert!(!in_rollout(100, 1));
        assert!(in_rollout(9_999, 100));
        assert!(in_rollout(9_999, 250));
    }

    #[test]
    fn budget() {
        assert_eq!(offer_budget(10, 3), 7);
        assert_eq!(offer_budget(10, 12), 0);
        assert_eq!(offer_budget(0, 0), 0);
    }

    #[test]
    fn window_same_day() {
        // 2026-11-23 is a Monday.
        let w = MaintenanceWindow::new(&[Weekday::Mon], hm(9, 0), hm(17, 0), Tz::UTC);
        assert!(!w.contains(utc(2026, 11, 23, 8, 59)));
        assert!(w.contains(utc(2026, 11, 23, 9, 0)));
        assert!(w.contains(utc(2026, 11, 23, 16, 59)));
        assert!(!w.contains(utc(2026, 11, 23, 17, 0)));
        assert!(!w.contains(utc(2026, 11, 24, 10, 0)));
    }

    #[test]
    fn window_crossing_midnight_belongs_to_its_start_day() {
        // Saturday 22:00 → Sunday 04:00, Europe/Berlin (UTC+1 in November).
        let w = MaintenanceWindow::new(&[Weekday::Sat], hm(22, 0), hm(4, 0), Tz::Europe__Berlin);
        // Sat 2026-11-28 21:59 local = 20:59 UTC.
        assert!(!w.contains(utc(2026, 11, 28, 20, 59)));
        assert!(w.contains(utc(2026, 11, 28, 21, 0)));
        // Sun 03:59 local = 02:59 UTC; 04:00 local closes.
        assert!(w.contains(utc(2026, 11, 29, 2, 59)));
        assert!(!w.contains(utc(2026, 11, 29, 3, 0)));
        // Sunday 23:00 local does not open: the window starts only on Saturdays.
        assert!(!w.contains(utc(2026, 11, 29, 22, 0)));
        // Friday night → Saturday early morning is not in it either.
        assert!(!w.contains(utc(2026, 11, 28, 1, 0)));
    }

    #[test]
    fn equal_start_and_end_is_a_whole_day() {
        let w = MaintenanceWindow::new(&[Weekday::Mon], hm(0, 0), hm(0, 0), Tz::UTC);
        assert!(w.contains(utc(2026, 11, 23, 0, 0)));
        assert!(w.contains(utc(2026, 11, 23, 23, 59)));
        assert!(!w.contains(utc(2026, 11, 24, 0, 0)));
        assert!(!w.contains(utc(2026, 11, 22, 23, 59)));
    }

    #[test]
    fn dst_spring_forward_skips_the_missing_hour() {
        // America/New_York, Sunday 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
        let w = MaintenanceWindow::new(&[Weekday::Sun], hm(2, 0), hm(4, 0), Tz::America__New_York);
        assert!(!w.contains(utc(2026, 3, 8, 6, 59))); // 01:59 EST
        assert!(w.contains(utc(2026, 3, 8, 7, 0))); // 03:00 EDT
        assert!(w.contains(utc(2026, 3, 8, 7, 59))); // 03:59 EDT
        assert!(!w.contains(utc(2026, 3, 8, 8, 0))); // 04:00 EDT
        let open = minutes_open(&w, utc(2026, 3, 8, 0, 0), 24 * 60);
        assert_eq!(open, 60, "the window loses the hour that does not exist");
    }

    #[test]
    fn dst_fall_back_repeats_the_hour() {
        // America/New_York, Sunday 2026-11-01: 02:00 EDT falls back to 01:00 EST (06:00 UTC).
        let w = MaintenanceWindow::new(&[Weekday::Sun], hm(1, 0), hm(2, 0), Tz::America__New_York);
        assert!(!w.contains(utc(2026, 11, 1, 4, 59))); // 00:59 EDT
        assert!(w.contains(utc(2026, 11, 1, 5, 0))); // 01:00 EDT
        assert!(w.contains(utc(2026, 11, 1, 6, 30))); // 01:30 EST
        assert!(!w.contains(utc(2026, 11, 1, 7, 0))); // 02:00 EST
        assert_eq!(minutes_open(&w, utc(2026, 11, 1, 0, 0), 24 * 60), 120);
    }

    fn minutes_open(w: &MaintenanceWindow, from: DateTime<Utc>, minutes: i64) -> i64 {
        (0..minutes)
            .filter(|m| w.contains(from + chrono::Duration::minutes(*m)))
            .count() as i64
    }

    #[test]
    fn window_from_policy() {
        let w = MaintenanceWindow::from_policy(&serde_json::json!({
            "days": ["sat", "sun"], "start": "22:00", "end": "04:00", "time_zone": "Europe/Paris"
        }))
        .unwrap();
        assert_eq!(
            w,
            MaintenanceWindow::new(
                &[Weekday::Sat, Weekday::Sun],
                hm(22, 0),
                hm(4, 0),
                Tz::Europe__Paris
            )
        );
        let e = MaintenanceWindow::from_policy(&serde_json::json!({"time_zone": "Mars/Olympus"}))
            .unwrap_err();
        assert!(
            e.to_string().starts_with("maintenance_window.time_zone"),
            "{e}"
        );
        let e = MaintenanceWindow::from_policy(&serde_json::json!({"start": "25:00"})).unwrap_err();
        assert!(e.to_string().starts_with("maintenance_window.start"), "{e}");
        let e =
            MaintenanceWindow::from_policy(&serde_json::json!({"days": ["someday"]})).unwrap_err();
        assert!(e.to_string().starts_with("maintenance_window.days"), "{e}");
        assert_eq!(Schedule::from_policy(None).unwrap(), Schedule::Anytime);
    }

    #[test]
    fn pause_needs_a_sample_and_a_share_above_threshold() {
        let p = PausePolicy {
            max_bad_share: 0.2,
            min_attempts: 10,
        };
        let o = |installed, failed, rolled_back| Outcomes {
            installed,
            failed,
            rolled_back,
        };
        assert!(!should_pause(&o(0, 0, 0), &p));
        assert!(!should_pause(&o(0, 5, 4), &p), "below the minimum sample");
        assert!(!should_pause(&o(8, 1, 1), &p), "exactly at the threshold");
        assert!(should_pause(&o(7, 2, 1), &p));
        assert!(should_pause(&o(0, 0, 10), &p), "rollbacks count");
    }

    #[test]
    fn versions() {
        let v = |s| parse_version(s).unwrap();
        assert_eq!(
            check_version_change(&v("1.2.3"), &v("v1.3.0"), false),
            Ok(VersionChange::Upgrade)
        );
        assert_eq!(
            check_version_change(&v("1.2.3+abc"), &v("1.2.3+def"), false),
            Ok(VersionChange::Same)
        );
        assert_eq!(
            check_version_change(&v("1.3.0-rc.1"), &v("1.3.0"), false),
            Ok(VersionChange::Upgrade)
        );
        let e = check_version_change(&v("1.3.0"), &v("1.2.9"), false).unwrap_err();
        assert!(e.to_string().contains("downgrade"), "{e}");
        assert_eq!(
            check_version_change(&v("1.3.0"), &v("1.2.9"), true),
            Ok(VersionChange::Downgrade)
        );
        assert!(parse_version("1.2")
            .unwrap_err()
            .to_string()
            .contains("\"1.2\""));
    }

    #[test]
    fn status_names_round_trip() {
        for s in UpdateStatus::ALL {
            assert_eq!(UpdateStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(UpdateStatus::parse("done"), None);
    }

    fn rollout(percent: u8, cap: u32) -> Rollout {
        Rollout {
            channel: "stable".into(),
            target: parse_version("2.0.0").unwrap(),
            percent,
            max_concurrent: cap,
            paused: false,
            allow_downgrade: false,
        }
    }

    fn agent<'a>(id: &'a str, schedule: &'a Schedule) -> AgentState<'a> {
        AgentState {
            id,
            current_version: Some("1.0.0"),
            schedule,
            status: None,
            forced: false,
        }
    }

    #[test]
    fn plan_skips_for_each_reason() {
        let now = utc(2026, 11, 23, 12, 0);
        let closed = Schedule::Window(MaintenanceWindow::new(
            &[Weekday::Sun],
            hm(1, 0),
            hm(2, 0),
            Tz::UTC,
        ));
        let any = Schedule::Anytime;
        let mut agents = vec![
            agent("new", &any),
            agent("closed", &closed),
            AgentState {
                current_version: Some("3.0.0"),
                ..agent("newer", &any)
            },
            AgentState {
                current_version: Some("2.0.0"),
                ..agent("same", &any)
            },
            AgentState {
                current_version: Some("garbage"),
                ..agent("garbage", &any)
            },
            AgentState {
                status: Some(UpdateStatus::Downloading),
                ..agent("busy", &any)
            },
            AgentState {
                status: Some(UpdateStatus::Failed),
                ..agent("failed", &any)
            },
        ];
        let p = plan(&rollout(100, 10), &agents, now);
        assert_eq!(p.offers, vec!["new"]);
        assert_eq!(p.in_flight, 1);
        let reason = |id: &str| p.skipped.iter().find(|(a, _)| *a == id).unwrap().1.clone();
        assert_eq!(reason("closed"), Skip::OutsideWindow);
        assert!(matches!(
            reason("newer"),
            Skip::Version(VersionError::Downgrade { .. })
        ));
        assert_eq!(reason("same"), Skip::UpToDate);
        assert!(matches!(
            reason("garbage"),
            Skip::Version(VersionError::Invalid { .. })
        ));
        assert_eq!(reason("busy"), Skip::InFlight);
        assert_eq!(
            reason("failed"),
            Skip::AlreadyAttempted(UpdateStatus::Failed)
        );

        // Forcing bypasses window, failure history, pause and percentage, not downgrades.
        for a in &mut agents {
            a.forced = true;
        }
        let mut r = rollout(0, 0);
        r.paused = true;
        let p = plan(&r, &agents, now);
        assert_eq!(p.offers, vec!["new", "closed", "failed"]);
    }

    #[test]
    fn paused_rollout_offers_nothing() {
        let any = Schedule::Anytime;
        let agents = [agent("a", &any), agent("b", &any)];
        let mut r = rollout(100, 10);
        r.paused = true;
        let p = plan(&r, &agents, utc(2026, 11, 23, 12, 0));
        assert!(p.offers.is_empty());
        assert!(p.skipped.iter().all(|(_, s)| *s == Skip::Paused));
    }
}
