//! Golden tests: bytes produced by an independent implementation (the protobuf
//! classes of the OpenTelemetry Python OpAMP client, opamp-spec v0.12.0; see
//! `tests/golden/generate.py`) must decode to exactly the expected values, and
//! re-encode to identical bytes (the generator serializes deterministically,
//! matching this crate's sorted-map encoding).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use prost::Message;
use rmm_opamp::proto::*;
use rmm_opamp::typed::{ApplyState, Command, PackageKind, PackageState, ServerErrorKind};
use rmm_opamp::{capabilities, InstanceUid};

const UID: [u8; 16] = [
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
];
const NEW_UID: [u8; 16] = [
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
];

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn read(name: &str) -> Vec<u8> {
    let path = golden_dir().join(format!("{name}.bin"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Golden files whose bytes differ legitimately from prost's encoding (see
/// `NON_CANONICAL` in generate.py): the Python implementation writes map-entry
/// key/value fields even when they hold defaults (key `""`, empty message) and
/// orders the key `""` last. For these, decoding is checked exactly and
/// re-encoding semantically.
const NON_CANONICAL: &[&str] = &[
    "agent_config_map_empty_key",
    "available_components_empty_value",
    "packages_available_empty_key",
];

/// Decodes the golden file, compares with `expected`, re-encodes, compares bytes.
fn check<M: Message + Default + PartialEq + std::fmt::Debug>(name: &str, expected: &M) -> M {
    let bytes = read(name);
    let decoded = M::decode(bytes.as_slice()).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(&decoded, expected, "{name}: decoded value differs");
    let reencoded = decoded.encode_to_vec();
    if NON_CANONICAL.contains(&name) {
        assert_ne!(
            reencoded, bytes,
            "{name} is canonical now: drop it from NON_CANONICAL"
        );
        assert_eq!(
            &M::decode(reencoded.as_slice()).unwrap(),
            expected,
            "{name}"
        );
    } else {
        assert_eq!(
            reencoded, bytes,
            "{name}: re-encoding differs from the independent implementation"
        );
    }
    decoded
}

// --- AnyValue family ------------------------------------------------------

fn av(v: any_value::Value) -> AnyValue {
    AnyValue { value: Some(v) }
}

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(av(v)),
    }
}

use any_value::Value as V;

fn any_array() -> ArrayValue {
    ArrayValue {
        values: vec![
            av(V::StringValue("a".into())),
            av(V::IntValue(2)),
            av(V::ArrayValue(ArrayValue {
                values: vec![av(V::BoolValue(true))],
            })),
        ],
    }
}

fn any_kvlist() -> KeyValueList {
    KeyValueList {
        values: vec![
            kv("k1", V::StringValue("v1".into())),
            kv("k2", V::DoubleValue(0.5)),
            KeyValue {
                key: "empty".into(),
                value: None,
            },
        ],
    }
}

// --- agent side -----------------------------------------------------------

fn agent_description() -> AgentDescription {
    AgentDescription {
        identifying_attributes: vec![
            kv(
                "service.name",
                V::StringValue("io.opentelemetry.python".into()),
            ),
            kv("service.version", V::StringValue("1.2.3".into())),
            kv(
                "service.instance.id",
                V::StringValue("10111213-1415-1617-1819-1a1b1c1d1e1f".into()),
            ),
        ],
        non_identifying_attributes: vec![
            kv("os.type", V::StringValue("linux".into())),
            kv("host.cpu.count", V::IntValue(4)),
            kv("debug", V::BoolValue(false)),
        ],
    }
}

fn component_health() -> ComponentHealth {
    ComponentHealth {
        healthy: false,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        last_error: "exporter down".into(),
        status: "degraded".into(),
        status_time_unix_nano: 1_700_000_001_000_000_000,
        component_health_map: BTreeMap::from([
            (
                "receiver/otlp".to_owned(),
                ComponentHealth {
                    healthy: true,
                    status: "ok".into(),
                    start_time_unix_nano: 5,
                    ..Default::default()
                },
            ),
            (
                "exporter/otlp".to_owned(),
                ComponentHealth {
                    healthy: false,
                    last_error: "connection refused".into(),
                    ..Default::default()
                },
            ),
        ]),
        attributes: vec![],
    }
}

fn agent_config_file() -> AgentConfigFile {
    AgentConfigFile {
        body: b"receivers: {}\n".to_vec(),
        content_type: "text/yaml".into(),
    }
}

fn agent_config_map(name: &str) -> AgentConfigMap {
    AgentConfigMap {
        config_map: BTreeMap::from([
            (name.to_owned(), agent_config_file()),
            (
                "extra.json".to_owned(),
                AgentConfigFile {
                    body: br#"{"a":1}"#.to_vec(),
                    content_type: "application/json".into(),
                },
            ),
        ]),
    }
}

fn effective_config() -> EffectiveConfig {
    EffectiveConfig {
        config_map: Some(agent_config_map("main.yaml")),
    }
}

fn remote_config_status() -> RemoteConfigStatus {
    RemoteConfigStatus {
        last_remote_config_hash: vec![1, 2, 3],
        status: RemoteConfigStatuses::Failed as i32,
        error_message: "bad yaml".into(),
    }
}

fn package_download_details() -> PackageDownloadDetails {
    PackageDownloadDetails {
        download_percent: 42.5,
        download_bytes_per_second: 1024.0,
    }
}

fn package_status() -> PackageStatus {
    PackageStatus {
        name: "addon".into(),
        agent_has_version: "1.0.0".into(),
        agent_has_hash: vec![0xaa, 0xbb],
        server_offered_version: "1.1.0".into(),
        server_offered_hash: vec![0xcc, 0xdd],
        status: PackageStatusEnum::Downloading as i32,
        error_message: String::new(),
        download_details: Some(package_download_details()),
    }
}

fn package_statuses() -> PackageStatuses {
    PackageStatuses {
        packages: BTreeMap::from([
            ("addon".to_owned(), package_status()),
            (
                "top".to_owned(),
                PackageStatus {
                    name: "top".into(),
                    agent_has_version: "2.0.0".into(),
                    agent_has_hash: vec![1],
                    ..Default::default()
                },
            ),
        ]),
        server_provided_all_packages_hash: vec![9, 8],
        error_message: "partial".into(),
    }
}

fn certificate_request() -> CertificateRequest {
    CertificateRequest {
        csr: b"-----BEGIN CERTIFICATE REQUEST-----\n".to_vec(),
    }
}

fn opamp_connection_settings_request() -> OpAmpConnectionSettingsRequest {
    OpAmpConnectionSettingsRequest {
        certificate_request: Some(certificate_request()),
    }
}

fn connection_settings_request() -> ConnectionSettingsRequest {
    ConnectionSettingsRequest {
        opamp: Some(opamp_connection_settings_request()),
    }
}

fn custom_capabilities() -> CustomCapabilities {
    CustomCapabilities {
        capabilities: vec!["com.example.foo".into(), "com.example.bar".into()],
    }
}

fn custom_message() -> CustomMessage {
    CustomMessage {
        capability: "com.example.foo".into(),
        r#type: "ping".into(),
        data: vec![0, 1],
    }
}

fn component_details() -> ComponentDetails {
    ComponentDetails {
        metadata: vec![kv("code.namespace", V::StringValue("otlp".into()))],
        sub_component_map: BTreeMap::from([(
            "grpc".to_owned(),
            ComponentDetails {
                metadata: vec![kv("port", V::IntValue(4317))],
                ..Default::default()
            },
        )]),
    }
}

fn available_components(with_empty_value: bool) -> AvailableComponents {
    let exporters = if with_empty_value {
        ComponentDetails::default()
    } else {
        ComponentDetails {
            metadata: vec![kv("count", V::IntValue(0))],
            ..Default::default()
        }
    };
    AvailableComponents {
        components: BTreeMap::from([
            ("receivers".to_owned(), component_details()),
            ("exporters".to_owned(), exporters),
        ]),
        hash: vec![0x77, 0x88],
    }
}

fn agent_to_server_full() -> AgentToServer {
    AgentToServer {
        instance_uid: UID.to_vec(),
        sequence_num: 7,
        agent_description: Some(agent_description()),
        capabilities: 0x3007,
        health: Some(component_health()),
        effective_config: Some(effective_config()),
        remote_config_status: Some(remote_config_status()),
        package_statuses: Some(package_statuses()),
        agent_disconnect: None,
        flags: AgentToServerFlags::RequestInstanceUid.bit(),
        connection_settings_request: Some(connection_settings_request()),
        custom_capabilities: Some(custom_capabilities()),
        custom_message: Some(custom_message()),
        available_components: Some(available_components(false)),
        connection_settings_status: None,
    }
}

// --- server side ----------------------------------------------------------

fn header(k: &str, v: &str) -> Header {
    Header {
        key: k.into(),
        value: v.into(),
    }
}

fn headers() -> Headers {
    Headers {
        headers: vec![
            header("Authorization", "Bearer s3cret"),
            header("X-Tenant", "t1"),
        ],
    }
}

fn tls_certificate() -> TlsCertificate {
    TlsCertificate {
        cert: b"CERT".to_vec(),
        private_key: b"KEY".to_vec(),
        ca_cert: b"CA".to_vec(),
    }
}

fn opamp_connection_settings() -> OpAmpConnectionSettings {
    OpAmpConnectionSettings {
        destination_endpoint: "wss://cp.example:4320/v1/opamp".into(),
        headers: Some(headers()),
        certificate: Some(tls_certificate()),
        heartbeat_interval_seconds: 30,
        tls: None,
        proxy: None,
    }
}

fn telemetry_connection_settings() -> TelemetryConnectionSettings {
    TelemetryConnectionSettings {
        destination_endpoint: "https://otlp.example/v1/metrics".into(),
        headers: Some(Headers {
            headers: vec![header("api-key", "k")],
        }),
        certificate: Some(TlsCertificate {
            ca_cert: b"CA".to_vec(),
            ..Default::default()
        }),
        tls: None,
        proxy: None,
    }
}

fn other_connection_settings() -> OtherConnectionSettings {
    OtherConnectionSettings {
        destination_endpoint: "tcp://db:5432".into(),
        headers: Some(Headers::default()),
        certificate: Some(TlsCertificate {
            cert: b"C".to_vec(),
            ..Default::default()
        }),
        other_settings: BTreeMap::from([
            ("user".to_owned(), "agent".to_owned()),
            ("mode".to_owned(), "ro".to_owned()),
        ]),
        tls: None,
        proxy: None,
    }
}

fn connection_settings_offers() -> ConnectionSettingsOffers {
    ConnectionSettingsOffers {
        hash: vec![0x5a; 4],
        opamp: Some(opamp_connection_settings()),
        own_metrics: Some(telemetry_connection_settings()),
        own_traces: Some(TelemetryConnectionSettings::new(
            "https://otlp.example/v1/traces",
        )),
        own_logs: Some(TelemetryConnectionSettings::new(
            "https://otlp.example/v1/logs",
        )),
        other_connections: BTreeMap::from([("db".to_owned(), other_connection_settings())]),
    }
}

fn downloadable_file() -> DownloadableFile {
    DownloadableFile {
        download_url: "https://pkg.example/addon-1.1.0.tgz".into(),
        content_hash: (0u8..32).collect(),
        signature: b"SIG".to_vec(),
        headers: Some(Headers {
            headers: vec![header("Authorization", "Bearer dl")],
        }),
    }
}

fn package_available() -> PackageAvailable {
    PackageAvailable {
        r#type: PackageType::Addon as i32,
        version: "1.1.0".into(),
        file: Some(downloadable_file()),
        hash: vec![0x42, 0x43],
    }
}

fn packages_available(top_level_name: &str) -> PackagesAvailable {
    PackagesAvailable {
        packages: BTreeMap::from([
            ("addon".to_owned(), package_available()),
            (
                top_level_name.to_owned(),
                PackageAvailable {
                    version: "2.0.0".into(),
                    file: Some(DownloadableFile {
                        download_url: "https://pkg.example/agent.tgz".into(),
                        ..Default::default()
                    }),
                    hash: vec![1],
                    ..Default::default()
                },
            ),
        ]),
        all_packages_hash: vec![0xee, 0xff],
    }
}

fn agent_remote_config() -> AgentRemoteConfig {
    AgentRemoteConfig {
        config: Some(agent_config_map("main.yaml")),
        config_hash: vec![1, 2, 3],
    }
}

fn agent_identification() -> AgentIdentification {
    AgentIdentification {
        new_instance_uid: NEW_UID.to_vec(),
    }
}

fn retry_info() -> RetryInfo {
    RetryInfo {
        retry_after_nanoseconds: 30_000_000_000,
    }
}

fn server_error_response() -> ServerErrorResponse {
    ServerErrorResponse {
        r#type: ServerErrorResponseType::Unavailable as i32,
        error_message: "try later".into(),
        details: Some(server_error_response::Details::RetryInfo(retry_info())),
    }
}

fn server_to_agent_full() -> ServerToAgent {
    ServerToAgent {
        instance_uid: UID.to_vec(),
        error_response: None,
        remote_config: Some(agent_remote_config()),
        connection_settings: Some(connection_settings_offers()),
        packages_available: Some(packages_available("agent")),
        flags: capabilities::server_flags::REPORT_FULL_STATE
            | capabilities::server_flags::REPORT_AVAILABLE_COMPONENTS,
        capabilities: capabilities::server::ALL_KNOWN,
        agent_identification: Some(agent_identification()),
        command: None,
        custom_capabilities: Some(custom_capabilities()),
        custom_message: Some(custom_message()),
    }
}

// --- tests ----------------------------------------------------------------

#[test]
fn any_value_family() {
    check("any_value_string", &av(V::StringValue("héllo".into())));
    // A oneof member holding its default value is still present on the wire.
    let b = check("any_value_bool_false", &av(V::BoolValue(false)));
    assert_eq!(read("any_value_bool_false"), vec![0x10, 0x00]);
    assert_eq!(b.value, Some(V::BoolValue(false)));
    check("any_value_int", &av(V::IntValue(-42)));
    check("any_value_double", &av(V::DoubleValue(3.25)));
    check("any_value_bytes", &av(V::BytesValue(vec![0, 0xff])));
    check("any_value_array", &av(V::ArrayValue(any_array())));
    check("any_value_kvlist", &av(V::KvlistValue(any_kvlist())));
    let empty = check("any_value_empty", &AnyValue::default());
    assert_eq!(empty.value, None);
    check("array_value", &any_array());
    check("key_value_list", &any_kvlist());
    let k = check("key_value", &KeyValue::new("service.name", "x"));
    assert_eq!(k.value.unwrap().as_str(), Some("x"));
}

#[test]
fn agent_to_server_messages() {
    let full = check("agent_to_server_full", &agent_to_server_full());
    assert_eq!(full.uid().unwrap(), InstanceUid::from_array(UID));
    assert_eq!(
        full.uid().unwrap().to_string(),
        "10111213-1415-1617-1819-1a1b1c1d1e1f"
    );
    assert!(full.requests_instance_uid());
    assert!(full.has_capability(AgentCapabilities::ReportsHeartbeat));
    assert!(full.has_capability(AgentCapabilities::ReportsEffectiveConfig));
    assert!(!full.has_capability(AgentCapabilities::AcceptsPackages));
    assert_eq!(full.remote_config_state(), Some(ApplyState::Failed));
    assert_eq!(
        full.agent_description
            .as_ref()
            .unwrap()
            .string_attribute("service.name"),
        Some("io.opentelemetry.python")
    );
    let pkgs = &full.package_statuses.as_ref().unwrap().packages;
    assert_eq!(pkgs["addon"].state(), PackageState::Downloading);
    assert_eq!(pkgs["top"].state(), PackageState::Installed);
    assert!(!full.is_disconnect() && !full.is_heartbeat());

    let hb = check(
        "agent_to_server_heartbeat",
        &AgentToServer {
            instance_uid: UID.to_vec(),
            sequence_num: 0,
            capabilities: 0x2001,
            ..Default::default()
        },
    );
    assert!(hb.is_heartbeat());
    let bye = check(
        "agent_to_server_disconnect",
        &AgentToServer::disconnect(InstanceUid::from_array(UID), 12, 0x2001),
    );
    assert!(bye.is_disconnect());

    check("agent_disconnect", &AgentDisconnect {});
    check("agent_description", &agent_description());
    check("component_health", &component_health());
    check("effective_config", &effective_config());
    check("remote_config_status", &remote_config_status());
    check("package_statuses", &package_statuses());
    check("package_status", &package_status());
    check("package_download_details", &package_download_details());
    check(
        "connection_settings_request",
        &connection_settings_request(),
    );
    check(
        "opamp_connection_settings_request",
        &opamp_connection_settings_request(),
    );
    check("certificate_request", &certificate_request());
    check("custom_capabilities", &custom_capabilities());
    check("custom_message", &custom_message());
    check("available_components", &available_components(false));
    let c = check(
        "available_components_empty_value",
        &available_components(true),
    );
    assert_eq!(c.components["exporters"], ComponentDetails::default());
    check("component_details", &component_details());
}

#[test]
fn server_to_agent_messages() {
    let full = check("server_to_agent_full", &server_to_agent_full());
    assert!(full.report_full_state());
    assert!(full.report_available_components());
    assert!(full.has_capability(ServerCapabilities::AcceptsConnectionSettingsRequest));
    assert_eq!(
        full.new_instance_uid(),
        Some(Ok(InstanceUid::from_array(NEW_UID)))
    );
    assert_eq!(full.command_kind(), None);
    assert_eq!(full.server_error(), None);
    assert_eq!(full.check_exclusivity(), Ok(()));
    let pkgs = &full.packages_available.as_ref().unwrap().packages;
    assert_eq!(pkgs["addon"].kind(), PackageKind::Addon);
    assert_eq!(pkgs["agent"].kind(), PackageKind::TopLevel);
    let opamp = full
        .connection_settings
        .as_ref()
        .unwrap()
        .opamp
        .as_ref()
        .unwrap();
    assert_eq!(
        opamp.headers.as_ref().unwrap().bearer_token(),
        Some("s3cret")
    );
    assert_eq!(
        opamp.heartbeat_interval(),
        Some(std::time::Duration::from_secs(30))
    );

    let err = check(
        "server_to_agent_error",
        &ServerToAgent::unavailable(UID, "try later", Some(std::time::Duration::from_secs(30))),
    );
    let e = err.server_error().unwrap();
    assert_eq!(e.kind, ServerErrorKind::Unavailable);
    assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(30)));
    assert_eq!(err.check_exclusivity(), Ok(()));
    let bad = check(
        "server_to_agent_bad_request",
        &ServerToAgent::bad_request(UID, "bad"),
    );
    assert_eq!(
        bad.server_error().unwrap().kind,
        ServerErrorKind::BadRequest
    );

    // Restart is the zero value; the present-but-empty command message is the signal.
    let cmd = check(
        "server_to_agent_command",
        &ServerToAgent::restart_command(UID, 1),
    );
    assert_eq!(cmd.command_kind(), Some(Command::Restart));
    assert_eq!(read("server_to_agent_command_msg"), Vec::<u8>::new());
    check(
        "server_to_agent_command_msg",
        &ServerToAgentCommand::default(),
    );

    let ack = check("server_to_agent_ack", &ServerToAgent::ack(UID));
    assert_eq!(ack.command_kind(), None);

    check("server_error_response", &server_error_response());
    check("retry_info", &retry_info());
    check("agent_identification", &agent_identification());
    check("agent_remote_config", &agent_remote_config());
    check("agent_config_map", &agent_config_map("main.yaml"));
    // Single-file agents may use the key "".
    let m = check("agent_config_map_empty_key", &agent_config_map(""));
    assert_eq!(m.config_map[""].content_type, "text/yaml");
    check("agent_config_file", &agent_config_file());
    check("connection_settings_offers", &connection_settings_offers());
    check("opamp_connection_settings", &opamp_connection_settings());
    check(
        "telemetry_connection_settings",
        &telemetry_connection_settings(),
    );
    check("other_connection_settings", &other_connection_settings());
    check("headers", &headers());
    check("header", &header("Authorization", "Bearer s3cret"));
    check("tls_certificate", &tls_certificate());
    check("packages_available", &packages_available("agent"));
    let p = check("packages_available_empty_key", &packages_available(""));
    assert_eq!(p.packages[""].kind(), PackageKind::TopLevel);
    check("package_available", &package_available());
    check("downloadable_file", &downloadable_file());
}

/// Every golden file is covered by a test above (and the generator wrote them all).
#[test]
fn every_golden_file_is_checked() {
    let source = include_str!("golden.rs");
    let files: BTreeSet<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|n| n.strip_suffix(".bin").map(str::to_owned))
        .collect();
    assert_eq!(files.len(), 54, "generate.py writes 54 files");
    for name in files {
        assert!(
            source.contains(&format!("check(\n        \"{name}\""))
                || source.contains(&format!("check(\"{name}\"")),
            "golden file {name}.bin is not checked"
        );
    }
}

/// The golden bytes also pass through the framing layers unchanged.
#[test]
fn golden_through_transports() {
    let limits = rmm_opamp::Limits::default();
    let bytes = read("agent_to_server_full");
    let msg = rmm_opamp::http::decode_agent_to_server(&bytes, None, &limits).unwrap();
    assert_eq!(msg, agent_to_server_full());
    let gz = rmm_opamp::http::gzip_bytes(&bytes);
    let msg2 = rmm_opamp::http::decode_agent_to_server(&gz, Some("gzip"), &limits).unwrap();
    assert_eq!(msg2, msg);
    let frame = rmm_opamp::ws::encode(&msg);
    assert_eq!(frame[0], 0);
    assert_eq!(&frame[1..], bytes.as_slice());
    let bytes = read("server_to_agent_full");
    let mut frame = vec![0u8];
    frame.extend_from_slice(&bytes);
    assert_eq!(
        rmm_opamp::ws::decode_server_to_agent(&frame, &limits).unwrap(),
        server_to_agent_full()
    );
}
