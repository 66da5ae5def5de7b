#!/usr/bin/env bash
# Checks the alert rules with the real promtool (Prometheus 2.53):
#   1. `promtool check rules`  - syntax, PromQL, templates;
#   2. `promtool test rules`   - the unit tests in alerts/tests/;
#   3. coverage                - every alert of rmm.rules.yml has at least one firing case
#                                (non-empty exp_alerts) and one not-firing case (exp_alerts: []).
# promtool comes from $RMM_TEST_PROMTOOL, else <repo>/.tools/bin/promtool.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
promtool="${RMM_TEST_PROMTOOL:-$repo/.tools/bin/promtool}"

if [ ! -x "$promtool" ]; then
  echo "alerts/check.sh: promtool not found at '$promtool'." >&2
  echo "Install the test tools with 'bash deploy/install-test-tools.sh' (or set RMM_TEST_PROMTOOL)." >&2
  exit 2
fi

echo "== promtool check rules"
"$promtool" check rules "$here/rmm.rules.yml"

echo "== promtool test rules"
"$promtool" test rules "$here"/tests/*.yml

echo "== every alert has a firing and a not-firing test"
# Line-based on purpose: stdlib only, and both files are written in one fixed layout.
python3 - "$here/rmm.rules.yml" "$here"/tests/*.yml <<'PY'
import re
import sys

rules_file, test_files = sys.argv[1], sys.argv[2:]
with open(rules_file, encoding="utf-8") as f:
    alerts = re.findall(r"^\s*- alert:\s*(\S+)\s*$", f.read(), re.M)
if not alerts:
    sys.exit(f"no alerts found in {rules_file}")

firing, silent = set(), set()
for path in test_files:
    name = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^\s*- alertname:\s*(\S+)", line)
            if m:
                name = m.group(1)
                continue
            m = re.match(r"^\s*exp_alerts:\s*(\[\])?\s*(#.*)?$", line)
            if m and name:
                (silent if m.group(1) else firing).add(name)
                name = None

problems = []
for alert in alerts:
    if alert not in firing:
        problems.append(f"{alert}: no firing test case (alert_rule_test with non-empty exp_alerts)")
    if alert not in silent:
        problems.append(f"{alert}: no not-firing test case (alert_rule_test with exp_alerts: [])")
for name in sorted((firing | silent) - set(alerts)):
    problems.append(f"{name}: tested but not defined in {rules_file}")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"  SUCCESS: {len(alerts)} alerts, each with a firing and a not-firing case")
PY
