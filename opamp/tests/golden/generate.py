#!/usr/bin/env python3
"""Generate golden OpAMP message bytes with an independent implementation.

The bytes come from the protobuf classes generated for the OpenTelemetry Python
OpAMP client (`opentelemetry-opamp-client` on PyPI, module
`opentelemetry._opamp.proto.opamp_pb2`, generated from opamp-spec v0.12.0).
Fields added to the spec after v0.12.0 (ComponentHealth.attributes,
ConnectionSettingsStatus, TLS/proxy settings, ...) do not exist there; the Rust
crate covers those with round-trip tests.

Usage (from the repository root):

    python3 -m venv /tmp/opamp-venv
    /tmp/opamp-venv/bin/pip install opentelemetry-opamp-client
    /tmp/opamp-venv/bin/python opamp/tests/golden/generate.py          # (re)write
    /tmp/opamp-venv/bin/python opamp/tests/golden/generate.py --check  # verify

The committed .bin files were generated with opentelemetry-opamp-client 0.5b0
and protobuf 7.36.2 (upb backend).

Every message is serialized with `deterministic=True` (map entries sorted by
key), which matches the Rust crate's BTreeMap encoding, so the Rust test can
re-encode each decoded message to identical bytes. The expected field values are
mirrored in `opamp/tests/golden.rs`; keep both in sync.
"""

import os
import sys

from opentelemetry._opamp.proto import anyvalue_pb2 as av
from opentelemetry._opamp.proto import opamp_pb2 as pb

OUT = os.path.dirname(os.path.abspath(__file__))

UID = bytes(range(0x10, 0x20))  # 16 bytes: 10 11 .. 1f
NEW_UID = bytes(range(0xA0, 0xB0))


# --- AnyValue family -------------------------------------------------------


def kv(key, **value):
    return av.KeyValue(key=key, value=av.AnyValue(**value))


def any_array():
    return av.ArrayValue(
        values=[
            av.AnyValue(string_value="a"),
            av.AnyValue(int_value=2),
            av.AnyValue(array_value=av.ArrayValue(values=[av.AnyValue(bool_value=True)])),
        ]
    )


def any_kvlist():
    return av.KeyValueList(
        values=[
            kv("k1", string_value="v1"),
            kv("k2", double_value=0.5),
            av.KeyValue(key="empty"),
        ]
    )


# --- agent side ------------------------------------------------------------


def agent_description():
    return pb.AgentDescription(
        identifying_attributes=[
            kv("service.name", string_value="io.opentelemetry.python"),
            kv("service.version", string_value="1.2.3"),
            kv("service.instance.id", string_value="10111213-1415-1617-1819-1a1b1c1d1e1f"),
        ],
        non_identifying_attributes=[
            kv("os.type", string_value="linux"),
            kv("host.cpu.count", int_value=4),
            kv("debug", bool_value=False),
        ],
    )


def component_health():
    h = pb.ComponentHealth(
        healthy=False,
        start_time_unix_nano=1_700_000_000_000_000_000,
        last_error="exporter down",
        status="degraded",
        status_time_unix_nano=1_700_000_001_000_000_000,
    )
    h.component_health_map["receiver/otlp"].CopyFrom(
        pb.ComponentHealth(healthy=True, status="ok", start_time_unix_nano=5)
    )
    h.component_health_map["exporter/otlp"].CopyFrom(
        pb.ComponentHealth(healthy=False, last_error="connection refused")
    )
    return h


def agent_config_file():
    return pb.AgentConfigFile(body=b"receivers: {}\n", content_type="text/yaml")


def agent_config_map(name="main.yaml"):
    # Single-file agents may use the key "" (see NON_CANONICAL below).
    m = pb.AgentConfigMap()
    m.config_map[name].CopyFrom(agent_config_file())
    m.config_map["extra.json"].CopyFrom(
        pb.AgentConfigFile(body=b'{"a":1}', content_type="application/json")
    )
    return m


def effective_config():
    return pb.EffectiveConfig(config_map=agent_config_map())


def remote_config_status():
    return pb.RemoteConfigStatus(
        last_remote_config_hash=b"\x01\x02\x03",
        status=pb.RemoteConfigStatuses_FAILED,
        error_message="bad yaml",
    )


def package_download_details():
    return pb.PackageDownloadDetails(download_percent=42.5, download_bytes_per_second=1024.0)


def package_status():
    return pb.PackageStatus(
        name="addon",
        agent_has_version="1.0.0",
        agent_has_hash=b"\xaa\xbb",
        server_offered_version="1.1.0",
        server_offered_hash=b"\xcc\xdd",
        status=pb.PackageStatusEnum_Downloading,
        error_message="",
        download_details=package_download_details(),
    )


def package_statuses():
    s = pb.PackageStatuses(
        server_provided_all_packages_hash=b"\x09\x08",
        error_message="partial",
    )
    s.packages["addon"].CopyFrom(package_status())
    # Installed is the zero value: only the entry's presence says so.
    s.packages["top"].CopyFrom(
        pb.PackageStatus(name="top", agent_has_version="2.0.0", agent_has_hash=b"\x01")
    )
    return s


def certificate_request():
    return pb.CertificateRequest(csr=b"-----BEGIN CERTIFICATE REQUEST-----\n")


def opamp_connection_settings_request():
    return pb.OpAMPConnectionSettingsRequest(certificate_request=certificate_request())


def connection_settings_request():
    return pb.ConnectionSettingsRequest(opamp=opamp_connection_settings_request())


def custom_capabilities():
    return pb.CustomCapabilities(capabilities=["com.example.foo", "com.example.bar"])


def custom_message():
    return pb.CustomMessage(capability="com.example.foo", type="ping", data=b"\x00\x01")


def component_details():
    d = pb.ComponentDetails(metadata=[kv("code.namespace", string_value="otlp")])
    d.sub_component_map["grpc"].CopyFrom(
        pb.ComponentDetails(metadata=[kv("port", int_value=4317)])
    )
    return d


def available_components(with_empty_value=False):
    c = pb.AvailableComponents(hash=b"\x77\x88")
    c.components["receivers"].CopyFrom(component_details())
    if with_empty_value:
        c.components["exporters"].CopyFrom(pb.ComponentDetails())
    else:
        c.components["exporters"].CopyFrom(
            pb.ComponentDetails(metadata=[kv("count", int_value=0)])
        )
    return c


def agent_to_server_full():
    return pb.AgentToServer(
        instance_uid=UID,
        sequence_num=7,
        agent_description=agent_description(),
        capabilities=0x3007,
        health=component_health(),
        effective_config=effective_config(),
        remote_config_status=remote_config_status(),
        package_statuses=package_statuses(),
        flags=pb.AgentToServerFlags_RequestInstanceUid,
        connection_settings_request=connection_settings_request(),
        custom_capabilities=custom_capabilities(),
        custom_message=custom_message(),
        available_components=available_components(),
    )


def agent_to_server_heartbeat():
    # sequence_num 0 (the Python client's first value) is absent on the wire.
    return pb.AgentToServer(instance_uid=UID, sequence_num=0, capabilities=0x2001)


def agent_to_server_disconnect():
    return pb.AgentToServer(
        instance_uid=UID,
        sequence_num=12,
        capabilities=0x2001,
        agent_disconnect=pb.AgentDisconnect(),
    )


# --- server side -----------------------------------------------------------


def headers():
    return pb.Headers(
        headers=[
            pb.Header(key="Authorization", value="Bearer s3cret"),
            pb.Header(key="X-Tenant", value="t1"),
        ]
    )


def header():
    return pb.Header(key="Authorization", value="Bearer s3cret")


def tls_certificate():
    return pb.TLSCertificate(cert=b"CERT", private_key=b"KEY", ca_cert=b"CA")


def opamp_connection_settings():
    return pb.OpAMPConnectionSettings(
        destination_endpoint="wss://cp.example:4320/v1/opamp",
        headers=headers(),
        certificate=tls_certificate(),
        heartbeat_interval_seconds=30,
    )


def telemetry_connection_settings():
    return pb.TelemetryConnectionSettings(
        destination_endpoint="https://otlp.example/v1/metrics",
        headers=pb.Headers(headers=[pb.Header(key="api-key", value="k")]),
        certificate=pb.TLSCertificate(ca_cert=b"CA"),
    )


def other_connection_settings():
    o = pb.OtherConnectionSettings(
        destination_endpoint="tcp://db:5432",
        headers=pb.Headers(),
        certificate=pb.TLSCertificate(cert=b"C"),
    )
    o.other_settings["user"] = "agent"
    o.other_settings["mode"] = "ro"
    return o


def connection_settings_offers():
    o = pb.ConnectionSettingsOffers(
        hash=b"\x5a" * 4,
        opamp=opamp_connection_settings(),
        own_metrics=telemetry_connection_settings(),
        own_traces=pb.TelemetryConnectionSettings(destination_endpoint="https://otlp.example/v1/traces"),
        own_logs=pb.TelemetryConnectionSettings(destination_endpoint="https://otlp.example/v1/logs"),
    )
    o.other_connections["db"].CopyFrom(other_connection_settings())
    return o


def downloadable_file():
    return pb.DownloadableFile(
        download_url="https://pkg.example/addon-1.1.0.tgz",
        content_hash=bytes(range(32)),
        signature=b"SIG",
        headers=pb.Headers(headers=[pb.Header(key="Authorization", value="Bearer dl")]),
    )


def package_available():
    return pb.PackageAvailable(
        type=pb.PackageType_Addon,
        version="1.1.0",
        file=downloadable_file(),
        hash=b"\x42\x43",
    )


def packages_available(top_level_name="agent"):
    p = pb.PackagesAvailable(all_packages_hash=b"\xee\xff")
    p.packages["addon"].CopyFrom(package_available())
    # TopLevel is the zero value; the top-level package may be named "".
    p.packages[top_level_name].CopyFrom(
        pb.PackageAvailable(
            version="2.0.0",
            file=pb.DownloadableFile(download_url="https://pkg.example/agent.tgz"),
            hash=b"\x01",
        )
    )
    return p


def agent_remote_config():
    return pb.AgentRemoteConfig(config=agent_config_map(), config_hash=b"\x01\x02\x03")


def agent_identification():
    return pb.AgentIdentification(new_instance_uid=NEW_UID)


def retry_info():
    return pb.RetryInfo(retry_after_nanoseconds=30_000_000_000)


def server_error_response():
    return pb.ServerErrorResponse(
        type=pb.ServerErrorResponseType_Unavailable,
        error_message="try later",
        retry_info=retry_info(),
    )


def server_to_agent_command():
    # Restart is the zero value: an empty but present message.
    return pb.ServerToAgentCommand(type=pb.CommandType_Restart)


def server_to_agent_full():
    return pb.ServerToAgent(
        instance_uid=UID,
        remote_config=agent_remote_config(),
        connection_settings=connection_settings_offers(),
        packages_available=packages_available(),
        flags=pb.ServerToAgentFlags_ReportFullState | pb.ServerToAgentFlags_ReportAvailableComponents,
        capabilities=0x7F,
        agent_identification=agent_identification(),
        custom_capabilities=custom_capabilities(),
        custom_message=custom_message(),
    )


def server_to_agent_error():
    return pb.ServerToAgent(instance_uid=UID, error_response=server_error_response())


def server_to_agent_bad_request():
    return pb.ServerToAgent(
        instance_uid=UID,
        error_response=pb.ServerErrorResponse(
            type=pb.ServerErrorResponseType_BadRequest, error_message="bad"
        ),
    )


def server_to_agent_command_restart():
    return pb.ServerToAgent(
        instance_uid=UID, capabilities=0x1, command=server_to_agent_command()
    )


def server_to_agent_ack():
    return pb.ServerToAgent(instance_uid=UID)


MESSAGES = {
    # AnyValue family
    "any_value_string": av.AnyValue(string_value="héllo"),
    "any_value_bool_false": av.AnyValue(bool_value=False),
    "any_value_int": av.AnyValue(int_value=-42),
    "any_value_double": av.AnyValue(double_value=3.25),
    "any_value_bytes": av.AnyValue(bytes_value=b"\x00\xff"),
    "any_value_array": av.AnyValue(array_value=any_array()),
    "any_value_kvlist": av.AnyValue(kvlist_value=any_kvlist()),
    "any_value_empty": av.AnyValue(),
    "array_value": any_array(),
    "key_value_list": any_kvlist(),
    "key_value": kv("service.name", string_value="x"),
    # agent to server
    "agent_to_server_full": agent_to_server_full(),
    "agent_to_server_heartbeat": agent_to_server_heartbeat(),
    "agent_to_server_disconnect": agent_to_server_disconnect(),
    "agent_disconnect": pb.AgentDisconnect(),
    "agent_description": agent_description(),
    "component_health": component_health(),
    "effective_config": effective_config(),
    "remote_config_status": remote_config_status(),
    "package_statuses": package_statuses(),
    "package_status": package_status(),
    "package_download_details": package_download_details(),
    "connection_settings_request": connection_settings_request(),
    "opamp_connection_settings_request": opamp_connection_settings_request(),
    "certificate_request": certificate_request(),
    "custom_capabilities": custom_capabilities(),
    "custom_message": custom_message(),
    "available_components": available_components(),
    "available_components_empty_value": available_components(with_empty_value=True),
    "component_details": component_details(),
    # server to agent
    "server_to_agent_full": server_to_agent_full(),
    "server_to_agent_error": server_to_agent_error(),
    "server_to_agent_bad_request": server_to_agent_bad_request(),
    "server_to_agent_command": server_to_agent_command_restart(),
    "server_to_agent_ack": server_to_agent_ack(),
    "server_error_response": server_error_response(),
    "retry_info": retry_info(),
    "server_to_agent_command_msg": server_to_agent_command(),
    "agent_identification": agent_identification(),
    "agent_remote_config": agent_remote_config(),
    "agent_config_map": agent_config_map(),
    "agent_config_map_empty_key": agent_config_map(name=""),
    "agent_config_file": agent_config_file(),
    "connection_settings_offers": connection_settings_offers(),
    "opamp_connection_settings": opamp_connection_settings(),
    "telemetry_connection_settings": telemetry_connection_settings(),
    "other_connection_settings": other_connection_settings(),
    "headers": headers(),
    "header": header(),
    "tls_certificate": tls_certificate(),
    "packages_available": packages_available(),
    "packages_available_empty_key": packages_available(top_level_name=""),
    "package_available": package_available(),
    "downloadable_file": downloadable_file(),
}


# Files whose bytes a conforming encoder may legitimately produce differently:
# this implementation (upb) always writes map-entry key and value fields, even
# when they hold default values (empty key "", empty message), and its
# deterministic order puts the key "" last. prost omits default map-entry
# fields and sorts "" first. Both decode to the same message; the Rust test
# checks decoding exactly and re-encoding semantically for these.
NON_CANONICAL = {
    "agent_config_map_empty_key",
    "available_components_empty_value",
    "packages_available_empty_key",
}


def main():
    check = "--check" in sys.argv[1:]
    if not check:
        for old in os.listdir(OUT):
            if old.endswith(".bin"):
                os.remove(os.path.join(OUT, old))
    stale = []
    for name, msg in MESSAGES.items():
        data = msg.SerializeToString(deterministic=True)
        # Sanity: the independent implementation parses its own bytes back.
        again = type(msg)()
        again.ParseFromString(data)
        assert again == msg, name
        path = os.path.join(OUT, name + ".bin")
        if check:
            try:
                with open(path, "rb") as f:
                    if f.read() != data:
                        stale.append(name)
            except FileNotFoundError:
                stale.append(name)
        else:
            with open(path, "wb") as f:
                f.write(data)
    if check:
        if stale:
            print("stale golden files: " + ", ".join(stale), file=sys.stderr)
            sys.exit(1)
        print(f"{len(MESSAGES)} golden files up to date", file=sys.stderr)
    else:
        print(f"wrote {len(MESSAGES)} golden files to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
