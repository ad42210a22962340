//! Reading a Bundle that holds one patient's resources.

use super::id::{Literal, is_fhir_id};
use super::record::{DiagnosticKind, describe_serde_error};
use super::record::{Head, HeadProblem, Origin, ParsedResource, PatientId, PatientRecord};
use crate::date::DateTime;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::cmp::Ordering;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a FHIR Bundle: {0}")]
    NotABundle(String),
    /// A Bundle of a type that is not a patient's record (a document, a message, a response).
    #[error(
        "a Bundle of type {0} is not a patient's record; send a collection, searchset, transaction, batch or history Bundle"
    )]
    NotARecord(String),
    /// One page, or part, of a larger result: screening it would conclude from a partial record.
    #[error("the Bundle is part of a larger result ({0}); send the patient's whole record")]
    Partial(String),
    #[error("the Bundle holds no Patient resource, so it is not known whose record it is")]
    NoPatient,
    #[error("the Bundle holds more than one Patient ({0}); send one patient's record at a time")]
    MoreThanOnePatient(usize),
    #[error("the Bundle's Patient has no usable id: {0}")]
    BadPatientId(String),
}

/// A Bundle, its entries' resources read as `R`: in one pass ([`ParsedResource`]) or kept as
/// text to be read one by one (`&RawValue`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleOf<R> {
    resource_type: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    total: Option<u64>,
    #[serde(default)]
    link: Vec<Link>,
    #[serde(default = "Vec::new")]
    entry: Vec<EntryOf<R>>,
}

#[derive(Deserialize)]
struct Link {
    relation: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryOf<R> {
    full_url: Option<String>,
    resource: Option<R>,
    // Boxed: most entries have none of them, and a Bundle may hold 100,000 entries.
    search: Option<Box<EntrySearch>>,
    request: Option<Box<EntryRequest>>,
    response: Option<Box<EntryResponse>>,
}

#[derive(Deserialize)]
struct EntrySearch {
    mode: Option<String>,
}

#[derive(Deserialize)]
struct EntryRequest {
    method: Option<String>,
    url: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryResponse {
    etag: Option<String>,
    last_modified: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeAndId {
    resource_type: Option<String>,
}

/// The Bundle types read as a patient's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `collection`, `searchset`, `transaction`, `batch` (and a Bundle with no type): every
    /// entry's resource; where one resource appears twice, the later version.
    Record,
    /// `searchset`: as a record, and refused when it is one page of more.
    Searchset,
    /// `history`: versions newest first; the latest version of each resource, none of a deleted one.
    History,
}

/// The FHIR R4 Bundle types (`Bundle.type`), named in an error only when the type is one of them.
const BUNDLE_TYPES: [&str; 9] = [
    "document",
    "message",
    "transaction",
    "transaction-response",
    "batch",
    "batch-response",
    "history",
    "searchset",
    "collection",
];

fn kind_of(bundle_type: Option<&str>) -> Result<Kind, BundleError> {
    match bundle_type {
        // Bundle.type is required; a Bundle without one makes no claim to be a page or a
        // history, so it is read as the collection it is.
        None | Some("collection" | "transaction" | "batch") => Ok(Kind::Record),
        Some("searchset") => Ok(Kind::Searchset),
        Some("history") => Ok(Kind::History),
        Some(other) => Err(BundleError::NotARecord(
            BUNDLE_TYPES
                .iter()
                .find(|t| **t == other)
                .map_or_else(|| "an unknown type".to_owned(), |t| (*t).to_owned()),
        )),
    }
}

/// Parses a Bundle (collection, searchset, transaction, batch or history) holding exactly one
/// Patient and that patient's resources. Errors say what is wrong in one line and carry no
/// clinical data.
///
/// The usual case reads the Bundle and every resource in it in one pass. A Bundle that cannot be
/// read so (a malformed resource or element anywhere, text that is no Unicode) is read again the
/// careful way, resource by resource, which gives the same record and says precisely what is wrong.
pub fn read_patient_bundle(json: &str) -> Result<PatientRecord, BundleError> {
    // A UTF-8 byte order mark is no part of the JSON (RFC 8259 lets a reader ignore it).
    let json = json.strip_prefix('\u{feff}').unwrap_or(json);
    match serde_json::from_str::<BundleOf<ParsedResource>>(json) {
        Ok(bundle) => read_parsed(bundle, &Repairs::default()),
        Err(_) => read_carefully(json),
    }
}

/// The elements of each entry's resource whose lone surrogate escapes were replaced.
#[derive(Default)]
struct Repairs(HashMap<usize, Vec<String>>);

impl Repairs {
    fn of(places: &[String]) -> Repairs {
        let mut by_entry: HashMap<usize, Vec<String>> = HashMap::new();
        for place in places {
            let Some(rest) = place.strip_prefix("entry[") else {
                continue;
            };
            let Some((n, inner)) = rest.split_once("].resource") else {
                continue;
            };
            if let Ok(n) = n.parse() {
                let inner = inner.trim_start_matches('.');
                by_entry.entry(n).or_default().push(if inner.is_empty() {
                    "the resource".to_owned()
                } else {
                    inner.to_owned()
                });
            }
        }
        Repairs(by_entry)
    }

    fn at(&self, position: usize) -> &[String] {
        self.0.get(&position).map_or(&[], Vec::as_slice)
    }
}

fn read_parsed(
    bundle: BundleOf<ParsedResource>,
    repairs: &Repairs,
) -> Result<PatientRecord, BundleError> {
    let frame = Frame::of(&bundle)?;
    let heads: Vec<Option<&Head>> = bundle
        .entry
        .iter()
        .map(|e| e.resource.as_ref().map(ParsedResource::head))
        .collect();
    let Plan {
        mut record,
        dropped,
    } = plan(&frame, &bundle.entry, &heads)?;
    for (position, entry) in bundle.entry.into_iter().enumerate() {
        if let (false, Some(resource)) = (dropped[position], entry.resource) {
            let (head, typed) = resource.into_parts();
            let origin = Origin {
                full_url: entry.full_url.as_deref(),
                position,
                repaired: repairs.at(position),
            };
            record.add(Ok(head), origin, |_| typed.map(Ok));
        }
    }
    Ok(record)
}

/// Each resource read twice (its head, then its type), so that one that does not read is named.
fn read_carefully(json: &str) -> Result<PatientRecord, BundleError> {
    let repaired = super::surrogates::repair(json);
    let (text, repairs) = match &repaired {
        Some(r) => (r.text.as_str(), Repairs::of(&r.places)),
        None => (json, Repairs::default()),
    };
    if repaired.is_some()
        && let Ok(bundle) = serde_json::from_str::<BundleOf<ParsedResource>>(text)
    {
        return read_parsed(bundle, &repairs);
    }
    let bundle: BundleOf<&RawValue> = match serde_json::from_str(text) {
        Ok(bundle) => bundle,
        Err(_) => return Err(classify_failure(text)),
    };
    let frame = Frame::of(&bundle)?;
    let read: Vec<Option<Result<Head, HeadProblem>>> = bundle
        .entry
        .iter()
        .map(|e| e.resource.map(|r| Head::read(r.get())))
        .collect();
    let heads: Vec<Option<&Head>> = read
        .iter()
        .map(|h| h.as_ref().and_then(|h| h.as_ref().ok()))
        .collect();
    let Plan {
        mut record,
        dropped,
    } = plan(&frame, &bundle.entry, &heads)?;
    for (position, (entry, head)) in bundle.entry.iter().zip(read).enumerate() {
        if let (false, Some(raw), Some(head)) = (dropped[position], entry.resource, head) {
            let origin = Origin {
                full_url: entry.full_url.as_deref(),
                position,
                repaired: repairs.at(position),
            };
            record.add(head, origin, |kind| {
                super::resources::Typed::parse(kind, raw.get())
            });
        }
    }
    Ok(record)
}

/// What of a Bundle is read besides its entries.
struct Frame {
    kind: Kind,
    total: Option<u64>,
    has_next: bool,
}

impl Frame {
    fn of<R>(bundle: &BundleOf<R>) -> Result<Frame, BundleError> {
        check_is_bundle(bundle.resource_type.as_deref())?;
        Ok(Frame {
            kind: kind_of(bundle.kind.as_deref())?,
            total: bundle.total,
            has_next: bundle
                .link
                .iter()
                .any(|l| l.relation.as_deref() == Some("next")),
        })
    }
}

/// The record to fill and the entries not to read (older versions, deleted resources).
struct Plan {
    record: PatientRecord,
    dropped: Vec<bool>,
}

/// Decides, from the entries and their resources' heads alone, whether the Bundle is a whole
/// record, which entry holds each resource's latest version, and whose record it is.
fn plan<R>(
    frame: &Frame,
    entries: &[EntryOf<R>],
    heads: &[Option<&Head>],
) -> Result<Plan, BundleError> {
    check_complete(frame, entries)?;
    let versions = latest_versions(frame, entries, heads);
    let mut record = new_record(
        entries
            .iter()
            .zip(heads)
            .enumerate()
            .filter(|(position, _)| !versions.dropped[*position])
            .map(|(_, (entry, head))| (*head, entry.full_url.as_deref())),
    )?;
    for (citation, kind, message) in versions.notes {
        record.note(citation, kind, message);
    }
    record.reserve_for(
        heads
            .iter()
            .flatten()
            .filter_map(|h| h.resource_type.as_deref()),
    );
    Ok(Plan {
        record,
        dropped: versions.dropped,
    })
}

/// Refuses a page of a larger result: a `next` link, or fewer matches than the `total` says.
fn check_complete<R>(frame: &Frame, entries: &[EntryOf<R>]) -> Result<(), BundleError> {
    if frame.has_next {
        return Err(BundleError::Partial("it has a next link".into()));
    }
    let counted = match frame.kind {
        Kind::Record => return Ok(()),
        Kind::History => entries.len(),
        // Included resources and OperationOutcomes are not among the `total` matches.
        Kind::Searchset => entries
            .iter()
            .filter(|e| {
                let mode = e.search.as_ref().and_then(|s| s.mode.as_deref());
                !matches!(mode, Some("include" | "outcome"))
            })
            .count(),
    };
    match frame.total {
        Some(total) if total > counted as u64 => Err(BundleError::Partial(format!(
            "its total is {total} but it holds {counted}"
        ))),
        _ => Ok(()),
    }
}

/// Which entries hold the latest version of their resource, and a diagnostic for every other.
struct Versions {
    dropped: Vec<bool>,
    notes: Vec<(String, DiagnosticKind, String)>,
}

/// How one version of a resource is ordered against another: by `meta.lastUpdated`, else by a
/// numeric `meta.versionId`, else by its place in the Bundle (later is newer, except in a
/// history, which lists the newest first).
#[derive(Debug, Clone, Copy)]
struct Version {
    last_updated: Option<i64>,
    version_id: Option<u64>,
    rank: i64,
    deleted: bool,
}

impl Version {
    fn newer_than(&self, other: &Version) -> bool {
        let by = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (Some(a), Some(b)) if a != b => Some(a.cmp(&b)),
            _ => None,
        };
        let order = by(self.last_updated, other.last_updated)
            .or_else(|| {
                by(
                    self.version_id.map(|v| v as i64),
                    other.version_id.map(|v| v as i64),
                )
            })
            .unwrap_or_else(|| self.rank.cmp(&other.rank));
        order == Ordering::Greater
    }
}

fn latest_versions<R>(frame: &Frame, entries: &[EntryOf<R>], heads: &[Option<&Head>]) -> Versions {
    let rank = |position: usize| match frame.kind {
        Kind::History => -(position as i64),
        _ => position as i64,
    };
    let instant = |text: Option<&str>| {
        text.and_then(|t| DateTime::parse(t).ok())
            .map(|d| d.instant)
    };
    // Every version of every resource with an id, grouped by `(type, id)` by sorting: no
    // allocation per resource.
    let mut versions: Vec<((&str, &str), usize, Version)> = Vec::with_capacity(entries.len());
    for (position, (entry, head)) in entries.iter().zip(heads).enumerate() {
        let method = entry.request.as_ref().and_then(|r| r.method.as_deref());
        if method == Some("DELETE") {
            let Some(Literal::Relative { kind, id } | Literal::Absolute { kind, id, .. }) = entry
                .request
                .as_ref()
                .and_then(|r| r.url.as_deref())
                .and_then(Literal::parse)
            else {
                continue;
            };
            let response = entry.response.as_ref();
            let version = Version {
                last_updated: instant(response.and_then(|r| r.last_modified.as_deref())),
                version_id: response
                    .and_then(|r| r.etag.as_deref())
                    .and_then(|etag| etag.trim_start_matches("W/").trim_matches('"').parse().ok()),
                rank: rank(position),
                deleted: true,
            };
            versions.push(((kind, id), position, version));
        } else if let Some(head) = head
            && let (Some(kind), Some(id)) = (head.resource_type.as_deref(), head.id.as_deref())
            && is_fhir_id(id)
        {
            let meta = head.meta.as_ref();
            let version = Version {
                last_updated: instant(meta.and_then(|m| m.last_updated.as_deref())),
                version_id: meta
                    .and_then(|m| m.version_id.as_deref())
                    .and_then(|v| v.parse().ok()),
                rank: rank(position),
                deleted: false,
            };
            versions.push(((kind, id), position, version));
        }
    }
    // Each group in the Bundle's order.
    versions.sort_unstable_by_key(|(key, position, _)| (*key, *position));
    let mut dropped = vec![false; entries.len()];
    let mut notes = Vec::new();
    for group in versions.chunk_by(|a, b| a.0 == b.0) {
        if group.len() < 2 && !group[0].2.deleted {
            continue;
        }
        let mut latest = group[0].2;
        for (_, _, v) in &group[1..] {
            if v.newer_than(&latest) {
                latest = *v;
            }
        }
        let (kind, id) = group[0].0;
        for (_, position, v) in group {
            if v.deleted {
                continue;
            }
            let (kind_of_note, message) = if latest.deleted {
                (
                    DiagnosticKind::Deleted,
                    "a later entry of the Bundle deletes this resource; not used",
                )
            } else if v.rank == latest.rank {
                continue;
            } else {
                (
                    DiagnosticKind::Superseded,
                    "a later version of this resource is in the Bundle (by meta.lastUpdated, meta.versionId or order); this version is not used",
                )
            };
            dropped[*position] = true;
            notes.push((format!("{kind}/{id}"), kind_of_note, message.to_owned()));
        }
    }
    Versions { dropped, notes }
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
        Some(_) => BundleError::NotABundle(
            match serde_json::from_str::<BundleOf<&RawValue>>(value.get()) {
                Err(e) => format!(
                    "its type, total, link or entries cannot be read ({})",
                    describe_serde_error(&e)
                ),
                Ok(_) => "its entries cannot be read".into(),
            },
        ),
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
        let one_pass = match serde_json::from_str::<BundleOf<ParsedResource>>(json) {
            Ok(bundle) => format!("{:?}", read_parsed(bundle, &Repairs::default())),
            // Not readable in one pass: read_patient_bundle reads it carefully.
            Err(_) => careful.clone(),
        };
        (one_pass, careful)
    }

    #[test]
    fn every_fixture_reads_the_same_in_one_pass_as_carefully() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");
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
            serde_json::from_str::<BundleOf<ParsedResource>>(&typical).is_ok(),
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
