//! Screening-rules section 2: every antidepressant is recognised by its RxNorm ingredient code, by
//! product text and by brand; combinations count for each ingredient; unknown drugs are not trials.

mod common;
use common::*;
use serde_json::json;
use trdscreen_core::knowledge::{Knowledge, Role};

fn ingredients_of(medication: serde_json::Value) -> Vec<String> {
    // 28 days, so no dose subtlety matters; a high enough dose that no hypnotic limit applies.
    let a = screen(
        vec![order("mr1", medication, json!(300), "mg", "2024-01-01", 28)],
        "2024-06-01",
    );
    a.trials.into_iter().map(|t| t.ingredient).collect()
}

#[test]
fn brands_named_in_the_rules_map_to_their_ingredients() {
    let table = [
        ("Celexa", "citalopram"),
        ("Lexapro", "escitalopram"),
        ("Prozac", "fluoxetine"),
        ("Paxil", "paroxetine"),
        ("Zoloft", "sertraline"),
        ("Luvox", "fluvoxamine"),
        ("Effexor XR", "venlafaxine"),
        ("Pristiq", "desvenlafaxine"),
        ("Cymbalta", "duloxetine"),
        ("Fetzima", "levomilnacipran"),
        ("Trintellix", "vortioxetine"),
        ("Viibryd", "vilazodone"),
        ("Desyrel", "trazodone"),
        ("Remeron", "mirtazapine"),
        ("Wellbutrin XL", "bupropion"),
        ("Nardil", "phenelzine"),
        ("Parnate", "tranylcypromine"),
        ("Marplan", "isocarboxazid"),
        ("Abilify", "aripiprazole"),
        ("Rexulti", "brexpiprazole"),
        ("Vraylar", "cariprazine"),
        ("Seroquel XR", "quetiapine"),
        ("Zyprexa", "olanzapine"),
        ("Lithobid", "lithium"),
        ("Cytomel", "liothyronine"),
    ];
    for (brand, ingredient) in table {
        assert_eq!(
            ingredients_of(text(&format!("{brand} 150 mg tablet"))),
            vec![ingredient],
            "{brand}"
        );
    }
}

#[test]
fn combination_brands_count_for_each_ingredient() {
    let mut symbyax = ingredients_of(text("Symbyax 6 mg/25 mg capsule"));
    symbyax.sort();
    assert_eq!(symbyax, vec!["fluoxetine", "olanzapine"]);
    assert_eq!(
        ingredients_of(text("Auvelity 45 mg/105 mg tablet")),
        vec!["bupropion"],
        "dextromethorphan is not a trial"
    );
    let mut by_text = ingredients_of(text("olanzapine 6 MG / fluoxetine 25 MG Oral Capsule"));
    by_text.sort();
    assert_eq!(by_text, vec!["fluoxetine", "olanzapine"]);
}

#[test]
fn every_antidepressant_is_recognised_by_code_by_product_text_and_by_brand() {
    let k = Knowledge::embedded();
    let drugs = k.drugs.iter().filter(|d| d.role == Role::Antidepressant);
    let mut checked = 0;
    for d in drugs {
        // selegiline counts only as a transdermal system.
        let form = if d.required_route.is_some() {
            "0.25 MG/HR Transdermal System"
        } else {
            "50 MG Oral Tablet"
        };
        if let Some(code) = &d.rxnorm {
            if d.required_route.is_some() {
                // The ingredient code alone cannot show the route (oral selegiline is a Parkinson drug).
                let a = screen(
                    vec![order(
                        "mr1",
                        rxnorm(code, ""),
                        json!(6),
                        "mg",
                        "2024-01-01",
                        28,
                    )],
                    "2024-06-01",
                );
                assert!(a.trials.is_empty(), "{} by bare code", d.name);
                assert_eq!(diagnostic_kinds(&a), vec!["route-excluded"]);
                assert_eq!(
                    ingredients_of(rxnorm(code, form)),
                    vec![d.name.clone()],
                    "{} by RxNorm {code} with its form",
                    d.name
                );
            } else {
                assert_eq!(
                    ingredients_of(rxnorm(code, "")),
                    vec![d.name.clone()],
                    "{} by RxNorm {code}",
                    d.name
                );
            }
        }
        assert_eq!(
            ingredients_of(text(&format!("{} {form}", d.name))),
            vec![d.name.clone()],
            "{} by product text",
            d.name
        );
        assert_eq!(
            ingredients_of(rxnorm(
                "999999999",
                &format!("{} {form}", d.name.to_uppercase())
            )),
            vec![d.name.clone()],
            "{} by display",
            d.name
        );
        checked += 1;
    }
    assert!(
        checked >= 30,
        "the knowledge base lists the antidepressants of antidepressants.json"
    );

    // By brand: every brand drugs.toml gives an antidepressant names that ingredient and no other.
    let file: toml::Value = toml::from_str(include_str!("../../../knowledge/drugs.toml")).unwrap();
    let mut brands = 0;
    for drug in file["drug"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["role"].as_str() == Some("antidepressant"))
    {
        let name = drug["name"].as_str().unwrap();
        for brand in drug
            .get("brands")
            .and_then(|b| b.as_array())
            .into_iter()
            .flatten()
        {
            let brand = brand.as_str().unwrap();
            assert_eq!(
                ingredients_of(text(&format!("{brand} tablet"))),
                vec![name.to_owned()],
                "{name} by brand {brand}"
            );
            brands += 1;
        }
    }
    assert!(brands >= 30, "antidepressant brands checked: {brands}");
}

#[test]
fn names_match_whole_words_only() {
    assert_eq!(
        ingredients_of(text("desvenlafaxine 50 MG")),
        vec!["desvenlafaxine"]
    );
    assert!(ingredients_of(text("Sertralinex 50 MG")).is_empty());
    assert!(ingredients_of(text("atorvastatin 40 MG Oral Tablet")).is_empty());
}

#[test]
fn an_atc_code_identifies_the_drug_when_nothing_else_does() {
    let atc = json!({"coding": [{"system": "http://www.whocc.no/atc", "code": "N06AB06"}]});
    assert_eq!(ingredients_of(atc), vec!["sertraline"]);
    let unlisted = json!({"coding": [{"system": "http://www.whocc.no/atc", "code": "N06AX99"}]});
    let a = screen(
        vec![order("mr1", unlisted, json!(10), "mg", "2024-01-01", 60)],
        "2024-06-01",
    );
    assert!(a.trials.is_empty());
    assert_eq!(diagnostic_kinds(&a), vec!["unlisted-antidepressant"]);
}

// ---------------------------------------------------------------------------------------------
// Product codes (SCD): EHRs send them far more often than ingredient codes, often without text.
// ---------------------------------------------------------------------------------------------

fn typical_patient() -> serde_json::Value {
    serde_json::from_str(include_str!("../../../tests/fixtures/typical-patient.json")).unwrap()
}

fn screen_fixture(bundle: &serde_json::Value) -> trdscreen_core::screening::Assessment {
    let record = trdscreen_core::fhir::read_patient_bundle(&bundle.to_string()).unwrap();
    trdscreen_core::screening::evaluate(
        &record,
        trdscreen_core::date::Date::parse("2025-06-01").unwrap(),
        &Knowledge::embedded(),
    )
}

fn resource_mut<'b>(bundle: &'b mut serde_json::Value, id: &str) -> &'b mut serde_json::Value {
    bundle["entry"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .map(|e| &mut e["resource"])
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("{id} is in the fixture"))
}

fn kinds_for<'a>(a: &'a trdscreen_core::screening::Assessment, resource: &str) -> Vec<&'a str> {
    a.diagnostics
        .iter()
        .filter(|d| d.resource == resource)
        .map(|d| d.kind.as_str())
        .collect()
}

#[test]
fn rxnorm_product_codes_without_text_are_recognised_not_dropped() {
    // Issue 16, defect 2: the typical patient's antidepressant orders with their RxNorm SCD codes
    // (sertraline 312941 and 312938, venlafaxine 313585 and 313581, trazodone 856377) and no display or
    // text at all. The codes alone must give the same screening: MET, two failed adequate trials.
    let mut bundle = typical_patient();
    let orders = [
        "mr-sertraline-50",
        "mr-sertraline-100",
        "mr-venlafaxine-xr-75",
        "mr-venlafaxine-xr-150-a",
        "mr-venlafaxine-xr-150-b",
        "mr-venlafaxine-xr-150-c",
        "mr-trazodone-50",
    ];
    for id in orders {
        let concept = &mut resource_mut(&mut bundle, id)["medicationCodeableConcept"];
        concept.as_object_mut().unwrap().remove("text");
        for coding in concept["coding"].as_array_mut().unwrap() {
            coding.as_object_mut().unwrap().remove("display");
            assert!(
                coding["code"].as_str().unwrap().len() >= 6,
                "{id}: a product code"
            );
        }
    }
    let a = screen_fixture(&bundle);
    assert_eq!(
        a.status,
        trdscreen_core::screening::TrdStatus::Met,
        "{a:#?}"
    );
    assert_eq!(a.failed_adequate_trials, 2);
    let sertraline = a
        .trials
        .iter()
        .find(|t| t.ingredient == "sertraline")
        .unwrap();
    assert_eq!(
        sertraline.daily_dose_mg,
        Some(100.0),
        "the strength comes from the product"
    );
    let venlafaxine = a
        .trials
        .iter()
        .find(|t| t.ingredient == "venlafaxine")
        .unwrap();
    assert_eq!(venlafaxine.daily_dose_mg, Some(150.0));
    assert!(
        !a.diagnostics
            .iter()
            .any(|d| d.kind.as_str() == "unknown-code"),
        "{:#?}",
        a.diagnostics
    );
    // Trazodone 50 MG (856377) is still read as hypnotic use, from its product's strength.
    assert_eq!(
        kinds_for(&a, "MedicationRequest/mr-trazodone-50"),
        vec!["hypnotic-dose"]
    );
}

#[test]
fn every_product_maps_to_each_drug_it_contains() {
    let drugs_of = |code: &str| {
        let a = screen(
            vec![order(
                "mr1",
                rxnorm(code, ""),
                json!(1),
                "tablet",
                "2024-01-01",
                60,
            )],
            "2024-06-01",
        );
        let mut drugs: Vec<String> = a.trials.into_iter().map(|t| t.ingredient).collect();
        drugs.sort();
        drugs
    };
    // Combination products count for every ingredient, as their brands do.
    assert_eq!(
        drugs_of("403969"),
        vec!["fluoxetine", "olanzapine"],
        "fluoxetine 25 MG / olanzapine 6 MG"
    );
    assert_eq!(
        drugs_of("2611260"),
        vec!["bupropion"],
        "bupropion 105 MG / dextromethorphan 45 MG: dextromethorphan is not a trial"
    );
    // A transdermal selegiline product shows its route; an oral one is a Parkinson drug.
    assert_eq!(
        drugs_of("865206"),
        vec!["selegiline"],
        "24 HR selegiline 0.25 MG/HR Transdermal System"
    );
    assert!(
        drugs_of("859193").is_empty(),
        "selegiline hydrochloride 5 MG Oral Tablet"
    );

    // Every product of the eCQM Antidepressant Medication value set, by its code alone.
    let k = Knowledge::embedded();
    let table: toml::Value =
        toml::from_str(include_str!("../../../knowledge/products.toml")).unwrap();
    let antidepressant_medication = table["value_set"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["oid"].as_str() == Some("2.16.840.1.113883.3.464.1003.196.11.1530"))
        .expect("the Antidepressant Medication value set leads products.toml");
    let mut checked = 0;
    for product in antidepressant_medication["products"].as_array().unwrap() {
        let code = product["rxnorm"].as_str().unwrap();
        let name = product["name"].as_str().unwrap();
        let Some(trdscreen_core::knowledge::RxnormConcept::Product(p)) = k.rxnorm_concept(code)
        else {
            panic!("{code} is a product");
        };
        let mut listed: Vec<&str> = p.drugs().map(|d| k.drug(d).name.as_str()).collect();
        listed.sort();
        assert!(
            !listed.is_empty(),
            "{code} {name} contains an antidepressant"
        );
        // The RxNorm name names each drug the product is mapped to (derived mechanically, checked).
        let lowered = name.to_lowercase();
        assert!(
            listed.iter().all(|d| lowered.contains(d)),
            "{code} {name}: {listed:?}"
        );
        let recognised = drugs_of(code);
        if recognised.is_empty() {
            // Route-excluded selegiline or a low-dose hypnotic: never a trial at one unit a day.
            assert!(
                name.contains("selegiline")
                    || name.contains("doxepin")
                    || name.contains("trazodone"),
                "{code} {name}"
            );
        } else {
            assert_eq!(recognised, listed, "{code} {name}");
        }
        checked += 1;
    }
    assert_eq!(checked, 178, "the value set's expansion holds 178 codes");
}

#[test]
fn every_tracked_drug_has_product_codes_unless_no_published_value_set_lists_it() {
    // The eCQM value sets the table is derived from list no product of these (a gap said in
    // products.toml and docs/decisions.md): their products are recognised by text or ingredient code.
    let not_in_any_value_set = [
        "agomelatine",
        "lithium",
        "liothyronine",
        "esketamine",
        "ketamine",
        "zuranolone",
    ];
    let k = Knowledge::embedded();
    let table: toml::Value =
        toml::from_str(include_str!("../../../knowledge/products.toml")).unwrap();
    let mut covered = std::collections::BTreeSet::new();
    for set in table["value_set"].as_array().unwrap() {
        for product in set["products"].as_array().unwrap() {
            for drug in product
                .get("drugs")
                .and_then(|d| d.as_array())
                .into_iter()
                .flatten()
            {
                covered.insert(drug.as_str().unwrap().to_owned());
            }
        }
    }
    for d in &k.drugs {
        let name = d.name.as_str();
        assert_eq!(
            covered.contains(name),
            !not_in_any_value_set.contains(&name),
            "{name}: covered by products.toml?"
        );
    }
    assert!(k.product_count() > 4000, "{}", k.product_count());
}

#[test]
fn an_rxnorm_code_the_knowledge_base_does_not_hold_is_named_never_dropped() {
    let diagnostics = |medication: serde_json::Value| {
        let a = screen(
            vec![order("mr1", medication, json!(100), "mg", "2024-01-01", 60)],
            "2024-06-01",
        );
        let trials: Vec<String> = a.trials.iter().map(|t| t.ingredient.clone()).collect();
        let named: Vec<(String, String)> = a
            .diagnostics
            .iter()
            .map(|d| (d.kind.as_str().to_owned(), d.message.clone()))
            .collect();
        (trials, named)
    };
    // No text to fall back on: the code is named.
    let (trials, named) = diagnostics(rxnorm("99999901", ""));
    assert!(trials.is_empty());
    assert_eq!(named.len(), 1, "{named:?}");
    assert_eq!(named[0].0, "unknown-code");
    assert!(
        named[0].1.contains("99999901") && named[0].1.contains("no text"),
        "{named:?}"
    );
    // A brand product (SBD) the value sets leave out: recognised from its text, and named.
    let (trials, named) = diagnostics(rxnorm("208161", "sertraline 100 MG Oral Tablet [Zoloft]"));
    assert_eq!(trials, vec!["sertraline"]);
    assert_eq!(named.len(), 1, "{named:?}");
    assert!(
        named[0].0 == "unknown-code" && named[0].1.contains("recognised from its text"),
        "{named:?}"
    );
    // A code the value sets do not hold whose text names nothing tracked: named too.
    let (trials, named) = diagnostics(rxnorm(
        "99999902",
        "omeprazole 20 MG Delayed Release Oral Capsule",
    ));
    assert!(trials.is_empty());
    assert_eq!(named[0].0, "unknown-code");
    // A product the value sets list and screening does not track (atorvastatin 617310): known, quiet.
    let (trials, named) = diagnostics(rxnorm("617310", ""));
    assert!(trials.is_empty() && named.is_empty(), "{named:?}");
    // What the sender wrote in place of a code is not copied into the message.
    let (_, named) = diagnostics(rxnorm("<b>Jane Doe</b>", ""));
    assert!(
        named[0].0 == "unknown-code" && !named[0].1.contains("Jane"),
        "{named:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// A recognised code decides; the text is read only when no coding is recognised.
// ---------------------------------------------------------------------------------------------

#[test]
fn free_text_does_not_override_a_recognised_code() {
    // Issue 16, defect 3: a lisinopril order (RxNorm 314076) whose text mentions sertraline.
    let mut bundle = typical_patient();
    resource_mut(&mut bundle, "mr-lisinopril-10")["medicationCodeableConcept"]["text"] =
        json!("lisinopril 10 MG (not sertraline)");
    let a = screen_fixture(&bundle);
    let cited = "MedicationRequest/mr-lisinopril-10";
    assert!(
        !a.trials
            .iter()
            .any(|t| t.evidence.iter().any(|e| e == cited)),
        "the lisinopril order is no sertraline evidence: {:#?}",
        a.trials
    );
    assert_eq!(kinds_for(&a, cited), vec!["code-text-conflict"]);
    let conflict = a.diagnostics.iter().find(|d| d.resource == cited).unwrap();
    assert!(
        conflict.message.contains("sertraline") && conflict.message.contains("314076"),
        "{}",
        conflict.message
    );
    assert_eq!(a.status, trdscreen_core::screening::TrdStatus::Met);
}

#[test]
fn a_code_decides_in_referenced_contained_and_ingredient_medications() {
    let lisinopril = json!({"coding": [{"system": RXNORM, "code": "314076"}],
                            "text": "lisinopril 10 MG (not sertraline)"});
    let by_ingredient = json!({
        "code": {"text": "lisinopril 10 MG (not sertraline)"},
        "ingredient": [{"itemCodeableConcept": {"coding": [{"system": RXNORM, "code": "29046", "display": "lisinopril"}]}}]
    });
    let request = |id: &str, medication: serde_json::Value| {
        let mut r = order(id, json!(null), json!(1), "tablet", "2024-01-01", 60);
        let r = r.as_object_mut().unwrap();
        r.remove("medicationCodeableConcept");
        r.extend(medication.as_object().unwrap().clone());
        serde_json::Value::Object(r.clone())
    };
    let medication = |id: &str, body: &serde_json::Value| {
        let mut m = body.as_object().cloned().unwrap_or_default();
        if !m.contains_key("code") {
            m = serde_json::Map::from_iter([("code".to_owned(), body.clone())]);
        }
        m.insert("resourceType".into(), json!("Medication"));
        m.insert("id".into(), json!(id));
        serde_json::Value::Object(m)
    };
    for (case, body) in [("code", &lisinopril), ("ingredient", &by_ingredient)] {
        let referenced = vec![
            medication("med1", body),
            request(
                "mr1",
                json!({"medicationReference": {"reference": "Medication/med1"}}),
            ),
        ];
        let mut contained = request(
            "mr1",
            json!({"medicationReference": {"reference": "#med1"}}),
        );
        contained["contained"] = json!([medication("med1", body)]);
        for (how, resources) in [("referenced", referenced), ("contained", vec![contained])] {
            let a = screen(resources, "2024-06-01");
            assert!(
                a.trials.is_empty(),
                "{case}, {how}: no sertraline trial: {:#?}",
                a.trials
            );
            assert_eq!(
                diagnostic_kinds(&a),
                vec!["code-text-conflict"],
                "{case}, {how}: {:#?}",
                a.diagnostics
            );
        }
    }
}

#[test]
fn a_text_that_gives_another_strength_than_the_product_code_is_named_and_the_code_decides() {
    // 312941 is sertraline 50 MG Oral Tablet; the text says 100 MG.
    let a = screen(
        vec![order(
            "mr1",
            json!({"coding": [{"system": RXNORM, "code": "312941"}], "text": "sertraline 100 MG Oral Tablet"}),
            json!(1),
            "tablet",
            "2024-01-01",
            60,
        )],
        "2024-06-01",
    );
    assert_eq!(a.trials[0].daily_dose_mg, Some(50.0));
    assert_eq!(diagnostic_kinds(&a), vec!["code-text-conflict"]);
}
