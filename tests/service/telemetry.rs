//! Telemetry of the built `trdscreen serve` (a child process, as it runs in production): its
//! `/metrics` endpoint carries every instrument with the values the calls made imply and no patient
//! id; its OTLP export reaches an in-process collector with one span per call and a child span per
//! FHIR request, continuing the caller's trace; the FHIR requests carry that trace (`traceparent`);
//! its JSON logs are JSON; the Grafana dashboard and the alerts query only metrics it exports;
//! Debian's Prometheus scrapes it.
//!
//! The service reads the real FHIR server scripts/test starts (TRDSCREEN_TEST_FHIR_URL); faults that
//! server cannot produce (503, 429, a refused token) come from the stub FHIR server.

use crate::service;
use crate::stub;
pub(crate) mod collector;

use collector::{Receiver, Sample, Served, promql_metric_names, samples, total};
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::{Value, json};
use service::{Fhir, bundle_json, timestamp, unique_prefix};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};
use stub::{Action, Answer, Stub};
use tonic::Code;
use trdscreen::proto::{
    Assessment, EvaluateBundleRequest, ScreenPatientRequest, TrdStatus, TrialOutcome, WriteBackMode,
};

const AS_OF: &str = "2025-06-01";
const SPAN_KIND_SERVER: i32 = 2;
const SPAN_KIND_CLIENT: i32 = 3;

/// Metrics only the nightly job records (tested in src/telemetry/batch.rs, documented in
/// docs/metrics.md), which the dashboard and alerts may use although `serve` never exports them.
const BATCH_METRICS: [&str; 4] = [
    "trdscreen_batch_patients_total",
    "trdscreen_batch_in_flight",
    "trdscreen_batch_runs_total",
    "trdscreen_batch_last_run_end",
];
/// kube-state-metrics series the alerts may use for the CronJob (documented in alerts.yaml).
const KUBE_STATE_METRICS: [&str; 5] = [
    "kube_job_status_start_time",
    "kube_job_status_completion_time",
    "kube_cronjob_status_last_successful_time",
    "kube_cronjob_status_last_schedule_time",
    "kube_job_status_failed",
];

fn screen_request(patient_id: &str, write_back: WriteBackMode) -> ScreenPatientRequest {
    ScreenPatientRequest {
        patient_id: patient_id.to_owned(),
        as_of: Some(timestamp(AS_OF)),
        write_back: write_back as i32,
    }
}

/// A W3C trace context as a caller sends it: a fresh trace id, a fixed parent span id.
fn caller_trace() -> (String, String) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    (
        format!(
            "{:032x}",
            nanos ^ (u128::from(std::process::id()) << 64) | 1
        ),
        "00f067aa0ba902b7".to_owned(),
    )
}

fn with_trace<T>(message: T, (trace, parent): &(String, String)) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace}-{parent}-01").parse().unwrap(),
    );
    request
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn status_label(status: i32) -> &'static str {
    match TrdStatus::try_from(status) {
        Ok(TrdStatus::Met) => "met",
        Ok(TrdStatus::Possible) => "possible",
        Ok(TrdStatus::NotMet) => "not_met",
        Ok(TrdStatus::NotApplicable) => "not_applicable",
        _ => panic!("an assessment without a status"),
    }
}

fn trial_label(outcome: i32) -> &'static str {
    match TrialOutcome::try_from(outcome) {
        Ok(TrialOutcome::Failed) => "failed",
        Ok(TrialOutcome::Responded) => "responded",
        Ok(TrialOutcome::Ongoing) => "ongoing",
        Ok(TrialOutcome::Unknown) => "unknown",
        _ => panic!("a trial without an outcome"),
    }
}

/// Every sample's labels, as `name{label}` → value, for readable failures.
fn describe(samples: &[Sample], name: &str) -> String {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| format!("{:?} {}", s.labels, s.value))
        .collect::<Vec<_>>()
        .join("\n")
}

fn rpc_count(s: &[Sample], method: &str, code: &str) -> f64 {
    total(
        s,
        "rpc_server_duration_seconds_count",
        &[
            ("rpc_system", "grpc"),
            ("rpc_service", "trdscreen.v1.TrdScreening"),
            ("rpc_method", method),
            ("rpc_grpc_status_code", code),
        ],
    )
}

fn http_count(s: &[Sample], method: &str, resource_type: &str, class: &str) -> f64 {
    total(
        s,
        "http_client_request_duration_seconds_count",
        &[
            ("http_request_method", method),
            ("fhir_resource_type", resource_type),
            ("http_response_status_class", class),
        ],
    )
}

/// The trace's spans under `root` (children, grandchildren...).
fn descendants<'s>(spans: &'s [Span], root: &Span) -> Vec<&'s Span> {
    let mut found: Vec<&Span> = Vec::new();
    let mut parents = vec![root.span_id.clone()];
    while let Some(parent) = parents.pop() {
        for s in spans
            .iter()
            .filter(|s| s.trace_id == root.trace_id && s.parent_span_id == parent)
        {
            found.push(s);
            parents.push(s.span_id.clone());
        }
    }
    found
}

fn assert_no_trace_of(haystack: &str, secrets: &[&str], what: &str) {
    for secret in secrets {
        assert!(
            !haystack.contains(secret),
            "{what} carries {secret:?}:\n{haystack}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exports_its_metrics_and_traces_and_the_dashboard_and_alerts_query_only_them() {
    if !crate::service::fhir_servers() {
        return;
    }
    let mut exported = against_the_fhir_server().await;
    exported.extend(against_a_failing_fhir_server().await);
    for (file, names) in [
        ("deploy/grafana/trdscreen.json", dashboard_metric_names()),
        ("deploy/prometheus/alerts.yaml", alert_metric_names()),
    ] {
        assert!(!names.is_empty(), "{file} queries no metric");
        for name in &names {
            let known = exported.contains(name)
                || BATCH_METRICS.contains(&name.as_str())
                || KUBE_STATE_METRICS.contains(&name.as_str());
            assert!(
                known,
                "{file} queries {name}, which the service does not export (exported: {exported:?})"
            );
        }
    }
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md"))
            .expect("docs/metrics.md");
    for name in exported
        .iter()
        .map(|n| {
            n.trim_end_matches("_bucket")
                .trim_end_matches("_count")
                .trim_end_matches("_sum")
        })
        .chain(BATCH_METRICS)
    {
        assert!(
            docs.contains(name),
            "docs/metrics.md does not document {name}"
        );
    }
}

/// Calls against the real FHIR server; returns the metric names scraped.
async fn against_the_fhir_server() -> BTreeSet<String> {
    let fhir = Fhir::plain();
    let typical = fhir
        .load(
            "scenarios/hint-maoi-washout-fluoxetine-28-days.json",
            "telemetry",
        )
        .await;
    let nobody = unique_prefix("telemetry-nobody");
    let (receiver, otlp) = Receiver::start().await;
    // The audit trail on, to the same server: its metrics are exported too.
    let spill = std::env::temp_dir().join(unique_prefix("trdscreen-telemetry-audit"));
    let mut served = Served::start(&[
        ("TRDSCREEN_FHIR_BASE_URL", fhir.base.clone()),
        ("TRDSCREEN_TELEMETRY_OTLP_ENDPOINT", otlp),
        ("TRDSCREEN_GRPC_MAX_REQUEST_BYTES", "200000".into()),
        ("TRDSCREEN_AUDIT_BASE_URL", fhir.base.clone()),
        ("TRDSCREEN_AUDIT_SPILL_DIR", spill.display().to_string()),
    ])
    .await;
    let mut client = served.client().await;

    // ScreenPatient with write-back twice (created, then unchanged), the first in the caller's trace.
    let caller = caller_trace();
    let request = screen_request(&typical.patient_id, WriteBackMode::FlagAndCarePlan);
    let first = client
        .screen_patient(with_trace(request.clone(), &caller))
        .await
        .expect("ScreenPatient succeeds")
        .into_inner();
    let second = client
        .screen_patient(request)
        .await
        .expect("ScreenPatient succeeds again")
        .into_inner();
    assert!(first.write_back.as_ref().is_some_and(|w| w.changed));
    assert!(second.write_back.as_ref().is_some_and(|w| !w.changed));
    let evaluated = client
        .evaluate_bundle(EvaluateBundleRequest {
            bundle_json: bundle_json(&fhir.base, &typical.resources),
            as_of: Some(timestamp(AS_OF)),
        })
        .await
        .expect("EvaluateBundle succeeds")
        .into_inner();
    // Bad requests: an id that is not one, a patient the server does not have, a Bundle over the
    // size limit.
    let bad = client
        .screen_patient(screen_request("not an id!", WriteBackMode::None))
        .await
        .expect_err("a bad id is refused");
    assert_eq!(bad.code(), Code::InvalidArgument);
    let unknown = client
        .screen_patient(screen_request(&nobody, WriteBackMode::None))
        .await
        .expect_err("an unknown patient is not found");
    assert_eq!(unknown.code(), Code::NotFound);
    let oversized = client
        .evaluate_bundle(EvaluateBundleRequest {
            bundle_json: " ".repeat(250_000),
            as_of: None,
        })
        .await
        .expect_err("an oversized Bundle is refused");
    assert_eq!(oversized.code(), Code::ResourceExhausted);

    let (status, content_type, body) = served.scrape().await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let s = samples(&body);

    rpcs_are_counted_by_method_and_status_code_refused_ones_included(&s);
    let assessments: Vec<&Assessment> = [&first, &second, &evaluated]
        .iter()
        .map(|r| r.assessment.as_ref().expect("an assessment"))
        .collect();
    screenings_hints_and_trials_count_exactly_what_the_assessments_hold(&s, &assessments);
    fhir_requests_are_counted_by_method_resource_type_and_status_class(&s);
    write_backs_are_counted_by_resource_and_outcome(&s);
    build_info_names_the_version_and_the_ruleset(&s, &assessments[0].ruleset_version);
    // No label anywhere carries a patient id, nor any id of the patient's resources.
    let secrets = [typical.prefix.as_str(), nobody.as_str()];
    assert_no_trace_of(&body, &secrets, "/metrics");

    let log_before_stop = served.log();
    assert_eq!(served.stop().await, Some(0), "a graceful exit");

    let spans = receiver.spans();
    the_first_call_continues_the_callers_trace_and_its_fhir_requests_are_its_children(
        &spans, &caller,
    );
    a_call_without_a_callers_context_is_a_trace_of_its_own_and_evaluate_reads_no_fhir(&spans);
    assert_no_trace_of(
        &receiver.attribute_values().join("\n"),
        &secrets,
        "span and metric attributes",
    );
    the_otlp_export_carries_the_same_metrics(&receiver.metric_names());
    logs_are_json_lines_that_name_no_patient(&log_before_stop, &secrets);

    s.into_iter().map(|s| s.name).collect()
}

/// RPCs by method and status code, refused ones included.
fn rpcs_are_counted_by_method_and_status_code_refused_ones_included(s: &[Sample]) {
    assert_eq!(
        rpc_count(s, "ScreenPatient", "0"),
        2.0,
        "{}",
        describe(s, "rpc_server_duration_seconds_count")
    );
    assert_eq!(rpc_count(s, "ScreenPatient", "3"), 1.0);
    assert_eq!(rpc_count(s, "ScreenPatient", "5"), 1.0);
    assert_eq!(rpc_count(s, "EvaluateBundle", "0"), 1.0);
    assert_eq!(rpc_count(s, "EvaluateBundle", "8"), 1.0);
    let screen_ok = [
        ("rpc_method", "ScreenPatient"),
        ("rpc_grpc_status_code", "0"),
    ];
    assert!(total(s, "rpc_server_duration_seconds_sum", &screen_ok) > 0.0);
    let mut all_calls = screen_ok.to_vec();
    all_calls.push(("le", "+Inf"));
    assert_eq!(
        total(s, "rpc_server_duration_seconds_bucket", &all_calls),
        2.0
    );
}

/// Screenings, hints and trials: exactly what the three assessments hold.
fn screenings_hints_and_trials_count_exactly_what_the_assessments_hold(
    s: &[Sample],
    assessments: &[&Assessment],
) {
    let mut statuses: BTreeMap<&str, f64> = BTreeMap::new();
    let mut hints: BTreeMap<&str, f64> = BTreeMap::new();
    let mut trials: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    for a in assessments {
        *statuses.entry(status_label(a.status)).or_default() += 1.0;
        for h in &a.hints {
            *hints.entry(h.code.as_str()).or_default() += 1.0;
        }
        for t in &a.trials {
            let counted = if t.counted { "true" } else { "false" };
            *trials.entry((trial_label(t.outcome), counted)).or_default() += 1.0;
        }
    }
    assert!(
        !hints.is_empty() && !trials.is_empty(),
        "the fixture gives hints and trials"
    );
    for (status, n) in &statuses {
        assert_eq!(
            total(s, "trdscreen_screenings_total", &[("status", status)]),
            *n,
            "{}",
            describe(s, "trdscreen_screenings_total")
        );
    }
    assert_eq!(total(s, "trdscreen_screenings_total", &[]), 3.0);
    for (code, n) in &hints {
        assert_eq!(
            total(s, "trdscreen_hints_total", &[("code", code)]),
            *n,
            "{}",
            describe(s, "trdscreen_hints_total")
        );
    }
    assert_eq!(
        total(s, "trdscreen_hints_total", &[]),
        hints.values().sum::<f64>()
    );
    for ((outcome, counted), n) in &trials {
        assert_eq!(
            total(
                s,
                "trdscreen_trials_total",
                &[("outcome", outcome), ("counted", counted)]
            ),
            *n,
            "{}",
            describe(s, "trdscreen_trials_total")
        );
    }
}

/// FHIR requests by method, resource type and status class.
fn fhir_requests_are_counted_by_method_resource_type_and_status_class(s: &[Sample]) {
    assert_eq!(
        http_count(s, "GET", "Patient", "2xx"),
        2.0,
        "{}",
        describe(s, "http_client_request_duration_seconds_count")
    );
    assert_eq!(http_count(s, "GET", "Patient", "4xx"), 1.0);
    for searched in [
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
        "Condition",
        "Procedure",
    ] {
        assert_eq!(http_count(s, "GET", searched, "2xx"), 2.0, "{searched}");
    }
    // Created by a conditional create inside a transaction (POST to the base), labelled with the
    // type it creates; the second, identical screening wrote nothing.
    assert_eq!(http_count(s, "POST", "Flag", "2xx"), 1.0);
    assert_eq!(http_count(s, "POST", "CarePlan", "2xx"), 1.0);
    assert_eq!(http_count(s, "PUT", "Flag", "2xx"), 0.0);
    assert!(
        total(
            s,
            "http_client_request_duration_seconds_sum",
            &[("fhir_resource_type", "Patient")]
        ) > 0.0
    );
}

/// Write-backs by resource and outcome.
fn write_backs_are_counted_by_resource_and_outcome(s: &[Sample]) {
    for (resource, outcome) in [
        ("Flag", "created"),
        ("Flag", "unchanged"),
        ("CarePlan", "created"),
        ("CarePlan", "unchanged"),
    ] {
        assert_eq!(
            total(
                s,
                "trdscreen_writebacks_total",
                &[("resource", resource), ("outcome", outcome)]
            ),
            1.0,
            "{resource} {outcome}: {}",
            describe(s, "trdscreen_writebacks_total")
        );
    }
}

/// The build: the service's version and the ruleset it screens with.
fn build_info_names_the_version_and_the_ruleset(s: &[Sample], ruleset: &str) {
    assert_eq!(
        total(
            s,
            "trdscreen_build_info",
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("ruleset_version", ruleset)
            ]
        ),
        1.0,
        "{}",
        describe(s, "trdscreen_build_info")
    );
}

/// Traces: the first call continues the caller's trace, its FHIR requests are its children.
fn the_first_call_continues_the_callers_trace_and_its_fhir_requests_are_its_children(
    spans: &[Span],
    caller: &(String, String),
) {
    let (trace, parent) = &caller;
    let rpc = spans
        .iter()
        .find(|s| hex(&s.trace_id) == *trace && hex(&s.parent_span_id) == *parent)
        .unwrap_or_else(|| {
            panic!(
                "no span continues the caller's span among {} spans",
                spans.len()
            )
        });
    assert_eq!(rpc.name, "trdscreen.v1.TrdScreening/ScreenPatient");
    assert_eq!(rpc.kind, SPAN_KIND_SERVER);
    assert_eq!(hex(&rpc.parent_span_id), *parent);
    let children: Vec<&Span> = spans
        .iter()
        .filter(|s| s.trace_id == rpc.trace_id && s.parent_span_id == rpc.span_id)
        .collect();
    assert!(children.iter().all(|c| c.kind == SPAN_KIND_CLIENT));
    let names: BTreeSet<&str> = children.iter().map(|c| c.name.as_str()).collect();
    for name in [
        "GET Patient",
        "GET MedicationRequest",
        "GET Observation",
        "GET Flag",
        "POST Flag",
        "POST CarePlan",
    ] {
        assert!(names.contains(name), "no {name} child span in {names:?}");
    }
    assert_eq!(
        descendants(spans, rpc).len(),
        children.len(),
        "FHIR spans are leaves"
    );
}

/// The second call, without a caller's context, is a trace of its own with the same shape.
fn a_call_without_a_callers_context_is_a_trace_of_its_own_and_evaluate_reads_no_fhir(
    spans: &[Span],
) {
    let own = spans
        .iter()
        .filter(|s| {
            s.name == "trdscreen.v1.TrdScreening/ScreenPatient" && s.parent_span_id.is_empty()
        })
        .collect::<Vec<_>>();
    assert!(
        own.iter().any(|r| descendants(spans, r).len() >= 6),
        "{own:#?}"
    );
    let evaluate = spans
        .iter()
        .find(|s| s.name == "trdscreen.v1.TrdScreening/EvaluateBundle")
        .expect("an EvaluateBundle span");
    assert!(
        descendants(spans, evaluate).is_empty(),
        "EvaluateBundle reads no FHIR server"
    );
}

/// The OTLP export carries the metrics /metrics shows.
fn the_otlp_export_carries_the_same_metrics(otlp_metrics: &BTreeSet<String>) {
    for name in [
        "rpc.server.duration",
        "trdscreen.screenings",
        "http.client.request.duration",
        "trdscreen.writebacks",
    ] {
        assert!(
            otlp_metrics.contains(name),
            "OTLP metrics lack {name}: {otlp_metrics:?}"
        );
    }
}

/// JSON logs: one object per line, none naming the patient.
fn logs_are_json_lines_that_name_no_patient(log_before_stop: &str, secrets: &[&str]) {
    for line in log_before_stop.lines() {
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            entry["level"].is_string() && entry["message"].is_string(),
            "{line}"
        );
    }
    assert_no_trace_of(log_before_stop, secrets, "the log");
}

/// A FHIR server (the stub) that refuses the first token and fails the first Patient read and one
/// search: token fetches, retries, 5xx, and the `traceparent` the FHIR server receives.
async fn against_a_failing_fhir_server() -> BTreeSet<String> {
    const PATIENT: &str = "met-two-failed-ssri-snri";
    let stub = Stub::start().await;
    stub.load_bundle(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/scenarios/met-two-failed-ssri-snri.json"),
        )
        .expect("the fixture"),
    );
    stub.on_times(
        "POST",
        "/auth/token",
        1,
        Action::Reply(Answer::json(401, &json!({"error": "invalid_client"}))),
    );
    stub.on(
        "POST",
        "/auth/token",
        Action::Reply(Answer::json(
            200,
            &json!({"access_token": "t0k3n", "token_type": "bearer", "expires_in": 300}),
        )),
    );
    stub.on_times(
        "GET",
        "/fhir/Patient/*",
        1,
        Action::Reply(Answer::outcome(503, "transient", "busy")),
    );
    stub.on_times(
        "GET",
        "/fhir/Condition",
        1,
        Action::Reply(
            Answer::outcome(429, "throttled", "slow down").with_header("Retry-After", "0"),
        ),
    );
    let key = std::env::var("TRDSCREEN_TEST_SMART_KEY")
        .expect("TRDSCREEN_TEST_SMART_KEY is not set: run scripts/test, which makes the key");
    let (receiver, otlp) = Receiver::start().await;
    let mut served = Served::start(&[
        ("TRDSCREEN_FHIR_BASE_URL", stub.base()),
        ("TRDSCREEN_FHIR_RETRY_BASE_MS", "1".into()),
        ("TRDSCREEN_FHIR_AUTH_MODE", "smart".into()),
        ("TRDSCREEN_FHIR_AUTH_CLIENT_ID", "trdscreen".into()),
        ("TRDSCREEN_FHIR_AUTH_PRIVATE_KEY_FILE", key),
        (
            "TRDSCREEN_FHIR_AUTH_TOKEN_URL",
            format!("{}/auth/token", stub.origin),
        ),
        ("TRDSCREEN_TELEMETRY_OTLP_ENDPOINT", otlp),
    ])
    .await;
    let mut client = served.client().await;
    let refused = client
        .screen_patient(screen_request(PATIENT, WriteBackMode::None))
        .await
        .expect_err("the refused token fails the call");
    assert_eq!(refused.code(), Code::Unauthenticated);
    let before = stub.requests().len();
    let caller = caller_trace();
    client
        .screen_patient(with_trace(
            screen_request(PATIENT, WriteBackMode::None),
            &caller,
        ))
        .await
        .expect("ScreenPatient succeeds once the token is granted");

    let (_, _, body) = served.scrape().await;
    let s = samples(&body);
    assert_eq!(
        total(
            &s,
            "trdscreen_auth_token_fetches_total",
            &[("outcome", "failure")]
        ),
        1.0,
        "{}",
        describe(&s, "trdscreen_auth_token_fetches_total")
    );
    assert_eq!(
        total(
            &s,
            "trdscreen_auth_token_fetches_total",
            &[("outcome", "success")]
        ),
        1.0
    );
    assert_eq!(http_count(&s, "POST", "token", "4xx"), 1.0);
    assert_eq!(http_count(&s, "POST", "token", "2xx"), 1.0);
    assert_eq!(http_count(&s, "GET", "Patient", "5xx"), 1.0);
    assert_eq!(http_count(&s, "GET", "Condition", "4xx"), 1.0);
    assert_eq!(
        total(&s, "trdscreen_fhir_retries_total", &[("reason", "5xx")]),
        1.0,
        "{}",
        describe(&s, "trdscreen_fhir_retries_total")
    );
    assert_eq!(
        total(&s, "trdscreen_fhir_retries_total", &[("reason", "429")]),
        1.0
    );
    assert_eq!(rpc_count(&s, "ScreenPatient", "16"), 1.0);
    assert_eq!(rpc_count(&s, "ScreenPatient", "0"), 1.0);
    assert_no_trace_of(&body, &[PATIENT], "/metrics");
    assert_eq!(served.stop().await, Some(0), "a graceful exit");

    // Every request of the traced call carried the caller's trace, with the span id of the
    // exported client span that made it, itself a child of the call's span.
    let spans = receiver.spans();
    let (trace, parent) = &caller;
    let rpc = spans
        .iter()
        .find(|s| hex(&s.trace_id) == *trace && hex(&s.parent_span_id) == *parent)
        .expect("the call's span continues the caller's trace");
    let traced = &stub.requests()[before..];
    assert!(traced.len() >= 8, "{} requests", traced.len());
    let mut seen_parents = BTreeSet::new();
    for request in traced {
        let header = request.header("traceparent").unwrap_or_else(|| {
            panic!(
                "{} {} carried no traceparent",
                request.method,
                request.path()
            )
        });
        let parts: Vec<&str> = header.split('-').collect();
        assert_eq!(parts.len(), 4, "{header}");
        assert_eq!(parts[1], trace, "{} {}", request.method, request.path());
        let client_span = spans
            .iter()
            .find(|s| hex(&s.span_id) == parts[2])
            .unwrap_or_else(|| panic!("no exported span has the id of {header}"));
        assert_eq!(client_span.kind, SPAN_KIND_CLIENT);
        assert_eq!(client_span.parent_span_id, rpc.span_id);
        assert!(
            seen_parents.insert(parts[2].to_owned()),
            "one span per request: {header}"
        );
    }
    assert_no_trace_of(
        &receiver.attribute_values().join("\n"),
        &[PATIENT],
        "span attributes",
    );
    s.into_iter().map(|s| s.name).collect()
}

/// The PromQL expressions of the dashboard's panels (`targets[].expr`, nested rows included).
fn dashboard_metric_names() -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/trdscreen.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("the dashboard"))
            .expect("the dashboard is JSON");
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(expr)) = map.get("expr") {
                    out.push(expr.clone());
                }
                map.values().for_each(|v| walk(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut exprs = Vec::new();
    walk(&dashboard, &mut exprs);
    assert!(
        exprs.len() >= 10,
        "the dashboard has {} queries",
        exprs.len()
    );
    exprs.iter().flat_map(|e| promql_metric_names(e)).collect()
}

/// The `expr:` of every rule in alerts.yaml (single line or a block scalar).
fn alert_metric_names() -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/alerts.yaml");
    let text = std::fs::read_to_string(&path).expect("alerts.yaml");
    let mut exprs = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(at) = line.find("expr:") else {
            continue;
        };
        let inline = line[at + 5..].trim();
        if !inline.starts_with('|') && !inline.starts_with('>') {
            exprs.push(inline.to_owned());
            continue;
        }
        let mut block = String::new();
        while let Some(next) = lines.peek() {
            let indent = next.len() - next.trim_start().len();
            if !next.trim().is_empty() && indent <= at {
                break;
            }
            block.push_str(next.trim());
            block.push(' ');
            lines.next();
        }
        exprs.push(block);
    }
    assert!(exprs.len() >= 4, "alerts.yaml has {} rules", exprs.len());
    exprs.iter().flat_map(|e| promql_metric_names(e)).collect()
}

#[test]
fn the_alert_rules_pass_promtool_when_it_is_installed() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/alerts.yaml");
    match std::process::Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
    {
        Err(_) => eprintln!("SKIPPED: promtool is not installed (apt-get install prometheus)"),
        Ok(out) => assert!(
            out.status.success(),
            "promtool check rules failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_metrics_endpoint() {
    if std::process::Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIPPED: the prometheus binary is not installed (apt-get install --no-install-recommends prometheus)"
        );
        return;
    }
    let served = Served::start(&[]).await;
    let dir = std::env::temp_dir().join(unique_prefix("trdscreen-prometheus"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: trdscreen\n    static_configs:\n      - targets: ['{}']\n",
            served.metrics
        ),
    )
    .unwrap();
    let web = format!("127.0.0.1:{}", collector::free_port());
    let mut prometheus = crate::child::spawn(
        std::process::Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap()),
        "prometheus starts",
    );
    let started = Instant::now();
    let mut last = String::new();
    let up = loop {
        if started.elapsed() > Duration::from_secs(60) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(response) = reqwest::get(format!(
            "http://{web}/api/v1/query?query=up%7Bjob%3D%22trdscreen%22%7D"
        ))
        .await
        else {
            continue;
        };
        last = response.text().await.unwrap_or_default();
        let answer: Value = serde_json::from_str(&last).unwrap_or(Value::Null);
        if let Some(value) = answer["data"]["result"][0]["value"][1].as_str() {
            break Some(value.to_owned());
        }
    };
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        up.as_deref(),
        Some("1"),
        "up != 1 within 60 s; last answer {last}\n{log}"
    );
}
