//! The nightly job (`trdscreen batch`) over Bulk-style NDJSON: whatever the order and split of the
//! files, every patient is screened exactly as their own Bundle is; bad lines are counted and
//! skipped; shards split the population exactly; a checkpoint makes a rerun screen no one twice;
//! and, against the real FHIR server, a job killed half way and resumed writes no duplicate Flag.

use crate::service;

use serde_json::{Value, json};
use service::{Fhir, fixture_resources, unique_prefix, with_prefix};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use trdscreen::batch::report::{CSV_HEADER, write_csv_row};
use trdscreen::batch::summarise;
use trdscreen::date::Date;
use trdscreen::fhir::read_patient_bundle;
use trdscreen::knowledge::Knowledge;

const AS_OF: &str = "2025-06-01";

mod export;
mod incremental;

/// Tests that write to the FHIR server take turns: an incremental export sees every change on the
/// server, and another test's writes would be changes too.
fn server_to_ourselves() -> std::sync::MutexGuard<'static, ()> {
    static SERVER: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERVER.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every clinical scenario's resources, under `prefix` and the scenario's number (so runs against
/// one server never meet, and two scenarios' resources of the same id never overwrite each other).
fn population(prefix: &str) -> Vec<Vec<Value>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("tests/fixtures/scenarios")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .enumerate()
        .map(|(n, p)| {
            let name = format!("scenarios/{}", p.file_name().unwrap().to_str().unwrap());
            with_prefix(&fixture_resources(&name), &format!("{prefix}{n:02}"))
        })
        .collect()
}

/// What the CSV must say of each patient: their own Bundle screened by the core.
fn expected_rows(patients: &[Vec<Value>]) -> BTreeMap<String, String> {
    let k = Knowledge::embedded();
    let as_of = Date::parse(AS_OF).unwrap();
    patients
        .iter()
        .map(|resources| {
            let entries: Vec<Value> = resources.iter().map(|r| json!({"resource": r})).collect();
            let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": entries});
            let record = read_patient_bundle(&bundle.to_string()).unwrap();
            let assessment = trdscreen::screening::evaluate(&record, as_of, &k);
            let mut row = Vec::new();
            write_csv_row(&mut row, &summarise(&assessment, None, Duration::ZERO)).unwrap();
            (
                assessment.patient_id.to_string(),
                String::from_utf8(row).unwrap(),
            )
        })
        .collect()
}

/// A little deterministic shuffle (xorshift), so a failure can be replayed.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

/// Writes the population as NDJSON: each type shuffled and split into files of at most
/// `per_file` lines, in a fresh directory.
fn write_ndjson(patients: &[Vec<Value>], per_file: usize, extra: &[&str]) -> PathBuf {
    let dir = scratch("ndjson");
    let mut by_type: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in patients.iter().flatten() {
        let kind = r["resourceType"].as_str().unwrap().to_owned();
        by_type.entry(kind).or_default().push(r.to_string());
    }
    for (n, (kind, lines)) in by_type.iter_mut().enumerate() {
        shuffle(lines, 0x9e37_79b9 + n as u64);
        for (part, chunk) in lines.chunks(per_file).enumerate() {
            std::fs::write(
                dir.join(format!("{kind}.{part}.ndjson")),
                chunk.join("\n") + "\n",
            )
            .unwrap();
        }
    }
    if !extra.is_empty() {
        std::fs::write(dir.join("Mixed.ndjson"), extra.join("\n") + "\n").unwrap();
    }
    dir
}

/// Puts each patient's Patient resource on the FHIR server, so that write-back has whom to write to.
async fn put_patients(fhir: &Fhir, patients: &[Vec<Value>]) {
    for r in patients.iter().flatten() {
        if r["resourceType"] == "Patient" {
            fhir.put(r).await;
        }
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_prefix(&format!("trdscreen-test-{name}")));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn batch(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trdscreen"));
    cmd.arg("batch")
        .args(args)
        .env_remove("TRDSCREEN_FHIR_BASE_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn csv_rows(report: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(report.with_extension("csv")).unwrap();
    assert!(text.starts_with(CSV_HEADER));
    text.lines().skip(1).map(|l| format!("{l}\n")).collect()
}

fn rows_by_patient(rows: &[String]) -> BTreeMap<String, String> {
    rows.iter()
        .map(|r| (r.split(',').next().unwrap().to_owned(), r.clone()))
        .collect()
}

fn report(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn split_and_shuffled_ndjson_screens_every_patient_as_their_own_bundle_does() {
    let patients = population("nd");
    let junk = [
        "{\"resourceType\": \"Condition\", \"id\": \"torn",
        "this is not json",
        r#"{"resourceType":"Encounter","id":"e1","subject":{"reference":"Patient/nd-x"}}"#,
        r#"{"resourceType":"Condition","id":"c-nobody-named"}"#,
        r#"{"resourceType":"Condition","id":"c-stranger","subject":{"reference":"Patient/not-in-population"}}"#,
    ];
    let dir = write_ndjson(&patients, 17, &junk);
    let out_dir = scratch("report");
    let report_path = out_dir.join("report.json");
    let out = batch(
        &[
            "--ndjson",
            dir.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--report",
            report_path.to_str().unwrap(),
        ],
        // Buckets of 16 KiB: the population spreads over many buckets.
        &[("TRDSCREEN_BATCH_BUCKET_KILOBYTES", "16")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows = csv_rows(&report_path);
    assert_eq!(rows.len(), patients.len(), "one row per patient");
    assert_eq!(rows_by_patient(&rows), expected_rows(&patients));
    // A combination started together that failed is one failed course, stage I, not MET.
    let combination = rows_by_patient(&rows)
        .into_iter()
        .find(|(id, _)| id.ends_with("combination-co-started-fails-once"))
        .expect("the combination story is in the population");
    assert!(
        combination.1.contains(",NOT_MET,1,2,2,1,7,"),
        "{}",
        combination.1
    );

    let r = report(&report_path);
    assert_eq!(r["patients"]["total"], patients.len());
    assert_eq!(r["patients"]["failed"], 0);
    assert_eq!(r["patients"]["not_in_population"], 1);
    assert_eq!(r["input"]["malformed_lines"], 2);
    assert_eq!(r["input"]["other_type"], 1);
    assert_eq!(r["input"]["no_patient"], 1);
    let statuses = r["status"].as_object().unwrap();
    assert!(
        statuses.contains_key("MET") && statuses.contains_key("NOT_APPLICABLE"),
        "{statuses:?}"
    );
}

#[test]
fn shards_together_screen_every_patient_exactly_once() {
    let patients = population("sh");
    let dir = write_ndjson(&patients, 1000, &[]);
    let out_dir = scratch("shards");
    let mut seen: Vec<String> = Vec::new();
    for shard in 0..3 {
        let path = out_dir.join(format!("shard-{shard}.json"));
        let out = batch(
            &[
                "--ndjson",
                dir.to_str().unwrap(),
                "--as-of",
                AS_OF,
                "--shard",
                &format!("{shard}/3"),
                "--report",
                path.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let rows = csv_rows(&path);
        assert!(!rows.is_empty(), "shard {shard} of 3 got no one");
        seen.extend(rows_by_patient(&rows).into_keys());
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), patients.len(), "no patient in two shards");
    assert_eq!(
        unique.into_iter().cloned().collect::<Vec<_>>(),
        expected_rows(&patients).into_keys().collect::<Vec<_>>()
    );
}

#[test]
fn a_rerun_with_the_checkpoint_of_a_finished_job_screens_no_one_again_and_the_next_night_starts_over()
 {
    let patients = population("cp");
    let dir = write_ndjson(&patients, 1000, &[]);
    let out_dir = scratch("checkpoint");
    let checkpoint = out_dir.join("job.checkpoint");
    let args = |report: &Path, as_of: &str| -> Vec<String> {
        [
            "--ndjson",
            dir.to_str().unwrap(),
            "--as-of",
            as_of,
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let first = out_dir.join("first.json");
    let a = args(&first, AS_OF);
    let out = batch(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let second = out_dir.join("second.json");
    let a = args(&second, AS_OF);
    let out = batch(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = report(&second);
    assert_eq!(r["patients"]["resumed_from_checkpoint"], patients.len());
    assert_eq!(
        rows_by_patient(&csv_rows(&second)),
        expected_rows(&patients)
    );
    let journal_lines = std::fs::read_to_string(&checkpoint)
        .unwrap()
        .lines()
        .count();
    assert_eq!(
        journal_lines,
        1 + patients.len(),
        "a header and one line per patient"
    );

    // The next night (another as_of, the checkpoint kept on a volume): the job starts over.
    let third = out_dir.join("third.json");
    let a = args(&third, "2025-07-01");
    let out = batch(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = report(&third);
    assert_eq!(r["patients"]["resumed_from_checkpoint"], 0);
    assert_eq!(r["patients"]["total"], patients.len(), "{r:#}");

    // Another job's checkpoint (another input) is refused, not emptied.
    let other_input = write_ndjson(&patients[..1], 1000, &[]);
    let fourth = out_dir.join("fourth.json");
    let mut a = args(&fourth, "2025-07-01");
    a[1] = other_input.to_str().unwrap().to_owned();
    let out = batch(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("belongs to another job"),
        "{}",
        text(&out)
    );
}

#[test]
fn bad_arguments_are_refused_before_anything_runs() {
    let dir = scratch("empty");
    let out = batch(&["--ndjson", dir.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no .ndjson files"));
    for shard in ["3/3", "x/2", "1"] {
        let out = batch(&["--ndjson", dir.to_str().unwrap(), "--shard", shard], &[]);
        assert_eq!(out.status.code(), Some(2), "{shard}: {}", text(&out));
    }
    let out = batch(
        &["--ndjson", dir.to_str().unwrap(), "--write-back", "flag"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("needs a FHIR server"), "{}", text(&out));
    // A wait past what the clock holds (it panicked once) is a usage error.
    let out = batch(
        &[
            "--ndjson",
            dir.to_str().unwrap(),
            "--export-max-age-secs",
            "60",
            "--export-wait-secs",
            "18446744073709551615",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("export-wait-secs"), "{}", text(&out));
}

/// Against the real FHIR server: a job writing Flags is killed (SIGKILL) half way and run again
/// with its checkpoint. Every patient ends in the journal once, and each has at most one Flag.
#[test]
fn a_killed_job_resumes_without_screening_anyone_twice_or_duplicating_a_flag() {
    if !crate::service::fhir_servers() {
        return;
    }
    let _server = server_to_ourselves();
    let base = service::fhir_url();
    let prefix = unique_prefix("kill");
    let patients = population(&prefix);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fhir = Fhir::plain();
    rt.block_on(put_patients(&fhir, &patients));
    let dir = write_ndjson(&patients, 1000, &[]);
    let out_dir = scratch("kill");
    let checkpoint = out_dir.join("job.checkpoint");
    let report_path = out_dir.join("report.json");
    let args = [
        "batch",
        "--ndjson",
        dir.to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--write-back",
        "flag",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--report",
        report_path.to_str().unwrap(),
    ];
    let env = [
        ("TRDSCREEN_FHIR_BASE_URL", base.as_str()),
        ("TRDSCREEN_BATCH_WRITES_PER_SECOND", "20"),
    ];
    let mut child = crate::child::spawn(
        Command::new(env!("CARGO_BIN_EXE_trdscreen"))
            .args(args)
            .envs(env)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
        "the nightly job starts",
    );
    let half = patients.len() / 2;
    let mut lines = 0;
    for _ in 0..600 {
        lines = std::fs::read_to_string(&checkpoint)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if lines > half || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        lines > 1 && lines <= patients.len(),
        "the job was killed part way ({lines} journal lines)"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_trdscreen"))
        .args(args)
        .envs(env)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let journal = std::fs::read_to_string(&checkpoint).unwrap();
    let screened: Vec<&str> = journal
        .lines()
        .skip(1)
        .map(|l| l.split('"').nth(3).unwrap())
        .collect();
    let unique: BTreeSet<&str> = screened.iter().copied().collect();
    assert_eq!(
        screened.len(),
        patients.len(),
        "each patient journaled once"
    );
    assert_eq!(unique.len(), patients.len());
    let rows = rows_by_patient(&csv_rows(&report_path));
    assert_eq!(rows, expected_with_write_back(&patients, &rows));

    rt.block_on(async {
        for (patient, row) in &rows {
            let flags = fhir.flags(patient).await;
            let positive = row.contains(",MET,") || row.contains(",POSSIBLE,");
            assert_eq!(
                flags.len(),
                usize::from(positive),
                "{patient}: one Flag when positive, none otherwise"
            );
        }
    });
}

/// A line of the export that cannot be read may be any patient's: every record is then possibly
/// partial, so a job asked to write back refuses (exit 2) having written nothing, and names the way
/// out; the same files screened without write-back report every patient.
#[test]
fn an_export_with_an_unreadable_line_writes_nothing_back() {
    if !crate::service::fhir_servers() {
        return;
    }
    let _server = server_to_ourselves();
    let base = service::fhir_url();
    let prefix = unique_prefix("torn");
    let patients = population(&prefix);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fhir = Fhir::plain();
    rt.block_on(put_patients(&fhir, &patients));
    let dir = write_ndjson(
        &patients,
        1000,
        &["{\"resourceType\": \"Observation\", \"id\": \"torn"],
    );
    let env = [("TRDSCREEN_FHIR_BASE_URL", base.as_str())];
    let out = batch(
        &[
            "--ndjson",
            dir.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--write-back",
            "flag",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is not whole (1 of its lines could not be read")
            && stderr.contains("--write-back none"),
        "{stderr}"
    );
    rt.block_on(async {
        for resources in &patients {
            let id = resources
                .iter()
                .find(|r| r["resourceType"] == "Patient")
                .and_then(|r| r["id"].as_str())
                .unwrap();
            assert!(fhir.flags(id).await.is_empty(), "{id}: no Flag written");
        }
    });

    let report_path = scratch("torn-report").join("report.json");
    let out = batch(
        &[
            "--ndjson",
            dir.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--write-back",
            "none",
            "--report",
            report_path.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(csv_rows(&report_path).len(), patients.len());
    assert_eq!(report(&report_path)["input"]["malformed_lines"], 1);
}

/// Issue 16, defect 14: the scratch of a job killed with SIGKILL (bucket files holding whole FHIR
/// resources) is owner-only, and the next job in the same work directory removes it; the scratch
/// of a job still running is never touched.
#[test]
fn scratch_of_a_killed_job_is_owner_only_and_removed_by_the_next_run_never_a_live_jobs() {
    if !crate::service::fhir_servers() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let _server = server_to_ourselves();
    let base = service::fhir_url();
    let prefix = unique_prefix("scr");
    let patients = population(&prefix);
    let group = format!("{prefix}-g");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fhir = Fhir::plain();
    rt.block_on(async {
        for r in patients.iter().flatten() {
            fhir.put(r).await;
        }
        let members: Vec<Value> = patients
            .iter()
            .flatten()
            .filter(|r| r["resourceType"] == "Patient")
            .map(|r| json!({"entity": {"reference": format!("Patient/{}", r["id"].as_str().unwrap())}}))
            .collect();
        fhir.put(&json!({"resourceType": "Group", "id": group, "type": "person",
            "actual": true, "member": members}))
            .await;
    });
    let work = scratch("work-dir");
    let checkpoint = scratch("scratch-checkpoint").join("job.checkpoint");
    let level = format!("group/{group}");
    // The export is downloaded into the scratch directory: whole FHIR resources.
    let args = [
        "batch",
        "--bulk",
        &level,
        "--as-of",
        AS_OF,
        "--write-back",
        "flag",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--work-dir",
        work.to_str().unwrap(),
    ];
    let env = [
        ("TRDSCREEN_FHIR_BASE_URL", base.as_str()),
        ("TRDSCREEN_FHIR_BULK_POLL_INTERVAL_SECS", "1"),
        ("TRDSCREEN_BATCH_WRITES_PER_SECOND", "10"),
    ];
    let mut child = crate::child::spawn(
        Command::new(env!("CARGO_BIN_EXE_trdscreen"))
            .args(args)
            .envs(env)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
        "the nightly job starts",
    );
    for _ in 0..3000 {
        let lines = std::fs::read_to_string(&checkpoint).map_or(0, |t| t.lines().count());
        if lines > 2 || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let entries = |d: &Path| -> Vec<PathBuf> {
        let mut e: Vec<PathBuf> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        e.sort();
        e
    };
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let left: Vec<PathBuf> = entries(&work).into_iter().filter(|p| p.is_dir()).collect();
    assert_eq!(left.len(), 1, "the killed job's scratch is left: {left:?}");
    let stale = left[0].clone();
    assert_eq!(
        mode(&stale),
        0o700,
        "the scratch directory is the owner's alone"
    );
    let mut files = Vec::new();
    let mut dirs = vec![stale.clone()];
    while let Some(d) = dirs.pop() {
        for p in entries(&d) {
            if p.is_dir() {
                assert_eq!(mode(&p), 0o700, "{}", p.display());
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
    }
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().ends_with(".ndjson")),
        "the killed job left its downloaded export: {files:?}"
    );
    for f in &files {
        assert_eq!(
            mode(f),
            0o600,
            "{} holds FHIR resources: owner only",
            f.display()
        );
    }

    // Another job is running in the same work directory right now.
    let live = trdscreen::batch::scratch::Scratch::create(Some(&work)).unwrap();
    std::fs::write(live.path().join("bucket-0000-0"), "R\tp\t{}\n").unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_trdscreen"))
        .args(args)
        .envs(env)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        !stale.exists(),
        "the next run removed the killed job's scratch"
    );
    assert!(
        live.path().join("bucket-0000-0").exists(),
        "a live job's scratch is never removed"
    );
    let dirs: Vec<PathBuf> = entries(&work).into_iter().filter(|p| p.is_dir()).collect();
    assert_eq!(
        dirs,
        [live.path().to_owned()],
        "the rerun cleaned up after itself too"
    );
}

/// The expected rows with the write-back column the job filled in (changed or unchanged,
/// depending on which run wrote it), checked to be one of those two.
fn expected_with_write_back(
    patients: &[Vec<Value>],
    rows: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    expected_rows(patients)
        .into_iter()
        .map(|(id, row)| {
            let got = &rows[&id];
            let wb = got.trim_end().rsplit(',').nth(1).unwrap();
            assert!(wb == "changed" || wb == "unchanged", "{id}: {got}");
            let mut fields: Vec<&str> = row.trim_end().split(',').collect();
            let n = fields.len();
            fields[n - 2] = wb;
            (id, fields.join(",") + "\n")
        })
        .collect()
}

/// Against the real FHIR server: a Group-level Bulk export (which leaves out the Medications the
/// requests reference: they are read by id) is screened as each patient's own Bundle is, and the
/// Flags are written.
#[test]
fn a_bulk_export_of_a_group_is_screened_end_to_end_with_write_back() {
    if !crate::service::fhir_servers() {
        return;
    }
    let _server = server_to_ourselves();
    let base = service::fhir_url();
    let fhir = Fhir::plain();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fixtures = [
        "fhir/requests-medication-reference.json",
        "fhir/statements-medication-reference.json",
        "scenarios/met-two-failed-ssri-snri.json",
        "scenarios/hint-bipolar-diagnosis-code.json",
        "scenarios/not-applicable-no-antidepressant.json",
    ];
    let loaded: Vec<service::Loaded> = rt.block_on(async {
        let mut all = Vec::new();
        for f in fixtures {
            all.push(fhir.load(f, "bulk").await);
        }
        all
    });
    let group_id = unique_prefix("bulk-group");
    let members: Vec<Value> = loaded
        .iter()
        .map(|l| json!({"entity": {"reference": format!("Patient/{}", l.patient_id)}}))
        .collect();
    rt.block_on(fhir.put(&json!({
        "resourceType": "Group", "id": group_id, "type": "person", "actual": true,
        "member": members
    })));
    let out_dir = scratch("bulk");
    let report_path = out_dir.join("report.json");
    let level = format!("group/{group_id}");
    let out = batch(
        &[
            "--bulk",
            &level,
            "--as-of",
            AS_OF,
            "--write-back",
            "flag",
            "--report",
            report_path.to_str().unwrap(),
        ],
        &[
            ("TRDSCREEN_FHIR_BASE_URL", base.as_str()),
            ("TRDSCREEN_FHIR_BULK_POLL_INTERVAL_SECS", "1"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let patients: Vec<Vec<Value>> = loaded.iter().map(|l| l.resources.clone()).collect();
    let rows = rows_by_patient(&csv_rows(&report_path));
    assert_eq!(rows, expected_with_write_back(&patients, &rows));
    let r = report(&report_path);
    assert!(
        r["input"]["medications"].as_u64().unwrap() >= 2,
        "the referenced Medications were read: {r:#}"
    );
    rt.block_on(async {
        for (patient, row) in &rows {
            let positive = row.contains(",MET,") || row.contains(",POSSIBLE,");
            assert_eq!(
                fhir.flags(patient).await.len(),
                usize::from(positive),
                "{patient}"
            );
        }
    });
}

/// The typical patient (MET as of 2025-06-01) and a few scenario patients, as NDJSON in `dir`.
fn typical_and_friends(prefix: &str) -> (Vec<Vec<Value>>, PathBuf) {
    let mut patients = population(prefix);
    patients.truncate(4);
    patients.push(with_prefix(
        &fixture_resources("typical-patient.json"),
        prefix,
    ));
    let dir = write_ndjson(&patients, 7, &[]);
    (patients, dir)
}

fn run_ndjson(dir: &Path, env: &[(&str, &str)]) -> (Output, PathBuf) {
    let report_path = scratch("report").join("report.json");
    let out = batch(
        &[
            "--ndjson",
            dir.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--report",
            report_path.to_str().unwrap(),
        ],
        env,
    );
    (out, report_path)
}

#[test]
fn ndjson_files_that_start_with_a_byte_order_mark_lose_no_line() {
    let (patients, dir) = typical_and_friends("bom");
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("\u{feff}{text}")).unwrap();
    }
    let (out, report_path) = run_ndjson(&dir, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = report(&report_path);
    assert_eq!(r["input"]["malformed_lines"], 0, "{r}");
    assert_eq!(
        rows_by_patient(&csv_rows(&report_path)),
        expected_rows(&patients)
    );
}

#[test]
fn a_lone_surrogate_in_an_ndjson_line_keeps_the_resource() {
    let (patients, dir) = typical_and_friends("sur");
    let mut replaced = 0;
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        replaced += text.matches("\"display\":\"Maria Lindqvist\"").count();
        let text = text.replace(
            "\"display\":\"Maria Lindqvist\"",
            "\"display\":\"Maria \\ud800\"",
        );
        std::fs::write(&path, text).unwrap();
    }
    assert!(replaced > 20);
    let (out, report_path) = run_ndjson(&dir, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows = rows_by_patient(&csv_rows(&report_path));
    let typical = rows
        .get("sur-typical-patient")
        .expect("the typical patient's row");
    assert!(
        typical.starts_with("sur-typical-patient,MET,2,"),
        "{typical}"
    );
    assert_eq!(rows.len(), patients.len());
}

#[test]
fn a_patient_over_the_resource_limit_fails_with_a_clear_error_and_the_rest_are_screened() {
    let (patients, dir) = typical_and_friends("lim");
    let knowledge = scratch("knowledge");
    let policy = std::fs::read_to_string("knowledge/policy.toml")
        .unwrap()
        .replace("max_resources = 100000", "max_resources = 30");
    std::fs::write(knowledge.join("policy.toml"), policy).unwrap();
    let (out, report_path) = run_ndjson(
        &dir,
        &[("TRDSCREEN_KNOWLEDGE_DIR", knowledge.to_str().unwrap())],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "some patients failed: {}",
        text(&out)
    );
    let r = report(&report_path);
    assert_eq!(r["errors"]["RESOURCE_EXHAUSTED"], 1, "{r}");
    let rows = rows_by_patient(&csv_rows(&report_path));
    assert_eq!(rows.len(), patients.len());
    assert!(
        rows["lim-typical-patient"].ends_with(",RESOURCE_EXHAUSTED\n"),
        "{:?}",
        rows["lim-typical-patient"]
    );
}

/// A gzipped export is counted by its packed size when the job sizes its buckets, so each bucket
/// unpacks to many times what it was sized for (a gzip bomb, to any size). The buckets over the
/// bound are split, everyone is screened as from their own Bundle, and the one patient whose lines
/// alone are over the bound is refused by name rather than held.
#[test]
fn a_gzipped_export_that_unpacks_far_past_its_buckets_is_split_and_a_patient_too_large_is_refused()
{
    use std::io::Write;
    let mut patients = population("gzb");
    let typical = with_prefix(&fixture_resources("typical-patient.json"), "gzb");
    // Patients alike but for their ids: lines that pack small.
    for n in 0..3000 {
        let id = format!("gzb-alike-{n:04}");
        patients.push(vec![
            json!({"resourceType": "Patient", "id": id}),
            json!({"resourceType": "Condition", "id": format!("{id}-c"),
                "subject": {"reference": format!("Patient/{id}")},
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003", "display": "Hypertensive disorder"}]}}),
        ]);
    }
    let mut everyone = patients.clone();
    everyone.push(typical);
    let dir = write_ndjson(&everyone, 5000, &[]);
    let (mut packed, mut unpacked) = (0, 0);
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        let text = std::fs::read(&path).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).unwrap();
        let gz = gz.finish().unwrap();
        (packed, unpacked) = (packed + gz.len(), unpacked + text.len());
        let mut name = path.clone().into_os_string();
        name.push(".gz");
        std::fs::write(name, gz).unwrap();
        std::fs::remove_file(path).unwrap();
    }
    // Buckets of 3 KiB by the packed size; a worker holds 24 KiB.
    assert!(
        unpacked > 12 * packed,
        "the buckets must unpack past eight times their size: {unpacked} from {packed}"
    );
    let (out, report_path) = run_ndjson(&dir, &[("TRDSCREEN_BATCH_BUCKET_KILOBYTES", "3")]);

    assert_eq!(
        out.status.code(),
        Some(3),
        "one patient failed: {}",
        text(&out)
    );
    let rows = rows_by_patient(&csv_rows(&report_path));
    let refused = &rows["gzb-typical-patient"];
    assert!(refused.ends_with(",RESOURCE_EXHAUSTED\n"), "{refused}");
    let mut screened = rows.clone();
    screened.remove("gzb-typical-patient");
    assert_eq!(screened, expected_rows(&patients));
    let r = report(&report_path);
    assert_eq!(r["errors"]["RESOURCE_EXHAUSTED"], 1, "{r}");
    assert_eq!(r["input"]["malformed_lines"], 0, "{r}");
}

#[test]
fn a_job_whose_every_write_back_failed_exits_1_to_be_retried_not_3() {
    // The FHIR server refuses every connection: each patient is screened, and no write lands.
    let patients = population("wb-down");
    let dir = write_ndjson(&patients[..3], 1000, &[]);
    let out_dir = scratch("wb-down");
    let report_path = out_dir.join("report.json");
    let out = batch(
        &[
            "--ndjson",
            dir.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--write-back",
            "flag",
            "--report",
            report_path.to_str().unwrap(),
        ],
        &[
            ("TRDSCREEN_FHIR_BASE_URL", "http://127.0.0.1:9/fhir"),
            ("TRDSCREEN_FHIR_MAX_RETRIES", "0"),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = report(&report_path);
    assert_eq!(r["patients"]["screened"], 3, "{r:#}");
    assert_eq!(r["write_back"]["failed"], 3, "{r:#}");
}

#[test]
fn a_checkpoint_that_is_also_the_reports_csv_is_refused_before_either_is_written() {
    let patients = population("same-path");
    let dir = write_ndjson(&patients[..2], 1000, &[]);
    let out_dir = scratch("same-path");
    let report_path = out_dir.join("night.json");
    let checkpoint = out_dir.join("night.csv");
    std::fs::write(&checkpoint, "kept\n").unwrap();
    let out = batch(
        &[
            "--ndjson",
            dir.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--report",
            report_path.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("also the report"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&checkpoint).unwrap(), "kept\n");
    assert!(!report_path.exists());
}
