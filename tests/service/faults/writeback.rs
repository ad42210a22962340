//! Write-back under failure: retried, lost answers, no duplicates.

use super::*;

// --- write-back under failure ----------------------------------------------------------------

/// Requests that wrote (or tried to write) a Flag: creates (transactions) and updates (PUT by id).
pub(super) fn flag_writes(stub: &Stub) -> Vec<Seen> {
    stub.writes_of("Flag")
}

fn care_plan_writes(stub: &Stub) -> Vec<Seen> {
    stub.writes_of("CarePlan")
}

/// After a write-back: one Flag and one CarePlan, named by the response.
fn assert_one_flag_and_one_care_plan(stub: &Stub, result: &WriteBackResult) {
    let flags = stub.stored("Flag");
    let plans = stub.stored("CarePlan");
    assert_eq!(flags.len(), 1, "{flags:#?}");
    assert_eq!(plans.len(), 1, "{plans:#?}");
    assert_eq!(
        result.flag_reference,
        format!("Flag/{}", flags[0]["id"].as_str().unwrap())
    );
    assert_eq!(
        result.care_plan_reference,
        format!("CarePlan/{}", plans[0]["id"].as_str().unwrap())
    );
    assert_eq!(flags[0]["status"], "active");
    assert_eq!(
        flags[0]["subject"]["reference"],
        format!("Patient/{PATIENT}")
    );
    assert_eq!(
        plans[0]["supportingInfo"][0]["reference"],
        result.flag_reference.as_str()
    );
}

/// A create is a transaction (`POST /fhir`) of one conditional create: `POST {resource_type}`
/// with `ifNoneExist: identifier=urn:trdscreen:screening|{kind}-{patient}`.
fn assert_conditional_create(write: &Seen, resource_type: &str, kind: &str) {
    assert_eq!((write.method.as_str(), write.path()), ("POST", "/fhir"));
    let bundle = write.json().expect("the transaction is JSON");
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "transaction");
    let entries = bundle["entry"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{bundle:#}");
    let request = &entries[0]["request"];
    assert_eq!(request["method"], "POST");
    assert_eq!(request["url"], resource_type);
    let criteria: Vec<(String, String)> =
        url::form_urlencoded::parse(request["ifNoneExist"].as_str().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    assert_eq!(
        criteria,
        vec![(
            "identifier".to_owned(),
            format!("urn:trdscreen:screening|{kind}-{PATIENT}")
        )]
    );
    assert_eq!(entries[0]["resource"]["resourceType"], resource_type);
}

#[tokio::test]
async fn a_500_on_the_flag_create_is_retried_and_a_second_screening_changes_nothing() {
    let stub = stub_with_patient().await;
    stub.on_transaction_times(
        "Flag",
        1,
        Action::Reply(Answer::outcome(500, "exception", "database restarting")),
    );
    let mut client = service(&stub).await;

    let first = screen_with(&mut client, WriteBackMode::FlagAndCarePlan)
        .await
        .expect("succeeds");
    assert_met(&first);
    let result = write_back(&first);
    assert_eq!(result.error_code, "", "{result:?}");
    assert!(result.changed);
    let writes = flag_writes(&stub);
    assert_eq!(writes.len(), 2, "one refused, one retried");
    for write in &writes {
        assert_conditional_create(write, "Flag", "flag");
    }
    assert_eq!(
        writes[0].body, writes[1].body,
        "the retry sends the same Flag"
    );
    assert_eq!(care_plan_writes(&stub).len(), 1);
    assert_conditional_create(&care_plan_writes(&stub)[0], "CarePlan", "careplan");
    assert_one_flag_and_one_care_plan(&stub, result);

    let second = screen_with(&mut client, WriteBackMode::FlagAndCarePlan)
        .await
        .expect("succeeds");
    let again = write_back(&second);
    assert_eq!(again.error_code, "", "{again:?}");
    assert!(!again.changed, "the chart is already up to date");
    assert_eq!(again.flag_reference, result.flag_reference);
    assert_eq!(again.care_plan_reference, result.care_plan_reference);
    assert_eq!(flag_writes(&stub).len(), 2, "no write the second time");
    assert_eq!(care_plan_writes(&stub).len(), 1);
    assert_one_flag_and_one_care_plan(&stub, again);
}

#[tokio::test]
async fn a_create_that_landed_but_lost_its_answer_is_retried_without_a_duplicate() {
    let stub = stub_with_patient().await;
    // The first conditional create of each is carried out, then answered 500 (503); the retry
    // finds the resource already there.
    stub.on_transaction_times("Flag", 1, Action::ApplyThenFail(500));
    stub.on_transaction_times("CarePlan", 1, Action::ApplyThenFail(503));
    let mut client = service(&stub).await;

    let first = screen_with(&mut client, WriteBackMode::FlagAndCarePlan)
        .await
        .expect("succeeds");
    assert_met(&first);
    let result = write_back(&first);
    assert_eq!(result.error_code, "", "{result:?}");
    assert!(result.changed);
    assert_eq!(flag_writes(&stub).len(), 2);
    assert_eq!(care_plan_writes(&stub).len(), 2);
    for write in flag_writes(&stub) {
        assert_conditional_create(&write, "Flag", "flag");
    }
    for write in care_plan_writes(&stub) {
        assert_conditional_create(&write, "CarePlan", "careplan");
    }
    assert_one_flag_and_one_care_plan(&stub, result);

    let second = screen_with(&mut client, WriteBackMode::FlagAndCarePlan)
        .await
        .expect("succeeds");
    let again = write_back(&second);
    assert!(!again.changed, "{again:?}");
    assert_eq!(flag_writes(&stub).len(), 2, "no write the second time");
    assert_eq!(care_plan_writes(&stub).len(), 2);
    assert_one_flag_and_one_care_plan(&stub, again);
}

/// A Flag this service wrote earlier, when the patient screened only "possible".
fn earlier_possible_flag() -> Value {
    json!({
        "resourceType": "Flag", "id": "flag-old", "meta": {"versionId": "1"},
        "identifier": [{"system": "urn:trdscreen:screening", "value": format!("flag-{PATIENT}")}],
        "status": "active",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/flag-category", "code": "clinical", "display": "Clinical"}]}],
        "code": {"coding": [{"system": "urn:trdscreen:CodeSystem:screening-result", "code": "trd-possible", "display": "Possibly treatment-resistant depression"}]},
        "subject": {"reference": format!("Patient/{PATIENT}")},
        "period": {"start": "2025-01-01"}
    })
}

#[tokio::test]
async fn an_update_by_id_that_landed_but_lost_its_answer_is_reported_as_a_change() {
    let stub = stub_with_patient().await;
    stub.insert(earlier_possible_flag());
    // The update (If-Match W/"1") is carried out, then answered 500; its retry meets a 412.
    stub.on_times("PUT", "/fhir/Flag/flag-old", 1, Action::ApplyThenFail(500));
    let mut client = service(&stub).await;

    let response = screen_with(&mut client, WriteBackMode::Flag)
        .await
        .expect("succeeds");
    let result = write_back(&response);
    assert_eq!(result.error_code, "", "{result:?}");
    assert_eq!(result.flag_reference, "Flag/flag-old");
    let flags = stub.stored("Flag");
    assert_eq!(flags.len(), 1);
    assert_eq!(
        flags[0]["meta"]["versionId"], "2",
        "this screening updated the Flag"
    );
    assert_eq!(flags[0]["code"]["coding"][1]["code"], "trd-met");
    let puts = flag_writes(&stub);
    assert!(puts.iter().all(|p| p.method == "PUT"));
    assert!(puts.iter().all(|p| p.path() == "/fhir/Flag/flag-old"));
    assert!(puts.iter().all(|p| p.header("if-match") == Some("W/\"1\"")));
    assert!(
        result.changed,
        "this screening changed the Flag (version 1 -> 2), but the write-back says changed = false \
         ({} PUTs)",
        puts.len()
    );
}

#[tokio::test]
async fn a_flag_create_that_always_fails_still_returns_the_assessment() {
    let stub = stub_with_patient().await;
    stub.on_transaction(
        "Flag",
        Action::Reply(Answer::outcome(500, "exception", "disk full")),
    );
    let s = settings(&stub);
    let mut client = serve(&s, &Secrets::default()).await;

    let response = screen_with(&mut client, WriteBackMode::FlagAndCarePlan)
        .await
        .expect("the call itself succeeds");
    assert_met(&response);
    let result = write_back(&response);
    assert_eq!(result.error_code, "UNAVAILABLE", "{result:?}");
    assert!(
        result.error_message.contains("500, issue exception"),
        "{}",
        result.error_message
    );
    assert!(
        !result.error_message.contains("disk full"),
        "never the server's text: {}",
        result.error_message
    );
    assert!(!result.changed);
    assert_eq!(flag_writes(&stub).len(), s.fhir.max_retries as usize + 1);
    assert!(
        care_plan_writes(&stub).is_empty(),
        "no CarePlan without its Flag"
    );
    assert!(stub.stored("Flag").is_empty());
}

#[tokio::test]
async fn concurrent_screenings_of_one_patient_write_one_flag() {
    let stub = stub_with_patient().await;
    let client = service(&stub).await;

    let calls = (0..4).map(|_| {
        let mut c = client.clone();
        tokio::spawn(async move { screen_with(&mut c, WriteBackMode::FlagAndCarePlan).await })
    });
    let mut changed = 0;
    for call in calls {
        let response = call.await.unwrap().expect("succeeds");
        let result = write_back(&response);
        assert_eq!(result.error_code, "", "{result:?}");
        changed += usize::from(result.changed);
    }
    assert_eq!(changed, 1, "only the first screening writes");
    assert_eq!(stub.stored("Flag").len(), 1);
    assert_eq!(stub.stored("CarePlan").len(), 1);
    assert_eq!(flag_writes(&stub).len(), 1);
}

#[tokio::test]
async fn a_create_that_finds_another_writers_flag_reads_it_and_updates_it_without_a_duplicate() {
    // Another replica creates its Flag (from an older "possible" result) between this screening's
    // search and its create: the create finds it there, and this screening updates that Flag.
    let stub = stub_with_patient().await;
    stub.on_transaction_times("Flag", 1, Action::InsertThenApply(earlier_possible_flag()));
    let mut client = service(&stub).await;

    let response = screen_with(&mut client, WriteBackMode::FlagAndCarePlan)
        .await
        .expect("succeeds");
    assert_met(&response);
    let result = write_back(&response);
    assert_eq!(result.error_code, "", "{result:?}");
    assert!(result.changed);
    assert_eq!(result.flag_reference, "Flag/flag-old");
    let writes = flag_writes(&stub);
    assert_eq!(
        writes.len(),
        2,
        "the create, then the update of what it found"
    );
    assert_conditional_create(&writes[0], "Flag", "flag");
    assert_eq!(
        (writes[1].method.as_str(), writes[1].path()),
        ("PUT", "/fhir/Flag/flag-old")
    );
    assert_eq!(writes[1].header("if-match"), Some("W/\"1\""));
    assert_one_flag_and_one_care_plan(&stub, result);
    let flag = &stub.stored("Flag")[0];
    assert_eq!(flag["meta"]["versionId"], "2");
    assert_eq!(flag["code"]["coding"][1]["code"], "trd-met");
}

#[tokio::test]
async fn a_server_that_refuses_the_transaction_gets_a_conditional_update_instead() {
    // Some servers check a transaction's scopes as a create on every type (403), or have no
    // transaction endpoint (404): the Flag and CarePlan are then created by conditional update.
    let stub = stub_with_patient().await;
    stub.on_transaction(
        "Flag",
        Action::Reply(Answer::outcome(
            403,
            "forbidden",
            "Token scopes do not permit 'c' on *",
        )),
    );
    stub.on_transaction(
        "CarePlan",
        Action::Reply(Answer::outcome(404, "not-found", "no such endpoint")),
    );
    let mut client = service(&stub).await;

    let first = screen_with(&mut client, WriteBackMode::FlagAndCarePlan)
        .await
        .expect("succeeds");
    let result = write_back(&first);
    assert_eq!(result.error_code, "", "{result:?}");
    assert!(result.changed);
    for (writes, kind) in [
        (flag_writes(&stub), "flag"),
        (care_plan_writes(&stub), "careplan"),
    ] {
        assert_eq!(
            writes.len(),
            2,
            "the transaction, then the conditional update"
        );
        assert_eq!(writes[0].method, "POST");
        assert_eq!(writes[1].method, "PUT");
        assert_eq!(
            writes[1].query("identifier").as_deref(),
            Some(format!("urn:trdscreen:screening|{kind}-{PATIENT}").as_str())
        );
    }
    assert_one_flag_and_one_care_plan(&stub, result);

    let second = screen_with(&mut client, WriteBackMode::FlagAndCarePlan)
        .await
        .expect("succeeds");
    assert!(!write_back(&second).changed);
    assert_eq!(
        flag_writes(&stub).len(),
        2,
        "nothing written the second time"
    );
    assert_one_flag_and_one_care_plan(&stub, write_back(&second));
}

#[tokio::test]
async fn a_record_referencing_more_medications_than_may_be_read_is_refused_and_nothing_is_written()
{
    // 101 orders whose Medications the search did not include (and the server does not hold):
    // reading a hundred and leaving the rest unknown would screen a record with drugs missing.
    let stub = stub_with_patient().await;
    for n in 0..101 {
        stub.insert(json!({
            "resourceType": "MedicationRequest",
            "id": format!("order-{n}"),
            "status": "active",
            "intent": "order",
            "subject": {"reference": format!("Patient/{PATIENT}")},
            "medicationReference": {"reference": format!("Medication/not-included-{n}")},
            "authoredOn": "2025-01-01"
        }));
    }
    let mut client = service(&stub).await;

    let refused = screen_with(&mut client, WriteBackMode::FlagAndCarePlan)
        .await
        .expect_err("a record that cannot be read whole is not screened");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(flag_writes(&stub).is_empty());
    assert!(care_plan_writes(&stub).is_empty());
    let medication_reads = stub
        .requests()
        .iter()
        .filter(|r| r.path().starts_with("/fhir/Medication/"))
        .count();
    assert_eq!(medication_reads, 0);
}

#[tokio::test]
async fn a_server_that_ignores_the_identifier_search_never_has_another_patients_flag_written_over()
{
    let stub = stub_with_patient().await;
    let others = json!({
        "resourceType": "Flag",
        "id": "someone-elses",
        "meta": {"versionId": "1"},
        "status": "active",
        "identifier": [{"system": "urn:trdscreen:screening", "value": "flag-someone-else"}],
        "subject": {"reference": "Patient/someone-else"},
        "code": {"text": "Treatment-resistant depression criteria met"},
        "period": {"start": "2025-01-01"}
    });
    stub.insert(others.clone());
    // Every Flag search is answered with that Flag, whatever it asked for.
    let answer = others.clone();
    stub.on(
        "GET",
        "/fhir/Flag",
        Action::Dynamic(Arc::new(move |_: &Seen, origin: &str| {
            Answer::json(
                200,
                &searchset(
                    std::slice::from_ref(&answer),
                    &format!("{origin}/fhir"),
                    None,
                ),
            )
        })),
    );
    let mut client = service(&stub).await;

    let screened = screen_with(&mut client, WriteBackMode::Flag)
        .await
        .expect("screened");
    assert_met(&screened);
    assert!(
        flag_writes(&stub)
            .iter()
            .all(|w| w.path() != "/fhir/Flag/someone-elses"),
        "another patient's Flag was written over"
    );
    let stored = stub.stored("Flag");
    let kept = stored
        .iter()
        .find(|f| f["id"] == "someone-elses")
        .expect("still there");
    assert_eq!(kept["status"], "active");
    assert_eq!(kept["subject"]["reference"], "Patient/someone-else");
    assert!(
        stored
            .iter()
            .any(|f| f["subject"]["reference"] == format!("Patient/{PATIENT}")),
        "this patient's own Flag was created: {stored:#?}"
    );
}

#[tokio::test]
async fn a_screening_of_the_past_writes_nothing_back_when_the_record_holds_later_resources() {
    // As of AS_OF the patient meets the criteria; a PHQ-9 recorded since (a response) is left out
    // of that screening, so writing its MET into today's chart would conclude from part of it.
    let stub = stub_with_patient().await;
    stub.insert(json!({
        "resourceType": "Observation",
        "id": "phq9-since",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
        "subject": {"reference": format!("Patient/{PATIENT}")},
        "effectiveDateTime": "2026-01-15",
        "valueInteger": 3
    }));
    let mut client = service(&stub).await;

    let response = screen_with(&mut client, WriteBackMode::FlagAndCarePlan)
        .await
        .expect("the screening itself is answered");
    assert_met(&response);
    let result = write_back(&response);
    assert_eq!(result.error_code, "INVALID_ARGUMENT", "{result:?}");
    assert!(
        result.error_message.contains("as_of is in the past"),
        "{}",
        result.error_message
    );
    assert!(flag_writes(&stub).is_empty());
    assert!(care_plan_writes(&stub).is_empty());

    // The same record without the later resource is written back as of the same day.
    let stub = stub_with_patient().await;
    let mut client = service(&stub).await;
    let response = screen_with(&mut client, WriteBackMode::Flag)
        .await
        .expect("served");
    assert_eq!(write_back(&response).error_code, "", "{response:?}");
    assert_eq!(flag_writes(&stub).len(), 1);
}

#[tokio::test]
async fn a_screening_cut_off_after_its_flag_was_written_still_names_the_flag() {
    // The CarePlan's create never answers; the caller's deadline (here one second, under the
    // FHIR timeout) cuts the screening off after the Flag was written.
    let stub = stub_with_patient().await;
    stub.on_transaction("CarePlan", Action::Hang);
    let screener = Screener::new(&settings(&stub), &Secrets::default()).expect("builds");
    let as_of = Date::parse(AS_OF).unwrap();
    let mut written = Vec::new();

    let cut_off = tokio::time::timeout(
        Duration::from_secs(1),
        screener.screen_patient(
            PATIENT,
            as_of,
            trdscreen::service::WriteBackRequest::FlagAndCarePlan,
            &mut written,
        ),
    )
    .await;

    assert!(cut_off.is_err(), "the screening was cut off");
    assert_eq!(flag_writes(&stub).len(), 1);
    let flag = stub.stored("Flag");
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(
        written[0].reference,
        format!("Flag/{}", flag[0]["id"].as_str().unwrap())
    );
    assert!(written[0].created);
}
