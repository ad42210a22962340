//! What the service records, each in one function with closed label sets (docs/metrics.md): the
//! build, RPCs, screenings, FHIR requests and their retries, token fetches and write-backs.

use super::{Instruments, instruments};
use crate::screening::{Assessment, TrdStatus, TrialOutcome};
use opentelemetry::KeyValue;
use std::time::Duration;

/// `trdscreen.build.info` = 1 with the crate version and the knowledge ruleset in use.
pub fn record_build_info(ruleset_version: &str) {
    if let Some(i) = instruments() {
        i.build_info.record(
            1,
            &[
                KeyValue::new("version", env!("CARGO_PKG_VERSION")),
                KeyValue::new("ruleset_version", ruleset_version.to_owned()),
            ],
        );
    }
}

/// Counts one screening: its status, its hints by code, its trials by outcome.
pub fn record_assessment(assessment: &Assessment) {
    if let Some(i) = instruments() {
        i.record_assessment(assessment);
    }
}

impl Instruments {
    pub fn record_assessment(&self, a: &Assessment) {
        self.screenings
            .add(1, &[KeyValue::new("status", status_label(a.status))]);
        for hint in &a.hints {
            // Hint codes are the closed set of knowledge/hints.toml, never patient text.
            self.hints
                .add(1, &[KeyValue::new("code", hint.code.clone())]);
        }
        for trial in &a.trials {
            self.trials.add(
                1,
                &[
                    KeyValue::new("outcome", trial_label(trial.outcome)),
                    KeyValue::new("counted", trial.counted),
                ],
            );
        }
    }
}

fn status_label(status: TrdStatus) -> &'static str {
    match status {
        TrdStatus::Met => "met",
        TrdStatus::Possible => "possible",
        TrdStatus::NotMet => "not_met",
        TrdStatus::NotApplicable => "not_applicable",
    }
}

fn trial_label(outcome: TrialOutcome) -> &'static str {
    match outcome {
        TrialOutcome::Failed => "failed",
        TrialOutcome::Responded => "responded",
        TrialOutcome::Ongoing => "ongoing",
        TrialOutcome::Unknown => "unknown",
    }
}

/// One gRPC call handled: `rpc.server.duration` by service, method and status code.
pub fn record_rpc(service: &'static str, method: &'static str, code: i32, elapsed: Duration) {
    if let Some(i) = instruments() {
        i.rpc_duration.record(
            elapsed.as_secs_f64(),
            &[
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", service),
                KeyValue::new("rpc.method", method),
                KeyValue::new("rpc.grpc.status_code", i64::from(code)),
            ],
        );
    }
}

/// What became of an HTTP request to the FHIR server (or its token endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    Success,
    Redirect,
    ClientError,
    ServerError,
    /// No answer: connection refused or broken, timeout.
    Error,
}

impl StatusClass {
    pub fn of(status: u16) -> StatusClass {
        match status {
            200..=299 => StatusClass::Success,
            300..=399 => StatusClass::Redirect,
            500..=599 => StatusClass::ServerError,
            _ => StatusClass::ClientError,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StatusClass::Success => "2xx",
            StatusClass::Redirect => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
            StatusClass::Error => "error",
        }
    }
}

/// Why a FHIR or token request was retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// The connection could not be made, or broke before the answer was complete.
    Connect,
    Timeout,
    TooManyRequests,
    ServerError,
}

impl RetryReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RetryReason::Connect => "connect",
            RetryReason::Timeout => "timeout",
            RetryReason::TooManyRequests => "429",
            RetryReason::ServerError => "5xx",
        }
    }
}

/// The `fhir.resource_type` label: a resource type name (letters, capitalised, as FHIR spells
/// them) or one of the few endpoint names this service calls; anything else is `other`, so that
/// no id can ever become a label.
pub fn resource_type_label(name: &str) -> &str {
    const ENDPOINTS: [&str; 7] = [
        "transaction",
        "batch",
        "token",
        "smart-configuration",
        "metadata",
        "$export",
        "bulk-status",
    ];
    let type_name = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_alphabetic());
    if type_name || ENDPOINTS.contains(&name) {
        name
    } else {
        "other"
    }
}

/// One HTTP exchange (one attempt) with the FHIR server or its token endpoint.
pub fn record_http_request(
    method: &str,
    resource_type: &str,
    class: StatusClass,
    elapsed: Duration,
) {
    if let Some(i) = instruments() {
        let method = match method {
            "GET" | "PUT" | "POST" | "DELETE" | "PATCH" | "HEAD" => method.to_owned(),
            _ => "_OTHER".to_owned(),
        };
        i.http_client_duration.record(
            elapsed.as_secs_f64(),
            &[
                KeyValue::new("http.request.method", method),
                KeyValue::new(
                    "fhir.resource_type",
                    resource_type_label(resource_type).to_owned(),
                ),
                KeyValue::new("http.response.status_class", class.as_str()),
            ],
        );
    }
}

pub fn record_retry(reason: RetryReason) {
    if let Some(i) = instruments() {
        i.fhir_retries
            .add(1, &[KeyValue::new("reason", reason.as_str())]);
    }
}

/// One SMART access token requested (with its retries), and whether one came back.
pub fn record_token_fetch(success: bool) {
    if let Some(i) = instruments() {
        let outcome = if success { "success" } else { "failure" };
        i.token_fetches.add(1, &[KeyValue::new("outcome", outcome)]);
    }
}

/// The resource a write-back writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrittenResource {
    Flag,
    CarePlan,
}

impl WrittenResource {
    /// The FHIR resource type name; `None` for any other.
    pub fn of(resource_type: &str) -> Option<WrittenResource> {
        match resource_type {
            "Flag" => Some(WrittenResource::Flag),
            "CarePlan" => Some(WrittenResource::CarePlan),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WrittenResource::Flag => "Flag",
            WrittenResource::CarePlan => "CarePlan",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Created,
    Updated,
    /// The chart already held what the screening wants (or there is nothing to write).
    Unchanged,
    Failed,
}

impl WriteOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            WriteOutcome::Created => "created",
            WriteOutcome::Updated => "updated",
            WriteOutcome::Unchanged => "unchanged",
            WriteOutcome::Failed => "failed",
        }
    }
}

pub fn record_writeback(resource: WrittenResource, outcome: WriteOutcome) {
    if let Some(i) = instruments() {
        i.writebacks.add(
            1,
            &[
                KeyValue::new("resource", resource.as_str()),
                KeyValue::new("outcome", outcome.as_str()),
            ],
        );
    }
}

/// What became of one audit record (or of a call, when none could be kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditRecordOutcome {
    Queued,
    Spilled,
    /// Could not be kept, and `audit.when_unrecorded = "continue"` let the call go on.
    Lost,
    /// A call refused before it started: the spill file has no room.
    CallRefused,
}

impl AuditRecordOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditRecordOutcome::Queued => "queued",
            AuditRecordOutcome::Spilled => "spilled",
            AuditRecordOutcome::Lost => "lost",
            AuditRecordOutcome::CallRefused => "call_refused",
        }
    }
}

pub fn record_audit(outcome: AuditRecordOutcome) {
    if let Some(i) = instruments() {
        i.audit_records
            .add(1, &[KeyValue::new("outcome", outcome.as_str())]);
    }
}

/// The audit queue's level: records in memory, the spill file's size, whether it spills.
pub fn record_audit_queue(in_memory: u64, spill_bytes: u64, spilling: bool) {
    if let Some(i) = instruments() {
        i.audit_queue_records.record(in_memory, &[]);
        i.audit_spill_bytes.record(spill_bytes, &[]);
        i.audit_spilling.record(u64::from(spilling), &[]);
    }
}

/// A CDS Hooks card returned (`service`: a service id; `indicator`: info, warning, critical).
pub fn record_cds_card(service: &'static str, indicator: &'static str) {
    if let Some(i) = instruments() {
        i.cds_cards.add(
            1,
            &[
                KeyValue::new("service", service),
                KeyValue::new("indicator", indicator),
            ],
        );
    }
}

/// Feedback on a card: `outcome` accepted or overridden, `reason` an offered override code,
/// `other` or `none`.
pub fn record_cds_feedback(service: &'static str, outcome: &'static str, reason: &'static str) {
    if let Some(i) = instruments() {
        i.cds_feedback.add(
            1,
            &[
                KeyValue::new("service", service),
                KeyValue::new("outcome", outcome),
                KeyValue::new("reason", reason),
            ],
        );
    }
}

/// The parts of one hook's record taken from the prefetch and fetched from the FHIR server.
pub fn record_cds_prefetch(prefetched: u64, fetched: u64) {
    if let Some(i) = instruments() {
        i.cds_prefetch
            .add(prefetched, &[KeyValue::new("source", "prefetch")]);
        i.cds_prefetch
            .add(fetched, &[KeyValue::new("source", "fhir_server")]);
    }
}
