//! The little read from every NDJSON line before it is routed: its type, its id, whose it is and
//! which Medication it points at. Everything else in the line is skipped without being built.

use crate::fhir::id::is_fhir_id;
use crate::fhir::resources::Typed;
use serde::Deserialize;
use std::borrow::Cow;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawHead<'a> {
    #[serde(borrow)]
    resource_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    subject: Option<RawReference<'a>>,
    #[serde(borrow)]
    patient: Option<RawReference<'a>>,
    #[serde(borrow)]
    medication_reference: Option<RawReference<'a>>,
}

#[derive(Deserialize)]
struct RawReference<'a> {
    #[serde(borrow)]
    reference: Option<Cow<'a, str>>,
}

/// What one line is, for routing.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A Patient: one member of the population.
    Patient { id: Cow<'a, str> },
    /// A Medication, shared by the requests and statements that point at it.
    Medication { id: Cow<'a, str> },
    /// A resource screening reads, belonging to `patient` (the id in its subject or patient
    /// reference), with the Medication id it references, if any.
    Clinical {
        patient: Cow<'a, str>,
        medication: Option<String>,
    },
    /// A type screening reads that names no patient (or names one in a form that is not a
    /// reference to a Patient by id).
    NoPatient,
    /// A Medication whose id is not a FHIR id: it could never be referenced, and its id must not
    /// reach the bucket files, where a line break or a tab in it would forge another line.
    BadId,
    /// A resource of a type screening does not read.
    OtherType,
    /// Not JSON, or not a FHIR resource.
    Malformed,
}

pub fn classify(text: &str) -> Line<'_> {
    let Ok(head) = serde_json::from_str::<RawHead>(text) else {
        return Line::Malformed;
    };
    let Some(kind) = head.resource_type else {
        return Line::Malformed;
    };
    match kind.as_ref() {
        "Patient" => match head.id {
            Some(id) => Line::Patient { id },
            None => Line::NoPatient,
        },
        "Medication" => match head.id {
            Some(id) if is_fhir_id(&id) => Line::Medication { id },
            Some(_) => Line::BadId,
            None => Line::OtherType,
        },
        // Medication is the one read type that names no patient: matched above.
        k if Typed::NAMES.contains(&k) => {
            let reference = head
                .subject
                .and_then(|r| r.reference)
                .or_else(|| head.patient.and_then(|r| r.reference));
            match reference
                .as_deref()
                .and_then(|r| referenced_id(r, "Patient"))
            {
                Some(patient) => Line::Clinical {
                    patient: Cow::Owned(patient.to_owned()),
                    medication: head
                        .medication_reference
                        .and_then(|r| r.reference)
                        .and_then(|r| referenced_id(&r, "Medication").map(str::to_owned)),
                },
                None => Line::NoPatient,
            }
        }
        _ => Line::OtherType,
    }
}

/// The id in a literal reference to `kind` (`Kind/id`, an absolute URL ending in it, with or
/// without `/_history/n`), when it is one and a FHIR id.
pub fn referenced_id<'r>(reference: &'r str, kind: &str) -> Option<&'r str> {
    let path = reference.split("/_history/").next().unwrap_or(reference);
    let (rest, id) = path.rsplit_once('/')?;
    let named = rest.rsplit('/').next().unwrap_or(rest);
    (named == kind && is_fhir_id(id)).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_are_not_fhir_ids_never_reach_the_bucket_files() {
        // A line break in an id (an escape in the JSON) would forge a line of another patient.
        let medication = r#"{"resourceType":"Medication","id":"x\nRp1"}"#;
        assert_eq!(classify(medication), Line::BadId);
        let request = r#"{"resourceType":"MedicationRequest","subject":{"reference":"Patient/p2"},"medicationReference":{"reference":"Medication/x\nRp1"}}"#;
        assert_eq!(
            classify(request),
            Line::Clinical {
                patient: "p2".into(),
                medication: None
            }
        );
    }

    #[test]
    fn a_condition_is_routed_to_its_subject() {
        let line = r#"{"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/p1"},"code":{}}"#;
        assert_eq!(
            classify(line),
            Line::Clinical {
                patient: "p1".into(),
                medication: None
            }
        );
    }

    #[test]
    fn a_statement_is_routed_by_its_absolute_subject_and_names_its_medication() {
        let line = r#"{"resourceType":"MedicationStatement","subject":{"reference":"https://x/fhir/Patient/p2/_history/4"},"medicationReference":{"reference":"Medication/m9"}}"#;
        assert_eq!(
            classify(line),
            Line::Clinical {
                patient: "p2".into(),
                medication: Some("m9".into())
            }
        );
    }

    #[test]
    fn lines_that_cannot_be_routed_say_why() {
        assert_eq!(classify("{not json"), Line::Malformed);
        assert_eq!(classify("[1,2]"), Line::Malformed);
        assert_eq!(classify(r#"{"id":"x"}"#), Line::Malformed);
        assert_eq!(
            classify(r#"{"resourceType":"Encounter","subject":{"reference":"Patient/p"}}"#),
            Line::OtherType
        );
        assert_eq!(
            classify(r#"{"resourceType":"Observation","subject":{"reference":"Group/g"}}"#),
            Line::NoPatient
        );
        assert_eq!(classify(r#"{"resourceType":"Condition"}"#), Line::NoPatient);
    }

    #[test]
    fn escaped_ids_are_read_not_borrowed() {
        assert_eq!(
            classify(r#"{"resourceType":"Patient","id":"p\u002d1"}"#),
            Line::Patient { id: "p-1".into() }
        );
    }
}
