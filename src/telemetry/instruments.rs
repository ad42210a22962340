//! The service's instruments, created once from one meter. Names follow the OpenTelemetry semantic
//! conventions where they exist (`rpc.*`, `http.client.*`); the rest live under `trdscreen.`.
//! docs/metrics.md lists each with its labels and the Prometheus name the exporter gives it.

use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, UpDownCounter};

/// Bucket boundaries in seconds for request durations: the OpenTelemetry HTTP/RPC recommendation,
/// from 5 ms (an in-memory EvaluateBundle) to 10 s (a slow FHIR server).
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

pub struct Instruments {
    pub rpc_duration: Histogram<f64>,
    pub screenings: Counter<u64>,
    pub hints: Counter<u64>,
    pub trials: Counter<u64>,
    pub http_client_duration: Histogram<f64>,
    pub fhir_retries: Counter<u64>,
    pub token_fetches: Counter<u64>,
    pub writebacks: Counter<u64>,
    pub batch_patients: Counter<u64>,
    pub batch_in_flight: UpDownCounter<i64>,
    pub batch_runs: Counter<u64>,
    pub batch_last_run_end: Gauge<f64>,
    pub build_info: Gauge<u64>,
    pub audit_records: Counter<u64>,
    pub audit_queue_records: Gauge<u64>,
    pub audit_spill_bytes: Gauge<u64>,
    pub audit_spilling: Gauge<u64>,
    pub cds_cards: Counter<u64>,
    pub cds_feedback: Counter<u64>,
    pub cds_prefetch: Counter<u64>,
}

impl Instruments {
    pub fn new(meter: &Meter) -> Instruments {
        let duration = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build()
        };
        let counter = |name: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_description(description)
                .build()
        };
        Instruments {
            rpc_duration: duration(
                "rpc.server.duration",
                "Duration of gRPC calls handled, by service, method and status code",
            ),
            screenings: counter(
                "trdscreen.screenings",
                "Patients screened (every transport), by TRD status",
            ),
            hints: counter(
                "trdscreen.hints",
                "Safety and next-step hints given, by code",
            ),
            trials: counter(
                "trdscreen.trials",
                "Treatment trials found, by outcome and whether they counted in the current episode",
            ),
            http_client_duration: duration(
                "http.client.request.duration",
                "Duration of HTTP requests to the FHIR server and its token endpoint (each attempt)",
            ),
            fhir_retries: counter(
                "trdscreen.fhir.retries",
                "FHIR and token requests retried, by reason",
            ),
            token_fetches: counter(
                "trdscreen.auth.token_fetches",
                "SMART Backend Services access tokens requested, by outcome",
            ),
            writebacks: counter(
                "trdscreen.writebacks",
                "Flag and CarePlan write-backs, by resource and outcome",
            ),
            batch_patients: counter(
                "trdscreen.batch.patients",
                "Patients handled by the nightly job, by outcome",
            ),
            batch_in_flight: meter
                .i64_up_down_counter("trdscreen.batch.in_flight")
                .with_description("Patients the nightly job is screening right now")
                .build(),
            batch_runs: counter(
                "trdscreen.batch.runs",
                "Nightly job runs (or shards) finished, by outcome",
            ),
            batch_last_run_end: meter
                .f64_gauge("trdscreen.batch.last_run_end")
                .with_description("When the last nightly job run ended, in Unix seconds")
                .build(),
            build_info: meter
                .u64_gauge("trdscreen.build.info")
                .with_description("Always 1; the labels name the version and the knowledge ruleset")
                .build(),
            audit_records: counter(
                "trdscreen.audit.records",
                "Audit records taken (queued in memory, spilled to disk), lost, and calls refused because none could be kept",
            ),
            audit_queue_records: meter
                .u64_gauge("trdscreen.audit.queue.records")
                .with_description("Audit records waiting in memory for the audit endpoint")
                .build(),
            audit_spill_bytes: meter
                .u64_gauge("trdscreen.audit.spill")
                .with_unit("By")
                .with_description("Size of the audit spill file: records kept on disk while the endpoint is down")
                .build(),
            audit_spilling: meter
                .u64_gauge("trdscreen.audit.spilling")
                .with_description("Whether audit records go to the spill file (1: the endpoint is down or memory is full)")
                .build(),
            cds_cards: counter(
                "trdscreen.cds.cards",
                "CDS Hooks cards returned, by service and indicator",
            ),
            cds_feedback: counter(
                "trdscreen.cds.feedback",
                "CDS Hooks card feedback, by service, outcome and override reason",
            ),
            cds_prefetch: counter(
                "trdscreen.cds.record_parts",
                "Parts of a patient's record a hook took from the prefetch or fetched from the FHIR server",
            ),
        }
    }
}
