#!/usr/bin/env python3
"""Prints two hours of synthetic series shaped exactly like the metric contract (README.md), as
OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`.

Used by smoke.sh to run every dashboard query and alert rule against a real Prometheus before
real agents exist; the live test with real agents replaces the data, not the queries. Two
hosts: acme/hq/web-01 looks scraped (SD labels also on target_info and `up`), globex/lab/lab-01
looks pushed over OTLP (no `up`; target_info without client/site/host).

    python3 dashboards/synthetic.py [--hours 2] [--step 15] > data.om
"""

import argparse
import math
import sys
import time

AGENT_LABELS = {
    "scraped": {"job": "rmm-agent", "instance": "0190f3c2-6a1e-7b3c-9d2e-000000000001",
                "agent": "0190f3c2-6a1e-7b3c-9d2e-000000000001",
                "client": "acme", "site": "hq", "host": "web-01"},
    "pushed": {"job": "rmm-agent", "instance": "0190f3c2-6a1e-7b3c-9d2e-000000000002",
               "agent": "0190f3c2-6a1e-7b3c-9d2e-000000000002",
               "client": "globex", "site": "lab", "host": "lab-01"},
}
CP = {"job": "rmm-control-plane", "instance": "127.0.0.1:8080"}
GIB = 1 << 30


class Writer:
    def __init__(self, times):
        self.times = times
        self.families = {}  # name -> list of (labels, fn(t, i))

    def add(self, name, labels, fn):
        self.families.setdefault(name, []).append((labels, fn))

    def write(self, out):
        for name, series in self.families.items():
            out.write(f"# TYPE {name} unknown\n")
            for labels, fn in series:
                lbl = ",".join(f'{k}="{v}"' for k, v in labels.items())
                for i, t in enumerate(self.times):
                    value = fn(t - self.times[0], i)
                    if value is None:
                        continue
                    out.write(f"{name}{{{lbl}}} {value:.6f} {t:.3f}\n")
        out.write("# EOF\n")


def counter(rate):
    return lambda dt, i: rate * dt


def const(v):
    return lambda dt, i: v


def wave(base, amp, period=1800.0):
    return lambda dt, i: base + amp * math.sin(2 * math.pi * dt / period)


def host_series(w, kind, labels):
    L = lambda **extra: {**labels, **extra}  # noqa: E731
    cpu_share = {"user": 0.30, "system": 0.10, "wait": 0.05, "idle": 0.55}
    for cpu in ("cpu0", "cpu1"):
        for state, share in cpu_share.items():
            w.add("system_cpu_time_seconds_total", L(cpu=cpu, state=state), counter(share))
            w.add("system_cpu_utilization_ratio", L(cpu=cpu, state=state), const(share))
    for m, v in (("1m", 0.8), ("5m", 0.7), ("15m", 0.6)):
        w.add(f"system_cpu_load_average_{m}", L(), wave(v, 0.2))
    for state, v in (("used", 2 * GIB), ("free", GIB), ("buffered", 0.1 * GIB), ("cached", 0.8 * GIB),
                     ("slab_reclaimable", 0.05 * GIB), ("slab_unreclaimable", 0.05 * GIB)):
        w.add("system_memory_usage_bytes", L(state=state), const(v))
    for state, v in (("used", 0.2 * GIB), ("free", 1.8 * GIB), ("cached", 0.01 * GIB)):
        w.add("system_paging_usage_bytes", L(device="/dev/sda2", state=state), const(v))
    for direction in ("page_in", "page_out"):
        w.add("system_paging_operations_total", L(direction=direction, type="major"), counter(0.5))
        w.add("system_paging_operations_total", L(direction=direction, type="minor"), counter(40))
    for mount, dev, size, used in (("/", "/dev/sda1", 50 * GIB, 20 * GIB), ("/boot", "/dev/sda3", GIB, 0.3 * GIB)):
        fs = dict(device=dev, mode="rw", mountpoint=mount, type="ext4")
        w.add("system_filesystem_usage_bytes", L(**fs, state="used"), const(used))
        w.add("system_filesystem_usage_bytes", L(**fs, state="free"), const(size * 0.95 - used))
        w.add("system_filesystem_usage_bytes", L(**fs, state="reserved"), const(size * 0.05))
    for direction, rate in (("read", 2e5), ("write", 5e5)):
        w.add("system_disk_io_bytes_total", L(device="sda", direction=direction), counter(rate))
        w.add("system_disk_operations_total", L(device="sda", direction=direction), counter(rate / 4096))
    for direction, rate in (("receive", 1e5), ("transmit", 3e4)):
        w.add("system_network_io_bytes_total", L(device="eth0", direction=direction), counter(rate))
        w.add("system_network_errors_total", L(device="eth0", direction=direction), counter(0))
        w.add("system_network_dropped_total", L(device="eth0", direction=direction), counter(0.01))
    w.add("system_uptime_seconds", L(), lambda dt, i: 86400 + dt)
    for status, v in (("running", 2), ("sleeping", 180)):
        w.add("system_processes_count", L(status=status), const(v))
    w.add("hw_temperature_celsius", L(hw_id="hwmon1_temp1", hw_name="Package id 0"), wave(55, 5))

    facts = {"job": labels["job"], "instance": labels["instance"], "host_name": labels["host"],
             "host_id": f"machine-{labels['host']}", "os_type": "linux", "service_version": "0.1.0"}
    if kind == "scraped":  # HTTP SD adds its target labels to every scraped series
        facts.update({k: labels[k] for k in ("client", "site", "host", "agent")})
        w.add("up", L(), const(1))
    w.add("target_info", facts, const(1))
    w.add("rmm_agent_build_info", L(version="0.1.0"), const(1))
    w.add("rmm_agent_collector_errors_total", L(collector="temperature"), counter(0))

    procs = (("1201", "postgres", "postgres", 0.12, 0.6 * GIB), ("880", "nginx", "www-data", 0.05, 0.1 * GIB),
             ("501", "rmm-agent", "root", 0.002, 0.01 * GIB), (None, "other", "", 0.08, 0.9 * GIB))
    for pid, name, owner, cpu, rss in procs:
        ident = {"process_executable_name": name, "process_owner": owner}
        if pid is not None:  # `other` has an empty pid, which Prometheus stores as no label
            ident["process_pid"] = pid
        if not owner:
            del ident["process_owner"]
        for state, share in (("user", 0.8), ("system", 0.2)):
            w.add("process_cpu_utilization_ratio", L(**ident, state=state), wave(cpu * share, cpu * share / 4))
            w.add("process_cpu_time_seconds_total", L(**ident, state=state), counter(cpu * share * 2))
        w.add("process_memory_usage_bytes", L(**ident), const(rss))
        w.add("process_memory_virtual_bytes", L(**ident), const(rss * 3))


def control_plane_series(w):
    w.add("up", CP, const(1))
    status = {"scraped": ("0.1.0", "applied", "installed"), "pushed": ("0.2.0", "failed", "rolled_back")}
    for kind, labels in AGENT_LABELS.items():
        version, config, update = status[kind]
        who = {k: labels[k] for k in ("agent", "client", "site", "host")}
        w.add("rmm_cp_agent_info", {**CP, **who, "version": version, "os": "linux", "arch": "x86_64"}, const(1))
        w.add("rmm_cp_agent_config_status", {**CP, **who, "status": config}, const(1))
        w.add("rmm_cp_agent_update_status", {**CP, **who, "status": update}, const(1))
        w.add("rmm_cp_agents", {**CP, "client": labels["client"], "site": labels["site"], "status": "online"}, const(1))
    w.add("rmm_cp_agents_connected", CP, const(2))
    w.add("rmm_cp_release_latest_info", {**CP, "channel": "stable", "version": "0.2.0"}, const(1))
    w.add("rmm_cp_enrollments_total", {**CP, "result": "ok"}, counter(0.001))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=2)
    ap.add_argument("--step", type=float, default=15, help="seconds between samples")
    args = ap.parse_args()
    end = math.floor(time.time())
    n = int(args.hours * 3600 / args.step)
    w = Writer([end - (n - i) * args.step for i in range(n + 1)])
    for kind, labels in AGENT_LABELS.items():
        host_series(w, kind, labels)
    control_plane_series(w)
    w.write(sys.stdout)


if __name__ == "__main__":
    main()
