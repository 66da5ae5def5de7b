#!/usr/bin/env bash
# Smoke test of dashboards/ and alerts/ against a real Prometheus 2.53, before real agents:
#   1. promtool check config deploy/prometheus/prometheus.yml (config + the rules it loads);
#   2. two hours of synthetic series shaped like the metric contract (synthetic.py: one host
#      as scraped, one as pushed over OTLP) back-filled with promtool into a fresh TSDB;
#   3. a real Prometheus on a free loopback port loads that TSDB and alerts/*.rules.yml;
#   4. run_queries.py runs every panel and variable query of every dashboard for both hosts
#      (each must parse and return data unless expected-empty.json allows it) and checks every
#      rule evaluated without error and every alert expression is accepted.
# Tools from $RMM_TEST_PROMETHEUS / $RMM_TEST_PROMTOOL, else <repo>/.tools/bin/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
prometheus="${RMM_TEST_PROMETHEUS:-$repo/.tools/bin/prometheus}"
promtool="${RMM_TEST_PROMTOOL:-$repo/.tools/bin/promtool}"
for tool in "$prometheus" "$promtool"; do
  if [ ! -x "$tool" ]; then
    echo "dashboards/smoke.sh: $tool not found; run 'bash deploy/install-test-tools.sh'" \
      "(or set RMM_TEST_PROMETHEUS / RMM_TEST_PROMTOOL)." >&2
    exit 2
  fi
done

work="$(mktemp -d)"
prom_pid=""
cleanup() {
  if [ -n "$prom_pid" ]; then
    kill "$prom_pid" 2>/dev/null || true
    wait "$prom_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== promtool check config deploy/prometheus/prometheus.yml"
"$promtool" check config "$repo/deploy/prometheus/prometheus.yml"

echo "== synthetic data, back-filled"
python3 "$here/synthetic.py" >"$work/data.om"
"$promtool" tsdb create-blocks-from openmetrics -q "$work/data.om" "$work/tsdb" >/dev/null

# No scrape jobs: the data is all back-filled, and nothing on this machine gets scraped.
cat >"$work/prometheus.yml" <<EOF
global:
  evaluation_interval: 5s
rule_files:
  - $repo/alerts/*.rules.yml
EOF

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$prometheus" --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$port" --log.level=warn >"$work/prometheus.log" 2>&1 &
prom_pid=$!

url="http://127.0.0.1:$port"
for _ in $(seq 1 60); do
  if python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$url/-/ready" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$prom_pid" 2>/dev/null; then
    echo "dashboards/smoke.sh: Prometheus exited:" >&2
    cat "$work/prometheus.log" >&2
    exit 1
  fi
  sleep 0.5
done

echo "== dashboard queries, host web-01 (scraped) + alert rules"
python3 "$here/run_queries.py" --prometheus "$url" --var client=acme --var site=hq --var host=web-01 --rules
echo "== dashboard queries, host lab-01 (pushed over OTLP)"
python3 "$here/run_queries.py" --prometheus "$url" --var client=globex --var site=lab --var host=lab-01
