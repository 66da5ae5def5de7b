#!/usr/bin/env bash
# The project's main job on embedded defaults (README "Quick start"): builds the release binaries,
# starts a control plane on SQLite and one local agent enrolled into it, prints where to look,
# and runs until Ctrl-C. Everything lives in ./data/local (git-ignored); running it again reuses
# the same database, admin login and agent identity.
#
# Ports: control plane RMM_CP_LISTEN (127.0.0.1:8080), agent metrics RMM_AGENT_PROMETHEUS_LISTEN
# (127.0.0.1:9464).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

cp_listen="${RMM_CP_LISTEN:-127.0.0.1:8080}"
agent_listen="${RMM_AGENT_PROMETHEUS_LISTEN:-127.0.0.1:9464}"
data="$root/data/local"
api="http://$cp_listen/api/v1"
mkdir -p "$data"
chmod 700 "$data"

log() { printf '[run-local] %s\n' "$*" >&2; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

log "building release binaries"
cargo build --release --quiet -p rmm-control-plane -p rmm-agent
bin="${CARGO_TARGET_DIR:-$root/target}/release"

export RMM_CP_LISTEN="$cp_listen"
export RMM_CP_DATABASE_URL="${RMM_CP_DATABASE_URL:-sqlite://$data/rmm.db}"
export RMM_AGENT_PROMETHEUS_LISTEN="$agent_listen"
# A release key pair of this local setup (a real one is made offline and only its public half
# given to the control plane); the agent pins the public key when it enrolls.
if [ ! -s "$data/release-keys/release-signing.pub" ]; then
  "$bin/rmm-control-plane" release keygen --out "$data/release-keys" >/dev/null
fi
export RMM_CP_RELEASES__SIGNING_KEYS="$(cat "$data/release-keys/release-signing.pub")"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# The admin login is created once; its password is kept (0600) so the next run can log in.
if [ ! -s "$data/admin-password" ]; then
  password="$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
  "$bin/rmm-control-plane" user create --email admin@localhost --role admin --password "$password" >/dev/null
  (umask 077 && printf '%s\n' "$password" > "$data/admin-password")
fi
password="$(cat "$data/admin-password")"

log "starting the control plane on $cp_listen"
"$bin/rmm-control-plane" serve 2> "$data/control-plane.log" &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://$cp_listen/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://$cp_listen/readyz" >/dev/null || { cat "$data/control-plane.log" >&2; exit 1; }

jwt="$(curl -fsS -H 'content-type: application/json' \
  -d "{\"email\":\"admin@localhost\",\"password\":\"$password\"}" "$api/auth/login" | json "['token']")"
auth=(-H "authorization: Bearer $jwt" -H 'content-type: application/json')

# Enroll the local agent into site $1 (again, if it was enrolled with another address: the
# control plane keeps its agent id, keyed by host id).
enroll_agent() {
  local token
  token="$(curl -fsS "${auth[@]}" -d "{\"site_id\":\"$1\"}" "$api/enrollment-tokens" | json "['token']")"
  RMM_ENROLL_TOKEN="$token" "$bin/rmm-agent" enroll --server "http://$cp_listen" --state-dir "$data/agent" \
    --metrics-address "$agent_listen"
}

if [ ! -f "$data/agent/identity.json" ]; then
  log "creating client 'local', site 'this-host' and enrolling the local agent"
  client_id="$(curl -fsS "${auth[@]}" -d '{"name":"local"}' "$api/clients" | json "['id']")"
  site_id="$(curl -fsS "${auth[@]}" -d '{"name":"this-host"}' "$api/clients/$client_id/sites" | json "['id']")"
  enroll_agent "$site_id"
  # A viewer API token for Prometheus service discovery.
  curl -fsS "${auth[@]}" -d '{"name":"prometheus-sd","role":"viewer"}' "$api/api-tokens" | json "['token']" \
    | (umask 077 && cat > "$data/sd.token")
else
  enrolled_with="$(json "['server']" < "$data/agent/identity.json")"
  if [ "$enrolled_with" != "http://$cp_listen" ]; then
    log "the agent was enrolled with $enrolled_with; enrolling it again with http://$cp_listen"
    site_id="$(json "['site_id']" < "$data/agent/identity.json")"
    enroll_agent "$site_id"
  fi
fi

# The agent runs from its own copy, as installed agents do: an update replaces that copy (and
# keeps the previous one next to it), never the cargo build. Each run starts the agent just built.
log "starting the agent"
mkdir -p "$data/bin"
cp "$bin/rmm-agent" "$data/bin/rmm-agent.new" && mv "$data/bin/rmm-agent.new" "$data/bin/rmm-agent"
"$data/bin/rmm-agent" run --state-dir "$data/agent" 2> "$data/agent.log" &
pids+=($!)

cat <<INFO

  rmm is running locally (Ctrl-C stops it; logs in $data/*.log)

  Control plane API   http://$cp_listen/api/v1   (OpenAPI: http://$cp_listen/api/v1/openapi.json)
  Admin login         admin@localhost / $password
                      curl -d '{"email":"admin@localhost","password":"$password"}' -H 'content-type: application/json' $api/auth/login
  Agents              curl -H "authorization: Bearer \$JWT" $api/agents
  Control plane       http://$cp_listen/metrics
  Agent metrics       http://$agent_listen/metrics
  Prometheus SD       $api/sd/prometheus  (bearer token in $data/sd.token)
  Release key         $data/release-keys (sign a build: $bin/rmm-control-plane release sign --key $data/release-keys/release-signing.key --file BUILD --out BUILD.sig)

INFO
wait -n "${pids[@]}"
