//! Remote configuration applied live by the real `rmm-agent` binary, pushed by a small in-test
//! OpAMP WebSocket server: a lower `top_processes` shows on `/metrics` within 2 s with
//! RemoteConfigStatus APPLIED and the hash; an invalid config is FAILED with the key named
//! and changes nothing; after a restart the last good config is still in force; a new listen
//! address is rebound live, and one that cannot be bound fails the whole apply; a policy's
//! `inventory.interval_hours` turns on the user inventory report (custom message); OTLP is
//! turned on and moved to another endpoint live, with the policy's labels on the data points.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use common::{agent_command, http_get, parse_metrics, poll, ChildGuard};
use rmm_agent::control::identity::{Identity, Secret, StateDir};
use rmm_opamp::capabilities::agent as caps;
use rmm_opamp::proto::{
    AgentConfigMap, AgentRemoteConfig, AgentToServer, RemoteConfigStatuses, ServerToAgent,
};
use tokio::sync::mpsc;

const AGENT_ID: &str = "0192f1c4-7b1e-7cc2-9a53-3c1f2a9b8e02";

/// An OpAMP server on its own thread: every `AgentToServer` is acknowledged and handed to the
/// test; `push` sends a remote config on the current connection (the agent reconnects to
/// the same listener after a restart).
struct Server {
    url: String,
    received: std_mpsc::Receiver<AgentToServer>,
    outgoing: mpsc::UnboundedSender<ServerToAgent>,
}

impl Server {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/v1/opamp", listener.local_addr().unwrap());
        let (rx_tx, received) = std_mpsc::channel();
        let (outgoing, mut out_rx) = mpsc::unbounded_channel::<ServerToAgent>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                use futures_util::{SinkExt, StreamExt};
                use tokio_tungstenite::tungstenite::Message;
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let Ok(mut socket) = tokio_tungstenite::accept_async(tcp).await else {
                        continue;
                    };
                    loop {
                        tokio::select! {
                            m = socket.next() => match m {
                                Some(Ok(Message::Binary(b))) => {
                                    let msg = rmm_opamp::ws::decode_agent_to_server(&b, &rmm_opamp::Limits::default()).unwrap();
                                    let ack = rmm_opamp::ws::encode(&ServerToAgent::ack(msg.instance_uid.clone()));
                                    let _ = socket.send(Message::Binary(ack.into())).await;
                                    if rx_tx.send(msg).is_err() { return; }
                                }
                                Some(Ok(_)) => {}
                                _ => break,
                            },
                            s = out_rx.recv() => match s {
                                Some(s) => { let _ = socket.send(Message::Binary(rmm_opamp::ws::encode(&s).into())).await; }
                                None => return,
                            },
                        }
                    }
                }
            });
        });
        Self {
            url,
            received,
            outgoing,
        }
    }

    /// Sends `toml` as the remote config; returns its hash.
    fn push(&self, toml: &str) -> Vec<u8> {
        let map =
            AgentConfigMap::single("agent.toml", toml.as_bytes().to_vec(), "application/toml");
        let rc = AgentRemoteConfig::new(map);
        let hash = rc.config_hash.clone();
        let uid: rmm_opamp::InstanceUid = AGENT_ID.parse().unwrap();
        let msg = ServerToAgent::builder(uid.to_vec())
            .remote_config(rc)
            .build();
        self.outgoing.send(msg).unwrap();
        hash
    }

    /// The next message matching `f` within `limit`.
    fn wait_for(
        &self,
        limit: Duration,
        mut f: impl FnMut(&AgentToServer) -> bool,
    ) -> Option<AgentToServer> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.received.recv_timeout(left) {
                Ok(m) if f(&m) => return Some(m),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Forgets what was received so far.
    fn drain(&self) {
        while self.received.try_recv().is_ok() {}
    }
}

fn enrolled_state(opamp_url: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    StateDir::new(tmp.path())
        .save(
            &Identity {
                agent_id: AGENT_ID.into(),
                server: "http://127.0.0.1".into(),
                opamp_url: opamp_url.to_owned(),
                enrolled_at: "2026-11-27T00:00:00Z".into(),
                client_id: None,
                site_id: None,
                signing_keys: Vec::new(),
            },
            &Secret::new("rmm_as_remote-config").unwrap(),
        )
        .unwrap();
    tmp
}

fn start_agent(state: &Path, addr: SocketAddr) -> ChildGuard {
    ChildGuard::spawn(
        agent_command()
            .args(["run", "--state-dir"])
            .arg(state)
            .env("RMM_AGENT_PROMETHEUS_LISTEN", addr.to_string())
            .env("RMM_AGENT_COLLECT_INTERVAL", "250ms")
            .env("RMM_AGENT_CONTROL_HEARTBEAT_INTERVAL", "1s")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// Distinct top processes (pids) on `/metrics` at `addr`, and whether every process series
/// carries `team="ops"`.
fn top_processes(addr: SocketAddr) -> Option<(usize, bool)> {
    let (status, body) = http_get(addr, "/metrics").ok()?;
    if status != 200 {
        return None;
    }
    let samples: Vec<_> = parse_metrics(&body)
        .into_iter()
        .filter(|s| s.name == "process_memory_usage_bytes")
        .collect();
    if samples.is_empty() {
        return None; // before the first cycle
    }
    let pids: BTreeSet<String> = samples
        .iter()
        .map(|s| s.label("process_pid").to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    let labelled = samples.iter().all(|s| s.label("team") == "ops");
    Some((pids.len(), labelled))
}

fn status_is(m: &AgentToServer, state: RemoteConfigStatuses, hash: &[u8]) -> bool {
    m.remote_config_status
        .as_ref()
        .is_some_and(|s| s.status == state as i32 && s.last_remote_config_hash == hash)
}

fn effective_toml(m: &AgentToServer) -> Option<String> {
    let file = m.effective_config.as_ref()?.config_map.as_ref()?;
    let f = file.config_map.get("agent.toml")?;
    Some(String::from_utf8_lossy(&f.body).into_owned())
}

#[test]
fn remote_config_applies_live_refuses_invalid_and_survives_a_restart() {
    let server = Server::start();
    let state = enrolled_state(&server.url);
    let addr: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let mut agent = start_agent(state.path(), addr);

    let first = server
        .wait_for(Duration::from_secs(20), |_| true)
        .expect("the agent connects");
    assert_ne!(first.capabilities & caps::ACCEPTS_REMOTE_CONFIG, 0);
    assert_ne!(first.capabilities & caps::REPORTS_REMOTE_CONFIG, 0);
    let before = poll(Duration::from_secs(20), Duration::from_millis(100), || {
        top_processes(addr).filter(|(n, _)| *n >= 10)
    });
    assert!(before.is_some(), "10 top processes by default");

    // Lower top_processes and add a label: live, within 2 s, reported APPLIED with the hash.
    let good = "[collect]\ntop_processes = 2\n\n[labels]\nteam = \"ops\"\n";
    let t = Instant::now();
    let hash = server.push(good);
    let mut effective = None;
    server
        .wait_for(Duration::from_secs(2), |m| {
            effective = effective_toml(m).or(effective.take());
            status_is(m, RemoteConfigStatuses::Applied, &hash)
        })
        .expect("RemoteConfigStatus APPLIED with the pushed hash within 2 s");
    let served = poll(Duration::from_secs(2), Duration::from_millis(50), || {
        top_processes(addr).filter(|(n, labelled)| (1..=4).contains(n) && *labelled)
    });
    let took = t.elapsed();
    assert!(
        served.is_some() && took <= Duration::from_secs(2),
        "at most 2x2 top processes with team=ops on /metrics within 2 s (took {took:?}, now {:?})",
        top_processes(addr)
    );
    let effective = effective
        .or_else(|| {
            server
                .wait_for(Duration::from_secs(2), |m| m.effective_config.is_some())
                .and_then(|m| effective_toml(&m))
        })
        .expect("the new effective config is reported");
    assert!(effective.contains("top_processes = 2"), "{effective}");
    let kept = std::fs::read_to_string(state.path().join("remote_config.toml")).unwrap();
    assert_eq!(kept, good);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state.path().join("remote_config.toml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Invalid: FAILED naming the key; /metrics unchanged.
    for (bad, key) in [
        ("[collect]\ntop_processes = 5000\n", "collect.top_processes"),
        ("[control]\nstate_dir = \"/tmp/elsewhere\"\n", "control"),
    ] {
        let bad_hash = server.push(bad);
        let failed = server
            .wait_for(Duration::from_secs(5), |m| {
                status_is(m, RemoteConfigStatuses::Failed, &bad_hash)
            })
            .unwrap_or_else(|| panic!("FAILED for {bad:?}"));
        let reason = &failed.remote_config_status.unwrap().error_message;
        assert!(reason.contains(&format!("key `{key}`")), "{reason}");
    }
    std::thread::sleep(Duration::from_millis(600));
    let (n, labelled) = top_processes(addr).unwrap();
    assert!(
        (1..=4).contains(&n) && labelled,
        "still the good config: {n} {labelled}"
    );

    // Restart: the last good config is in force before and after connecting.
    drop(agent);
    server.drain();
    agent = start_agent(state.path(), addr);
    let hello = server
        .wait_for(Duration::from_secs(20), |m| m.agent_description.is_some())
        .expect("the agent reconnects");
    assert!(
        status_is(&hello, RemoteConfigStatuses::Applied, &hash),
        "the first message reports the persisted config: {:?}",
        hello.remote_config_status
    );
    let after = poll(Duration::from_secs(10), Duration::from_millis(100), || {
        top_processes(addr)
    })
    .unwrap();
    assert!((1..=4).contains(&after.0) && after.1, "{after:?}");
    // The same config again is a no-op: no FAILED, the collection thread is not restarted
    // (its counter keeps growing), and the APPLIED status stands (unchanged, so status
    // compression sends nothing new).
    let collections = || {
        let (_, body) = http_get(addr, "/metrics").unwrap();
        parse_metrics(&body)
            .iter()
            .find(|s| s.name == "rmm_agent_collections_total")
            .map(|s| s.value)
            .unwrap()
    };
    let c0 = collections();
    server.push(good);
    let failed = server.wait_for(Duration::from_secs(1), |m| {
        m.remote_config_status
            .as_ref()
            .is_some_and(|s| s.status != RemoteConfigStatuses::Applied as i32)
    });
    assert!(failed.is_none(), "{failed:?}");
    assert!(collections() > c0, "collection was not restarted");
    drop(agent);
}

#[test]
fn listen_address_is_rebound_live_and_an_unbindable_one_fails_the_apply() {
    let server = Server::start();
    let state = enrolled_state(&server.url);
    let addr: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let _agent = start_agent(state.path(), addr);
    server
        .wait_for(Duration::from_secs(20), |_| true)
        .expect("the agent connects");

    let new_addr: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let hash = server.push(&format!(
        "[prometheus]\nlisten = \"{new_addr}\"\n[collect]\ntop_processes = 1\n"
    ));
    server
        .wait_for(Duration::from_secs(5), |m| {
            status_is(m, RemoteConfigStatuses::Applied, &hash)
        })
        .expect("APPLIED");
    let moved = poll(Duration::from_secs(5), Duration::from_millis(50), || {
        top_processes(new_addr).filter(|(n, _)| *n <= 2)
    });
    assert!(moved.is_some(), "/metrics on the new address");
    assert!(
        http_get(addr, "/metrics").is_err(),
        "the old address no longer accepts"
    );

    // A taken address: the whole apply fails (top_processes is not changed either).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bad = server.push(&format!(
        "[prometheus]\nlisten = \"{}\"\n[collect]\ntop_processes = 20\n",
        taken.local_addr().unwrap()
    ));
    let failed = server
        .wait_for(Duration::from_secs(5), |m| {
            status_is(m, RemoteConfigStatuses::Failed, &bad)
        })
        .expect("FAILED");
    let reason = failed.remote_config_status.unwrap().error_message;
    assert!(reason.contains("prometheus.listen"), "{reason}");
    std::thread::sleep(Duration::from_millis(600));
    let (n, _) = top_processes(new_addr).expect("still served on the applied address");
    assert!(n <= 2, "top_processes unchanged: {n}");
}

#[test]
fn a_policy_interval_turns_on_the_user_inventory_report() {
    let server = Server::start();
    let state = enrolled_state(&server.url);
    let addr: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let _agent = start_agent(state.path(), addr);
    let first = server
        .wait_for(Duration::from_secs(20), |_| true)
        .expect("the agent connects");
    let custom = first.custom_capabilities.expect("custom capabilities");
    assert_eq!(custom.capabilities, ["io.rmm.inventory"]);
    // Off by default: no report without the policy.
    let early = server.wait_for(Duration::from_millis(1500), |m| m.custom_message.is_some());
    assert!(early.is_none(), "no inventory while interval_hours = 0");

    server.push("[inventory]\ninterval_hours = 12\n");
    let mut report = None;
    server
        .wait_for(Duration::from_secs(5), |m| {
            report = m.custom_message.clone().or(report.take());
            report.is_some()
        })
        .expect("an inventory report after the policy turned it on");
    let report = report.unwrap();
    assert_eq!(report.capability, "io.rmm.inventory");
    assert_eq!(report.r#type, "users");
    let v: serde_json::Value = serde_json::from_slice(&report.data).unwrap();
    let users = v["users"].as_array().expect("users");
    let root = users
        .iter()
        .find(|u| u["name"] == "root")
        .expect("root in /etc/passwd");
    assert_eq!(root["uid"], 0);
    assert!(root["home"].is_string() && root["login_shell"].is_boolean());
    assert!(v["sessions"].is_array());
    assert!(v["collected_at_unix"].as_u64().unwrap() > 1_700_000_000);
}

/// A minimal OTLP/HTTP receiver: answers every request 200 and hands each body to the test.
fn otlp_receiver() -> (SocketAddr, std_mpsc::Receiver<Vec<u8>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std_mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let l = line.trim_end().to_ascii_lowercase();
                        if l.is_empty() {
                            break;
                        }
                        if let Some(v) = l.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
                    );
                    if tx.send(body).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn otlp_exporter_settings_switch_live() {
    let server = Server::start();
    let state = enrolled_state(&server.url);
    let addr: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let _agent = start_agent(state.path(), addr);
    server
        .wait_for(Duration::from_secs(20), |_| true)
        .expect("the agent connects");
    let (first, first_rx) = otlp_receiver();
    let (second, second_rx) = otlp_receiver();

    // OTLP off locally; the remote config turns it on, with a label on every data point.
    let hash = server.push(&format!(
        "[otlp]\nenabled = true\nendpoint = \"http://{first}\"\ncompression = \"none\"\n[labels]\nteam = \"ops\"\n"
    ));
    server
        .wait_for(Duration::from_secs(5), |m| {
            status_is(m, RemoteConfigStatuses::Applied, &hash)
        })
        .expect("APPLIED");
    let push = first_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("pushes reach the configured receiver");
    assert!(
        contains(&push, b"team") && contains(&push, b"ops"),
        "label in the push"
    );

    // A new endpoint: the exporter restarts there; the old receiver hears no more.
    let hash = server.push(&format!(
        "[otlp]\nenabled = true\nendpoint = \"http://{second}\"\ncompression = \"none\"\n"
    ));
    server
        .wait_for(Duration::from_secs(5), |m| {
            status_is(m, RemoteConfigStatuses::Applied, &hash)
        })
        .expect("APPLIED");
    second_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("pushes reach the new receiver");
    while first_rx.try_recv().is_ok() {}
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        first_rx.try_recv().is_err(),
        "the old receiver gets nothing after the switch"
    );
}
