//! Reading a Bundle that holds one patient's resources.

use super::record::{PatientId, PatientRecord, describe_serde_error};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a FHIR Bundle: {0}")]
    NotABundle(String),
    #[error("the Bundle holds no Patient resource, so it is not known whose record it is")]
    NoPatient,
    #[error("the Bundle holds more than one Patient ({0}); send one patient's record at a time")]
    MoreThanOnePatient(usize),
    #[error("the Bundle's Patient has no usable id: {0}")]
    BadPatientId(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBundle<'a> {
    resource_type: Option<String>,
    #[serde(default, borrow)]
    entry: Vec<RawEntry<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry<'a> {
    full_url: Option<String>,
    #[serde(borrow)]
    resource: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeAndId {
    resource_type: Option<String>,
    id: Option<String>,
}

/// Parses a Bundle (collection, searchset, transaction, ...) holding exactly one Patient and that
/// patient's resources. Errors say what is wrong in one line and carry no clinical data.
pub fn read_patient_bundle(json: &str) -> Result<PatientRecord, BundleError> {
    let value: &RawValue =
        serde_json::from_str(json).map_err(|e| BundleError::NotJson(describe_serde_error(&e)))?;
    let head: TypeAndId = serde_json::from_str(value.get())
        .map_err(|_| BundleError::NotABundle("the JSON is not an object".into()))?;
    match head.resource_type.as_deref() {
        Some("Bundle") => {}
        Some(other) => {
            return Err(BundleError::NotABundle(format!(
                "its resourceType is {other:?}"
            )));
        }
        None => return Err(BundleError::NotABundle("it has no resourceType".into())),
    }
    let bundle: RawBundle = serde_json::from_str(value.get()).map_err(|e| {
        BundleError::NotABundle(format!(
            "its entries cannot be read ({})",
            describe_serde_error(&e)
        ))
    })?;
    debug_assert_eq!(bundle.resource_type.as_deref(), Some("Bundle"));

    let mut patients = Vec::new();
    for entry in &bundle.entry {
        let Some(resource) = entry.resource else {
            continue;
        };
        if let Ok(TypeAndId {
            resource_type: Some(t),
            id,
        }) = serde_json::from_str(resource.get())
            && t == "Patient"
        {
            patients.push((id, entry.full_url.clone()));
        }
    }
    let (id, full_url) = match patients.len() {
        0 => return Err(BundleError::NoPatient),
        1 => patients.pop().expect("one patient"),
        n => return Err(BundleError::MoreThanOnePatient(n)),
    };
    let patient_id = patient_id_from(id.as_deref(), full_url.as_deref())?;
    let mut record = PatientRecord::new(patient_id, full_url);
    for (position, entry) in bundle.entry.iter().enumerate() {
        if let Some(resource) = entry.resource {
            record.add_json(resource, entry.full_url.as_deref(), position);
        }
    }
    Ok(record)
}

/// The Patient's `id`; for a transaction Bundle whose Patient has none yet, the uuid of its
/// `urn:uuid:` fullUrl.
fn patient_id_from(id: Option<&str>, full_url: Option<&str>) -> Result<PatientId, BundleError> {
    if let Some(id) = id {
        return PatientId::parse(id).map_err(|e| BundleError::BadPatientId(e.to_string()));
    }
    full_url
        .and_then(|url| url.strip_prefix("urn:uuid:"))
        .and_then(|uuid| PatientId::parse(uuid).ok())
        .ok_or_else(|| {
            BundleError::BadPatientId("it has neither an id nor a urn:uuid fullUrl".into())
        })
}
