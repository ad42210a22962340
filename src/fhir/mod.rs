//! Everything about FHIR R4 data: the lenient resource types, how one patient's record is gathered,
//! and the HTTP client for FHIR servers, so that every byte exchanged with FHIR is in one place.

pub mod auth;
pub mod body;
pub mod bulk;
pub mod bundle;
pub mod client;
pub mod datatypes;
pub mod fetch;
pub mod record;
pub mod resources;
pub mod whole;

pub use bundle::{BundleError, read_patient_bundle};
pub use record::{Diagnostic, DiagnosticKind, Entry, PatientId, PatientRecord};
