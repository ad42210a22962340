//! ScreenPopulation and `trdscreen batch --group` against the real FHIR server: a cohort by ids or
//! by Group gives, for each patient, what ScreenPatient gives; a patient's error is reported in the
//! stream without ending it; an unknown Group ends the call with NOT_FOUND; the nightly job reads
//! the same Group patient by patient and writes one Flag per positive patient.

use crate::service;

use serde_json::{Value, json};
use service::{Fhir, Loaded, settings, start, timestamp, unique_prefix};
use std::collections::BTreeMap;
use tonic::Code;
use trdscreen::proto::screen_population_request::Cohort;
use trdscreen::proto::{
    PatientIds, ScreenPatientRequest, ScreenPatientResponse, ScreenPopulationRequest, WriteBackMode,
};

const AS_OF: &str = "2025-06-01";

async fn load_two(fhir: &Fhir, name: &str) -> (Loaded, Loaded) {
    let a = fhir
        .load(
            "fhir/requests-medication-reference.json",
            &format!("{name}-a"),
        )
        .await;
    let b = fhir
        .load(
            "fhir/statements-medication-reference.json",
            &format!("{name}-b"),
        )
        .await;
    (a, b)
}

async fn population(
    svc: &mut service::Service,
    cohort: Cohort,
) -> Result<Vec<ScreenPatientResponse>, tonic::Status> {
    let mut stream = svc
        .client
        .screen_population(ScreenPopulationRequest {
            cohort: Some(cohort),
            as_of: Some(timestamp(AS_OF)),
            write_back: WriteBackMode::None as i32,
        })
        .await?
        .into_inner();
    let mut responses = Vec::new();
    while let Some(r) = stream.message().await? {
        responses.push(r);
    }
    Ok(responses)
}

async fn screen_one(svc: &mut service::Service, id: &str) -> ScreenPatientResponse {
    svc.client
        .screen_patient(ScreenPatientRequest {
            patient_id: id.into(),
            as_of: Some(timestamp(AS_OF)),
            write_back: WriteBackMode::None as i32,
        })
        .await
        .unwrap()
        .into_inner()
}

/// Responses by patient id (the assessment's, or the error's).
fn by_patient(responses: Vec<ScreenPatientResponse>) -> BTreeMap<String, ScreenPatientResponse> {
    responses
        .into_iter()
        .map(|r| {
            let id = match (&r.assessment, &r.error) {
                (Some(a), _) => a.patient_id.clone(),
                (None, Some(e)) => e.patient_id.clone(),
                (None, None) => panic!("a response with neither assessment nor error"),
            };
            (id, r)
        })
        .collect()
}

#[tokio::test]
async fn a_cohort_of_ids_streams_each_patients_screening_and_errors_without_ending() {
    if !crate::service::fhir_servers() {
        return;
    }
    let fhir = Fhir::plain();
    let (a, b) = load_two(&fhir, "pop-ids").await;
    let mut svc = start(settings(&fhir.base)).await;
    let missing = unique_prefix("nobody");
    let ids = vec![
        a.patient_id.clone(),
        "a/b".to_owned(),
        b.patient_id.clone(),
        missing.clone(),
    ];
    let got = by_patient(
        population(&mut svc, Cohort::PatientIds(PatientIds { ids }))
            .await
            .expect("the stream ends cleanly"),
    );
    assert_eq!(got.len(), 4, "one response per patient");
    for loaded in [&a, &b] {
        let alone = screen_one(&mut svc, &loaded.patient_id).await;
        assert_eq!(got[&loaded.patient_id], alone, "the same as ScreenPatient");
    }
    let error = |id: &str| got[id].error.clone().expect("an error");
    assert_eq!(error("a/b").code, "INVALID_ARGUMENT");
    assert_eq!(error(&missing).code, "NOT_FOUND");
    assert!(got[&missing].assessment.is_none());
}

#[tokio::test]
async fn a_group_cohort_screens_its_active_patient_members_once() {
    if !crate::service::fhir_servers() {
        return;
    }
    let fhir = Fhir::plain();
    let (a, b) = load_two(&fhir, "pop-group").await;
    let group_id = unique_prefix("group");
    let former = unique_prefix("former");
    let group = json!({
        "resourceType": "Group",
        "id": group_id,
        "type": "person",
        "actual": true,
        "member": [
            {"entity": {"reference": format!("Patient/{}", a.patient_id)}},
            {"entity": {"reference": format!("Patient/{}", b.patient_id)}},
            {"entity": {"reference": format!("Patient/{}", a.patient_id)}},
            {"entity": {"reference": format!("Patient/{former}")}, "inactive": true},
            {"entity": {"reference": "Practitioner/x"}}
        ]
    });
    fhir.put(&group).await;
    let mut svc = start(settings(&fhir.base)).await;
    let got = by_patient(
        population(&mut svc, Cohort::GroupId(group_id.clone()))
            .await
            .expect("the stream ends cleanly"),
    );
    let ids: Vec<&String> = got.keys().collect();
    let mut expected = vec![&a.patient_id, &b.patient_id];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(got.values().all(|r| r.assessment.is_some()));

    let status = population(&mut svc, Cohort::GroupId(unique_prefix("no-group")))
        .await
        .expect_err("an unknown Group ends the call");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

#[test]
fn the_nightly_job_screens_a_group_patient_by_patient_and_writes_one_flag_each() {
    if !crate::service::fhir_servers() {
        return;
    }
    let fhir = Fhir::plain();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (a, b) = rt.block_on(load_two(&fhir, "job-group"));
    let group_id = unique_prefix("job-group");
    let members: Vec<Value> = [&a, &b]
        .iter()
        .map(|l| json!({"entity": {"reference": format!("Patient/{}", l.patient_id)}}))
        .collect();
    rt.block_on(fhir.put(&json!({
        "resourceType": "Group", "id": group_id, "type": "person", "actual": true,
        "member": members
    })));
    let dir = std::env::temp_dir().join(unique_prefix("trdscreen-job-group"));
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("report.json");
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_trdscreen"))
            .args([
                "batch",
                "--group",
                &group_id,
                "--as-of",
                AS_OF,
                "--write-back",
                "flag",
                "--report",
                report.to_str().unwrap(),
            ])
            .env("TRDSCREEN_FHIR_BASE_URL", &fhir.base)
            .output()
            .unwrap()
    };
    for round in ["first", "second"] {
        let out = run();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{round}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["patients"]["screened"], 2);
    assert_eq!(r["status"]["MET"], 2, "{r:#}");
    assert_eq!(
        r["write_back"]["unchanged"], 2,
        "the second run changed nothing"
    );
    rt.block_on(async {
        for l in [&a, &b] {
            assert_eq!(fhir.flags(&l.patient_id).await.len(), 1);
        }
    });
}
