//! Gathers one patient's record from a FHIR server: the Patient, then narrow searches made
//! concurrently (medications with their Medication included, the observations screening reads by
//! code, conditions, procedures), then any Medication still referenced but not included.

use super::client::{FhirClient, SearchEntry};
use super::whole::WholeRecord;
use super::{GroupId, MedicationId, PatientId, PatientRecord};
use crate::error::{Error, Result};
use crate::knowledge::Knowledge;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::BTreeSet;

/// Medications read one by one when the server did not include them: a cap keeps a pathological
/// record from turning into thousands of requests. A record that needs more is not read at all:
/// the drugs past the cap would be unknown, and a record missing them is not whole.
const MAX_MEDICATION_READS: usize = 100;

/// Pages of a population search followed before giving up: enough for millions of patients at the
/// usual page sizes, and a bound on a server whose `next` links never end.
pub(crate) const POPULATION_PAGE_CAP: u32 = 100_000;

/// The record is whole (every search followed to its end, or an error): the one read that
/// write-back may act on besides a whole export.
pub async fn patient_record(
    client: &FhirClient,
    id: &PatientId,
    k: &Knowledge,
) -> Result<WholeRecord> {
    patient_record_with(client.base(), Some(client), id, k, Given::default())
        .await
        .map(|(record, _)| record)
}

/// What a caller already holds of a patient's record (a CDS client's prefetch): the Patient and any
/// of the five searches of [`searches`], by position, each whole (its last page).
#[derive(Default)]
pub struct Given {
    pub patient: Option<Box<RawValue>>,
    pub searches: [Option<Vec<SearchEntry>>; 5],
}

/// The record from what is `given`, the rest read through `client` (none: the rest cannot be had,
/// `Unavailable`); `base` is the server the record comes from. Also says how many of the six parts
/// (the Patient, the five searches) and Medication reads were asked of the server.
pub async fn patient_record_with(
    base: &str,
    client: Option<&FhirClient>,
    id: &PatientId,
    k: &Knowledge,
    given: Given,
) -> Result<(WholeRecord, usize)> {
    let mut asked = 0;
    let patient = match (given.patient, client) {
        (Some(patient), _) => Bytes::copy_from_slice(patient.get().as_bytes()),
        (None, Some(client)) => {
            asked += 1;
            let Some(patient) = client.read("Patient", id.as_str()).await? else {
                return Err(Error::NotFound(
                    "the FHIR server has no such Patient".into(),
                ));
            };
            patient.body
        }
        (None, None) => return Err(cannot_be_had()),
    };
    check_is_patient(&patient)?;
    let subject = format!("Patient/{id}");
    let plan = searches(id, k);
    let [g0, g1, g2, g3, g4] = given.searches;
    asked += [&g0, &g1, &g2, &g3, &g4]
        .iter()
        .filter(|g| g.is_none())
        .count();
    let search = |i: usize, given: Option<Vec<SearchEntry>>| {
        let (resource_type, params) = &plan[i];
        let params: Vec<(&str, &str)> = params.iter().map(|(n, v)| (*n, v.as_str())).collect();
        async move {
            match (given, client) {
                (Some(entries), _) => Ok(entries),
                (None, Some(client)) => client.search(resource_type, &params).await,
                (None, None) => Err(cannot_be_had()),
            }
        }
    };
    let (requests, statements, observations, conditions, procedures) = tokio::try_join!(
        search(0, g0),
        search(1, g1),
        search(2, g2),
        search(3, g3),
        search(4, g4)
    )?;
    let patient_url = format!("{}/{subject}", base.trim_end_matches('/'));
    let mut record = PatientRecord::new(id.clone(), Some(patient_url.clone()));
    // The Patient itself: whether, and when, the patient died.
    if let Ok(raw) = serde_json::from_slice::<&serde_json::value::RawValue>(&patient) {
        record.add_json(raw, Some(&patient_url), 0);
    }
    let mut position = 1;
    let mut seen = BTreeSet::new();
    for entry in [requests, statements, observations, conditions, procedures]
        .into_iter()
        .flatten()
    {
        add_entry(&mut record, &entry, &mut position, &mut seen);
    }
    asked += read_missing_medications(base, client, &mut record, &mut position, &mut seen).await?;
    Ok((WholeRecord::read_whole(record), asked))
}

fn cannot_be_had() -> Error {
    Error::Unavailable("part of the record was not given and no FHIR server can be asked".into())
}

/// The five searches made for one patient after the Patient read, in a fixed order (medication
/// requests, medication statements, observations, conditions, procedures); public so that the load
/// tool can time the same requests made by a bare HTTP client.
pub fn searches(id: &PatientId, k: &Knowledge) -> [(&'static str, Vec<(&'static str, String)>); 5] {
    let subject = format!("Patient/{id}");
    [
        (
            "MedicationRequest",
            vec![
                ("patient", subject.clone()),
                ("_include", "MedicationRequest:medication".into()),
            ],
        ),
        (
            "MedicationStatement",
            vec![
                ("patient", subject.clone()),
                ("_include", "MedicationStatement:medication".into()),
            ],
        ),
        (
            "Observation",
            vec![("patient", subject.clone()), ("code", observation_codes(k))],
        ),
        ("Condition", vec![("patient", subject.clone())]),
        ("Procedure", vec![("patient", subject)]),
    ]
}

/// All LOINC codes screening reads, bare (any system), so that a coding whose system is missing
/// still comes back and is named in diagnostics rather than silently absent.
pub(crate) fn observation_codes(k: &Knowledge) -> String {
    let o = &k.observations;
    let all: BTreeSet<&str> = [
        &o.phq9_total,
        &o.phqa_total,
        &o.phq9_item9,
        &o.phq9_panel,
        &o.mdq_total,
        &o.bp_panel,
        &o.systolic_bp,
        &o.diastolic_bp,
        &o.egfr,
        &o.lithium_level,
    ]
    .into_iter()
    .flatten()
    .map(String::as_str)
    .collect();
    all.into_iter().collect::<Vec<_>>().join(",")
}

fn check_is_patient(body: &[u8]) -> Result<()> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        resource_type: Option<String>,
    }
    match serde_json::from_slice::<Head>(body) {
        Ok(Head {
            resource_type: Some(t),
        }) if t == "Patient" => Ok(()),
        _ => Err(Error::BadGateway(
            "the Patient read did not return a Patient".into(),
        )),
    }
}

/// Adds a search entry, once (an included Medication may come with every page).
fn add_entry(
    record: &mut PatientRecord,
    entry: &SearchEntry,
    position: &mut usize,
    seen: &mut BTreeSet<String>,
) {
    let mode = entry.search.as_ref().and_then(|s| s.mode.as_deref());
    if mode == Some("outcome") {
        return;
    }
    let Some(resource) = &entry.resource else {
        return;
    };
    if let Some(url) = &entry.full_url
        && !seen.insert(url.clone())
    {
        return;
    }
    record.add_json(resource, entry.full_url.as_deref(), *position);
    *position += 1;
}

/// Reads the Medications the record references but does not hold; how many were read.
async fn read_missing_medications(
    base: &str,
    client: Option<&FhirClient>,
    record: &mut PatientRecord,
    position: &mut usize,
    seen: &mut BTreeSet<String>,
) -> Result<usize> {
    let have: BTreeSet<&str> = record
        .medications
        .iter()
        .map(|m| m.citation.as_str())
        .collect();
    let referenced = record.medication_references();
    let mut missing = BTreeSet::new();
    for reference in referenced {
        let path = reference.split("/_history/").next().unwrap_or(reference);
        // Only plain references into this server (`Medication/id` or `{base}/Medication/id`).
        let relative = path
            .strip_prefix(base.trim_end_matches('/'))
            .map(|p| p.trim_start_matches('/'))
            .unwrap_or(path);
        if let Some(id) = relative.strip_prefix("Medication/")
            && MedicationId::parse(id).is_ok()
            && !have.contains(relative)
        {
            missing.insert(id.to_owned());
        }
    }
    if missing.is_empty() {
        return Ok(0);
    }
    let Some(client) = client else {
        return Err(cannot_be_had());
    };
    if missing.len() > MAX_MEDICATION_READS {
        return Err(Error::ResourceExhausted(crate::summary!(
            "the record references more than {} Medications its searches did not include; it is not read in part",
            MAX_MEDICATION_READS
        )));
    }
    let mut read = 0;
    for id in missing {
        read += 1;
        if let Some(reply) = client.read("Medication", &id).await? {
            let raw: Box<serde_json::value::RawValue> = serde_json::from_slice(&reply.body)
                .map_err(|_| Error::BadGateway("a Medication read did not return JSON".into()))?;
            let entry = SearchEntry {
                full_url: Some(client.url(&format!("Medication/{id}"))),
                resource: Some(raw),
                search: None,
            };
            add_entry(record, &entry, position, seen);
        }
    }
    Ok(read)
}

/// The active members of a Group that are Patients, each once, in the Group's order.
pub async fn group_members(client: &FhirClient, group_id: &GroupId) -> Result<Vec<PatientId>> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Group {
        resource_type: Option<String>,
        #[serde(default)]
        member: Vec<Member>,
    }
    #[derive(Deserialize)]
    struct Member {
        entity: Option<crate::fhir::datatypes::Reference>,
        #[serde(default)]
        inactive: bool,
    }
    let Some(reply) = client.read("Group", group_id.as_str()).await? else {
        return Err(Error::NotFound("the FHIR server has no such Group".into()));
    };
    let group: Group = serde_json::from_slice(&reply.body)
        .map_err(|_| Error::BadGateway("the Group read did not return a readable Group".into()))?;
    if group.resource_type.as_deref() != Some("Group") {
        return Err(Error::BadGateway(
            "the Group read did not return a Group".into(),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut members = Vec::new();
    for member in group.member.into_iter().filter(|m| !m.inactive) {
        let id = member
            .entity
            .and_then(|e| e.reference)
            .and_then(|r| patient_id_in(&r));
        if let Some(id) = id
            && seen.insert(id.clone())
        {
            members.push(id);
        }
    }
    Ok(members)
}

/// The ids of the Patients a search finds: `query` is the search's parameters as in a URL
/// (`name=value&...`, without `Patient?`).
pub async fn patient_ids(client: &FhirClient, query: &str) -> Result<Vec<PatientId>> {
    let query = query.trim_start_matches('?');
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .filter(|(name, _)| name != "_count")
        .collect();
    if params.iter().any(|(name, _)| name.is_empty()) {
        return Err(Error::InvalidArgument(
            "the patient search is not name=value pairs".into(),
        ));
    }
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    // `_elements` is a request a server may ignore: each page is read down to its ids as it
    // comes, so that whole Patients of a large population are never all held at once.
    pairs.push(("_elements", "id"));
    let mut seen = BTreeSet::new();
    let mut ids = Vec::new();
    client
        .for_each_page(
            "Patient",
            &pairs,
            (POPULATION_PAGE_CAP, "the population page cap"),
            |page| {
                for entry in page {
                    if let Some(id) = patient_of_entry(&entry)
                        && seen.insert(id.clone())
                    {
                        ids.push(id);
                    }
                }
            },
        )
        .await?;
    Ok(ids)
}

/// The id of a Patient a population search matched (not one it included).
fn patient_of_entry(entry: &SearchEntry) -> Option<PatientId> {
    if entry.search.as_ref().and_then(|s| s.mode.as_deref()) == Some("include") {
        return None;
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        resource_type: Option<String>,
        id: Option<String>,
    }
    let head: Head = serde_json::from_str(entry.resource.as_ref()?.get()).ok()?;
    if head.resource_type.as_deref() != Some("Patient") {
        return None;
    }
    PatientId::parse(&head.id?).ok()
}

/// The patient id in a reference to a Patient (`Patient/id`, absolute, with or without history).
fn patient_id_in(reference: &str) -> Option<PatientId> {
    let path = reference.split("/_history/").next().unwrap_or(reference);
    let (rest, id) = path.rsplit_once('/')?;
    if rest == "Patient" || rest.ends_with("/Patient") {
        PatientId::parse(id).ok()
    } else {
        None
    }
}
