//! `[audit]`: where the audit trail of every access to patient data goes.

use super::values::{HttpUrl, empty_is_off, milliseconds};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// What a call does when its access cannot be recorded in the audit trail (the spill file is full
/// or cannot be written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WhenUnrecorded {
    /// The call is refused (UNAVAILABLE) before it reads anything, and a call whose record is
    /// refused gets no result: no access goes unrecorded.
    #[default]
    Refuse,
    /// The call goes on; each record that could not be kept is counted
    /// (`trdscreen_audit_records_total{outcome="lost"}`) and logged as an error, without its
    /// content.
    Continue,
}

/// The audit trail (`[audit]`): an AuditEvent (IHE BALP) for every access to patient data, sent to
/// a FHIR endpoint through a queue that spills to disk while the endpoint is down.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// The FHIR base URL AuditEvents are written to (`PUT AuditEvent/{id}`), with the `[fhir.auth]`
    /// credentials; empty: no audit trail.
    #[serde(with = "empty_is_off")]
    pub base_url: Option<HttpUrl>,
    /// Directory of the spill file (records kept on disk while the endpoint is down); required
    /// with `base_url`. On a volume that outlives the pod.
    pub spill_dir: Option<PathBuf>,
    /// How this service names itself in the records (agent and observer).
    pub service_name: String,
    /// Records held in memory while the endpoint answers; 0 writes every record to disk (fsync'd)
    /// before the call is answered, so a killed process loses none.
    pub memory_capacity: usize,
    /// Largest spill file; past it records are refused (see `when_unrecorded`).
    pub max_spill_bytes: u64,
    /// How often a down endpoint is tried again, in milliseconds.
    #[serde(rename = "retry_interval_ms", with = "milliseconds")]
    pub retry_interval: Duration,
    pub when_unrecorded: WhenUnrecorded,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            base_url: None,
            spill_dir: None,
            service_name: "trdscreen".into(),
            memory_capacity: 1000,
            max_spill_bytes: 1024 * 1024 * 1024,
            retry_interval: Duration::from_millis(5000),
            when_unrecorded: WhenUnrecorded::Refuse,
        }
    }
}
