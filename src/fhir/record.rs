//! One patient's resources, gathered from a Bundle (or, later, from NDJSON or a FHIR server), with a
//! diagnostic for everything that was set aside.

use super::resources::*;
use serde::{Deserialize as _, Serialize};
use serde_json::value::RawValue;
use std::fmt;

/// A FHIR logical id as the R4 spec allows it: `[A-Za-z0-9\-.]{1,64}`. Parsed once at the edge, so
/// nothing further in can be handed a path fragment or a query string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PatientId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a FHIR id must be 1 to 64 characters of A-Z, a-z, 0-9, '-' and '.'")]
pub struct InvalidId;

impl PatientId {
    pub fn parse(text: &str) -> Result<PatientId, InvalidId> {
        let ok = (1..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if ok {
            Ok(PatientId(text.to_owned()))
        } else {
            Err(InvalidId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a `subject`/`patient` reference points at this patient: `Patient/{id}`, an absolute URL
    /// ending in it (optionally with `/_history/n`), or the Patient entry's own `fullUrl`.
    pub fn is_referenced_by(&self, reference: &str, patient_full_url: Option<&str>) -> bool {
        if patient_full_url == Some(reference) {
            return true;
        }
        let path = reference.split("/_history/").next().unwrap_or(reference);
        let Some(rest) = path.strip_suffix(self.0.as_str()) else {
            return false;
        };
        rest == "Patient/" || rest.ends_with("/Patient/")
    }
}

impl fmt::Display for PatientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a resource, or part of one, was not used as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiagnosticKind {
    Unreadable,
    IgnoredStatus,
    OtherPatient,
    NoSubject,
    AfterAsOf,
    MissingDate,
    BadDate,
    DoseUnknown,
    DoseImplausible,
    CodingWithoutSystem,
    UnresolvedReference,
    ScoreOutOfRange,
    RouteExcluded,
    HypnoticDose,
    UnlistedAntidepressant,
    UnknownCode,
    CodeTextConflict,
}

impl DiagnosticKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DiagnosticKind::Unreadable => "unreadable",
            DiagnosticKind::IgnoredStatus => "ignored-status",
            DiagnosticKind::OtherPatient => "other-patient",
            DiagnosticKind::NoSubject => "no-subject",
            DiagnosticKind::AfterAsOf => "after-as-of",
            DiagnosticKind::MissingDate => "missing-date",
            DiagnosticKind::BadDate => "bad-date",
            DiagnosticKind::DoseUnknown => "dose-unknown",
            DiagnosticKind::DoseImplausible => "dose-implausible",
            DiagnosticKind::CodingWithoutSystem => "coding-without-system",
            DiagnosticKind::UnresolvedReference => "unresolved-reference",
            DiagnosticKind::ScoreOutOfRange => "score-out-of-range",
            DiagnosticKind::RouteExcluded => "route-excluded",
            DiagnosticKind::HypnoticDose => "hypnotic-dose",
            DiagnosticKind::UnlistedAntidepressant => "unlisted-antidepressant",
            DiagnosticKind::UnknownCode => "unknown-code",
            DiagnosticKind::CodeTextConflict => "code-text-conflict",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    /// `Type/id` of the resource concerned.
    pub resource: String,
    pub kind: DiagnosticKind,
    pub message: String,
}

/// A resource with the name it is cited by (`Type/id`) and its Bundle `fullUrl`, if any.
#[derive(Debug, Clone)]
pub struct Entry<T> {
    pub resource: T,
    pub citation: String,
    pub full_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PatientRecord {
    pub patient_id: PatientId,
    pub patient_full_url: Option<String>,
    pub conditions: Vec<Entry<Condition>>,
    pub medication_requests: Vec<Entry<MedicationRequest>>,
    pub medication_statements: Vec<Entry<MedicationStatement>>,
    pub medications: Vec<Entry<Medication>>,
    pub observations: Vec<Entry<Observation>>,
    pub procedures: Vec<Entry<Procedure>>,
    pub diagnostics: Vec<Diagnostic>,
}

/// The few fields read before a resource is parsed as its type.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Head {
    pub resource_type: Option<String>,
    pub id: Option<String>,
    subject: Option<super::datatypes::Reference>,
    patient: Option<super::datatypes::Reference>,
}

impl Head {
    /// Reads the head of one resource's JSON text; `None` when it is not a JSON object with these
    /// elements in their FHIR shapes.
    pub fn read(json: &str) -> Option<Head> {
        serde_json::from_str(json).ok()
    }

    /// The `subject` (else `patient`) reference: whose resource this is.
    pub fn patient_reference(&self) -> Option<&str> {
        self.subject
            .as_ref()
            .or(self.patient.as_ref())
            .and_then(|r| r.reference.as_deref())
    }
}

/// One resource read in one pass ([`ParsedResource::parse`]): its head and, when screening reads
/// its type, the typed resource. Reading fails (so that the resource is read the careful way, with
/// [`PatientRecord::add_json`]) whenever any element screening reads is malformed.
pub struct ParsedResource {
    head: Head,
    typed: Option<Typed>,
}

impl ParsedResource {
    /// Reads one resource's JSON text in one pass; `None` when that cannot be done, and then
    /// [`PatientRecord::add_json`] reads it and names what is wrong.
    pub fn parse(json: &str) -> Option<ParsedResource> {
        serde_json::from_str(json).ok()
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    fn from_any(any: AnyResource) -> ParsedResource {
        let head = Head {
            resource_type: any.resource_type.clone(),
            id: any.id.clone(),
            subject: any.subject.clone(),
            patient: any.patient.clone(),
        };
        ParsedResource {
            head,
            typed: any.typed(),
        }
    }
}

impl<'de> serde::Deserialize<'de> for ParsedResource {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Only a JSON object: serde would also read a struct from an array, by position, which
        // gives different values for `AnyResource` than for the resource's own type.
        struct Object;
        impl<'de> serde::de::Visitor<'de> for Object {
            type Value = ParsedResource;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a FHIR resource (a JSON object)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                let any =
                    AnyResource::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(ParsedResource::from_any(any))
            }
        }
        deserializer.deserialize_map(Object)
    }
}

impl PatientRecord {
    pub fn new(patient_id: PatientId, patient_full_url: Option<String>) -> PatientRecord {
        PatientRecord {
            patient_id,
            patient_full_url,
            conditions: Vec::new(),
            medication_requests: Vec::new(),
            medication_statements: Vec::new(),
            medications: Vec::new(),
            observations: Vec::new(),
            procedures: Vec::new(),
            diagnostics: Vec::new(),
        }
    }

    /// Adds one resource given as JSON text. Types screening does not read are ignored; a resource of
    /// another patient or one that does not parse as its type is set aside with a diagnostic.
    pub fn add_json(&mut self, json: &RawValue, full_url: Option<&str>, position: usize) {
        match ParsedResource::parse(json.get()) {
            Some(parsed) => self.add_parsed(parsed, full_url, position),
            None => self.add_json_with_head(json, Head::read(json.get()), full_url, position),
        }
    }

    /// [`add_json`](Self::add_json) when the resource's head was already read (`None`: it could not be).
    pub fn add_json_with_head(
        &mut self,
        json: &RawValue,
        head: Option<Head>,
        full_url: Option<&str>,
        position: usize,
    ) {
        self.add(head, full_url, position, |kind| {
            Typed::parse(kind, json.get())
        });
    }

    /// Adds a resource read in one pass: the same outcome as [`add_json`](Self::add_json) on its
    /// text, without reading it again.
    pub fn add_parsed(&mut self, parsed: ParsedResource, full_url: Option<&str>, position: usize) {
        let ParsedResource { head, typed } = parsed;
        self.add(Some(head), full_url, position, |_| typed.map(Ok));
    }

    /// The checks every resource goes through, in this order: a head, a `resourceType`, a type
    /// screening reads, this patient's; then `typed` reads it as that type (`None`: a type screening
    /// does not read, which cannot happen after the check).
    fn add(
        &mut self,
        head: Option<Head>,
        full_url: Option<&str>,
        position: usize,
        typed: impl FnOnce(&str) -> Option<serde_json::Result<Typed>>,
    ) {
        let head: Head = match head {
            Some(head) => head,
            None => {
                self.note(
                    format!("entry {position}"),
                    DiagnosticKind::Unreadable,
                    "the entry is not a FHIR resource (not a JSON object)".into(),
                );
                return;
            }
        };
        let Some(kind) = head.resource_type.as_deref() else {
            self.note(
                format!("entry {position}"),
                DiagnosticKind::Unreadable,
                "the entry has no resourceType".into(),
            );
            return;
        };
        let citation = match (&head.id, full_url) {
            (Some(id), _) => format!("{kind}/{id}"),
            (None, Some(url)) => url.to_owned(),
            (None, None) => format!("{kind} (entry {position})"),
        };
        if !Typed::NAMES.contains(&kind) {
            return;
        }
        if kind != "Medication" && !self.belongs_to_patient(&head, &citation) {
            return;
        }
        let full_url = full_url.map(str::to_owned);
        let resource = match typed(kind) {
            None => return,
            Some(Ok(resource)) => resource,
            Some(Err(e)) => {
                self.note(
                    citation,
                    DiagnosticKind::Unreadable,
                    format!(
                        "does not match the FHIR R4 structure ({})",
                        describe_serde_error(&e)
                    ),
                );
                return;
            }
        };
        match resource {
            Typed::Condition(r) => push(&mut self.conditions, r, citation, full_url),
            Typed::MedicationRequest(r) => {
                push(&mut self.medication_requests, r, citation, full_url)
            }
            Typed::MedicationStatement(r) => {
                push(&mut self.medication_statements, r, citation, full_url)
            }
            Typed::Medication(r) => push(&mut self.medications, r, citation, full_url),
            Typed::Observation(r) => push(&mut self.observations, r, citation, full_url),
            Typed::Procedure(r) => push(&mut self.procedures, r, citation, full_url),
        }
    }

    fn belongs_to_patient(&mut self, head: &Head, citation: &str) -> bool {
        match head.patient_reference() {
            Some(r)
                if self
                    .patient_id
                    .is_referenced_by(r, self.patient_full_url.as_deref()) =>
            {
                true
            }
            Some(_) => {
                self.note(
                    citation.to_owned(),
                    DiagnosticKind::OtherPatient,
                    "refers to a different patient; not used".into(),
                );
                false
            }
            None => {
                self.note(
                    citation.to_owned(),
                    DiagnosticKind::NoSubject,
                    "names no subject; read as this patient's because it came in this patient's record"
                        .into(),
                );
                true
            }
        }
    }

    /// The `medicationReference`s of the record's requests and statements, as written.
    pub fn medication_references(&self) -> impl Iterator<Item = &str> {
        let requests = self
            .medication_requests
            .iter()
            .filter_map(|e| e.resource.medication_reference.as_ref());
        let statements = self
            .medication_statements
            .iter()
            .filter_map(|e| e.resource.medication_reference.as_ref());
        requests
            .chain(statements)
            .filter_map(|r| r.reference.as_deref())
    }

    pub fn note(&mut self, resource: String, kind: DiagnosticKind, message: String) {
        self.diagnostics.push(Diagnostic {
            resource,
            kind,
            message,
        });
    }
}

fn push<T>(list: &mut Vec<Entry<T>>, resource: T, citation: String, full_url: Option<String>) {
    list.push(Entry {
        resource,
        citation,
        full_url,
    });
}

/// A serde error without the offending value (which could be clinical text): its category and place.
pub fn describe_serde_error(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Syntax => "malformed JSON",
        serde_json::error::Category::Eof => "truncated JSON",
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Data => "an element has the wrong type or shape",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_ids_follow_the_fhir_id_grammar() {
        for good in ["123", "a-b.c", &"x".repeat(64)] {
            assert!(PatientId::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "../Patient",
            "a/b",
            "x?y=1",
            "a b",
            &"x".repeat(65),
            "é",
        ] {
            assert!(PatientId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subject_references_match_relative_absolute_and_full_url_forms() {
        let id = PatientId::parse("p1").unwrap();
        assert!(id.is_referenced_by("Patient/p1", None));
        assert!(id.is_referenced_by("https://ehr.example/fhir/Patient/p1", None));
        assert!(id.is_referenced_by("Patient/p1/_history/3", None));
        assert!(id.is_referenced_by("urn:uuid:abc", Some("urn:uuid:abc")));
        assert!(!id.is_referenced_by("Patient/xp1", None));
        assert!(!id.is_referenced_by("Patient/p12", None));
        assert!(!id.is_referenced_by("Group/p1", None));
    }
}
