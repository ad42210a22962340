//! `trdscreen evaluate` as a person or a script uses it.

use serde::Deserialize;
use std::process::Command;

fn trdscreen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trdscreen"))
        .args(args)
        .output()
        .expect("runs")
}

#[derive(Deserialize)]
struct Cases {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    file: String,
    error_contains: String,
}

#[test]
fn input_that_is_not_one_patients_bundle_fails_with_one_line_and_no_partial_output() {
    let cases: Cases =
        toml::from_str(&std::fs::read_to_string("tests/fixtures/invalid/invalid.toml").unwrap())
            .unwrap();
    assert!(cases.case.len() >= 4);
    for c in cases.case {
        let path = format!("tests/fixtures/invalid/{}", c.file);
        for json in [true, false] {
            let args: Vec<&str> = if json {
                vec!["evaluate", &path, "--json", "--as-of", "2025-01-01"]
            } else {
                vec!["evaluate", &path]
            };
            let out = trdscreen(&args);
            let stderr = String::from_utf8(out.stderr).unwrap();
            assert_eq!(out.status.code(), Some(2), "{path}: {stderr}");
            assert!(out.stdout.is_empty(), "{path}: no partial assessment");
            assert_eq!(
                stderr.trim_end().lines().count(),
                1,
                "{path}: one line: {stderr}"
            );
            assert!(
                stderr.to_lowercase().contains(&c.error_contains),
                "{path}: {stderr:?} should say {:?}",
                c.error_contains
            );
        }
    }
}

#[test]
fn json_output_is_the_assessment() {
    let out = trdscreen(&[
        "evaluate",
        "tests/fixtures/scenarios/met-two-failed-ssri-snri.json",
        "--json",
        "--as-of",
        "2025-06-01",
    ]);
    assert!(out.status.success());
    let a: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(a["status"], "TRD_STATUS_MET");
    assert_eq!(a["as_of"], "2025-06-01T00:00:00Z");
    assert_eq!(a["trials"][0]["ingredient"], "sertraline");
}

#[test]
fn the_summary_reads_as_a_clinician_expects() {
    let out = trdscreen(&[
        "evaluate",
        "tests/fixtures/scenarios/hint-aneurysm-esketamine-contraindicated.json",
        "--as-of",
        "2025-06-01",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("TRD criteria: MET"), "{text}");
    assert!(
        text.contains("CRITICAL vascular-contraindication"),
        "{text}"
    );
    assert!(text.contains("Esketamine nasal spray (REMS-certified setting, 2 hours of monitoring) [CONTRAINDICATED]"), "{text}");
    assert!(
        !text.contains("\x1b["),
        "no colour codes when not on a terminal"
    );
}

#[test]
fn a_missing_file_or_a_bad_date_is_a_clear_error() {
    let out = trdscreen(&["evaluate", "tests/fixtures/does-not-exist.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("cannot read")
    );
    let out = trdscreen(&[
        "evaluate",
        "tests/fixtures/scenarios/met-two-failed-ssri-snri.json",
        "--as-of",
        "2025-02-30",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("YYYY-MM-DD")
    );
}

#[test]
fn a_bad_knowledge_override_stops_before_screening() {
    let dir = std::env::temp_dir().join(format!("trdscreen-cli-knowledge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("policy.toml"), "[meta]\nversion = \"x\"\n").unwrap();
    let out = trdscreen(&[
        "evaluate",
        "tests/fixtures/scenarios/met-two-failed-ssri-snri.json",
        "--knowledge",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("policy.toml")
    );
}
