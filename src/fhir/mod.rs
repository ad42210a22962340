//! Everything about FHIR R4 data: the lenient resource types, how one patient's record is gathered,
//! and the HTTP client for FHIR servers, so that every byte exchanged with FHIR is in one place.

pub mod auth;
pub mod body;
pub mod bulk;
pub mod client;
pub mod fetch;
pub(crate) mod retry;
pub mod transport;
pub mod whole;

pub use trdscreen_core::fhir::{
    BundleError, Deceased, Diagnostic, DiagnosticKind, Entry, FhirId, GroupId, MedicationId,
    PatientId, PatientRecord, TooManyResources, bundle, datatypes, id, read_patient_bundle, record,
    resources, surrogates,
};
