//! Builders of BALP `AuditEvent` resources (FHIR R4), one function per kind of access:
//!
//! | access | BALP profile | `subtype` | `action` |
//! | --- | --- | --- | --- |
//! | `ScreenPatient` (the patient's record read) | PatientRead | `read` | `R` |
//! | write-back of a Flag / CarePlan | PatientCreate, PatientUpdate | `create` / `update` | `C` / `U` |
//! | one patient of `ScreenPopulation` or a batch run | PatientQuery | `search-type` | `E` |
//! | `EvaluateBundle` (data the caller sent) | PatientRead, subtype `operation` too | `read`, `operation` | `R` |
//!
//! Every event has `type` rest, `recorded`, `outcome` (`0` success, `4` minor failure: the caller's
//! error, `8` serious failure: ours or the FHIR server's) with `outcomeDesc` the gRPC status name,
//! two agents (the client: the caller's identity as an identifier of its issuer, its network address,
//! `requestor` true; the server: this service), `source` (the observer: this service, an application
//! server), an entity for the patient (`Patient/{id}`, type Person, role Patient) and one for the
//! data (type System Object, role Domain Resource) or the query (role Query, the cohort base64 in
//! `query`). A request id (X-Request-Id, or the run id of a batch) is an entity of type XrequestId.

use crate::auth::Caller;
use serde_json::{Value, json};

const BALP: &str = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.";
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const INTERACTION: &str = "http://hl7.org/fhir/restful-interaction";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
const SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";
const BALP_ENTITY_TYPE: &str = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType";
/// The extension-free marker of what trdscreen did, in `entity.detail`.
const DETAIL_CHANGED: &str = "changed";

/// An AuditEvent ready to send: its id (fixed when built; the record is sent as
/// `PUT AuditEvent/{id}`) and the resource.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub id: String,
    pub resource: Value,
}

/// How the access ended, for `outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    Success,
    /// Refused for the caller's error (`INVALID_ARGUMENT`, `NOT_FOUND`, ...): outcome `4`.
    CallerError(&'static str),
    /// Failed on our side or the FHIR server's (`UNAVAILABLE`, `INTERNAL`, ...): outcome `8`.
    Failure(&'static str),
}

/// Who asked, from where, when, and which service recorded it.
#[derive(Debug, Clone)]
pub struct Access<'a> {
    pub caller: &'a Caller,
    /// The caller's network address (`ip:port` or ip), as the connection showed it.
    pub client_address: Option<&'a str>,
    /// This service's name as the audit repository knows it (the observer and server agent).
    pub service: &'a str,
    /// The X-Request-Id of the call, or the run id of a batch.
    pub request_id: Option<&'a str>,
    /// When it happened: an RFC 3339 instant with a zone (`2026-12-05T08:00:00Z`).
    pub recorded: &'a str,
}

/// A resource written back, for [`written_back`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenResource {
    /// `Flag/{id}` or `CarePlan/{id}`.
    pub reference: String,
    /// Whether this write created the resource (else it updated it, or found it as it was).
    pub created: bool,
    /// Whether anything in the chart changed.
    pub changed: bool,
}

/// `ScreenPatient`: the patient's record was read from the FHIR server and screened.
pub fn patient_screened(
    id: String,
    access: &Access,
    patient_id: &str,
    outcome: AuditOutcome,
) -> AuditEvent {
    let mut event = base(&id, "PatientRead", access, outcome, ClientRole::Destination);
    event["subtype"] = json!([interaction("read")]);
    event["action"] = json!("R");
    event["entity"] = json!([
        patient(patient_id),
        data(&format!("Patient/{patient_id}"), "4", "Domain Resource"),
    ]);
    push_transaction(&mut event, access);
    AuditEvent {
        id,
        resource: event,
    }
}

/// A write-back: the Flag and CarePlan written for the patient, each with whether it was created
/// and whether anything changed. `create` when any resource was created, else `update`.
pub fn written_back(
    id: String,
    access: &Access,
    patient_id: &str,
    resources: &[WrittenResource],
    outcome: AuditOutcome,
) -> AuditEvent {
    let any_created = resources.iter().any(|r| r.created);
    let (profile, code, action) = if any_created {
        ("PatientCreate", "create", "C")
    } else {
        ("PatientUpdate", "update", "U")
    };
    let mut event = base(&id, profile, access, outcome, ClientRole::Source);
    event["subtype"] = json!([interaction(code)]);
    event["action"] = json!(action);
    let mut entities = vec![patient(patient_id)];
    for r in resources {
        let mut entity = data(&r.reference, "4", "Domain Resource");
        entity["detail"] = json!([
            {"type": DETAIL_CHANGED, "valueString": if r.changed { "true" } else { "false" }},
            {"type": "created", "valueString": if r.created { "true" } else { "false" }},
        ]);
        entities.push(entity);
    }
    event["entity"] = Value::Array(entities);
    push_transaction(&mut event, access);
    AuditEvent {
        id,
        resource: event,
    }
}

/// One patient of a population run (`ScreenPopulation`, the nightly job): BALP's PatientQuery,
/// one event per patient. `cohort` is the query as asked (`Group/{id}`, `Patient?_id=...`, the
/// export read), recorded base64 in `entity.query`; `population_size` the run's patient count.
pub fn population_patient_screened(
    id: String,
    access: &Access,
    cohort: &str,
    population_size: u64,
    patient_id: &str,
    outcome: AuditOutcome,
) -> AuditEvent {
    let mut event = base(&id, "PatientQuery", access, outcome, ClientRole::Source);
    event["subtype"] = json!([interaction("search-type")]);
    event["action"] = json!("E");
    event["entity"] = json!([
        patient(patient_id),
        {
            "type": coding(ENTITY_TYPE, "2", "System Object"),
            "role": coding(OBJECT_ROLE, "24", "Query"),
            "query": base64(cohort.as_bytes()),
            "description": cohort,
            "detail": [{"type": "population-size", "valueString": population_size.to_string()}],
        },
    ]);
    push_transaction(&mut event, access);
    AuditEvent {
        id,
        resource: event,
    }
}

/// `EvaluateBundle`: the caller sent a patient's record and got the screening back; no FHIR server
/// was read. `patient_id` is the id of the Bundle's Patient, when it had a usable one.
pub fn bundle_evaluated(
    id: String,
    access: &Access,
    patient_id: Option<&str>,
    outcome: AuditOutcome,
) -> AuditEvent {
    let mut event = base(&id, "PatientRead", access, outcome, ClientRole::Destination);
    event["subtype"] = json!([interaction("read"), interaction("operation")]);
    event["action"] = json!("R");
    let mut entities = Vec::new();
    if let Some(p) = patient_id {
        entities.push(patient(p));
    }
    let mut sent = json!({
        "type": coding(ENTITY_TYPE, "2", "System Object"),
        "role": coding(OBJECT_ROLE, "4", "Domain Resource"),
        "what": {"display": "Bundle sent by the caller"},
    });
    if patient_id.is_none() {
        sent["description"] = json!("no usable Patient in the Bundle");
    }
    entities.push(sent);
    event["entity"] = Value::Array(entities);
    push_transaction(&mut event, access);
    AuditEvent {
        id,
        resource: event,
    }
}

/// Which DICOM role the client plays: BALP follows DICOM, where for a read the client is the
/// destination and for a create, update or query it is the source.
#[derive(Clone, Copy)]
enum ClientRole {
    Source,
    Destination,
}

fn base(
    id: &str,
    profile: &str,
    access: &Access,
    outcome: AuditOutcome,
    client_role: ClientRole,
) -> Value {
    let (client_type, server_type) = match client_role {
        ClientRole::Source => (
            coding(DCM, "110153", "Source Role ID"),
            coding(DCM, "110152", "Destination Role ID"),
        ),
        ClientRole::Destination => (
            coding(DCM, "110152", "Destination Role ID"),
            coding(DCM, "110153", "Source Role ID"),
        ),
    };
    let mut client = json!({
        "type": {"coding": [client_type]},
        "who": {"identifier": {"system": access.caller.issuer, "value": access.caller.id}},
        "requestor": true,
    });
    if let Some(address) = access.client_address {
        client["network"] = json!({"address": address, "type": "2"});
    }
    let server = json!({
        "type": {"coding": [server_type]},
        "who": {"display": access.service},
        "requestor": false,
    });
    let (code, desc) = match outcome {
        AuditOutcome::Success => ("0", None),
        AuditOutcome::CallerError(status) => ("4", Some(status)),
        AuditOutcome::Failure(status) => ("8", Some(status)),
    };
    let mut event = json!({
        "resourceType": "AuditEvent",
        "id": id,
        "meta": {"profile": [format!("{BALP}{profile}")]},
        "type": coding(EVENT_TYPE, "rest", "Restful Operation"),
        "recorded": access.recorded,
        "outcome": code,
        "agent": [client, server],
        "source": {
            "observer": {"display": access.service},
            "type": [coding(SOURCE_TYPE, "4", "Application Server")],
        },
    });
    if let Some(desc) = desc {
        event["outcomeDesc"] = json!(desc);
    }
    event
}

fn push_transaction(event: &mut Value, access: &Access) {
    if let (Some(request_id), Some(entities)) = (access.request_id, event["entity"].as_array_mut())
    {
        entities.push(json!({
            "type": coding(BALP_ENTITY_TYPE, "XrequestId", "X-Request-Id"),
            "what": {"identifier": {"value": request_id}},
        }));
    }
}

fn patient(patient_id: &str) -> Value {
    json!({
        "what": {"reference": format!("Patient/{patient_id}")},
        "type": coding(ENTITY_TYPE, "1", "Person"),
        "role": coding(OBJECT_ROLE, "1", "Patient"),
    })
}

fn data(reference: &str, role: &str, role_display: &str) -> Value {
    json!({
        "what": {"reference": reference},
        "type": coding(ENTITY_TYPE, "2", "System Object"),
        "role": coding(OBJECT_ROLE, role, role_display),
    })
}

fn interaction(code: &str) -> Value {
    coding(INTERACTION, code, code)
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({"system": system, "code": code, "display": display})
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A new event id: 32 hex digits from the operating system's random numbers (a FHIR id).
pub fn new_event_id() -> crate::error::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| {
        crate::error::Error::NotConfigured("no random numbers from the operating system".into())
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Permissions;

    fn caller() -> Caller {
        Caller {
            id: "clinic-app".into(),
            issuer: "https://idp.example".into(),
            permissions: Permissions::NONE,
        }
    }

    fn access(caller: &Caller) -> Access<'_> {
        Access {
            caller,
            client_address: Some("127.0.0.1:5000"),
            service: "trdscreen",
            request_id: Some("req-1"),
            recorded: "2026-12-05T08:00:00Z",
        }
    }

    fn coding_of(v: &Value) -> (&str, &str) {
        (v["system"].as_str().unwrap(), v["code"].as_str().unwrap())
    }

    #[test]
    fn a_screening_is_a_balp_patient_read_naming_caller_server_patient_and_request() {
        let c = caller();
        let e = patient_screened("e1".into(), &access(&c), "p-1", AuditOutcome::Success);
        let r = &e.resource;
        assert_eq!(e.id, "e1");
        assert_eq!(r["resourceType"], "AuditEvent");
        assert_eq!(r["id"], "e1");
        assert_eq!(r["meta"]["profile"][0], format!("{BALP}PatientRead"));
        assert_eq!(coding_of(&r["type"]), (EVENT_TYPE, "rest"));
        assert_eq!(coding_of(&r["subtype"][0]), (INTERACTION, "read"));
        assert_eq!(r["subtype"].as_array().unwrap().len(), 1);
        assert_eq!(r["action"], "R");
        assert_eq!(r["recorded"], "2026-12-05T08:00:00Z");
        assert_eq!(r["outcome"], "0");
        assert!(r.get("outcomeDesc").is_none());
        let client = &r["agent"][0];
        assert_eq!(coding_of(&client["type"]["coding"][0]), (DCM, "110152"));
        assert_eq!(client["who"]["identifier"]["system"], "https://idp.example");
        assert_eq!(client["who"]["identifier"]["value"], "clinic-app");
        assert_eq!(client["requestor"], true);
        assert_eq!(client["network"]["address"], "127.0.0.1:5000");
        assert_eq!(client["network"]["type"], "2");
        let server = &r["agent"][1];
        assert_eq!(coding_of(&server["type"]["coding"][0]), (DCM, "110153"));
        assert_eq!(server["who"]["display"], "trdscreen");
        assert_eq!(server["requestor"], false);
        assert_eq!(r["source"]["observer"]["display"], "trdscreen");
        assert_eq!(coding_of(&r["source"]["type"][0]), (SOURCE_TYPE, "4"));
        let entities = r["entity"].as_array().unwrap();
        assert_eq!(entities.len(), 3);
        assert_eq!(entities[0]["what"]["reference"], "Patient/p-1");
        assert_eq!(coding_of(&entities[0]["type"]), (ENTITY_TYPE, "1"));
        assert_eq!(coding_of(&entities[0]["role"]), (OBJECT_ROLE, "1"));
        assert_eq!(entities[1]["what"]["reference"], "Patient/p-1");
        assert_eq!(coding_of(&entities[1]["type"]), (ENTITY_TYPE, "2"));
        assert_eq!(coding_of(&entities[1]["role"]), (OBJECT_ROLE, "4"));
        assert_eq!(
            coding_of(&entities[2]["type"]),
            (BALP_ENTITY_TYPE, "XrequestId")
        );
        assert_eq!(entities[2]["what"]["identifier"]["value"], "req-1");
    }

    #[test]
    fn a_write_back_is_a_create_or_an_update_and_says_what_changed() {
        let c = caller();
        let flag = WrittenResource {
            reference: "Flag/f1".into(),
            created: true,
            changed: true,
        };
        let plan = WrittenResource {
            reference: "CarePlan/c1".into(),
            created: false,
            changed: false,
        };
        let e = written_back(
            "e2".into(),
            &access(&c),
            "p-1",
            &[flag.clone(), plan.clone()],
            AuditOutcome::Success,
        );
        let r = &e.resource;
        assert_eq!(r["meta"]["profile"][0], format!("{BALP}PatientCreate"));
        assert_eq!(coding_of(&r["subtype"][0]), (INTERACTION, "create"));
        assert_eq!(r["action"], "C");
        assert_eq!(
            coding_of(&r["agent"][0]["type"]["coding"][0]),
            (DCM, "110153")
        );
        assert_eq!(
            coding_of(&r["agent"][1]["type"]["coding"][0]),
            (DCM, "110152")
        );
        let entities = r["entity"].as_array().unwrap();
        assert_eq!(entities[0]["what"]["reference"], "Patient/p-1");
        assert_eq!(entities[1]["what"]["reference"], "Flag/f1");
        assert_eq!(entities[1]["detail"][0]["type"], "changed");
        assert_eq!(entities[1]["detail"][0]["valueString"], "true");
        assert_eq!(entities[1]["detail"][1]["valueString"], "true");
        assert_eq!(entities[2]["what"]["reference"], "CarePlan/c1");
        assert_eq!(entities[2]["detail"][0]["valueString"], "false");
        assert_eq!(entities[2]["detail"][1]["valueString"], "false");

        let update = written_back(
            "e3".into(),
            &access(&c),
            "p-1",
            &[plan],
            AuditOutcome::Success,
        );
        assert_eq!(
            update.resource["meta"]["profile"][0],
            format!("{BALP}PatientUpdate")
        );
        assert_eq!(
            coding_of(&update.resource["subtype"][0]),
            (INTERACTION, "update")
        );
        assert_eq!(update.resource["action"], "U");
    }

    #[test]
    fn a_population_run_is_one_patient_query_per_patient_with_the_cohort_and_its_size() {
        let c = caller();
        let e = population_patient_screened(
            "e4".into(),
            &access(&c),
            "Group/g1",
            300,
            "p-7",
            AuditOutcome::Failure("UNAVAILABLE"),
        );
        let r = &e.resource;
        assert_eq!(r["meta"]["profile"][0], format!("{BALP}PatientQuery"));
        assert_eq!(coding_of(&r["subtype"][0]), (INTERACTION, "search-type"));
        assert_eq!(r["action"], "E");
        assert_eq!(r["outcome"], "8");
        assert_eq!(r["outcomeDesc"], "UNAVAILABLE");
        let entities = r["entity"].as_array().unwrap();
        assert_eq!(entities[0]["what"]["reference"], "Patient/p-7");
        assert_eq!(coding_of(&entities[1]["role"]), (OBJECT_ROLE, "24"));
        assert_eq!(entities[1]["query"], "R3JvdXAvZzE="); // base64 of Group/g1
        assert_eq!(entities[1]["description"], "Group/g1");
        assert!(
            entities[1].get("what").is_none(),
            "BALP: a query entity has no what"
        );
        assert_eq!(entities[1]["detail"][0]["valueString"], "300");
    }

    #[test]
    fn a_bundle_evaluation_names_the_bundles_patient_or_says_there_was_none() {
        let c = caller();
        let mut a = access(&c);
        a.request_id = None;
        a.client_address = None;
        let e = bundle_evaluated("e5".into(), &a, Some("p-9"), AuditOutcome::Success);
        let r = &e.resource;
        assert_eq!(coding_of(&r["subtype"][0]), (INTERACTION, "read"));
        assert_eq!(coding_of(&r["subtype"][1]), (INTERACTION, "operation"));
        assert!(r["agent"][0].get("network").is_none());
        let entities = r["entity"].as_array().unwrap();
        assert_eq!(entities.len(), 2, "no request id: no transaction entity");
        assert_eq!(entities[0]["what"]["reference"], "Patient/p-9");
        let none = bundle_evaluated(
            "e6".into(),
            &a,
            None,
            AuditOutcome::CallerError("INVALID_ARGUMENT"),
        );
        assert_eq!(none.resource["outcome"], "4");
        assert_eq!(none.resource["outcomeDesc"], "INVALID_ARGUMENT");
        let entities = none.resource["entity"].as_array().unwrap();
        assert_eq!(entities.len(), 1);
        assert_eq!(
            entities[0]["description"],
            "no usable Patient in the Bundle"
        );
    }

    #[test]
    fn base64_is_rfc_4648_with_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn event_ids_are_fhir_ids_and_differ() {
        let a = new_event_id().unwrap();
        let b = new_event_id().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
