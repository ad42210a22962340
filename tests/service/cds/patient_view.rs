//! patient-view: a card for a patient who screens MET or POSSIBLE, from a full prefetch, from
//! none (the real FHIR server is read), and a 412 when the data cannot be had; a suggestion that,
//! carried out twice, leaves one Flag and one CarePlan; malformed prefetch is a 400; feedback is
//! taken.

use super::{Cds, Ehr, prefetch, request, scenario, scratch, to_today, topics};
use crate::service::{self, Fhir, unique_prefix};
use serde_json::{Value, json};

/// The MET scenario (two failed adequate courses) as it would be today, under a fresh prefix.
fn met_patient() -> (String, Vec<Value>) {
    let resources = service::with_prefix(
        &scenario("met-two-failed-ssri-snri", to_today()),
        &unique_prefix("cds-met"),
    );
    (super::patient_id(&resources), resources)
}

/// A patient-view hook with no prefetch, naming `server` and a token for it.
fn without_prefetch(patient: &str, server: &str) -> Value {
    let mut body = request("patient-view", patient, json!({}), None);
    body["fhirServer"] = json!(server);
    body["fhirAuthorization"] = json!({
        "access_token": "a-token-the-ehr-issued",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "trdscreen",
    });
    body
}

fn only_card(answer: &Value) -> &Value {
    let cards = answer["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 1, "{answer}");
    &cards[0]
}

#[tokio::test]
async fn a_met_patient_prefetched_whole_gets_one_card_with_courses_evidence_and_a_suggestion() {
    let dir = scratch("pv-prefetch");
    let ehr = Ehr::start(&dir).await;
    // No FHIR server is allowed: everything must come from the prefetch.
    let cds = Cds::start(&ehr, &[], &dir).await;
    let (patient, resources) = met_patient();
    let body = request(
        "patient-view",
        &patient,
        json!({}),
        Some(prefetch(&resources)),
    );
    let (status, answer) = cds.hook(&ehr, "trd-patient-view", &body).await;
    assert_eq!(status, 200, "{answer}");
    let card = only_card(&answer);
    assert_eq!(
        card["summary"],
        "Treatment-resistant depression: 2 failed adequate courses"
    );
    // Item 9 of the latest PHQ-9 was 1: the suicide-risk hint, critical, sets the card's indicator.
    assert_eq!(card["indicator"], "critical");
    let detail = card["detail"].as_str().unwrap();
    for part in [
        "course 1: sertraline",
        "course 2: venlafaxine",
        "MedicationRequest/",
        "(suicide-risk)",
        "Observation/",
    ] {
        assert!(detail.contains(part), "{part} in {detail}");
    }
    let suggestion = &card["suggestions"][0];
    assert_eq!(card["selectionBehavior"], "at-most-one");
    let actions = suggestion["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 2);
    assert_eq!(actions[0]["resource"]["resourceType"], "Flag");
    assert_eq!(actions[1]["resource"]["resourceType"], "CarePlan");
    assert_eq!(
        actions[0]["resource"]["identifier"][0]["value"],
        format!("flag-{patient}"),
        "the write-back's business identifier"
    );
    // The hook names no FHIR server: whose record the service's own server would show under
    // this id is not known, so the card links to no view.
    assert!(card.get("links").is_none(), "{card}");
    let flag_id = actions[0]["resource"]["id"].as_str().unwrap();
    assert!(
        actions[1]["resource"]["supportingInfo"]
            .to_string()
            .contains(&format!("Flag/{flag_id}")),
        "{}",
        actions[1]["resource"]
    );

    // Feedback on the card is taken.
    let feedback = json!({"feedback": [{
        "card": card["uuid"],
        "outcome": "overridden",
        "overrideReason": {"reason": {"code": "already-addressed", "system": "urn:trdscreen:cds:override-reason"}},
        "outcomeTimestamp": "2026-12-05T10:00:00Z",
    }]});
    let token = ehr.token(&cds, "trd-patient-view");
    let (status, _) = cds
        .post("trd-patient-view/feedback", Some(&token), &feedback)
        .await;
    assert_eq!(status, 200);
    // The card, the feedback and the record's parts are counted.
    let cards = r#"trdscreen_cds_cards_total{indicator="critical",service="trd-patient-view"}"#;
    assert_eq!(cds.metric(cards).await, 1.0);
    let overridden = r#"trdscreen_cds_feedback_total{outcome="overridden",reason="already-addressed",service="trd-patient-view"}"#;
    assert_eq!(cds.metric(overridden).await, 1.0);
    let prefetched = r#"trdscreen_cds_record_parts_total{source="prefetch"}"#;
    assert_eq!(
        cds.metric(prefetched).await,
        6.0,
        "the Patient and the five searches"
    );

    // A patient who does not screen positive gets no card.
    let clear = scenario("not-applicable-no-antidepressant", to_today());
    let body = request(
        "patient-view",
        clear[0]["id"].as_str().unwrap(),
        json!({}),
        Some(prefetch(&clear)),
    );
    let (status, answer) = cds.hook(&ehr, "trd-patient-view", &body).await;
    assert_eq!((status, answer["cards"].clone()), (200, json!([])));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn malformed_prefetch_is_a_400_in_fixed_words() {
    let dir = scratch("pv-malformed");
    let ehr = Ehr::start(&dir).await;
    let cds = Cds::start(&ehr, &[], &dir).await;
    let (patient, resources) = met_patient();
    for (key, bad) in [
        (
            "observations",
            json!({"resourceType": "Patient", "id": "<script>"}),
        ),
        ("conditions", json!([1, 2, 3])),
        (
            "patient",
            json!({"resourceType": "Patient", "id": "someone-else"}),
        ),
    ] {
        let mut p = prefetch(&resources);
        p[key] = bad;
        let body = request("patient-view", &patient, json!({}), Some(p));
        let (status, answer) = cds.hook(&ehr, "trd-patient-view", &body).await;
        assert_eq!(status, 400, "{key}: {answer}");
        assert!(!answer.to_string().contains("<script>"));
    }
    let (status, _) = cds
        .hook(&ehr, "trd-patient-view", &json!({"hook": "patient-view"}))
        .await;
    assert_eq!(status, 400);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn without_prefetch_the_record_is_read_from_the_fhir_server_and_a_failing_one_is_a_412() {
    let Some(fhir_url) = service::fhir_env("TRDSCREEN_TEST_FHIR_URL") else {
        return;
    };
    let fhir = Fhir::plain();
    let (patient, resources) = met_patient();
    for r in &resources {
        fhir.put(r).await;
    }
    let dir = scratch("pv-fallback");
    let ehr = Ehr::start(&dir).await;
    let down = "http://127.0.0.1:9/fhir";
    // Audited to the same server, under a name of this test's own.
    let name = unique_prefix("trdscreen-cds-audit");
    let audit = format!(
        "[audit]\nbase_url = \"{fhir_url}\"\nspill_dir = \"{}\"\nservice_name = \"{name}\"",
        dir.join("spill").display()
    );
    // The service's own FHIR server is the same one: the clinician view reads it.
    let cds = Cds::start_with(&ehr, &[&fhir_url, down], &dir, &audit, Some(&fhir_url)).await;
    let call = |server: &str| without_prefetch(&patient, server);
    let (status, answer) = cds.hook(&ehr, "trd-patient-view", &call(&fhir_url)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(topics(&answer), ["trd-screening"]);
    let card = only_card(&answer);
    assert!(
        card["suggestions"][0]["actions"].is_array(),
        "the Flag was searched: {card}"
    );

    // Carrying out the suggestion twice leaves one Flag and one CarePlan on the server.
    for _ in 0..2 {
        for action in card["suggestions"][0]["actions"].as_array().unwrap() {
            assert_eq!(action["type"], "update");
            fhir.put(&action["resource"]).await;
        }
    }
    assert_eq!(fhir.flags(&patient).await.len(), 1);
    assert_eq!(fhir.care_plans(&patient).await.len(), 1);
    // The card links to the clinician view: a page of this patient's courses, for a short while;
    // an altered link is a bare 403.
    let link = card["links"][0]["url"]
        .as_str()
        .expect("a link to the view");
    assert!(
        link.starts_with(&cds.base.replace("/cds-services", "/view/")),
        "{link}"
    );
    assert!(!link.contains(&patient), "no patient id in the URL: {link}");
    let page = cds.http.get(link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for part in ["<svg", "sertraline", "venlafaxine"] {
        assert!(html.contains(part), "{part}");
    }
    let mut altered = link.to_owned();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    let refused = cds.http.get(&altered).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().is_empty());

    // The hook is in the audit trail: the EHR's identity, its hookInstance, the patient read.
    let events = crate::audit::wait_for_events(&fhir, &patient, &name, 1).await;
    let event = events
        .iter()
        .find(|e| e["agent"][0]["who"]["identifier"]["system"] == ehr.issuer.as_str())
        .expect("the hook's event");
    assert_eq!(
        event["agent"][0]["who"]["identifier"]["system"],
        ehr.issuer.as_str()
    );
    assert_eq!(
        event["agent"][0]["who"]["identifier"]["value"],
        "ehr-client"
    );
    assert_eq!(
        crate::audit::request_id(event).as_deref(),
        Some("d1577c69-dfbe-44ad-ba6d-3e05e953b2ea")
    );
    assert_eq!(event["action"], "R");
    // Asked again, the card now updates the Flag and CarePlan the chart holds.
    let (_, again) = cds.hook(&ehr, "trd-patient-view", &call(&fhir_url)).await;
    let actions = &only_card(&again)["suggestions"][0]["actions"];
    assert_eq!(
        actions[0]["resource"]["id"],
        card["suggestions"][0]["actions"][0]["resource"]["id"]
    );

    // The same server under a name not on cds.fhir_servers is not asked.
    let not_allowed = fhir_url.replace("127.0.0.1", "localhost");
    for server in [down, not_allowed.as_str()] {
        let (status, answer) = cds.hook(&ehr, "trd-patient-view", &call(server)).await;
        assert_eq!(status, 412, "{server}: {answer}");
        assert!(!answer.to_string().contains("127.0.0.1"));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_prefetched_flag_search_that_holds_another_patients_flag_is_not_taken_for_ours() {
    let dir = scratch("pv-other-flag");
    let ehr = Ehr::start(&dir).await;
    let cds = Cds::start(&ehr, &[], &dir).await;
    let (patient, resources) = met_patient();
    let mut prefetched = prefetch(&resources);
    // A server that ignored the identifier parameter answers with whatever Flag it holds.
    let others = json!({
        "resourceType": "Flag",
        "id": "someone-elses",
        "status": "active",
        "identifier": [{"system": "urn:trdscreen:screening", "value": "flag-someone-else"}],
        "subject": {"reference": "Patient/someone-else"},
        "code": {"text": "Treatment-resistant depression criteria met"}
    });
    prefetched["screeningFlag"] = super::searchset(&[&others]);
    let body = request("patient-view", &patient, json!({}), Some(prefetched));

    let (status, answer) = cds.hook(&ehr, "trd-patient-view", &body).await;

    assert_eq!(status, 200, "{answer}");
    let actions = only_card(&answer)["suggestions"][0]["actions"]
        .as_array()
        .expect("the suggestion is made: the chart holds no Flag of this patient's")
        .clone();
    let flag = &actions[0]["resource"];
    assert_eq!(flag["resourceType"], "Flag");
    assert_ne!(flag["id"], "someone-elses", "{flag}");
    assert_eq!(flag["subject"]["reference"], format!("Patient/{patient}"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_hook_that_runs_out_of_time_on_the_ehrs_server_is_still_in_the_audit_trail() {
    let Some(fhir_url) = service::fhir_env("TRDSCREEN_TEST_FHIR_URL") else {
        return;
    };
    let fhir = Fhir::plain();
    // The EHR's server takes the connection and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/fhir", silent.local_addr().unwrap());
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let dir = scratch("pv-timeout");
    let ehr = Ehr::start(&dir).await;
    let name = unique_prefix("trdscreen-cds-timeout");
    let settings = format!(
        "call_timeout_secs = 1\n[audit]\nbase_url = \"{fhir_url}\"\nspill_dir = \"{}\"\nservice_name = \"{name}\"",
        dir.join("spill").display()
    );
    let cds = Cds::start_with(&ehr, &[&silent_url], &dir, &settings, None).await;
    let (patient, _) = met_patient();
    let body = without_prefetch(&patient, &silent_url);

    let (status, answer) = cds.hook(&ehr, "trd-patient-view", &body).await;

    assert_eq!(status, 412, "{answer}");
    let events = crate::audit::wait_for_events(&fhir, &patient, &name, 1).await;
    assert!(
        events.iter().any(
            |e| e["agent"][0]["who"]["identifier"]["system"] == ehr.issuer.as_str()
                && e["outcome"] != "0"
        ),
        "a failed read of the patient is recorded: {events:#?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
