//! Write-back under failure: retried, lost answers, no duplicates.

use super::*;

// --- write-back under failure ----------------------------------------------------------------

pub(super) fn flag_puts(stub: &Stub) -> Vec<Seen> {
    stub.requests()
        .into_iter()
        .filter(|s| s.method == "PUT" && s.path().starts_with("/fhir/Flag"))
        .collect()
}

fn care_plan_puts(stub: &Stub) -> Vec<Seen> {
    stub.requests()
        .into_iter()
        .filter(|s| s.method == "PUT" && s.path().starts_with("/fhir/CarePlan"))
        .collect()
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

/// A conditional create is `PUT Flag?identifier=system|flag-{patient}`.
fn assert_conditional(put: &Seen, kind: &str) {
    assert_eq!(
        put.query("identifier").as_deref(),
        Some(format!("urn:trdscreen:screening|{kind}-{PATIENT}").as_str()),
        "{}",
        put.target
    );
}

#[tokio::test]
async fn a_500_on_the_flag_put_is_retried_and_a_second_screening_changes_nothing() {
    let stub = stub_with_patient().await;
    stub.on_times(
        "PUT",
        "/fhir/Flag",
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
    let puts = flag_puts(&stub);
    assert_eq!(puts.len(), 2, "one refused, one retried");
    for put in &puts {
        assert_conditional(put, "flag");
    }
    assert_eq!(puts[0].body, puts[1].body, "the retry sends the same Flag");
    assert_eq!(care_plan_puts(&stub).len(), 1);
    assert_conditional(&care_plan_puts(&stub)[0], "careplan");
    assert_one_flag_and_one_care_plan(&stub, result);

    let second = screen_with(&mut client, WriteBackMode::FlagAndCarePlan)
        .await
        .expect("succeeds");
    let again = write_back(&second);
    assert_eq!(again.error_code, "", "{again:?}");
    assert!(!again.changed, "the chart is already up to date");
    assert_eq!(again.flag_reference, result.flag_reference);
    assert_eq!(again.care_plan_reference, result.care_plan_reference);
    assert_eq!(flag_puts(&stub).len(), 2, "no PUT the second time");
    assert_eq!(care_plan_puts(&stub).len(), 1);
    assert_one_flag_and_one_care_plan(&stub, again);
}

#[tokio::test]
async fn a_flag_put_that_landed_but_lost_its_answer_is_retried_without_a_duplicate() {
    let stub = stub_with_patient().await;
    // The first conditional create of each is carried out, then answered 500.
    stub.on_times("PUT", "/fhir/Flag", 1, Action::ApplyThenFail(500));
    stub.on_times("PUT", "/fhir/CarePlan", 1, Action::ApplyThenFail(503));
    let mut client = service(&stub).await;

    let first = screen_with(&mut client, WriteBackMode::FlagAndCarePlan)
        .await
        .expect("succeeds");
    assert_met(&first);
    let result = write_back(&first);
    assert_eq!(result.error_code, "", "{result:?}");
    assert!(result.changed);
    assert_eq!(flag_puts(&stub).len(), 2);
    assert_eq!(care_plan_puts(&stub).len(), 2);
    for put in flag_puts(&stub) {
        assert_conditional(&put, "flag");
    }
    assert_one_flag_and_one_care_plan(&stub, result);

    let second = screen_with(&mut client, WriteBackMode::FlagAndCarePlan)
        .await
        .expect("succeeds");
    let again = write_back(&second);
    assert!(!again.changed, "{again:?}");
    assert_eq!(flag_puts(&stub).len(), 2, "no PUT the second time");
    assert_eq!(care_plan_puts(&stub).len(), 2);
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
    let puts = flag_puts(&stub);
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
async fn a_flag_put_that_always_fails_still_returns_the_assessment() {
    let stub = stub_with_patient().await;
    stub.on(
        "PUT",
        "/fhir/Flag",
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
        result.error_message.contains("disk full"),
        "{}",
        result.error_message
    );
    assert!(!result.changed);
    assert_eq!(flag_puts(&stub).len(), s.fhir.max_retries as usize + 1);
    assert!(
        care_plan_puts(&stub).is_empty(),
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
    assert_eq!(flag_puts(&stub).len(), 1);
}
