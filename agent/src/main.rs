//! `rmm-agent`: parse the command line, set up logging, load the configuration, run.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use rmm_agent::collect::Collectors;
use rmm_agent::control::{enroll, StateDir};
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
    /// Run the agent: collect every `collect.interval` and serve /metrics; when enrolled, also
    /// keep an OpAMP session with the control plane.
    Run {
        /// TOML configuration file (defaults apply without one; RMM_AGENT_* variables override).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// State directory holding the enrollment [default: `control.state_dir`, /var/lib/rmm-agent].
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Enroll this host into a control plane: trade an enrollment token for an agent identity
    /// and secret, stored in the state directory for `run`.
    Enroll {
        /// The control plane's base URL, e.g. https://rmm.example.com.
        #[arg(long)]
        server: String,
        /// Enrollment token (rmm_et_...); prefer the environment variable, which `ps` does not show.
        #[arg(long, env = "RMM_ENROLL_TOKEN", hide_env_values = true)]
        token: String,
        /// State directory [default: `control.state_dir`, /var/lib/rmm-agent].
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// host:port Prometheus should scrape this agent on [default: the `prometheus.listen`
        /// address, with this host's name in place of an unspecified IP].
        #[arg(long)]
        metrics_address: Option<String>,
        /// TOML configuration file.
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
    /// Write a copy of an rmm-agent binary that reports VERSION (release tooling and tests:
    /// builds of several versions from one compile). The input is not changed.
    StampVersion {
        /// The rmm-agent binary to copy.
        #[arg(long = "in")]
        input: PathBuf,
        /// Where to write the stamped copy (replaced atomically; mode of the input).
        #[arg(long)]
        out: PathBuf,
        /// The version, 1 to 63 characters of [0-9A-Za-z.+-].
        #[arg(long)]
        version: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Table,
    Prometheus,
}

fn main() -> std::process::ExitCode {
    // `--version` shows the stamped version, not only the compiled one.
    let matches = Cli::command().version(rmm_agent::version()).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
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
        Command::Run { config, state_dir } => {
            let mut config = AgentConfig::load(config.as_deref())?;
            if let Some(dir) = state_dir {
                config.control.state_dir = dir;
            }
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
        Command::StampVersion {
            input,
            out,
            version,
        } => stamp_version(&input, &out, &version),
        Command::Enroll {
            server,
            token,
            state_dir,
            metrics_address,
            config,
        } => {
            let config = AgentConfig::load(config.as_deref())?;
            let options = enroll::EnrollOptions {
                server,
                token,
                metrics_address: metrics_address.or_else(|| {
                    config
                        .prometheus
                        .enabled
                        .then(|| enroll::default_metrics_address(config.prometheus.listen))
                }),
                state_dir: StateDir::new(state_dir.unwrap_or(config.control.state_dir)),
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("building the async runtime")?;
            let identity = runtime.block_on(enroll::enroll(&options))?;
            println!(
                "Enrolled as agent {} ({}); identity stored in {}.\n`rmm-agent run` connects to {}.",
                identity.agent_id,
                [("client", &identity.client_id), ("site", &identity.site_id)]
                    .iter()
                    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v}")))
                    .chain(std::iter::once(format!("server {}", identity.server)))
                    .collect::<Vec<_>>()
                    .join(", "),
                options.state_dir.path().display(),
                identity.opamp_url
            );
            Ok(())
        }
    }
}

fn stamp_version(
    input: &std::path::Path,
    out: &std::path::Path,
    version: &str,
) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut image = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let mode = std::fs::metadata(input)?.permissions().mode() & 0o7777;
    rmm_agent::version::stamp(&mut image, version)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("stamping {}", input.display()))?;
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = out.with_file_name(format!(".{name}.stamp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(&image)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        std::fs::rename(&tmp, out)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", out.display()));
    }
    println!("{} reports version {version}", out.display());
    Ok(())
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
