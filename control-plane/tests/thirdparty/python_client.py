"""Drive the OpenTelemetry project's OpAMP client (opentelemetry-opamp-client) against a
control plane: plain HTTP, a bearer credential, a full status report, then heartbeats every
--interval seconds for --seconds, then stop() (which sends agent_disconnect).

Prints one JSON object per line on stdout: {"event": "start", "instance_uid": ...} first,
then "connect" (every answered request), "connect_failed", "error", "message", and "stop".

With remote config accepted (the client's default), every offered config is printed as a
"remote_config" event (hash and files) and answered with a RemoteConfigStatus: APPLIED, or
FAILED with a message when --config-result failed. --no-remote-config leaves
AcceptsRemoteConfig out of the capabilities.
"""

import argparse
import json
import sys
import time
import uuid

from opentelemetry._opamp.agent import OpAMPAgent
from opentelemetry._opamp.callbacks import OpAMPCallbacks
from opentelemetry._opamp.client import OpAMPClient
from opentelemetry._opamp.proto import opamp_pb2

CAPS = opamp_pb2.AgentCapabilities
NO_REMOTE_CONFIG = CAPS.AgentCapabilities_ReportsStatus | CAPS.AgentCapabilities_ReportsHeartbeat


def emit(**fields):
    print(json.dumps(fields), flush=True)


class Callbacks(OpAMPCallbacks):
    def __init__(self, config_result):
        self.config_result = config_result

    def on_connect(self, agent, client):
        emit(event="connect", sequence_num=client._sequence_num)

    def on_connect_failed(self, agent, client, error):
        emit(event="connect_failed", error=str(error))

    def on_error(self, agent, client, error_response):
        emit(event="error", type=int(error_response.type), message=error_response.error_message)

    def on_message(self, agent, client, message):
        emit(event="message", remote_config=message.remote_config is not None)
        rc = message.remote_config
        if rc is None:
            return
        files = {
            name: {"content_type": f.content_type, "body": f.body.decode("utf-8", "replace")}
            for name, f in rc.config.config_map.items()
        }
        emit(event="remote_config", hash=rc.config_hash.hex(), files=files)
        if self.config_result == "failed":
            status = client.update_remote_config_status(
                rc.config_hash,
                opamp_pb2.RemoteConfigStatuses_FAILED,
                "python test client refuses this config",
            )
        else:
            status = client.update_remote_config_status(
                rc.config_hash, opamp_pb2.RemoteConfigStatuses_APPLIED
            )
        if status is not None:
            agent.send(client.build_remote_config_status_response_message(status))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--endpoint", required=True, help="OpAMP URL, e.g. http://127.0.0.1:8080/v1/opamp")
    p.add_argument("--bearer", required=True, help="agent secret or enrollment token")
    p.add_argument("--interval", type=float, default=0.5, help="heartbeat interval, seconds")
    p.add_argument("--seconds", type=float, default=5.0, help="how long to keep the session")
    p.add_argument("--service-name", default="python-opamp-test")
    p.add_argument("--host-name", default="py-host")
    p.add_argument("--host-id", default="")
    p.add_argument("--instance-uid", default="", help="UUID to use instead of a random UUIDv7")
    p.add_argument("--no-remote-config", action="store_true", help="do not accept remote config")
    p.add_argument("--config-result", choices=["applied", "failed"], default="applied")
    args = p.parse_args()

    extra = {"capabilities": NO_REMOTE_CONFIG} if args.no_remote_config else {}
    client = OpAMPClient(
        **extra,
        endpoint=args.endpoint,
        headers={"Authorization": f"Bearer {args.bearer}"},
        agent_identifying_attributes={
            "service.name": args.service_name,
            "service.version": "0.5b0-test",
        },
        agent_non_identifying_attributes={
            "host.name": args.host_name,
            "host.id": args.host_id or args.host_name,
            "os.type": "linux",
            "host.arch": "amd64",
        },
    )
    if args.instance_uid:
        # The client has no option for it; the attribute is what it sends.
        client._instance_uid = uuid.UUID(args.instance_uid).bytes
    emit(event="start", instance_uid=str(uuid.UUID(bytes=client._instance_uid)))
    agent = OpAMPAgent(interval=args.interval, callbacks=Callbacks(args.config_result), client=client, max_retries=3)
    agent.start()
    time.sleep(args.seconds)
    agent.stop(timeout=5)
    emit(event="stop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
