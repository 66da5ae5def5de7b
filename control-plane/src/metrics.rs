//! The control plane's own Prometheus metrics, served at `/metrics` in text format 0.0.4.
//!
//! Series (a contract with the dashboards and alert rules):
//!
//! - `rmm_cp_http_requests_total{method,route,status}` counter
//! - `rmm_cp_http_request_duration_seconds{method,route}` histogram
//! - `rmm_cp_enrollments_total{result}` counter; `result` is `success`, `token_invalid`,
//!   `token_expired`, `token_revoked`, `token_exhausted`, `bad_request` or `rate_limited`
//! - `rmm_cp_agents{client,site,status}` gauge: agents by client name, site name and status
//! - `rmm_cp_agent_info{agent,client,site,host,version,os,arch}` gauge, always 1
//! - `rmm_cp_agent_config_status{agent,client,site,host,status}` gauge, always 1: whether the
//!   agent runs its effective configuration (`policy::push::config_status`)
//!
//! `route` is the route template (`/api/v1/agents/{id}`), never the raw path, so ids do not
//! multiply series; requests matching no route count as `route="unmatched"`.
//! Later modules add their series by extending [`Metrics::render`].

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::store::{agents, Db};
use crate::AppState;

/// Upper bounds of the request duration buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// In-process counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    durations: Mutex<BTreeMap<(String, String), Histogram>>,
    enrollments: Mutex<HashMap<&'static str, u64>>,
    /// OpAMP sessions and messages (`crate::opamp::metrics`).
    pub opamp: crate::opamp::metrics::OpampMetrics,
}

/// Every enrollment result, so each series exists from the start.
pub const ENROLL_RESULTS: [&str; 7] = [
    "success",
    "token_invalid",
    "token_expired",
    "token_revoked",
    "token_exhausted",
    "bad_request",
    "rate_limited",
];

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Count one finished request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        let mut d = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        let h = d.entry((method.to_owned(), route.to_owned())).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// Count one enrollment attempt by result (see [`ENROLL_RESULTS`]).
    pub fn enrollment(&self, result: &'static str) {
        *self
            .enrollments
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(result)
            .or_default() += 1;
    }

    /// The whole exposition. Agent series are read from the database at scrape time.
    pub async fn render(&self, db: &Db) -> String {
        let mut out = String::with_capacity(4096);
        self.render_http(&mut out);
        self.render_enrollments(&mut out);
        self.opamp.render(&mut out);
        match agents::all_info(db).await {
            Ok(infos) => render_agents(&mut out, &infos),
            Err(e) => tracing::warn!(error = %e, "metrics: cannot read agents"),
        }
        crate::policy::push::render_metrics(db, &mut out).await;
        crate::releases::metrics::render(db, &mut out).await;
        out
    }

    fn render_http(&self, out: &mut String) {
        out.push_str("# HELP rmm_cp_http_requests_total HTTP requests answered, by method, route template and status.\n");
        out.push_str("# TYPE rmm_cp_http_requests_total counter\n");
        for ((m, r, s), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "rmm_cp_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{s}\"}} {n}",
                esc(m),
                esc(r)
            );
        }
        out.push_str("# HELP rmm_cp_http_request_duration_seconds Time to answer HTTP requests, by method and route template.\n");
        out.push_str("# TYPE rmm_cp_http_request_duration_seconds histogram\n");
        for ((m, r), h) in self
            .durations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let labels = format!("method=\"{}\",route=\"{}\"", esc(m), esc(r));
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "rmm_cp_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "rmm_cp_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "rmm_cp_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "rmm_cp_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
    }

    fn render_enrollments(&self, out: &mut String) {
        out.push_str("# HELP rmm_cp_enrollments_total Enrollment attempts, by result.\n");
        out.push_str("# TYPE rmm_cp_enrollments_total counter\n");
        let e = self.enrollments.lock().unwrap_or_else(|e| e.into_inner());
        for r in ENROLL_RESULTS {
            let _ = writeln!(
                out,
                "rmm_cp_enrollments_total{{result=\"{r}\"}} {}",
                e.get(r).copied().unwrap_or(0)
            );
        }
    }
}

fn render_agents(out: &mut String, infos: &[agents::AgentInfo]) {
    let mut counts: BTreeMap<(&str, &str, &str), u64> = BTreeMap::new();
    for a in infos {
        *counts
            .entry((&a.client_name, &a.site_name, &a.status))
            .or_default() += 1;
    }
    out.push_str("# HELP rmm_cp_agents Enrolled agents, by client, site and status.\n");
    out.push_str("# TYPE rmm_cp_agents gauge\n");
    for ((c, s, st), n) in counts {
        let _ = writeln!(
            out,
            "rmm_cp_agents{{client=\"{}\",site=\"{}\",status=\"{}\"}} {n}",
            esc(c),
            esc(s),
            esc(st)
        );
    }
    out.push_str(
        "# HELP rmm_cp_agent_info Facts about each enrolled agent; the value is always 1.\n",
    );
    out.push_str("# TYPE rmm_cp_agent_info gauge\n");
    for a in infos {
        let _ = writeln!(
            out,
            "rmm_cp_agent_info{{agent=\"{}\",client=\"{}\",site=\"{}\",host=\"{}\",version=\"{}\",os=\"{}\",arch=\"{}\"}} 1",
            esc(&a.id),
            esc(&a.client_name),
            esc(&a.site_name),
            esc(&a.hostname),
            esc(&a.agent_version),
            esc(&a.os),
            esc(&a.arch)
        );
    }
}

/// Escape a label value for the text format.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware counting every request by method, route template and status.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let resp = next.run(req).await;
    state.metrics.observe_request(
        &method,
        &route,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_http_series() {
        let m = Metrics::new();
        m.observe_request("GET", "/api/v1/agents/{id}", 200, 0.02);
        m.enrollment("success");
        let mut out = String::new();
        m.render_http(&mut out);
        m.render_enrollments(&mut out);
        assert!(out.contains("rmm_cp_http_requests_total{method=\"GET\",route=\"/api/v1/agents/{id}\",status=\"200\"} 1"));
        assert!(out.contains("le=\"0.01\"} 0"));
        assert!(out.contains("le=\"0.025\"} 1"));
        assert!(out.contains("rmm_cp_enrollments_total{result=\"success\"} 1"));
        assert!(out.contains("rmm_cp_enrollments_total{result=\"token_expired\"} 0"));
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
