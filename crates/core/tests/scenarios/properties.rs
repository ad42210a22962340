//! Invariants of the engine over every clinical story, checked on many generated variants (proptest):
//! reading and evaluating never panic, the same input gives the same output, the order of a Bundle's
//! entries never matters, and resources dated after `as_of` change nothing but the diagnostics.

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Value, json};
use std::sync::LazyLock;
use trdscreen_core::date::Date;
use trdscreen_core::fhir::read_patient_bundle;
use trdscreen_core::knowledge::Knowledge;
use trdscreen_core::screening::evaluate;

/// Every story's Bundle with its evaluation day.
static STORIES: LazyLock<Vec<(Value, Date)>> = LazyLock::new(|| {
    let file: super::File = toml::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/scenarios.toml"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut stories: Vec<(Value, Date)> = file
        .scenario
        .iter()
        .map(|s| {
            let path = std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/fixtures/scenarios"
            ))
            .join(&s.file);
            let text = std::fs::read_to_string(path).unwrap();
            (
                serde_json::from_str(&text).unwrap(),
                Date::parse(&s.as_of).unwrap(),
            )
        })
        .collect();
    let typical = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/typical-patient.json"
    ))
    .unwrap();
    stories.push((
        serde_json::from_str(&typical).unwrap(),
        Date::parse("2025-06-01").unwrap(),
    ));
    stories
});

static KNOWLEDGE: LazyLock<Knowledge> = LazyLock::new(Knowledge::embedded);

/// The assessment as JSON, or the reader's error as text; `None` never happens (a panic fails).
fn screen(bundle: &Value, as_of: Date) -> Result<Value, String> {
    let record = read_patient_bundle(&bundle.to_string()).map_err(|e| e.to_string())?;
    Ok(serde_json::to_value(evaluate(&record, as_of, &KNOWLEDGE)).unwrap())
}

fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"].as_array().cloned().unwrap_or_default()
}

fn with_entries(bundle: &Value, entries: Vec<Value>) -> Value {
    let mut b = bundle.clone();
    b["entry"] = Value::Array(entries);
    b
}

fn story() -> impl Strategy<Value = usize> {
    0..STORIES.len()
}

fn config() -> Config {
    Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(96),
        failure_persistence: None,
        ..Config::default()
    }
}

/// A story with its entries in a random order.
fn shuffled() -> impl Strategy<Value = (usize, Vec<Value>)> {
    story().prop_flat_map(|n| (Just(n), Just(entries(&STORIES[n].0)).prop_shuffle()))
}

fn is_date_text(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 7 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[5].is_ascii_digit()
}

/// Rewrites every date or dateTime in `value` to a day after `as_of`; whether it held one.
fn move_after(value: &mut Value, as_of: Date, offsets: &mut impl Iterator<Item = i32>) -> bool {
    match value {
        Value::String(s) if is_date_text(s) => {
            *s = as_of.plus_days(offsets.next().unwrap_or(1)).to_string();
            true
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |any, v| move_after(v, as_of, offsets) | any),
        Value::Object(fields) => fields
            .values_mut()
            .fold(false, |any, v| move_after(v, as_of, offsets) | any),
        _ => false,
    }
}

/// A random JSON value of the kinds a careless or hostile sender puts where something else belongs.
fn junk() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        Just(json!(1e308)),
        Just(json!(-0.0)),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}([+-][0-9]{2}:[0-9]{2}|Z))?"
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        Just(json!("Patient/p1")),
        Just(json!({"reference": "#"})),
        Just(json!([])),
        Just(json!({})),
    ]
}

/// Replaces the node reached by `path` (indexes taken modulo each level's size) with `with`, or,
/// when `with` is `None`, removes it.
fn mutate(value: &mut Value, path: &[usize], with: Option<Value>) {
    let Some((&step, rest)) = path.split_first() else {
        if let Some(w) = with {
            *value = w;
        }
        return;
    };
    match value {
        Value::Array(items) if !items.is_empty() => {
            let i = step % items.len();
            if rest.is_empty() && with.is_none() {
                items.remove(i);
            } else {
                mutate(&mut items[i], rest, with);
            }
        }
        Value::Object(fields) if !fields.is_empty() => {
            let key = fields.keys().nth(step % fields.len()).unwrap().clone();
            if rest.is_empty() && with.is_none() {
                fields.remove(&key);
            } else {
                mutate(fields.get_mut(&key).unwrap(), rest, with);
            }
        }
        _ => {
            if let Some(w) = with {
                *value = w;
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn reordering_a_bundles_entries_never_changes_the_assessment((n, order) in shuffled()) {
        let (bundle, as_of) = &STORIES[n];
        prop_assert_eq!(screen(&with_entries(bundle, order), *as_of), screen(bundle, *as_of));
    }

    #[test]
    fn the_same_bundle_always_gives_the_same_assessment(n in story()) {
        let (bundle, as_of) = &STORIES[n];
        let record = read_patient_bundle(&bundle.to_string()).unwrap();
        let first = serde_json::to_value(evaluate(&record, *as_of, &KNOWLEDGE)).unwrap();
        for _ in 0..3 {
            let again = read_patient_bundle(&bundle.to_string()).unwrap();
            prop_assert_eq!(&serde_json::to_value(evaluate(&again, *as_of, &KNOWLEDGE)).unwrap(), &first);
        }
    }

    #[test]
    fn resources_dated_after_as_of_change_nothing_but_the_diagnostics(
        n in story(),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 1..6),
        offsets in prop::collection::vec(1i32..800, 16),
    ) {
        let (bundle, as_of) = &STORIES[n];
        let mut all = entries(bundle);
        let mut offsets = offsets.into_iter().cycle();
        let mut added = Vec::new();
        for (copy, pick) in picks.iter().enumerate() {
            let mut entry = pick.get(&entries(bundle)).clone();
            let kind = entry["resource"]["resourceType"].as_str().unwrap_or_default().to_owned();
            if matches!(kind.as_str(), "Patient" | "Medication") {
                continue;
            }
            if !move_after(&mut entry["resource"], *as_of, &mut offsets) {
                continue;
            }
            let id = format!("after-as-of-{copy}");
            entry["resource"]["id"] = Value::from(id.clone());
            if let Some(obj) = entry.as_object_mut() {
                obj.remove("fullUrl");
            }
            added.push(format!("{kind}/{id}"));
            all.push(entry);
        }
        let mut before = screen(bundle, *as_of).unwrap();
        let mut after = screen(&with_entries(bundle, all), *as_of).unwrap();
        let diagnostics_after = after["diagnostics"].take();
        let diagnostics_before = before["diagnostics"].take();
        prop_assert_eq!(&after, &before);
        let new: Vec<&Value> = diagnostics_after
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| !diagnostics_before.as_array().unwrap().contains(d))
            .collect();
        for d in new {
            let resource = d["resource"].as_str().unwrap_or_default();
            prop_assert!(added.iter().any(|a| a == resource), "a diagnostic about another resource: {}", d);
        }
    }

    #[test]
    fn reading_and_evaluating_never_panic_on_damaged_bundles(
        n in story(),
        damage in prop::collection::vec(
            (prop::collection::vec(any::<usize>(), 1..8), prop::option::weighted(0.8, junk())),
            1..6,
        ),
    ) {
        let (bundle, as_of) = &STORIES[n];
        let mut damaged = bundle.clone();
        for (path, with) in damage {
            mutate(&mut damaged, &path, with);
        }
        // Either a reasoned refusal or an assessment: both are fine, a panic is not.
        let _ = screen(&damaged, *as_of);
        let _ = screen(&damaged, Date::parse("1970-01-01").unwrap());
    }
}
