//! order-select and order-sign: a drug being ordered gets a card for each hint that affects it
//! (the knowledge base's `affects` and `[[treatment]]`), one story per hint, and none when nothing
//! applies.

use super::{Cds, Ehr, request, scenario, scratch, to_today, today, topics};
use serde_json::{Value, json};
use trdscreen::date::Date;

/// A draft order of `text` (`concept`), `mg` `per_day` times a day, for `patient`.
fn draft(id: &str, concept: Value, mg: u32, per_day: u32) -> Value {
    json!({
        "resourceType": "MedicationRequest",
        "id": id,
        "status": "draft",
        "intent": "proposal",
        "medicationCodeableConcept": concept,
        "dosageInstruction": [{
            "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": mg, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}],
        }],
    })
}

fn text(name: &str) -> Value {
    json!({"text": name})
}

/// The record without the resources of `drop` (the drug the story now orders).
fn without(mut resources: Vec<Value>, drop: &[&str]) -> Vec<Value> {
    resources.retain(|r| !drop.contains(&r["id"].as_str().unwrap()));
    resources
}

/// Orders `orders` through `hook` for the patient of `resources` (all prefetched); the answer.
async fn order(hook: &str, resources: &[Value], orders: &[Value]) -> Value {
    let (status, answer) = order_answered(hook, resources, orders).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// [`order`]'s call, with the answer's status: for orders the service refuses.
async fn order_answered(hook: &str, resources: &[Value], orders: &[Value]) -> (u16, Value) {
    let dir = scratch("orders");
    let ehr = Ehr::start(&dir).await;
    let cds = Cds::start(&ehr, &[], &dir).await;
    let patient = super::patient_id(resources);
    let entries: Vec<Value> = orders.iter().map(|o| json!({"resource": o})).collect();
    let selections: Vec<String> = orders
        .iter()
        .filter_map(|o| o["id"].as_str())
        .map(|id| format!("MedicationRequest/{id}"))
        .collect();
    let mut context =
        json!({"draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": entries}});
    if hook == "order-select" {
        context["selections"] = json!(selections);
    }
    let service = format!("trd-{hook}");
    let (status, answer) = cds
        .hook(
            &ehr,
            &service,
            &request(hook, &patient, context, Some(super::prefetch(resources))),
        )
        .await;
    std::fs::remove_dir_all(&dir).unwrap();
    (status, answer)
}

fn card<'a>(answer: &'a Value, topic: &str) -> &'a Value {
    answer["cards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["source"]["topic"]["code"] == topic)
        .unwrap_or_else(|| panic!("no {topic} card in {answer}"))
}

#[tokio::test]
async fn phenelzine_ordered_20_days_after_fluoxetine_ended_is_a_critical_washout_card_that_says_when_it_ends()
 {
    // Fluoxetine stopped on 2025-04-03 in the scenario: moved to 20 days ago.
    let fluoxetine_end = Date::parse("2025-04-03").unwrap();
    let shift = fluoxetine_end.days_until(today().plus_days(-20));
    let record = without(
        scenario("hint-maoi-washout-fluoxetine-28-days", shift),
        &["mr-phenelzine"],
    );
    let phenelzine = draft(
        "order-phenelzine",
        text("phenelzine 15 MG Oral Tablet"),
        15,
        3,
    );
    let answer = order("order-select", &record, &[phenelzine]).await;
    let washout = card(&answer, "maoi-washout");
    assert_eq!(washout["indicator"], "critical");
    assert!(
        washout["summary"]
            .as_str()
            .unwrap()
            .starts_with("Phenelzine: ")
    );
    assert!(washout["summary"].as_str().unwrap().chars().count() <= 140);
    // Fluoxetine's washout is five weeks: 35 days from its end, 15 days from today.
    let ends = today().plus_days(15).to_string();
    assert!(
        washout["detail"].as_str().unwrap().contains(&ends),
        "{}",
        washout["detail"]
    );
    assert!(
        washout["detail"]
            .as_str()
            .unwrap()
            .contains("MedicationStatement/ms-fluoxetine")
    );
}

#[tokio::test]
async fn an_maoi_ordered_brings_the_tyramine_diet_card_and_nothing_else_for_an_otherwise_clear_record()
 {
    let record = scenario("not-applicable-no-antidepressant", to_today());
    let phenelzine = draft(
        "order-phenelzine",
        text("phenelzine 15 MG Oral Tablet"),
        15,
        3,
    );
    let answer = order("order-sign", &record, &[phenelzine]).await;
    assert_eq!(topics(&answer), ["maoi-diet"]);
    assert_eq!(card(&answer, "maoi-diet")["indicator"], "warning");
}

#[tokio::test]
async fn esketamine_ordered_with_a_blood_pressure_of_150_over_95_is_cautioned() {
    let record = scenario("hint-bp-150-95-uncontrolled", to_today());
    let esketamine = draft(
        "order-esketamine",
        text("esketamine 28 MG nasal spray"),
        56,
        1,
    );
    let answer = order("order-select", &record, &[esketamine]).await;
    let bp = card(&answer, "uncontrolled-hypertension");
    assert_eq!(bp["indicator"], "warning");
    assert!(bp["summary"].as_str().unwrap().starts_with("Esketamine: "));
}

#[tokio::test]
async fn esketamine_ordered_for_a_patient_with_an_aortic_aneurysm_is_a_critical_card() {
    let record = scenario("hint-aneurysm-esketamine-contraindicated", to_today());
    let esketamine = draft(
        "order-esketamine",
        text("esketamine 28 MG nasal spray"),
        56,
        1,
    );
    let answer = order("order-sign", &record, &[esketamine]).await;
    assert_eq!(
        card(&answer, "vascular-contraindication")["indicator"],
        "critical"
    );
}

#[tokio::test]
async fn bupropion_ordered_for_a_patient_with_epilepsy_is_cautioned() {
    let record = scenario("hint-lamotrigine-with-epilepsy", to_today());
    let bupropion = draft(
        "order-bupropion",
        text("bupropion 150 MG Extended Release Oral Tablet"),
        150,
        1,
    );
    let answer = order("order-select", &record, &[bupropion]).await;
    assert_eq!(card(&answer, "seizure-disorder")["indicator"], "warning");
    assert!(
        card(&answer, "seizure-disorder")["summary"]
            .as_str()
            .unwrap()
            .starts_with("Bupropion: ")
    );
}

/// The lithium of a scenario, now ordered rather than taken.
fn lithium() -> Value {
    draft(
        "order-lithium",
        json!({"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "6448", "display": "lithium"}], "text": "lithium carbonate 300 mg capsule"}),
        300,
        2,
    )
}

#[tokio::test]
async fn lithium_ordered_with_an_egfr_of_52_is_cautioned_for_the_kidneys() {
    let record = without(
        scenario("hint-lithium-egfr-52", to_today()),
        &["ms-lithium"],
    );
    let answer = order("order-select", &record, &[lithium()]).await;
    let renal = card(&answer, "lithium-renal");
    assert!(renal["summary"].as_str().unwrap().starts_with("Lithium: "));
}

#[tokio::test]
async fn lithium_ordered_beside_ibuprofen_is_cautioned() {
    let record = without(
        scenario("hint-lithium-ibuprofen", to_today()),
        &["ms-lithium"],
    );
    let answer = order("order-sign", &record, &[lithium()]).await;
    assert!(
        card(&answer, "lithium-renal")["detail"]
            .as_str()
            .unwrap()
            .contains("MedicationRequest/mr-ibuprofen")
    );
}

#[tokio::test]
async fn an_antidepressant_ordered_for_a_patient_with_bipolar_ii_disorder_is_cautioned() {
    let record = scenario("hint-bipolar-diagnosis-code", to_today());
    let sertraline = draft(
        "order-sertraline",
        text("sertraline 50 MG Oral Tablet"),
        50,
        1,
    );
    let answer = order("order-select", &record, &[sertraline]).await;
    assert_eq!(card(&answer, "bipolar-spectrum")["indicator"], "warning");
}

#[tokio::test]
async fn an_order_that_no_hint_affects_gets_no_card() {
    let record = scenario("not-applicable-no-antidepressant", to_today());
    let sertraline = draft(
        "order-sertraline",
        text("sertraline 50 MG Oral Tablet"),
        50,
        1,
    );
    let answer = order("order-select", &record, std::slice::from_ref(&sertraline)).await;
    assert_eq!(answer["cards"], json!([]));
    let answer = order("order-sign", &record, &[sertraline]).await;
    assert_eq!(answer["cards"], json!([]));
}

#[tokio::test]
async fn a_hint_that_does_not_affect_the_drug_ordered_gets_no_card() {
    // Epilepsy on record: the seizure hint fires, but it affects bupropion, rTMS and ECT, not
    // sertraline.
    let record = scenario("hint-lamotrigine-with-epilepsy", to_today());
    let sertraline = draft(
        "order-sertraline",
        text("sertraline 50 MG Oral Tablet"),
        50,
        1,
    );
    let answer = order("order-select", &record, &[sertraline]).await;
    assert!(
        !topics(&answer).contains(&"seizure-disorder".to_owned()),
        "{answer}"
    );
}

#[tokio::test]
async fn a_draft_order_that_is_an_array_is_a_400_not_a_dropped_connection() {
    let resources = scenario("not-applicable-no-antidepressant", to_today());
    // A JSON array reads as a struct's fields in order: its "resourceType" looks right.
    let order = json!(["MedicationRequest", null]);
    let (status, answer) = order_answered("order-sign", &resources, &[order]).await;
    assert_eq!(status, 400, "{answer}");
}

#[tokio::test]
async fn a_draft_order_naming_a_medication_the_prefetch_lacks_is_a_412_not_an_empty_answer() {
    let resources = scenario("not-applicable-no-antidepressant", to_today());
    // Which drug this is, only its Medication would say; no FHIR server may be asked.
    let mut order = draft("by-reference", json!(null), 15, 3);
    order
        .as_object_mut()
        .unwrap()
        .remove("medicationCodeableConcept");
    order["medicationReference"] = json!({"reference": "Medication/not-prefetched"});
    let (status, answer) = order_answered("order-sign", &resources, &[order]).await;
    assert_eq!(status, 412, "{answer}");
}
