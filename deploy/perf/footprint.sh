#!/usr/bin/env bash
# Footprint of the running agent next to node_exporter, over the same window:
#   bash deploy/perf/footprint.sh [seconds]      (default 30)
#
# Builds the release agent, runs it at a 1 s collection interval and node_exporter 1.9
# (.tools/bin/node_exporter or $RMM_TEST_NODE_EXPORTER; deploy/install-test-tools.sh installs it),
# scrapes both every second with curl, and after a 2 s warm-up measures for the window:
#   CPU   utime + stime from /proc/PID/stat, in seconds, used during the window
#   RSS   peak resident set (VmHWM) and current resident set (VmRSS) at the end
# Goals (issue 2): agent CPU <= half of node_exporter's, agent RSS < 15 MB.
# RMM_FOOTPRINT_IDLE=N first starts N idle `sleep` processes (killed at the end), to see the
# cost of a busier process table: the agent walks every process each second.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
window="${1:-30}"

node_exporter="${RMM_TEST_NODE_EXPORTER:-$root/.tools/bin/node_exporter}"
[ -x "$node_exporter" ] || { echo "node_exporter not found at $node_exporter (run deploy/install-test-tools.sh)" >&2; exit 1; }

cargo build --release -p rmm-agent >&2
target_dir="${CARGO_TARGET_DIR:-$root/target}"
agent="$target_dir/release/rmm-agent"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
agent_port=$(free_port)
ne_port=$(free_port)

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

for _ in $(seq 1 "${RMM_FOOTPRINT_IDLE:-0}"); do
  sleep 600 &
  pids+=("$!")
done

RMM_AGENT_COLLECT_INTERVAL=1s RMM_AGENT_PROMETHEUS_LISTEN="127.0.0.1:$agent_port" \
  "$agent" run >/dev/null 2>&1 &
agent_pid=$!; pids+=("$agent_pid")
"$node_exporter" --web.listen-address="127.0.0.1:$ne_port" >/dev/null 2>&1 &
ne_pid=$!; pids+=("$ne_pid")

# Scrape both every second for the whole run, as a 1 s Prometheus scrape interval would.
(
  while true; do
    curl -s -o /dev/null "http://127.0.0.1:$agent_port/metrics" || true
    curl -s -o /dev/null "http://127.0.0.1:$ne_port/metrics" || true
    sleep 1
  done
) &
pids+=("$!")

clk_tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

sleep 2
a0=$(cpu_ticks "$agent_pid"); n0=$(cpu_ticks "$ne_pid")
sleep "$window"
a1=$(cpu_ticks "$agent_pid"); n1=$(cpu_ticks "$ne_pid")

report() { # name pid ticks0 ticks1
  local cpu hwm rss
  cpu=$(awk -v a="$3" -v b="$4" -v t="$clk_tck" 'BEGIN { printf "%.2f", (b - a) / t }')
  hwm=$(status_kb "$2" VmHWM); rss=$(status_kb "$2" VmRSS)
  awk -v n="$1" -v c="$cpu" -v h="$hwm" -v r="$rss" 'BEGIN { printf "%-14s %10s s %12.1f MB %12.1f MB\n", n, c, h / 1024, r / 1024 }'
}
printf '\n%s s window, 1 s collection / scrape interval, %s processes on the host\n' "$window" "$(ls /proc | grep -c '^[0-9]')"
printf '%-14s %12s %15s %15s\n' "" "CPU time" "peak RSS" "RSS at end"
report "rmm-agent" "$agent_pid" "$a0" "$a1"
report "node_exporter" "$ne_pid" "$n0" "$n1"
awk -v a=$((a1 - a0)) -v n=$((n1 - n0)) 'BEGIN { if (n > 0) printf "agent / node_exporter CPU: %.2f (goal <= 0.50)\n", a / n }'
