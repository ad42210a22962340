//! The gRPC service against the real FHIR server (sekmet-fhir, started by scripts/test): screening
//! read from the server equals screening the same resources sent as a Bundle, write-back keeps one
//! Flag and one CarePlan per patient through the patient's changes, errors map to the contract's
//! status codes, health and reflection answer, and shutdown is graceful. Every test loads its own
//! patients under a unique id prefix, so tests run in any order and in parallel.

use crate::service;

use serde_json::{Value, json};
use service::{Fhir, Loaded, bundle_json, settings, start, timestamp, unique_prefix};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tonic::Code;
use trdscreen::proto::{
    Assessment, EvaluateBundleRequest, ScreenPatientRequest, ScreenPatientResponse, TrdStatus,
    WriteBackMode, WriteBackResult,
};
use trdscreen::service::{Screener, WriteBackRequest};
use trdscreen::settings::Secrets;

const AS_OF: &str = "2025-06-01";

fn screen_request(patient_id: &str, write_back: WriteBackMode) -> ScreenPatientRequest {
    ScreenPatientRequest {
        patient_id: patient_id.to_owned(),
        as_of: Some(timestamp(AS_OF)),
        write_back: write_back as i32,
    }
}

async fn screen(
    svc: &mut service::Service,
    patient_id: &str,
    write_back: WriteBackMode,
) -> ScreenPatientResponse {
    svc.client
        .screen_patient(screen_request(patient_id, write_back))
        .await
        .unwrap_or_else(|s| panic!("ScreenPatient({patient_id}) failed: {s:?}"))
        .into_inner()
}

/// Screens the loaded patient over gRPC and evaluates the same resources sent as a Bundle, both as of
/// the same day, and checks that the two assessments are equal field for field.
async fn screened_equals_evaluated(loaded: &Loaded, fhir: &Fhir) -> Assessment {
    let mut svc = start(settings(&fhir.base)).await;
    let screened = screen(&mut svc, &loaded.patient_id, WriteBackMode::None).await;
    assert_eq!(
        screened.write_back, None,
        "WRITE_BACK_MODE_NONE writes nothing"
    );
    let evaluated = svc
        .client
        .evaluate_bundle(EvaluateBundleRequest {
            bundle_json: bundle_json(&fhir.base, &loaded.resources),
            as_of: Some(timestamp(AS_OF)),
        })
        .await
        .expect("EvaluateBundle succeeds")
        .into_inner();
    let from_server = screened
        .assessment
        .expect("ScreenPatient returns an assessment");
    let from_bundle = evaluated
        .assessment
        .expect("EvaluateBundle returns an assessment");
    assert_eq!(
        from_server, from_bundle,
        "ScreenPatient (read from the FHIR server) and EvaluateBundle (the same resources) differ"
    );
    from_server
}

fn trial<'a>(a: &'a Assessment, ingredient: &str) -> &'a trdscreen::proto::TreatmentTrial {
    a.trials
        .iter()
        .find(|t| t.ingredient == ingredient)
        .unwrap_or_else(|| panic!("no {ingredient} trial in {:#?}", a.trials))
}

fn assert_no_unresolved_references(a: &Assessment) {
    let unresolved: Vec<_> = a
        .diagnostics
        .iter()
        .filter(|d| d.kind == "unresolved-reference")
        .collect();
    assert!(unresolved.is_empty(), "{unresolved:#?}");
}

#[tokio::test]
async fn screening_medication_requests_naming_their_medication_by_reference_equals_evaluate_bundle()
{
    if !crate::service::fhir_servers() {
        return;
    }
    let fhir = Fhir::plain();
    let loaded = fhir
        .load("fhir/requests-medication-reference.json", "mr-ref")
        .await;
    let a = screened_equals_evaluated(&loaded, &fhir).await;
    assert_eq!(a.patient_id, loaded.patient_id);
    assert_eq!(a.status, TrdStatus::Met as i32);
    assert_eq!(a.failed_adequate_trials, 2);
    // The drugs are known only from the referenced Medication resources.
    let sertraline = trial(&a, "sertraline");
    assert!(
        sertraline
            .evidence
            .contains(&format!("MedicationRequest/{}", loaded.id("mr-sertraline"))),
        "{sertraline:#?}"
    );
    assert_eq!(sertraline.daily_dose_mg, Some(100.0));
    let venlafaxine = trial(&a, "venlafaxine");
    assert!(
        venlafaxine.evidence.contains(&format!(
            "MedicationRequest/{}",
            loaded.id("mr-venlafaxine")
        )),
        "{venlafaxine:#?}"
    );
    assert_no_unresolved_references(&a);
}

#[tokio::test]
async fn screening_medication_statements_naming_their_medication_by_reference_equals_evaluate_bundle()
 {
    if !crate::service::fhir_servers() {
        return;
    }
    let fhir = Fhir::plain();
    let loaded = fhir
        .load("fhir/statements-medication-reference.json", "ms-ref")
        .await;
    let a = screened_equals_evaluated(&loaded, &fhir).await;
    assert_eq!(a.status, TrdStatus::Met as i32);
    assert_eq!(a.failed_adequate_trials, 2);
    for (ingredient, statement) in [
        ("sertraline", "ms-sertraline"),
        ("venlafaxine", "ms-venlafaxine"),
    ] {
        let t = trial(&a, ingredient);
        assert!(
            t.evidence
                .contains(&format!("MedicationStatement/{}", loaded.id(statement))),
            "{t:#?}"
        );
    }
    assert_no_unresolved_references(&a);
}

#[tokio::test]
async fn screening_the_typical_patient_equals_evaluate_bundle() {
    if !crate::service::fhir_servers() {
        return;
    }
    // Requests with coded medications, and an augmentation MedicationStatement whose Medication is
    // a reference (aripiprazole).
    let fhir = Fhir::plain();
    let loaded = fhir.load("typical-patient.json", "typical").await;
    let a = screened_equals_evaluated(&loaded, &fhir).await;
    assert_eq!(a.status, TrdStatus::Met as i32);
    let aripiprazole = trial(&a, "aripiprazole");
    assert!(aripiprazole.augmentation, "{aripiprazole:#?}");
    assert!(
        aripiprazole.evidence.contains(&format!(
            "MedicationStatement/{}",
            loaded.id("ms-aripiprazole-augmentation")
        )),
        "{aripiprazole:#?}"
    );
    assert_no_unresolved_references(&a);
}

fn written(response: &ScreenPatientResponse) -> &WriteBackResult {
    let wb = response.write_back.as_ref().expect("a write-back result");
    assert_eq!(
        (wb.error_code.as_str(), wb.error_message.as_str()),
        ("", ""),
        "the write-back failed"
    );
    wb
}

/// The one resource a search found, by identifier; panics unless there is exactly one.
fn only(found: Vec<Value>, what: &str) -> Value {
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {what}, found {found:#?}"
    );
    found.into_iter().next().unwrap()
}

fn reference_of(resource: &Value) -> String {
    format!(
        "{}/{}",
        resource["resourceType"].as_str().unwrap(),
        resource["id"].as_str().unwrap()
    )
}

fn version(resource: &Value) -> &str {
    resource["meta"]["versionId"]
        .as_str()
        .expect("the server gives a versionId")
}

fn without_meta(resource: &Value) -> Value {
    let mut r = resource.clone();
    r.as_object_mut().unwrap().remove("meta");
    r
}

fn references(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["reference"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn write_back_keeps_one_flag_and_one_care_plan_updates_them_in_place_and_retires_them() {
    if !crate::service::fhir_servers() {
        return;
    }
    let fhir = Fhir::plain();
    let loaded = fhir
        .load("fhir/requests-medication-reference.json", "lifecycle")
        .await;
    let patient = loaded.patient_id.clone();
    // An old depression that abated in 2019, its clinical status left "active" as EHRs often do:
    // the CarePlan does not address it, because screening does not count it as active.
    fhir.put(&json!({
        "resourceType": "Condition",
        "id": loaded.id("cond-mdd-2018"),
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F32.1", "display": "Major depressive disorder, single episode, moderate"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "onsetDateTime": "2018-02-01",
        "abatementDateTime": "2019-01-15"
    }))
    .await;
    let mut svc = start(settings(&fhir.base)).await;

    // 1. First screening: one Flag and one draft CarePlan are created.
    let first = screen(&mut svc, &patient, WriteBackMode::FlagAndCarePlan).await;
    assert_eq!(
        first.assessment.as_ref().unwrap().status,
        TrdStatus::Met as i32
    );
    let wb1 = written(&first).clone();
    assert!(wb1.changed, "the first screening writes");
    let flag = only(fhir.flags(&patient).await, "Flag after the first run");
    let plan = only(
        fhir.care_plans(&patient).await,
        "CarePlan after the first run",
    );
    assert_eq!(wb1.flag_reference, reference_of(&flag));
    assert_eq!(wb1.care_plan_reference, reference_of(&plan));
    assert_eq!(flag["status"], "active");
    assert_eq!(flag["subject"]["reference"], format!("Patient/{patient}"));
    assert_eq!(flag["period"]["start"], AS_OF);
    assert!(
        flag["code"]["coding"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["code"] == "trd-met"),
        "{flag:#}"
    );
    assert_eq!(plan["status"], "draft");
    assert_eq!(plan["intent"], "proposal");
    assert_eq!(plan["subject"]["reference"], format!("Patient/{patient}"));
    let supporting = references(&plan["supportingInfo"]);
    assert!(supporting.contains(&wb1.flag_reference), "{plan:#}");
    assert!(
        supporting.contains(&format!("MedicationRequest/{}", loaded.id("mr-sertraline"))),
        "{plan:#}"
    );
    assert_eq!(
        references(&plan["addresses"]),
        vec![format!("Condition/{}", loaded.id("cond-mdd"))]
    );

    // 2. The same screening again: nothing is written.
    let second = screen(&mut svc, &patient, WriteBackMode::FlagAndCarePlan).await;
    let wb2 = written(&second);
    assert!(
        !wb2.changed,
        "a repeated screening changes nothing: {wb2:?}"
    );
    assert_eq!(wb2.flag_reference, wb1.flag_reference);
    assert_eq!(wb2.care_plan_reference, wb1.care_plan_reference);
    let flag2 = only(fhir.flags(&patient).await, "Flag after the second run");
    let plan2 = only(
        fhir.care_plans(&patient).await,
        "CarePlan after the second run",
    );
    assert_eq!(
        version(&flag2),
        version(&flag),
        "the Flag was not rewritten"
    );
    assert_eq!(
        version(&plan2),
        version(&plan),
        "the CarePlan was not rewritten"
    );

    // 3. The record changes (an alcohol use disorder is diagnosed, which raises a hint): the same
    //    CarePlan is updated.
    let aud = json!({
        "resourceType": "Condition",
        "id": loaded.id("cond-aud"),
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F10.20", "display": "Alcohol dependence, uncomplicated"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "onsetDateTime": "2020-08-17",
        "recordedDate": "2020-08-17"
    });
    fhir.put(&aud).await;
    let third = screen(&mut svc, &patient, WriteBackMode::FlagAndCarePlan).await;
    let a3 = third.assessment.as_ref().unwrap();
    assert_eq!(a3.status, TrdStatus::Met as i32);
    assert!(
        a3.hints.iter().any(|h| h.code == "substance-use-disorder"),
        "{:#?}",
        a3.hints
    );
    let wb3 = written(&third);
    assert!(wb3.changed, "a changed record updates the chart: {wb3:?}");
    assert_eq!(wb3.flag_reference, wb1.flag_reference);
    assert_eq!(wb3.care_plan_reference, wb1.care_plan_reference);
    let plan3 = only(fhir.care_plans(&patient).await, "CarePlan after the change");
    assert_eq!(plan3["id"], plan["id"]);
    assert_ne!(version(&plan3), version(&plan), "the CarePlan was updated");
    assert_ne!(
        without_meta(&plan3),
        without_meta(&plan),
        "its content changed"
    );
    assert!(
        references(&plan3["supportingInfo"])
            .contains(&format!("Condition/{}", loaded.id("cond-aud"))),
        "{plan3:#}"
    );
    let flag3 = only(fhir.flags(&patient).await, "Flag after the change");
    assert_eq!(flag3["id"], flag["id"]);
    assert_eq!(flag3["status"], "active");

    // 4. The antidepressant orders turn out to be entered in error: the patient no longer screens
    //    positive, so the Flag becomes inactive and the CarePlan revoked. Nothing is deleted.
    for order in ["mr-sertraline", "mr-venlafaxine"] {
        let mut r = loaded.resource(order);
        r["status"] = json!("entered-in-error");
        fhir.put(&r).await;
    }
    let fourth = screen(&mut svc, &patient, WriteBackMode::FlagAndCarePlan).await;
    let a4 = fourth.assessment.as_ref().unwrap();
    assert!(
        a4.status == TrdStatus::NotApplicable as i32 || a4.status == TrdStatus::NotMet as i32,
        "{a4:#?}"
    );
    let wb4 = written(&fourth);
    assert!(
        wb4.changed,
        "retiring the Flag and CarePlan writes: {wb4:?}"
    );
    assert_eq!(wb4.flag_reference, wb1.flag_reference);
    assert_eq!(wb4.care_plan_reference, wb1.care_plan_reference);
    let flag4 = only(fhir.flags(&patient).await, "Flag after retirement");
    let plan4 = only(fhir.care_plans(&patient).await, "CarePlan after retirement");
    assert_eq!(flag4["id"], flag["id"]);
    assert_eq!(flag4["status"], "inactive");
    assert_eq!(flag4["period"]["start"], AS_OF);
    assert_eq!(flag4["period"]["end"], AS_OF);
    assert_eq!(plan4["id"], plan["id"]);
    assert_eq!(plan4["status"], "revoked");
    let flag_id = flag["id"].as_str().unwrap();
    let plan_id = plan["id"].as_str().unwrap();
    assert_eq!(fhir.read("Flag", flag_id).await["status"], "inactive");
    assert_eq!(fhir.read("CarePlan", plan_id).await["status"], "revoked");

    // 5. And screening the retired patient again changes nothing.
    let fifth = screen(&mut svc, &patient, WriteBackMode::FlagAndCarePlan).await;
    let wb5 = written(&fifth);
    assert!(!wb5.changed, "{wb5:?}");
    assert_eq!(wb5.flag_reference, wb1.flag_reference);
    assert_eq!(wb5.care_plan_reference, wb1.care_plan_reference);
    assert_eq!(
        version(&only(fhir.flags(&patient).await, "Flag")),
        version(&flag4)
    );
}

/// Service replicas (separate `Screener`s: separate FHIR clients, no shared per-patient lock) and
/// how many new patients they race on.
const REPLICAS: usize = 4;
const RACE_ROUNDS: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_writing_back_the_same_new_patient_at_once_make_one_flag_and_one_care_plan() {
    if !crate::service::fhir_servers() {
        return;
    }
    let fhir = Fhir::plain();
    let replicas: Vec<Arc<Screener>> = (0..REPLICAS)
        .map(|_| {
            Arc::new(
                Screener::new(&settings(&fhir.base), &Secrets::default())
                    .expect("a replica starts"),
            )
        })
        .collect();
    let as_of = trdscreen::date::Date::parse(AS_OF).unwrap();
    let mut duplicated = Vec::new();
    let mut failed = Vec::new();
    for round in 0..RACE_ROUNDS {
        let loaded = fhir
            .load("scenarios/met-two-failed-ssri-snri.json", "replicas")
            .await;
        let start_together = Arc::new(tokio::sync::Barrier::new(REPLICAS));
        let calls: Vec<_> = replicas
            .iter()
            .map(|replica| {
                let replica = replica.clone();
                let patient = loaded.patient_id.clone();
                let start_together = start_together.clone();
                tokio::spawn(async move {
                    start_together.wait().await;
                    replica
                        .screen_patient(
                            &patient,
                            as_of,
                            WriteBackRequest::FlagAndCarePlan,
                            &mut Vec::new(),
                        )
                        .await
                })
            })
            .collect();
        let mut references = Vec::new();
        for call in calls {
            let screened = call
                .await
                .expect("the call does not panic")
                .expect("the screening succeeds");
            match screened.write_back.expect("a write-back was asked for") {
                Ok(outcome) => {
                    references.push((outcome.flag_reference, outcome.care_plan_reference))
                }
                Err(e) => failed.push(format!("round {round}: {e}")),
            }
        }
        let flags = fhir.flags(&loaded.patient_id).await;
        let plans = fhir.care_plans(&loaded.patient_id).await;
        if flags.len() != 1 || plans.len() != 1 {
            duplicated.push(format!(
                "round {round}: {} Flags, {} CarePlans",
                flags.len(),
                plans.len()
            ));
            continue;
        }
        let expected = (Some(reference_of(&flags[0])), Some(reference_of(&plans[0])));
        assert!(
            references.iter().all(|r| *r == expected),
            "round {round}: every replica names the one Flag and CarePlan: {references:?}"
        );
    }
    assert!(
        duplicated.is_empty() && failed.is_empty(),
        "{REPLICAS} replicas over {RACE_ROUNDS} new patients: duplicates {duplicated:#?}, failed write-backs {failed:#?}"
    );
}

#[tokio::test]
async fn write_back_modes_none_flag_and_the_default_write_what_they_name() {
    if !crate::service::fhir_servers() {
        return;
    }
    let fhir = Fhir::plain();
    let loaded = fhir
        .load("fhir/statements-medication-reference.json", "modes")
        .await;
    let patient = loaded.patient_id.clone();
    let mut svc = start(settings(&fhir.base)).await;

    let none = screen(&mut svc, &patient, WriteBackMode::None).await;
    assert_eq!(none.write_back, None);
    assert!(fhir.flags(&patient).await.is_empty());
    assert!(fhir.care_plans(&patient).await.is_empty());

    let flag_only = screen(&mut svc, &patient, WriteBackMode::Flag).await;
    let wb = written(&flag_only);
    assert!(wb.changed);
    assert!(wb.flag_reference.starts_with("Flag/"), "{wb:?}");
    assert_eq!(wb.care_plan_reference, "");
    let flag = only(fhir.flags(&patient).await, "Flag");
    assert_eq!(wb.flag_reference, reference_of(&flag));
    assert!(fhir.care_plans(&patient).await.is_empty());

    // Unspecified: the server's default, a Flag and a CarePlan; the Flag is already up to date.
    let default = screen(&mut svc, &patient, WriteBackMode::Unspecified).await;
    let wb = written(&default);
    assert!(wb.changed);
    assert_eq!(wb.flag_reference, reference_of(&flag));
    let plan = only(fhir.care_plans(&patient).await, "CarePlan");
    assert_eq!(wb.care_plan_reference, reference_of(&plan));
    assert_eq!(
        version(&only(fhir.flags(&patient).await, "Flag")),
        version(&flag)
    );
}

#[tokio::test]
async fn unknown_patient_is_not_found() {
    if !crate::service::fhir_servers() {
        return;
    }
    let mut svc = start(settings(&service::fhir_url())).await;
    let status = svc
        .client
        .screen_patient(screen_request(
            &unique_prefix("nobody"),
            WriteBackMode::None,
        ))
        .await
        .expect_err("an unknown patient is an error");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

#[tokio::test]
async fn malformed_patient_ids_are_invalid_argument() {
    if !crate::service::fhir_servers() {
        return;
    }
    let mut svc = start(settings(&service::fhir_url())).await;
    let too_long = "a".repeat(65);
    for id in ["../Patient", "a/b", "x?y=1", "", too_long.as_str()] {
        let status = svc
            .client
            .screen_patient(screen_request(id, WriteBackMode::None))
            .await
            .expect_err("a malformed id is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{id:?}: {status:?}");
        assert!(
            status.message().contains("patient_id"),
            "{id:?}: {status:?}"
        );
    }
}

/// A Bundle of the typical patient, padded in the Patient's narrative to at least `bytes` bytes.
fn padded_bundle(bytes: usize) -> String {
    let mut resources = service::fixture_resources("typical-patient.json");
    resources[0]["text"] = json!({
        "status": "generated",
        "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{}</div>", "x".repeat(bytes))
    });
    bundle_json("https://ehr.example.org/fhir", &resources)
}

#[tokio::test]
async fn a_bundle_over_ten_megabytes_is_resource_exhausted() {
    // Over the default grpc.max_request_bytes (4 MiB) and over tonic's decoding ceiling (twice that).
    let mut svc = start(settings("")).await;
    let bundle = padded_bundle(10 * 1024 * 1024 + 1);
    assert!(bundle.len() > 10 * 1024 * 1024);
    let status = svc
        .client
        .evaluate_bundle(EvaluateBundleRequest {
            bundle_json: bundle,
            as_of: Some(timestamp(AS_OF)),
        })
        .await
        .expect_err("an oversized Bundle is refused");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
}

#[tokio::test]
async fn a_bundle_over_the_request_limit_is_resource_exhausted_with_the_setting_named() {
    // 5 MiB: over grpc.max_request_bytes (4 MiB), under tonic's ceiling, so the service answers.
    let mut svc = start(settings("")).await;
    let status = svc
        .client
        .evaluate_bundle(EvaluateBundleRequest {
            bundle_json: padded_bundle(5 * 1024 * 1024),
            as_of: Some(timestamp(AS_OF)),
        })
        .await
        .expect_err("an oversized Bundle is refused");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("grpc.max_request_bytes"),
        "{status:?}"
    );
}

#[tokio::test]
async fn malformed_bundles_are_invalid_argument() {
    let mut svc = start(settings("")).await;
    let cases = [
        "{\"resourceType\": \"Bundle\", \"entry\": [",
        "not json",
        "{\"resourceType\": \"Patient\", \"id\": \"p1\"}",
        "{\"resourceType\": \"Bundle\", \"type\": \"collection\", \"entry\": []}",
        "{\"resourceType\": \"Bundle\", \"entry\": {\"resource\": 1}}",
    ];
    for bundle in cases {
        let status = svc
            .client
            .evaluate_bundle(EvaluateBundleRequest {
                bundle_json: bundle.to_owned(),
                as_of: Some(timestamp(AS_OF)),
            })
            .await
            .expect_err("a malformed Bundle is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{bundle}: {status:?}");
    }
}

#[tokio::test]
async fn a_lone_surrogate_in_display_text_over_evaluate_bundle_keeps_the_resources() {
    let mut svc = start(settings("")).await;
    let bundle = bundle_json(
        "https://ehr.example.org/fhir",
        &service::fixture_resources("typical-patient.json"),
    );
    let bundle = bundle.replace(
        "\"display\":\"Maria Lindqvist\"",
        "\"display\":\"Maria \\ud800\"",
    );
    assert!(bundle.contains("\\ud800"));
    let a = svc
        .client
        .evaluate_bundle(EvaluateBundleRequest {
            bundle_json: bundle,
            as_of: Some(timestamp(AS_OF)),
        })
        .await
        .expect("the Bundle is evaluated")
        .into_inner()
        .assessment
        .expect("an assessment");
    assert_eq!(a.status, TrdStatus::Met as i32, "{:?}", a.diagnostics);
    assert_eq!(a.failed_adequate_trials, 2);
    let named: Vec<_> = a
        .diagnostics
        .iter()
        .filter(|d| d.kind == "invalid-text")
        .collect();
    assert!(!named.is_empty());
    assert!(named.iter().all(|d| d.message.contains("subject.display")));
}

#[tokio::test]
async fn health_reports_serving_for_the_server_and_the_screening_service() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let svc = start(settings("")).await;
    let mut health = HealthClient::new(svc.channel.clone());
    for name in ["", "trdscreen.v1.TrdScreening"] {
        let response = health
            .check(HealthCheckRequest {
                service: name.to_owned(),
            })
            .await
            .unwrap_or_else(|s| panic!("health check of {name:?}: {s:?}"))
            .into_inner();
        assert_eq!(
            response.status,
            ServingStatus::Serving as i32,
            "health of {name:?}"
        );
    }
}

#[tokio::test]
async fn reflection_can_be_closed_and_health_stays_open() {
    use tonic_reflection::pb::v1;
    let mut closed = settings("");
    closed.grpc.reflection = false;
    let svc = start(closed).await;
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(svc.channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let refused = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect_err("no reflection");
    assert_eq!(refused.code(), tonic::Code::Unimplemented, "{refused:?}");
    let mut health = tonic_health::pb::health_client::HealthClient::new(svc.channel.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "trdscreen.v1.TrdScreening".into(),
        })
        .await
        .expect("health answers")
        .into_inner();
    assert_eq!(serving.status, 1, "SERVING");
}

#[tokio::test]
async fn reflection_lists_the_screening_service_in_v1_and_v1alpha() {
    use tonic_reflection::pb::{v1, v1alpha};
    let svc = start(settings("")).await;

    let mut client = v1::server_reflection_client::ServerReflectionClient::new(svc.channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection v1 answers")
        .into_inner();
    let answer = answers
        .message()
        .await
        .expect("a v1 reflection response")
        .expect("one message");
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("not a ListServices answer: {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.iter().any(|n| n == "trdscreen.v1.TrdScreening"),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n == "grpc.health.v1.Health"),
        "{names:?}"
    );

    let mut client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(svc.channel.clone());
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection v1alpha answers")
        .into_inner();
    let answer = answers
        .message()
        .await
        .expect("a v1alpha reflection response")
        .expect("one message");
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("not a ListServices answer: {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.iter().any(|n| n == "trdscreen.v1.TrdScreening"),
        "{names:?}"
    );
}

/// A TCP proxy to `target` that holds each new connection for `delay` before passing its bytes on:
/// it makes every FHIR request of a screening slow. `accepted` is notified at each connection.
async fn slow_proxy(target: SocketAddr, delay: Duration, accepted: Arc<Notify>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            accepted.notify_one();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    address
}

#[tokio::test]
async fn shutdown_lets_the_call_in_flight_finish_and_refuses_new_connections() {
    if !crate::service::fhir_servers() {
        return;
    }
    let fhir = Fhir::plain();
    let loaded = fhir
        .load("fhir/requests-medication-reference.json", "shutdown")
        .await;
    let url = url::Url::parse(&fhir.base).expect("the FHIR URL");
    let target: SocketAddr = format!(
        "{}:{}",
        url.host_str().unwrap(),
        url.port_or_known_default().unwrap()
    )
    .parse()
    .expect("the FHIR server is on an IP address");
    let accepted = Arc::new(Notify::new());
    let proxy = slow_proxy(target, Duration::from_millis(800), accepted.clone()).await;
    let slow_base = format!("http://{proxy}{}", url.path());
    let mut svc = start(settings(&slow_base)).await;
    let address = svc.address;

    let mut client = svc.client.clone();
    let request = screen_request(&loaded.patient_id, WriteBackMode::None);
    let in_flight = tokio::spawn(async move { client.screen_patient(request).await });
    // The service has begun reading the patient (its first FHIR connection is held by the proxy).
    tokio::time::timeout(Duration::from_secs(10), accepted.notified())
        .await
        .expect("the service connects to the FHIR server");
    assert!(!in_flight.is_finished(), "the call is still running");
    svc.begin_shutdown();

    // New connections are refused as soon as the shutdown has begun, while the call still runs.
    let mut refused = false;
    for _ in 0..40 {
        match TcpStream::connect(address).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                refused = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
    assert!(
        refused,
        "a new connection was still accepted after shutdown began"
    );
    assert!(
        !in_flight.is_finished(),
        "the call was still in flight when new connections were refused"
    );

    let response = in_flight
        .await
        .expect("the call's task")
        .expect("the call in flight completes successfully")
        .into_inner();
    let a = response.assessment.expect("an assessment");
    assert_eq!(a.patient_id, loaded.patient_id);
    assert_eq!(a.status, TrdStatus::Met as i32);

    svc.shutdown().await.expect("the server stops cleanly");
    let after = service::connect(address).await;
    assert!(after.is_err(), "a connection after shutdown is refused");
}
