//! Reading a Bundle that holds one patient's resources.

use super::record::{Head, PatientId, PatientRecord, describe_serde_error};
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
}

/// Parses a Bundle (collection, searchset, transaction, ...) holding exactly one Patient and that
/// patient's resources. Errors say what is wrong in one line and carry no clinical data.
///
/// The usual case reads the Bundle in one pass and each resource twice (its head, then its type);
/// only input that fails that pass is read again to say precisely what is wrong with it.
pub fn read_patient_bundle(json: &str) -> Result<PatientRecord, BundleError> {
    let bundle: RawBundle = match serde_json::from_str(json) {
        Ok(bundle) => bundle,
        Err(_) => return Err(classify_failure(json)),
    };
    match bundle.resource_type.as_deref() {
        Some("Bundle") => {}
        Some(other) => {
            return Err(BundleError::NotABundle(format!(
                "its resourceType is {other:?}"
            )));
        }
        None => return Err(BundleError::NotABundle("it has no resourceType".into())),
    }
    let heads: Vec<Option<Head>> = bundle
        .entry
        .iter()
        .map(|e| e.resource.and_then(|r| serde_json::from_str(r.get()).ok()))
        .collect();
    let mut patients = bundle.entry.iter().zip(&heads).filter(|(_, head)| {
        head.as_ref().and_then(|h| h.resource_type.as_deref()) == Some("Patient")
    });
    let (patient_entry, patient_head) = match (patients.next(), patients.count()) {
        (None, _) => return Err(BundleError::NoPatient),
        (Some(found), 0) => found,
        (Some(_), more) => return Err(BundleError::MoreThanOnePatient(more + 1)),
    };
    let id = patient_head.as_ref().and_then(|h| h.id.as_deref());
    let patient_id = patient_id_from(id, patient_entry.full_url.as_deref())?;
    let mut record = PatientRecord::new(patient_id, patient_entry.full_url.clone());
    for (position, (entry, head)) in bundle.entry.iter().zip(heads).enumerate() {
        if let Some(resource) = entry.resource {
            record.add_json_with_head(resource, head, entry.full_url.as_deref(), position);
        }
    }
    Ok(record)
}

/// Why a text that did not read as a Bundle is not one.
fn classify_failure(json: &str) -> BundleError {
    let value: &RawValue = match serde_json::from_str(json) {
        Ok(value) => value,
        Err(e) => return BundleError::NotJson(describe_serde_error(&e)),
    };
    let head: TypeAndId = match serde_json::from_str(value.get()) {
        Ok(head) => head,
        Err(_) => return BundleError::NotABundle("the JSON is not an object".into()),
    };
    match head.resource_type.as_deref() {
        None => BundleError::NotABundle("it has no resourceType".into()),
        Some(other) if other != "Bundle" => {
            BundleError::NotABundle(format!("its resourceType is {other:?}"))
        }
        Some(_) => BundleError::NotABundle(match serde_json::from_str::<RawBundle>(value.get()) {
            Err(e) => format!("its entries cannot be read ({})", describe_serde_error(&e)),
            Ok(_) => "its entries cannot be read".into(),
        }),
    }
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
