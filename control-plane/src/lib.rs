//! rmm-control-plane: the fleet's source of truth for a managed-service provider with many
//! clients and sites.
//!
//! - [`config`]: settings from TOML and `RMM_CP_*` environment variables
//! - [`store`]: SQLite or PostgreSQL through one `sqlx::AnyPool`; tenancy enforced in queries
//! - [`api`]: the REST API under `/api/v1`, with its OpenAPI document
//! - [`authz`]: roles, scopes and the role matrix
//! - [`secrets`]: tokens, hashes, passwords, JWTs
//! - [`metrics`]: the control plane's own `/metrics`
//! - [`releases`]: release signing and rollout rules (agent updates)
//! - [`cli`]: `serve`, `user create` and `release keygen|sign|verify`
//!
//! [`serve`] runs the whole server on a listener until a shutdown future resolves; the binary,
//! the tests and later modules (OpAMP, policies, releases) all start it that way.

pub mod api;
pub mod authz;
pub mod cli;
pub mod config;
pub mod metrics;
pub mod opamp;
pub mod policy;
pub mod ratelimit;
pub mod releases;
pub mod secrets;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use config::Config;
use metrics::Metrics;
use ratelimit::RateLimiter;
use secrets::JwtKey;
use store::Db;

/// Everything a request handler can reach. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub jwt: Arc<JwtKey>,
    pub metrics: Arc<Metrics>,
    pub login_limiter: Arc<RateLimiter>,
    pub enroll_limiter: Arc<RateLimiter>,
    /// Base URL agents reach this server at (no trailing slash).
    pub public_base: String,
    /// Live OpAMP sessions of this process.
    pub opamp: Arc<opamp::Registry>,
    /// Effective-configuration pushes (policies).
    pub policy: Arc<policy::push::Hub>,
    /// The update offer loop (its clock and wake-up).
    pub releases: Arc<releases::offers::Releases>,
}

impl AppState {
    /// Connect to the database, run migrations, load or create the JWT key.
    pub async fn new(config: Config, bound: SocketAddr) -> anyhow::Result<AppState> {
        let db = open_db(&config).await?;
        let key = match &config.jwt_secret {
            Some(s) => s.as_bytes().to_vec(),
            None => {
                let hex_key = store::settings::get_or_init(&db, "jwt_secret", || {
                    hex::encode(secrets::random_bytes::<32>())
                })
                .await
                .context("cannot read or create the JWT signing key")?;
                hex::decode(hex_key).context("stored JWT key is not hex")?
            }
        };
        let public_base = config.public_base(bound);
        let metrics = Arc::new(Metrics::new());
        Ok(AppState {
            db,
            jwt: Arc::new(JwtKey::new(&key)),
            opamp: Arc::new(opamp::Registry::new(metrics.clone())),
            policy: Arc::new(policy::push::Hub::default()),
            releases: Arc::new(releases::offers::Releases::new(
                releases::offers::Clock::system(),
            )),
            metrics,
            login_limiter: Arc::new(RateLimiter::new(config.login_rate_per_minute)),
            enroll_limiter: Arc::new(RateLimiter::new(config.enroll_rate_per_minute)),
            public_base,
            config: Arc::new(config),
        })
    }
}

/// Connect to the configured database and bring its schema up to date.
pub async fn open_db(config: &Config) -> anyhow::Result<Db> {
    let db = Db::connect(&config.database_url, config.database_max_connections)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                redact_url(&config.database_url)
            )
        })?;
    db.migrate().await.context("database migrations failed")?;
    Ok(db)
}

/// The URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Serve the control plane on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    if config.public_url.is_none() && addr.ip().is_unspecified() {
        tracing::warn!(
            addr = %addr,
            "public_url is not set and the server listens on all interfaces: enrollment will hand \
             agents an OpAMP URL with an unspecified address; set public_url"
        );
    }
    let state = AppState::new(config, addr).await?;
    serve_state(listener, state, shutdown).await
}

/// Serve an already built [`AppState`] (for callers that extend it).
pub async fn serve_state(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let db = state.db.clone();
    let sweeper = opamp::liveness::spawn(state.clone());
    // PostgreSQL: configuration changes made through other replicas.
    let config_listener = policy::push::spawn_listener(state.clone());
    // Agent updates: the offer loop and the watched directory of builds.
    let offers = releases::offers::spawn(state.clone());
    let watcher = releases::builds::spawn_watcher(state.clone());
    let opamp_state = state.clone();
    let shutdown = async move {
        shutdown.await;
        // WebSocket sessions outlive the HTTP server's graceful shutdown: close them now.
        opamp::shutdown(&opamp_state).await;
    };
    let app = api::router(state);
    tracing::info!(addr = %addr, "listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("HTTP server failed")?;
    sweeper.abort();
    offers.abort();
    for task in [config_listener, watcher].into_iter().flatten() {
        task.abort();
    }
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_password() {
        assert_eq!(
            super::redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact_url("sqlite://./x.db"), "sqlite://./x.db");
    }
}
