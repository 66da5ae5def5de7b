//! Rollout selection over many simulated agents, with the clock under test control: the
//! percentage selects its share and only grows, the concurrency cap holds, failures pause the
//! rollout, and nothing is offered outside a maintenance window.

use chrono::{
    DateTime, Datelike as _, Duration, NaiveTime, TimeZone as _, Timelike as _, Utc, Weekday,
};
use chrono_tz::Tz;
use proptest::prelude::*;
use rmm_control_plane::releases::rollout::{
    self, AgentState, MaintenanceWindow, Outcomes, PausePolicy, Rollout, Schedule, UpdateStatus,
};

/// `n` distinct agent ids (UUID text, as the control plane issues), derived from `seed`.
fn agent_ids(n: usize, seed: u64) -> Vec<String> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            // splitmix64: cheap, deterministic, well spread.
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            uuid::Uuid::from_u128((u128::from(z) << 64) | u128::from(x)).to_string()
        })
        .collect()
}

fn target_rollout(percent: u8, cap: u32) -> Rollout {
    Rollout {
        channel: "stable".into(),
        target: rollout::parse_version("2.0.0").unwrap(),
        percent,
        max_concurrent: cap,
        paused: false,
        allow_downgrade: false,
    }
}

fn agents<'a>(ids: &'a [String], schedule: &'a Schedule) -> Vec<AgentState<'a>> {
    ids.iter()
        .map(|id| AgentState {
            id,
            current_version: Some("1.4.2"),
            schedule,
            status: None,
            forced: false,
        })
        .collect()
}

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

#[test]
fn ten_percent_of_ten_thousand_agents_is_offered_to_ten_percent() {
    let ids = agent_ids(10_000, 7);
    let any = Schedule::Anytime;
    let fleet = agents(&ids, &any);
    let p = rollout::plan(&target_rollout(10, u32::MAX), &fleet, noon());
    let n = p.offers.len();
    println!("10 % rollout over 10,000 agents offers {n}");
    assert!((800..=1200).contains(&n), "{n} offers, expected 1000 ± 200");
}

#[test]
fn raising_ten_to_fifty_percent_keeps_the_first_ten() {
    let ids = agent_ids(10_000, 11);
    let any = Schedule::Anytime;
    let fleet = agents(&ids, &any);
    let at10 = rollout::plan(&target_rollout(10, u32::MAX), &fleet, noon()).offers;
    let at50 = rollout::plan(&target_rollout(50, u32::MAX), &fleet, noon()).offers;
    assert!((4_800..=5_200).contains(&at50.len()), "{}", at50.len());
    let fifty: std::collections::HashSet<_> = at50.into_iter().collect();
    assert!(at10.iter().all(|id| fifty.contains(id)));
}

/// Rounds of offers until the rollout finishes; each round some in-flight updates complete.
#[test]
fn cap_holds_and_failures_pause_the_rollout() {
    let ids = agent_ids(2_000, 3);
    let any = Schedule::Anytime;
    let mut fleet = agents(&ids, &any);
    let mut r = target_rollout(100, 25);
    let pause = PausePolicy {
        max_bad_share: 0.10,
        min_attempts: 50,
    };
    let mut outcomes = Outcomes::default();
    let mut rounds = 0;
    let mut offered_after_pause = 0;
    while rounds < 500 {
        rounds += 1;
        let plan = rollout::plan(&r, &fleet, noon());
        if r.paused {
            offered_after_pause += plan.offers.len();
            break;
        }
        let in_flight_after = plan.in_flight as usize + plan.offers.len();
        assert!(
            in_flight_after <= 25,
            "round {rounds}: {in_flight_after} in flight"
        );
        let offered: std::collections::HashSet<&str> = plan.offers.into_iter().collect();
        for (i, a) in fleet.iter_mut().enumerate() {
            if offered.contains(a.id) {
                a.status = Some(UpdateStatus::Offered);
            } else if a.status.is_some_and(UpdateStatus::in_flight) && (i + rounds) % 3 == 0 {
                // After 40 % of the fleet, every 4th agent rolls back: a bad release.
                let bad = outcomes.attempted() > 800 && i % 4 == 0;
                a.status = Some(if bad {
                    outcomes.rolled_back += 1;
                    UpdateStatus::RolledBack
                } else {
                    outcomes.installed += 1;
                    UpdateStatus::Installed
                });
            }
        }
        r.paused = rollout::should_pause(&outcomes, &pause);
    }
    println!("paused after {rounds} rounds with {outcomes:?}");
    assert!(r.paused, "the rollout should have paused: {outcomes:?}");
    assert_eq!(offered_after_pause, 0);
    assert!(
        outcomes.attempted() < 2_000,
        "paused before the whole fleet"
    );
}

#[test]
fn nothing_is_offered_outside_the_window_over_a_simulated_week() {
    // Saturday 22:00 → Sunday 04:00 in Berlin; step the clock by 10 minutes for a week.
    let w = Schedule::Window(MaintenanceWindow::new(
        &[Weekday::Sat],
        NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
        NaiveTime::from_hms_opt(4, 0, 0).unwrap(),
        Tz::Europe__Berlin,
    ));
    let ids = agent_ids(300, 5);
    let mut fleet = agents(&ids, &w);
    let r = target_rollout(100, 40);
    let start = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap(); // a Monday
    let mut offered = 0;
    for step in 0..(7 * 24 * 6) {
        let now = start + Duration::minutes(10 * step);
        let plan = rollout::plan(&r, &fleet, now);
        if !plan.offers.is_empty() {
            let local = now.with_timezone(&Tz::Europe__Berlin);
            assert!(w.allows(now), "offer at {local}");
            let (sat_night, sun_morning) = (
                local.weekday() == Weekday::Sat && local.hour() >= 22,
                local.weekday() == Weekday::Sun && local.hour() < 4,
            );
            assert!(sat_night || sun_morning, "offer at {local}");
        }
        offered += plan.offers.len();
        let set: std::collections::HashSet<&str> = plan.offers.into_iter().collect();
        for a in &mut fleet {
            if set.contains(a.id) {
                a.status = Some(UpdateStatus::Offered);
            } else if a.status == Some(UpdateStatus::Offered) {
                a.status = Some(UpdateStatus::Installed);
            }
        }
    }
    assert_eq!(offered, 300, "every agent is reached within the window");
}

const ZONES: &[Tz] = &[
    Tz::UTC,
    Tz::Europe__Berlin,
    Tz::America__New_York,
    Tz::Australia__Lord_Howe, // 30-minute DST shift
    Tz::Asia__Kolkata,
    Tz::Pacific__Chatham,
];

fn arb_window() -> impl Strategy<Value = MaintenanceWindow> {
    (
        prop::collection::vec(0u8..7, 0..7),
        0u32..24 * 60,
        0u32..24 * 60,
        0..ZONES.len(),
    )
        .prop_map(|(days, s, e, z)| {
            let days: Vec<Weekday> = days
                .into_iter()
                .map(|d| Weekday::try_from(d).unwrap())
                .collect();
            let t = |m: u32| NaiveTime::from_hms_opt(m / 60, m % 60, 0).unwrap();
            MaintenanceWindow::new(&days, t(s), t(e), ZONES[z])
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn ten_percent_selects_ten_percent_for_any_fleet(seed in any::<u64>(), channel in "[a-z]{1,10}") {
        let ids = agent_ids(10_000, seed);
        let n = ids.iter().filter(|id| rollout::in_rollout(rollout::cohort(id, &channel), 10)).count();
        prop_assert!((800..=1200).contains(&n), "{} of 10000", n);
    }

    #[test]
    fn raising_the_percentage_only_adds_agents(seed in any::<u64>(), a in 0u8..=100, b in 0u8..=100) {
        let (lo, hi) = (a.min(b), a.max(b));
        let ids = agent_ids(2_000, seed);
        let any = Schedule::Anytime;
        let fleet = agents(&ids, &any);
        let low = rollout::plan(&target_rollout(lo, u32::MAX), &fleet, noon()).offers;
        let high: std::collections::HashSet<_> =
            rollout::plan(&target_rollout(hi, u32::MAX), &fleet, noon()).offers.into_iter().collect();
        prop_assert!(low.iter().all(|id| high.contains(id)));
    }

    #[test]
    fn the_cap_is_never_exceeded(
        seed in any::<u64>(),
        cap in 0u32..60,
        statuses in prop::collection::vec(prop::option::of(0usize..5), 300),
    ) {
        let ids = agent_ids(300, seed);
        let any = Schedule::Anytime;
        let mut fleet = agents(&ids, &any);
        for (a, s) in fleet.iter_mut().zip(&statuses) {
            a.status = s.map(|i| UpdateStatus::ALL[i]);
        }
        let plan = rollout::plan(&target_rollout(100, cap), &fleet, noon());
        let new = plan.offers.len() as u32;
        prop_assert!(new <= rollout::offer_budget(cap, plan.in_flight));
        prop_assert!(plan.in_flight >= cap || plan.in_flight + new <= cap);
    }

    #[test]
    fn nothing_is_offered_outside_a_window(
        windows in prop::collection::vec(arb_window(), 50),
        secs in 1_767_225_600i64..1_830_297_600, // 2026-01-01 .. 2028-01-01
    ) {
        let now = DateTime::from_timestamp(secs, 0).unwrap();
        let schedules: Vec<Schedule> = windows.into_iter().map(Schedule::Window).collect();
        let ids = agent_ids(50, secs as u64);
        let fleet: Vec<AgentState> = ids.iter().zip(&schedules).map(|(id, s)| AgentState {
            id, current_version: Some("1.0.0"), schedule: s, status: None, forced: false,
        }).collect();
        let plan = rollout::plan(&target_rollout(100, u32::MAX), &fleet, now);
        for a in &fleet {
            let offered = plan.offers.contains(&a.id);
            prop_assert_eq!(offered, a.schedule.allows(now), "{:?} at {}", a.schedule, now);
        }
    }

    /// Over any week with a constant UTC offset, a window is open exactly
    /// (days selected) × (its length) minutes, wherever it crosses midnight.
    #[test]
    fn open_minutes_per_week_match_the_definition(
        (days, s, e, z) in (prop::collection::btree_set(0u8..7, 0..=7), 0u32..24 * 60, 0u32..24 * 60, 0..ZONES.len()),
        week in 0i64..52,
    ) {
        use chrono::Offset as _;
        let tz = ZONES[z];
        let start = Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap() + Duration::weeks(week);
        let end = start + Duration::weeks(1);
        let offset = |t: DateTime<Utc>| t.with_timezone(&tz).offset().fix();
        prop_assume!(offset(start) == offset(end) && offset(start) == offset(start + Duration::days(3)));
        let t = |m: u32| NaiveTime::from_hms_opt(m / 60, m % 60, 0).unwrap();
        let weekdays: Vec<Weekday> = days.iter().map(|d| Weekday::try_from(*d).unwrap()).collect();
        let w = MaintenanceWindow::new(&weekdays, t(s), t(e), tz);
        let length = if e > s { e - s } else { 24 * 60 - (s - e) };
        let open = (0..7 * 24 * 60)
            .filter(|m| w.contains(start + Duration::minutes(*m)))
            .count();
        prop_assert_eq!(open, weekdays.len() * length as usize);
    }
}
