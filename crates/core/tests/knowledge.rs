//! The knowledge base is data: the embedded files are valid, a site's file replaces the built-in one
//! (`Knowledge::with_overrides`; reading them from a directory is the service's), and a wrong
//! override is refused with a message that names the file and the problem.

mod common;
use common::*;
use serde_json::json;
use trdscreen_core::date::Date;
use trdscreen_core::fhir::read_patient_bundle;
use trdscreen_core::knowledge::{Knowledge, KnowledgeError};
use trdscreen_core::screening::evaluate;

/// The knowledge base with one of the site's files replaced by `text` (as the service reads a
/// directory of override files, `trdscreen::knowledge::load_with_overrides`).
fn with_site_file(file: &str, text: &str) -> Result<Knowledge, KnowledgeError> {
    Knowledge::with_overrides(|name| Ok((name == file).then(|| text.to_owned())))
}

#[test]
fn the_embedded_knowledge_is_valid_and_versioned() {
    let k = Knowledge::embedded();
    assert!(
        k.ruleset_version.starts_with("2026.12.1+"),
        "{}",
        k.ruleset_version
    );
}

#[test]
fn a_site_policy_replaces_the_default_and_changes_the_ruleset_version() {
    let embedded = include_str!("../../../knowledge/policy.toml");
    let four_weeks = embedded.replace("min_duration_weeks = 6", "min_duration_weeks = 4");
    let k = with_site_file("policy.toml", &four_weeks).unwrap();
    assert_ne!(k.ruleset_version, Knowledge::embedded().ruleset_version);
    let resources = vec![order(
        "mr1",
        text("sertraline 100 MG Oral Tablet"),
        json!(100),
        "mg",
        "2024-01-01",
        30,
    )];
    let record = read_patient_bundle(&bundle(resources)).unwrap();
    let as_of = Date::parse("2024-06-01").unwrap();
    assert!(
        !evaluate(&record, as_of, &Knowledge::embedded()).trials[0].adequate_duration,
        "30 days < 6 weeks"
    );
    assert!(
        evaluate(&record, as_of, &k).trials[0].adequate_duration,
        "30 days >= 4 weeks"
    );
}

#[test]
fn wrong_overrides_are_refused_with_the_file_and_the_problem() {
    let embedded = include_str!("../../../knowledge/policy.toml");
    let cases = [
        (
            embedded.replace("min_duration_weeks = 6", "min_duration_weeks = 9"),
            "min_duration_weeks must be 4 to 8",
        ),
        (
            embedded.replace(
                "refill_gap_days = 30",
                "refill_gap_days = 30\nrefil_gap = 3",
            ),
            "unknown field",
        ),
        (
            embedded.replace("switch_after_days = 14", "switch_after_days = 7"),
            "switch_after_days must be at least course.co_start_days",
        ),
        ("not toml at all [".to_owned(), "policy.toml"),
    ];
    for (text, message) in &cases {
        let err = with_site_file("policy.toml", text).unwrap_err();
        assert!(
            err.to_string().contains("policy.toml") && err.to_string().contains(message),
            "{err}"
        );
    }
    let missing_hint = include_str!("../../../knowledge/hints.toml")
        .replace("code = \"pregnancy\"", "code = \"pregnant\"");
    let err = with_site_file("hints.toml", &missing_hint).unwrap_err();
    assert!(
        err.to_string()
            .contains("hint `pregnancy` must be defined exactly once"),
        "{err}"
    );
}

#[test]
fn a_site_products_file_replaces_the_table_and_is_checked_against_the_drug_names() {
    // A site adds the lithium products of its formulary (no published value set lists them).
    let site = r#"
[meta]
version = "site-1"

[[value_set]]
title = "Formulary lithium"
source = "hospital formulary, 2026-10"
products = [
  { rxnorm = "900001", name = "lithium carbonate 300 MG Oral Capsule", drugs = ["lithium"] },
]
"#;
    let k = with_site_file("products.toml", site).unwrap();
    assert_ne!(k.ruleset_version, Knowledge::embedded().ruleset_version);
    assert_eq!(
        k.product_count(),
        1,
        "the site's file replaces the built-in one"
    );
    let resources = vec![order(
        "mr1",
        rxnorm("900001", ""),
        json!(1),
        "capsule",
        "2024-01-01",
        60,
    )];
    let record = read_patient_bundle(&bundle(resources)).unwrap();
    let as_of = Date::parse("2024-06-01").unwrap();
    let a = evaluate(&record, as_of, &k);
    assert_eq!(a.trials.len(), 1);
    assert!(a.trials[0].ingredient == "lithium" && a.trials[0].augmentation);
    assert!(a.diagnostics.is_empty(), "{:#?}", a.diagnostics);
    assert!(
        evaluate(&record, as_of, &Knowledge::embedded())
            .trials
            .is_empty()
    );

    let entry = |product: &str| {
        site.replace(
        r#"{ rxnorm = "900001", name = "lithium carbonate 300 MG Oral Capsule", drugs = ["lithium"] },"#,
        product,
    )
    };
    let cases = [
        (
            entry(
                r#"{ rxnorm = "900001", name = "sertraline 50 MG Oral Tablet", drugs = ["fluoxetine"] },"#,
            ),
            "RxNorm 900001 (\"sertraline 50 MG Oral Tablet\") names [\"sertraline\"]",
        ),
        (
            entry(
                r#"{ rxnorm = "900001", name = "haloperidol 5 MG Oral Tablet", drugs = ["haloperidol"] },"#,
            ),
            "lists `haloperidol`, which drugs.toml does not define",
        ),
        (
            entry(
                r#"{ rxnorm = "9000x1", name = "lithium carbonate 300 MG Oral Capsule", drugs = ["lithium"] },"#,
            ),
            "is not a number",
        ),
        (
            entry(
                r#"{ rxnorm = "1", name = "lithium 1 MG", drugs = ["lithium"] }, { rxnorm = "1", name = "lithium 2 MG", drugs = ["lithium"] },"#,
            ),
            "RxNorm 1 is listed twice",
        ),
        (
            site.replace(r#"source = "hospital formulary, 2026-10""#, ""),
            "must name its oid, version, repo, path and commit, or give a source",
        ),
    ];
    for (text, message) in &cases {
        let err = with_site_file("products.toml", text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("products.toml") && err.contains(message),
            "{err}"
        );
    }
}

fn drug_named(k: &Knowledge, name: &str) -> trdscreen_core::knowledge::DrugId {
    let at = k.drugs.iter().position(|d| d.name == name).unwrap();
    trdscreen_core::knowledge::DrugId(at as u16)
}

#[test]
fn a_drug_being_ordered_is_the_treatments_its_role_class_or_name_make_it() {
    let k = Knowledge::embedded();
    let of = |name| k.treatments_of(drug_named(&k, name));
    assert_eq!(of("phenelzine"), ["antidepressants", "maoi"]);
    assert_eq!(of("bupropion"), ["antidepressants", "bupropion"]);
    assert_eq!(of("sertraline"), ["antidepressants"]);
    assert_eq!(of("lithium"), ["lithium"]);
    assert_eq!(of("esketamine"), ["esketamine"]);
    assert_eq!(of("aripiprazole"), ["antipsychotic"]);
    assert!(of("nsaid").is_empty());
}

#[test]
fn a_treatment_naming_a_drug_or_class_that_does_not_exist_is_refused() {
    let hints = trdscreen_core::knowledge::EMBEDDED[3].1;
    for (bad, named) in [
        (
            "[[treatment]]\nname = \"x\"\ndrugs = [\"nodrug\"]\n",
            "nodrug",
        ),
        (
            "[[treatment]]\nname = \"y\"\nclasses = [\"noclass\"]\n",
            "noclass",
        ),
        ("[[treatment]]\nname = \"maoi\"\n", "maoi"),
    ] {
        let err = with_site_file("hints.toml", &format!("{hints}\n{bad}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("hints.toml") && err.contains(named), "{err}");
    }
}
