#!/usr/bin/env python3
"""Runs every dashboard query (and every loaded alert expression) against a real Prometheus.

    python3 dashboards/run_queries.py --prometheus http://127.0.0.1:9090 \
        --var client=acme --var site=hq --var host=web-01 [--rules] [--json]

Queries come from `lint.py --list-queries` (variables substituted as given). Panel queries run
through /api/v1/query (instant panels) or /api/v1/query_range (over --var __range, default 1h);
variable queries through /api/v1/label/<label>/values?match[]=... as Grafana does. A query
fails when Prometheus refuses it, or when it returns no data and expected-empty.json does not
list it (with a reason). --rules also checks /api/v1/rules: every rule evaluated without error,
and every alert expression accepted by /api/v1/query. Exits 1 on any failure. Stdlib only.
"""

import argparse
import json
import pathlib
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import lint  # noqa: E402  (same folder)


def duration_seconds(text):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    for suffix in ("ms", "s", "m", "h", "d", "w"):
        if text.endswith(suffix) and text[: -len(suffix)].isdigit():
            return int(text[: -len(suffix)]) * units[suffix]
    raise ValueError(f"not a duration: {text!r}")


class Prometheus:
    def __init__(self, base, timeout):
        self.base = base.rstrip("/")
        self.timeout = timeout

    def get(self, path, params):
        url = f"{self.base}{path}?{urllib.parse.urlencode(params, doseq=True)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as e:  # 400/422: the query was refused; the body says why
            try:
                body = json.load(e)
            except (json.JSONDecodeError, ValueError):
                return None, f"HTTP {e.code}"
        except (urllib.error.URLError, OSError, json.JSONDecodeError) as e:
            return None, f"request failed: {e}"
        if body.get("status") != "success":
            return None, f"{body.get('errorType')}: {body.get('error')}"
        return body.get("data"), None


def run_panel(prom, q, now, range_s, step_s):
    if q["instant"]:
        data, err = prom.get("/api/v1/query", {"query": q["expr"], "time": now})
    else:
        data, err = prom.get("/api/v1/query_range",
                             {"query": q["expr"], "start": now - range_s, "end": now, "step": step_s})
    if err:
        return None, err
    return len(data.get("result", [])), None


def run_variable(prom, q, now, range_s):
    params = {"start": now - range_s, "end": now}
    if q.get("match"):
        params["match[]"] = q["match"]
    data, err = prom.get(f"/api/v1/label/{urllib.parse.quote(q['label'])}/values", params)
    if err:
        return None, err
    return len(data or []), None


def check_rules(prom, now, wait_s):
    """Every rule loaded, evaluated without error, and its expression accepted as a query."""
    failures, deadline = [], time.monotonic() + wait_s
    while True:
        data, err = prom.get("/api/v1/rules", {})
        if err:
            return [f"rules: {err}"], 0
        rules = [r for g in data.get("groups", []) for r in g.get("rules", [])]
        pending = [r for r in rules if r.get("health") == "unknown"]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(1)
    if not rules:
        return ["rules: Prometheus has no rules loaded (check rule_files)"], 0
    for r in rules:
        name = r.get("name")
        if r.get("health") != "ok":
            failures.append(f"rule {name}: health {r.get('health')}: {r.get('lastError', '')}")
        _, err = prom.get("/api/v1/query", {"query": r.get("query", ""), "time": now})
        if err:
            failures.append(f"rule {name}: expression refused: {err}")
    return failures, len(rules)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    ap.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                    help="dashboard variable value (repeatable); __range sets the range queried")
    ap.add_argument("--dir", type=pathlib.Path, default=lint.HERE, help="dashboards folder")
    ap.add_argument("--dashboard", action="append", default=[], metavar="UID",
                    help="only this dashboard's queries (repeatable; default: all)")
    ap.add_argument("--arrival", choices=lint.ARRIVALS,
                    help="how the host's data arrived; expected-empty entries limited to one arrival "
                         "path apply only when it is given and matches")
    ap.add_argument("--step", default="60s", help="step of range queries (default %(default)s)")
    ap.add_argument("--rules", action="store_true", help="also check the loaded alerting rules")
    ap.add_argument("--rules-wait", type=float, default=60,
                    help="seconds to wait for every rule's first evaluation (default %(default)s)")
    ap.add_argument("--timeout", type=float, default=30, help="per-request timeout in seconds")
    ap.add_argument("--json", action="store_true", help="print results as JSON")
    args = ap.parse_args(argv)

    given = {}
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"run_queries.py: --var wants NAME=VALUE, got {item!r}", file=sys.stderr)
            return 2
        given[name] = value
    range_s = duration_seconds(given.get("__range", lint.DEFAULT_BUILTIN_VALUES["__range"]))
    step_s = duration_seconds(args.step)

    expected_empty = args.dir / lint.EXPECTED_EMPTY_NAME
    paths = sorted(p for p in args.dir.glob("*.json") if p.name != lint.EXPECTED_EMPTY_NAME)
    dashboards, problems = lint.load(paths)
    problems += lint.lint(dashboards, expected_empty)
    if problems:
        print("\n".join(f"run_queries.py: lint: {p}" for p in problems), file=sys.stderr)
        return 1
    queries, problems = lint.list_queries(dashboards, given, expected_empty, args.arrival)
    if problems:
        print("\n".join(f"run_queries.py: {p}" for p in problems), file=sys.stderr)
        return 2

    if args.dashboard:
        unknown = set(args.dashboard) - {d.uid for d in dashboards}
        if unknown:
            print(f"run_queries.py: no dashboard with uid {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        queries = [q for q in queries if q["dashboard"] in args.dashboard]

    prom = Prometheus(args.prometheus, args.timeout)
    now = time.time()
    results, failures = [], []
    for q in queries:
        if q["kind"] == "panel":
            what = f"{q['dashboard']} / {q['panel']} / {q['ref_id']}"
            count, err = run_panel(prom, q, now, range_s, step_s)
        else:
            what = f"{q['dashboard']} / variable {q['variable']}"
            count, err = run_variable(prom, q, now, range_s)
        if err:
            status = "ERROR"
            failures.append(f"{what}: {err}\n    {q.get('expr')}")
        elif count == 0 and q.get("may_be_empty"):
            status = "EMPTY-OK"
        elif count == 0:
            status = "EMPTY"
            failures.append(f"{what}: no data, and expected-empty.json does not list it\n    {q.get('expr')}")
        else:
            status = "OK"
        results.append({**q, "status": status, "series": count, "error": err})

    rule_count = 0
    if args.rules:
        rule_failures, rule_count = check_rules(prom, now, args.rules_wait)
        failures += rule_failures

    if args.json:
        json.dump({"queries": results, "rules": rule_count, "failures": failures}, sys.stdout, indent=2)
        print()
    else:
        for r in results:
            name = r.get("panel") or f"variable {r.get('variable')}"
            extra = f"  ({r['may_be_empty']})" if r["status"] == "EMPTY-OK" else ""
            print(f"{r['status']:<9} {r['series'] if r['series'] is not None else '-':>4}  "
                  f"{r['dashboard']} / {name} / {r.get('ref_id', '')}{extra}")
        ok = sum(r["status"] == "OK" for r in results)
        empty_ok = sum(r["status"] == "EMPTY-OK" for r in results)
        print(f"run_queries.py: {len(results)} queries: {ok} with data, {empty_ok} empty as allowed, "
              f"{len(results) - ok - empty_ok} failed" + (f"; {rule_count} rules checked" if args.rules else ""))
    for f in failures:
        print(f"run_queries.py: FAIL {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
