//! The user inventory of agents: local accounts and logged-in sessions, as the agent reports
//! them in the OpAMP custom message [`CAPABILITY`] / [`MESSAGE_TYPE`] (see the agent's
//! `control/inventory.rs` for the wire format). Only the last report is kept.

use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;

use super::{now_ms, Db, Error, Result, Scope, Sql};

/// The custom capability of the inventory messages.
pub const CAPABILITY: &str = "io.rmm.inventory";
/// The message type of a users report.
pub const MESSAGE_TYPE: &str = "users";

/// Most accounts or sessions one report may list.
const MAX_ENTRIES: usize = 65_536;
/// Longest user name, terminal line or remote host kept (utmp holds at most 256 bytes).
const MAX_SHORT: usize = 256;
/// Longest home directory or shell path.
const MAX_PATH: usize = 4096;

/// One local account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InventoryUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
    /// False for the shells that refuse logins (`nologin`, `false`) and an empty shell.
    pub login_shell: bool,
}

/// One logged-in session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InventorySession {
    pub user: String,
    /// Terminal line (`pts/0`, `tty1`).
    pub line: String,
    /// Remote host, empty for a local login.
    pub host: String,
    pub login_time_unix: u64,
    pub pid: i32,
}

/// A users report as the agent sends it. Unknown fields are ignored so that newer agents
/// can add some.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Report {
    pub collected_at_unix: u64,
    pub users: Vec<InventoryUser>,
    pub sessions: Vec<InventorySession>,
}

fn check_len(what: &str, index: usize, field: &str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(Error::invalid(
            "invalid_inventory",
            format!("{what}[{index}].{field}: longer than {max} bytes"),
        ));
    }
    Ok(())
}

/// Parse and check a report's `data`; `now_unix` bounds `collected_at_unix`.
pub fn parse(data: &[u8], now_unix: u64) -> Result<Report> {
    let report: Report = serde_json::from_slice(data)
        .map_err(|e| Error::invalid("invalid_inventory", format!("not a users report: {e}")))?;
    if report.collected_at_unix == 0 || report.collected_at_unix > now_unix + 86_400 {
        return Err(Error::invalid(
            "invalid_inventory",
            format!(
                "collected_at_unix: {} is not a plausible time",
                report.collected_at_unix
            ),
        ));
    }
    for (what, n) in [
        ("users", report.users.len()),
        ("sessions", report.sessions.len()),
    ] {
        if n > MAX_ENTRIES {
            return Err(Error::invalid(
                "invalid_inventory",
                format!("{what}: {n} entries, at most {MAX_ENTRIES}"),
            ));
        }
    }
    for (i, u) in report.users.iter().enumerate() {
        if u.name.is_empty() {
            return Err(Error::invalid(
                "invalid_inventory",
                format!("users[{i}].name: empty"),
            ));
        }
        check_len("users", i, "name", &u.name, MAX_SHORT)?;
        check_len("users", i, "home", &u.home, MAX_PATH)?;
        check_len("users", i, "shell", &u.shell, MAX_PATH)?;
    }
    for (i, s) in report.sessions.iter().enumerate() {
        check_len("sessions", i, "user", &s.user, MAX_SHORT)?;
        check_len("sessions", i, "line", &s.line, MAX_SHORT)?;
        check_len("sessions", i, "host", &s.host, MAX_SHORT)?;
    }
    Ok(report)
}

/// Replace the stored inventory of `agent_id` with `report`.
pub async fn store(db: &Db, agent_id: &str, report: &Report) -> Result<()> {
    let users = serde_json::to_string(&report.users).unwrap_or_else(|_| "[]".into());
    let sessions = serde_json::to_string(&report.sessions).unwrap_or_else(|_| "[]".into());
    let collected_ms = i64::try_from(report.collected_at_unix)
        .unwrap_or(i64::MAX / 1000)
        .saturating_mul(1000);
    let mut sql = Sql::new(
        "INSERT INTO agent_inventory (agent_id, collected_at, received_at, users, sessions) VALUES (",
    );
    sql.bind(agent_id)
        .push(", ")
        .bind(collected_ms)
        .push(", ")
        .bind(now_ms())
        .push(", ")
        .bind(users)
        .push(", ")
        .bind(sessions)
        .push(
            ") ON CONFLICT (agent_id) DO UPDATE SET collected_at = excluded.collected_at, \
             received_at = excluded.received_at, users = excluded.users, sessions = excluded.sessions",
        );
    sql.query().execute(db.pool()).await?;
    Ok(())
}

/// A stored inventory.
#[derive(Debug, Clone, FromRow)]
pub struct Stored {
    pub collected_at: i64,
    pub received_at: i64,
    pub users: String,
    pub sessions: String,
}

/// The last inventory of an agent visible in `scope` (`None` when it has reported none).
/// An agent outside `scope` is [`Error::NotFound`], as if it did not exist.
pub async fn get(db: &Db, scope: &Scope, agent_id: &str) -> Result<Option<Stored>> {
    super::agents::get(db, scope, agent_id).await?;
    let mut sql = Sql::new(
        "SELECT collected_at, received_at, users, sessions FROM agent_inventory WHERE agent_id = ",
    );
    sql.bind(agent_id);
    Ok(sql.query_as::<Stored>().fetch_optional(db.pool()).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_764_216_000;

    fn report(users: &str, sessions: &str) -> String {
        format!(r#"{{"collected_at_unix": {NOW}, "users": {users}, "sessions": {sessions}}}"#)
    }

    #[test]
    fn parses_the_agent_format() {
        let r = parse(
            report(
                r#"[{"name":"alice","uid":1000,"gid":1000,"home":"/home/alice","shell":"/bin/bash","login_shell":true}]"#,
                r#"[{"user":"alice","line":"pts/0","host":"10.0.0.5","login_time_unix":1764215000,"pid":4242,"future":1}]"#,
            )
            .as_bytes(),
            NOW,
        )
        .unwrap();
        assert_eq!(r.users[0].name, "alice");
        assert_eq!(r.sessions[0].pid, 4242);
    }

    #[test]
    fn refuses_bad_reports_naming_the_field() {
        let msg = |data: &str| match parse(data.as_bytes(), NOW) {
            Err(Error::Invalid { message, .. }) => message,
            other => panic!("expected an error for {data}, got {other:?}"),
        };
        assert!(msg("not json").contains("not a users report"));
        assert!(msg(&report(r#"[{"name":"a"}]"#, "[]")).contains("missing field"));
        assert!(msg(&report(
            r#"[{"name":"","uid":1,"gid":1,"home":"","shell":"","login_shell":false}]"#,
            "[]"
        ))
        .contains("users[0].name: empty"));
        let long = "x".repeat(MAX_SHORT + 1);
        assert!(msg(&report(
            "[]",
            &format!(r#"[{{"user":"{long}","line":"","host":"","login_time_unix":1,"pid":1}}]"#)
        ))
        .contains("sessions[0].user: longer than"));
        assert!(
            msg(r#"{"collected_at_unix": 0, "users": [], "sessions": []}"#)
                .contains("collected_at_unix")
        );
        assert!(msg(&format!(
            r#"{{"collected_at_unix": {}, "users": [], "sessions": []}}"#,
            NOW + 90_000
        ))
        .contains("not a plausible time"));
        assert!(
            msg(r#"{"collected_at_unix": -1, "users": [], "sessions": []}"#)
                .contains("not a users report")
        );
    }
}
