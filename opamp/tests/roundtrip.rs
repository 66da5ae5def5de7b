//! Round-trip tests for every message type, with every field populated —
//! including the fields added after spec v0.12.0 that the golden bytes (from a
//! v0.12.0 implementation) cannot cover — plus field-number checks for those
//! newer fields.

use std::collections::BTreeMap;
use std::fmt::Debug;

use prost::encoding::{decode_key, WireType};
use prost::Message;
use rmm_opamp::proto::*;

fn roundtrip<M: Message + Default + PartialEq + Debug>(msg: &M) {
    let bytes = msg.encode_to_vec();
    assert_eq!(bytes.len(), msg.encoded_len());
    let back = M::decode(bytes.as_slice()).unwrap();
    assert_eq!(&back, msg);
    assert_eq!(back.encode_to_vec(), bytes, "encoding is deterministic");
}

/// Field number and wire type of the first (only) field in `msg`'s encoding.
fn only_tag<M: Message>(msg: &M) -> (u32, WireType) {
    let bytes = msg.encode_to_vec();
    let mut buf = bytes.as_slice();
    decode_key(&mut buf).unwrap()
}

fn kvs() -> Vec<KeyValue> {
    vec![
        KeyValue::new("s", "v"),
        KeyValue::new("b", true),
        KeyValue::new("i", -7i64),
        KeyValue::new("d", 1.5f64),
        KeyValue::new("y", vec![1u8, 2]),
        KeyValue::new(
            "a",
            ArrayValue {
                values: vec![AnyValue::string("x"), AnyValue::from(3i64)],
            },
        ),
        KeyValue::new(
            "kv",
            KeyValueList {
                values: vec![KeyValue::new("inner", false)],
            },
        ),
        KeyValue {
            key: "none".into(),
            value: None,
        },
    ]
}

fn headers() -> Headers {
    Headers::bearer("tok").with("X-A", "1")
}

fn tls() -> TlsConnectionSettings {
    TlsConnectionSettings {
        ca_pem_contents: "-----BEGIN CERTIFICATE-----".into(),
        include_system_ca_certs_pool: true,
        insecure_skip_verify: true,
        min_version: "1.2".into(),
        max_version: "1.3".into(),
        cipher_suites: vec![
            "TLS_AES_128_GCM_SHA256".into(),
            "TLS_AES_256_GCM_SHA384".into(),
        ],
    }
}

fn proxy() -> ProxyConnectionSettings {
    ProxyConnectionSettings {
        url: "http://proxy:3128".into(),
        connect_headers: Some(headers()),
    }
}

fn cert() -> TlsCertificate {
    TlsCertificate {
        cert: b"C".to_vec(),
        private_key: b"K".to_vec(),
        ca_cert: b"CA".to_vec(),
    }
}

fn health() -> ComponentHealth {
    ComponentHealth {
        healthy: true,
        start_time_unix_nano: u64::MAX,
        last_error: "e".into(),
        status: "running".into(),
        status_time_unix_nano: 1,
        component_health_map: BTreeMap::from([(
            "sub".to_owned(),
            ComponentHealth {
                attributes: vec![KeyValue::new("k", "v")],
                ..ComponentHealth::unhealthy("x")
            },
        )]),
        attributes: kvs(),
    }
}

fn config_map() -> AgentConfigMap {
    let mut m = AgentConfigMap::single("", b"a: 1".to_vec(), "text/yaml");
    m.config_map.insert(
        "b.json".into(),
        AgentConfigFile {
            body: b"{}".to_vec(),
            content_type: "application/json".into(),
        },
    );
    m
}

fn components() -> AvailableComponents {
    AvailableComponents {
        components: BTreeMap::from([(
            "receivers".to_owned(),
            ComponentDetails {
                metadata: kvs(),
                sub_component_map: BTreeMap::from([(
                    "otlp".to_owned(),
                    ComponentDetails::default(),
                )]),
            },
        )]),
        hash: vec![1; 32],
    }
}

fn agent_to_server_all() -> AgentToServer {
    AgentToServer {
        instance_uid: vec![1; 16],
        sequence_num: u64::MAX,
        agent_description: Some(AgentDescription {
            identifying_attributes: kvs(),
            non_identifying_attributes: kvs(),
        }),
        capabilities: rmm_opamp::capabilities::agent::ALL_KNOWN,
        health: Some(health()),
        effective_config: Some(EffectiveConfig::new(config_map())),
        remote_config_status: Some(RemoteConfigStatus::failed(vec![1], "bad")),
        package_statuses: Some(PackageStatuses {
            packages: BTreeMap::from([(
                "p".to_owned(),
                PackageStatus {
                    name: "p".into(),
                    agent_has_version: "1".into(),
                    agent_has_hash: vec![1],
                    server_offered_version: "2".into(),
                    server_offered_hash: vec![2],
                    status: PackageStatusEnum::Downloading as i32,
                    error_message: "".into(),
                    download_details: Some(PackageDownloadDetails {
                        download_percent: 99.9,
                        download_bytes_per_second: 1e9,
                    }),
                },
            )]),
            server_provided_all_packages_hash: vec![3],
            error_message: "m".into(),
        }),
        agent_disconnect: Some(AgentDisconnect {}),
        flags: 1,
        connection_settings_request: Some(ConnectionSettingsRequest {
            opamp: Some(OpAmpConnectionSettingsRequest {
                certificate_request: Some(CertificateRequest {
                    csr: b"CSR".to_vec(),
                }),
            }),
        }),
        custom_capabilities: Some(CustomCapabilities {
            capabilities: vec!["a.b".into()],
        }),
        custom_message: Some(CustomMessage {
            capability: "a.b".into(),
            r#type: "t".into(),
            data: vec![0],
        }),
        available_components: Some(components()),
        connection_settings_status: Some(ConnectionSettingsStatus::failed(vec![7], "no route")),
    }
}

fn connection_settings_all() -> ConnectionSettingsOffers {
    let telemetry = TelemetryConnectionSettings {
        destination_endpoint: "https://o/v1/metrics".into(),
        headers: Some(headers()),
        certificate: Some(cert()),
        tls: Some(tls()),
        proxy: Some(proxy()),
    };
    ConnectionSettingsOffers {
        hash: vec![],
        opamp: Some(OpAmpConnectionSettings {
            destination_endpoint: "wss://cp/v1/opamp".into(),
            headers: Some(headers()),
            certificate: Some(cert()),
            heartbeat_interval_seconds: 15,
            tls: Some(tls()),
            proxy: Some(proxy()),
        }),
        own_metrics: Some(telemetry.clone()),
        own_traces: Some(telemetry.clone()),
        own_logs: Some(telemetry),
        other_connections: BTreeMap::from([(
            "db".to_owned(),
            OtherConnectionSettings {
                destination_endpoint: "tcp://db".into(),
                headers: Some(headers()),
                certificate: Some(cert()),
                other_settings: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
                tls: Some(tls()),
                proxy: Some(proxy()),
            },
        )]),
    }
    .with_hash()
}

fn server_to_agent_all() -> ServerToAgent {
    ServerToAgent::builder([2u8; 16])
        .capabilities(rmm_opamp::capabilities::server::ALL_KNOWN)
        .report_full_state()
        .report_available_components()
        .remote_config(AgentRemoteConfig::new(config_map()))
        .connection_settings(connection_settings_all())
        .packages_available(PackagesAvailable::new([
            (
                "",
                PackageAvailable::new(
                    PackageType::TopLevel,
                    "1.0",
                    DownloadableFile::new("https://p/a.tgz", vec![0; 32]),
                ),
            ),
            (
                "addon",
                PackageAvailable::new(
                    PackageType::Addon,
                    "0.1",
                    DownloadableFile {
                        signature: b"sig".to_vec(),
                        ..DownloadableFile::new("https://p/b.tgz", vec![1; 32])
                            .with_headers(headers())
                    },
                ),
            ),
        ]))
        .new_instance_uid(rmm_opamp::InstanceUid::from_array([3; 16]))
        .custom_capabilities(CustomCapabilities {
            capabilities: vec!["x.y".into()],
        })
        .custom_message(CustomMessage {
            capability: "x.y".into(),
            r#type: "z".into(),
            data: b"d".to_vec(),
        })
        .build()
}

#[test]
fn every_message_type_round_trips() {
    let a2s = agent_to_server_all();
    let s2a = server_to_agent_all();
    let cs = connection_settings_all();
    // Top-level and every nested message, each fully populated.
    roundtrip(&a2s);
    roundtrip(&s2a);
    roundtrip(&AgentToServer::default());
    roundtrip(&ServerToAgent::default());
    roundtrip(a2s.agent_description.as_ref().unwrap());
    roundtrip(a2s.health.as_ref().unwrap());
    roundtrip(a2s.effective_config.as_ref().unwrap());
    roundtrip(a2s.remote_config_status.as_ref().unwrap());
    let ps = a2s.package_statuses.as_ref().unwrap();
    roundtrip(ps);
    roundtrip(&ps.packages["p"]);
    roundtrip(ps.packages["p"].download_details.as_ref().unwrap());
    roundtrip(a2s.agent_disconnect.as_ref().unwrap());
    let csr = a2s.connection_settings_request.as_ref().unwrap();
    roundtrip(csr);
    roundtrip(csr.opamp.as_ref().unwrap());
    roundtrip(
        csr.opamp
            .as_ref()
            .unwrap()
            .certificate_request
            .as_ref()
            .unwrap(),
    );
    roundtrip(a2s.custom_capabilities.as_ref().unwrap());
    roundtrip(a2s.custom_message.as_ref().unwrap());
    let ac = a2s.available_components.as_ref().unwrap();
    roundtrip(ac);
    roundtrip(&ac.components["receivers"]);
    roundtrip(a2s.connection_settings_status.as_ref().unwrap());
    for kv in kvs() {
        roundtrip(&kv);
        if let Some(v) = &kv.value {
            roundtrip(v);
        }
    }
    roundtrip(&ArrayValue {
        values: vec![AnyValue::default(), AnyValue::from(false)],
    });
    roundtrip(&KeyValueList { values: kvs() });
    roundtrip(s2a.remote_config.as_ref().unwrap());
    roundtrip(s2a.remote_config.as_ref().unwrap().config.as_ref().unwrap());
    roundtrip(&config_map().config_map[""]);
    roundtrip(&cs);
    roundtrip(cs.opamp.as_ref().unwrap());
    roundtrip(cs.own_metrics.as_ref().unwrap());
    roundtrip(&cs.other_connections["db"]);
    roundtrip(&headers());
    roundtrip(&headers().headers[0]);
    roundtrip(&cert());
    roundtrip(&tls());
    roundtrip(&proxy());
    let pa = s2a.packages_available.as_ref().unwrap();
    roundtrip(pa);
    roundtrip(&pa.packages["addon"]);
    roundtrip(pa.packages["addon"].file.as_ref().unwrap());
    roundtrip(s2a.agent_identification.as_ref().unwrap());
    let err =
        ServerToAgent::unavailable([2u8; 16], "busy", Some(std::time::Duration::from_secs(1)));
    roundtrip(&err);
    roundtrip(err.error_response.as_ref().unwrap());
    roundtrip(&RetryInfo {
        retry_after_nanoseconds: 1,
    });
    let cmd = ServerToAgent::restart_command([2u8; 16], 1);
    roundtrip(&cmd);
    roundtrip(&ServerToAgentCommand { r#type: 5 });
}

#[test]
fn fields_added_after_v0_12_have_spec_numbers() {
    use WireType::{LengthDelimited as L, Varint as V};
    assert_eq!(
        only_tag(&ComponentHealth {
            attributes: vec![KeyValue::new("k", "v")],
            ..Default::default()
        }),
        (7, L)
    );
    assert_eq!(
        only_tag(&AgentToServer {
            connection_settings_status: Some(ConnectionSettingsStatus::default()),
            ..Default::default()
        }),
        (15, L)
    );
    let t = TlsConnectionSettings::default;
    assert_eq!(
        only_tag(&TlsConnectionSettings {
            ca_pem_contents: "x".into(),
            ..t()
        }),
        (1, L)
    );
    assert_eq!(
        only_tag(&TlsConnectionSettings {
            include_system_ca_certs_pool: true,
            ..t()
        }),
        (2, V)
    );
    assert_eq!(
        only_tag(&TlsConnectionSettings {
            insecure_skip_verify: true,
            ..t()
        }),
        (3, V)
    );
    assert_eq!(
        only_tag(&TlsConnectionSettings {
            min_version: "1".into(),
            ..t()
        }),
        (4, L)
    );
    assert_eq!(
        only_tag(&TlsConnectionSettings {
            max_version: "1".into(),
            ..t()
        }),
        (5, L)
    );
    assert_eq!(
        only_tag(&TlsConnectionSettings {
            cipher_suites: vec!["c".into()],
            ..t()
        }),
        (6, L)
    );
    assert_eq!(
        only_tag(&ProxyConnectionSettings {
            url: "u".into(),
            ..Default::default()
        }),
        (1, L)
    );
    assert_eq!(
        only_tag(&ProxyConnectionSettings {
            connect_headers: Some(Headers::default()),
            ..Default::default()
        }),
        (2, L)
    );
    assert_eq!(
        only_tag(&OpAmpConnectionSettings {
            tls: Some(t()),
            ..Default::default()
        }),
        (5, L)
    );
    assert_eq!(
        only_tag(&OpAmpConnectionSettings {
            proxy: Some(ProxyConnectionSettings::default()),
            ..Default::default()
        }),
        (6, L)
    );
    assert_eq!(
        only_tag(&TelemetryConnectionSettings {
            tls: Some(t()),
            ..Default::default()
        }),
        (4, L)
    );
    assert_eq!(
        only_tag(&TelemetryConnectionSettings {
            proxy: Some(ProxyConnectionSettings::default()),
            ..Default::default()
        }),
        (5, L)
    );
    assert_eq!(
        only_tag(&OtherConnectionSettings {
            tls: Some(t()),
            ..Default::default()
        }),
        (5, L)
    );
    assert_eq!(
        only_tag(&OtherConnectionSettings {
            proxy: Some(ProxyConnectionSettings::default()),
            ..Default::default()
        }),
        (6, L)
    );
    let cs = ConnectionSettingsStatus::default;
    assert_eq!(
        only_tag(&ConnectionSettingsStatus {
            last_connection_settings_hash: vec![1],
            ..cs()
        }),
        (1, L)
    );
    assert_eq!(
        only_tag(&ConnectionSettingsStatus { status: 1, ..cs() }),
        (2, V)
    );
    assert_eq!(
        only_tag(&ConnectionSettingsStatus {
            error_message: "e".into(),
            ..cs()
        }),
        (3, L)
    );
    // Zero-valued ConnectionSettingsStatuses / enums are absent on the wire.
    assert_eq!(ConnectionSettingsStatus::default().encoded_len(), 0);
}

#[test]
fn unknown_fields_are_skipped() {
    // A future field 99 (varint) and 100 (bytes) in front of a known field.
    let mut bytes = vec![0x98, 0x06, 0x01, 0xa2, 0x06, 0x02, 0xaa, 0xbb];
    bytes.extend(
        AgentToServer {
            sequence_num: 5,
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let m = AgentToServer::decode(bytes.as_slice()).unwrap();
    assert_eq!(m.sequence_num, 5);
    // Unknown enum values survive a round trip.
    let p = PackageStatus {
        status: 77,
        ..Default::default()
    };
    roundtrip(&p);
    assert_eq!(p.state(), rmm_opamp::PackageState::Unknown(77));
}

#[test]
fn enum_names_match_the_proto() {
    assert_eq!(
        AgentCapabilities::AcceptsOpAmpConnectionSettings.as_str_name(),
        "AgentCapabilities_AcceptsOpAMPConnectionSettings"
    );
    assert_eq!(
        RemoteConfigStatuses::from_str_name("RemoteConfigStatuses_APPLYING"),
        Some(RemoteConfigStatuses::Applying)
    );
    assert_eq!(
        ConnectionSettingsStatuses::Failed.as_str_name(),
        "ConnectionSettingsStatuses_FAILED"
    );
    for e in PackageStatusEnum::ALL {
        assert_eq!(PackageStatusEnum::from_str_name(e.as_str_name()), Some(*e));
        assert_eq!(PackageStatusEnum::try_from(*e as i32), Ok(*e));
    }
    assert_eq!(CommandType::ALL, &[CommandType::Restart]);
    assert_eq!(
        ServerErrorResponseType::try_from(2),
        Ok(ServerErrorResponseType::Unavailable)
    );
    assert_eq!(PackageType::default(), PackageType::TopLevel);
}
