#!/usr/bin/env bash
# Installs the real third-party parts the test suite talks to, into <repo>/.tools (git-ignored):
#   Prometheus 2.53 + promtool + node_exporter 1.9   (Debian trixie packages, unpacked, not installed)
#   VictoriaMetrics 1.112                            (same; the OTLP backend of the tests, because Debian
#                                                     builds Prometheus without its OTLP receiver)
#   PostgreSQL 15                                    (Debian bookworm, installed system-wide)
#   OpenTelemetry's Python OpAMP client              (PyPI, in a venv)
#   Elastic's Node.js OpAMP client                   (npm)
# Idempotent: each step checks what is already there and takes well under a second when nothing is missing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
mkdir -p "$tools/bin"

PROMETHEUS_VERSION="2.53"
NODE_EXPORTER_VERSION="1.9"
OPAMP_PY_VERSION="0.5b0"
OPAMP_NODE_VERSION="0.5.0"

log() { printf '[install-test-tools] %s\n' "$*" >&2; }

apt_updated=""
apt_update_once() {
  [ -n "$apt_updated" ] && return
  log "apt-get update"
  apt-get update -qq
  apt_updated=1
}

# --- Prometheus, promtool, node_exporter from trixie ------------------------------------------------
has_version() { # binary, expected version prefix
  [ -x "$1" ] && "$1" --version 2>&1 | head -1 | grep -q "version $2"
}

if has_version "$tools/bin/prometheus" "$PROMETHEUS_VERSION" \
  && has_version "$tools/bin/promtool" "$PROMETHEUS_VERSION" \
  && has_version "$tools/bin/node_exporter" "$NODE_EXPORTER_VERSION" \
  && [ -x "$tools/bin/victoria-metrics" ]; then
  log "prometheus, promtool, node_exporter, victoria-metrics already installed"
else
  log "downloading prometheus, promtool, node_exporter, victoria-metrics from Debian trixie"
  apt_dir="$tools/apt-trixie"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/debs"
  # Reuse whatever mirror this machine's apt already uses; only the suite differs.
  mirror="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -E '^(URIs:|deb )' | grep -oE 'https?://[^ ]+' | grep -v security | head -1 || true)"
  mirror="${mirror:-http://deb.debian.org/debian}"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror%/} trixie main" \
    > "$apt_dir/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
    -o "APT::Sandbox::User=root")
  apt-get "${apt_opts[@]}" update -qq
  (cd "$apt_dir/debs" && rm -f ./*.deb && apt-get "${apt_opts[@]}" download -qq \
    prometheus promtool prometheus-node-exporter victoria-metrics)
  rm -rf "$apt_dir/root"
  for deb in "$apt_dir"/debs/*.deb; do dpkg -x "$deb" "$apt_dir/root"; done
  ln -sf "$apt_dir/root/usr/bin/prometheus" "$tools/bin/prometheus"
  ln -sf "$apt_dir/root/usr/bin/promtool" "$tools/bin/promtool"
  ln -sf "$apt_dir/root/usr/bin/prometheus-node-exporter" "$tools/bin/node_exporter"
  ln -sf "$apt_dir/root/usr/bin/victoria-metrics" "$tools/bin/victoria-metrics"
  for b in prometheus promtool node_exporter; do
    "$tools/bin/$b" --version 2>&1 | head -1 >&2
  done
fi

# --- PostgreSQL 15 ----------------------------------------------------------------------------------
if [ -x /usr/lib/postgresql/15/bin/initdb ] && [ -x /usr/lib/postgresql/15/bin/pg_ctl ]; then
  log "postgresql 15 already installed"
else
  apt_update_once
  log "installing postgresql-15"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
fi

# --- openssl (the OTLP TLS tests make a private CA with it) -----------------------------------------
if command -v openssl >/dev/null; then
  log "openssl already installed"
else
  apt_update_once
  log "installing openssl"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
fi

# --- Python OpAMP client ----------------------------------------------------------------------------
venv="$tools/venv"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "
import sys, importlib.metadata as m, opentelemetry._opamp
sys.exit(m.version('opentelemetry-opamp-client') != '$OPAMP_PY_VERSION')" 2>/dev/null; then
  log "python opamp client already installed"
else
  log "installing opentelemetry-opamp-client $OPAMP_PY_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "opentelemetry-opamp-client==$OPAMP_PY_VERSION"
fi

# --- Node.js OpAMP client ---------------------------------------------------------------------------
node_dir="$tools/node"
if [ -f "$node_dir/node_modules/@elastic/opamp-client-node/package.json" ] \
  && grep -q "\"version\": \"$OPAMP_NODE_VERSION\"" "$node_dir/node_modules/@elastic/opamp-client-node/package.json"; then
  log "node opamp client already installed"
else
  if ! command -v npm >/dev/null; then
    apt_update_once
    log "installing nodejs and npm"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  log "installing @elastic/opamp-client-node $OPAMP_NODE_VERSION into $node_dir"
  mkdir -p "$node_dir"
  [ -f "$node_dir/package.json" ] || echo '{"name":"rmm-test-tools","private":true}' > "$node_dir/package.json"
  (cd "$node_dir" && npm install --silent --no-audit --no-fund "@elastic/opamp-client-node@$OPAMP_NODE_VERSION")
fi

log "done"
