#!/usr/bin/env bash
# The project's test command (README "Quick start", run verbatim by CI):
# installs the real tools the tests talk to, starts a throwaway PostgreSQL, then runs
# formatting and lint checks, the whole Rust test suite, and the alert-rule and dashboard checks.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n==> %s\n' "$*"; }

step "installing test tools"
bash deploy/install-test-tools.sh

step "starting throwaway PostgreSQL"
pg_was_running=""
if /usr/lib/postgresql/15/bin/pg_isready -q -h 127.0.0.1 -p "${RMM_TEST_PG_PORT:-55432}" 2>/dev/null; then
  pg_was_running=1
fi
# shellcheck source=deploy/test-env.sh
source deploy/test-env.sh
if [ -z "$pg_was_running" ]; then
  trap 'bash deploy/test-env.sh stop >/dev/null 2>&1 || true' EXIT
fi

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
[ -n "${CI:-}" ] && export CARGO_INCREMENTAL=0

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

if [ -x alerts/check.sh ]; then
  step "alert rules: promtool check + test"
  alerts/check.sh
fi
if [ -f dashboards/lint.py ]; then
  step "dashboards: lint, unit tests, every query against a real Prometheus on synthetic data"
  python3 dashboards/lint.py
  python3 -m unittest discover -s dashboards -p 'test_*.py'
  bash dashboards/smoke.sh
fi

step "test suite"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
