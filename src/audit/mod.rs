//! The audit trail (issue 17): every access to patient data recorded as a FHIR `AuditEvent`
//! following IHE Basic Audit Log Patterns (BALP), and sent to a FHIR endpoint through a bounded
//! queue that spills to disk while the endpoint is down.
//!
//! - [`event`] builds the records: pure functions of what happened, who asked and when.
//! - [`queue`] holds them until the endpoint took them: in memory while it answers, in an
//!   append-only file (fsync'd before the record is acknowledged) while it does not, replayed in
//!   order. Each record has an id fixed when it is built, and is sent as `PUT AuditEvent/{id}`, so a
//!   replay after a crash writes nothing twice.
//!
//! The audit channel is the one place patient ids go outside results, by design; logs and errors
//! stay clean.

pub mod event;
pub mod queue;
pub mod trail;

pub use event::{
    Access, AuditEvent, AuditOutcome, WrittenResource, bundle_evaluated, new_event_id,
    patient_screened, population_patient_screened, written_back,
};
pub use queue::{
    AuditQueue, AuditQueueSettings, AuditSink, FhirAuditSink, Flushed, QueueLevel, Recorded,
};
pub use trail::{AuditTrail, Requester};
