//! Property tests for every decoder: arbitrary bytes never panic, and arbitrary
//! valid messages survive every encoding path unchanged. Case counts are bounded
//! so the suite stays within a few seconds.

use std::collections::BTreeMap;

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use prost::Message;
use rmm_opamp::client::ClientState;
use rmm_opamp::proto::*;
use rmm_opamp::server::SessionTracker;
use rmm_opamp::{http, ws, InstanceUid, Limits};

fn config() -> ProptestConfig {
    ProptestConfig {
        // PROPTEST_CASES raises the bound for longer fuzzing runs.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        max_shrink_iters: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// --- strategies -----------------------------------------------------------

fn s() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ./_é-]{0,12}"
}

fn b() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..24)
}

fn f() -> impl Strategy<Value = f64> {
    // NaN != NaN would break equality checks; every other value round-trips.
    prop_oneof![-1e15f64..1e15, Just(0.0), Just(f64::INFINITY), Just(-0.5)]
}

fn any_value() -> impl Strategy<Value = AnyValue> {
    use any_value::Value as V;
    let leaf = prop_oneof![
        Just(AnyValue { value: None }),
        s().prop_map(|x| AnyValue {
            value: Some(V::StringValue(x))
        }),
        any::<bool>().prop_map(|x| AnyValue {
            value: Some(V::BoolValue(x))
        }),
        any::<i64>().prop_map(|x| AnyValue {
            value: Some(V::IntValue(x))
        }),
        f().prop_map(|x| AnyValue {
            value: Some(V::DoubleValue(x))
        }),
        b().prop_map(|x| AnyValue {
            value: Some(V::BytesValue(x))
        }),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|values| AnyValue {
                value: Some(V::ArrayValue(ArrayValue { values })),
            }),
            vec((s(), option::of(inner)), 0..4).prop_map(|kvs| AnyValue {
                value: Some(V::KvlistValue(KeyValueList {
                    values: kvs
                        .into_iter()
                        .map(|(key, value)| KeyValue { key, value })
                        .collect(),
                })),
            }),
        ]
    })
}

fn key_values() -> impl Strategy<Value = Vec<KeyValue>> {
    vec(
        (s(), option::of(any_value())).prop_map(|(key, value)| KeyValue { key, value }),
        0..4,
    )
}

fn headers() -> impl Strategy<Value = Headers> {
    vec((s(), s()), 0..3).prop_map(Headers::from_pairs)
}

fn tls_certificate() -> impl Strategy<Value = TlsCertificate> {
    (b(), b(), b()).prop_map(|(cert, private_key, ca_cert)| TlsCertificate {
        cert,
        private_key,
        ca_cert,
    })
}

fn tls_settings() -> impl Strategy<Value = TlsConnectionSettings> {
    (s(), any::<bool>(), any::<bool>(), s(), s(), vec(s(), 0..3)).prop_map(
        |(ca, sys, skip, min, max, suites)| TlsConnectionSettings {
            ca_pem_contents: ca,
            include_system_ca_certs_pool: sys,
            insecure_skip_verify: skip,
            min_version: min,
            max_version: max,
            cipher_suites: suites,
        },
    )
}

fn proxy() -> impl Strategy<Value = ProxyConnectionSettings> {
    (s(), option::of(headers())).prop_map(|(url, connect_headers)| ProxyConnectionSettings {
        url,
        connect_headers,
    })
}

fn config_map() -> impl Strategy<Value = AgentConfigMap> {
    btree_map(s(), (b(), s()), 0..3).prop_map(|m| AgentConfigMap {
        config_map: m
            .into_iter()
            .map(|(k, (body, content_type))| (k, AgentConfigFile { body, content_type }))
            .collect(),
    })
}

fn component_health() -> impl Strategy<Value = ComponentHealth> {
    let leaf = (
        any::<bool>(),
        any::<u64>(),
        s(),
        s(),
        any::<u64>(),
        key_values(),
    )
        .prop_map(
            |(healthy, start, last_error, status, t, attributes)| ComponentHealth {
                healthy,
                start_time_unix_nano: start,
                last_error,
                status,
                status_time_unix_nano: t,
                component_health_map: BTreeMap::new(),
                attributes,
            },
        );
    leaf.prop_recursive(2, 8, 3, |inner| {
        (inner.clone(), btree_map(s(), inner, 0..3)).prop_map(|(mut h, m)| {
            h.component_health_map = m;
            h
        })
    })
}

fn component_details() -> impl Strategy<Value = ComponentDetails> {
    let leaf = key_values().prop_map(|metadata| ComponentDetails {
        metadata,
        sub_component_map: BTreeMap::new(),
    });
    leaf.prop_recursive(2, 8, 3, |inner| {
        (key_values(), btree_map(s(), inner, 0..3)).prop_map(|(metadata, sub_component_map)| {
            ComponentDetails {
                metadata,
                sub_component_map,
            }
        })
    })
}

fn package_status() -> impl Strategy<Value = PackageStatus> {
    (
        (s(), s(), b(), s(), b()),
        (-1i32..6, s(), option::of((f(), f()))),
    )
        .prop_map(
            |((name, hv, hh, ov, oh), (status, err, dd))| PackageStatus {
                name,
                agent_has_version: hv,
                agent_has_hash: hh,
                server_offered_version: ov,
                server_offered_hash: oh,
                status,
                error_message: err,
                download_details: dd.map(|(p, r)| PackageDownloadDetails {
                    download_percent: p,
                    download_bytes_per_second: r,
                }),
            },
        )
}

fn agent_to_server() -> impl Strategy<Value = AgentToServer> {
    let status = (
        option::of(
            (key_values(), key_values()).prop_map(|(i, n)| AgentDescription {
                identifying_attributes: i,
                non_identifying_attributes: n,
            }),
        ),
        option::of(component_health()),
        option::of(option::of(config_map()).prop_map(|config_map| EffectiveConfig { config_map })),
        option::of(
            (b(), -1i32..5, s()).prop_map(|(h, st, e)| RemoteConfigStatus {
                last_remote_config_hash: h,
                status: st,
                error_message: e,
            }),
        ),
        option::of((btree_map(s(), package_status(), 0..3), b(), s()).prop_map(
            |(packages, h, e)| PackageStatuses {
                packages,
                server_provided_all_packages_hash: h,
                error_message: e,
            },
        )),
    );
    let extra = (
        option::of(vec(s(), 0..3).prop_map(|capabilities| CustomCapabilities { capabilities })),
        option::of(custom_message()),
        option::of(
            (btree_map(s(), component_details(), 0..3), b())
                .prop_map(|(components, hash)| AvailableComponents { components, hash }),
        ),
        option::of(
            (b(), -1i32..5, s()).prop_map(|(h, st, e)| ConnectionSettingsStatus {
                last_connection_settings_hash: h,
                status: st,
                error_message: e,
            }),
        ),
        option::of(option::of(b()).prop_map(|csr| ConnectionSettingsRequest {
            opamp: Some(OpAmpConnectionSettingsRequest {
                certificate_request: csr.map(|csr| CertificateRequest { csr }),
            }),
        })),
    );
    (
        prop_oneof![vec(any::<u8>(), 16..=16), b()],
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
        status,
        extra,
    )
        .prop_map(
            |(uid, seq, caps, flags, disc, (d, h, ec, rcs, ps), (cc, cm, ac, css, csr))| {
                AgentToServer {
                    instance_uid: uid,
                    sequence_num: seq,
                    agent_description: d,
                    capabilities: caps,
                    health: h,
                    effective_config: ec,
                    remote_config_status: rcs,
                    package_statuses: ps,
                    agent_disconnect: disc.then_some(AgentDisconnect {}),
                    flags,
                    connection_settings_request: csr,
                    custom_capabilities: cc,
                    custom_message: cm,
                    available_components: ac,
                    connection_settings_status: css,
                }
            },
        )
}

fn custom_message() -> impl Strategy<Value = CustomMessage> {
    (s(), s(), b()).prop_map(|(capability, r#type, data)| CustomMessage {
        capability,
        r#type,
        data,
    })
}

fn telemetry() -> impl Strategy<Value = TelemetryConnectionSettings> {
    (
        s(),
        option::of(headers()),
        option::of(tls_certificate()),
        option::of(tls_settings()),
        option::of(proxy()),
    )
        .prop_map(|(e, h, c, t, p)| TelemetryConnectionSettings {
            destination_endpoint: e,
            headers: h,
            certificate: c,
            tls: t,
            proxy: p,
        })
}

fn connection_settings() -> impl Strategy<Value = ConnectionSettingsOffers> {
    let opamp = (
        s(),
        option::of(headers()),
        option::of(tls_certificate()),
        any::<u64>(),
        option::of(tls_settings()),
        option::of(proxy()),
    )
        .prop_map(|(e, h, c, hb, t, p)| OpAmpConnectionSettings {
            destination_endpoint: e,
            headers: h,
            certificate: c,
            heartbeat_interval_seconds: hb,
            tls: t,
            proxy: p,
        });
    let other = (
        s(),
        option::of(headers()),
        option::of(tls_certificate()),
        btree_map(s(), s(), 0..3),
        option::of(tls_settings()),
        option::of(proxy()),
    )
        .prop_map(|(e, h, c, o, t, p)| OtherConnectionSettings {
            destination_endpoint: e,
            headers: h,
            certificate: c,
            other_settings: o,
            tls: t,
            proxy: p,
        });
    (
        b(),
        option::of(opamp),
        option::of(telemetry()),
        option::of(telemetry()),
        option::of(telemetry()),
        btree_map(s(), other, 0..2),
    )
        .prop_map(|(hash, opamp, m, t, l, o)| ConnectionSettingsOffers {
            hash,
            opamp,
            own_metrics: m,
            own_traces: t,
            own_logs: l,
            other_connections: o,
        })
}

fn packages_available() -> impl Strategy<Value = PackagesAvailable> {
    let file = (s(), b(), b(), option::of(headers())).prop_map(|(u, c, sig, h)| DownloadableFile {
        download_url: u,
        content_hash: c,
        signature: sig,
        headers: h,
    });
    let pkg =
        (-1i32..3, s(), option::of(file), b()).prop_map(|(t, v, file, hash)| PackageAvailable {
            r#type: t,
            version: v,
            file,
            hash,
        });
    (btree_map(s(), pkg, 0..3), b()).prop_map(|(packages, all_packages_hash)| PackagesAvailable {
        packages,
        all_packages_hash,
    })
}

fn server_to_agent() -> impl Strategy<Value = ServerToAgent> {
    let error =
        (-1i32..4, s(), option::of(any::<u64>())).prop_map(|(t, m, r)| ServerErrorResponse {
            r#type: t,
            error_message: m,
            details: r.map(|n| {
                server_error_response::Details::RetryInfo(RetryInfo {
                    retry_after_nanoseconds: n,
                })
            }),
        });
    (
        prop_oneof![vec(any::<u8>(), 16..=16), b()],
        option::of(error),
        option::of(
            (option::of(config_map()), b()).prop_map(|(config, config_hash)| AgentRemoteConfig {
                config,
                config_hash,
            }),
        ),
        option::of(connection_settings()),
        option::of(packages_available()),
        (any::<u64>(), any::<u64>()),
        option::of(prop_oneof![vec(any::<u8>(), 16..=16), b()]),
        option::of(-1i32..2),
        option::of(vec(s(), 0..3).prop_map(|capabilities| CustomCapabilities { capabilities })),
        option::of(custom_message()),
    )
        .prop_map(
            |(uid, err, rc, cs, pa, (flags, caps), nid, cmd, cc, cm)| ServerToAgent {
                instance_uid: uid,
                error_response: err,
                remote_config: rc,
                connection_settings: cs,
                packages_available: pa,
                flags,
                capabilities: caps,
                agent_identification: nid
                    .map(|new_instance_uid| AgentIdentification { new_instance_uid }),
                command: cmd.map(|t| ServerToAgentCommand { r#type: t }),
                custom_capabilities: cc,
                custom_message: cm,
            },
        )
}

// --- properties -----------------------------------------------------------

/// Runs every decoder over `data`; none may panic.
fn feed_all_decoders(data: &[u8]) {
    let limits = Limits::default();
    let small = Limits::new(64);
    let _ = ws::decode_agent_to_server(data, &limits);
    let _ = ws::decode_server_to_agent(data, &limits);
    let _ = ws::decode_agent_to_server(data, &small);
    let _ = http::decode_agent_to_server(data, None, &limits);
    let _ = http::decode_server_to_agent(data, None, &limits);
    let _ = http::decode_agent_to_server(data, Some("gzip"), &limits);
    let _ = http::decode_server_to_agent(data, Some("gzip"), &small);
    let a = AgentToServer::decode(data);
    let s = ServerToAgent::decode(data);
    if let Ok(a) = a {
        let _ = SessionTracker::new().observe(a);
    }
    if let Ok(s) = s {
        let _ = s.check_exclusivity();
        let _ = ClientState::new(InstanceUid::from_array([1; 16]), u64::MAX).apply(s);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..512)) {
        feed_all_decoders(&data);
        // The same bytes behind a valid header and inside a valid gzip stream
        // decode exactly as the bare bytes do.
        let mut frame = vec![0u8];
        frame.extend_from_slice(&data);
        let limits = Limits::default();
        let bare = AgentToServer::decode(data.as_slice()).ok();
        prop_assert_eq!(ws::decode_agent_to_server(&frame, &limits).ok(), bare.clone());
        let gz = http::gzip_bytes(&data);
        prop_assert_eq!(http::decode_agent_to_server(&gz, Some("gzip"), &limits).ok(), bare);
        feed_all_decoders(&frame);
        feed_all_decoders(&gz);
    }

    #[test]
    fn agent_to_server_round_trips(msg in agent_to_server()) {
        let limits = Limits::default();
        let bytes = msg.encode_to_vec();
        prop_assert_eq!(&AgentToServer::decode(bytes.as_slice()).unwrap(), &msg);
        let frame = ws::encode(&msg);
        prop_assert_eq!(frame[0], 0);
        prop_assert_eq!(&ws::decode_agent_to_server(&frame, &limits).unwrap(), &msg);
        for gzip in [false, true] {
            let body = http::encode_body(&msg, gzip);
            let enc = if gzip { Some("gzip") } else { None };
            prop_assert_eq!(&http::decode_agent_to_server(&body, enc, &limits).unwrap(), &msg);
        }
        // A limit one byte short rejects it on both transports.
        if !bytes.is_empty() {
            let tight = Limits::new(bytes.len() - 1);
            prop_assert!(ws::decode_agent_to_server(&frame, &tight).is_err());
            prop_assert!(http::decode_agent_to_server(&http::encode_body(&msg, true), Some("gzip"), &tight).is_err());
        }
        // Session logic accepts or rejects without panicking.
        let mut tracker = SessionTracker::new();
        let res = tracker.observe(msg.clone());
        prop_assert_eq!(res.is_ok(), msg.instance_uid.len() == 16);
        // Truncations and bit flips of valid bytes never panic.
        for cut in [0, bytes.len() / 3, bytes.len() / 2, bytes.len().saturating_sub(1)] {
            feed_all_decoders(&bytes[..cut]);
        }
        if !bytes.is_empty() {
            let mut flipped = bytes.clone();
            let i = bytes.len() / 2;
            flipped[i] ^= 0x80;
            feed_all_decoders(&flipped);
        }
    }

    #[test]
    fn server_to_agent_round_trips(msg in server_to_agent()) {
        let limits = Limits::default();
        let bytes = msg.encode_to_vec();
        prop_assert_eq!(&ServerToAgent::decode(bytes.as_slice()).unwrap(), &msg);
        let frame = ws::encode(&msg);
        prop_assert_eq!(&ws::decode_server_to_agent(&frame, &limits).unwrap(), &msg);
        for gzip in [false, true] {
            let body = http::encode_body(&msg, gzip);
            let enc = if gzip { Some("gzip") } else { None };
            prop_assert_eq!(&http::decode_server_to_agent(&body, enc, &limits).unwrap(), &msg);
        }
        let _ = msg.check_exclusivity();
        let mut client = ClientState::new(InstanceUid::from_array([1; 16]), u64::MAX);
        let _ = client.apply(msg.clone());
        let _ = client.next_message();
        for cut in [0, bytes.len() / 3, bytes.len() / 2, bytes.len().saturating_sub(1)] {
            feed_all_decoders(&bytes[..cut]);
        }
    }

    /// Any sequence of sequence numbers: the tracker asks for full state exactly
    /// on gaps (after the first message, which may carry any value).
    #[test]
    fn tracker_gap_rule(seqs in vec(prop_oneof![0u64..6, any::<u64>()], 1..20)) {
        let mut tracker = SessionTracker::new();
        let mut prev: Option<u64> = None;
        for seq in seqs {
            let msg = AgentToServer {
                instance_uid: vec![9; 16],
                sequence_num: seq,
                capabilities: 1,
                agent_description: Some(AgentDescription::default()),
                ..Default::default()
            };
            let obs = tracker.observe(msg).unwrap();
            let gap = prev.is_some_and(|p| p.wrapping_add(1) != seq);
            prop_assert_eq!(obs.report_full_state, gap);
            prop_assert_eq!(obs.sequence_gap.is_some(), gap);
            prev = Some(seq);
        }
    }

    /// Client and server agree: whatever the client sends, the server's merged
    /// snapshot equals the client's status after every exchange.
    #[test]
    fn client_server_snapshots_agree(
        steps in vec((option::of(component_health()), option::of(any::<bool>()), any::<bool>()), 1..8)
    ) {
        let uid = InstanceUid::from_array([4; 16]);
        let mut client = ClientState::new(uid, u64::MAX);
        client.set_agent_description(AgentDescription::default().with_identifying("service.name", "x"));
        let mut tracker = SessionTracker::new();
        for (health, remote_ok, full) in steps {
            if let Some(h) = health {
                client.set_health(h);
            }
            if let Some(ok) = remote_ok {
                client.set_remote_config_status(RemoteConfigStatus::new(
                    vec![ok as u8],
                    if ok { RemoteConfigStatuses::Applied } else { RemoteConfigStatuses::Failed },
                ));
            }
            if full {
                client.request_full_state();
            }
            let obs = tracker.observe(client.next_message()).unwrap();
            prop_assert!(!obs.report_full_state);
            prop_assert_eq!(&tracker.get(&uid).unwrap().status, client.status());
        }
    }
}
