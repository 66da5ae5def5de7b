#!/bin/sh
# Install the rmm agent on a Linux host and enroll it into a control plane.
#
#   curl -fsS https://rmm.example.com/api/v1/install/agent.sh -o install-agent.sh
#   sudo RMM_ENROLL_TOKEN=rmm_et_... sh install-agent.sh [options]
#
# Options (each also as an environment variable):
#   --server URL        control plane base URL (RMM_SERVER; default: the server that served this)
#   --token TOKEN       enrollment token (RMM_ENROLL_TOKEN, preferred: `ps` shows arguments)
#   --channel NAME      release channel: stable, beta or edge (RMM_CHANNEL; default stable)
#   --binary PATH       install this agent binary instead of downloading one (offline installs)
#   --signing-key KEY   rmm-ed25519-public:... release key(s), comma separated (RMM_SIGNING_KEY):
#                       the downloaded build must carry a signature by one of them (needs openssl)
#   --listen ADDR       address the agent serves /metrics on (RMM_LISTEN; default 127.0.0.1:9464;
#                       use 0.0.0.0:9464 when Prometheus runs on another host)
#   --prefix DIR        install under DIR instead of / (no root needed; no user is created and
#                       systemctl is not called); for tests and images
#   --no-systemd        do not install or start the systemd unit
#
# Verification (step verify), before anything is installed: a downloaded build must have the
# SHA-256 the control plane names (X-Rmm-Release-Sha256), and `rmm-agent --version` must run and
# report the version it names. With --signing-key, its Ed25519 signature over
# "rmm-agent-release-v1\0" || sha256 must also verify with openssl (the keys are only learned at
# enrollment, after the install, so the operator passes them here). From then on the agent
# itself pins the control plane's keys at enrollment and refuses any update they do not sign.
#
# Steps: preflight, download, verify, user, install, config, enroll, service. The outcome is reported
# to the control plane (POST /api/v1/install-reports, authenticated by the enrollment token; the
# report holds host name, os, arch, agent version, status, step and message, never a secret):
# on success one report with what every step did, on failure the step that failed and why,
# then the script exits 1. A report the control plane refuses (e.g. an unknown token) is only
# printed here. Re-running the script upgrades the binary, keeps an existing agent.toml and
# enrolls again (same host: same agent id, new secret).
#
# Layout: binary /var/lib/rmm-agent/bin/rmm-agent (the agent updates itself in place, so it lives
# in a directory its service user can write), state /var/lib/rmm-agent (0700, user rmm-agent),
# config /etc/rmm-agent/agent.toml, unit /etc/systemd/system/rmm-agent.service.
set -eu

default_server='@RMM_SERVER_URL@'

server="${RMM_SERVER:-}"
token="${RMM_ENROLL_TOKEN:-}"
channel="${RMM_CHANNEL:-stable}"
signing_keys="${RMM_SIGNING_KEY:-}"
listen="${RMM_LISTEN:-127.0.0.1:9464}"
binary=""
prefix=""
systemd=1
agent_user="rmm-agent"

os="$(uname -s | tr 'A-Z' 'a-z')"
arch="$(uname -m)"
host="$(uname -n)"
agent_version=""
done_steps=""
step="preflight"
work=""

say() { printf 'rmm-install: %s\n' "$*" >&2; }

# Printable ASCII only, JSON-escaped, at most 1900 characters.
json_text() {
  printf '%s' "$1" | tr '\n\t' '  ' | tr -cd ' -~' | cut -c1-1900 | sed 's/\\/\\\\/g; s/"/\\"/g'
}

# report STATUS MESSAGE: tell the control plane how this run ended (best effort).
report() {
  if [ -z "$server" ] || [ -z "$token" ] || [ -z "$work" ]; then
    say "not reported to the control plane (no server or token)"
    return 0
  fi
  body="{\"hostname\":\"$(json_text "$host")\",\"os\":\"$(json_text "$os")\",\"arch\":\"$(json_text "$arch")\""
  if [ -n "$agent_version" ]; then
    body="$body,\"agent_version\":\"$(json_text "$agent_version")\""
  fi
  body="$body,\"status\":\"$1\",\"step\":\"$step\",\"message\":\"$(json_text "$2")\"}"
  printf '%s' "$body" >"$work/report.json"
  code="$(curl -sS -o "$work/report.out" -w '%{http_code}' -X POST \
    -H @"$work/auth.header" -H 'Content-Type: application/json' \
    --data-binary @"$work/report.json" "$server/api/v1/install-reports" 2>"$work/report.err")" || code="000"
  if [ "$code" = "201" ]; then
    say "reported to the control plane: $1 ($step)"
  else
    say "the control plane did not take the report (HTTP $code): $(cat "$work/report.out" "$work/report.err" 2>/dev/null | head -c 300)"
  fi
}

# fail MESSAGE: report the current step as failed and exit 1.
fail() {
  say "FAILED at step $step: $1"
  report failed "$1"
  exit 1
}

ok() {
  say "$step: $1"
  done_steps="${done_steps}${done_steps:+; }$step: $1"
}

cleanup() { [ -n "$work" ] && rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# The error message of an API answer ({"error": {"code", "message"}}), or its first bytes.
api_message() {
  msg="$(sed -n 's/.*"message"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$1" 2>/dev/null | head -n 1)"
  [ -n "$msg" ] || msg="$(head -c 200 "$1" 2>/dev/null | tr -cd ' -~')"
  printf '%s' "$msg"
}

# --- preflight ---------------------------------------------------------------------------
while [ $# -gt 0 ]; do
  case "$1" in
    --server) server="${2:?--server needs a URL}"; shift 2 ;;
    --token) token="${2:?--token needs a value}"; shift 2 ;;
    --channel) channel="${2:?--channel needs a name}"; shift 2 ;;
    --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
    --signing-key) signing_keys="${2:?--signing-key needs rmm-ed25519-public:...}"; shift 2 ;;
    --listen) listen="${2:?--listen needs host:port}"; shift 2 ;;
    --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
    --no-systemd) systemd=0; shift ;;
    -h|--help) sed -n '2,37p' "$0" 2>/dev/null | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) say "unknown option: $1 (see --help)"; exit 2 ;;
  esac
done
[ -n "$server" ] || server="$default_server"
case "$server" in @*) server="" ;; esac
server="${server%/}"

work="$(mktemp -d)"
chmod 0700 "$work"

[ -n "$server" ] || fail "no control plane URL: pass --server URL or set RMM_SERVER"
case "$server" in http://*|https://*) ;; *) fail "--server must start with http:// or https:// (got $server)" ;; esac
[ -n "$token" ] || fail "no enrollment token: set RMM_ENROLL_TOKEN (or pass --token)"
case "$token" in *[!A-Za-z0-9_-]*) token=""; fail "the enrollment token has unexpected characters" ;; esac
# The token goes to curl in a 0600 file, never on a command line.
printf 'Authorization: Bearer %s\n' "$token" >"$work/auth.header"
command -v curl >/dev/null 2>&1 || { say "curl is required"; exit 1; }

[ "$os" = linux ] || fail "unsupported operating system: $os (the agent runs on Linux)"
case "$arch" in
  x86_64|amd64) arch=x86_64 ;;
  aarch64|arm64) arch=aarch64 ;;
  *) fail "unsupported architecture: $arch (x86_64 and aarch64 are built)" ;;
esac
case "$channel" in stable|beta|edge) ;; *) fail "unknown channel: $channel (stable, beta or edge)" ;; esac
case "$listen" in *:[0-9]*) ;; *) fail "--listen must be host:port (got $listen)" ;; esac
if [ -z "$prefix" ] && [ "$(id -u)" != 0 ]; then
  fail "run as root (or use --prefix DIR to install into a directory)"
fi
if [ -n "$prefix" ]; then
  mkdir -p "$prefix" || fail "cannot create prefix directory $prefix"
  prefix="$(cd "$prefix" && pwd)"
fi
state_dir="$prefix/var/lib/rmm-agent"
bin_dir="$state_dir/bin"
agent_bin="$bin_dir/rmm-agent"
config_dir="$prefix/etc/rmm-agent"
config_file="$config_dir/agent.toml"
unit_file="$prefix/etc/systemd/system/rmm-agent.service"
ok "$os/$arch, host $host, server $server, channel $channel"

# --- download ----------------------------------------------------------------------------
step="download"
rel_version=""
rel_sha256=""
rel_signature=""
# header NAME: the value of a response header of the download (the last one after redirects).
header() {
  tr -d '\r' <"$work/headers" | awk -v name="$1" '
    { i = index($0, ":"); if (i > 0 && tolower(substr($0, 1, i - 1)) == name) { v = substr($0, i + 1); sub(/^[ \t]+/, "", v); sub(/[ \t]+$/, "", v) } }
    END { print v }'
}
if [ -n "$binary" ]; then
  [ -f "$binary" ] || fail "--binary $binary: no such file"
  cp "$binary" "$work/rmm-agent" || fail "cannot read --binary $binary"
  source_desc="from $binary"
else
  url="$server/api/v1/releases/latest/build?os=linux&arch=$arch&channel=$channel"
  code="$(curl -sS -L -D "$work/headers" -o "$work/rmm-agent" -w '%{http_code}' -H @"$work/auth.header" "$url" 2>"$work/curl.err")" \
    || fail "GET $url: $(tr -cd ' -~' <"$work/curl.err")"
  case "$code" in
    200) ;;
    404) fail "the control plane has no agent build for linux/$arch on channel $channel (HTTP 404: $(api_message "$work/rmm-agent")); publish one or pass --binary PATH" ;;
    *) fail "GET $url: HTTP $code: $(api_message "$work/rmm-agent")" ;;
  esac
  rel_version="$(header x-rmm-release-version)"
  rel_sha256="$(header x-rmm-release-sha256)"
  rel_signature="$(header x-rmm-release-signature)"
  [ -n "$rel_version" ] && [ -n "$rel_sha256" ] \
    || fail "the control plane sent no X-Rmm-Release-Version/X-Rmm-Release-Sha256 headers with the build"
  source_desc="downloaded (linux/$arch, $channel)"
fi
ok "$(wc -c <"$work/rmm-agent" | tr -d ' ') bytes $source_desc"

# --- verify ------------------------------------------------------------------------------
step="verify"
# b64_decode IN OUT: base64 text (one line) to bytes.
b64_decode() {
  printf '%s' "$1" | openssl base64 -d -A >"$2" 2>/dev/null
}
# verify_signature KEY: 0 when $rel_signature over the build verifies with KEY.
verify_signature() {
  case "$1" in
    rmm-ed25519-public:*) ;;
    *) fail "--signing-key: expected rmm-ed25519-public:<base64>, got $(printf '%s' "$1" | cut -c1-40)" ;;
  esac
  k="${1#rmm-ed25519-public:}"
  case "$k" in ''|*[!A-Za-z0-9+/=]*) fail "--signing-key: the key is not base64" ;; esac
  b64_decode "$k" "$work/key.raw" && [ "$(wc -c <"$work/key.raw" | tr -d ' ')" = 32 ] \
    || fail "--signing-key: the key is not 32 bytes of base64"
  # DER SubjectPublicKeyInfo of an Ed25519 key: a fixed 12-byte prefix, then the key.
  printf '\060\052\060\005\006\003\053\145\160\003\041\000' >"$work/key.der"
  cat "$work/key.raw" >>"$work/key.der"
  openssl pkeyutl -verify -pubin -inkey "$work/key.der" -keyform DER -rawin \
    -in "$work/signed.msg" -sigfile "$work/sig.raw" >/dev/null 2>&1
}
if [ -n "$rel_sha256" ]; then
  if command -v sha256sum >/dev/null 2>&1; then
    got="$(sha256sum "$work/rmm-agent" | cut -d' ' -f1)"
  elif command -v openssl >/dev/null 2>&1; then
    got="$(openssl dgst -sha256 -r "$work/rmm-agent" | cut -d' ' -f1)"
  else
    fail "neither sha256sum nor openssl is available to check the download's SHA-256"
  fi
  [ "$got" = "$rel_sha256" ] \
    || fail "SHA-256 mismatch: the download is $got, the control plane says $rel_sha256 (truncated or modified in transit)"
  checks="sha256 $got"
else
  checks="local file (no sha256 to check)"
fi
if [ -n "$signing_keys" ]; then
  [ -n "$rel_signature" ] || fail "--signing-key given, but a --binary has no signature to check (download the build, or drop --signing-key)"
  command -v openssl >/dev/null 2>&1 || fail "--signing-key needs openssl to verify the signature, and openssl is not installed"
  case "$rel_signature" in
    rmm-ed25519-sig:*) ;;
    *) fail "the control plane sent a malformed signature header" ;;
  esac
  s64="${rel_signature#rmm-ed25519-sig:}"
  case "$s64" in ''|*[!A-Za-z0-9+/=]*) fail "the control plane sent a malformed signature header" ;; esac
  b64_decode "$s64" "$work/sig.raw" && [ "$(wc -c <"$work/sig.raw" | tr -d ' ')" = 64 ] \
    || fail "the control plane sent a signature that is not 64 bytes"
  printf 'rmm-agent-release-v1\000' >"$work/signed.msg"
  openssl dgst -sha256 -binary "$work/rmm-agent" >>"$work/signed.msg" || fail "openssl dgst failed"
  verified=""
  old_ifs="$IFS"; IFS=','
  for key in $signing_keys; do
    IFS="$old_ifs"
    key="$(printf '%s' "$key" | tr -d ' ')"
    [ -n "$key" ] || continue
    if verify_signature "$key"; then verified="$key"; break; fi
  done
  IFS="$old_ifs"
  [ -n "$verified" ] \
    || fail "signature verification FAILED: the build (sha256 $rel_sha256, version $rel_version) is not signed by the --signing-key key(s); not installed"
  checks="$checks, Ed25519 signature by $(printf '%s' "$verified" | cut -c1-30)..."
fi
chmod 0755 "$work/rmm-agent"
version_out="$("$work/rmm-agent" --version 2>&1)" || fail "the agent binary does not run here: $(printf '%s' "$version_out" | head -c 300)"
case "$version_out" in
  rmm-agent\ *) agent_version="${version_out#rmm-agent }" ;;
  *) fail "not an rmm-agent binary (--version printed: $(printf '%s' "$version_out" | head -c 100))" ;;
esac
if [ -n "$rel_version" ] && [ "$agent_version" != "$rel_version" ]; then
  fail "the build reports version $agent_version, the control plane says $rel_version"
fi
ok "rmm-agent $agent_version: $checks"

# --- user --------------------------------------------------------------------------------
step="user"
owner=""
if [ -n "$prefix" ]; then
  ok "skipped (--prefix: files stay owned by $(id -un))"
elif id "$agent_user" >/dev/null 2>&1; then
  owner="$agent_user"
  ok "user $agent_user exists"
else
  nologin="$(command -v nologin 2>/dev/null || echo /usr/sbin/nologin)"
  if command -v useradd >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --home-dir /var/lib/rmm-agent \
      --shell "$nologin" --comment "rmm agent" "$agent_user" 2>"$work/user.err" \
      || fail "useradd $agent_user: $(tr -cd ' -~' <"$work/user.err")"
  elif command -v adduser >/dev/null 2>&1; then
    adduser -S -D -H -h /var/lib/rmm-agent -s "$nologin" "$agent_user" 2>"$work/user.err" \
      || fail "adduser $agent_user: $(tr -cd ' -~' <"$work/user.err")"
  else
    fail "neither useradd nor adduser found to create the user $agent_user"
  fi
  owner="$agent_user"
  ok "created system user $agent_user"
fi

# --- install -----------------------------------------------------------------------------
step="install"
(umask 077 && mkdir -p "$state_dir") || fail "cannot create $state_dir"
chmod 0700 "$state_dir" || fail "cannot set the mode of $state_dir"
mkdir -p "$bin_dir" || fail "cannot create $bin_dir"
# Copy next to the target and rename: a running agent keeps its old inode.
cp "$work/rmm-agent" "$bin_dir/.rmm-agent.new" && chmod 0755 "$bin_dir/.rmm-agent.new" \
  && mv -f "$bin_dir/.rmm-agent.new" "$agent_bin" || fail "cannot install the binary to $agent_bin"
if [ -n "$owner" ]; then
  chown -R "$owner:$owner" "$state_dir" || fail "cannot give $state_dir to $owner"
fi
ok "binary in $agent_bin"

# --- config ------------------------------------------------------------------------------
step="config"
mkdir -p "$config_dir" || fail "cannot create $config_dir"
if [ -f "$config_file" ]; then
  ok "kept the existing $config_file"
else
  cat >"$work/agent.toml" <<EOF || fail "cannot write the configuration"
# rmm-agent configuration written by the install script; every key is documented in
# deploy/examples/agent.toml. The control plane's policies may override [collect], [prometheus],
# [otlp], [labels], [inventory] and [updates] remotely.

[prometheus]
listen = "$listen"

[control]
state_dir = "$state_dir"

[updates]
channel = "$channel"
EOF
  chmod 0640 "$work/agent.toml"
  cp "$work/agent.toml" "$config_file" || fail "cannot write $config_file"
  chmod 0640 "$config_file"
  if [ -n "$owner" ]; then
    chown "root:$owner" "$config_file" || fail "cannot set the group of $config_file"
  fi
  ok "wrote $config_file"
fi

# --- enroll ------------------------------------------------------------------------------
step="enroll"
if RMM_ENROLL_TOKEN="$token" "$agent_bin" enroll --server "$server" --config "$config_file" \
  --state-dir "$state_dir" >"$work/enroll.out" 2>&1; then
  :
else
  fail "rmm-agent enroll: $(tail -n 3 "$work/enroll.out")"
fi
if [ -n "$owner" ]; then
  chown -R "$owner:$owner" "$state_dir" || fail "cannot give $state_dir to $owner"
fi
ok "$(head -n 1 "$work/enroll.out")"

# --- service -----------------------------------------------------------------------------
step="service"
if [ "$systemd" = 0 ]; then
  ok "skipped (--no-systemd)"
else
  mkdir -p "$(dirname "$unit_file")" || fail "cannot create $(dirname "$unit_file")"
  # Kept identical to deploy/systemd/rmm-agent.service (a test compares them).
  cat >"$unit_file" <<'UNIT' || fail "cannot write $unit_file"
# rmm-agent: host and top-process metrics for Prometheus and OTLP, OpAMP session with the
# control plane. Installed by deploy/install/install-agent.sh.
#
# Hardening, and why some options are left out:
# - runs as the unprivileged user rmm-agent with no capabilities: everything it reads
#   (/proc/<pid>/stat, status and cmdline of every process, /proc/*, /sys/class/hwmon and
#   /sys/class/thermal for temperatures, statvfs of each mount) is world-readable;
# - ProtectProc/ProcSubset stay at their defaults: "invisible" or "pid" would hide other
#   users' processes and /proc/stat, /proc/meminfo from the process and host collectors;
# - no ProtectSystem=, ProtectHome= or PrivateTmp=: they remount or hide filesystems in the
#   service's mount namespace, and the filesystem collector reads that namespace's
#   /proc/self/mounts, so it would report every filesystem read-only (mode="ro", which the
#   filesystem alerts skip) and miss /home. Its writes are limited by plain file ownership:
#   the user owns only /var/lib/rmm-agent, where the binary lives so that the agent can
#   replace itself when updating (it re-executes itself and keeps its PID).
[Unit]
Description=rmm agent (host metrics, OpAMP)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=rmm-agent
Group=rmm-agent
ExecStart=/var/lib/rmm-agent/bin/rmm-agent run --config /etc/rmm-agent/agent.toml
Restart=on-failure
RestartSec=5s
StateDirectory=rmm-agent
StateDirectoryMode=0700
UMask=0077

NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
UNIT
  if [ -n "$prefix" ]; then
    ok "unit written to $unit_file (--prefix: systemctl not called)"
  else
    command -v systemctl >/dev/null 2>&1 || fail "systemctl not found (use --no-systemd and start rmm-agent yourself)"
    systemctl daemon-reload 2>"$work/sd.err" || fail "systemctl daemon-reload: $(tr -cd ' -~' <"$work/sd.err")"
    # restart, not start: a re-run must load the new binary and identity.
    systemctl enable rmm-agent.service 2>"$work/sd.err" && systemctl restart rmm-agent.service 2>>"$work/sd.err" \
      || fail "systemctl enable/restart rmm-agent: $(tr -cd ' -~' <"$work/sd.err")"
    systemctl is-active --quiet rmm-agent.service \
      || fail "rmm-agent.service is not running: see journalctl -u rmm-agent"
    ok "rmm-agent.service enabled and running"
  fi
fi

step="complete"
report success "$done_steps"
say "done: rmm-agent $agent_version installed and enrolled"
