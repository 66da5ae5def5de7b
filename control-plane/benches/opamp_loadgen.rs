//! OpAMP load generator: N simulated WebSocket agents against one real control-plane process
//! on loopback. Not part of the test suite; run it by hand:
//!
//! ```text
//! cargo bench -p rmm-control-plane --bench opamp_loadgen -- --agents 10000
//! ```
//!
//! It starts `rmm-control-plane serve` on a fresh SQLite database (or `--pg-url`), enrolls N
//! hosts through the REST API, then opens N OpAMP WebSocket sessions (each sends a full
//! status report and waits for the reply) and keeps them heartbeating at `--heartbeat-secs`
//! (spread evenly) for `--measure-secs`. It reads the server's CPU time from
//! `/proc/<pid>/stat` and its resident memory from `/proc/<pid>/status`, and prints measured
//! values next to the goals: all N connected, under 20 KB of server memory per agent, and
//! heartbeats at 30 s costing under 5 % of one core.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use rmm_opamp::proto::{AgentDescription, AgentToServer};
use rmm_opamp::InstanceUid;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Open N simulated OpAMP agents against one control plane and report its cost per agent.
#[derive(Parser, Debug)]
#[command(name = "opamp_loadgen")]
struct Args {
    /// Simulated agents.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Heartbeat interval of every agent, in seconds.
    #[arg(long, default_value_t = 30)]
    heartbeat_secs: u64,
    /// How long to measure heartbeat handling, in seconds (at least one interval).
    #[arg(long, default_value_t = 60)]
    measure_secs: u64,
    /// Sessions opened in parallel while connecting.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Use this PostgreSQL server (a database is created and dropped) instead of SQLite.
    #[arg(long)]
    pg_url: Option<String>,
    /// The control-plane binary (default: the one cargo built with this bench).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Accepted and ignored (cargo bench passes it).
    #[arg(long, hide = true)]
    bench: bool,
}

const EMAIL: &str = "loadgen@example.com";
const PASSWORD: &str = "loadgen-password-1";
const CAPS: u64 = 0x2001 | 0x0800; // ReportsStatus | ReportsHeartbeat | ReportsHealth

/// Raise the open-files soft limit to the hard limit (N sockets on each side).
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a stack struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    lim.rlim_cur
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').context("bad stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    Ok(ticks / clk_tck())
}

/// Resident memory of `pid`, in bytes.
fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .context("bad VmRSS")?
        .parse()?;
    Ok(kb * 1024)
}

struct ControlPlane {
    child: tokio::process::Child,
    base: String,
    dir: PathBuf,
}

impl ControlPlane {
    async fn start(
        binary: &PathBuf,
        db_url: &str,
        dir: PathBuf,
        heartbeat: u64,
    ) -> anyhow::Result<Self> {
        let out = tokio::process::Command::new(binary)
            .args([
                "user",
                "create",
                "--email",
                EMAIL,
                "--role",
                "admin",
                "--password",
                PASSWORD,
            ])
            .env("RMM_CP_DATABASE_URL", db_url)
            .output()
            .await?;
        if !out.status.success() {
            bail!("user create: {}", String::from_utf8_lossy(&out.stderr));
        }
        // A free port, chosen here so the server can log at `warn` only.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut child = tokio::process::Command::new(binary)
            .arg("serve")
            .env("RMM_CP_LISTEN", addr.to_string())
            .env("RMM_CP_DATABASE_URL", db_url)
            .env("RMM_CP_ENROLL_RATE_PER_MINUTE", "100000000")
            .env("RMM_CP_LOGIN_RATE_PER_MINUTE", "1000")
            .env(
                "RMM_CP_OPAMP_HEARTBEAT_INTERVAL_SECONDS",
                heartbeat.to_string(),
            )
            .env(
                "RMM_CP_OPAMP_OFFLINE_TIMEOUT_SECONDS",
                (3 * heartbeat).to_string(),
            )
            .env("RMM_CP_LOG", "warn")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if let Some(status) = child.try_wait()? {
                bail!("the control plane exited ({status})");
            }
            if Instant::now() > deadline {
                bail!("the control plane did not listen on {addr} within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        Ok(ControlPlane {
            child,
            base: format!("http://{addr}"),
            dir,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }
}

async fn post(
    http: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    let mut req = http.post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let v: Value = resp.json().await?;
    if !status.is_success() {
        bail!("{status}: {v}");
    }
    Ok(v)
}

/// Enroll `n` hosts; returns (agent id, secret) pairs.
async fn enroll(cp: &ControlPlane, n: usize) -> anyhow::Result<Vec<(String, String)>> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(16)
        .build()?;
    let login = json!({"email": EMAIL, "password": PASSWORD});
    let jwt = post(&http, format!("{}/api/v1/auth/login", cp.base), None, login).await?["token"]
        .as_str()
        .context("no token")?
        .to_owned();
    let client = post(
        &http,
        format!("{}/api/v1/clients", cp.base),
        Some(&jwt),
        json!({"name": "Load"}),
    )
    .await?;
    let client_id = client["id"].as_str().context("client id")?;
    let sites = format!("{}/api/v1/clients/{client_id}/sites", cp.base);
    let site = post(&http, sites, Some(&jwt), json!({"name": "Lab"})).await?;
    let body = json!({"site_id": site["id"], "max_uses": n});
    let token = post(
        &http,
        format!("{}/api/v1/enrollment-tokens", cp.base),
        Some(&jwt),
        body,
    )
    .await?["token"]
        .as_str()
        .context("enrollment token")?
        .to_owned();
    let url = format!("{}/api/v1/enroll", cp.base);
    let results = futures_util::stream::iter(0..n)
        .map(|i| {
            let (http, url, token) = (http.clone(), url.clone(), token.clone());
            async move {
                let body = json!({"token": token, "host_id": format!("load-{i}"), "hostname": format!("load-{i}"),
                    "os": "linux", "arch": "x86_64", "agent_version": "0.0.1"});
                let v = post(&http, url, None, body).await?;
                Ok::<_, anyhow::Error>((
                    v["agent_id"].as_str().context("agent_id")?.to_owned(),
                    v["agent_secret"].as_str().context("agent_secret")?.to_owned(),
                ))
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    results.into_iter().collect()
}

#[derive(Default)]
struct Counters {
    heartbeats: AtomicU64,
    errors: AtomicU64,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Send one message and wait for the reply.
async fn exchange(ws: &mut Ws, msg: AgentToServer) -> Result<(), String> {
    let frame = rmm_opamp::ws::encode(&msg);
    ws.send(Message::Binary(frame.into()))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(_))) => return Ok(()),
            Some(Ok(Message::Close(f))) => return Err(format!("closed: {f:?}")),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("connection ended".into()),
        }
    }
}

/// One simulated agent's settings.
struct Sim {
    ws_url: String,
    id: String,
    secret: String,
    heartbeat: Duration,
    /// Delay of the first heartbeat, to spread them over the interval.
    offset: Duration,
    counters: Arc<Counters>,
    /// Told once whether the session is up (report answered).
    connected: tokio::sync::mpsc::Sender<Result<(), String>>,
    stop: tokio::sync::watch::Receiver<bool>,
}

/// One simulated agent: connect, report, then heartbeat until `stop`.
async fn agent(sim: Sim) {
    let Sim {
        ws_url,
        id,
        secret,
        heartbeat,
        offset,
        counters,
        connected,
        mut stop,
    } = sim;
    let uid: InstanceUid = match id.parse() {
        Ok(u) => u,
        Err(e) => {
            let _ = connected.send(Err(format!("agent id {id}: {e}"))).await;
            return;
        }
    };
    let mut req = ws_url.into_client_request().expect("valid URL");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {secret}").parse().expect("header"),
    );
    // Small client buffers: the generator holds N sockets too.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let mut ws = match tokio_tungstenite::connect_async_with_config(req, Some(config), true).await {
        Ok((ws, _)) => ws,
        Err(e) => {
            let _ = connected.send(Err(e.to_string())).await;
            return;
        }
    };
    let mut seq = 1u64;
    let hello = AgentToServer {
        instance_uid: uid.to_vec(),
        sequence_num: seq,
        capabilities: CAPS,
        agent_description: Some(
            AgentDescription::default()
                .with_identifying("service.name", "io.rmm.loadgen")
                .with_identifying("service.version", "0.0.1")
                .with_non_identifying("host.name", id.clone())
                .with_non_identifying("os.type", "linux"),
        ),
        ..Default::default()
    };
    let first = exchange(&mut ws, hello).await;
    let ok = first.is_ok();
    let _ = connected.send(first).await;
    drop(connected);
    if !ok {
        return;
    }
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, heartbeat);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                seq += 1;
                let hb = AgentToServer { instance_uid: uid.to_vec(), sequence_num: seq, capabilities: CAPS, ..Default::default() };
                match exchange(&mut ws, hb).await {
                    Ok(()) => { counters.heartbeats.fetch_add(1, Ordering::Relaxed); }
                    Err(_) => { counters.errors.fetch_add(1, Ordering::Relaxed); return; }
                }
            }
            _ = stop.changed() => {
                let _ = exchange(&mut ws, AgentToServer::disconnect(uid, seq + 1, CAPS)).await;
                let _ = ws.close(None).await;
                return;
            }
        }
    }
}

fn mib(b: f64) -> String {
    format!("{:.1} MiB", b / (1024.0 * 1024.0))
}

fn row(label: &str, measured: impl std::fmt::Display, goal: impl std::fmt::Display) {
    println!("{label:<46} {measured:>24} {goal:>12}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let nofile = raise_nofile();
    if (args.agents as u64) + 256 > nofile {
        bail!(
            "open-files limit {nofile} is too low for {} agents (raise the hard limit)",
            args.agents
        );
    }
    let binary = args
        .binary
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rmm-control-plane")));
    let dir = std::env::temp_dir().join(format!("rmm-loadgen-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let (db_url, pg_db) = match &args.pg_url {
        Some(url) => {
            let name = format!("rmm_loadgen_{}", uuid::Uuid::new_v4().simple());
            pg_exec(url, &format!("CREATE DATABASE {name}")).await?;
            let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(url);
            (format!("{base}/{name}"), Some((url.clone(), name)))
        }
        None => (format!("sqlite://{}/rmm.db", dir.display()), None),
    };
    let mut cp = ControlPlane::start(&binary, &db_url, dir.clone(), args.heartbeat_secs).await?;
    let pid = cp.pid();
    eprintln!(
        "control plane pid {pid} at {}; enrolling {} hosts…",
        cp.base, args.agents
    );
    let t = Instant::now();
    let creds = enroll(&cp, args.agents).await?;
    eprintln!(
        "enrolled in {:.1} s; connecting…",
        t.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = rss_bytes(pid)?;

    // Connect phase: every session sends its report and waits for the reply.
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (conn_tx, mut conn_rx) = tokio::sync::mpsc::channel(args.agents.max(1));
    let ws_url = format!("{}/v1/opamp", cp.base.replacen("http://", "ws://", 1));
    let heartbeat = Duration::from_secs(args.heartbeat_secs);
    let cpu_connect0 = cpu_seconds(pid)?;
    let t_connect = Instant::now();
    let permits = Arc::new(tokio::sync::Semaphore::new(args.connect_concurrency));
    let mut tasks = Vec::with_capacity(args.agents);
    for (i, (id, secret)) in creds.into_iter().enumerate() {
        // Heartbeats spread evenly over one interval.
        let offset = heartbeat.mul_f64((i as f64 + 0.5) / args.agents as f64);
        let permit = permits.clone().acquire_owned().await?;
        let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(1);
        let sim = Sim {
            ws_url: ws_url.clone(),
            id,
            secret,
            heartbeat,
            offset,
            counters: counters.clone(),
            connected: done_tx,
            stop: stop_rx.clone(),
        };
        tasks.push(tokio::spawn(agent(sim)));
        let tx = conn_tx.clone();
        tokio::spawn(async move {
            let r = done_rx
                .recv()
                .await
                .unwrap_or(Err("agent task ended".into()));
            drop(permit);
            let _ = tx.send(r).await;
        });
    }
    drop(conn_tx);
    let (mut ok, mut failed, mut first_error) = (0usize, 0usize, None);
    while let Some(r) = conn_rx.recv().await {
        match r {
            Ok(()) => ok += 1,
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    let connect_time = t_connect.elapsed().as_secs_f64();
    let cpu_connect = cpu_seconds(pid)? - cpu_connect0;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = rss_bytes(pid)?;

    // Heartbeat phase.
    let hb0 = counters.heartbeats.load(Ordering::Relaxed);
    let cpu0 = cpu_seconds(pid)?;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.measure_secs)).await;
    let window = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid)? - cpu0;
    let beats = counters.heartbeats.load(Ordering::Relaxed) - hb0;
    let rss_end = rss_bytes(pid)?;
    let errors = counters.errors.load(Ordering::Relaxed);

    let per_agent = (rss_after as f64 - rss_before as f64) / ok.max(1) as f64;
    let core_pct = 100.0 * cpu / window;
    let rate = beats as f64 / window;
    let expected_rate = ok as f64 / args.heartbeat_secs as f64;
    // The measured cost per heartbeat (everything the server did in the window, divided by
    // the heartbeats) scaled to the goal's load: 10,000 agents at 30 s.
    let per_beat_us = if beats > 0 {
        cpu / beats as f64 * 1e6
    } else {
        f64::NAN
    };
    let goal_pct = per_beat_us * 1e-6 * (10_000.0 / 30.0) * 100.0;

    println!();
    println!(
        "OpAMP load: {} agents over WebSocket, heartbeat {} s, measured {window:.0} s, database {}",
        args.agents,
        args.heartbeat_secs,
        if pg_db.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    row("", "measured", "goal");
    row(
        "agents connected",
        format!("{ok} ({failed} failed)"),
        args.agents,
    );
    row(
        "connect time for all (report + reply)",
        format!("{connect_time:.2} s"),
        "-",
    );
    row(
        "server CPU while connecting",
        format!("{cpu_connect:.2} s"),
        "-",
    );
    row(
        "server RSS before / after connecting",
        format!("{} / {}", mib(rss_before as f64), mib(rss_after as f64)),
        "-",
    );
    row(
        "server RSS per connected agent",
        format!("{:.1} KB", per_agent / 1000.0),
        "< 20 KB",
    );
    row(
        "heartbeats handled",
        format!("{beats} ({rate:.1}/s)"),
        format!("{expected_rate:.1}/s"),
    );
    row(
        "server CPU during heartbeats, % of one core",
        format!("{core_pct:.2} %"),
        "-",
    );
    row(
        "server CPU per heartbeat",
        format!("{per_beat_us:.0} µs"),
        "-",
    );
    row(
        "same cost at 10,000 agents / 30 s",
        format!("{goal_pct:.2} %"),
        "< 5 %",
    );
    row("server RSS at the end", mib(rss_end as f64), "-");
    row("sessions lost during heartbeats", errors, 0);
    if let Some(e) = first_error {
        println!("first connect error: {e}");
    }

    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    let _ = cp.child.start_kill();
    let _ = cp.child.wait().await;
    if let Some((url, name)) = pg_db {
        pg_exec(
            &url,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )
        .await?;
    }
    let _ = std::fs::remove_dir_all(&cp.dir);
    Ok(())
}

async fn pg_exec(url: &str, sql: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::query(sql).execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}
