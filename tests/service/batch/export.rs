//! The export step and the directory the shards read: gzipped NDJSON and a hospital's manifest are
//! read as they come; a shard refuses a directory whose export has not finished or is stale (and
//! waits for it when asked); a FIFO the manifest names is refused, never waited on; the
//! `_typeFilter` export carries less and screens the same; one `trdscreen export` feeds two shards
//! that together screen everyone once.

use super::*;
use std::io::Write;

fn gzip(path: &Path) {
    let text = std::fs::read(path).unwrap();
    let mut packed = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    packed.write_all(&text).unwrap();
    let mut name = path.as_os_str().to_owned();
    name.push(".gz");
    std::fs::write(PathBuf::from(name), packed.finish().unwrap()).unwrap();
    std::fs::remove_file(path).unwrap();
}

fn manifest(dir: &Path, transaction_time: &str, request: &str) {
    let text = json!({"transactionTime": transaction_time, "request": request,
        "requiresAccessToken": true, "output": [], "error": []});
    std::fs::write(dir.join("manifest.json"), text.to_string()).unwrap();
}

/// A FHIR instant `seconds_ago` before now (UTC).
fn instant_ago(seconds_ago: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - seconds_ago;
    let day = Date::from_days_since_epoch((now / 86_400) as i32);
    let s = now % 86_400;
    format!("{day}T{:02}:{:02}:{:02}Z", s / 3600, (s / 60) % 60, s % 60)
}

#[test]
fn gzipped_ndjson_and_a_hospitals_manifest_are_read_as_they_come() {
    let patients = population("gz");
    let dir = write_ndjson(&patients, 40, &[]);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files.iter().step_by(2) {
        gzip(file);
    }
    manifest(
        &dir,
        "2026-11-20T01:02:03Z",
        "https://ehr.example/fhir/$export?_type=Patient,Condition,MedicationRequest,MedicationStatement,Medication,Observation,Procedure",
    );
    let report_path = scratch("gz").join("report.json");
    let out = batch(
        &[
            "--ndjson",
            dir.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--report",
            report_path.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        rows_by_patient(&csv_rows(&report_path)),
        expected_rows(&patients)
    );
    let r = report(&report_path);
    assert_eq!(r["export"]["transaction_time"], "2026-11-20T01:02:03Z");
    assert_eq!(r["export"]["scope"], "whole");
    assert!(
        r["job"]["source"]
            .as_str()
            .unwrap()
            .ends_with("@2026-11-20T01:02:03Z"),
        "a checkpoint belongs to one export: {r:#}"
    );
}

#[test]
fn a_shard_refuses_an_unfinished_or_stale_export_and_waits_for_a_fresh_one() {
    let patients = population("gate");
    let dir = write_ndjson(&patients, 1000, &[]);
    let gate = |wait: &str| -> Output {
        batch(
            &[
                "--ndjson",
                dir.to_str().unwrap(),
                "--as-of",
                AS_OF,
                "--export-max-age-secs",
                "3600",
                "--export-wait-secs",
                wait,
            ],
            &[],
        )
    };
    let out = gate("0");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no manifest.json"), "{}", text(&out));

    manifest(
        &dir,
        &instant_ago(2 * 3600),
        "https://ehr.example/fhir/$export",
    );
    let out = gate("0");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("old"), "{}", text(&out));

    // The export step finishes while the shard waits.
    std::fs::remove_file(dir.join("manifest.json")).unwrap();
    let finishing = {
        let dir = dir.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            manifest(&dir, &instant_ago(60), "https://ehr.example/fhir/$export");
        })
    };
    let out = gate("60");
    finishing.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn an_export_that_holds_only_changes_is_never_screened_as_a_whole_record() {
    let patients = population("changes");
    let dir = write_ndjson(&patients, 1000, &[]);
    manifest(
        &dir,
        &instant_ago(60),
        "https://ehr.example/fhir/$export?_since=2026-11-19T00:00:00Z",
    );
    // Without a FHIR server the changed patients cannot be read whole: nothing is screened.
    let out = batch(&["--ndjson", dir.to_str().unwrap(), "--as-of", AS_OF], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("changes only"), "{}", text(&out));

    manifest(
        &dir,
        &instant_ago(60),
        "https://ehr.example/fhir/$export?_type=Patient,Observation",
    );
    let out = batch(&["--ndjson", dir.to_str().unwrap(), "--as-of", AS_OF], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("not whole"), "{}", text(&out));
}

/// `batch` with a deadline: a job still running after `limit` is killed and fails the test, so a
/// job that blocks fails rather than hangs it.
fn batch_within(args: &[&str], limit: Duration) -> Output {
    let logs = scratch("logs");
    let (stdout, stderr) = (logs.join("stdout"), logs.join("stderr"));
    // Files, not pipes: a pipe nobody reads while the job runs could fill and block it.
    let mut child = crate::child::spawn(
        Command::new(env!("CARGO_BIN_EXE_trdscreen"))
            .arg("batch")
            .args(args)
            .env_remove("TRDSCREEN_FHIR_BASE_URL")
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap()),
        "the nightly job starts",
    );
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the job still runs after {limit:?}: it is blocked"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: std::fs::read(&stdout).unwrap(),
        stderr: std::fs::read(&stderr).unwrap(),
    }
}

/// The files of an export with our manifest are the ones its account names, not a listing of the
/// directory's regular files: one that is a FIFO (of size 0, as the account may say) fails the job
/// as an input that cannot be read, named, rather than wait for a writer for ever.
#[test]
fn a_fifo_the_manifest_names_is_refused_as_unreadable_input_not_waited_on() {
    use trdscreen::fhir::bulk::local::{self, EXTENSION, LocalManifest, Marker, ScopeKind};
    let (_, dir) = typical_and_friends("fifo");
    let mut marker = Marker::new(ScopeKind::Whole, "system".into(), vec![]);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        marker.files.insert(name, entry.metadata().unwrap().len());
    }
    let fifo = dir.join("Observation.late.ndjson");
    let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `name` is a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    marker.files.insert("Observation.late.ndjson".into(), 0);
    let manifest = LocalManifest {
        transaction_time: "2026-11-20T01:00:00Z".into(),
        request: String::new(),
        requires_access_token: false,
        output: vec![],
        error: vec![],
        deleted: vec![],
        extension: [(EXTENSION.to_owned(), serde_json::to_value(&marker).unwrap())].into(),
    };
    local::write_manifest(&dir, &manifest).unwrap();

    let out = batch_within(
        &["--ndjson", dir.to_str().unwrap(), "--as-of", AS_OF],
        Duration::from_secs(120),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let expected = format!(
        "cannot read the input {}: Observation.late.ndjson: not a regular file (a FIFO)",
        dir.display()
    );
    assert!(text(&out).contains(&expected), "{}", text(&out));
}

/// Labs and vitals screening never reads, for every patient: what `_typeFilter` keeps out.
fn unrelated_observations(prefix: &str, patients: &[Vec<Value>]) -> Vec<Value> {
    let mut extra = Vec::new();
    for (n, resources) in patients.iter().enumerate() {
        let patient = resources
            .iter()
            .find(|r| r["resourceType"] == "Patient")
            .unwrap();
        let id = patient["id"].as_str().unwrap();
        for (k, (code, value)) in [
            ("2345-7", 99),
            ("8867-4", 72),
            ("2951-2", 140),
            ("4548-4", 6),
        ]
        .into_iter()
        .enumerate()
        {
            extra.push(
                json!({"resourceType": "Observation", "id": format!("{prefix}-lab-{n}-{k}"),
                "status": "final", "subject": {"reference": format!("Patient/{id}")},
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "effectiveDateTime": "2025-01-15", "valueQuantity": {"value": value}}),
            );
        }
    }
    extra
}

#[test]
fn a_type_filtered_export_carries_less_and_screens_the_same() {
    if !crate::service::fhir_servers() {
        return;
    }
    let _server = server_to_ourselves();
    let base = service::fhir_url();
    let fhir = Fhir::plain();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let prefix = unique_prefix("filter");
    let patients = population(&prefix);
    let labs = unrelated_observations(&prefix, &patients);
    let group = prefix.clone() + "-g";
    rt.block_on(async {
        for r in patients.iter().flatten().chain(&labs) {
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
    let out_dir = scratch("filter");
    let level = format!("group/{group}");
    let run = |name: &str, extra: &[&str]| -> Value {
        let path = out_dir.join(format!("{name}.json"));
        let mut args = vec![
            "--bulk",
            &level,
            "--as-of",
            AS_OF,
            "--report",
            path.to_str().unwrap(),
        ];
        args.extend(extra);
        let out = batch(
            &args,
            &[
                ("TRDSCREEN_FHIR_BASE_URL", base.as_str()),
                ("TRDSCREEN_FHIR_BULK_POLL_INTERVAL_SECS", "1"),
                ("TRDSCREEN_WRITEBACK_DEFAULT_MODE", "none"),
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out));
        assert_eq!(
            rows_by_patient(&csv_rows(&path)),
            expected_rows(&patients),
            "{name}: each patient as their own Bundle screens"
        );
        report(&path)
    };
    let filtered = run("filtered", &[]);
    let whole = run("unfiltered", &["--no-type-filter"]);
    assert_eq!(filtered["export"]["type_filter"], "applied");
    assert_eq!(whole["export"]["type_filter"], "not-asked");
    let bytes = |r: &Value| r["input"]["bytes"].as_u64().unwrap();
    assert!(
        bytes(&filtered) < bytes(&whole),
        "{} < {}",
        bytes(&filtered),
        bytes(&whole)
    );
    assert_eq!(
        whole["input"]["clinical_resources"].as_u64().unwrap()
            - filtered["input"]["clinical_resources"].as_u64().unwrap(),
        labs.len() as u64,
        "exactly the unrelated Observations stay out"
    );
}

#[test]
fn one_export_feeds_two_shards_that_together_screen_everyone_once() {
    if !crate::service::fhir_servers() {
        return;
    }
    let _server = server_to_ourselves();
    let base = service::fhir_url();
    let fhir = Fhir::plain();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let prefix = unique_prefix("shared");
    let patients = population(&prefix);
    let group = prefix.clone() + "-g";
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
    let shared = scratch("shared").join("export");
    let export = Command::new(env!("CARGO_BIN_EXE_trdscreen"))
        .args([
            "export",
            "--out",
            shared.to_str().unwrap(),
            "--level",
            &format!("group/{group}"),
        ])
        .env("TRDSCREEN_FHIR_BASE_URL", &base)
        .env("TRDSCREEN_FHIR_BULK_POLL_INTERVAL_SECS", "1")
        .output()
        .unwrap();
    assert_eq!(export.status.code(), Some(0), "{}", text(&export));
    assert!(shared.join("manifest.json").exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the export holds clinical data: owner only");

    let mut seen = Vec::new();
    for shard in 0..2 {
        let path = shared.join(format!("report-{shard}.json"));
        let out = batch(
            &[
                "--ndjson",
                shared.to_str().unwrap(),
                "--as-of",
                AS_OF,
                "--shard",
                &format!("{shard}/2"),
                "--export-max-age-secs",
                "3600",
                "--report",
                path.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        seen.extend(rows_by_patient(&csv_rows(&path)));
    }
    let seen_ids: Vec<&String> = seen.iter().map(|(id, _)| id).collect();
    let unique: BTreeSet<&String> = seen_ids.iter().copied().collect();
    assert_eq!(seen_ids.len(), unique.len(), "no patient in two shards");
    assert_eq!(
        seen.into_iter().collect::<BTreeMap<_, _>>(),
        expected_rows(&patients)
    );
    // A second export into the same directory replaces the first.
    let again = Command::new(env!("CARGO_BIN_EXE_trdscreen"))
        .args([
            "export",
            "--out",
            shared.to_str().unwrap(),
            "--level",
            &format!("group/{group}"),
        ])
        .env("TRDSCREEN_FHIR_BASE_URL", &base)
        .env("TRDSCREEN_FHIR_BULK_POLL_INTERVAL_SECS", "1")
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        !shared.join("report-0.json").exists(),
        "an export replaces all of an earlier one"
    );
}

#[test]
fn labs_and_vitals_screening_does_not_read_change_no_result() {
    let synth = |dir: &Path, unrelated: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_trdscreen"))
            .args(["synth", "--patients", "200", "--out", dir.to_str().unwrap()])
            .args(["--unrelated-observations", unrelated])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    };
    let (plain, labs) = (scratch("synth-plain"), scratch("synth-labs"));
    synth(&plain, "0");
    synth(&labs, "25");
    let size = |d: &Path| {
        std::fs::metadata(d.join("Observation.ndjson"))
            .unwrap()
            .len()
    };
    assert!(
        size(&labs) > 3 * size(&plain),
        "the labs and vitals are there"
    );
    let mut rows = Vec::new();
    for dir in [&plain, &labs] {
        let path = dir.join("report.json");
        let args = ["--ndjson", dir.to_str().unwrap(), "--as-of", "2026-11-01"];
        let out = batch(
            &[&args[..], &["--report", path.to_str().unwrap()]].concat(),
            &[],
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        rows.push(rows_by_patient(&csv_rows(&path)));
    }
    assert_eq!(rows[0], rows[1]);
}
