//! Bad input gets a clear error or a named diagnostic, never a panic and never a silent wrong answer.

mod common;
use common::*;
use serde_json::json;
use trdscreen::fhir::{BundleError, read_patient_bundle};
use trdscreen::screening::TrdStatus;

#[test]
fn malformed_json_is_an_error_that_says_so_without_echoing_content() {
    let err =
        read_patient_bundle(r#"{"resourceType": "Bundle", "entry": [ {"resource": "#).unwrap_err();
    assert!(matches!(err, BundleError::NotJson(_)));
    assert!(err.to_string().starts_with("not JSON"), "{err}");
}

#[test]
fn a_resource_that_is_not_a_bundle_is_rejected() {
    let err = read_patient_bundle(r#"{"resourceType": "Patient", "id": "p1"}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "not a FHIR Bundle: its resourceType is not Bundle"
    );
    assert!(matches!(
        read_patient_bundle("[1, 2]"),
        Err(BundleError::NotABundle(_))
    ));
}

#[test]
fn a_bundle_without_a_patient_or_with_two_is_rejected() {
    let none =
        json!({"resourceType": "Bundle", "entry": [{"resource": phq9("o1", "2024-01-01", 12)}]});
    assert_eq!(
        read_patient_bundle(&none.to_string()).unwrap_err(),
        BundleError::NoPatient
    );
    let two = json!({"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "Patient", "id": "a"}}, {"resource": {"resourceType": "Patient", "id": "b"}}]});
    assert_eq!(
        read_patient_bundle(&two.to_string()).unwrap_err(),
        BundleError::MoreThanOnePatient(2)
    );
}

#[test]
fn a_patient_id_that_is_not_a_fhir_id_is_rejected() {
    let b = json!({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient", "id": "../Patient"}}]});
    assert!(matches!(
        read_patient_bundle(&b.to_string()),
        Err(BundleError::BadPatientId(_))
    ));
}

#[test]
fn another_patients_resources_are_set_aside() {
    let mut foreign = order(
        "mr-other",
        text("sertraline 100 MG Oral Tablet"),
        json!(100),
        "mg",
        "2024-01-01",
        90,
    );
    foreign["subject"] = json!({"reference": "Patient/someone-else"});
    let a = screen(vec![foreign], "2025-01-01");
    assert_eq!(a.status, TrdStatus::NotApplicable);
    assert!(a.trials.is_empty());
    assert_eq!(diagnostic_kinds(&a), vec!["other-patient"]);
}

#[test]
fn negative_zero_and_absurd_doses_leave_the_dose_unknown_with_a_diagnostic() {
    for (mg, kind) in [
        (json!(-50), "dose-unknown"),
        (json!(0), "dose-unknown"),
        (json!(50000), "dose-implausible"),
        (json!("lots"), "dose-unknown"),
    ] {
        let a = screen(
            vec![order(
                "mr1",
                text("sertraline 100 MG Oral Tablet"),
                mg.clone(),
                "mg",
                "2024-01-01",
                90,
            )],
            "2025-01-01",
        );
        assert_eq!(a.trials.len(), 1, "{mg}: the exposure is kept");
        assert_eq!(a.trials[0].daily_dose_mg, None, "{mg}");
        assert!(!a.trials[0].adequate_dose, "{mg}");
        assert!(
            diagnostic_kinds(&a).contains(&kind),
            "{mg}: {:?}",
            a.diagnostics
        );
    }
}

#[test]
fn an_unknown_unit_leaves_the_dose_unknown() {
    let a = screen(
        vec![order(
            "mr1",
            text("sertraline 100 MG Oral Tablet"),
            json!(2),
            "spoonfuls",
            "2024-01-01",
            90,
        )],
        "2025-01-01",
    );
    assert_eq!(a.trials[0].daily_dose_mg, None);
    let d = a
        .diagnostics
        .iter()
        .find(|d| d.kind.as_str() == "dose-unknown")
        .unwrap();
    assert!(
        d.message.contains("\"spoonfuls\" is not recognised"),
        "{}",
        d.message
    );
}

#[test]
fn resources_dated_after_the_evaluation_day_are_not_used() {
    let a = screen(
        vec![
            order(
                "mr-future",
                text("sertraline 100 MG Oral Tablet"),
                json!(100),
                "mg",
                "2026-01-01",
                90,
            ),
            phq9("o-future", "2026-02-01", 3),
        ],
        "2025-01-01",
    );
    assert!(a.trials.is_empty());
    assert_eq!(diagnostic_kinds(&a), vec!["after-as-of", "after-as-of"]);
}

#[test]
fn codes_without_a_system_are_not_trusted_and_are_named() {
    let no_system = json!({"coding": [{"code": "36437"}]});
    let mut obs = phq9("o1", "2024-06-01", 20);
    obs["code"] = json!({"coding": [{"code": "44261-6"}]});
    let a = screen(
        vec![
            order("mr1", no_system, json!(100), "mg", "2024-01-01", 90),
            obs,
        ],
        "2025-01-01",
    );
    assert!(a.trials.is_empty(), "a bare code is not read as RxNorm");
    assert_eq!(
        diagnostic_kinds(&a),
        vec!["coding-without-system", "coding-without-system"]
    );
}

#[test]
fn a_resource_of_the_wrong_shape_is_skipped_and_named_while_the_rest_is_read() {
    let mut broken = order(
        "mr-broken",
        text("sertraline"),
        json!(100),
        "mg",
        "2024-01-01",
        90,
    );
    broken["medicationCodeableConcept"] = json!("sertraline");
    let good = order(
        "mr-good",
        text("escitalopram 10 MG Oral Tablet"),
        json!(10),
        "mg",
        "2024-01-01",
        90,
    );
    let a = screen(vec![broken, good], "2025-01-01");
    assert_eq!(a.trials.len(), 1);
    assert_eq!(a.trials[0].ingredient, "escitalopram");
    let d = &a.diagnostics[0];
    assert_eq!(
        (d.resource.as_str(), d.kind.as_str()),
        ("MedicationRequest/mr-broken", "unreadable")
    );
    assert!(
        !d.message.contains("sertraline"),
        "diagnostics name the problem, not the content: {}",
        d.message
    );
}

#[test]
fn unknown_elements_extensions_and_primitive_extensions_do_not_break_reading() {
    let mut mr = order(
        "mr1",
        text("sertraline 100 MG Oral Tablet"),
        json!(100),
        "mg",
        "2024-01-01",
        90,
    );
    mr["_authoredOn"] = json!({"extension": [{"url": "http://example.org/x", "valueString": "y"}]});
    mr["extension"] = json!([{"url": "http://vendor.example/ext", "valueBoolean": true}]);
    mr["vendorSpecificThing"] = json!({"nested": [1, 2, 3]});
    let a = screen(vec![mr], "2025-01-01");
    assert_eq!(a.trials.len(), 1);
    assert_eq!(a.trials[0].daily_dose_mg, Some(100.0));
    assert!(a.diagnostics.is_empty(), "{:?}", a.diagnostics);
}

#[test]
fn a_malformed_date_is_named_and_the_resource_not_used() {
    let a = screen(
        vec![order(
            "mr1",
            text("sertraline 100 MG Oral Tablet"),
            json!(100),
            "mg",
            "last spring",
            90,
        )],
        "2025-01-01",
    );
    assert!(a.trials.is_empty());
    assert_eq!(diagnostic_kinds(&a), vec!["bad-date"]);
}

#[test]
fn scores_outside_the_scale_are_named_and_not_used() {
    let a = screen(
        vec![phq9("o1", "2024-06-01", 31), phq9("o2", "2024-06-02", -1)],
        "2025-01-01",
    );
    assert_eq!(
        diagnostic_kinds(&a),
        vec!["score-out-of-range", "score-out-of-range"]
    );
}
