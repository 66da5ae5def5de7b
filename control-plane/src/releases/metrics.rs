//! Fleet update series of the control plane's `/metrics` (see dashboards/README.md):
//! `rmm_cp_agent_update_status{agent,client,site,host,status} 1` for each agent's current
//! update status, and `rmm_cp_release_latest_info{channel,version} 1`, the newest release of
//! each channel in the catalog.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::rollout::parse_version;
use super::{rollout_store, store};
use crate::store::Db;

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Append both series to `out`.
pub async fn render(db: &Db, out: &mut String) {
    match rollout_store::metric_rows(db).await {
        Ok(rows) => {
            out.push_str("# HELP rmm_cp_agent_update_status Current update status of each agent (offered, downloading, installed, failed or rolled_back); the value is always 1.\n");
            out.push_str("# TYPE rmm_cp_agent_update_status gauge\n");
            for r in rows {
                let _ = writeln!(
                    out,
                    "rmm_cp_agent_update_status{{agent=\"{}\",client=\"{}\",site=\"{}\",host=\"{}\",status=\"{}\"}} 1",
                    esc(&r.agent_id),
                    esc(&r.client_name),
                    esc(&r.site_name),
                    esc(&r.hostname),
                    esc(&r.status)
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read update statuses"),
    }
    match store::list(db, &store::Filter::default()).await {
        Ok(releases) => {
            // `list` is ordered newest first (semver precedence): the first of each channel.
            let mut latest: BTreeMap<&str, &str> = BTreeMap::new();
            for r in &releases {
                if parse_version(&r.version).is_ok() {
                    latest
                        .entry(r.channel.as_str())
                        .or_insert(r.version.as_str());
                }
            }
            out.push_str("# HELP rmm_cp_release_latest_info The newest agent release of each channel in the catalog; the value is always 1.\n");
            out.push_str("# TYPE rmm_cp_release_latest_info gauge\n");
            for (channel, version) in latest {
                let _ = writeln!(
                    out,
                    "rmm_cp_release_latest_info{{channel=\"{}\",version=\"{}\"}} 1",
                    esc(channel),
                    esc(version)
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read releases"),
    }
}
