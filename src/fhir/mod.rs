//! Everything about FHIR R4 data: the lenient resource types, how one patient's record is gathered,
//! and the HTTP client for FHIR servers, so that every byte exchanged with FHIR is in one place.

pub mod auth;
pub mod body;
pub mod bulk;
pub mod bundle;
pub mod client;
pub mod datatypes;
pub mod fetch;
pub mod id;
pub mod record;
pub mod resources;
pub mod surrogates;
pub mod whole;

pub use bundle::{BundleError, read_patient_bundle};
pub use id::{FhirId, PatientId};
pub use record::{Deceased, Diagnostic, DiagnosticKind, Entry, PatientRecord, TooManyResources};
