//! Metrics, traces and logs (docs/metrics.md).
//!
//! [`init`] sets up the OpenTelemetry SDK once per process: a meter provider read by the Prometheus
//! `/metrics` endpoint on its own port and, when an OTLP endpoint is configured, exported over
//! OTLP/gRPC with the traces; and the `tracing` subscriber (text or JSON logs on stderr, spans to
//! OpenTelemetry). The rest of the service records through the typed functions here, which do
//! nothing until [`init`] has run (tests that run the service in-process record nothing).
//!
//! No label and no span attribute carries a patient id, a name or any clinical datum: every label
//! value comes from a closed set (an enum here, a code of the knowledge files, a gRPC method name).

pub mod batch;
mod instruments;
mod metrics_server;
pub mod propagation;
mod record;

pub use instruments::Instruments;
pub use record::*;

use crate::settings::{LogFormat, TelemetrySettings};
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::TracerProvider;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::OnceLock;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The service name in OpenTelemetry resources and the meter's and tracer's scope.
pub const SERVICE_NAME: &str = "trdscreen";

static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();

/// Connections the `/metrics` port holds at once: scrapers and probes need a few.
const METRICS_MAX_CONNECTIONS: usize = 64;

fn instruments() -> Option<&'static Instruments> {
    INSTRUMENTS.get()
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot serve metrics on {address}: {source}")]
    MetricsListen {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up {what}: {detail}")]
    Setup { what: &'static str, detail: String },
    #[error("telemetry is already set up in this process")]
    AlreadyInitialised,
}

/// Keeps telemetry running; dropping it stops the `/metrics` endpoint and flushes and shuts down
/// the OTLP exporters (the last spans and metrics of a stopping process are sent).
pub struct TelemetryGuard {
    meters: SdkMeterProvider,
    tracer: SdkTracerProvider,
    metrics_server: Option<metrics_server::Running>,
}

impl TelemetryGuard {
    /// The address `/metrics` is served on, when it is.
    pub fn metrics_address(&self) -> Option<std::net::SocketAddr> {
        self.metrics_server.as_ref().map(|s| s.address)
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(server) = self.metrics_server.take() {
            server.stop();
        }
        if let Err(e) = self.tracer.shutdown_with_timeout(Duration::from_secs(5)) {
            crate::output::stderr_line(&format!(
                "trdscreen: flushing traces at shutdown failed: {e}"
            ));
        }
        if let Err(e) = self.meters.shutdown_with_timeout(Duration::from_secs(5)) {
            crate::output::stderr_line(&format!(
                "trdscreen: flushing metrics at shutdown failed: {e}"
            ));
        }
    }
}

/// Sets up metrics, traces and logs for `trdscreen serve` and the nightly job. Call it once, from
/// inside a Tokio runtime (the `/metrics` server and the OTLP exporters run on it), and keep the
/// guard until the process stops. `alongside` are routes served on the metrics port beside
/// `/metrics` (the SMART client's JWKS); they must hold no patient data.
pub fn init(
    settings: &TelemetrySettings,
    alongside: axum::Router,
) -> Result<TelemetryGuard, TelemetryError> {
    if INSTRUMENTS.get().is_some() {
        return Err(TelemetryError::AlreadyInitialised);
    }
    let resource = Resource::builder()
        .with_service_name(SERVICE_NAME)
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let registry = prometheus::Registry::new();
    let prometheus_reader = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .without_target_info()
        .scope_info_enabled(false)
        .build()
        .map_err(|e| setup("the Prometheus exporter", e))?;
    let mut meters = SdkMeterProvider::builder()
        .with_resource(resource.clone())
        .with_reader(prometheus_reader);
    let mut tracer = SdkTracerProvider::builder().with_resource(resource);
    if let Some(endpoint) = &settings.otlp_endpoint {
        use opentelemetry_otlp::WithExportConfig;
        let metric_exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.as_str())
            .build()
            .map_err(|e| setup("the OTLP metric exporter", e))?;
        let span_exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.as_str())
            .build()
            .map_err(|e| setup("the OTLP span exporter", e))?;
        meters = meters.with_periodic_exporter(metric_exporter);
        tracer = tracer.with_batch_exporter(span_exporter);
    }
    // Without an exporter spans still get ids, so a caller's trace context reaches the FHIR server.
    let meters = meters.build();
    let tracer = tracer.build();
    let metrics_server = match settings.metrics_listen {
        None => None,
        Some(address) => Some(metrics_server::start(
            address,
            registry,
            alongside,
            crate::http_server::Limits {
                header_read_timeout: crate::http_server::HEADER_READ_TIMEOUT,
                max_connections: METRICS_MAX_CONNECTIONS,
            },
        )?),
    };
    init_logs(
        settings.log_format,
        Some(tracing_opentelemetry::layer().with_tracer(tracer.tracer(SERVICE_NAME))),
    )?;
    INSTRUMENTS
        .set(Instruments::new(&meters.meter(SERVICE_NAME)))
        .map_err(|_| TelemetryError::AlreadyInitialised)?;
    if let Some(server) = &metrics_server {
        tracing::info!(address = %server.address, "serving Prometheus metrics on /metrics");
    }
    if let Some(endpoint) = &settings.otlp_endpoint {
        tracing::info!(endpoint = %endpoint, "exporting metrics and traces over OTLP");
    }
    Ok(TelemetryGuard {
        meters,
        tracer,
        metrics_server,
    })
}

/// Logs only (text or JSON on stderr), for the one-shot commands (`evaluate`, `screen`).
pub fn init_logging(format: LogFormat) -> Result<(), TelemetryError> {
    init_logs::<tracing_subscriber::layer::Identity>(format, None)
}

/// The subscriber: RUST_LOG filter (default `info`), logs on stderr, spans to OpenTelemetry.
fn init_logs<L>(format: LogFormat, spans: Option<L>) -> Result<(), TelemetryError>
where
    L: tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync,
{
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let text = (format == LogFormat::Text).then(|| {
        // Colours for a person at a terminal; escape codes in a file or a log collector are noise.
        tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
    });
    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
    });
    tracing_subscriber::registry()
        .with(spans)
        .with(text)
        .with(json)
        .with(filter)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInitialised)
}

fn setup(what: &'static str, e: impl std::fmt::Display) -> TelemetryError {
    TelemetryError::Setup {
        what,
        detail: e.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A meter provider of its own per test, read through the same Prometheus exporter as
    //! `/metrics`, so tests check the exposition names and values without the process-wide state.

    use super::Instruments;
    use opentelemetry::metrics::MeterProvider;
    use opentelemetry_sdk::metrics::SdkMeterProvider;

    pub struct Exposition {
        pub instruments: Instruments,
        registry: prometheus::Registry,
        _provider: SdkMeterProvider,
    }

    impl Exposition {
        pub fn new() -> Exposition {
            let registry = prometheus::Registry::new();
            let reader = opentelemetry_prometheus::exporter()
                .with_registry(registry.clone())
                .without_target_info()
                .scope_info_enabled(false)
                .build()
                .expect("a Prometheus exporter");
            let provider = SdkMeterProvider::builder().with_reader(reader).build();
            Exposition {
                instruments: Instruments::new(&provider.meter(super::SERVICE_NAME)),
                registry,
                _provider: provider,
            }
        }

        /// The text format `/metrics` serves.
        pub fn text(&self) -> String {
            super::metrics_server::encode(&self.registry).expect("the registry encodes")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_type_labels_are_type_names_or_known_endpoints_never_ids() {
        assert_eq!(
            resource_type_label("MedicationRequest"),
            "MedicationRequest"
        );
        assert_eq!(resource_type_label("token"), "token");
        assert_eq!(resource_type_label("transaction"), "transaction");
        for id in ["p-123", "Patient/p1", "123", "abc", "Flag?identifier=x", ""] {
            assert_eq!(resource_type_label(id), "other", "{id}");
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(StatusClass::of(201).as_str(), "2xx");
        assert_eq!(StatusClass::of(304).as_str(), "3xx");
        assert_eq!(StatusClass::of(429).as_str(), "4xx");
        assert_eq!(StatusClass::of(503).as_str(), "5xx");
        assert_eq!(StatusClass::of(100).as_str(), "4xx");
    }

    #[test]
    fn an_assessment_counts_its_status_hints_and_trials() {
        let e = testing::Exposition::new();
        let mut a = crate::screening::evaluate(
            &crate::fhir::read_patient_bundle(
                r#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","id":"secret-patient"}}]}"#,
            )
            .unwrap(),
            crate::date::Date::parse("2025-01-01").unwrap(),
            &crate::knowledge::Knowledge::embedded(),
        );
        a.hints.push(crate::screening::Hint {
            code: "suicide-risk".into(),
            severity: crate::screening::Severity::Critical,
            message: String::new(),
            affects: vec![],
            evidence: vec![],
        });
        e.instruments.record_assessment(&a);
        e.instruments.record_assessment(&a);
        let text = e.text();
        assert!(
            text.contains("trdscreen_screenings_total{status=\"not_applicable\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("trdscreen_hints_total{code=\"suicide-risk\"} 2"),
            "{text}"
        );
        assert!(!text.contains("secret-patient"), "{text}");
    }

    #[test]
    fn recording_before_init_does_nothing() {
        // The process-wide instruments exist only after init (never called in unit tests).
        record_assessment(&crate::screening::evaluate(
            &crate::fhir::read_patient_bundle(
                r#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","id":"p"}}]}"#,
            )
            .unwrap(),
            crate::date::Date::parse("2025-01-01").unwrap(),
            &crate::knowledge::Knowledge::embedded(),
        ));
        record_retry(RetryReason::Timeout);
        batch::patient_done(batch::PatientOutcome::Failed);
        assert!(instruments().is_none());
    }
}
