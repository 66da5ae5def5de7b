//! `rmm-agent`: parse the command line, set up logging, load the configuration, run.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use rmm_agent::collect::Collectors;
use rmm_agent::export::{model::ModelOptions, prometheus};
use rmm_agent::host::{HostPaths, SystemConstants};
use rmm_agent::AgentConfig;

#[derive(Parser)]
#[command(
    name = "rmm-agent",
    version,
    about = "Host and top-process metrics for Prometheus and OpenTelemetry"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent: collect every `collect.interval` and serve /metrics.
    Run {
        /// TOML configuration file (defaults apply without one; RMM_AGENT_* variables override).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Collect and print to stdout, once or every interval.
    Collect {
        /// Print one snapshot (taken after a 1 s baseline) and exit.
        #[arg(long)]
        once: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// TOML configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Table,
    Prometheus,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match dispatch(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rmm-agent: {error:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { config } => {
            let config = AgentConfig::load(config.as_deref())?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("building the async runtime")?;
            runtime.block_on(rmm_agent::run(config, shutdown_signal()))
        }
        Command::Collect {
            once,
            format,
            config,
        } => {
            let config = AgentConfig::load(config.as_deref())?;
            collect(&config, once, format)
        }
    }
}

fn collect(config: &AgentConfig, once: bool, format: Format) -> anyhow::Result<()> {
    let mut collectors = Collectors::new(
        &config.collect,
        &HostPaths::default(),
        SystemConstants::detect(),
    );
    collectors.prime();
    let mut wait = config.collect.interval.min(Duration::from_secs(1));
    loop {
        std::thread::sleep(wait);
        let snapshot = collectors.collect();
        let text = match format {
            Format::Json => serde_json::to_string_pretty(&snapshot)? + "\n",
            Format::Table => rmm_agent::table::render(&snapshot),
            Format::Prometheus => prometheus::render_snapshot(
                &snapshot,
                ModelOptions {
                    command_line: config.collect.command_line,
                },
            ),
        };
        print!("{text}");
        if once {
            return Ok(());
        }
        wait = config.collect.interval;
    }
}

/// Logs to stderr; `RUST_LOG` takes `tracing` target directives (default `info`).
fn init_tracing() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<tracing_subscriber::filter::Targets>().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
        });
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .with(filter)
        .init();
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler succeeds on unix");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
