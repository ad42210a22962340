//! Everything about FHIR R4 data: the lenient resource types and how one patient's record is gathered.
//! (The HTTP client for FHIR servers will live here too, so that every byte exchanged with FHIR is in
//! one place.)

pub mod bundle;
pub mod datatypes;
pub mod record;
pub mod resources;

pub use bundle::{BundleError, read_patient_bundle};
pub use record::{Diagnostic, DiagnosticKind, Entry, PatientId, PatientRecord};
