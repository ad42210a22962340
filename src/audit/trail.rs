//! The audit trail as the transports use it: who asked ([`Requester`]), one call per kind of
//! access, and the `[audit]` settings' policy for a record that cannot be kept.
//!
//! Off (`audit.base_url` empty), every call here does nothing. On, each access becomes one or two
//! AuditEvents (the read or query, then the write-back when one wrote or failed) taken by the
//! [`AuditQueue`]. A record the queue refuses (the spill file full or unwritable) is an error for
//! the caller under `when_unrecorded = "refuse"`: the call's result is withheld. Under `"continue"`
//! it is counted as lost and logged as an error (without its content); either way never silently.

use super::event::{self, Access, AuditEvent, AuditOutcome, WrittenResource};
use super::queue::{AuditQueue, AuditQueueSettings, FhirAuditSink, Recorded};
use crate::auth::{Caller, Permissions};
use crate::error::{Error, ErrorKind, Result};
use crate::fhir::PatientId;
use crate::fhir::client::FhirClient;
use crate::service::Screened;
use crate::settings::{Secrets, Settings, WhenUnrecorded};
use crate::telemetry;
use crate::writeback::Outcome;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The issuer recorded for callers of a port that does not authenticate them.
pub const UNAUTHENTICATED_ISSUER: &str = "urn:trdscreen:unauthenticated";
/// The issuer recorded when the service itself asked (the nightly job, `trdscreen screen`).
pub const SELF_ISSUER: &str = "urn:trdscreen:self";

/// Who asked for an access, from where, under which request id.
#[derive(Debug, Clone)]
pub struct Requester {
    pub caller: Caller,
    /// `ip:port` as the connection showed it.
    pub address: Option<String>,
    /// The call's `x-request-id`, or the nightly job's run id.
    pub request_id: Option<String>,
}

impl Requester {
    /// A caller the port did not authenticate (`callers.authentication = "none"`): named by its
    /// address only.
    pub fn unauthenticated(address: Option<String>, request_id: Option<String>) -> Requester {
        Requester {
            caller: Caller {
                id: "unauthenticated".into(),
                issuer: UNAUTHENTICATED_ISSUER.into(),
                permissions: Permissions::NONE,
            },
            address,
            request_id,
        }
    }

    /// The service acting on its own schedule or its operator's command (`what`: `batch`,
    /// `screen`).
    pub fn this_service(what: &str, run_id: Option<String>) -> Requester {
        Requester {
            caller: Caller {
                id: format!("trdscreen-{what}"),
                issuer: SELF_ISSUER.into(),
                permissions: Permissions::NONE,
            },
            address: None,
            request_id: run_id,
        }
    }
}

/// The request id a caller sent in `x-request-id`, when it is 1 to 128 printable ASCII characters
/// (anything else is not recorded).
pub fn request_id(value: Option<&str>) -> Option<String> {
    let v = value?;
    (!v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| v.to_owned())
}

/// What one patient's screening did, as the audit records it.
#[derive(Clone, Copy)]
pub struct Screening<'a> {
    /// Why the screening failed, when it did.
    pub error: Option<&'a Error>,
    /// The write-back, when one was asked for.
    pub write_back: Option<&'a Result<Outcome>>,
    /// What the write-back wrote or found as wanted (even when it failed later).
    pub written: &'a [WrittenResource],
}

impl<'a> Screening<'a> {
    /// A screening's result and what its write-back wrote, which a screening that failed (or
    /// ran out of time) after writing still names.
    pub fn of(result: &'a Result<Screened>, written: &'a [WrittenResource]) -> Screening<'a> {
        match result {
            Ok(s) => Screening {
                error: None,
                write_back: s.write_back.as_ref(),
                written,
            },
            Err(e) => Screening {
                error: Some(e),
                write_back: None,
                written,
            },
        }
    }

    pub fn failed(error: &'a Error) -> Screening<'a> {
        Screening {
            error: Some(error),
            write_back: None,
            written: &[],
        }
    }

    /// Screened, nothing asked to be written.
    pub fn read_only() -> Screening<'static> {
        Screening {
            error: None,
            write_back: None,
            written: &[],
        }
    }
}

pub struct AuditTrail {
    on: Option<On>,
}

struct On {
    queue: Arc<AuditQueue<FhirAuditSink>>,
    service: String,
    when_unrecorded: WhenUnrecorded,
    retry_interval: Duration,
}

/// Room the spill file must have left for a call to be admitted under `"refuse"`: a few records.
const ADMIT_RESERVE_BYTES: u64 = 64 * 1024;

impl AuditTrail {
    pub fn off() -> AuditTrail {
        AuditTrail { on: None }
    }

    /// The trail the settings ask for: off without `audit.base_url`, else a queue over
    /// `audit.spill_dir` (taking up records an earlier process left there) sending to the endpoint
    /// with the `[fhir]` client settings and credentials.
    pub fn open(settings: &Settings, secrets: &Secrets) -> Result<AuditTrail> {
        let audit = &settings.audit;
        let Some(base_url) = &audit.base_url else {
            return Ok(AuditTrail::off());
        };
        let dir = audit.spill_dir.as_deref().ok_or(Error::NotConfigured(
            "audit.base_url needs audit.spill_dir".into(),
        ))?;
        let mut fhir = settings.fhir.clone();
        fhir.base_url = Some(base_url.clone());
        let client = FhirClient::new(&fhir, secrets)?;
        let queue = AuditQueue::open(
            dir,
            AuditQueueSettings {
                memory_capacity: audit.memory_capacity,
                max_spill_bytes: audit.max_spill_bytes,
            },
            FhirAuditSink::new(client),
        )?;
        let trail = AuditTrail {
            on: Some(On {
                queue: Arc::new(queue),
                service: audit.service_name.clone(),
                when_unrecorded: audit.when_unrecorded,
                retry_interval: audit.retry_interval,
            }),
        };
        trail.report_level();
        Ok(trail)
    }

    pub fn is_on(&self) -> bool {
        self.on.is_some()
    }

    /// Whether a call may start: under `"refuse"`, not when the spill file has no room left for
    /// its records (`UNAVAILABLE`, before anything is read).
    pub fn admits(&self) -> Result<()> {
        let Some(on) = &self.on else { return Ok(()) };
        if on.when_unrecorded == WhenUnrecorded::Refuse {
            let level = on.queue.level();
            if level.spill_bytes + ADMIT_RESERVE_BYTES > on.queue.max_spill_bytes() {
                telemetry::record_audit(telemetry::AuditRecordOutcome::CallRefused);
                return Err(unrecorded());
            }
        }
        Ok(())
    }

    /// `ScreenPatient` (or `trdscreen screen`): the patient's record read, and what the
    /// write-back wrote.
    pub fn patient_screened(
        &self,
        who: &Requester,
        patient_id: &str,
        screening: Screening,
    ) -> Result<()> {
        let Some(on) = &self.on else { return Ok(()) };
        let Ok(patient) = PatientId::parse(patient_id) else {
            return Ok(()); // Refused before any read: no patient's data was touched.
        };
        let outcome = outcome_of(screening.error);
        on.keep(who, |id, access| {
            event::patient_screened(id, access, patient.as_str(), outcome)
        })?;
        on.written_back(who, patient.as_str(), &screening)
    }

    /// One patient of a population (`ScreenPopulation`, the nightly job): `cohort` names the
    /// query (`Group/{id}`, `patient_ids`, the job's source), `size` the population.
    pub fn population_patient_screened(
        &self,
        who: &Requester,
        cohort: &str,
        size: u64,
        patient_id: &str,
        screening: Screening,
    ) -> Result<()> {
        let Some(on) = &self.on else { return Ok(()) };
        let Ok(patient) = PatientId::parse(patient_id) else {
            return Ok(());
        };
        let outcome = outcome_of(screening.error);
        on.keep(who, |id, access| {
            event::population_patient_screened(id, access, cohort, size, patient.as_str(), outcome)
        })?;
        on.written_back(who, patient.as_str(), &screening)
    }

    /// `EvaluateBundle`: the Bundle's patient (when it names a usable one) and how it ended.
    pub fn bundle_evaluated(
        &self,
        who: &Requester,
        patient_id: Option<&str>,
        error: Option<&Error>,
    ) -> Result<()> {
        let Some(on) = &self.on else { return Ok(()) };
        let patient = patient_id.and_then(|p| PatientId::parse(p).ok());
        let outcome = outcome_of(error);
        on.keep(who, |id, access| {
            event::bundle_evaluated(id, access, patient.as_ref().map(PatientId::as_str), outcome)
        })
    }

    /// Sends records while `stop` is pending (retrying a down endpoint every
    /// `audit.retry_interval_ms`); then sends what it can and puts the rest on disk.
    pub fn run_sender(
        &self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let on = self.on.as_ref()?;
        let (queue, interval) = (on.queue.clone(), on.retry_interval);
        let levels = {
            let queue = queue.clone();
            tokio::spawn(async move {
                loop {
                    report(&queue);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        };
        Some(tokio::spawn(async move {
            queue.run_sender(interval, stop).await;
            levels.abort();
            report(&queue);
        }))
    }

    /// For a process that ends with its work (the nightly job, `trdscreen screen`): sends what
    /// waits, once, and puts what could not be sent on disk for the next process to send.
    pub async fn finish(&self) {
        let Some(on) = &self.on else { return };
        on.queue.run_sender(on.retry_interval, async {}).await;
        report(&on.queue);
    }

    fn report_level(&self) {
        if let Some(on) = &self.on {
            report(&on.queue);
        }
    }
}

impl On {
    /// The write-back's record, when one wrote, found what it wanted, or failed.
    fn written_back(&self, who: &Requester, patient_id: &str, screening: &Screening) -> Result<()> {
        let failure = match screening.write_back {
            None => return Ok(()),
            Some(Ok(_)) if screening.written.is_empty() => return Ok(()),
            Some(Ok(_)) => None,
            Some(Err(e)) => Some(e),
        };
        let outcome = outcome_of(failure);
        self.keep(who, |id, access| {
            event::written_back(id, access, patient_id, screening.written, outcome)
        })
    }

    fn keep(
        &self,
        who: &Requester,
        build: impl FnOnce(String, &Access) -> AuditEvent,
    ) -> Result<()> {
        let recorded_at = now_rfc3339();
        let access = Access {
            caller: &who.caller,
            client_address: who.address.as_deref(),
            service: &self.service,
            request_id: who.request_id.as_deref(),
            recorded: &recorded_at,
        };
        let result = event::new_event_id().and_then(|id| self.queue.record(&build(id, &access)));
        match result {
            Ok(Recorded::Queued) => {
                telemetry::record_audit(telemetry::AuditRecordOutcome::Queued);
                Ok(())
            }
            Ok(Recorded::Spilled) => {
                telemetry::record_audit(telemetry::AuditRecordOutcome::Spilled);
                Ok(())
            }
            Err(e) => {
                telemetry::record_audit(telemetry::AuditRecordOutcome::Lost);
                tracing::error!(error = %e, "an access could not be recorded in the audit trail");
                match self.when_unrecorded {
                    WhenUnrecorded::Refuse => Err(unrecorded()),
                    WhenUnrecorded::Continue => Ok(()),
                }
            }
        }
    }
}

fn report<S: super::queue::AuditSink>(queue: &AuditQueue<S>) {
    let level = queue.level();
    telemetry::record_audit_queue(level.in_memory as u64, level.spill_bytes, level.spilling);
}

fn unrecorded() -> Error {
    Error::Unavailable(
        "the access cannot be recorded in the audit trail (audit.when_unrecorded = \"refuse\")"
            .into(),
    )
}

/// How an access ended, for the record: the caller's errors (`4`) apart from ours and the FHIR
/// server's (`8`), each named by its gRPC status.
pub fn outcome_of(error: Option<&Error>) -> AuditOutcome {
    let Some(e) = error else {
        return AuditOutcome::Success;
    };
    let kind = e.kind();
    let name = crate::batch::error_kind_name(kind);
    match kind {
        ErrorKind::InvalidArgument
        | ErrorKind::NotFound
        | ErrorKind::PermissionDenied
        | ErrorKind::Unauthenticated
        | ErrorKind::ResourceExhausted => AuditOutcome::CallerError(name),
        ErrorKind::Unavailable
        | ErrorKind::Timeout
        | ErrorKind::BadGateway
        | ErrorKind::Conflict
        | ErrorKind::NotConfigured => AuditOutcome::Failure(name),
    }
}

/// Now, as an RFC 3339 instant in UTC with milliseconds.
fn now_rfc3339() -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(since)
}

fn rfc3339(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let day = crate::date::Date::from_days_since_epoch((secs / 86_400) as i32);
    let of_day = secs % 86_400;
    format!(
        "{day}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        since_epoch.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_rfc3339_in_utc() {
        assert_eq!(
            rfc3339(Duration::from_millis(0)),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339(Duration::from_millis(1_796_000_523_042)),
            "2026-11-30T01:02:03.042Z"
        );
    }

    #[test]
    fn the_callers_errors_are_minor_failures_and_ours_serious() {
        assert_eq!(outcome_of(None), AuditOutcome::Success);
        assert_eq!(
            outcome_of(Some(&Error::NotFound("x".into()))),
            AuditOutcome::CallerError("NOT_FOUND")
        );
        assert_eq!(
            outcome_of(Some(&Error::Unavailable("x".into()))),
            AuditOutcome::Failure("UNAVAILABLE")
        );
    }

    #[test]
    fn only_printable_request_ids_of_at_most_128_characters_are_recorded() {
        assert_eq!(request_id(Some("req-1")), Some("req-1".into()));
        assert_eq!(request_id(Some("a b")), None);
        assert_eq!(request_id(Some(&"x".repeat(129))), None);
        assert_eq!(request_id(Some("")), None);
        assert_eq!(request_id(None), None);
    }
}
