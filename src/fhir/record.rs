//! One patient's resources, gathered from a Bundle (or, later, from NDJSON or a FHIR server), with a
//! diagnostic for everything that was set aside.

use super::resources::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
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
        let head = serde_json::from_str(json.get()).ok();
        self.add_json_with_head(json, head, full_url, position);
    }

    /// [`add_json`](Self::add_json) when the resource's head was already read (`None`: it could not be).
    pub fn add_json_with_head(
        &mut self,
        json: &RawValue,
        head: Option<Head>,
        full_url: Option<&str>,
        position: usize,
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
        if !matches!(
            kind,
            "Condition"
                | "MedicationRequest"
                | "MedicationStatement"
                | "Medication"
                | "Observation"
                | "Procedure"
        ) {
            return;
        }
        if kind != "Medication" && !self.belongs_to_patient(&head, &citation) {
            return;
        }
        let full_url = full_url.map(str::to_owned);
        match kind {
            "Condition" => self.push(json, citation, full_url, |r| &mut r.conditions),
            "MedicationRequest" => {
                self.push(json, citation, full_url, |r| &mut r.medication_requests)
            }
            "MedicationStatement" => {
                self.push(json, citation, full_url, |r| &mut r.medication_statements)
            }
            "Medication" => self.push(json, citation, full_url, |r| &mut r.medications),
            "Observation" => self.push(json, citation, full_url, |r| &mut r.observations),
            _ => self.push(json, citation, full_url, |r| &mut r.procedures),
        }
    }

    fn belongs_to_patient(&mut self, head: &Head, citation: &str) -> bool {
        let reference = head
            .subject
            .as_ref()
            .or(head.patient.as_ref())
            .and_then(|r| r.reference.as_deref());
        match reference {
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

    fn push<T: DeserializeOwned>(
        &mut self,
        json: &RawValue,
        citation: String,
        full_url: Option<String>,
        list: impl FnOnce(&mut PatientRecord) -> &mut Vec<Entry<T>>,
    ) {
        match serde_json::from_str::<T>(json.get()) {
            Ok(resource) => list(self).push(Entry {
                resource,
                citation,
                full_url,
            }),
            Err(e) => self.note(
                citation,
                DiagnosticKind::Unreadable,
                format!(
                    "does not match the FHIR R4 structure ({})",
                    describe_serde_error(&e)
                ),
            ),
        }
    }

    pub fn note(&mut self, resource: String, kind: DiagnosticKind, message: String) {
        self.diagnostics.push(Diagnostic {
            resource,
            kind,
            message,
        });
    }
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
