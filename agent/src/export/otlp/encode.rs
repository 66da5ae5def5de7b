//! From the neutral model to an encoded `ExportMetricsServiceRequest`, through the
//! OpenTelemetry SDK.
//!
//! Every metric family becomes an observable instrument (counter, up-down counter or gauge, by
//! the family's [`Kind`]) whose callback reports the points of the latest [`Metrics`]. Each
//! cycle the encoder stores the new families, forces the SDK to collect (a [`PeriodicReader`]
//! whose own period never elapses, driven by `force_flush`), and the capturing exporter turns
//! the SDK's `ResourceMetrics` into the protobuf request with `opentelemetry-proto`'s
//! `transform`. The SDK does the aggregation and temporality (cumulative); observable
//! instruments report only what the last callback observed, so a process that left the top N
//! is absent from the very next push (checked by a test).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::metrics::{AsyncInstrument, Meter, MeterProvider as _};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::Resource;
use prost::Message;

use crate::export::model::{names, AttrValue, Kind, MetricFamily, Metrics, Value};

/// Attributes added by the exporter to every data point and to the Resource.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Identity {
    /// `service.instance.id`.
    pub service_instance_id: Option<String>,
    /// Scrape-mode SD labels (`client`, `site`, `host`, `agent`).
    pub attributes: BTreeMap<String, String>,
    /// Add `host` = the Resource's `host.name` when `attributes` has no `host` (an enrolled
    /// agent: service discovery labels its target with the host name it reported).
    pub host_from_host_name: bool,
}

/// The latest families, read by the instruments' callbacks.
type Shared = Arc<Mutex<Arc<Metrics>>>;

/// Turns one [`Metrics`] per cycle into an encoded OTLP request.
pub struct Encoder {
    identity: Identity,
    current: Shared,
    captured: Arc<Mutex<Option<ExportMetricsServiceRequest>>>,
    sdk: Option<Sdk>,
}

/// A meter provider for one Resource, and the instruments registered on it.
struct Sdk {
    resource: Vec<KeyValue>,
    point_attributes: Vec<KeyValue>,
    provider: SdkMeterProvider,
    meter: Meter,
    registered: HashSet<&'static str>,
}

impl Encoder {
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            current: Arc::new(Mutex::new(Arc::new(Metrics {
                resource: Vec::new(),
                families: Vec::new(),
                timestamp_unix_ms: 0,
            }))),
            captured: Arc::new(Mutex::new(None)),
            sdk: None,
        }
    }

    /// The request for `metrics`. Blocks briefly: the SDK collects on its reader thread.
    pub fn request(&mut self, metrics: Arc<Metrics>) -> ExportMetricsServiceRequest {
        let point_attributes = self.point_attributes(&metrics);
        let resource = self.resource(&metrics, &point_attributes);
        if self.sdk.as_ref().is_none_or(|s| s.resource != resource) {
            // First cycle, or a host fact changed (renamed host): a new provider for the new
            // Resource. Cumulative start times restart with it, as after an agent restart.
            if let Some(old) = self.sdk.take() {
                let _ = old.provider.shutdown();
            }
            self.sdk = Some(self.new_sdk(resource, point_attributes));
        }
        *lock(&self.current) = Arc::clone(&metrics);
        let sdk = self.sdk.as_mut().expect("set above");
        for family in &metrics.families {
            if sdk.registered.insert(family.name) {
                register(
                    &sdk.meter,
                    family,
                    Arc::clone(&self.current),
                    sdk.point_attributes.clone(),
                );
            }
        }
        if let Err(error) = sdk.provider.force_flush() {
            tracing::warn!(%error, "The OpenTelemetry SDK failed to collect.");
        }
        lock(&self.captured).take().unwrap_or_default()
    }

    /// The request for `metrics`, protobuf-encoded.
    pub fn encode(&mut self, metrics: Arc<Metrics>) -> Vec<u8> {
        self.request(metrics).encode_to_vec()
    }

    /// The identity attributes every data point carries.
    fn point_attributes(&self, metrics: &Metrics) -> Vec<KeyValue> {
        let mut attrs = self.identity.attributes.clone();
        if self.identity.host_from_host_name && !attrs.contains_key("host") {
            if let Some((_, name)) = metrics
                .resource
                .iter()
                .find(|(k, _)| *k == names::HOST_NAME)
            {
                attrs.insert("host".to_owned(), name.to_text().into_owned());
            }
        }
        attrs
            .into_iter()
            .map(|(k, v)| KeyValue::new(k, v))
            .collect()
    }

    fn resource(&self, metrics: &Metrics, point_attributes: &[KeyValue]) -> Vec<KeyValue> {
        let mut r: Vec<KeyValue> = metrics
            .resource
            .iter()
            .map(|(k, v)| key_value(k, v))
            .collect();
        let instance = self.identity.service_instance_id.clone().or_else(|| {
            metrics
                .resource
                .iter()
                .find(|(k, _)| *k == names::HOST_ID)
                .map(|(_, v)| host_id_as_uuid(&v.to_text()))
        });
        if let Some(id) = instance {
            r.push(KeyValue::new("service.instance.id", id));
        }
        r.extend(point_attributes.iter().cloned());
        r
    }

    fn new_sdk(&self, resource: Vec<KeyValue>, point_attributes: Vec<KeyValue>) -> Sdk {
        let exporter = Capture {
            captured: Arc::clone(&self.captured),
        };
        // Collected only by force_flush: the period is never reached.
        let reader = PeriodicReader::builder(exporter)
            .with_interval(Duration::from_secs(365 * 24 * 3600))
            .build();
        let provider = SdkMeterProvider::builder()
            // builder_empty: no telemetry.sdk.* attributes, so target_info has the same labels
            // as on /metrics.
            .with_resource(
                Resource::builder_empty()
                    .with_attributes(resource.iter().cloned())
                    .build(),
            )
            .with_reader(reader)
            .build();
        let meter = provider.meter_with_scope(
            InstrumentationScope::builder(names::AGENT_SERVICE_NAME)
                .with_version(crate::version())
                .build(),
        );
        Sdk {
            resource,
            point_attributes,
            provider,
            meter,
            registered: HashSet::new(),
        }
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        if let Some(sdk) = self.sdk.take() {
            let _ = sdk.provider.shutdown();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn key_value(key: &'static str, value: &AttrValue) -> KeyValue {
    match value {
        AttrValue::Str(s) => KeyValue::new(key, s.to_string()),
        AttrValue::Int(i) => KeyValue::new(key, *i),
    }
}

/// `/etc/machine-id` (32 hex digits) as UUID text; anything else unchanged.
pub fn host_id_as_uuid(id: &str) -> String {
    let id = id.trim();
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        let id = id.to_ascii_lowercase();
        format!(
            "{}-{}-{}-{}-{}",
            &id[0..8],
            &id[8..12],
            &id[12..16],
            &id[16..20],
            &id[20..32]
        )
    } else {
        id.to_owned()
    }
}

/// Reports one family's points in the SDK callback `observe`.
fn observe_family<T>(
    current: &Shared,
    name: &'static str,
    extra: &[KeyValue],
    observer: &dyn AsyncInstrument<T>,
    convert: fn(Value) -> T,
) {
    let metrics = Arc::clone(&lock(current));
    let Some(family) = metrics.families.iter().find(|f| f.name == name) else {
        return;
    };
    let mut attrs = Vec::with_capacity(8);
    for point in &family.points {
        attrs.clear();
        attrs.extend(point.attributes.iter().map(|(k, v)| key_value(k, v)));
        attrs.extend(extra.iter().cloned());
        observer.observe(convert(point.value), &attrs);
    }
}

fn as_f64(v: Value) -> f64 {
    match v {
        Value::F64(f) => f,
        Value::I64(i) => i as f64,
    }
}

fn as_i64(v: Value) -> i64 {
    match v {
        Value::F64(f) => f as i64,
        Value::I64(i) => i,
    }
}

fn as_u64(v: Value) -> u64 {
    as_i64(v).max(0) as u64
}

/// Registers the observable instrument of `family`. Its type follows the family's kind and the
/// type of its first point's value (integer families stay integers on the wire).
fn register(meter: &Meter, family: &MetricFamily, current: Shared, extra: Vec<KeyValue>) {
    let name = family.name;
    let integer = matches!(family.points.first().map(|p| p.value), Some(Value::I64(_)));
    macro_rules! build {
        ($method:ident, $convert:expr) => {{
            let _instrument = meter
                .$method(name)
                .with_unit(family.unit)
                .with_description(family.description)
                .with_callback(move |observer| {
                    observe_family(&current, name, &extra, observer, $convert)
                })
                .build();
        }};
    }
    // The SDK keeps each callback registered for the provider's lifetime; the instrument
    // handles themselves need not be kept.
    match (family.kind, integer) {
        (Kind::Sum { monotonic: true }, true) => build!(u64_observable_counter, as_u64),
        (Kind::Sum { monotonic: true }, false) => build!(f64_observable_counter, as_f64),
        (Kind::Sum { monotonic: false }, true) => build!(i64_observable_up_down_counter, as_i64),
        (Kind::Sum { monotonic: false }, false) => {
            build!(f64_observable_up_down_counter, as_f64)
        }
        (Kind::Gauge, true) => build!(i64_observable_gauge, as_i64),
        (Kind::Gauge, false) => build!(f64_observable_gauge, as_f64),
    }
}

/// The SDK exporter that keeps the converted request for [`Encoder::request`].
struct Capture {
    captured: Arc<Mutex<Option<ExportMetricsServiceRequest>>>,
}

impl PushMetricExporter for Capture {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        *lock(&self.captured) = Some(ExportMetricsServiceRequest::from(metrics));
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}
