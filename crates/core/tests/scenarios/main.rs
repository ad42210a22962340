//! Clinical stories: each Bundle under tests/fixtures/scenarios/ with the outcome screening-rules.md
//! says it must have (tests/fixtures/scenarios.toml, written from the rules, not from the code).

use serde::Deserialize;
use serde_json::Value;
use std::path::Path;
use trdscreen_core::date::Date;
use trdscreen_core::fhir::read_patient_bundle;
use trdscreen_core::knowledge::Knowledge;
use trdscreen_core::screening::evaluate;

#[derive(Deserialize)]
struct File {
    scenario: Vec<Scenario>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    file: String,
    as_of: String,
    story: String,
    status: String,
    failed_adequate_trials: Option<u32>,
    thase_rush_stage: Option<u32>,
    maudsley_score: Option<u32>,
    #[serde(default)]
    maudsley_absent: bool,
    #[serde(default)]
    hints_present: Vec<String>,
    #[serde(default)]
    hints_absent: Vec<String>,
    #[serde(default)]
    suggestions_contraindicated: Vec<String>,
    #[serde(default)]
    diagnostic_kinds: Vec<String>,
    /// Phrases a clinician must read in the reasons, each in one reason.
    #[serde(default)]
    reasons_contain: Vec<String>,
    #[serde(default)]
    trial: Vec<ExpectedTrial>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedTrial {
    ingredient: String,
    outcome: String,
    outcome_inferred: Option<bool>,
    adequate_dose: Option<bool>,
    adequate_duration: Option<bool>,
    counted: Option<bool>,
    augmentation: Option<bool>,
    daily_dose_mg: Option<f64>,
    #[serde(default)]
    dose_unknown: bool,
    /// The course number; 0 for an augmentation agent, which is in none.
    course: Option<u32>,
}

fn check(s: &Scenario, k: &Knowledge) -> Vec<String> {
    let path = Path::new(SCENARIOS).join(&s.file);
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    let record = match read_patient_bundle(&text) {
        Ok(r) => r,
        Err(e) => return vec![format!("does not read: {e}")],
    };
    let a = serde_json::to_value(evaluate(&record, Date::parse(&s.as_of).unwrap(), k)).unwrap();
    let mut errors = Vec::new();
    let mut expect = |what: &str, got: &Value, want: Value| {
        if *got != want {
            errors.push(format!("{what}: got {got}, want {want}"));
        }
    };
    expect("status", &a["status"], Value::from(s.status.clone()));
    if let Some(f) = s.failed_adequate_trials {
        expect(
            "failed_adequate_trials",
            &a["failed_adequate_trials"],
            f.into(),
        );
    }
    if let Some(stage) = s.thase_rush_stage {
        expect(
            "thase_rush_stage",
            &a["staging"]["thase_rush_stage"],
            stage.into(),
        );
    }
    if let Some(m) = s.maudsley_score {
        expect("maudsley_score", &a["staging"]["maudsley_score"], m.into());
    }
    if s.maudsley_absent {
        expect(
            "maudsley_score",
            &a["staging"]["maudsley_score"],
            Value::Null,
        );
    }
    let hints: Vec<&str> = a["hints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["code"].as_str().unwrap())
        .collect();
    for h in &s.hints_present {
        if !hints.contains(&h.as_str()) {
            errors.push(format!("hint {h} should fire (fired: {hints:?})"));
        }
    }
    for h in &s.hints_absent {
        if hints.contains(&h.as_str()) {
            errors.push(format!("hint {h} should not fire"));
        }
    }
    for code in &s.suggestions_contraindicated {
        let marked = a["suggestions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["code"] == code.as_str() && x["contraindicated"] == true);
        if !marked {
            errors.push(format!(
                "suggestion {code} should be listed and marked contraindicated"
            ));
        }
    }
    let kinds: Vec<&str> = a["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    for kind in &s.diagnostic_kinds {
        if !kinds.contains(&kind.as_str()) {
            errors.push(format!("diagnostic {kind} expected (got {kinds:?})"));
        }
    }
    let reasons: Vec<&str> = a["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["text"].as_str().unwrap())
        .collect();
    for phrase in &s.reasons_contain {
        if !reasons.iter().any(|r| r.contains(phrase.as_str())) {
            errors.push(format!(
                "no reason says \"{phrase}\" (reasons: {reasons:#?})"
            ));
        }
    }
    let trials = a["trials"].as_array().unwrap();
    if trials.len() != s.trial.len() {
        let got: Vec<&str> = trials
            .iter()
            .map(|t| t["ingredient"].as_str().unwrap())
            .collect();
        errors.push(format!(
            "{} trials {got:?}, want {}",
            trials.len(),
            s.trial.len()
        ));
    }
    for (n, (got, want)) in trials.iter().zip(&s.trial).enumerate() {
        let mut field = |name: &str, value: Option<Value>| {
            if let Some(v) = value
                && got[name] != v
            {
                errors.push(format!(
                    "trial {n} ({}) {name}: got {}, want {v}",
                    want.ingredient, got[name]
                ));
            }
        };
        field("ingredient", Some(want.ingredient.clone().into()));
        field("outcome", Some(want.outcome.clone().into()));
        field("outcome_inferred", want.outcome_inferred.map(Value::from));
        field("adequate_dose", want.adequate_dose.map(Value::from));
        field("adequate_duration", want.adequate_duration.map(Value::from));
        field("counted", want.counted.map(Value::from));
        field("augmentation", want.augmentation.map(Value::from));
        field(
            "course",
            want.course
                .map(|c| if c == 0 { Value::Null } else { c.into() }),
        );
        if want.dose_unknown {
            field("daily_dose_mg", Some(Value::Null));
        }
        if let Some(mg) = want.daily_dose_mg {
            let got_mg = got["daily_dose_mg"].as_f64();
            if got_mg.is_none_or(|g| (g - mg).abs() > 0.001) {
                errors.push(format!(
                    "trial {n} ({}) daily_dose_mg: got {got_mg:?}, want {mg}",
                    want.ingredient
                ));
            }
        }
    }
    errors
}

/// The stories' Bundles (tests/fixtures at the workspace root, shared with the service's tests).
const SCENARIOS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/scenarios"
);

/// The stories and the outcome the rules give each (tests/fixtures/scenarios.toml).
fn stories() -> File {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/scenarios.toml"
    );
    toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn every_clinical_story_screens_as_the_rules_say() {
    let file: File = stories();
    let k = Knowledge::embedded();
    let mut failures = Vec::new();
    for s in &file.scenario {
        let errors = check(s, &k);
        if !errors.is_empty() {
            failures.push(format!(
                "{} ({})\n    {}",
                s.file,
                s.story,
                errors.join("\n    ")
            ));
        }
    }
    assert!(
        file.scenario.len() >= 40,
        "expected the full set of stories"
    );
    assert!(
        failures.is_empty(),
        "{} of {} stories differ:\n{}",
        failures.len(),
        file.scenario.len(),
        failures.join("\n")
    );
}

#[test]
fn every_fixture_has_a_story() {
    let file: File = stories();
    for entry in std::fs::read_dir(SCENARIOS).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            file.scenario.iter().any(|s| s.file == name),
            "{name} has no expectations in scenarios.toml"
        );
    }
}

mod properties;
