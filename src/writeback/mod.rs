//! Write-back of a screening into the chart (screening-rules section 11): one Flag and one draft
//! CarePlan per patient, found again by their business identifier, so that a repeated screening
//! changes nothing, a changed result updates the same resources, and a patient who no longer
//! screens positive gets the Flag `inactive` and the CarePlan `revoked`.
//!
//! Writes are compare-then-put: the current resource is searched by identifier, the desired one is
//! built from it, and nothing is sent when they are equal. A new resource is created by a
//! conditional create on the identifier inside a one-entry transaction ([`create`]), so neither a
//! retried request nor a second replica writing at the same instant makes a second copy; an
//! existing one is updated by id with `If-Match`, so a concurrent change is never overwritten.

pub mod create;
pub mod resources;

use crate::audit::WrittenResource;
use crate::error::{Error, Result};
use crate::fhir::PatientId;
use crate::fhir::client::{FhirClient, Idempotent};
use crate::fhir::whole::WholeRecord;
use crate::knowledge::Knowledge;
use crate::screening::Assessment;
use crate::settings::WriteBackSettings;
use crate::summary;
use crate::telemetry;
use reqwest::Method;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Flag,
    FlagAndCarePlan,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// `Flag/{id}`, when the chart has this service's Flag.
    pub flag_reference: Option<String>,
    pub care_plan_reference: Option<String>,
    pub changed: bool,
}

struct Current {
    id: String,
    version: Option<String>,
    resource: Value,
}

/// Writes from a record read whole only ([`WholeRecord`]): the Flag may be withdrawn here, and a
/// withdrawal on a partial record would take a true alert out of the chart. Each resource written
/// or found as wanted is pushed on `written` as it is, for the audit trail: a write-back that fails
/// half-way still names what it wrote.
pub async fn write_back(
    client: &FhirClient,
    settings: &WriteBackSettings,
    record: &WholeRecord,
    assessment: &Assessment,
    k: &Knowledge,
    scope: Scope,
    written: &mut Vec<WrittenResource>,
) -> Result<Outcome> {
    let names = Names::of(&record.record().patient_id, assessment);
    let cx = names.context(settings, k, &names.flag);
    let mut outcome = Outcome::default();
    let (flag_id, changed) = upsert(client, "Flag", &cx, written, |existing| {
        resources::flag(existing, assessment, &cx)
    })
    .await?;
    outcome.changed |= changed;
    outcome.flag_reference = flag_id.map(|id| format!("Flag/{id}"));
    if scope == Scope::FlagAndCarePlan {
        let cx = names.context(settings, k, &names.care_plan);
        let flag_reference = outcome.flag_reference.clone();
        let (plan_id, changed) = upsert(client, "CarePlan", &cx, written, |existing| {
            resources::care_plan(existing, assessment, &cx, flag_reference.as_deref())
        })
        .await?;
        outcome.changed |= changed;
        outcome.care_plan_reference = plan_id.map(|id| format!("CarePlan/{id}"));
    }
    Ok(outcome)
}

/// The Flag and the draft CarePlan a write-back would leave in the chart for this assessment, built
/// from what the chart holds (`existing_flag`, `existing_plan`) by the same builders, with the same
/// business identifiers; `flag_id` is the Flag's id, for the CarePlan's reference to it. For a CDS
/// card's suggestion, which the EHR carries out.
pub fn proposed(
    settings: &WriteBackSettings,
    patient: &PatientId,
    assessment: &Assessment,
    k: &Knowledge,
    existing_flag: Option<&Value>,
    existing_plan: Option<&Value>,
    flag_id: &str,
) -> (Option<Value>, Option<Value>) {
    let names = Names::of(patient, assessment);
    let flag = resources::flag(
        existing_flag,
        assessment,
        &names.context(settings, k, &names.flag),
    );
    let cx = names.context(settings, k, &names.care_plan);
    let flag_reference = format!("Flag/{flag_id}");
    let plan = resources::care_plan(existing_plan, assessment, &cx, Some(&flag_reference));
    (flag, plan)
}

/// The texts the builders' contexts borrow, for one patient's screening.
struct Names {
    patient_reference: String,
    day: String,
    flag: String,
    care_plan: String,
}

impl Names {
    fn of(patient: &PatientId, assessment: &Assessment) -> Names {
        Names {
            patient_reference: format!("Patient/{patient}"),
            day: assessment.as_of.to_string(),
            flag: identifier_value("flag", patient),
            care_plan: identifier_value("careplan", patient),
        }
    }

    /// The builders' context for the resource of business identifier `identifier`.
    fn context<'a>(
        &'a self,
        settings: &'a WriteBackSettings,
        k: &'a Knowledge,
        identifier: &'a str,
    ) -> resources::Context<'a> {
        resources::Context {
            patient_reference: &self.patient_reference,
            identifier_system: &settings.identifier_system,
            identifier_value: identifier,
            code_system: &settings.code_system,
            trd_code: &k.flag,
            snomed_system: &k.systems.snomed[0],
            day: &self.day,
        }
    }
}

/// The identifier value for a patient's Flag or CarePlan: one per patient and kind.
pub fn identifier_value(kind: &str, patient: &PatientId) -> String {
    format!("{kind}-{patient}")
}

/// [`write`], counted in `trdscreen.writebacks` by resource and outcome, and pushed on `written`
/// when it names a resource.
async fn upsert(
    client: &FhirClient,
    resource_type: &'static str,
    cx: &resources::Context<'_>,
    written: &mut Vec<WrittenResource>,
    desired: impl Fn(Option<&Value>) -> Option<Value>,
) -> Result<(Option<String>, bool)> {
    let mut found_one = None;
    let result = write(client, resource_type, cx, desired, &mut found_one).await;
    if let Ok((Some(id), changed)) = &result {
        written.push(WrittenResource {
            reference: format!("{resource_type}/{id}"),
            created: *changed && found_one == Some(false),
            changed: *changed,
        });
    }
    if let Some(resource) = telemetry::WrittenResource::of(resource_type) {
        let outcome = match (&result, found_one) {
            (Err(_), _) => telemetry::WriteOutcome::Failed,
            (Ok((_, false)), _) => telemetry::WriteOutcome::Unchanged,
            (Ok((_, true)), Some(true)) => telemetry::WriteOutcome::Updated,
            (Ok((_, true)), _) => telemetry::WriteOutcome::Created,
        };
        telemetry::record_writeback(resource, outcome);
    }
    result
}

/// Makes the chart hold what `desired` builds from its current content: returns the resource's id
/// (if there is one) and whether anything was written. The chart is read again (at most twice) when
/// a write meets a concurrent change: a conflict on an update, a create that found the resource
/// already there. Either may also be this screening's own earlier attempt, which landed although its
/// answer was lost. `found_one` tells whether the first search found the resource in the chart.
async fn write(
    client: &FhirClient,
    resource_type: &'static str,
    cx: &resources::Context<'_>,
    desired: impl Fn(Option<&Value>) -> Option<Value>,
    found_one: &mut Option<bool>,
) -> Result<(Option<String>, bool)> {
    const READS: usize = 3;
    // Set once a write was sent that may have landed although its answer was lost: finding the
    // chart as wanted afterwards then means this screening changed it.
    let mut wrote = false;
    let mut reads = 0;
    loop {
        reads += 1;
        let current = find(client, resource_type, cx).await?;
        found_one.get_or_insert(current.is_some());
        let Some(mut wanted) = desired(current.as_ref().map(|c| &c.resource)) else {
            return Ok((None, false));
        };
        if let Some(c) = &current
            && resources::comparable(&c.resource) == resources::comparable(&wanted)
        {
            return Ok((Some(c.id.clone()), wrote));
        }
        let concurrent = match &current {
            Some(c) => {
                wanted["id"] = Value::String(c.id.clone());
                let url = client.url(&format!("{resource_type}/{}", c.id));
                let if_match = c.version.as_ref().map(|v| format!("W/\"{v}\""));
                let headers: Vec<(&str, &str)> = if_match
                    .as_deref()
                    .map(|m| vec![("If-Match", m)])
                    .unwrap_or_default();
                match put(client, &url, &wanted, &headers, resource_type).await {
                    Ok(id) => return Ok((Some(id), true)),
                    Err(Error::Conflict(e)) => Error::Conflict(e),
                    Err(e) => return Err(e),
                }
            }
            None => {
                let identifier = format!("{}|{}", cx.identifier_system, cx.identifier_value);
                match create::create_unless_present(client, resource_type, &identifier, &wanted)
                    .await?
                {
                    create::Created::New(id) => return Ok((Some(id), true)),
                    create::Created::AlreadyThere(_) => Error::Conflict(summary!(
                        "another writer created the {} at the same time",
                        resource_type
                    )),
                }
            }
        };
        if reads == READS {
            return Err(concurrent);
        }
        wrote = true;
    }
}

/// The id in `Type/id`, `Type/id/_history/n` or an absolute URL ending so.
fn id_from_location(location: &str, resource_type: &str) -> Option<String> {
    let path = location.split("/_history/").next().unwrap_or(location);
    let (_, rest) = path.rsplit_once(&format!("{resource_type}/"))?;
    fhir_id(Some(rest.trim_end_matches('/')))
}

/// A resource's `id` as the server sent it, when it is a FHIR id: it goes into the next request's
/// URL and into the caller's `Type/id` reference, so anything else is as good as no id.
fn fhir_id(id: Option<&str>) -> Option<String> {
    let id = id?;
    crate::fhir::FhirId::parse(id).ok().map(|_| id.to_owned())
}

async fn find(
    client: &FhirClient,
    resource_type: &'static str,
    cx: &resources::Context<'_>,
) -> Result<Option<Current>> {
    let identifier = format!("{}|{}", cx.identifier_system, cx.identifier_value);
    let entries = client
        .search(resource_type, &[("identifier", &identifier)])
        .await?;
    let mut found = entries
        .into_iter()
        .filter(|e| e.search.as_ref().and_then(|s| s.mode.as_deref()) != Some("outcome"))
        .filter_map(|e| e.resource)
        .filter_map(|raw| serde_json::from_str::<Value>(raw.get()).ok())
        .filter(|v| v["resourceType"] == resource_type)
        // Only what carries the identifier exactly: a server may ignore a search parameter (FHIR's
        // lenient default) and answer with every Flag, or match tokens regardless of case, and
        // writing over what it sent would change another patient's Flag.
        .filter(|v| carries_identifier(v, cx.identifier_system, cx.identifier_value));
    let Some(resource) = found.next() else {
        return Ok(None);
    };
    if found.next().is_some() {
        return Err(Error::Conflict(summary!(
            "more than one {} carries this patient's screening identifier; resolve the duplicate in the chart",
            resource_type
        )));
    }
    let id = fhir_id(resource["id"].as_str()).ok_or_else(|| {
        Error::BadGateway(summary!("a {} came back without a valid id", resource_type))
    })?;
    let version = resource["meta"]["versionId"].as_str().map(str::to_owned);
    Ok(Some(Current {
        id,
        version,
        resource,
    }))
}

/// Whether `resource` has an identifier of exactly this system and value.
pub fn carries_identifier(resource: &Value, system: &str, value: &str) -> bool {
    resource["identifier"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|i| i["system"] == system && i["value"] == value)
}

/// PUT (idempotent, so retried on failure) and the id of the resource written.
async fn put(
    client: &FhirClient,
    url: &str,
    body: &Value,
    headers: &[(&str, &str)],
    resource_type: &'static str,
) -> Result<String> {
    let bytes = serde_json::to_vec(body)
        .map_err(|_| Error::BadGateway(summary!("cannot encode the {}", resource_type)))?;
    let reply = client
        .send(
            Method::PUT,
            url,
            Some(&bytes),
            headers,
            Idempotent::Yes,
            resource_type,
        )
        .await?;
    let from_body = serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .and_then(|v| fhir_id(v["id"].as_str()));
    let from_location = reply
        .location
        .as_deref()
        .and_then(|l| id_from_location(l, resource_type));
    from_body.or(from_location).ok_or_else(|| {
        Error::BadGateway(summary!(
            "the {} write did not say which resource it wrote",
            resource_type
        ))
    })
}
