# shellcheck shell=bash
# Source this file (`source deploy/test-env.sh`) to get the environment the test suite expects:
# it starts a throwaway PostgreSQL 15 cluster on 127.0.0.1:${RMM_TEST_PG_PORT:-55432} if none is
# running there and exports the paths of the real tools installed by deploy/install-test-tools.sh.
# The cluster lives in ${RMM_TEST_PG_DIR:-/tmp/rmm-test-pg}; `deploy/test-env.sh stop` stops it.

_rmm_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_rmm_pg_port="${RMM_TEST_PG_PORT:-55432}"
_rmm_pg_dir="${RMM_TEST_PG_DIR:-/tmp/rmm-test-pg}"
_rmm_pg_bin="/usr/lib/postgresql/15/bin"

# PostgreSQL refuses to run as root: run its tools as the postgres user when we are root.
_rmm_as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

_rmm_pg_start() {
  if _rmm_as_pg "$_rmm_pg_bin/pg_isready" -q -h 127.0.0.1 -p "$_rmm_pg_port"; then
    return 0
  fi
  if [ ! -f "$_rmm_pg_dir/data/PG_VERSION" ]; then
    mkdir -p "$_rmm_pg_dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$_rmm_pg_dir"
    _rmm_as_pg "$_rmm_pg_bin/initdb" -D "$_rmm_pg_dir/data" -U postgres --auth=trust \
      --encoding=UTF8 --no-instructions >/dev/null || return 1
  fi
  # fsync off and a larger connection limit: this cluster is disposable and many tests share it.
  _rmm_as_pg "$_rmm_pg_bin/pg_ctl" -D "$_rmm_pg_dir/data" -l "$_rmm_pg_dir/server.log" -w \
    -o "-h 127.0.0.1 -p $_rmm_pg_port -k $_rmm_pg_dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
    start >/dev/null || { cat "$_rmm_pg_dir/server.log" >&2; return 1; }
}

if [ "${1:-}" = stop ]; then
  _rmm_as_pg "$_rmm_pg_bin/pg_ctl" -D "$_rmm_pg_dir/data" -m fast stop
else
  _rmm_pg_start || echo "test-env: could not start PostgreSQL (run deploy/install-test-tools.sh)" >&2
  export RMM_TEST_PG_URL="postgres://postgres@127.0.0.1:${_rmm_pg_port}/postgres"
  export RMM_TEST_PROMETHEUS="$_rmm_root/.tools/bin/prometheus"
  export RMM_TEST_PROMTOOL="$_rmm_root/.tools/bin/promtool"
  export RMM_TEST_NODE_EXPORTER="$_rmm_root/.tools/bin/node_exporter"
  export RMM_TEST_VICTORIA_METRICS="$_rmm_root/.tools/bin/victoria-metrics"
  export RMM_TEST_PYTHON="$_rmm_root/.tools/venv/bin/python"
  export RMM_TEST_NODE_MODULES="$_rmm_root/.tools/node/node_modules"
fi
