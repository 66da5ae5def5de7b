//! The command line: `serve`, `user create` and `release …`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::authz::Role;
use crate::config::Config;
use crate::store::{self, audit::Actor, Scope};
use crate::{api, secrets};

/// rmm-control-plane: enrolls agents, keeps the fleet inventory per client and site, and
/// serves Prometheus service discovery.
///
/// Settings come from a TOML file (--config) and RMM_CP_<KEY> environment variables, e.g.
/// RMM_CP_LISTEN=0.0.0.0:8080, RMM_CP_DATABASE_URL=postgres://rmm@db/rmm. Without them it
/// listens on 127.0.0.1:8080 with SQLite in ./data/rmm.db.
#[derive(Debug, Parser)]
#[command(name = "rmm-control-plane", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (REST API under /api/v1, /healthz, /readyz, /metrics).
    Serve {
        /// TOML settings file; RMM_CP_* environment variables override it.
        #[arg(long, short, env = "RMM_CP_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Manage users directly in the database (for bootstrap and scripts).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Agent release signing, offline: keygen, sign, verify.
    Release {
        #[command(subcommand)]
        command: crate::releases::cli::ReleaseCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; prints the generated password if --password is not given.
    Create {
        /// Login email.
        #[arg(long)]
        email: String,
        /// admin, operator or viewer.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Limit the user to one client (id); default: all clients.
        #[arg(long)]
        client_id: Option<String>,
        /// Password (at least 8 characters); default: a random one, printed.
        #[arg(long)]
        password: Option<String>,
        /// TOML settings file (for database_url); RMM_CP_* environment variables override it.
        #[arg(long, short, env = "RMM_CP_CONFIG")]
        config: Option<PathBuf>,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("unknown role {s:?}; use admin, operator or viewer"))
}

fn init_logging(filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Run the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let config = Config::load(config.as_deref())?;
            init_logging(&config.log);
            let addr = config.listen_addr()?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            tracing::info!(database = %crate::redact_url(&config.database_url), "starting");
            crate::serve(listener, config, shutdown_signal()).await
        }
        Command::User {
            command:
                UserCommand::Create {
                    email,
                    role,
                    client_id,
                    password,
                    config,
                },
        } => {
            let config = Config::load(config.as_deref())?;
            init_logging("warn");
            let email = api::validate::email(&email).map_err(|e| anyhow::anyhow!(e.message))?;
            let generated = password.is_none();
            let password = password.unwrap_or_else(secrets::new_password);
            api::validate::password(&password).map_err(|e| anyhow::anyhow!(e.message))?;
            let db = crate::open_db(&config).await?;
            let hash = secrets::hash_password(&password)?;
            let user = store::users::create_user(
                &db,
                &Scope::All,
                &Actor::cli(),
                &email,
                &hash,
                role.as_str(),
                client_id.as_deref(),
            )
            .await
            .map_err(|e| match e {
                store::Error::NotFound(_) => {
                    anyhow::anyhow!("no client with id {:?}", client_id.unwrap_or_default())
                }
                other => anyhow::anyhow!(other.to_string()),
            })?;
            db.close().await;
            println!("created user {} ({}) id={}", user.email, user.role, user.id);
            if generated {
                println!("password: {password}");
            }
            Ok(())
        }
        Command::Release { command } => crate::releases::cli::run(command),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
