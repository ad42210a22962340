//! Screening-rules section 2: every antidepressant is recognised by its RxNorm ingredient code, by
//! product text and by brand; combinations count for each ingredient; unknown drugs are not trials.

mod common;
use common::*;
use serde_json::json;
use trdscreen::knowledge::{Knowledge, Role};

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
    let file: toml::Value = toml::from_str(include_str!("../knowledge/drugs.toml")).unwrap();
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
