//! Small builders for readable inline Bundles in tests.
#![allow(dead_code)]

use serde_json::{Value, json};
use trdscreen_core::date::Date;
use trdscreen_core::fhir::read_patient_bundle;
use trdscreen_core::knowledge::Knowledge;
use trdscreen_core::screening::{Assessment, evaluate};

pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";

pub fn bundle(resources: Vec<Value>) -> String {
    let mut entries = vec![json!({"resource": {"resourceType": "Patient", "id": "p1"}})];
    entries.extend(resources.into_iter().map(|r| json!({"resource": r})));
    json!({"resourceType": "Bundle", "type": "collection", "entry": entries}).to_string()
}

/// A completed order of `mg` once daily from `start` for `days` days, named by `medication`.
pub fn order(id: &str, medication: Value, mg: Value, unit: &str, start: &str, days: u32) -> Value {
    json!({
        "resourceType": "MedicationRequest", "id": id, "status": "completed", "intent": "order",
        "subject": {"reference": "Patient/p1"}, "authoredOn": start,
        "medicationCodeableConcept": medication,
        "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                                "doseAndRate": [{"doseQuantity": {"value": mg, "unit": unit}}]}],
        "dispenseRequest": {"expectedSupplyDuration": {"value": days, "unit": "days", "code": "d"}}
    })
}

pub fn text(t: &str) -> Value {
    json!({"text": t})
}

pub fn rxnorm(code: &str, display: &str) -> Value {
    json!({"coding": [{"system": RXNORM, "code": code, "display": display}]})
}

pub fn phq9(id: &str, day: &str, value: i64) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
           "subject": {"reference": "Patient/p1"}, "effectiveDateTime": day, "valueInteger": value})
}

pub fn screen(resources: Vec<Value>, as_of: &str) -> Assessment {
    let record = read_patient_bundle(&bundle(resources)).expect("test bundle reads");
    evaluate(&record, Date::parse(as_of).unwrap(), &Knowledge::embedded())
}

pub fn diagnostic_kinds(a: &Assessment) -> Vec<&'static str> {
    a.diagnostics.iter().map(|d| d.kind.as_str()).collect()
}

/// The typical patient's Bundle (`tests/fixtures/typical-patient.json`), which screens MET as of
/// 2025-06-01 with failed trials of sertraline and venlafaxine.
pub fn typical_patient() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/typical-patient.json"
    ))
    .expect("the typical patient's fixture");
    serde_json::from_str(&text).expect("the fixture is JSON")
}

/// The resources of a Bundle whose id starts with `prefix`, to change them.
pub fn resources_mut<'a>(
    bundle: &'a mut Value,
    prefix: &'a str,
) -> impl Iterator<Item = &'a mut Value> {
    bundle["entry"]
        .as_array_mut()
        .expect("entries")
        .iter_mut()
        .map(|e| &mut e["resource"])
        .filter(move |r| r["id"].as_str().is_some_and(|id| id.starts_with(prefix)))
}

/// Reads and screens a Bundle's JSON text.
pub fn screen_text(json: &str, as_of: &str) -> Assessment {
    let record = read_patient_bundle(json).expect("the Bundle reads");
    evaluate(&record, Date::parse(as_of).unwrap(), &Knowledge::embedded())
}

/// The diagnostics of one kind, as `resource: message`.
pub fn diagnostics_of<'a>(
    a: &'a Assessment,
    kind: &str,
) -> Vec<&'a trdscreen_core::fhir::Diagnostic> {
    a.diagnostics
        .iter()
        .filter(|d| d.kind.as_str() == kind)
        .collect()
}
