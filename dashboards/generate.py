#!/usr/bin/env python3
"""Generates the Grafana dashboards (fleet.json, host.json, processes.json) in this folder.

The JSON files are what Grafana provisions and what is committed; this script is their source so
that the three dashboards share one set of selectors, variables and link shapes. Edit here, run
`python3 dashboards/generate.py`, then `python3 dashboards/lint.py`, and commit all of them.

Queries follow the metric contract in README.md: agent series are selected by
`job="rmm-agent"` plus the `client`, `site` and `host` labels that both arrival paths (scrape
via HTTP SD, OTLP push) carry; nothing else is assumed about where a series came from.
"""

import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent

DS = {"type": "prometheus", "uid": "${datasource}"}
DEFAULT_DS_UID = "prometheus"  # the uid deploy/grafana provisions

FLEET_UID = "rmm-fleet"
HOST_UID = "rmm-host"
PROCESSES_UID = "rmm-host-processes"

# Agent series of the selected hosts.
AGENT = 'job="rmm-agent", client=~"$client", site=~"$site", host=~"$host"'
# Control-plane per-agent series of the selected hosts.
CP = 'client=~"$client", site=~"$site", host=~"$host"'
# Memory that can be reclaimed without swapping (see alerts/rmm.rules.yml).
AVAILABLE_STATES = 'state=~"free|buffered|cached|slab_reclaimable"'

PROCESS_ID = "process_pid, process_executable_name, process_owner"
SELECTED_PROCESS = 'process_executable_name=~"$process", process_pid=~"$pid"'


# ---------------------------------------------------------------- template variables


def datasource_var():
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {"selected": False, "text": "Prometheus", "value": DEFAULT_DS_UID},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "options": [],
        "skipUrlSync": False,
    }


def query_var(name, label, query, *, multi, include_all, hide=0):
    var = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": include_all,
        "hide": hide,
        "regex": "",
        "options": [],
        "skipUrlSync": False,
    }
    if include_all:
        var["allValue"] = ".*"
        var["current"] = {"selected": True, "text": ["All"] if multi else "All", "value": ["$__all"] if multi else "$__all"}
    else:
        var["current"] = {}
    return var


def custom_var(name, label, options, default):
    """A fixed list; `options` is [(text, value)]."""
    return {
        "name": name,
        "label": label,
        "type": "custom",
        "query": ", ".join(f"{text} : {value}" for text, value in options),
        "options": [
            {"selected": value == default, "text": text, "value": value} for text, value in options
        ],
        "current": {"selected": True, "text": next(t for t, v in options if v == default), "value": default},
        "multi": False,
        "includeAll": False,
        "hide": 0,
        "skipUrlSync": False,
    }


def textbox_var(name, label, default):
    return {
        "name": name,
        "label": label,
        "type": "textbox",
        "query": default,
        "current": {"selected": False, "text": default, "value": default},
        "options": [{"selected": True, "text": default, "value": default}],
        "hide": 0,
        "skipUrlSync": False,
    }


def host_vars(*, fleet):
    """client, site, host. The fleet view filters (multi, All); the host views pick one host."""

    def source(*matchers):
        if fleet:
            # Clients known to the control plane are listed even before any of their agents report.
            base = ['__name__=~"system_uptime_seconds|rmm_cp_agent_info"']
            return "{" + ", ".join(base + list(matchers)) + "}"
        return "system_uptime_seconds{" + ", ".join(['job="rmm-agent"'] + list(matchers)) + "}"

    by_client = 'client=~"$client"'
    by_site = 'site=~"$site"'
    return [
        query_var("client", "Client", f"label_values({source()}, client)", multi=fleet, include_all=True),
        query_var("site", "Site", f"label_values({source(by_client)}, site)", multi=fleet, include_all=True),
        query_var("host", "Host", f"label_values({source(by_client, by_site)}, host)",
                  multi=fleet, include_all=fleet),
    ]


# ---------------------------------------------------------------- panels


def target(expr, ref="A", *, legend="__auto", instant=False, table=False):
    t = {"datasource": DS, "refId": ref, "expr": expr, "legendFormat": legend, "editorMode": "code"}
    if instant or table:
        t.update({"instant": True, "range": False})
    else:
        t.update({"instant": False, "range": True})
    if table:
        t["format"] = "table"
    return t


def link(title, url):
    return {"title": title, "url": url, "targetBlank": False}


def _defaults(unit=None, *, min_=None, max_=None, links=None, thresholds=None, extra=None):
    d = {
        "color": {"mode": "palette-classic"},
        "thresholds": thresholds
        or {"mode": "absolute", "steps": [{"color": "green", "value": None}]},
    }
    if unit:
        d["unit"] = unit
    if min_ is not None:
        d["min"] = min_
    if max_ is not None:
        d["max"] = max_
    if links:
        d["links"] = links
    if extra:
        d.update(extra)
    return d


def timeseries(title, targets, *, unit=None, stack=False, min_=None, max_=None, links=None,
               panel_links=None, description=None, legend_calcs=("mean", "max", "lastNotNull")):
    p = {
        "type": "timeseries",
        "title": title,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {
            "defaults": _defaults(
                unit,
                min_=min_,
                max_=max_,
                links=links,
                extra={
                    "custom": {
                        "drawStyle": "line",
                        "lineWidth": 1,
                        "fillOpacity": 20 if stack else 0,
                        "showPoints": "never",
                        "spanNulls": False,
                        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                    }
                },
            ),
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "showLegend": True,
                       "calcs": list(legend_calcs)},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }
    if panel_links:
        p["links"] = panel_links
    if description:
        p["description"] = description
    return p


def stat(title, expr, *, unit=None, thresholds=None, decimals=None, description=None,
         text_field=None):
    p = {
        "type": "stat",
        "title": title,
        "datasource": DS,
        "targets": [target(expr, instant=True, table=text_field is not None)],
        "fieldConfig": {"defaults": _defaults(unit, thresholds=thresholds), "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "textMode": "auto",
            "orientation": "auto",
        },
    }
    if text_field:
        # Show a label (e.g. a version string) instead of the sample value.
        p["options"]["reduceOptions"] = {"calcs": ["lastNotNull"], "fields": f"/^{text_field}$/", "values": False}
        p["options"]["textMode"] = "value"
    if decimals is not None:
        p["fieldConfig"]["defaults"]["decimals"] = decimals
    if description:
        p["description"] = description
    return p


def bargauge(title, expr, legend, *, description=None):
    return {
        "type": "bargauge",
        "title": title,
        "datasource": DS,
        "description": description or "",
        "targets": [target(expr, legend=legend, instant=True)],
        "fieldConfig": {"defaults": _defaults("short", min_=0), "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal",
            "displayMode": "basic",
            "showUnfilled": True,
            "valueMode": "color",
            "namePlacement": "auto",
            "sizing": "auto",
        },
    }


def table(title, targets, *, rename, hide=(), sort_by=None, sort_key=None, units=None,
          links=None, description=None, gauge_fields=()):
    """Instant queries as one table: one row per label set, one column per query.

    `rename` maps raw field names ("Value" for one query, "Value #A" for several, or label
    names) to column titles. `sort_key` sorts rows by a (hidden) field before display;
    `sort_by` is the table's own default sort on a displayed column.
    """
    transformations = []
    if len(targets) > 1:
        transformations.append({"id": "merge", "options": {}})
    if sort_key:
        transformations.append({"id": "sortBy", "options": {"fields": {}, "sort": [{"field": sort_key, "desc": True}]}})
    exclude = {"Time": True}
    exclude.update({name: True for name in hide})
    transformations.append(
        {"id": "organize", "options": {"excludeByName": exclude, "indexByName": {}, "renameByName": rename}}
    )
    overrides = []
    for field, unit in (units or {}).items():
        props = [{"id": "unit", "value": unit}]
        if field in gauge_fields:
            props += [
                {"id": "custom.cellOptions", "value": {"type": "gauge", "mode": "basic"}},
                {"id": "min", "value": 0},
                {"id": "max", "value": 1},
                {"id": "thresholds", "value": {"mode": "absolute", "steps": [
                    {"color": "green", "value": None}, {"color": "orange", "value": 0.8}, {"color": "red", "value": 0.9}]}},
            ]
        overrides.append({"matcher": {"id": "byName", "options": rename.get(field, field)}, "properties": props})
    p = {
        "type": "table",
        "title": title,
        "datasource": DS,
        "targets": targets,
        "transformations": transformations,
        "fieldConfig": {
            "defaults": _defaults(links=links, extra={"custom": {"align": "auto", "filterable": True}}),
            "overrides": overrides,
        },
        "options": {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "fields": ""}},
    }
    if sort_by:
        p["options"]["sortBy"] = [{"displayName": sort_by, "desc": True}]
    if description:
        p["description"] = description
    return p


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def layout(items):
    """Assigns ids and gridPos. `items` is a list of rows; each row a list of (width, height,
    panel) or a row panel alone."""
    panels, y, next_id = [], 0, 1
    for item in items:
        if isinstance(item, dict):  # a row header
            item["id"] = next_id
            item["gridPos"] = {"x": 0, "y": y, "w": 24, "h": 1}
            next_id += 1
            y += 1
            panels.append(item)
            continue
        x, height = 0, 0
        for w, h, panel in item:
            panel["id"] = next_id
            panel["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
            next_id += 1
            x += w
            height = max(height, h)
            panels.append(panel)
        if x > 24:
            sys.exit(f"layout: row wider than 24 columns: {[p['title'] for _, _, p in item]}")
        y += height
    return panels


def dashboard(uid, title, description, variables, panels, links=()):
    return {
        "id": None,
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["rmm"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "annotations": {"list": []},
        "links": list(links),
        "templating": {"list": variables},
        "panels": panels,
    }


def dash_link(title, url, tooltip=""):
    return {"title": title, "type": "link", "url": url, "tooltip": tooltip, "icon": "dashboard",
            "keepTime": True, "includeVars": False, "targetBlank": False, "asDropdown": False, "tags": []}


# ---------------------------------------------------------------- links between dashboards

# From a table row that has client, site and host columns.
HOST_FROM_ROW = (
    f"/d/{HOST_UID}/host?var-client=${{__data.fields.client}}&var-site=${{__data.fields.site}}"
    f"&var-host=${{__data.fields.host}}&${{__url_time_range}}"
)


def processes_from_series(sort):
    """From a host-level series (client, site, host labels) to its processes, sorted."""
    return (
        f"/d/{PROCESSES_UID}/processes?var-client=${{__field.labels.client}}&var-site=${{__field.labels.site}}"
        f"&var-host=${{__field.labels.host}}&var-sort={sort}&${{__url_time_range}}"
    )


def processes_from_vars(sort):
    """Panel header link: same host, by the dashboard's own variables."""
    return (
        f"/d/{PROCESSES_UID}/processes?${{client:queryparam}}&${{site:queryparam}}&${{host:queryparam}}"
        f"&var-sort={sort}&${{__url_time_range}}"
    )


PROCESS_DETAIL_FROM_SERIES = (
    f"/d/{PROCESSES_UID}/processes?${{client:queryparam}}&${{site:queryparam}}&${{host:queryparam}}"
    "&${sort:queryparam}&var-process=${__field.labels.process_executable_name}"
    "&var-pid=${__field.labels.process_pid}&${__url_time_range}"
)
PROCESS_DETAIL_FROM_ROW = (
    f"/d/{PROCESSES_UID}/processes?${{client:queryparam}}&${{site:queryparam}}&${{host:queryparam}}"
    "&${sort:queryparam}&var-process=${__data.fields.process_executable_name}"
    "&var-pid=${__data.fields.process_pid}&${__url_time_range}"
)


# ---------------------------------------------------------------- fleet


def fleet():
    reporting = f'group by (client, site, instance) (system_uptime_seconds{{{AGENT}}})'
    enrolled = f'group by (client, site, agent) (rmm_cp_agent_info{{{CP}}})'
    red_above_zero = {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}]}
    orange_above_zero = {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "orange", "value": 1}]}
    blue = {"mode": "absolute", "steps": [{"color": "blue", "value": None}]}
    host_links = [link("Open host dashboard", HOST_FROM_ROW)]
    ranking_units = {"Value": "percentunit"}

    panels = layout([
        row("Agents"),
        [
            (4, 4, stat("Agents reporting", f"count({reporting}) or vector(0)", thresholds=blue,
                        description="Agents with current series in Prometheus, scraped or pushed.")),
            (4, 4, stat("Agents enrolled", f"count({enrolled}) or vector(0)", thresholds=blue,
                        description="Agents the control plane knows (rmm_cp_agent_info).")),
            (4, 4, stat("Scrape targets down", f'count(up{{{AGENT}}} == 0) or vector(0)', thresholds=red_above_zero)),
            (4, 4, stat(
                "Enrolled but silent",
                f"count(group by (agent) (rmm_cp_agent_info{{{CP}}}) unless on (agent) "
                'group by (agent) (system_uptime_seconds{job="rmm-agent"})) or vector(0)',
                thresholds=orange_above_zero,
                description="Enrolled agents with no series in Prometheus at all (alert RmmAgentSilent).")),
            (4, 4, stat(
                "Out of date",
                f"(count(group by (agent, version) (rmm_cp_agent_info{{{CP}}}) unless on (version) "
                "group by (version) (rmm_cp_release_latest_info)) and on () count(rmm_cp_release_latest_info) > 0) "
                "or vector(0)",
                thresholds=orange_above_zero,
                description="Agents whose version is the latest release of no channel (see dashboards/README.md).")),
            (4, 4, stat("OpAMP sessions (all clients)", "sum(rmm_cp_agents_connected)", thresholds=blue,
                        description="Agents connected to the control plane, summed over its replicas.")),
        ],
        [
            (10, 8, table(
                "Agents by client and site",
                [
                    target(f"count by (client, site) ({reporting})", "A", table=True),
                    target(f"count by (client, site) ({enrolled})", "B", table=True),
                    target(f'count by (client, site) (up{{{AGENT}}} == 0)', "C", table=True),
                ],
                rename={"client": "Client", "site": "Site", "Value #A": "Reporting", "Value #B": "Enrolled",
                        "Value #C": "Scrape down"},
                links=[link("Filter the fleet to this site",
                            f"/d/{FLEET_UID}/fleet?var-client=${{__data.fields.client}}"
                            "&var-site=${__data.fields.site}&${__url_time_range}")],
            )),
            (14, 8, timeseries(
                "Agents reporting by client and site",
                [target(f"count by (client, site) ({reporting})", legend="{{client}} / {{site}}")],
                unit="short", min_=0, legend_calcs=("lastNotNull", "min"))),
        ],
        row("Versions, configuration and updates"),
        [
            (6, 8, bargauge("Agent versions",
                            f"count by (version) (group by (agent, version) (rmm_cp_agent_info{{{CP}}}))",
                            "{{version}}")),
            (6, 8, table("Latest release per channel",
                         [target("max by (channel, version) (rmm_cp_release_latest_info)", table=True)],
                         rename={"channel": "Channel", "version": "Version"}, hide=("Value",))),
            (6, 8, bargauge("Config status",
                            f"count by (status) (group by (agent, status) (rmm_cp_agent_config_status{{{CP}}} == 1))",
                            "{{status}}")),
            (6, 8, bargauge("Update status",
                            f"count by (status) (group by (agent, status) (rmm_cp_agent_update_status{{{CP}}} == 1))",
                            "{{status}}")),
        ],
        [
            (24, 7, table(
                "Agents needing attention",
                [target(
                    'label_replace(group by (client, site, host, agent, status) '
                    f'(rmm_cp_agent_config_status{{{CP}, status=~"failed|drifted"}} == 1), "kind", "config", "", "") '
                    'or label_replace(group by (client, site, host, agent, status) '
                    f'(rmm_cp_agent_update_status{{{CP}, status=~"failed|rolled_back"}} == 1), "kind", "update", "", "")',
                    table=True)],
                rename={"client": "Client", "site": "Site", "host": "Host", "agent": "Agent", "kind": "What",
                        "status": "Status"},
                hide=("Value",),
                links=host_links,
                description="Config failed or drifted, update failed or rolled back. Click a row for the host.")),
        ],
        row("Hosts ranked"),
        [
            (8, 10, table(
                "Hosts by CPU busy (average over the range)",
                [target(
                    "topk(20, 1 - avg by (client, site, host) "
                    f'(avg_over_time(system_cpu_utilization_ratio{{{AGENT}, state="idle"}}[$__range])))',
                    table=True)],
                rename={"client": "Client", "site": "Site", "host": "Host", "Value": "CPU busy"},
                units=ranking_units, gauge_fields=("Value",), sort_by="CPU busy", links=host_links)),
            (8, 10, table(
                "Hosts by memory in use",
                [target(
                    "topk(20, 1 - "
                    f"sum by (client, site, host) (system_memory_usage_bytes{{{AGENT}, {AVAILABLE_STATES}}}) "
                    f"/ sum by (client, site, host) (system_memory_usage_bytes{{{AGENT}}}))",
                    table=True)],
                rename={"client": "Client", "site": "Site", "host": "Host", "Value": "Memory in use"},
                units=ranking_units, gauge_fields=("Value",), sort_by="Memory in use", links=host_links)),
            (8, 10, table(
                "Hosts by disk pressure (fullest filesystem)",
                [target(
                    "topk(20, max by (client, site, host) ("
                    f'sum without (state) (system_filesystem_usage_bytes{{{AGENT}, state="used", mode!="ro"}}) '
                    f'/ sum without (state) (system_filesystem_usage_bytes{{{AGENT}, state=~"used|free", mode!="ro"}})))',
                    table=True)],
                rename={"client": "Client", "site": "Site", "host": "Host", "Value": "Fullest filesystem"},
                units=ranking_units, gauge_fields=("Value",), sort_by="Fullest filesystem", links=host_links)),
        ],
    ])
    return dashboard(
        FLEET_UID, "RMM / Fleet",
        "Agents up by client and site, versions, config and update status, hosts ranked by CPU, memory and disk.",
        [datasource_var(), *host_vars(fleet=True)],
        panels,
        links=[dash_link("Host", f"/d/{HOST_UID}/host", "One host in detail")],
    )


# ---------------------------------------------------------------- host


def host():
    fs_used = f'sum by (mountpoint, device, type, mode) (system_filesystem_usage_bytes{{{AGENT}, state="used"}})'
    fs_avail_total = f'sum by (mountpoint, device, type, mode) (system_filesystem_usage_bytes{{{AGENT}, state=~"used|free"}})'
    panels = layout([
        [
            (4, 4, stat("Uptime", f"max(system_uptime_seconds{{{AGENT}}})", unit="dtdurations")),
            (4, 4, stat("CPU busy", f'1 - avg(system_cpu_utilization_ratio{{{AGENT}, state="idle"}})',
                        unit="percentunit", decimals=1)),
            (4, 4, stat("Logical CPUs", f'count(system_cpu_utilization_ratio{{{AGENT}, state="idle"}})')),
            (4, 4, stat("Memory", f"sum(system_memory_usage_bytes{{{AGENT}}})", unit="bytes")),
            (4, 4, stat("Load (1m)", f"max(system_cpu_load_average_1m{{{AGENT}}})", decimals=2)),
            (4, 4, stat("Agent version", f"max by (version) (rmm_agent_build_info{{{AGENT}}})",
                        text_field="version")),
        ],
        [
            (24, 4, table(
                "Host facts",
                [target(
                    'target_info{job="rmm-agent"} * on (instance) group_left (client, site, host) '
                    f"group by (instance, client, site, host) (system_uptime_seconds{{{AGENT}}})",
                    table=True)],
                rename={"host_name": "Host name", "host_id": "Host id", "os_type": "OS",
                        "os_description": "OS release", "os_version": "Kernel", "host_arch": "Architecture",
                        "service_version": "Agent version", "instance": "Agent id"},
                hide=("Value", "job", "client", "site", "host"),
                description="Resource attributes of the agent (target_info), joined on the agent id.")),
        ],
        row("CPU and memory"),
        [
            (12, 8, timeseries(
                "CPU by state",
                [target(f'avg by (client, site, host, state) (system_cpu_utilization_ratio{{{AGENT}, state!="idle"}})',
                        legend="{{state}}")],
                unit="percentunit", stack=True, min_=0, max_=1,
                links=[link("Top processes by CPU (this time range)", processes_from_series("cpu"))],
                panel_links=[link("Top processes by CPU", processes_from_vars("cpu"))],
                description="Share of all logical CPUs; click for the processes behind it.")),
            (12, 8, timeseries(
                "Memory by state",
                [target(f"sum by (client, site, host, state) (system_memory_usage_bytes{{{AGENT}}})",
                        legend="{{state}}")],
                unit="bytes", stack=True, min_=0,
                links=[link("Top processes by memory (this time range)", processes_from_series("memory"))],
                panel_links=[link("Top processes by memory", processes_from_vars("memory"))],
                description="States sum to total memory; click for the processes behind it.")),
        ],
        [
            (8, 8, timeseries(
                "CPU busy per logical CPU",
                [target(f'1 - avg by (cpu) (system_cpu_utilization_ratio{{{AGENT}, state="idle"}})', legend="{{cpu}}")],
                unit="percentunit", min_=0, max_=1)),
            (8, 8, timeseries(
                "Load average",
                [
                    target(f"max(system_cpu_load_average_1m{{{AGENT}}})", "A", legend="1m"),
                    target(f"max(system_cpu_load_average_5m{{{AGENT}}})", "B", legend="5m"),
                    target(f"max(system_cpu_load_average_15m{{{AGENT}}})", "C", legend="15m"),
                ],
                unit="short", min_=0)),
            (8, 8, timeseries(
                "Processes by status",
                [target(f"sum by (status) (system_processes_count{{{AGENT}}})", legend="{{status}}")],
                unit="short", min_=0)),
        ],
        [
            (12, 8, timeseries(
                "Swap usage",
                [target(f"sum by (state) (system_paging_usage_bytes{{{AGENT}}})", legend="{{state}}")],
                unit="bytes", stack=True, min_=0)),
            (12, 8, timeseries(
                "Swap activity",
                [target(f'sum by (direction) (rate(system_paging_operations_total{{{AGENT}, type="major"}}[$__rate_interval]))',
                        legend="{{direction}}")],
                unit="suffix: pages/s", min_=0,
                description="Pages swapped in and out (alert RmmHostSwapActivity above 100/s).")),
        ],
        row("Filesystems"),
        [
            (12, 8, table(
                "Filesystems",
                [
                    target(fs_used, "A", table=True),
                    target(f"sum by (mountpoint, device, type, mode) (system_filesystem_usage_bytes{{{AGENT}}})", "B", table=True),
                    target(f"{fs_used} / {fs_avail_total}", "C", table=True),
                ],
                rename={"mountpoint": "Mount", "device": "Device", "type": "Type", "mode": "Mode",
                        "Value #A": "Used", "Value #B": "Size", "Value #C": "Used %"},
                units={"Value #A": "bytes", "Value #B": "bytes", "Value #C": "percentunit"},
                gauge_fields=("Value #C",), sort_by="Used %",
                description="Used % is used / (used + free), as df shows it; reserved space counts in Size only.")),
            (12, 8, timeseries(
                "Filesystem used %",
                [target(f"{fs_used} / {fs_avail_total}", legend="{{mountpoint}}")],
                unit="percentunit", min_=0, max_=1)),
        ],
        row("Disk and network"),
        [
            (12, 8, timeseries(
                "Disk I/O",
                [target(f"sum by (device, direction) (rate(system_disk_io_bytes_total{{{AGENT}}}[$__rate_interval]))",
                        legend="{{device}} {{direction}}")],
                unit="Bps", min_=0)),
            (12, 8, timeseries(
                "Disk operations",
                [target(f"sum by (device, direction) (rate(system_disk_operations_total{{{AGENT}}}[$__rate_interval]))",
                        legend="{{device}} {{direction}}")],
                unit="iops", min_=0)),
        ],
        [
            (12, 8, timeseries(
                "Network I/O",
                [target(f"sum by (device, direction) (rate(system_network_io_bytes_total{{{AGENT}}}[$__rate_interval]))",
                        legend="{{device}} {{direction}}")],
                unit="Bps", min_=0)),
            (12, 8, timeseries(
                "Network errors and drops",
                [
                    target(f"sum by (device, direction) (rate(system_network_errors_total{{{AGENT}}}[$__rate_interval]))",
                           "A", legend="errors {{device}} {{direction}}"),
                    target(f"sum by (device, direction) (rate(system_network_dropped_total{{{AGENT}}}[$__rate_interval]))",
                           "B", legend="dropped {{device}} {{direction}}"),
                ],
                unit="pps", min_=0)),
        ],
        row("Temperatures and agent"),
        [
            (12, 8, timeseries(
                "Temperatures",
                [target(f"max by (hw_id, hw_name) (hw_temperature_celsius{{{AGENT}}})", legend="{{hw_name}} ({{hw_id}})")],
                unit="celsius",
                description="hwmon and thermal-zone sensors; none on most virtual machines.")),
            (12, 8, timeseries(
                "Agent collector errors",
                [target(f"sum by (collector) (increase(rmm_agent_collector_errors_total{{{AGENT}}}[$__rate_interval]))",
                        legend="{{collector}}")],
                unit="short", min_=0,
                description="A failing collector is logged and counted, never fatal.")),
        ],
    ])
    return dashboard(
        HOST_UID, "RMM / Host",
        "One host: CPU, memory, swap, load, filesystems, disk, network, temperatures, uptime.",
        [datasource_var(), *host_vars(fleet=False)],
        panels,
        links=[
            dash_link("Fleet", f"/d/{FLEET_UID}/fleet?${{client:queryparam}}&${{site:queryparam}}", "All hosts"),
            dash_link("Processes", f"/d/{PROCESSES_UID}/processes?${{client:queryparam}}&${{site:queryparam}}&${{host:queryparam}}",
                      "Top processes of this host"),
        ],
    )


# ---------------------------------------------------------------- processes


def processes():
    sel = f"{{{AGENT}}}"
    # The sort key: the metric named by $sort ("cpu" or "memory"), two matchers on __name__.
    sort_metric = (
        '{__name__=~"process_cpu_utilization_ratio|process_memory_usage_bytes", '
        f'__name__=~"process_${{sort}}_.*", {AGENT}}}'
    )
    detail = f"{{{AGENT}, {SELECTED_PROCESS}}}"
    panels = layout([
        [
            (24, 11, table(
                "Top processes over the range, sorted by $sort",
                [
                    target(f"sum by ({PROCESS_ID}) (avg_over_time({sort_metric}[$__range]))", "A", table=True),
                    target(f"sum by ({PROCESS_ID}) (avg_over_time(process_cpu_utilization_ratio{sel}[$__range]))", "B", table=True),
                    # Peak of the process total (user + system), not the sum of per-state peaks.
                    target(f"max_over_time((sum by ({PROCESS_ID}) (process_cpu_utilization_ratio{sel}))[$__range:$__interval])",
                           "C", table=True),
                    target(f"sum by ({PROCESS_ID}) (avg_over_time(process_memory_usage_bytes{sel}[$__range]))", "D", table=True),
                    target(f"sum by ({PROCESS_ID}) (avg_over_time(process_memory_virtual_bytes{sel}[$__range]))", "E", table=True),
                ],
                rename={"process_pid": "PID", "process_executable_name": "Name", "process_owner": "Owner",
                        "Value #B": "CPU (avg)", "Value #C": "CPU (peak)", "Value #D": "Resident memory (avg)",
                        "Value #E": "Virtual memory (avg)"},
                hide=("Value #A",),
                sort_key="Value #A",
                units={"Value #B": "percentunit", "Value #C": "percentunit", "Value #D": "bytes", "Value #E": "bytes"},
                gauge_fields=("Value #B",),
                links=[link("History of this process", PROCESS_DETAIL_FROM_ROW)],
                description=("The top N processes by CPU and by memory during the range, plus `other` (everything "
                             "else, empty PID). CPU is a share of the whole machine. Click a row for its history."))),
        ],
        [
            (12, 9, timeseries(
                "CPU by process",
                [target(f"sum by (process_pid, process_executable_name) (process_cpu_utilization_ratio{sel})",
                        legend="{{process_executable_name}} {{process_pid}}")],
                unit="percentunit", stack=True, min_=0,
                links=[link("History of this process", PROCESS_DETAIL_FROM_SERIES)],
                description="Stacked: the top processes plus `other` add up to the host's process CPU.")),
            (12, 9, timeseries(
                "Resident memory by process",
                [target(f"sum by (process_pid, process_executable_name) (process_memory_usage_bytes{sel})",
                        legend="{{process_executable_name}} {{process_pid}}")],
                unit="bytes", stack=True, min_=0,
                links=[link("History of this process", PROCESS_DETAIL_FROM_SERIES)])),
        ],
        row("Selected process: $process (pid $pid)"),
        [
            (8, 8, timeseries(
                "CPU of the selected process by state",
                [target(f"sum by (process_pid, process_executable_name, state) (process_cpu_utilization_ratio{detail})",
                        legend="{{process_executable_name}} {{process_pid}} {{state}}")],
                unit="percentunit", stack=True, min_=0,
                panel_links=[link(
                    "All processes",
                    f"/d/{PROCESSES_UID}/processes?${{client:queryparam}}&${{site:queryparam}}&${{host:queryparam}}"
                    "&${sort:queryparam}&var-process=$__all&var-pid=.*&${__url_time_range}")])),
            (8, 8, timeseries(
                "Memory of the selected process",
                [
                    target(f"sum by (process_pid, process_executable_name) (process_memory_usage_bytes{detail})",
                           "A", legend="resident {{process_executable_name}} {{process_pid}}"),
                    target(f"sum by (process_pid, process_executable_name) (process_memory_virtual_bytes{detail})",
                           "B", legend="virtual {{process_executable_name}} {{process_pid}}"),
                ],
                unit="bytes", min_=0)),
            (8, 8, timeseries(
                "CPU cores used by the selected process",
                [target(f"sum by (process_pid, process_executable_name) (rate(process_cpu_time_seconds_total{detail}[$__rate_interval]))",
                        legend="{{process_executable_name}} {{process_pid}}")],
                unit="short", min_=0,
                description="CPU seconds per second (1 = one core busy); alert RmmRunawayProcess fires above 0.9 for 30 minutes.")),
        ],
    ])
    variables = [
        datasource_var(),
        *host_vars(fleet=False),
        custom_var("sort", "Sort by", [("cpu", "cpu"), ("memory", "memory")], "cpu"),
        query_var("process", "Process",
                  f"label_values(process_memory_usage_bytes{{{AGENT}}}, process_executable_name)",
                  multi=False, include_all=True),
        textbox_var("pid", "PID (regex; empty = other)", ".*"),
    ]
    return dashboard(
        PROCESSES_UID, "RMM / Host processes",
        "One host's top processes (pid, name, owner, CPU, memory) and their history, with the `other` remainder.",
        variables,
        panels,
        links=[
            dash_link("Host", f"/d/{HOST_UID}/host?${{client:queryparam}}&${{site:queryparam}}&${{host:queryparam}}",
                      "Back to the host"),
            dash_link("Fleet", f"/d/{FLEET_UID}/fleet", "All hosts"),
        ],
    )


DASHBOARDS = (("fleet.json", fleet), ("host.json", host), ("processes.json", processes))


def main():
    for name, build in DASHBOARDS:
        path = HERE / name
        path.write_text(json.dumps(build(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {path.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
