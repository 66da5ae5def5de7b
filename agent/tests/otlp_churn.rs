//! Top-N churn through the real OpenTelemetry SDK: a process that leaves the top list in one
//! cycle must be absent from that cycle's OTLP push (counters, up-down counters and gauges
//! alike), and come back when it re-enters. The SDK's observable instruments are what is
//! tested here; the families are synthetic so that the churn is deterministic.

use std::collections::BTreeMap;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as PointValue;
use opentelemetry_proto::tonic::metrics::v1::AggregationTemporality;
use rmm_agent::export::model::{AttrValue, DataPoint, Kind, MetricFamily, Metrics, Value};
use rmm_agent::export::otlp::encode::{Encoder, Identity};

fn process_point(pid: i64, value: Value) -> DataPoint {
    DataPoint {
        attributes: vec![
            ("process.pid", AttrValue::Int(pid)),
            ("process.executable.name", format!("proc{pid}").into()),
            ("process.owner", "root".into()),
        ],
        value,
    }
}

fn metrics(pids: &[i64], cycle: i64) -> Arc<Metrics> {
    let family = |name, unit, kind, value: &dyn Fn(i64) -> Value| MetricFamily {
        name,
        unit,
        kind,
        description: "test",
        points: pids.iter().map(|&p| process_point(p, value(p))).collect(),
    };
    Arc::new(Metrics {
        resource: vec![
            ("service.name", "rmm-agent".into()),
            ("host.name", "test-host".into()),
        ],
        families: vec![
            family(
                "process.cpu.time",
                "s",
                Kind::Sum { monotonic: true },
                &|p| Value::F64((p * 10 + cycle) as f64),
            ),
            family(
                "process.memory.usage",
                "By",
                Kind::Sum { monotonic: false },
                &|p| Value::I64(p * 1000 + cycle),
            ),
            family("process.cpu.utilization", "1", Kind::Gauge, &|_| {
                Value::F64(0.5)
            }),
            family(
                "process.threads",
                "{threads}",
                Kind::Sum { monotonic: false },
                &|_| Value::I64(3),
            ),
        ],
        timestamp_unix_ms: 0,
    })
}

/// Metric name → pids present, from a request.
fn pids_by_metric(req: &ExportMetricsServiceRequest) -> BTreeMap<String, Vec<i64>> {
    let mut out = BTreeMap::new();
    for rm in &req.resource_metrics {
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                let attrs: Vec<_> = match m.data.as_ref().unwrap() {
                    Data::Sum(s) => {
                        assert_eq!(
                            s.aggregation_temporality,
                            AggregationTemporality::Cumulative as i32
                        );
                        s.data_points.iter().map(|p| &p.attributes).collect()
                    }
                    Data::Gauge(g) => g.data_points.iter().map(|p| &p.attributes).collect(),
                    other => panic!("unexpected {other:?}"),
                };
                let mut pids: Vec<i64> = attrs
                    .iter()
                    .map(|a| {
                        let kv = a.iter().find(|kv| kv.key == "process.pid").unwrap();
                        match kv.value.as_ref().unwrap().value.as_ref().unwrap() {
                            AnyValue::IntValue(i) => *i,
                            other => panic!("pid {other:?}"),
                        }
                    })
                    .collect();
                pids.sort();
                out.insert(m.name.clone(), pids);
            }
        }
    }
    out
}

#[test]
fn a_process_that_leaves_the_top_list_is_not_pushed_in_the_next_cycle() {
    let mut encoder = Encoder::new(Identity::default());
    let all = [
        "process.cpu.time",
        "process.memory.usage",
        "process.cpu.utilization",
        "process.threads",
    ];

    let c1 = pids_by_metric(&encoder.request(metrics(&[1, 2], 1)));
    for name in all {
        assert_eq!(c1[name], [1, 2], "cycle 1, {name}");
    }
    let c2 = pids_by_metric(&encoder.request(metrics(&[2], 2)));
    for name in all {
        assert_eq!(c2[name], [2], "cycle 2 must not carry pid 1: {name}");
    }
    let c3 = pids_by_metric(&encoder.request(metrics(&[1, 3], 3)));
    for name in all {
        assert_eq!(c3[name], [1, 3], "cycle 3, {name}");
    }
    // A cycle without any process: the process metrics are absent altogether.
    let c4 = pids_by_metric(&encoder.request(metrics(&[], 4)));
    for name in all {
        assert!(
            c4.get(name).is_none_or(|p| p.is_empty()),
            "cycle 4, {name}: {c4:?}"
        );
    }
}

#[test]
fn values_and_types_survive_the_sdk() {
    let mut encoder = Encoder::new(Identity {
        service_instance_id: Some("0191f0d2-7c1e-7b4e-9a51-3f0e6b1f2a10".into()),
        attributes: BTreeMap::from([("client".into(), "acme".into())]),
        host_from_host_name: true,
    });
    let req = encoder.request(metrics(&[7], 5));
    let rm = &req.resource_metrics[0];
    let resource: BTreeMap<_, _> = rm
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .map(|kv| {
            (
                kv.key.as_str(),
                format!("{:?}", kv.value.as_ref().unwrap().value),
            )
        })
        .collect();
    assert!(resource["service.instance.id"].contains("0191f0d2-7c1e-7b4e-9a51-3f0e6b1f2a10"));
    assert!(resource["client"].contains("acme"));
    assert!(
        !resource.keys().any(|k| k.starts_with("telemetry.sdk")),
        "{resource:?}"
    );
    let metrics = &rm.scope_metrics[0].metrics;
    let find = |n: &str| metrics.iter().find(|m| m.name == n).unwrap();
    let Some(Data::Sum(time)) = &find("process.cpu.time").data else {
        panic!()
    };
    assert!(time.is_monotonic);
    assert_eq!(time.data_points[0].value, Some(PointValue::AsDouble(75.0)));
    let point: BTreeMap<_, _> = time.data_points[0]
        .attributes
        .iter()
        .map(|kv| {
            (
                kv.key.as_str(),
                format!("{:?}", kv.value.as_ref().unwrap().value),
            )
        })
        .collect();
    assert!(point["client"].contains("acme"));
    // Enrolled: `host` is the host name, as service discovery labels the scrape target.
    assert!(point["host"].contains("test-host"), "{point:?}");
    assert!(resource["host"].contains("test-host"));
    let Some(Data::Sum(mem)) = &find("process.memory.usage").data else {
        panic!()
    };
    assert!(!mem.is_monotonic);
    assert_eq!(mem.data_points[0].value, Some(PointValue::AsInt(7005)));
    assert_eq!(find("process.memory.usage").unit, "By");
    let Some(Data::Gauge(util)) = &find("process.cpu.utilization").data else {
        panic!()
    };
    assert_eq!(util.data_points[0].value, Some(PointValue::AsDouble(0.5)));
}
