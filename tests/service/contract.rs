//! The JSON assessment uses the gRPC contract's names: every key and enum value it prints is a field
//! or value of `proto/trdscreen/v1/screening.proto`, and every field of the contract appears.

use prost_types::{DescriptorProto, FileDescriptorSet};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use trdscreen::date::Date;
use trdscreen::fhir::read_patient_bundle;
use trdscreen::knowledge::Knowledge;
use trdscreen::screening::evaluate;

fn contract() -> FileDescriptorSet {
    protox::compile(["proto/trdscreen/v1/screening.proto"], ["proto"])
        .expect("the contract compiles")
}

fn message<'a>(set: &'a FileDescriptorSet, name: &str) -> &'a DescriptorProto {
    set.file
        .iter()
        .flat_map(|f| &f.message_type)
        .find(|m| m.name() == name)
        .unwrap_or_else(|| panic!("message {name}"))
}

fn enum_values(set: &FileDescriptorSet, name: &str) -> BTreeSet<String> {
    let e = set
        .file
        .iter()
        .flat_map(|f| &f.enum_type)
        .find(|e| e.name() == name)
        .unwrap();
    e.value.iter().map(|v| v.name().to_owned()).collect()
}

/// Keys seen per message, across every assessment.
fn collect(value: &Value, message_name: &str, seen: &mut BTreeMap<String, BTreeSet<String>>) {
    let nested = |key: &str| match (message_name, key) {
        ("Assessment", "trials") => Some("TreatmentTrial"),
        ("Assessment", "hints") => Some("Hint"),
        ("Assessment", "staging") => Some("Staging"),
        ("Assessment", "suggestions") => Some("Suggestion"),
        ("Assessment", "reasons") => Some("Reason"),
        ("Assessment", "diagnostics") => Some("Diagnostic"),
        _ => None,
    };
    for (key, v) in value.as_object().unwrap() {
        seen.entry(message_name.to_owned())
            .or_default()
            .insert(key.clone());
        if let Some(inner) = nested(key) {
            match v {
                Value::Array(items) => items.iter().for_each(|i| collect(i, inner, seen)),
                other => collect(other, inner, seen),
            }
        }
    }
}

#[test]
fn json_assessments_use_exactly_the_contract_names() {
    let set = contract();
    let k = Knowledge::embedded();
    let scenarios: toml::Value =
        toml::from_str(&std::fs::read_to_string("tests/fixtures/scenarios.toml").unwrap()).unwrap();
    let mut seen = BTreeMap::new();
    let mut values: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for s in scenarios["scenario"].as_array().unwrap() {
        let text = std::fs::read_to_string(format!(
            "tests/fixtures/scenarios/{}",
            s["file"].as_str().unwrap()
        ))
        .unwrap();
        let as_of = Date::parse(s["as_of"].as_str().unwrap()).unwrap();
        let json = serde_json::to_value(evaluate(&read_patient_bundle(&text).unwrap(), as_of, &k))
            .unwrap();
        collect(&json, "Assessment", &mut seen);
        values
            .entry("TrdStatus")
            .or_default()
            .insert(json["status"].as_str().unwrap().to_owned());
        for t in json["trials"].as_array().unwrap() {
            values
                .entry("TrialOutcome")
                .or_default()
                .insert(t["outcome"].as_str().unwrap().to_owned());
        }
        for h in json["hints"].as_array().unwrap() {
            values
                .entry("Severity")
                .or_default()
                .insert(h["severity"].as_str().unwrap().to_owned());
        }
    }
    for (name, keys) in &seen {
        let fields: BTreeSet<String> = message(&set, name)
            .field
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        assert_eq!(
            keys, &fields,
            "message {name}: JSON keys vs contract fields"
        );
    }
    assert_eq!(
        seen.len(),
        7,
        "every message of the assessment was seen: {:?}",
        seen.keys()
    );
    for (name, used) in values {
        let allowed = enum_values(&set, name);
        assert!(
            used.is_subset(&allowed),
            "{name}: {used:?} not all in {allowed:?}"
        );
    }
}
