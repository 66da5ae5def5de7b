//! The neutral metric model: a [`Snapshot`] as OpenTelemetry metric families, named by the
//! semantic conventions of the hostmetrics receiver's default output ("profile v0",
//! `shared/design/protocol-facts.md` §3.2 and §4.4).
//!
//! Exporters consume this, not the snapshot: the Prometheus endpoint applies Prometheus 2.53's
//! OTLP name translation to it ([`super::prometheus`]); an OTLP exporter maps it one-to-one onto
//! OTLP `Metric`s (name, unit, description, Gauge or Sum with monotonicity and cumulative
//! temporality, data points with typed attributes). Both paths therefore yield the same series.
//!
//! Conventions of this model:
//! - Process identity (`process.pid`, `process.executable.name`, `process.owner`, and
//!   `process.command_line` when opted in) are **data-point attributes**, because Prometheus
//!   2.53 turns no resource attribute but `service.*` into labels (§4.3).
//! - Host facts are the [`Metrics::resource`] (→ `target_info`).
//! - The remainder of the top lists is one extra point per process metric with
//!   `process.pid = ""`, `process.executable.name = "other"`, `process.owner = ""` (and
//!   `process.command_line = ""`): the same attribute keys as a real process, so queries that
//!   sum or group by process labels include it. In Prometheus an empty label value is the same
//!   as no label, so the remainder's series is `{process_executable_name="other", …}`.

use std::borrow::Cow;

use crate::snapshot::{ProcessInfo, ProcessRemainder, Snapshot};

/// An attribute value. Strings borrow `'static` text where they can (label values like
/// `"user"`), so building the model allocates only for dynamic values.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(Cow<'static, str>),
    Int(i64),
}

impl AttrValue {
    /// The value as Prometheus and OTLP-to-Prometheus stringify it.
    pub fn to_text(&self) -> Cow<'_, str> {
        match self {
            AttrValue::Str(s) => Cow::Borrowed(s),
            AttrValue::Int(i) => Cow::Owned(i.to_string()),
        }
    }
}

impl From<&'static str> for AttrValue {
    fn from(s: &'static str) -> Self {
        AttrValue::Str(Cow::Borrowed(s))
    }
}

impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::Str(Cow::Owned(s))
    }
}

/// A data point's value: OTLP `as_double` or `as_int`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    F64(f64),
    I64(i64),
}

/// The OTLP metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// OTel gauge.
    Gauge,
    /// Cumulative sum: `monotonic` for counters, not for up-down counters.
    Sum { monotonic: bool },
}

/// One data point: ordered attributes and a value.
#[derive(Debug, Clone, PartialEq)]
pub struct DataPoint {
    pub attributes: Vec<(&'static str, AttrValue)>,
    pub value: Value,
}

/// One metric: its OTel name, UCUM unit, kind, description and points.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFamily {
    pub name: &'static str,
    pub unit: &'static str,
    pub kind: Kind,
    pub description: &'static str,
    pub points: Vec<DataPoint>,
}

/// Everything one snapshot exports.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    /// Resource attributes: host facts and `service.*`.
    pub resource: Vec<(&'static str, AttrValue)>,
    pub families: Vec<MetricFamily>,
    /// Snapshot time, milliseconds since the Unix epoch (OTLP `time_unix_nano` / 1e6).
    pub timestamp_unix_ms: u64,
}

/// Semantic-convention names of metrics and attributes (profile v0), kept in one place so every
/// exporter agrees.
pub mod names {
    pub const SERVICE_NAME: &str = "service.name";
    pub const SERVICE_VERSION: &str = "service.version";
    pub const HOST_NAME: &str = "host.name";
    pub const HOST_ID: &str = "host.id";
    pub const HOST_ARCH: &str = "host.arch";
    pub const OS_TYPE: &str = "os.type";
    pub const OS_VERSION: &str = "os.version";
    pub const OS_DESCRIPTION: &str = "os.description";

    pub const CPU: &str = "cpu";
    pub const STATE: &str = "state";
    pub const DEVICE: &str = "device";
    pub const DIRECTION: &str = "direction";
    pub const MODE: &str = "mode";
    pub const MOUNTPOINT: &str = "mountpoint";
    pub const TYPE: &str = "type";
    pub const STATUS: &str = "status";
    pub const PROCESS_PID: &str = "process.pid";
    pub const PROCESS_EXECUTABLE_NAME: &str = "process.executable.name";
    pub const PROCESS_OWNER: &str = "process.owner";
    pub const PROCESS_COMMAND_LINE: &str = "process.command_line";
    pub const HW_ID: &str = "hw.id";
    pub const HW_NAME: &str = "hw.name";
    pub const HW_SENSOR_LOCATION: &str = "hw.sensor_location";
    pub const COLLECTOR: &str = "collector";
    pub const VERSION: &str = "version";

    /// `process.executable.name` of the remainder series.
    pub const OTHER_PROCESSES: &str = "other";
    /// `service.name` of the agent.
    pub const AGENT_SERVICE_NAME: &str = "rmm-agent";
}

use names::*;

/// Builds families one at a time.
struct Builder {
    families: Vec<MetricFamily>,
}

impl Builder {
    fn family(
        &mut self,
        name: &'static str,
        unit: &'static str,
        kind: Kind,
        description: &'static str,
    ) -> &mut MetricFamily {
        self.families.push(MetricFamily {
            name,
            unit,
            kind,
            description,
            points: Vec::new(),
        });
        self.families.last_mut().expect("just pushed")
    }
}

impl MetricFamily {
    fn point(&mut self, attributes: Vec<(&'static str, AttrValue)>, value: Value) -> &mut Self {
        self.points.push(DataPoint { attributes, value });
        self
    }
}

const GAUGE: Kind = Kind::Gauge;
const COUNTER: Kind = Kind::Sum { monotonic: true };
const UPDOWN: Kind = Kind::Sum { monotonic: false };

fn f(v: f64) -> Value {
    Value::F64(v)
}

fn i(v: u64) -> Value {
    Value::I64(v.min(i64::MAX as u64) as i64)
}

fn s(v: &str) -> AttrValue {
    AttrValue::Str(Cow::Owned(v.to_owned()))
}

/// Options that change the exported shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelOptions {
    /// Add `process.command_line` to process points (`collect.command_line`).
    pub command_line: bool,
}

/// The snapshot as metric families. Families whose collector produced nothing have no points
/// and are left out.
pub fn from_snapshot(snap: &Snapshot, options: ModelOptions) -> Metrics {
    let mut b = Builder {
        families: Vec::with_capacity(40),
    };
    cpu(&mut b, snap);
    memory(&mut b, snap);
    storage(&mut b, snap);
    network(&mut b, snap);
    misc(&mut b, snap);
    processes(&mut b, snap, options);
    agent(&mut b, snap);
    otlp(&mut b);
    control(&mut b);
    let mut families = b.families;
    families.retain(|f| !f.points.is_empty());
    Metrics {
        resource: resource(snap),
        families,
        timestamp_unix_ms: snap.timestamp_unix_ms,
    }
}

/// Adds `labels` to every data point and to the resource (`target_info`), where no attribute
/// of that name exists yet (a series' own labels win, so no series gets a duplicate label).
/// The OTLP path gets the same result from `[otlp] attributes`, which go on every data point
/// and on the Resource.
pub fn add_labels(metrics: &mut Metrics, labels: &[(&'static str, String)]) {
    if labels.is_empty() {
        return;
    }
    let points = metrics
        .families
        .iter_mut()
        .flat_map(|f| f.points.iter_mut());
    let attribute_lists = points
        .map(|p| &mut p.attributes)
        .chain(std::iter::once(&mut metrics.resource));
    for attributes in attribute_lists {
        for (key, value) in labels {
            if !attributes.iter().any(|(k, _)| k == key) {
                attributes.push((key, AttrValue::Str(Cow::Owned(value.clone()))));
            }
        }
    }
}

/// `key` as `&'static str`, the attribute-key type of the model. Each distinct key is leaked
/// once: configured label names are few (at most 64 per configuration) and rarely change.
pub fn intern(key: &str) -> &'static str {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    static KEYS: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut keys = KEYS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(k) = keys.get(key) {
        return k;
    }
    let k: &'static str = Box::leak(key.to_owned().into_boxed_str());
    keys.insert(k);
    k
}

fn resource(snap: &Snapshot) -> Vec<(&'static str, AttrValue)> {
    let h = &snap.host;
    let mut r = vec![
        (SERVICE_NAME, AGENT_SERVICE_NAME.into()),
        (SERVICE_VERSION, s(&h.service_version)),
        (HOST_NAME, s(&h.host_name)),
    ];
    if let Some(id) = &h.host_id {
        r.push((HOST_ID, s(id)));
    }
    r.push((HOST_ARCH, s(&h.host_arch)));
    r.push((OS_TYPE, s(&h.os_type)));
    if let Some(v) = &h.os_version {
        r.push((OS_VERSION, s(v)));
    }
    if let Some(d) = &h.os_description {
        r.push((OS_DESCRIPTION, s(d)));
    }
    r
}

fn cpu(b: &mut Builder, snap: &Snapshot) {
    let time = b.family(
        "system.cpu.time",
        "s",
        COUNTER,
        "Seconds each logical CPU spent on each mode.",
    );
    for core in &snap.cpus {
        for (state, v) in core.time.by_state() {
            time.point(vec![(CPU, s(&core.cpu)), (STATE, state.into())], f(v));
        }
    }
    let util = b.family(
        "system.cpu.utilization",
        "1",
        GAUGE,
        "Share of the last interval each logical CPU spent on each mode.",
    );
    for core in &snap.cpus {
        if let Some(u) = &core.utilization {
            for (state, v) in u.by_state() {
                util.point(vec![(CPU, s(&core.cpu)), (STATE, state.into())], f(v));
            }
        }
    }
    if let Some(l) = &snap.load {
        for (name, v) in [
            ("system.cpu.load_average.1m", l.load1),
            ("system.cpu.load_average.5m", l.load5),
            ("system.cpu.load_average.15m", l.load15),
        ] {
            b.family(name, "{thread}", GAUGE, load_description(name))
                .point(vec![], f(v));
        }
    }
}

fn load_description(name: &str) -> &'static str {
    match name {
        "system.cpu.load_average.1m" => "Average CPU load over 1 minute.",
        "system.cpu.load_average.5m" => "Average CPU load over 5 minutes.",
        _ => "Average CPU load over 15 minutes.",
    }
}

fn memory(b: &mut Builder, snap: &Snapshot) {
    if let Some(m) = &snap.memory {
        let usage = b.family(
            "system.memory.usage",
            "By",
            UPDOWN,
            "Bytes of memory in use, by state.",
        );
        for (state, v) in m.by_state() {
            usage.point(vec![(STATE, state.into())], i(v));
        }
        let util = b.family(
            "system.memory.utilization",
            "1",
            GAUGE,
            "Share of memory in each state.",
        );
        for (state, v) in m.by_state() {
            util.point(vec![(STATE, state.into())], f(ratio(v, m.total)));
        }
        b.family(
            "system.memory.limit",
            "By",
            UPDOWN,
            "Total bytes of memory available.",
        )
        .point(vec![], i(m.total));
    }
    let paging = b.family(
        "system.paging.usage",
        "By",
        UPDOWN,
        "Swap space in use, by device and state.",
    );
    for d in &snap.swap {
        paging.point(
            vec![(DEVICE, s(&d.device)), (STATE, "used".into())],
            i(d.used),
        );
        paging.point(
            vec![(DEVICE, s(&d.device)), (STATE, "free".into())],
            i(d.free),
        );
    }
    let util = b.family(
        "system.paging.utilization",
        "1",
        GAUGE,
        "Share of swap space in each state, by device.",
    );
    for d in &snap.swap {
        let total = d.used + d.free;
        util.point(
            vec![(DEVICE, s(&d.device)), (STATE, "used".into())],
            f(ratio(d.used, total)),
        );
        util.point(
            vec![(DEVICE, s(&d.device)), (STATE, "free".into())],
            f(ratio(d.free, total)),
        );
    }
}

fn storage(b: &mut Builder, snap: &Snapshot) {
    let fs_attrs = |fs: &crate::snapshot::Filesystem| {
        vec![
            (DEVICE, s(&fs.device)),
            (MODE, s(&fs.mode)),
            (MOUNTPOINT, s(&fs.mountpoint)),
            (TYPE, s(&fs.fs_type)),
        ]
    };
    let usage = b.family(
        "system.filesystem.usage",
        "By",
        UPDOWN,
        "Filesystem bytes by state (used, free to users, reserved for root).",
    );
    for fs in &snap.filesystems {
        for (state, v) in [
            ("used", fs.used),
            ("free", fs.free),
            ("reserved", fs.reserved),
        ] {
            let mut attrs = fs_attrs(fs);
            attrs.push((STATE, state.into()));
            usage.point(attrs, i(v));
        }
    }
    let util = b.family(
        "system.filesystem.utilization",
        "1",
        GAUGE,
        "Share of the filesystem's size in use.",
    );
    for fs in &snap.filesystems {
        util.point(fs_attrs(fs), f(ratio(fs.used, fs.size())));
    }
    let dir = |d: &str, name: &'static str| vec![(DEVICE, s(d)), (DIRECTION, name.into())];
    let io = b.family(
        "system.disk.io",
        "By",
        COUNTER,
        "Bytes read from and written to each disk.",
    );
    for d in &snap.disks {
        io.point(dir(&d.device, "read"), i(d.read_bytes));
        io.point(dir(&d.device, "write"), i(d.write_bytes));
    }
    let ops = b.family(
        "system.disk.operations",
        "{operations}",
        COUNTER,
        "Read and write operations completed on each disk.",
    );
    for d in &snap.disks {
        ops.point(dir(&d.device, "read"), i(d.reads));
        ops.point(dir(&d.device, "write"), i(d.writes));
    }
    let optime = b.family(
        "system.disk.operation_time",
        "s",
        COUNTER,
        "Seconds spent on read and write operations of each disk (summed over operations).",
    );
    for d in &snap.disks {
        optime.point(dir(&d.device, "read"), f(d.read_time_seconds));
        optime.point(dir(&d.device, "write"), f(d.write_time_seconds));
    }
    let io_time = b.family(
        "system.disk.io_time",
        "s",
        COUNTER,
        "Seconds each disk had I/O in flight.",
    );
    for d in &snap.disks {
        io_time.point(vec![(DEVICE, s(&d.device))], f(d.io_time_seconds));
    }
    let pending = b.family(
        "system.disk.pending_operations",
        "{operations}",
        UPDOWN,
        "Operations in flight on each disk.",
    );
    for d in &snap.disks {
        pending.point(vec![(DEVICE, s(&d.device))], i(d.pending_operations));
    }
}

fn network(b: &mut Builder, snap: &Snapshot) {
    let dir = |d: &str, name: &'static str| vec![(DEVICE, s(d)), (DIRECTION, name.into())];
    type Pick = fn(&crate::snapshot::NetworkInterface) -> (u64, u64);
    let rows: [(&'static str, &'static str, &'static str, Pick); 4] = [
        (
            "system.network.io",
            "By",
            "Bytes received and transmitted on each interface.",
            |n| (n.receive_bytes, n.transmit_bytes),
        ),
        (
            "system.network.packets",
            "{packets}",
            "Packets received and transmitted on each interface.",
            |n| (n.receive_packets, n.transmit_packets),
        ),
        (
            "system.network.errors",
            "{errors}",
            "Receive and transmit errors on each interface.",
            |n| (n.receive_errors, n.transmit_errors),
        ),
        (
            "system.network.dropped",
            "{packets}",
            "Packets dropped on receive and transmit on each interface.",
            |n| (n.receive_dropped, n.transmit_dropped),
        ),
    ];
    for (name, unit, description, pick) in rows {
        let fam = b.family(name, unit, COUNTER, description);
        for n in &snap.network {
            let (rx, tx) = pick(n);
            fam.point(dir(&n.device, "receive"), i(rx));
            fam.point(dir(&n.device, "transmit"), i(tx));
        }
    }
}

fn misc(b: &mut Builder, snap: &Snapshot) {
    if let Some(up) = snap.uptime_seconds {
        b.family(
            "system.uptime",
            "s",
            GAUGE,
            "Seconds since the host booted.",
        )
        .point(vec![], f(up));
    }
    if let Some(c) = &snap.process_counts {
        let fam = b.family(
            "system.processes.count",
            "{processes}",
            UPDOWN,
            "Processes by status.",
        );
        for (status, n) in c.by_status() {
            fam.point(vec![(STATUS, status.into())], i(n));
        }
    }
    let temp = b.family(
        "hw.temperature",
        "Cel",
        GAUGE,
        "Temperature of each sensor in degrees Celsius.",
    );
    for t in &snap.temperatures {
        temp.point(
            vec![
                (HW_ID, s(&t.id)),
                (HW_NAME, s(&t.name)),
                (HW_SENSOR_LOCATION, s(&t.sensor)),
            ],
            f(t.celsius),
        );
    }
}

/// Per-process points: the union of both top lists (each process once), then the remainder.
fn processes(b: &mut Builder, snap: &Snapshot, options: ModelOptions) {
    let mut exported: Vec<&ProcessInfo> =
        Vec::with_capacity(snap.top_cpu.len() + snap.top_memory.len());
    for p in snap.top_cpu.iter().chain(&snap.top_memory) {
        if !exported.iter().any(|e| e.pid == p.pid) {
            exported.push(p);
        }
    }
    let other = snap.other_processes;
    if exported.is_empty() && other.is_none() {
        return;
    }
    let ids: Vec<Vec<(&'static str, AttrValue)>> = exported
        .iter()
        .map(|p| process_attrs(Some(p), options))
        .chain(other.iter().map(|_| process_attrs(None, options)))
        .collect();
    let rows: Vec<(&[(&'static str, AttrValue)], ProcessValues)> = exported
        .iter()
        .map(ProcessValues::of)
        .chain(other.iter().map(ProcessValues::of_remainder))
        .enumerate()
        .map(|(n, v)| (ids[n].as_slice(), v))
        .collect();
    let with = |attrs: &[(&'static str, AttrValue)], state: Option<&'static str>| {
        let mut a = Vec::with_capacity(attrs.len() + 1);
        if let Some(state) = state {
            a.push((STATE, state.into()));
        }
        a.extend(attrs.iter().cloned());
        a
    };
    let time = b.family(
        "process.cpu.time",
        "s",
        COUNTER,
        "CPU seconds used by the process, by mode.",
    );
    for (attrs, v) in &rows {
        time.point(with(attrs, Some("user")), f(v.time_user));
        time.point(with(attrs, Some("system")), f(v.time_system));
    }
    let util = b.family(
        "process.cpu.utilization",
        "1",
        GAUGE,
        "Share of all logical CPUs the process used in the last interval, by mode.",
    );
    for (attrs, v) in &rows {
        util.point(with(attrs, Some("user")), f(v.util_user));
        util.point(with(attrs, Some("system")), f(v.util_system));
    }
    let rss = b.family(
        "process.memory.usage",
        "By",
        UPDOWN,
        "Resident memory of the process.",
    );
    for (attrs, v) in &rows {
        rss.point(with(attrs, None), i(v.rss));
    }
    let virt = b.family(
        "process.memory.virtual",
        "By",
        UPDOWN,
        "Virtual memory size of the process.",
    );
    for (attrs, v) in &rows {
        virt.point(with(attrs, None), i(v.vsize));
    }
    let threads = b.family(
        "process.threads",
        "{threads}",
        UPDOWN,
        "Threads of the process.",
    );
    for (attrs, v) in &rows {
        threads.point(with(attrs, None), i(v.threads));
    }
}

struct ProcessValues {
    time_user: f64,
    time_system: f64,
    util_user: f64,
    util_system: f64,
    rss: u64,
    vsize: u64,
    threads: u64,
}

impl ProcessValues {
    fn of(p: &&ProcessInfo) -> Self {
        Self {
            time_user: p.cpu_time_user,
            time_system: p.cpu_time_system,
            util_user: p.cpu_utilization_user,
            util_system: p.cpu_utilization_system,
            rss: p.memory_bytes,
            vsize: p.virtual_memory_bytes,
            threads: p.threads,
        }
    }

    fn of_remainder(r: &ProcessRemainder) -> Self {
        Self {
            time_user: r.cpu_time_user,
            time_system: r.cpu_time_system,
            util_user: r.cpu_utilization_user,
            util_system: r.cpu_utilization_system,
            rss: r.memory_bytes,
            vsize: r.virtual_memory_bytes,
            threads: r.threads,
        }
    }
}

/// Process identity attributes; `None` is the remainder.
fn process_attrs(p: Option<&ProcessInfo>, options: ModelOptions) -> Vec<(&'static str, AttrValue)> {
    let mut a = match p {
        Some(p) => vec![
            (PROCESS_PID, AttrValue::Int(p.pid as i64)),
            (PROCESS_EXECUTABLE_NAME, s(&p.name)),
            (PROCESS_OWNER, s(&p.owner)),
        ],
        None => vec![
            (PROCESS_PID, "".into()),
            (PROCESS_EXECUTABLE_NAME, OTHER_PROCESSES.into()),
            (PROCESS_OWNER, "".into()),
        ],
    };
    if options.command_line {
        let cmd = p.and_then(|p| p.command_line.clone()).unwrap_or_default();
        a.push((PROCESS_COMMAND_LINE, cmd.into()));
    }
    a
}

fn agent(b: &mut Builder, snap: &Snapshot) {
    let a = &snap.agent;
    b.family(
        "rmm_agent.build.info",
        "",
        GAUGE,
        "Always 1; the agent's version is a label.",
    )
    .point(vec![(VERSION, s(&a.version))], f(1.0));
    if a.collections == 0 {
        return;
    }
    b.family(
        "rmm_agent.collection.duration",
        "s",
        GAUGE,
        "Wall time of the last collection cycle.",
    )
    .point(vec![], f(a.collection_duration_seconds));
    b.family(
        "rmm_agent.collections",
        "{collections}",
        COUNTER,
        "Collection cycles completed since the agent started.",
    )
    .point(vec![], i(a.collections));
    let errors = b.family(
        "rmm_agent.collector.errors",
        "{errors}",
        COUNTER,
        "Collector failures since the agent started, by collector.",
    );
    for (name, n) in &a.collector_errors {
        errors.point(vec![(COLLECTOR, (*name).into())], i(*n));
    }
    let durations = b.family(
        "rmm_agent.collector.duration",
        "s",
        GAUGE,
        "Wall time of each collector in the last cycle.",
    );
    for (name, d) in &a.collector_duration_seconds {
        durations.point(vec![(COLLECTOR, (*name).into())], f(*d));
    }
}

/// The control-plane session's state, while the agent is enrolled ([`crate::control::stats`]).
fn control(b: &mut Builder) {
    let Some(s) = crate::control::stats::current() else {
        return;
    };
    b.family(
        "rmm_agent.opamp.connected",
        "",
        GAUGE,
        "1 while the OpAMP session with the control plane is up (the server answered), else 0.",
    )
    .point(vec![], i(u64::from(s.connected)));
    b.family(
        "rmm_agent.opamp.reconnects",
        "{reconnects}",
        COUNTER,
        "OpAMP connection attempts after the first (after a failure or a lost session).",
    )
    .point(vec![], i(s.reconnects));
}

/// The OTLP exporter's counters, while it runs ([`super::otlp::stats`]).
fn otlp(b: &mut Builder) {
    let Some(s) = super::otlp::stats::current() else {
        return;
    };
    b.family(
        "rmm_agent.otlp.exports",
        "{exports}",
        COUNTER,
        "OTLP pushes the receiver accepted.",
    )
    .point(vec![], i(s.exports));
    b.family(
        "rmm_agent.otlp.export.failures",
        "{failures}",
        COUNTER,
        "OTLP requests that failed (unreachable, refused or timed out); retries count again.",
    )
    .point(vec![], i(s.failures));
    b.family(
        "rmm_agent.otlp.buffer.dropped",
        "{pushes}",
        COUNTER,
        "OTLP pushes discarded: buffer full (oldest first) or refused by the receiver.",
    )
    .point(vec![], i(s.dropped));
    b.family(
        "rmm_agent.otlp.buffer",
        "By",
        GAUGE,
        "Bytes of OTLP pushes waiting to be sent (memory and disk).",
    )
    .point(vec![], i(s.buffer_bytes));
    b.family(
        "rmm_agent.otlp.buffer.pushes",
        "{pushes}",
        GAUGE,
        "OTLP pushes waiting to be sent.",
    )
    .point(vec![], i(s.buffer_batches));
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests;
