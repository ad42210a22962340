//! Bad input gets a clear error or a named diagnostic, never a panic and never a silent wrong answer.

mod common;
use common::*;
use serde_json::json;
use trdscreen_core::fhir::{BundleError, read_patient_bundle};
use trdscreen_core::screening::TrdStatus;

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

// --- issue 16: hostile and sloppy input ---------------------------------------------------------

const TYPICAL_AS_OF: &str = "2025-06-01";

fn typical_met() -> trdscreen_core::screening::Assessment {
    screen_text(&typical_patient().to_string(), TYPICAL_AS_OF)
}

fn ingredients(a: &trdscreen_core::screening::Assessment) -> Vec<&str> {
    a.trials.iter().map(|t| t.ingredient.as_str()).collect()
}

#[test]
fn do_not_perform_orders_are_never_exposures_and_are_named() {
    assert_eq!(typical_met().status, TrdStatus::Met);
    let mut bundle = typical_patient();
    for prefix in ["mr-sertraline", "mr-venlafaxine"] {
        for order in resources_mut(&mut bundle, prefix) {
            order["doNotPerform"] = json!(true);
        }
    }
    let a = screen_text(&bundle.to_string(), TYPICAL_AS_OF);
    assert_ne!(a.status, TrdStatus::Met);
    assert_eq!(ingredients(&a), vec!["aripiprazole"], "{:?}", a.trials);
    let named: Vec<&str> = diagnostics_of(&a, "modifier")
        .iter()
        .map(|d| d.resource.as_str())
        .collect();
    assert_eq!(named.len(), 6, "every such order is named: {named:?}");
    assert!(named.contains(&"MedicationRequest/mr-sertraline-100"));
}

#[test]
fn a_modifier_extension_on_what_screening_reads_sets_the_resource_aside_and_is_named() {
    let modifier =
        json!([{"url": "http://vendor.example/fhir/not-dispensed", "valueBoolean": true}]);
    let mut bundle = typical_patient();
    for order in resources_mut(&mut bundle, "mr-sertraline") {
        order["modifierExtension"] = modifier.clone();
    }
    for order in resources_mut(&mut bundle, "mr-venlafaxine") {
        order["dosageInstruction"][0]["modifierExtension"] = modifier.clone();
    }
    // On an element screening does not read, a modifier changes nothing screening uses.
    for condition in resources_mut(&mut bundle, "cond-mdd") {
        condition["evidence"] = json!([{"modifierExtension": modifier.clone()}]);
    }
    let a = screen_text(&bundle.to_string(), TYPICAL_AS_OF);
    assert_eq!(ingredients(&a), vec!["aripiprazole"]);
    let modified = diagnostics_of(&a, "modifier");
    assert_eq!(modified.len(), 6, "{modified:?}");
    assert!(
        modified
            .iter()
            .any(|d| d.resource == "MedicationRequest/mr-venlafaxine-xr-75"
                && d.message.contains("on a dosage")),
        "{modified:?}"
    );
    assert!(!modified.iter().any(|d| d.resource.contains("cond-")));
}

#[test]
fn medication_statements_count_only_when_they_say_the_drug_was_taken() {
    let statement = |id: &str, status: Option<&str>| {
        let mut s = json!({
            "resourceType": "MedicationStatement", "id": id,
            "subject": {"reference": "Patient/p1"},
            "medicationCodeableConcept": rxnorm("36437", "sertraline"),
            "effectivePeriod": {"start": "2024-01-01", "end": "2024-04-01"},
            "dosage": [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                        "doseAndRate": [{"doseQuantity": {"value": 100, "unit": "mg"}}]}]
        });
        if let Some(status) = status {
            s["status"] = json!(status);
        }
        s
    };
    for taken in ["active", "completed", "stopped", "on-hold"] {
        let a = screen(vec![statement("ms1", Some(taken))], "2025-01-01");
        assert_eq!(ingredients(&a), vec!["sertraline"], "{taken}");
    }
    for not_taken in [
        Some("intended"),
        Some("not-taken"),
        Some("unknown"),
        Some("entered-in-error"),
        Some("taken-maybe\u{1b}"),
        None,
    ] {
        let a = screen(vec![statement("ms1", not_taken)], "2025-01-01");
        assert!(a.trials.is_empty(), "{not_taken:?}");
        let ignored = diagnostics_of(&a, "ignored-status");
        assert_eq!(ignored.len(), 1, "{not_taken:?}: {:?}", a.diagnostics);
        assert!(!ignored[0].message.contains('\u{1b}'));
    }
}

#[test]
fn bundle_types_that_are_not_a_patients_record_are_refused() {
    for (kind, says) in [
        (
            "document",
            "a Bundle of type document is not a patient's record",
        ),
        (
            "message",
            "a Bundle of type message is not a patient's record",
        ),
        ("transaction-response", "type transaction-response"),
        ("bogus\u{1b}[2J", "a Bundle of type an unknown type"),
    ] {
        let mut bundle = typical_patient();
        bundle["type"] = json!(kind);
        let err = read_patient_bundle(&bundle.to_string()).unwrap_err();
        assert!(err.to_string().contains(says), "{kind}: {err}");
    }
    for kind in ["collection", "searchset", "transaction", "batch", "history"] {
        let mut bundle = typical_patient();
        bundle["type"] = json!(kind);
        let a = screen_text(&bundle.to_string(), TYPICAL_AS_OF);
        assert_eq!(a.status, TrdStatus::Met, "{kind}");
    }
}

#[test]
fn a_history_bundle_reads_the_latest_version_of_each_resource_and_drops_deleted_ones() {
    let mut bundle = typical_patient();
    bundle["type"] = json!("history");
    let entries = bundle["entry"].as_array_mut().unwrap();
    // Newest first, as a history lists them: sertraline 100 was deleted after it was written, and
    // venlafaxine 75's latest version is entered-in-error.
    let at = entries
        .iter()
        .position(|e| e["resource"]["id"] == "mr-sertraline-100")
        .unwrap();
    entries.insert(
        at,
        json!({"request": {"method": "DELETE", "url": "MedicationRequest/mr-sertraline-100"},
               "response": {"status": "204"}}),
    );
    let at = entries
        .iter()
        .position(|e| e["resource"]["id"] == "mr-venlafaxine-xr-75")
        .unwrap();
    let mut retracted = entries[at].clone();
    retracted["resource"]["status"] = json!("entered-in-error");
    entries.insert(at, retracted);
    let a = screen_text(&bundle.to_string(), TYPICAL_AS_OF);
    assert_eq!(
        diagnostics_of(&a, "deleted")
            .iter()
            .map(|d| d.resource.as_str())
            .collect::<Vec<_>>(),
        vec!["MedicationRequest/mr-sertraline-100"]
    );
    let superseded = diagnostics_of(&a, "superseded");
    assert_eq!(superseded.len(), 1, "{:?}", a.diagnostics);
    assert_eq!(
        superseded[0].resource,
        "MedicationRequest/mr-venlafaxine-xr-75"
    );
    let sertraline = a
        .trials
        .iter()
        .find(|t| t.ingredient == "sertraline")
        .unwrap();
    assert!(
        !sertraline
            .evidence
            .contains(&"MedicationRequest/mr-sertraline-100".to_owned())
    );
    let venlafaxine = a
        .trials
        .iter()
        .find(|t| t.ingredient == "venlafaxine")
        .unwrap();
    assert!(
        !venlafaxine
            .evidence
            .contains(&"MedicationRequest/mr-venlafaxine-xr-75".to_owned())
    );
}

#[test]
fn when_one_resource_appears_twice_the_later_version_wins_even_when_listed_first() {
    let mut bundle = typical_patient();
    let entries = bundle["entry"].as_array_mut().unwrap();
    let at = entries
        .iter()
        .position(|e| e["resource"]["id"] == "mr-sertraline-100")
        .unwrap();
    let mut older = entries[at].clone();
    older["resource"]["meta"] = json!({"versionId": "1", "lastUpdated": "2023-07-10T09:00:00Z"});
    let newer = &mut entries[at]["resource"];
    newer["meta"] = json!({"versionId": "2", "lastUpdated": "2023-08-01T09:00:00Z"});
    newer["status"] = json!("entered-in-error");
    // The older version is listed after the newer one: order must not win over lastUpdated.
    entries.insert(at + 1, older);
    let a = screen_text(&bundle.to_string(), TYPICAL_AS_OF);
    let sertraline = a
        .trials
        .iter()
        .find(|t| t.ingredient == "sertraline")
        .unwrap();
    assert!(
        !sertraline
            .evidence
            .contains(&"MedicationRequest/mr-sertraline-100".to_owned())
    );
    assert_eq!(
        diagnostics_of(&a, "superseded").len(),
        1,
        "{:?}",
        a.diagnostics
    );
    assert!(
        diagnostics_of(&a, "ignored-status")
            .iter()
            .any(|d| d.resource == "MedicationRequest/mr-sertraline-100")
    );
}

#[test]
fn a_searchset_page_with_a_next_link_or_a_larger_total_is_refused_as_partial() {
    let mut page = typical_patient();
    page["type"] = json!("searchset");
    page["link"] = json!([{"relation": "self", "url": "https://ehr.example.org/fhir/Patient/typical-patient/$everything"},
                          {"relation": "next", "url": "https://ehr.example.org/fhir?page=2"}]);
    let err = read_patient_bundle(&page.to_string()).unwrap_err();
    assert!(
        err.to_string()
            .contains("part of a larger result (it has a next link)"),
        "{err}"
    );

    let mut counted = typical_patient();
    counted["type"] = json!("searchset");
    counted["total"] = json!(500);
    let err = read_patient_bundle(&counted.to_string()).unwrap_err();
    assert!(err.to_string().contains("its total is 500"), "{err}");

    // Included resources are not among the matches `total` counts.
    let mut whole = typical_patient();
    whole["type"] = json!("searchset");
    let entries = whole["entry"].as_array_mut().unwrap();
    let matches = entries.len() - 1;
    entries[9]["search"] = json!({"mode": "include"});
    whole["total"] = json!(matches);
    assert_eq!(
        screen_text(&whole.to_string(), TYPICAL_AS_OF).status,
        TrdStatus::Met
    );
}

#[test]
fn a_lone_surrogate_in_display_text_keeps_the_resource_and_names_the_element() {
    let text = typical_patient().to_string().replace(
        "\"display\":\"Maria Lindqvist\"",
        "\"display\":\"Maria \\ud800\"",
    );
    assert!(text.contains("\\ud800"));
    let a = screen_text(&text, TYPICAL_AS_OF);
    assert_eq!(a.status, TrdStatus::Met, "{:?}", a.diagnostics);
    assert_eq!(a.failed_adequate_trials, 2);
    let named = diagnostics_of(&a, "invalid-text");
    assert!(named.len() > 20, "{named:?}");
    for d in named {
        assert!(d.resource.contains('/'), "named by Type/id: {d:?}");
        assert!(d.message.contains("subject.display"), "{d:?}");
        assert!(!d.message.contains("Maria"), "no clinical text: {d:?}");
    }
}

#[test]
fn a_lone_surrogate_in_text_that_is_read_is_read_as_the_replacement_character() {
    // The medication's own text: still recognised, and named.
    let mut order = order(
        "mr1",
        text("sertraline 100 MG Oral Tablet PLACEHOLDER"),
        json!(100),
        "mg",
        "2024-01-01",
        90,
    );
    order["note"] = json!([{"text": "fine"}]);
    let json = bundle(vec![order]).replace("PLACEHOLDER", "\\udc00");
    let a = screen_text(&json, "2025-01-01");
    assert_eq!(ingredients(&a), vec!["sertraline"]);
    let named = diagnostics_of(&a, "invalid-text");
    assert_eq!(named.len(), 1);
    assert!(
        named[0].message.contains("medicationCodeableConcept.text"),
        "{named:?}"
    );
}

#[test]
fn supply_durations_that_are_zero_negative_or_huge_are_named_not_a_zero_week_trial() {
    for days in [json!(0), json!(-30), json!(1e308), json!(100_000)] {
        let a = screen(
            vec![
                order(
                    "mr1",
                    text("sertraline 100 MG Oral Tablet"),
                    json!(100),
                    "mg",
                    "2024-01-01",
                    90,
                )
                .tap(|o| o["dispenseRequest"]["expectedSupplyDuration"]["value"] = days.clone()),
            ],
            "2025-01-01",
        );
        let named = diagnostics_of(&a, "bad-duration");
        assert_eq!(named.len(), 1, "{days}: {:?}", a.diagnostics);
        assert!(!named[0].message.contains(&days.to_string()), "{named:?}");
    }
    // Many repeats of a sane supply: bounded too, never an overflow.
    let mut many = order(
        "mr1",
        text("sertraline 100 MG Oral Tablet"),
        json!(100),
        "mg",
        "2024-01-01",
        90,
    );
    many["dispenseRequest"]["numberOfRepeatsAllowed"] = json!(4_294_967_295u64);
    let a = screen(vec![many], "2025-01-01");
    assert_eq!(
        diagnostics_of(&a, "bad-duration").len(),
        1,
        "{:?}",
        a.diagnostics
    );
}

/// `value.tap(|v| ...)`: a changed copy, for readable one-line variations of a builder's result.
trait Tap: Sized {
    fn tap(self, f: impl FnOnce(&mut Self)) -> Self;
}

impl Tap for serde_json::Value {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

#[test]
fn phq9_scores_in_every_value_form_are_range_checked_or_named() {
    let with_value = |id: &str, value: serde_json::Value| {
        let mut o = phq9(id, "2024-06-01", 0);
        o.as_object_mut().unwrap().remove("valueInteger");
        for (k, v) in value.as_object().unwrap() {
            o[k] = v.clone();
        }
        o
    };
    let a = screen(
        vec![
            with_value("int-1000", json!({"valueInteger": 1000})),
            with_value("qty-huge", json!({"valueQuantity": {"value": 1e308}})),
            with_value("qty-frac", json!({"valueQuantity": {"value": 12.5}})),
            with_value("str-word", json!({"valueString": "twelve"})),
            with_value("str-big", json!({"valueString": "99"})),
            with_value(
                "none",
                json!({"valueCodeableConcept": {"text": "moderate"}}),
            ),
            with_value("str-12", json!({"valueString": " 12 "})),
            with_value(
                "qty-14",
                json!({"valueQuantity": {"value": 14, "unit": "{score}"}}),
            ),
        ],
        "2025-01-01",
    );
    let out_of_range: Vec<&str> = diagnostics_of(&a, "score-out-of-range")
        .iter()
        .map(|d| d.resource.as_str())
        .collect();
    assert_eq!(
        out_of_range,
        vec![
            "Observation/int-1000",
            "Observation/qty-frac",
            "Observation/qty-huge",
            "Observation/str-big",
            "Observation/str-word"
        ]
    );
    assert!(
        diagnostics_of(&a, "unreadable")
            .iter()
            .any(|d| d.resource == "Observation/none"),
        "{:?}",
        a.diagnostics
    );
    assert_eq!(a.diagnostics.len(), 6, "{:?}", a.diagnostics);
}

#[test]
fn dates_in_year_zero_or_with_a_25_hour_offset_are_named_bad_dates() {
    let a = screen(
        vec![
            order(
                "mr0",
                text("sertraline 100 MG Oral Tablet"),
                json!(100),
                "mg",
                "0000-01-01",
                90,
            ),
            order(
                "mr25",
                text("sertraline 100 MG Oral Tablet"),
                json!(100),
                "mg",
                "2024-01-01T10:00:00+25:00",
                90,
            ),
            phq9("o0", "0000-06-01", 12),
        ],
        "2025-01-01",
    );
    assert!(a.trials.is_empty());
    assert_eq!(
        diagnostic_kinds(&a),
        vec!["bad-date", "bad-date", "bad-date"]
    );
}

#[test]
fn a_subject_on_another_fhir_server_is_another_patient() {
    let mut bundle = typical_patient();
    for order in resources_mut(&mut bundle, "mr-sertraline") {
        order["subject"]["reference"] = json!("https://other.example/fhir/Patient/typical-patient");
    }
    for order in resources_mut(&mut bundle, "mr-venlafaxine") {
        // The Patient's own server (its fullUrl's base): this patient.
        order["subject"]["reference"] =
            json!("https://ehr.example.org/fhir/Patient/typical-patient");
    }
    let a = screen_text(&bundle.to_string(), TYPICAL_AS_OF);
    assert_eq!(ingredients(&a), vec!["venlafaxine", "aripiprazole"]);
    let other = diagnostics_of(&a, "other-patient");
    assert_eq!(other.len(), 2, "{other:?}");
    assert!(
        other[0].message.contains("another FHIR server"),
        "{other:?}"
    );

    // A Bundle whose Patient names no server: an absolute subject cannot be shown to be theirs.
    let mut no_base = typical_patient();
    no_base["entry"][0]
        .as_object_mut()
        .unwrap()
        .remove("fullUrl");
    for order in resources_mut(&mut no_base, "mr-venlafaxine") {
        order["subject"]["reference"] =
            json!("https://ehr.example.org/fhir/Patient/typical-patient");
    }
    let a = screen_text(&no_base.to_string(), TYPICAL_AS_OF);
    assert!(!ingredients(&a).contains(&"venlafaxine"));
    assert_eq!(diagnostics_of(&a, "other-patient").len(), 4);
}

#[test]
fn a_deceased_patients_ongoing_trial_ends_at_death() {
    let mut bundle = typical_patient();
    bundle["entry"][0]["resource"]["deceasedDateTime"] = json!("2024-12-01T08:00:00-05:00");
    let a = screen_text(&bundle.to_string(), TYPICAL_AS_OF);
    let venlafaxine = a
        .trials
        .iter()
        .find(|t| t.ingredient == "venlafaxine")
        .unwrap();
    assert_eq!(
        venlafaxine.end.as_deref(),
        Some("2024-12-01"),
        "not 'to now'"
    );

    // Died on a day not given: an open exposure's end is unknown, and said so.
    let mut undated = typical_patient();
    undated["entry"][0]["resource"]["deceasedBoolean"] = json!(true);
    let a = screen_text(&undated.to_string(), TYPICAL_AS_OF);
    let venlafaxine = a
        .trials
        .iter()
        .find(|t| t.ingredient == "venlafaxine")
        .unwrap();
    assert!(venlafaxine.end.is_some(), "not ongoing after death");
    assert!(
        diagnostics_of(&a, "missing-date").iter().any(|d| d.resource
            == "MedicationRequest/mr-venlafaxine-xr-150-c"
            && d.message.contains("deceased")),
        "{:?}",
        a.diagnostics
    );

    // Alive as of the evaluation day: nothing changes.
    let mut later = typical_patient();
    later["entry"][0]["resource"]["deceasedDateTime"] = json!("2025-09-01");
    assert_eq!(
        screen_text(&later.to_string(), TYPICAL_AS_OF).trials,
        typical_met().trials
    );
}

#[test]
fn resources_whose_ids_are_not_fhir_ids_are_set_aside_without_echoing_the_id() {
    let forged = "x\u{1b}[2K\rTRD criteria: NOT APPLICABLE\n";
    let mut bundle = typical_patient();
    for (order, id) in
        resources_mut(&mut bundle, "mr-sertraline").zip([forged.to_owned(), "y".repeat(10_000)])
    {
        order["id"] = json!(id);
    }
    let a = screen_text(&bundle.to_string(), TYPICAL_AS_OF);
    let named = diagnostics_of(&a, "invalid-id");
    assert_eq!(named.len(), 2, "{:?}", a.diagnostics);
    for d in &named {
        assert!(d.resource.starts_with("MedicationRequest (entry "), "{d:?}");
        assert!(
            d.message.len() < 200 && !d.message.contains('\u{1b}'),
            "{d:?}"
        );
    }
    let everything = serde_json::to_string(&a).unwrap();
    assert!(!everything.contains("TRD criteria") && !everything.contains("yyyy"));
    assert!(!ingredients(&a).contains(&"sertraline"));
}

#[test]
fn patient_ids_of_dots_alone_are_refused() {
    for id in [".", ".."] {
        let b = json!({"resourceType": "Bundle", "type": "collection",
                       "entry": [{"resource": {"resourceType": "Patient", "id": id}}]});
        let err = read_patient_bundle(&b.to_string()).unwrap_err();
        assert!(matches!(err, BundleError::BadPatientId(_)), "{id}: {err}");
    }
}
