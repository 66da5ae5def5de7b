// Drive Elastic's OpAMP client (@elastic/opamp-client-node) against a control plane: plain
// HTTP, a bearer credential, a description, heartbeats every --interval seconds for
// --seconds, then shutdown() (which sends agent_disconnect).
//
// Usage: node node_client.js --modules DIR --endpoint URL --bearer TOKEN
//          [--interval S] [--seconds S] [--host-name N] [--instance-uid UUID]
//          [--remote-config applied|failed]
// Prints one JSON object per line: "start" (instance uid), then "success" per answered
// request (with the ServerToAgent flags and any new instance uid), "fail", and "stop".
// With --remote-config the client declares AcceptsRemoteConfig and ReportsRemoteConfig, prints
// every offered config as "remote_config" (hash and files) and answers it APPLIED or FAILED.

'use strict';

const path = require('path');
const diagch = require('diagnostics_channel');

function parseArgs(argv) {
    const out = {interval: 0.5, seconds: 5, 'host-name': 'node-host'};
    for (let i = 2; i < argv.length; i += 2) {
        out[argv[i].replace(/^--/, '')] = argv[i + 1];
    }
    for (const k of ['modules', 'endpoint', 'bearer']) {
        if (!out[k]) {
            console.error(`missing --${k}`);
            process.exit(2);
        }
    }
    return out;
}

function emit(obj) {
    process.stdout.write(
        JSON.stringify(obj, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) + '\n'
    );
}

function uuidText(bytes) {
    const h = Buffer.from(bytes).toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

async function main() {
    const args = parseArgs(process.argv);
    const opamp = require(path.join(args.modules, '@elastic/opamp-client-node'));
    const silent = {};
    for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal']) {
        silent[level] = () => {};
    }
    silent.child = () => silent;
    const opts = {
        log: silent,
        endpoint: args.endpoint,
        headers: {Authorization: `Bearer ${args.bearer}`},
        heartbeatIntervalSeconds: Number(args.interval),
        diagEnabled: true,
    };
    const configResult = args['remote-config'];
    if (configResult) {
        opts.capabilities =
            opamp.AgentCapabilities.AgentCapabilities_AcceptsRemoteConfig |
            opamp.AgentCapabilities.AgentCapabilities_ReportsRemoteConfig;
        opts.onMessage = ({remoteConfig}) => {
            if (!remoteConfig) {
                return;
            }
            const files = {};
            for (const [name, f] of Object.entries(remoteConfig.config.configMap)) {
                files[name] = {
                    content_type: f.contentType,
                    body: Buffer.from(f.body).toString('utf8'),
                };
            }
            const hash = remoteConfig.configHash;
            emit({event: 'remote_config', hash: Buffer.from(hash).toString('hex'), files});
            const failed = configResult === 'failed';
            client.setRemoteConfigStatus({
                lastRemoteConfigHash: hash,
                status: failed
                    ? opamp.RemoteConfigStatuses.RemoteConfigStatuses_FAILED
                    : opamp.RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
                errorMessage: failed ? 'node test client refuses this config' : '',
            });
        };
    }
    if (args['instance-uid']) {
        opts.instanceUid = args['instance-uid'];
    }
    diagch.subscribe(opamp.DIAG_CH_SEND_SUCCESS, (m) => {
        emit({
            event: 'success',
            sequence_num: m.a2s.sequenceNum,
            instance_uid: uuidText(m.s2a.instanceUid),
            flags: m.s2a.flags,
            new_instance_uid: m.s2a.agentIdentification
                ? uuidText(m.s2a.agentIdentification.newInstanceUid)
                : null,
            error: m.s2a.errorResponse ? m.s2a.errorResponse.errorMessage : null,
        });
    });
    diagch.subscribe(opamp.DIAG_CH_SEND_FAIL, (m) => {
        emit({event: 'fail', error: String(m.err)});
    });
    const client = opamp.createOpAMPClient(opts);
    client.setAgentDescription({
        identifyingAttributes: {
            'service.name': 'node-opamp-test',
            'service.version': '0.5.0-test',
        },
        nonIdentifyingAttributes: {
            'host.name': args['host-name'],
            'host.id': args['host-id'] || args['host-name'],
            'os.type': 'linux',
            'host.arch': 'arm64',
        },
    });
    emit({event: 'start', instance_uid: uuidText(client.getInstanceUid())});
    client.start();
    await new Promise((r) => setTimeout(r, Number(args.seconds) * 1000));
    await client.shutdown();
    emit({event: 'stop'});
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});
