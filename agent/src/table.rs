//! A [`Snapshot`] as a human-readable report (`rmm-agent collect --format table`).

use std::fmt::Write;

use crate::snapshot::{ProcessInfo, Snapshot};

/// The report text.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let h = &s.host;
    let _ = writeln!(
        out,
        "host {}  ({} {}, {})",
        h.host_name,
        h.os_description.as_deref().unwrap_or(&h.os_type),
        h.os_version.as_deref().unwrap_or(""),
        h.host_arch
    );
    if let Some(up) = s.uptime_seconds {
        let _ = write!(
            out,
            "up {}  ",
            humantime::format_duration(std::time::Duration::from_secs(up as u64))
        );
    }
    if let Some(l) = &s.load {
        let _ = write!(out, "load {:.2} {:.2} {:.2}", l.load1, l.load5, l.load15);
    }
    out.push('\n');
    if !s.cpus.is_empty() {
        let busy: Vec<String> = s
            .cpus
            .iter()
            .map(|c| match &c.utilization {
                Some(u) => format!("{} {:>5.1}%", c.cpu, (1.0 - u.idle - u.wait) * 100.0),
                None => format!("{} -", c.cpu),
            })
            .collect();
        let _ = writeln!(out, "cpu   {}", busy.join("  "));
    }
    if let Some(m) = &s.memory {
        let _ = writeln!(
            out,
            "mem   {} total, {} used, {} free, {} cached, {} buffers",
            bytes(m.total),
            bytes(m.used),
            bytes(m.free),
            bytes(m.cached),
            bytes(m.buffered)
        );
    }
    for d in &s.swap {
        let _ = writeln!(
            out,
            "swap  {}: {} used of {}",
            d.device,
            bytes(d.used),
            bytes(d.used + d.free)
        );
    }
    if !s.filesystems.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<24} {:<16} {:<6} {:>10} {:>10} {:>6}",
            "MOUNT", "DEVICE", "TYPE", "SIZE", "USED", "USE%"
        );
        for f in &s.filesystems {
            let pct = if f.size() > 0 {
                f.used as f64 * 100.0 / f.size() as f64
            } else {
                0.0
            };
            let _ = writeln!(
                out,
                "{:<24} {:<16} {:<6} {:>10} {:>10} {:>5.1}%",
                f.mountpoint,
                f.device,
                f.fs_type,
                bytes(f.size()),
                bytes(f.used),
                pct
            );
        }
    }
    if !s.disks.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<12} {:>12} {:>12} {:>10} {:>10}",
            "DISK", "READ", "WRITTEN", "READS", "WRITES"
        );
        for d in &s.disks {
            let _ = writeln!(
                out,
                "{:<12} {:>12} {:>12} {:>10} {:>10}",
                d.device,
                bytes(d.read_bytes),
                bytes(d.write_bytes),
                d.reads,
                d.writes
            );
        }
    }
    if !s.network.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<12} {:>12} {:>12} {:>8} {:>8}",
            "INTERFACE", "RECEIVED", "SENT", "ERRORS", "DROPPED"
        );
        for n in &s.network {
            let _ = writeln!(
                out,
                "{:<12} {:>12} {:>12} {:>8} {:>8}",
                n.device,
                bytes(n.receive_bytes),
                bytes(n.transmit_bytes),
                n.receive_errors + n.transmit_errors,
                n.receive_dropped + n.transmit_dropped
            );
        }
    }
    if !s.temperatures.is_empty() {
        let _ = writeln!(out);
        for t in &s.temperatures {
            let _ = writeln!(out, "temp  {} {}: {:.1} °C", t.name, t.sensor, t.celsius);
        }
    }
    if let Some(c) = &s.process_counts {
        let _ = writeln!(
            out,
            "\nprocesses {} ({} running, {} sleeping, {} blocked, {} zombies)",
            c.total(),
            c.running,
            c.sleeping,
            c.blocked,
            c.zombies
        );
    }
    processes(&mut out, "TOP CPU", &s.top_cpu);
    processes(&mut out, "TOP MEMORY", &s.top_memory);
    if let Some(o) = &s.other_processes {
        let _ = writeln!(
            out,
            "\nother {} processes: {:.1}% cpu, {} resident",
            o.processes,
            (o.cpu_utilization_user + o.cpu_utilization_system) * 100.0,
            bytes(o.memory_bytes)
        );
    }
    out
}

fn processes(out: &mut String, title: &str, list: &[ProcessInfo]) {
    if list.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n{title}\n{:>8} {:<12} {:>6} {:>10} {:>10}  NAME",
        "PID", "USER", "CPU%", "RSS", "VIRT"
    );
    for p in list {
        let _ = writeln!(
            out,
            "{:>8} {:<12} {:>6.1} {:>10} {:>10}  {}{}",
            p.pid,
            p.owner,
            p.cpu_utilization * 100.0,
            bytes(p.memory_bytes),
            bytes(p.virtual_memory_bytes),
            p.name,
            p.command_line
                .as_deref()
                .map(|c| format!("  ({c})"))
                .unwrap_or_default()
        );
    }
}

/// Bytes in binary units with one decimal.
fn bytes(v: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = v as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(300 * 1024 * 1024), "300.0 MiB");
    }

    #[test]
    fn renders_an_empty_snapshot() {
        let text = render(&Snapshot::default());
        assert!(text.starts_with("host "));
    }
}
