//! A CDS Hooks request read into types. Anything malformed is [`Error::InvalidArgument`] in fixed
//! words (the request's own text never goes back out).

use crate::error::{Error, Result};
use crate::fhir::PatientId;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::HashMap;

/// The parts of a hook request the service reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    hook: String,
    hook_instance: String,
    fhir_server: Option<String>,
    fhir_authorization: Option<FhirAuthorization>,
    context: Context,
    #[serde(default)]
    prefetch: HashMap<String, Option<Box<RawValue>>>,
}

#[derive(Debug, Deserialize)]
struct FhirAuthorization {
    access_token: String,
    token_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Context {
    patient_id: String,
    #[serde(default)]
    selections: Vec<String>,
    draft_orders: Option<Box<RawValue>>,
}

/// A hook request, checked.
#[derive(Debug)]
pub struct HookRequest {
    pub hook: String,
    /// The call's `hookInstance`, when it is 1 to 128 printable characters: its request id in the
    /// audit trail.
    pub hook_instance: Option<String>,
    pub patient: PatientId,
    /// The client's FHIR server, with the bearer token to read it, when the client gave both.
    pub fhir_server: Option<(String, String)>,
    /// The client's FHIR server as it named it (`fhirServer`), token or not: whose patient
    /// `context.patientId` is.
    pub named_server: Option<String>,
    /// Prefetched data by key; `None` where the client could not prefetch it.
    pub prefetch: HashMap<String, Option<Box<RawValue>>>,
    /// The orders being selected or signed (`order-select`: only the selected ones).
    pub draft_orders: Vec<Box<RawValue>>,
}

/// Orders read from one request at most.
const MAX_DRAFT_ORDERS: usize = 200;

pub fn parse(body: &[u8]) -> Result<HookRequest> {
    let wire: Wire = serde_json::from_slice(body).map_err(|_| {
        Error::InvalidArgument("the hook request is not a CDS Hooks request (JSON with hook, hookInstance and context.patientId)".into())
    })?;
    if wire.hook_instance.is_empty() || wire.hook_instance.len() > 128 {
        return Err(Error::InvalidArgument(
            "hookInstance must be 1 to 128 characters".into(),
        ));
    }
    let patient = PatientId::parse(&wire.context.patient_id)
        .map_err(|_| Error::InvalidArgument("context.patientId is not a FHIR id".into()))?;
    let named_server = wire.fhir_server.clone();
    let fhir_server = match (wire.fhir_server, wire.fhir_authorization) {
        (Some(server), Some(auth)) if auth.token_type.eq_ignore_ascii_case("bearer") => {
            Some((server, auth.access_token))
        }
        (Some(_), Some(_)) => {
            return Err(Error::InvalidArgument(
                "fhirAuthorization.token_type must be Bearer".into(),
            ));
        }
        _ => None,
    };
    let draft_orders = match wire.context.draft_orders {
        None => Vec::new(),
        Some(bundle) => orders(&bundle, &wire.context.selections, &wire.hook)?,
    };
    Ok(HookRequest {
        hook_instance: crate::audit::trail::request_id(Some(&wire.hook_instance)),
        hook: wire.hook,
        patient,
        fhir_server,
        named_server,
        prefetch: wire.prefetch,
        draft_orders,
    })
}

/// The MedicationRequests of `draftOrders` (a Bundle): for `order-select` the ones `selections`
/// names (`MedicationRequest/id`), for `order-sign` all.
fn orders(bundle: &RawValue, selections: &[String], hook: &str) -> Result<Vec<Box<RawValue>>> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Bundle {
        resource_type: String,
        #[serde(default)]
        entry: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        resource: Option<Box<RawValue>>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        resource_type: String,
        id: Option<String>,
    }
    let malformed =
        || Error::InvalidArgument("context.draftOrders is not a Bundle of resources".into());
    let bundle: Bundle = serde_json::from_str(bundle.get()).map_err(|_| malformed())?;
    if bundle.resource_type != "Bundle" {
        return Err(malformed());
    }
    let mut out = Vec::new();
    for resource in bundle.entry.into_iter().filter_map(|e| e.resource) {
        let head: Head = serde_json::from_str(resource.get()).map_err(|_| malformed())?;
        if head.resource_type != "MedicationRequest" {
            continue;
        }
        let selected = hook != "order-select"
            || head.id.as_deref().is_some_and(|id| {
                selections
                    .iter()
                    .any(|s| s == &format!("MedicationRequest/{id}"))
            });
        if selected {
            out.push(resource);
        }
        if out.len() > MAX_DRAFT_ORDERS {
            return Err(Error::InvalidArgument(
                "context.draftOrders holds more than 200 MedicationRequests".into(),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(context: &str) -> String {
        format!(
            r#"{{"hook":"order-select","hookInstance":"d1577c69-dfbe-44ad-ba6d-3e05e953b2ea","context":{context}}}"#
        )
    }

    #[test]
    fn order_select_reads_only_the_selected_medication_requests() {
        let body = request(
            r#"{"patientId":"p1","selections":["MedicationRequest/a"],"draftOrders":{"resourceType":"Bundle","entry":[
                {"resource":{"resourceType":"MedicationRequest","id":"a","status":"draft"}},
                {"resource":{"resourceType":"MedicationRequest","id":"b","status":"draft"}},
                {"resource":{"resourceType":"ServiceRequest","id":"c"}}]}}"#,
        );
        let r = parse(body.as_bytes()).unwrap();
        assert_eq!(r.draft_orders.len(), 1);
        assert!(r.draft_orders[0].get().contains(r#""id":"a""#));
        assert_eq!(r.patient.as_str(), "p1");
    }

    #[test]
    fn malformed_requests_are_invalid_arguments_in_fixed_words() {
        for body in [
            "not json",
            r#"{"hook":"patient-view"}"#,
            &request(r#"{"patientId":"../x"}"#),
            &request(r#"{"patientId":"p1","draftOrders":{"resourceType":"Patient"}}"#),
            &request(r#"{"patientId":"p1","draftOrders":[1,2]}"#),
        ] {
            let e = parse(body.as_bytes()).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{body}: {e}");
            assert!(!e.to_string().contains("../x"));
        }
    }
}
