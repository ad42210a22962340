//! The FHIR R4 data screening reads: lenient resource types, logical ids, and one patient's record
//! gathered from a Bundle or from NDJSON lines, with diagnostics. No I/O: the HTTP client and the
//! Bulk Data reader are the service's (`trdscreen::fhir`).

pub mod bundle;
pub mod datatypes;
pub mod id;
pub mod record;
pub mod resources;
pub mod surrogates;

pub use bundle::{BundleError, read_patient_bundle};
pub use id::{FhirId, GroupId, MedicationId, PatientId};
pub use record::{Deceased, Diagnostic, DiagnosticKind, Entry, PatientRecord, TooManyResources};
