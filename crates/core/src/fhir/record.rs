//! One patient's resources, gathered from a Bundle (or, later, from NDJSON or a FHIR server), with a
//! diagnostic for everything that was set aside.

use super::datatypes::{Meta, Reference};
pub use super::id::{InvalidId, PatientId};
use super::resources::*;
use serde::{Deserialize as _, Serialize};
use serde_json::value::RawValue;
use std::fmt;

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
    /// A modifier (`doNotPerform`, a `modifierExtension`) that makes the resource no exposure or
    /// something the engine cannot interpret.
    Modifier,
    /// The resource's id is not a FHIR id.
    InvalidId,
    /// Text that is no Unicode (a lone surrogate escape), read as U+FFFD.
    InvalidText,
    /// Another version of the same resource in the input is later.
    Superseded,
    /// A later entry deletes the resource.
    Deleted,
    /// A supply duration that is no usable number of days.
    BadDuration,
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
            DiagnosticKind::Modifier => "modifier",
            DiagnosticKind::InvalidId => "invalid-id",
            DiagnosticKind::InvalidText => "invalid-text",
            DiagnosticKind::Superseded => "superseded",
            DiagnosticKind::Deleted => "deleted",
            DiagnosticKind::BadDuration => "bad-duration",
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

/// That the patient died (`Patient.deceased[x]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deceased {
    /// `deceasedDateTime`, as written (parsed by screening, which names a bad one).
    On(String),
    /// `deceasedBoolean` true: died, on a day the record does not give.
    Undated,
}

#[derive(Debug, Clone)]
pub struct PatientRecord {
    pub patient_id: PatientId,
    pub patient_full_url: Option<String>,
    /// The base URL of the FHIR server the record comes from, when known: an absolute reference
    /// names this patient only on it ([`PatientId::is_referenced_by`]).
    pub server_base: Option<String>,
    pub deceased: Option<Deceased>,
    pub conditions: Vec<Entry<Condition>>,
    pub medication_requests: Vec<Entry<MedicationRequest>>,
    pub medication_statements: Vec<Entry<MedicationStatement>>,
    pub medications: Vec<Entry<Medication>>,
    pub observations: Vec<Entry<Observation>>,
    pub procedures: Vec<Entry<Procedure>>,
    pub diagnostics: Vec<Diagnostic>,
}

/// A record holding more resources than one patient may (`record.max_resources` in policy.toml).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the patient's record holds {held} resources, over the limit of {limit} per patient (record.max_resources in policy.toml)"
)]
pub struct TooManyResources {
    pub held: usize,
    pub limit: usize,
}

/// The few fields read before a resource is parsed as its type.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Head {
    pub resource_type: Option<String>,
    pub id: Option<String>,
    subject: Option<Reference>,
    patient: Option<Reference>,
    pub meta: Option<Meta>,
}

/// Why a resource's head could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadProblem {
    NotAnObject,
    /// The element (`resourceType`, `id`, `subject`, ...) is not of its FHIR shape.
    Element(&'static str),
}

impl HeadProblem {
    fn reason(self) -> String {
        match self {
            HeadProblem::NotAnObject => {
                "the entry is not a FHIR resource (not a JSON object)".into()
            }
            HeadProblem::Element(name) => {
                format!("its {name} element is not of its FHIR shape; not used")
            }
        }
    }
}

impl Head {
    /// Reads the head of one resource's JSON text, naming what is wrong when it cannot.
    pub fn read(json: &str) -> Result<Head, HeadProblem> {
        if let Ok(head) = serde_json::from_str(json) {
            return Ok(head);
        }
        // Which element is wrong: each read on its own.
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Elements<'a> {
            #[serde(borrow)]
            resource_type: Option<&'a RawValue>,
            #[serde(borrow)]
            id: Option<&'a RawValue>,
            #[serde(borrow)]
            subject: Option<&'a RawValue>,
            #[serde(borrow)]
            patient: Option<&'a RawValue>,
            #[serde(borrow)]
            meta: Option<&'a RawValue>,
        }
        let Ok(elements) = serde_json::from_str::<Elements>(json) else {
            return Err(HeadProblem::NotAnObject);
        };
        fn reads<T: serde::de::DeserializeOwned>(raw: Option<&RawValue>) -> bool {
            raw.is_none_or(|r| serde_json::from_str::<T>(r.get()).is_ok())
        }
        let wrong = [
            (
                "resourceType",
                reads::<Option<String>>(elements.resource_type),
            ),
            ("id", reads::<Option<String>>(elements.id)),
            ("subject", reads::<Option<Reference>>(elements.subject)),
            ("patient", reads::<Option<Reference>>(elements.patient)),
            ("meta", reads::<Option<Meta>>(elements.meta)),
        ]
        .into_iter()
        .find(|(_, ok)| !ok);
        Err(wrong.map_or(HeadProblem::NotAnObject, |(name, _)| {
            HeadProblem::Element(name)
        }))
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
    // Boxed: a Bundle's entries are a Vec that grows as it is read, and a typed resource is up to
    // half a kilobyte.
    typed: Option<Box<Typed>>,
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

    pub(crate) fn into_parts(self) -> (Head, Option<Typed>) {
        (self.head, self.typed.map(|t| *t))
    }

    fn from_any(mut any: AnyResource) -> ParsedResource {
        let head = Head {
            resource_type: any.resource_type.take(),
            id: any.id.clone(),
            subject: any.subject.take(),
            patient: any.patient.take(),
            meta: any.meta.take(),
        };
        let typed = head
            .resource_type
            .as_deref()
            .and_then(|kind| any.typed(kind))
            .map(Box::new);
        ParsedResource { head, typed }
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

/// Where a resource came from in its input, for naming it when it has no usable id.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub full_url: Option<&'a str>,
    pub position: usize,
    /// The elements whose lone surrogate escapes were read as U+FFFD
    /// ([`super::surrogates`]), as paths from the resource.
    pub repaired: &'a [String],
}

impl PatientRecord {
    pub fn new(patient_id: PatientId, patient_full_url: Option<String>) -> PatientRecord {
        let server_base = patient_full_url
            .as_deref()
            .and_then(super::id::base_of)
            .map(str::to_owned);
        PatientRecord {
            patient_id,
            patient_full_url,
            server_base,
            deceased: None,
            conditions: Vec::new(),
            medication_requests: Vec::new(),
            medication_statements: Vec::new(),
            medications: Vec::new(),
            observations: Vec::new(),
            procedures: Vec::new(),
            diagnostics: Vec::new(),
        }
    }

    /// The record of a patient read from the FHIR server at `base` (when there is one): absolute
    /// references name this patient only on that server.
    pub fn with_server_base(mut self, base: Option<&str>) -> PatientRecord {
        if let Some(base) = base {
            self.server_base = Some(base.trim_end_matches('/').to_owned());
        }
        self
    }

    /// Makes room for the resources of these types, so that a large record is not moved as
    /// it grows.
    pub fn reserve_for<'a>(&mut self, types: impl Iterator<Item = &'a str>) {
        let mut counts = [0usize; 6];
        for kind in types {
            if let Some(i) = Typed::NAMES.iter().position(|n| *n == kind) {
                counts[i] += 1;
            }
        }
        let [
            conditions,
            requests,
            statements,
            medications,
            observations,
            procedures,
        ] = counts;
        self.conditions.reserve(conditions);
        self.medication_requests.reserve(requests);
        self.medication_statements.reserve(statements);
        self.medications.reserve(medications);
        self.observations.reserve(observations);
        self.procedures.reserve(procedures);
    }

    /// How many resources the record holds.
    pub fn resource_count(&self) -> usize {
        self.conditions.len()
            + self.medication_requests.len()
            + self.medication_statements.len()
            + self.medications.len()
            + self.observations.len()
            + self.procedures.len()
    }

    /// Refuses a record holding more than `limit` resources, which would cost more time and
    /// memory than one patient may.
    pub fn check_size(&self, limit: usize) -> Result<(), TooManyResources> {
        let held = self.resource_count();
        if held > limit {
            Err(TooManyResources { held, limit })
        } else {
            Ok(())
        }
    }

    /// Adds one resource given as JSON text. Types screening does not read are ignored; a resource of
    /// another patient or one that does not parse as its type is set aside with a diagnostic. Text
    /// that is no Unicode (a lone surrogate escape) is read as U+FFFD and named.
    pub fn add_json(&mut self, json: &RawValue, full_url: Option<&str>, position: usize) {
        self.add_json_text(json.get(), full_url, position);
    }

    /// [`add_json`](Self::add_json) for text already known to be one JSON value (an NDJSON line
    /// the nightly job's first pass read whole): the same outcome, without checking it again.
    pub fn add_json_text(&mut self, json: &str, full_url: Option<&str>, position: usize) {
        if let Some(parsed) = ParsedResource::parse(json) {
            return self.add_parsed(parsed, full_url, position);
        }
        match super::surrogates::repair(json) {
            None => self.add_text(
                json,
                Origin {
                    full_url,
                    position,
                    repaired: &[],
                },
            ),
            Some(repaired) => self.add_text(
                &repaired.text,
                Origin {
                    full_url,
                    position,
                    repaired: &repaired.places,
                },
            ),
        }
    }

    /// Adds one resource's JSON text, in one pass when it can be, else the careful way.
    pub(crate) fn add_text(&mut self, json: &str, origin: Origin) {
        match ParsedResource::parse(json) {
            Some(parsed) => {
                let (head, typed) = parsed.into_parts();
                self.add(Ok(head), origin, |_| typed.map(Ok));
            }
            None => self.add(Head::read(json), origin, |kind| Typed::parse(kind, json)),
        }
    }

    /// Adds a resource read in one pass: the same outcome as [`add_json`](Self::add_json) on its
    /// text, without reading it again.
    pub fn add_parsed(&mut self, parsed: ParsedResource, full_url: Option<&str>, position: usize) {
        let (head, typed) = parsed.into_parts();
        let origin = Origin {
            full_url,
            position,
            repaired: &[],
        };
        self.add(Ok(head), origin, |_| typed.map(Ok));
    }

    /// The checks every resource goes through, in this order: a head, a `resourceType`, a type
    /// screening reads, a FHIR id, this patient's; then `typed` reads it as that type (`None`: a
    /// type screening does not read, which cannot happen after the check), and a resource with a
    /// modifier extension in what screening reads is set aside.
    pub(crate) fn add(
        &mut self,
        head: Result<Head, HeadProblem>,
        origin: Origin,
        typed: impl FnOnce(&str) -> Option<serde_json::Result<Typed>>,
    ) {
        let position = origin.position;
        let head: Head = match head {
            Ok(head) => head,
            Err(problem) => {
                self.note(
                    format!("entry {position}"),
                    DiagnosticKind::Unreadable,
                    problem.reason(),
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
        // Only a known type name is ever written into a citation.
        let Some(kind) = Typed::NAMES
            .into_iter()
            .chain(["Patient"])
            .find(|name| *name == kind)
        else {
            return;
        };
        let citation = match (head.id.as_deref(), origin.full_url) {
            (Some(id), _) if super::id::is_fhir_id(id) => citation_of(kind, id),
            (Some(_), _) => {
                self.note(
                    format!("{kind} (entry {position})"),
                    DiagnosticKind::InvalidId,
                    "its id is not a FHIR id (1 to 64 of A-Z a-z 0-9 - . and not only dots); not used"
                        .into(),
                );
                return;
            }
            (None, Some(url)) if is_citable(url) => url.to_owned(),
            (None, _) => format!("{kind} (entry {position})"),
        };
        if kind == "Patient" {
            return self.add_patient(&head, &citation, origin, typed);
        }
        if !origin.repaired.is_empty() {
            self.note(
                citation.clone(),
                DiagnosticKind::InvalidText,
                repaired_message(origin.repaired),
            );
        }
        if kind != "Medication" && !self.belongs_to_patient(&head, &citation) {
            return;
        }
        let full_url = origin.full_url.map(str::to_owned);
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
        if let Some(place) = resource.modifier_extension_at() {
            self.note(
                citation,
                DiagnosticKind::Modifier,
                format!(
                    "carries a modifierExtension (on {place}) that changes its meaning in a way the engine cannot interpret; not used"
                ),
            );
            return;
        }
        match resource {
            Typed::Patient(_) => {}
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

    /// The record's own Patient: when (and whether) the patient died.
    fn add_patient(
        &mut self,
        head: &Head,
        citation: &str,
        origin: Origin,
        typed: impl FnOnce(&str) -> Option<serde_json::Result<Typed>>,
    ) {
        let ours = match head.id.as_deref() {
            Some(id) => id == self.patient_id.as_str(),
            None => {
                origin.full_url.is_some() && origin.full_url == self.patient_full_url.as_deref()
            }
        };
        if !ours {
            return;
        }
        let patient = match typed("Patient") {
            Some(Ok(Typed::Patient(patient))) => patient,
            Some(Err(e)) => {
                self.note(
                    citation.to_owned(),
                    DiagnosticKind::Unreadable,
                    format!(
                        "does not match the FHIR R4 structure ({}); whether the patient died is not read",
                        describe_serde_error(&e)
                    ),
                );
                return;
            }
            _ => return,
        };
        if !patient.modifier_extension.is_empty() {
            self.note(
                citation.to_owned(),
                DiagnosticKind::Modifier,
                "carries a modifierExtension the engine cannot interpret; whether the patient died is not read".into(),
            );
            return;
        }
        self.deceased = match (patient.deceased_date_time, patient.deceased_boolean) {
            (Some(day), _) => Some(Deceased::On(day)),
            (None, Some(true)) => Some(Deceased::Undated),
            _ => None,
        };
    }

    fn belongs_to_patient(&mut self, head: &Head, citation: &str) -> bool {
        match head.patient_reference() {
            Some(r)
                if self.patient_id.is_referenced_by(
                    r,
                    self.patient_full_url.as_deref(),
                    self.server_base.as_deref(),
                ) =>
            {
                true
            }
            Some(r) => {
                let message = match super::id::Literal::parse(r) {
                    Some(super::id::Literal::Absolute {
                        kind: "Patient",
                        id,
                        ..
                    }) if id == self.patient_id.as_str() => {
                        if self.server_base.is_some() {
                            "refers to a patient of the same id on another FHIR server; not used"
                        } else {
                            "refers to a patient by an absolute URL, and this record names no FHIR server to match it against; not used"
                        }
                    }
                    _ => "refers to a different patient; not used",
                };
                self.note(
                    citation.to_owned(),
                    DiagnosticKind::OtherPatient,
                    message.into(),
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

/// `Type/id`, built directly: one per resource read, where `format!`'s machinery was about 2 % of
/// the nightly job's CPU samples (perf, issue 15).
fn citation_of(kind: &str, id: &str) -> String {
    let mut citation = String::with_capacity(kind.len() + 1 + id.len());
    citation.push_str(kind);
    citation.push('/');
    citation.push_str(id);
    citation
}

/// A `fullUrl` fit to name a resource with no id: printable ASCII, no spaces, of a sane length.
fn is_citable(url: &str) -> bool {
    (1..=256).contains(&url.len()) && url.bytes().all(|b| b.is_ascii_graphic())
}

fn repaired_message(places: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut named = places
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if places.len() > SHOWN {
        named.push_str(&format!(" and {} more", places.len() - SHOWN));
    }
    format!("text that is no Unicode (a lone UTF-16 surrogate escape) in {named}; read as U+FFFD")
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

    fn record() -> PatientRecord {
        PatientRecord::new(PatientId::parse("p1").unwrap(), None)
    }

    fn add(record: &mut PatientRecord, json: &str) {
        let raw: &RawValue = serde_json::from_str(json).unwrap();
        record.add_json(raw, None, 7);
    }

    #[test]
    fn a_head_element_of_the_wrong_shape_is_named_not_called_a_non_object() {
        let mut r = record();
        add(
            &mut r,
            r#"{"resourceType":"Condition","id":"c1","subject":"Patient/p1"}"#,
        );
        assert_eq!(r.diagnostics.len(), 1);
        assert_eq!(r.diagnostics[0].resource, "entry 7");
        assert!(
            r.diagnostics[0].message.contains("its subject element"),
            "{:?}",
            r.diagnostics
        );
    }

    #[test]
    fn an_ndjson_line_with_a_lone_surrogate_is_read_and_the_element_named() {
        let mut r = record();
        add(
            &mut r,
            r#"{"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/p1","display":"A \ud800"},"code":{"text":"x"}}"#,
        );
        assert_eq!(r.conditions.len(), 1);
        assert_eq!(r.diagnostics.len(), 1);
        let d = &r.diagnostics[0];
        assert_eq!(
            (d.resource.as_str(), d.kind),
            ("Condition/c1", DiagnosticKind::InvalidText)
        );
        assert!(d.message.contains("in subject.display;"), "{}", d.message);
    }

    #[test]
    fn a_citable_full_url_names_a_resource_without_an_id_and_a_forged_one_does_not() {
        let mut r = record();
        let line = r#"{"resourceType":"Condition","code":{"text":"x"}}"#;
        let raw: &RawValue = serde_json::from_str(line).unwrap();
        r.add_json(raw, Some("urn:uuid:1"), 0);
        r.add_json(raw, Some("x\nTRD criteria: MET"), 1);
        let cited: Vec<&str> = r.conditions.iter().map(|c| c.citation.as_str()).collect();
        assert_eq!(cited, vec!["urn:uuid:1", "Condition (entry 1)"]);
    }
}
