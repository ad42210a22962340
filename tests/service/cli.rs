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

#[test]
fn the_summary_cannot_be_forged_by_an_id_holding_terminal_controls() {
    let mut bundle: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("tests/fixtures/typical-patient.json").unwrap(),
    )
    .unwrap();
    for entry in bundle["entry"].as_array_mut().unwrap() {
        let resource = &mut entry["resource"];
        if resource["resourceType"] == "Observation" {
            let id = resource["id"].as_str().unwrap().to_owned();
            resource["id"] = format!("{id}\u{1b}[2K\rTRD criteria: NOT APPLICABLE\n").into();
        }
    }
    let path =
        std::env::temp_dir().join(format!("trdscreen-cli-forged-{}.json", std::process::id()));
    std::fs::write(&path, bundle.to_string()).unwrap();
    let out = trdscreen(&["evaluate", path.to_str().unwrap(), "--as-of", "2025-06-01"]);
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.matches("TRD criteria:").count(), 1, "{text}");
    assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text}");
    assert!(text.contains("[invalid-id]"), "{text}");
}

#[test]
fn a_record_over_the_resource_limit_is_refused_in_one_line() {
    let dir = std::env::temp_dir().join(format!("trdscreen-cli-limit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = std::fs::read_to_string("knowledge/policy.toml")
        .unwrap()
        .replace("max_resources = 100000", "max_resources = 10");
    assert!(policy.contains("max_resources = 10\n") || policy.contains("max_resources = 10 "));
    std::fs::write(dir.join("policy.toml"), policy).unwrap();
    let out = trdscreen(&[
        "evaluate",
        "tests/fixtures/typical-patient.json",
        "--as-of",
        "2025-06-01",
        "--knowledge",
        dir.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("over the limit of 10 per patient (record.max_resources"),
        "{stderr}"
    );
}

#[test]
fn screen_refuses_patient_ids_of_dots_before_any_fhir_request() {
    // A "FHIR server" that counts the connections made to it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}/fhir", listener.local_addr().unwrap());
    for id in [".", ".."] {
        let out = Command::new(env!("CARGO_BIN_EXE_trdscreen"))
            .args(["screen", "--patient", id, "--write-back", "none"])
            .env("TRDSCREEN_FHIR_BASE_URL", &base)
            .env("TRDSCREEN_FHIR_AUTH_MODE", "none")
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{id}: {stderr}");
        assert!(stderr.contains("patient_id"), "{id}: {stderr}");
    }
    assert!(
        listener.accept().is_err(),
        "no request reached the FHIR server"
    );
}

// --- output and argument errors (issue 16, defect 15) ----------------------------------------

/// A Bundle whose assessment is long (every resource named in diagnostics): over a pipe's 64 KB.
fn long_assessment_bundle() -> std::path::PathBuf {
    let mut entries =
        vec![serde_json::json!({"resource": {"resourceType": "Patient", "id": "p1"}})];
    for i in 0..2000 {
        entries.push(serde_json::json!({"resource": {
            "resourceType": "Observation", "id": format!("o{i}"), "status": "entered-in-error",
            "subject": {"reference": "Patient/p1"}}}));
    }
    let bundle =
        serde_json::json!({"resourceType": "Bundle", "type": "collection", "entry": entries});
    let path = std::env::temp_dir().join(format!("trdscreen-cli-long-{}.json", std::process::id()));
    std::fs::write(&path, bundle.to_string()).unwrap();
    path
}

#[test]
fn output_that_cannot_be_written_is_an_error_and_a_closed_pipe_a_quiet_end() {
    let long = long_assessment_bundle();
    let long = long.to_str().unwrap();
    let full = || std::fs::File::create("/dev/full").expect("/dev/full");
    let population =
        std::env::temp_dir().join(format!("trdscreen-cli-synth-{}", std::process::id()));
    for args in [
        vec![
            "evaluate",
            "tests/fixtures/typical-patient.json",
            "--as-of",
            "2025-06-01",
        ],
        vec!["evaluate", long, "--json", "--as-of", "2025-06-01"],
        vec![
            "synth",
            "--patients",
            "3",
            "--out",
            population.to_str().unwrap(),
        ],
        vec![
            "batch",
            "--ndjson",
            "examples/population",
            "--as-of",
            "2026-11-01",
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_trdscreen"))
            .args(&args)
            .stdout(full())
            .output()
            .expect("runs");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.ends_with("trdscreen: cannot write the output: no storage space\n"),
            "{args:?}: {stderr}"
        );
    }

    // A reader that takes one byte of more than a pipe holds, then goes away.
    let mut child = crate::child::spawn(
        Command::new(env!("CARGO_BIN_EXE_trdscreen"))
            .args(["evaluate", long, "--json", "--as-of", "2025-06-01"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
        "runs",
    );
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(first, *b"{");
    assert_eq!(
        out.status.code(),
        Some(0),
        "a closed pipe ends the output quietly"
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_bundle_file_larger_than_512_mib_is_refused_before_it_is_read_whole() {
    let path = std::env::temp_dir().join(format!("trdscreen-cli-huge-{}.json", std::process::id()));
    // A sparse file: 600 MiB of zeros that take no disk.
    std::fs::File::create(&path)
        .unwrap()
        .set_len(600 * 1024 * 1024)
        .unwrap();
    let out = trdscreen(&["evaluate", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("larger than 512 MiB"), "{stderr}");
}

#[test]
fn input_that_is_not_utf8_is_bad_input() {
    let path =
        std::env::temp_dir().join(format!("trdscreen-cli-latin1-{}.json", std::process::id()));
    let text = std::fs::read_to_string("tests/fixtures/typical-patient.json").unwrap();
    let mut bytes = text.into_bytes();
    let at = bytes.iter().position(|b| *b == b'"').unwrap() + 1;
    bytes.insert(at, 0xfc);
    std::fs::write(&path, bytes).unwrap();
    let out = trdscreen(&["evaluate", path.to_str().unwrap()]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not UTF-8"), "{stderr}");
}

#[test]
fn argument_errors_are_one_line_with_exit_code_2() {
    for (args, says) in [
        (
            vec!["evaluate", "--bogus"],
            "unexpected argument '--bogus' found",
        ),
        (
            vec!["screen"],
            "the following required arguments were not provided: --patient <PATIENT>",
        ),
        (
            vec![],
            "name a command: evaluate, serve, batch, export, screen, synth, health",
        ),
        (
            vec!["evaluate", "x.json", "--as-of", "2025-02-30"],
            "expected a valid day as YYYY-MM-DD",
        ),
        (
            vec!["evaluate", "x.json", "--as-of", "\u{1b}[2J\nforged line"],
            "invalid value",
        ),
    ] {
        let out = trdscreen(&args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("trdscreen: "), "{stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(
            !stderr.contains('\u{1b}'),
            "control characters are escaped: {stderr:?}"
        );
    }
    let help = trdscreen(&["evaluate", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(
        String::from_utf8(help.stdout)
            .unwrap()
            .contains("Usage: trdscreen evaluate")
    );
}

#[test]
fn bad_settings_exit_2_so_that_a_cron_job_does_not_retry_them() {
    let dir = std::env::temp_dir().join(format!("trdscreen-cli-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("settings.toml");
    std::fs::write(&file, "[grpc]\nlisten = \"not an address\"\n").unwrap();
    let file = file.to_str().unwrap();
    let nightly = [
        "batch",
        "--ndjson",
        "examples/population",
        "--as-of",
        "2026-11-01",
    ];
    for args in [
        [&nightly[..], &["-c", file]].concat(),
        vec!["export", "--out", dir.to_str().unwrap(), "-c", file],
        vec!["screen", "--patient", "p1", "-c", file],
        vec!["serve", "-c", file],
    ] {
        let out = trdscreen(&args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("grpc.listen"), "{args:?}: {stderr}");
    }
    // A bad environment override is a bad setting too.
    let out = Command::new(env!("CARGO_BIN_EXE_trdscreen"))
        .args(nightly)
        .env("TRDSCREEN_BATCH_CONCURRENCY", "many")
        .output()
        .expect("runs");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("TRDSCREEN_BATCH_CONCURRENCY"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn text_logs_written_to_a_file_or_pipe_carry_no_colour_codes() {
    use std::io::{BufRead, BufReader};
    let mut serve = crate::child::spawn(
        Command::new(env!("CARGO_BIN_EXE_trdscreen"))
            .arg("serve")
            .env("TRDSCREEN_GRPC_LISTEN", "127.0.0.1:0")
            .env("TRDSCREEN_TELEMETRY_METRICS_LISTEN", "")
            .env("TRDSCREEN_TELEMETRY_LOG_FORMAT", "text")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped()),
        "trdscreen serve",
    );
    let stderr = serve.stderr.take().expect("piped");
    let first = BufReader::new(stderr)
        .lines()
        .next()
        .expect("a log line")
        .expect("text");
    assert!(first.contains("INFO"), "{first}");
    assert!(!first.contains('\u{1b}'), "{first:?}");
}

/// The bundled population's report and CSV are pinned: a change to how the nightly job reads or
/// routes its input (not to the rules) must leave them as they are, byte for byte. After a change of
/// rules or of the population, regenerate them (and say why in the commit):
/// `trdscreen batch --ndjson examples/population --as-of 2026-11-01 --report R.json`, then the CSV's
/// header and its rows sorted (`LC_ALL=C sort`) into `report.csv`, and the report without
/// `durations`, keys sorted, two-space indent, into `report.json`.
#[test]
fn the_bundled_populations_report_and_csv_are_the_committed_ones() {
    let dir = std::env::temp_dir().join(format!("trdscreen-cli-pinned-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("report.json");
    let out = trdscreen(&[
        "batch",
        "--ndjson",
        "examples/population",
        "--as-of",
        "2026-11-01",
        "--report",
        report.to_str().unwrap(),
        "--work-dir",
        dir.join("work").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let csv = std::fs::read_to_string(dir.join("report.csv")).unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    let mut rows: Vec<&str> = lines.collect();
    rows.sort_unstable();
    let sorted: String = std::iter::once(header)
        .chain(rows)
        .map(|l| format!("{l}\n"))
        .collect();
    let pinned = std::fs::read_to_string("tests/fixtures/population/report.csv").unwrap();
    let first_difference = sorted.lines().zip(pinned.lines()).position(|(a, b)| a != b);
    assert!(
        sorted == pinned,
        "the CSV differs from tests/fixtures/population/report.csv (sorted rows; first at line {:?}, {} lines against {})",
        first_difference.map(|i| i + 1),
        sorted.lines().count(),
        pinned.lines().count()
    );

    let mut got: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    got.as_object_mut().unwrap().remove("durations");
    let pinned: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("tests/fixtures/population/report.json").unwrap(),
    )
    .unwrap();
    assert_eq!(
        got, pinned,
        "the report differs from tests/fixtures/population/report.json"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The job's report and CSV and the clinician page name patients and their results: whatever the
/// umask, a new one is readable by its owner alone, as the journal and scratch files are.
#[test]
fn reports_csvs_and_pages_are_created_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("trdscreen-cli-private-{}", std::process::id()));
    let input = dir.join("input");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(
        input.join("Patient.ndjson"),
        "{\"resourceType\":\"Patient\",\"id\":\"p1\"}\n",
    )
    .unwrap();
    let report = dir.join("report.json");
    let page = dir.join("page.html");
    let batch = trdscreen(&[
        "batch",
        "--ndjson",
        input.to_str().unwrap(),
        "--as-of",
        "2026-11-01",
        "--report",
        report.to_str().unwrap(),
        "--work-dir",
        dir.join("work").to_str().unwrap(),
    ]);
    assert!(
        batch.status.success(),
        "{}",
        String::from_utf8_lossy(&batch.stderr)
    );
    let evaluate = trdscreen(&[
        "evaluate",
        "tests/fixtures/typical-patient.json",
        "--as-of",
        "2025-06-01",
        "--html",
        page.to_str().unwrap(),
    ]);
    assert!(
        evaluate.status.success(),
        "{}",
        String::from_utf8_lossy(&evaluate.stderr)
    );
    for file in [report.clone(), report.with_extension("csv"), page] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(format!("{mode:o}"), "600", "{}", file.display());
    }
    std::fs::remove_dir_all(dir).unwrap();
}
