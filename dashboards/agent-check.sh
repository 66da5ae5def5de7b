#!/usr/bin/env bash
# The host and processes dashboards, and every alert rule, against a REAL agent scraped by a
# real Prometheus 2.53: the scrape path only, no control plane (the static target labels stand
# in for the control plane's HTTP SD). Every panel and variable query of rmm-host and
# rmm-host-processes must be accepted and return data, except what expected-empty.json allows.
#
#   dashboards/agent-check.sh [AGENT_BINARY]
#
# AGENT_BINARY defaults to $RMM_AGENT_BIN, else <repo>/target/debug/rmm-agent (build it with
# `cargo build -p rmm-agent`). Prometheus from $RMM_TEST_PROMETHEUS, else <repo>/.tools/bin/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
agent="${1:-${RMM_AGENT_BIN:-$repo/target/debug/rmm-agent}}"
prometheus="${RMM_TEST_PROMETHEUS:-$repo/.tools/bin/prometheus}"
if [ ! -x "$agent" ]; then
  echo "dashboards/agent-check.sh: no agent binary at '$agent' (cargo build -p rmm-agent, or pass its path)." >&2
  exit 2
fi
if [ ! -x "$prometheus" ]; then
  echo "dashboards/agent-check.sh: $prometheus not found; run 'bash deploy/install-test-tools.sh'." >&2
  exit 2
fi

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
agent_port="$(free_port)"
prom_port="$(free_port)"
agent_id="0190f3c2-6a1e-7b3c-9d2e-5f6a7b8c9d0e"

RMM_AGENT_PROMETHEUS_LISTEN="127.0.0.1:$agent_port" RMM_AGENT_COLLECT_INTERVAL=1s \
  "$agent" run >"$work/agent.log" 2>&1 &
pids+=($!)

# The labels the control plane's HTTP SD puts on every agent target (dashboards/README.md).
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 2s
  evaluation_interval: 2s
rule_files:
  - $repo/alerts/*.rules.yml
scrape_configs:
  - job_name: rmm-agent
    static_configs:
      - targets: ["127.0.0.1:$agent_port"]
        labels: {instance: "$agent_id", agent: "$agent_id", client: acme, site: hq, host: agent-check}
EOF
"$prometheus" --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$work/prometheus.log" 2>&1 &
pids+=($!)

url="http://127.0.0.1:$prom_port"
# Wait until a rate over the agent's counters has data (a few scrapes after the first).
for _ in $(seq 1 60); do
  if python3 - "$url" <<'PY' 2>/dev/null; then
import json, sys, urllib.parse, urllib.request
q = urllib.parse.urlencode({"query": 'rate(system_cpu_time_seconds_total{job="rmm-agent"}[1m])'})
with urllib.request.urlopen(f"{sys.argv[1]}/api/v1/query?{q}", timeout=2) as r:
    sys.exit(0 if json.load(r)["data"]["result"] else 1)
PY
    break
  fi
  for pid in "${pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "dashboards/agent-check.sh: a process exited early; logs:" >&2
      cat "$work/agent.log" "$work/prometheus.log" >&2
      exit 1
    fi
  done
  sleep 1
done
sleep 10 # a few more samples for the range queries

python3 "$here/run_queries.py" --prometheus "$url" --rules \
  --dashboard rmm-host --dashboard rmm-host-processes \
  --var client=acme --var site=hq --var host=agent-check --var __range=5m --step 5s
