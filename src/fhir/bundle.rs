//! Reading a Bundle that holds one patient's resources.

use super::record::{Head, ParsedResource, PatientId, PatientRecord, describe_serde_error};
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

/// The Bundle with every resource read in one pass ([`ParsedResource`]).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ParsedBundle {
    resource_type: Option<String>,
    #[serde(default)]
    entry: Vec<ParsedEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ParsedEntry {
    full_url: Option<String>,
    resource: Option<ParsedResource>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeAndId {
    resource_type: Option<String>,
}

/// Parses a Bundle (collection, searchset, transaction, ...) holding exactly one Patient and that
/// patient's resources. Errors say what is wrong in one line and carry no clinical data.
///
/// The usual case reads the Bundle and every resource in it in one pass. A Bundle that cannot be
/// read so (a malformed resource or element anywhere) is read again the careful way, resource by
/// resource, which gives the same record and says precisely what is wrong.
pub fn read_patient_bundle(json: &str) -> Result<PatientRecord, BundleError> {
    match serde_json::from_str::<ParsedBundle>(json) {
        Ok(bundle) => read_parsed(bundle),
        Err(_) => read_carefully(json),
    }
}

fn read_parsed(bundle: ParsedBundle) -> Result<PatientRecord, BundleError> {
    check_is_bundle(bundle.resource_type.as_deref())?;
    let mut record = new_record(bundle.entry.iter().map(|e| {
        (
            e.resource.as_ref().map(ParsedResource::head),
            e.full_url.as_deref(),
        )
    }))?;
    for (position, entry) in bundle.entry.into_iter().enumerate() {
        if let Some(resource) = entry.resource {
            record.add_parsed(resource, entry.full_url.as_deref(), position);
        }
    }
    Ok(record)
}

/// Each resource read twice (its head, then its type), so that one that does not read is named.
fn read_carefully(json: &str) -> Result<PatientRecord, BundleError> {
    let bundle: RawBundle = match serde_json::from_str(json) {
        Ok(bundle) => bundle,
        Err(_) => return Err(classify_failure(json)),
    };
    check_is_bundle(bundle.resource_type.as_deref())?;
    let heads: Vec<Option<Head>> = bundle
        .entry
        .iter()
        .map(|e| e.resource.and_then(|r| Head::read(r.get())))
        .collect();
    let mut record = new_record(
        bundle
            .entry
            .iter()
            .zip(&heads)
            .map(|(e, head)| (head.as_ref(), e.full_url.as_deref())),
    )?;
    for (position, (entry, head)) in bundle.entry.iter().zip(heads).enumerate() {
        if let Some(resource) = entry.resource {
            record.add_json_with_head(resource, head, entry.full_url.as_deref(), position);
        }
    }
    Ok(record)
}

fn check_is_bundle(resource_type: Option<&str>) -> Result<(), BundleError> {
    match resource_type {
        Some("Bundle") => Ok(()),
        // Not named: a caller's text is never copied into an error.
        Some(_) => Err(BundleError::NotABundle(
            "its resourceType is not Bundle".into(),
        )),
        None => Err(BundleError::NotABundle("it has no resourceType".into())),
    }
}

/// An empty record for the one Patient among the entries (each its head, if it has one, and its
/// `fullUrl`).
fn new_record<'a>(
    entries: impl Iterator<Item = (Option<&'a Head>, Option<&'a str>)>,
) -> Result<PatientRecord, BundleError> {
    let mut patients = entries
        .filter(|(head, _)| head.and_then(|h| h.resource_type.as_deref()) == Some("Patient"));
    let (patient_head, full_url) = match (patients.next(), patients.count()) {
        (None, _) => return Err(BundleError::NoPatient),
        (Some(found), 0) => found,
        (Some(_), more) => return Err(BundleError::MoreThanOnePatient(more + 1)),
    };
    let id = patient_head.and_then(|h| h.id.as_deref());
    let patient_id = patient_id_from(id, full_url)?;
    Ok(PatientRecord::new(patient_id, full_url.map(str::to_owned)))
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
            BundleError::NotABundle("its resourceType is not Bundle".into())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn both_ways(json: &str) -> (String, String) {
        let careful = format!("{:?}", read_carefully(json));
        let one_pass = match serde_json::from_str::<ParsedBundle>(json) {
            Ok(bundle) => format!("{:?}", read_parsed(bundle)),
            // Not readable in one pass: read_patient_bundle reads it carefully.
            Err(_) => careful.clone(),
        };
        (one_pass, careful)
    }

    #[test]
    fn every_fixture_reads_the_same_in_one_pass_as_carefully() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
        let mut files = vec![std::path::PathBuf::from(dir)];
        let mut read = 0;
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).unwrap();
                let (one_pass, careful) = both_ways(&text);
                assert_eq!(one_pass, careful, "{}", path.display());
                read += 1;
            }
        }
        assert!(read > 50, "{read} fixtures");
        let typical = std::fs::read_to_string(format!("{dir}/typical-patient.json")).unwrap();
        assert!(
            serde_json::from_str::<ParsedBundle>(&typical).is_ok(),
            "the typical patient is read in one pass"
        );
    }

    #[test]
    fn resources_that_do_not_read_in_one_pass_read_as_before() {
        let patient = r#"{"resource":{"resourceType":"Patient","id":"p1"}}"#;
        for resource in [
            r#"5"#,
            r#"["Condition","c1"]"#,
            r#"{"id":"x"}"#,
            r#"{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"},"valueQuantity":{"value":{}}}"#,
            r#"{"resourceType":"MedicationRequest","id":"m1","subject":{"reference":"Patient/p1"},"dosageInstruction":[{"timing":"daily"},{}]}"#,
            r#"{"resourceType":"MedicationStatement","id":"s1","subject":{"reference":"Patient/p1"},"contained":[{"resourceType":"Medication","code":"x"}]}"#,
            r#"{"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/p1"},"dosage":"clashes"}"#,
            r#"{"resourceType":"Condition","id":"c2","subject":{"reference":"Patient/p2"},"code":[]}"#,
            r#"{"resourceType":"Encounter","id":"e1","status":{"not":"a string"}}"#,
            r#"{"id":"o2","resourceType":"Observation","resourceType":"Observation"}"#,
        ] {
            let json = format!(
                r#"{{"resourceType":"Bundle","entry":[{patient},{{"fullUrl":"urn:uuid:1","resource":{resource}}}]}}"#
            );
            let (one_pass, careful) = both_ways(&json);
            assert_eq!(one_pass, careful, "{resource}");
            assert_eq!(
                format!("{:?}", read_patient_bundle(&json)),
                careful,
                "{resource}"
            );
        }
    }
}
