#!/usr/bin/env python3
"""Lints the Grafana dashboards in this folder and lists their queries (Python 3 stdlib only).

    python3 dashboards/lint.py [--dir DIR]
    python3 dashboards/lint.py --list-queries --var client=acme --var site=hq --var host=web-01

Checks, for every dashboard (every *.json of DIR, default this folder, but expected-empty.json):
  - it parses, has a unique `uid`, and provisioning-safe fields (`id` null, no `__inputs`,
    no `${DS_...}` placeholders);
  - panel ids are unique (rows' nested panels included);
  - every datasource reference is the `datasource` variable; the only datasource uid written
    out is that variable's default;
  - every `$variable` used in a query, title or link is defined (or is a Grafana built-in);
  - every link to `/d/<uid>/...` names an existing dashboard, passes only `var-<name>` that the
    target dashboard defines, and passes a custom variable only one of its values;
  - every entry of expected-empty.json names an existing panel (and query).
Exits 1 with one line per problem.

--list-queries prints, as JSON, every panel query and every variable query with variables
substituted (values from --var, else the variable's default / All value), for the live test
that runs them against a real Prometheus. Panel queries carry `instant` and, when listed in
expected-empty.json, the reason they may return no data (`may_be_empty`).
"""

import argparse
import json
import pathlib
import re
import sys
from urllib.parse import urlsplit

HERE = pathlib.Path(__file__).resolve().parent
EXPECTED_EMPTY_NAME = "expected-empty.json"
# How a host's series reached Prometheus; expected-empty entries may apply to one of them only.
ARRIVALS = ("scrape", "otlp")

DS_VAR = "datasource"
DS_REFS = {"${datasource}", "$datasource"}

# Grafana built-ins that may appear in queries and links.
BUILTINS = {
    "__range", "__range_s", "__range_ms", "__rate_interval", "__rate_interval_ms", "__interval",
    "__interval_ms", "__from", "__to", "__url_time_range", "__all", "__dashboard", "__org",
    "__user", "__timezone", "timeFilter", "__name",
}
# Built-in prefixes only meaningful in data links (`${__field.labels.host}` etc.).
LINK_BUILTIN_PREFIXES = ("__field.", "__series.", "__value.", "__data.", "__cell")

# $name, ${name}, ${name:format}, ${name.path}, [[name]]
VAR_RE = re.compile(r"\$\{([^}:]+)(?::([^}]+))?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\[\[([A-Za-z_][A-Za-z0-9_]*)\]\]")

DEFAULT_BUILTIN_VALUES = {
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__rate_interval": "1m",
    "__rate_interval_ms": "60000",
    "__interval": "15s",
    "__interval_ms": "15000",
}


class Dashboard:
    def __init__(self, path, data):
        self.path = path
        self.data = data
        self.uid = data.get("uid")
        self.variables = {v.get("name"): v for v in data.get("templating", {}).get("list", [])}

    def panels(self):
        """All panels, rows' nested panels included."""
        for p in self.data.get("panels", []):
            yield p
            yield from p.get("panels", []) or []


def load(paths):
    dashboards, problems = [], []
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            problems.append(f"{path.name}: cannot read dashboard JSON: {e}")
            continue
        if not isinstance(data, dict):
            problems.append(f"{path.name}: top level is not a JSON object")
            continue
        dashboards.append(Dashboard(path, data))
    return dashboards, problems


def var_refs(text):
    """Names of the variables a string refers to."""
    out = []
    for m in VAR_RE.finditer(text):
        out.append(m.group(1) or m.group(3) or m.group(4))
    return out


def is_builtin(name):
    return name in BUILTINS or name.startswith(LINK_BUILTIN_PREFIXES)


def walk(node, path="$"):
    """Yields (json-path, key, value) for every dict entry in the tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield path, k, v
            yield from walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")


def collect_links(d):
    """(where, url) for dashboard links, panel links and data links (defaults and overrides)."""
    links = []
    for l in d.data.get("links", []):
        if l.get("type", "link") == "link":
            links.append((f"dashboard link {l.get('title')!r}", l.get("url", "")))
    for p in d.panels():
        where = f"panel {p.get('id')} {p.get('title')!r}"
        for l in p.get("links", []) or []:
            links.append((f"{where} panel link {l.get('title')!r}", l.get("url", "")))
        fc = p.get("fieldConfig", {})
        for l in fc.get("defaults", {}).get("links", []) or []:
            links.append((f"{where} data link {l.get('title')!r}", l.get("url", "")))
        for o in fc.get("overrides", []) or []:
            for prop in o.get("properties", []):
                if prop.get("id") == "links":
                    for l in prop.get("value", []) or []:
                        links.append((f"{where} override link {l.get('title')!r}", l.get("url", "")))
    return links


def custom_values(var):
    return {o.get("value") for o in var.get("options", [])}


def check_link(d, where, url, by_uid):
    problems = []
    prefix = f"{d.path.name}: {where}"
    for name in var_refs(url):
        if name.split(".")[0] not in d.variables and not is_builtin(name):
            problems.append(f"{prefix}: uses ${name}, which this dashboard does not define")
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        problems.append(f"{prefix}: absolute URL {url!r}; link dashboards by /d/<uid>/<slug>")
        return problems
    m = re.match(r"^/d/([^/?#]+)(/[^?#]*)?$", parts.path)
    if not m:
        problems.append(f"{prefix}: URL {url!r} does not point at a dashboard (/d/<uid>/<slug>)")
        return problems
    target = by_uid.get(m.group(1))
    if target is None:
        problems.append(f"{prefix}: links to dashboard uid {m.group(1)!r}, which does not exist")
        return problems
    for param in filter(None, parts.query.split("&")):
        qp = re.fullmatch(r"\$\{([A-Za-z_][A-Za-z0-9_]*):queryparam\}", param)
        if qp:  # renders as var-<name>=<value of this dashboard's variable>
            name = qp.group(1)
            if name not in target.variables:
                problems.append(f"{prefix}: passes var-{name} (via ${{{name}:queryparam}}), "
                                f"but {target.uid} defines no variable {name!r}")
            continue
        if re.fullmatch(r"\$\{__url_time_range\}", param) or param in ("from=${__from}", "to=${__to}"):
            continue
        key, _, value = param.partition("=")
        if key.startswith("var-"):
            name = key[4:]
            var = target.variables.get(name)
            if var is None:
                problems.append(f"{prefix}: passes {key}, but {target.uid} defines no variable {name!r}")
            elif var.get("type") == "custom" and "$" not in value and value not in custom_values(var):
                problems.append(f"{prefix}: passes {key}={value!r}, not one of {sorted(custom_values(var))}")
        elif key not in ("from", "to", "orgId", "viewPanel", "refresh", "kiosk"):
            problems.append(f"{prefix}: unexpected query parameter {key!r} in {url!r}")
    return problems


def lint(dashboards, expected_empty):
    problems = []
    by_uid = {}
    for d in dashboards:
        name = d.path.name
        if not d.uid:
            problems.append(f"{name}: no uid (links and provisioning need a fixed uid)")
            continue
        if len(d.uid) > 40:
            problems.append(f"{name}: uid {d.uid!r} is longer than 40 characters")
        if d.uid in by_uid:
            problems.append(f"{name}: uid {d.uid!r} already used by {by_uid[d.uid].path.name}")
        by_uid[d.uid] = d

    for d in dashboards:
        name = d.path.name
        if d.data.get("id") is not None:
            problems.append(f"{name}: top-level id must be null for provisioned dashboards")
        if "__inputs" in d.data:
            problems.append(f"{name}: has __inputs (an export for sharing); provisioning does not resolve them")

        # Panel ids.
        seen = {}
        for p in d.panels():
            pid = p.get("id")
            if not isinstance(pid, int):
                problems.append(f"{name}: panel {p.get('title')!r} has no integer id")
            elif pid in seen:
                problems.append(f"{name}: panel id {pid} used by both {seen[pid]!r} and {p.get('title')!r}")
            else:
                seen[pid] = p.get("title")
            if p.get("type") != "row" and not p.get("targets"):
                problems.append(f"{name}: panel {pid} {p.get('title')!r} has no queries")

        # Datasources: only the variable, whose default is the one uid written out.
        ds = d.variables.get(DS_VAR)
        if ds is None or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
            problems.append(f"{name}: needs a variable {DS_VAR!r} of type datasource for prometheus")
        for path, key, value in walk(d.data):
            if key == "datasource":
                uid = value.get("uid") if isinstance(value, dict) else value
                if uid not in DS_REFS:
                    problems.append(f"{name}: {path}.datasource is {value!r}; use the variable (uid ${{{DS_VAR}}})")
            if isinstance(value, str) and "${DS_" in value:
                problems.append(f"{name}: {path}.{key} has an export placeholder {value!r}")

        # Variables used in queries, titles and variable definitions are defined.
        texts = []
        for p in d.panels():
            texts.append((f"panel {p.get('id')} title", p.get("title", "")))
            for t in p.get("targets", []) or []:
                texts.append((f"panel {p.get('id')} query {t.get('refId')}", t.get("expr", "")))
        for v in d.variables.values():
            texts.append((f"variable {v.get('name')}", variable_query(v) or ""))
        for where, text in texts:
            for ref in var_refs(text):
                if ref not in d.variables and not is_builtin(ref):
                    problems.append(f"{name}: {where} uses ${ref}, which is not defined")

        for where, url in collect_links(d):
            problems += check_link(d, where, url, by_uid)

    problems += lint_expected_empty(by_uid, expected_empty)
    return problems


def read_expected_empty(path):
    if not path.exists():
        return []
    return json.loads(path.read_text(encoding="utf-8"))


def lint_expected_empty(by_uid, path):
    problems = []
    try:
        entries = read_expected_empty(path)
    except (OSError, json.JSONDecodeError) as e:
        return [f"{path.name}: cannot read: {e}"]
    for i, e in enumerate(entries):
        where = f"{path.name}[{i}]"
        d = by_uid.get(e.get("dashboard"))
        if d is None:
            problems.append(f"{where}: no dashboard with uid {e.get('dashboard')!r}")
            continue
        panels = [p for p in d.panels() if p.get("title") == e.get("panel")]
        if not panels:
            problems.append(f"{where}: {d.uid} has no panel titled {e.get('panel')!r}")
            continue
        ref = e.get("ref_id")
        if ref and not any(t.get("refId") == ref for p in panels for t in p.get("targets", [])):
            problems.append(f"{where}: panel {e.get('panel')!r} has no query {ref!r}")
        if not e.get("reason"):
            problems.append(f"{where}: give the reason the query may be empty")
        arrival = e.get("arrival")
        if arrival is not None and (not isinstance(arrival, list) or not arrival
                                    or not set(arrival) <= set(ARRIVALS)):
            problems.append(f"{where}: arrival must be a non-empty list of {', '.join(ARRIVALS)}")
    return problems


# ---------------------------------------------------------------- query listing


def variable_query(var):
    q = var.get("query")
    if isinstance(q, dict):
        return q.get("query", "")
    return q if var.get("type") == "query" else ""


def prom_regex_escape(value):
    """What Grafana does to a multi/All variable's value inside a regex matcher."""
    return re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\\\1", value)


def variable_values(d, given):
    """Value of every variable of d, as Grafana would interpolate it."""
    values = dict(DEFAULT_BUILTIN_VALUES)
    values.update({k: v for k, v in given.items() if k.startswith("__")})
    missing = []
    for name, var in d.variables.items():
        kind = var.get("type")
        if name in given:
            value = given[name]
            if kind == "query" and (var.get("multi") or var.get("includeAll")) and value != var.get("allValue"):
                value = prom_regex_escape(value)
            values[name] = value
        elif kind == "datasource":
            values[name] = var.get("current", {}).get("value", "prometheus")
        elif kind in ("custom", "textbox", "constant"):
            values[name] = var.get("current", {}).get("value", var.get("query", ""))
        elif var.get("includeAll"):
            values[name] = var.get("allValue") or ".*"
        else:
            missing.append(name)
    return values, missing


def substitute(text, values):
    def repl(m):
        name = m.group(1) or m.group(3) or m.group(4)
        if name not in values:
            return m.group(0)
        return values[name]

    return VAR_RE.sub(repl, text)


LABEL_VALUES_RE = re.compile(r"^label_values\((?:(.+),\s*)?([A-Za-z_][A-Za-z0-9_]*)\)\s*$", re.S)


def list_queries(dashboards, given, expected_empty, arrival=None):
    """Every query with variables substituted. An expected-empty entry with an `arrival` list
    applies only when `arrival` (how the host's data arrived: scrape or otlp) is in it."""
    expected = {}
    for e in read_expected_empty(expected_empty):
        if e.get("arrival") is not None and arrival not in e["arrival"]:
            continue
        expected[(e.get("dashboard"), e.get("panel"), e.get("ref_id"))] = e.get("reason")
    out, problems = [], []
    for d in dashboards:
        values, missing = variable_values(d, given)
        if missing:
            problems.append(f"{d.path.name}: give a value for {', '.join(missing)} (--var NAME=VALUE)")
            continue
        for p in d.panels():
            for t in p.get("targets", []) or []:
                reason = expected.get((d.uid, p.get("title"), t.get("refId"))) or expected.get(
                    (d.uid, p.get("title"), None))
                out.append({
                    "kind": "panel",
                    "dashboard": d.uid,
                    "panel_id": p.get("id"),
                    "panel": p.get("title"),
                    "ref_id": t.get("refId"),
                    "instant": bool(t.get("instant")) and not t.get("range"),
                    "expr": substitute(t.get("expr", ""), values),
                    "may_be_empty": reason,
                })
        for name, var in d.variables.items():
            if var.get("type") != "query":
                continue
            query = substitute(variable_query(var), values)
            entry = {"kind": "variable", "dashboard": d.uid, "variable": name, "query": query}
            m = LABEL_VALUES_RE.match(query)
            if m:
                # label_values(selector, label) is /api/v1/label/<label>/values?match[]=<selector>;
                # `group by (label) (selector)` is the same question as a query.
                label, selector = m.group(2), m.group(1) or "{%s!=\"\"}" % m.group(2)
                entry.update({"match": m.group(1), "label": label,
                              "expr": f"group by ({label}) ({selector})"})
            else:
                entry["expr"] = query
            out.append(entry)
    return out, problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--dir", type=pathlib.Path, default=HERE,
                    help="folder of dashboard JSON files and expected-empty.json (default: %(default)s)")
    ap.add_argument("--list-queries", action="store_true",
                    help="print every panel and variable query, variables substituted, as JSON")
    ap.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                    help="variable value for --list-queries (repeatable; also __range, __rate_interval, ...)")
    args = ap.parse_args(argv)

    expected_empty = args.dir / EXPECTED_EMPTY_NAME
    paths = sorted(p for p in args.dir.glob("*.json") if p.name != EXPECTED_EMPTY_NAME)
    if not paths:
        print("lint.py: no dashboard JSON found", file=sys.stderr)
        return 1
    dashboards, problems = load(paths)
    problems += lint(dashboards, expected_empty)
    if problems:
        for p in problems:
            print(f"lint.py: {p}", file=sys.stderr)
        print(f"lint.py: {len(problems)} problem(s) in {len(paths)} dashboard(s)", file=sys.stderr)
        return 1

    if args.list_queries:
        given = {}
        for item in args.var:
            name, sep, value = item.partition("=")
            if not sep or not name:
                print(f"lint.py: --var wants NAME=VALUE, got {item!r}", file=sys.stderr)
                return 2
            given[name] = value
        queries, problems = list_queries(dashboards, given, expected_empty)
        if problems:
            for p in problems:
                print(f"lint.py: {p}", file=sys.stderr)
            return 2
        try:
            json.dump(queries, sys.stdout, indent=2, ensure_ascii=False)
            print()
        except BrokenPipeError:  # e.g. piped into `head`
            sys.stderr.close()
        return 0

    panels = sum(1 for d in dashboards for p in d.panels() if p.get("type") != "row")
    links = sum(len(collect_links(d)) for d in dashboards)
    print(f"lint.py: OK: {len(dashboards)} dashboards, {panels} panels, {links} links")
    return 0


if __name__ == "__main__":
    sys.exit(main())
