//! The patient's record for a hook: what the client prefetched, the rest read from its
//! `fhirServer` with its `fhirAuthorization` token through the service's FHIR client (same limits,
//! retries and bounded reads as ScreenPatient). A server not on `cds.fhir_servers` is never asked.
//!
//! A prefetched search is used only when it is whole: a Bundle with a `next` link is read again
//! from the server, as a missing one is. Prefetched data that is not what its key asks for is a
//! 400; data that cannot be had (nothing prefetched, no server to ask, or the server failing) is
//! the caller's [`Error::Unavailable`] and becomes a 412.

use super::discovery::{CARE_PLAN_KEY, FLAG_KEY, PATIENT_KEY, SEARCH_KEYS};
use super::hook::HookRequest;
use crate::error::{Error, Result};
use crate::fhir::client::{FhirClient, SearchEntry};
use crate::fhir::fetch::{Given, patient_record_with};
use crate::fhir::whole::WholeRecord;
use crate::knowledge::Knowledge;
use crate::settings::{AuthMode, FhirSettings, Secrets};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// The record, and what the chart holds of the patient's screening Flag and CarePlan (each `None`
/// when it is not known: then no card suggests writing them).
pub struct Gathered {
    pub record: WholeRecord,
    pub flag: Known,
    pub care_plan: Known,
    /// Parts read from the server rather than the prefetch (for the metrics).
    pub fetched: usize,
    /// Parts the prefetch supplied.
    pub prefetched: usize,
}

/// Whether the chart holds a resource: known absent, known present (with its content), or unknown.
pub enum Known {
    Absent,
    Present(Value),
    Unknown,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchBundle {
    resource_type: String,
    #[serde(default)]
    entry: Vec<SearchEntry>,
    #[serde(default)]
    link: Vec<Link>,
}

#[derive(Deserialize)]
struct Link {
    relation: Option<String>,
}

/// A prefetched search as entries, `None` when it is absent, null, or has another page.
fn search(value: Option<&RawValue>, key: &str) -> Result<Option<Vec<SearchEntry>>> {
    let Some(raw) = value else { return Ok(None) };
    if raw.get() == "null" {
        return Ok(None);
    }
    let bundle: SearchBundle = serde_json::from_str(raw.get()).map_err(|_| malformed(key))?;
    if bundle.resource_type != "Bundle" {
        return Err(malformed(key));
    }
    // A search with more pages, or one the server says it cut short, is not the whole answer:
    // as if it had not been prefetched (read from the server, where one may be asked).
    let cut_short = bundle
        .link
        .iter()
        .any(|l| l.relation.as_deref() == Some("next"))
        || bundle
            .entry
            .iter()
            .any(crate::fhir::client::reports_failure);
    if cut_short {
        return Ok(None);
    }
    Ok(Some(bundle.entry))
}

fn malformed(_key: &str) -> Error {
    Error::InvalidArgument(
        "a prefetched value is not the resource or search Bundle its template asks for".into(),
    )
}

/// The patient, and the record: from the prefetch where it is whole, else from the server.
pub async fn gather(
    request: &HookRequest,
    fhir: &FhirSettings,
    allowed: &[String],
    identifier_system: &str,
    k: &Knowledge,
) -> Result<Gathered> {
    let client = match &request.fhir_server {
        Some((server, token))
            if allowed
                .iter()
                .any(|a| a.trim_end_matches('/') == server.trim_end_matches('/')) =>
        {
            Some(client_for(fhir, server, token)?)
        }
        _ => None,
    };
    let value = |key: &str| request.prefetch.get(key).and_then(|v| v.as_deref());
    let mut given = Given::default();
    let mut prefetched = 0;
    if let Some(raw) = value(PATIENT_KEY).filter(|r| r.get() != "null") {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Head {
            resource_type: String,
            id: Option<String>,
        }
        let head: Head = serde_json::from_str(raw.get()).map_err(|_| malformed(PATIENT_KEY))?;
        if head.resource_type != "Patient" || head.id.as_deref() != Some(request.patient.as_str()) {
            return Err(Error::InvalidArgument(
                "the prefetched Patient is not the patient of the context".into(),
            ));
        }
        given.patient = Some(raw.to_owned());
        prefetched += 1;
    }
    for (slot, key) in given.searches.iter_mut().zip(SEARCH_KEYS) {
        *slot = search(value(key), key)?;
        prefetched += usize::from(slot.is_some());
    }
    let ours = |kind: &str| Ours {
        system: identifier_system,
        value: crate::writeback::identifier_value(kind, &request.patient),
    };
    let mut flag = known(value(FLAG_KEY), FLAG_KEY, "Flag", &ours("flag"))?;
    let mut care_plan = known(
        value(CARE_PLAN_KEY),
        CARE_PLAN_KEY,
        "CarePlan",
        &ours("careplan"),
    )?;
    let base = request
        .fhir_server
        .as_ref()
        .map_or("urn:trdscreen:prefetch", |(s, _)| s.as_str());
    let (record, mut fetched) =
        patient_record_with(base, client.as_ref(), &request.patient, k, given).await?;
    if let Some(client) = &client {
        for (slot, resource_type, kind) in [
            (&mut flag, "Flag", "flag"),
            (&mut care_plan, "CarePlan", "careplan"),
        ] {
            if matches!(slot, Known::Unknown) {
                let ours = ours(kind);
                let identifier = format!("{}|{}", ours.system, ours.value);
                let entries = client
                    .search(resource_type, &[("identifier", &identifier)])
                    .await?;
                fetched += 1;
                *slot = known_in(&entries, resource_type, &ours);
            }
        }
    }
    Ok(Gathered {
        record,
        flag,
        care_plan,
        fetched,
        prefetched,
    })
}

/// The business identifier of this patient's screening Flag or CarePlan.
struct Ours<'a> {
    system: &'a str,
    value: String,
}

/// A prefetched search for the screening Flag or CarePlan: what it found, or unknown.
fn known(value: Option<&RawValue>, key: &str, resource_type: &str, ours: &Ours) -> Result<Known> {
    let Some(entries) = search(value, key)? else {
        return Ok(Known::Unknown);
    };
    Ok(known_in(&entries, resource_type, ours))
}

/// What a search for the screening resource found. Only a resource carrying the identifier
/// exactly, with a FHIR id, counts: a server may ignore the search parameter and answer with
/// another patient's Flag, whose id the suggestion's `update` would then write over.
fn known_in(entries: &[SearchEntry], resource_type: &str, ours: &Ours) -> Known {
    let mut found = entries
        .iter()
        .filter(|e| e.search.as_ref().and_then(|s| s.mode.as_deref()) != Some("outcome"))
        .filter_map(|e| e.resource.as_ref())
        .filter_map(|r| serde_json::from_str::<Value>(r.get()).ok())
        .filter(|v| {
            v["resourceType"] == resource_type
                && v["id"]
                    .as_str()
                    .is_some_and(|id| crate::fhir::FhirId::parse(id).is_ok())
                && crate::writeback::carries_identifier(v, ours.system, &ours.value)
        });
    match (found.next(), found.next()) {
        (None, _) => Known::Absent,
        (Some(one), None) => Known::Present(one),
        // Two carry the identifier: the chart needs a person to resolve it, not another write.
        (Some(_), Some(_)) => Known::Unknown,
    }
}

/// The service's FHIR client pointed at the hook's server with the hook's token.
fn client_for(fhir: &FhirSettings, server: &str, token: &str) -> Result<FhirClient> {
    let mut settings = fhir.clone();
    settings.base_url = Some(
        server
            .parse()
            .map_err(|_| Error::InvalidArgument("fhirServer is not an http(s) URL".into()))?,
    );
    settings.auth.mode = AuthMode::Bearer;
    let secrets = Secrets {
        bearer_token: Some(token.to_owned()),
        ..Secrets::default()
    };
    FhirClient::new(&settings, &secrets)
        .map_err(|_| Error::InvalidArgument("fhirServer is not a FHIR base URL".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefetched(entries: &str) -> Option<usize> {
        let text = format!(r#"{{"resourceType":"Bundle","type":"searchset","entry":[{entries}]}}"#);
        let raw: Box<RawValue> = serde_json::from_str(&text).unwrap();
        search(Some(&raw), "conditions").unwrap().map(|e| e.len())
    }

    #[test]
    fn a_prefetched_search_the_server_cut_short_counts_as_not_prefetched() {
        let condition =
            r#"{"resource":{"resourceType":"Condition","id":"c1"},"search":{"mode":"match"}}"#;
        let outcome = |severity: &str| {
            format!(
                r#"{{"resource":{{"resourceType":"OperationOutcome","issue":[{{"severity":"{severity}","code":"too-costly"}}]}},"search":{{"mode":"outcome"}}}}"#
            )
        };
        assert_eq!(prefetched(condition), Some(1));
        assert_eq!(
            prefetched(&format!("{condition},{}", outcome("information"))),
            Some(2)
        );
        assert_eq!(
            prefetched(&format!("{condition},{}", outcome("error"))),
            None
        );
        assert_eq!(
            prefetched(&format!("{condition},{}", outcome("fatal"))),
            None
        );
    }
}
