//! Incremental nightly runs (`--since`) against the real FHIR server: the changed patients are
//! found, and each is screened on their whole record, never on the changes alone. A patient whose
//! Patient resource alone was edited keeps their Flag and CarePlan; a patient with only a new
//! PHQ-9 gets the result their whole record gives; a patient whose new data turns them from MET to
//! NOT_MET still has the Flag withdrawn. A run killed half way and run again loses no one and
//! writes no second Flag or CarePlan.

use super::*;

const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";

/// Two antidepressant trials at adequate dose and duration: sertraline (PHQ-9 20 to 19: failed),
/// then venlafaxine, whose outcome the later scores decide. Scores are `(fixture id, day, value)`.
fn two_trials(prefix: &str, scores: &[(&str, &str, i64)]) -> Vec<Value> {
    let patient = format!("{prefix}-p");
    let subject = json!({"reference": format!("Patient/{patient}")});
    let order = |id: &str, code: &str, name: &str, mg: i64, start: &str| {
        json!({"resourceType": "MedicationRequest", "id": format!("{prefix}-{id}"),
            "status": "completed", "intent": "order", "subject": subject, "authoredOn": start,
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": name}]},
            "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": mg, "unit": "mg"}}]}],
            "dispenseRequest": {"expectedSupplyDuration": {"value": 84, "unit": "days", "code": "d"}}})
    };
    let mut resources = vec![
        json!({"resourceType": "Patient", "id": patient}),
        json!({"resourceType": "Condition", "id": format!("{prefix}-dx"), "subject": subject,
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F33.1"}]},
            "onsetDateTime": "2023-12-01"}),
        order(
            "sertraline",
            "36437",
            "sertraline 100 MG",
            100,
            "2024-01-08",
        ),
        order(
            "venlafaxine",
            "39786",
            "venlafaxine 150 MG",
            150,
            "2024-04-08",
        ),
    ];
    for (id, day, score) in [("phq-1", "2024-01-02", 20), ("phq-2", "2024-04-01", 19)]
        .into_iter()
        .chain(scores.iter().copied())
    {
        resources.push(phq9(prefix, id, day, score));
    }
    resources
}

fn phq9(prefix: &str, id: &str, day: &str, score: i64) -> Value {
    json!({"resourceType": "Observation", "id": format!("{prefix}-{id}"), "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
        "subject": {"reference": format!("Patient/{prefix}-p")},
        "effectiveDateTime": day, "valueInteger": score})
}

/// `trdscreen screen --patient ID --write-back flag-and-care-plan`, as a clinician's system would.
fn screen_and_write(patient: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_trdscreen"))
        .args([
            "screen",
            "--patient",
            patient,
            "--as-of",
            AS_OF,
            "--write-back",
            "flag-and-care-plan",
        ])
        .env("TRDSCREEN_FHIR_BASE_URL", service::fhir_url())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// An instant on the FHIR server's own clock, before anything written after it: the
/// `meta.lastUpdated` of a Group (a type the nightly export does not carry).
fn server_now(fhir: &Fhir, rt: &tokio::runtime::Runtime) -> String {
    let clock = json!({"resourceType": "Group", "id": unique_prefix("clock"), "type": "person",
        "actual": false});
    let stored = rt.block_on(fhir.put(&clock));
    stored["meta"]["lastUpdated"].as_str().unwrap().to_owned()
}

/// The row the job must write for a patient: their whole record screened by the core, with the
/// write-back outcome expected.
fn expected_row(resources: &[Value], write_back: &str) -> String {
    let row = expected_rows(&[resources.to_vec()])
        .into_values()
        .next()
        .unwrap();
    let mut fields: Vec<&str> = row.trim_end().split(',').collect();
    let n = fields.len();
    fields[n - 2] = write_back;
    fields.join(",") + "\n"
}

fn incremental_args<'a>(since: &'a str, report: &'a Path) -> Vec<&'a str> {
    vec![
        "--bulk",
        "system",
        "--since",
        since,
        "--as-of",
        AS_OF,
        "--write-back",
        "flag-and-care-plan",
        "--report",
        report.to_str().unwrap(),
    ]
}

#[test]
fn an_incremental_run_screens_each_changed_patient_on_the_whole_record() {
    if !crate::service::fhir_servers() {
        return;
    }
    let _server = server_to_ourselves();
    let base = service::fhir_url();
    let fhir = Fhir::plain();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The patient: MET, with an active Flag and a draft CarePlan.
    let met = rt.block_on(fhir.load("typical-patient.json", "inc-met"));
    // POSSIBLE until a PHQ-9 shows the venlafaxine trial failed.
    let phq_prefix = unique_prefix("inc-phq");
    let phq = two_trials(&phq_prefix, &[]);
    // MET (both trials failed) until a PHQ-9 shows the venlafaxine trial responded.
    let turn_prefix = unique_prefix("inc-turn");
    let turn = two_trials(&turn_prefix, &[("phq-3", "2024-06-28", 17)]);
    // MET, and nothing about them changes.
    let quiet = rt.block_on(fhir.load("scenarios/met-two-failed-ssri-snri.json", "inc-quiet"));
    // Their orders name Medications by reference; only a Medication will change.
    let by_reference = rt.block_on(fhir.load("fhir/requests-medication-reference.json", "inc-med"));
    rt.block_on(async {
        for r in phq.iter().chain(&turn) {
            fhir.put(r).await;
        }
    });
    let (phq_id, turn_id) = (format!("{phq_prefix}-p"), format!("{turn_prefix}-p"));
    for patient in [
        &met.patient_id,
        &phq_id,
        &turn_id,
        &quiet.patient_id,
        &by_reference.patient_id,
    ] {
        screen_and_write(patient);
    }
    let flag_before = rt.block_on(fhir.flags(&met.patient_id)).remove(0);
    let plan_before = rt.block_on(fhir.care_plans(&met.patient_id)).remove(0);
    assert_eq!(flag_before["status"], "active");

    let since = server_now(&fhir, &rt);
    // Only the Patient resource is edited (a phone number added).
    let mut patient = met.resource("typical-patient");
    patient["telecom"] = json!([{"system": "phone", "value": "555-0100"}]);
    let new_phq = phq9(&phq_prefix, "phq-3", "2024-06-28", 17);
    let responded = phq9(&turn_prefix, "phq-4", "2024-07-05", 4);
    // A Medication corrected (a display added): every record that references it changed.
    let mut medication = by_reference.resource("med-sertraline");
    medication["code"]["text"] = json!("sertraline 50 MG Oral Tablet");
    rt.block_on(async {
        fhir.put(&patient).await;
        fhir.put(&new_phq).await;
        fhir.put(&responded).await;
        fhir.put(&medication).await;
    });

    let out_dir = scratch("incremental");
    let report_path = out_dir.join("report.json");
    let out = batch(
        &incremental_args(&since, &report_path),
        &[
            ("TRDSCREEN_FHIR_BASE_URL", base.as_str()),
            ("TRDSCREEN_FHIR_BULK_POLL_INTERVAL_SECS", "1"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    rt.block_on(async {
        let flag = fhir.flags(&met.patient_id).await.remove(0);
        assert_eq!(flag["status"], "active", "the true Flag stays");
        assert_eq!(flag["meta"]["versionId"], flag_before["meta"]["versionId"]);
        let plan = fhir.care_plans(&met.patient_id).await.remove(0);
        assert_eq!(plan["status"], plan_before["status"]);
        assert_eq!(plan["meta"]["versionId"], plan_before["meta"]["versionId"]);

        let flag = fhir.flags(&phq_id).await.remove(0);
        assert_eq!(flag["status"], "active");
        assert!(flag.to_string().contains("trd-met"), "{flag}");

        let flag = fhir.flags(&turn_id).await.remove(0);
        assert_eq!(
            flag["status"], "inactive",
            "a true change is still withdrawn"
        );
        let plan = fhir.care_plans(&turn_id).await.remove(0);
        assert_eq!(plan["status"], "revoked");
    });

    let r = report(&report_path);
    let incremental = &r["incremental"];
    assert!(
        incremental["changed_patients"].as_u64().unwrap() >= 4,
        "{r:#}"
    );
    assert_eq!(
        incremental["screened_in_full"], r["patients"]["screened"],
        "every changed patient screened was read whole: {r:#}"
    );
    // The FHIR test server takes no `patient` parameter: each is read as ScreenPatient reads.
    assert_eq!(incremental["full_read"], "per-patient");
    assert!(
        text(&out).contains("changed patients found"),
        "the summary says it: {}",
        text(&out)
    );

    let rows = rows_by_patient(&csv_rows(&report_path));
    let mut phq_now = phq.clone();
    phq_now.push(new_phq);
    let mut turn_now = turn.clone();
    turn_now.push(responded);
    let mut met_now = met.resources.clone();
    met_now.retain(|r| r["resourceType"] != "Patient");
    met_now.push(patient);
    assert_eq!(
        rows[&met.patient_id],
        expected_row(&met_now, "unchanged"),
        "the Patient edit is screened on the whole record: still MET, nothing written"
    );
    assert_eq!(rows[&phq_id], expected_row(&phq_now, "changed"));
    assert!(rows[&phq_id].contains(",MET,"), "the new score decides");
    assert_eq!(rows[&turn_id], expected_row(&turn_now, "changed"));
    assert!(rows[&turn_id].contains(",NOT_MET,"));
    assert!(
        !rows.contains_key(&quiet.patient_id),
        "a patient with no change is not screened"
    );
    let mut by_reference_now = by_reference.resources.clone();
    by_reference_now.retain(|r| r["id"] != medication["id"]);
    by_reference_now.push(medication);
    assert_eq!(
        rows[&by_reference.patient_id],
        expected_row(&by_reference_now, "unchanged"),
        "a changed Medication changes the records that reference it"
    );
}

#[test]
fn an_incremental_run_killed_half_way_and_run_again_loses_no_one_and_writes_nothing_twice() {
    if !crate::service::fhir_servers() {
        return;
    }
    let _server = server_to_ourselves();
    let base = service::fhir_url();
    let fhir = Fhir::plain();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let since = server_now(&fhir, &rt);
    let prefix = unique_prefix("inc-kill");
    let patients = population(&prefix);
    rt.block_on(async {
        for r in patients.iter().flatten() {
            fhir.put(r).await;
        }
    });
    let out_dir = scratch("incremental-kill");
    let checkpoint = out_dir.join("job.checkpoint");
    let report_path = out_dir.join("report.json");
    let mut args = vec!["batch"];
    args.extend(incremental_args(&since, &report_path));
    args.extend(["--checkpoint", checkpoint.to_str().unwrap()]);
    let env = [
        ("TRDSCREEN_FHIR_BASE_URL", base.as_str()),
        ("TRDSCREEN_FHIR_BULK_POLL_INTERVAL_SECS", "1"),
        ("TRDSCREEN_BATCH_PATIENTS_PER_SECOND", "15"),
    ];
    let mut child = crate::child::spawn(
        Command::new(env!("CARGO_BIN_EXE_trdscreen"))
            .args(&args)
            .envs(env)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
        "the nightly job starts",
    );
    let half = patients.len() / 2;
    let mut lines = 0;
    for _ in 0..3000 {
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
        .args(&args)
        .envs(env)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let journal = std::fs::read_to_string(&checkpoint).unwrap();
    let ours: Vec<&str> = journal
        .lines()
        .skip(1)
        .map(|l| l.split('"').nth(3).unwrap())
        .filter(|id| id.starts_with(&prefix))
        .collect();
    let unique: BTreeSet<&str> = ours.iter().copied().collect();
    assert_eq!(ours.len(), patients.len(), "each patient journaled once");
    assert_eq!(unique.len(), patients.len(), "no patient lost");
    let rows = rows_by_patient(&csv_rows(&report_path));
    let rows: BTreeMap<String, String> = rows
        .into_iter()
        .filter(|(id, _)| id.starts_with(&prefix))
        .collect();
    assert_eq!(rows, expected_with_write_back(&patients, &rows));
    rt.block_on(async {
        for (patient, row) in &rows {
            let positive = row.contains(",MET,") || row.contains(",POSSIBLE,");
            let expected = usize::from(positive);
            assert_eq!(
                fhir.flags(patient).await.len(),
                expected,
                "{patient}: Flags"
            );
            assert_eq!(
                fhir.care_plans(patient).await.len(),
                expected,
                "{patient}: CarePlans"
            );
        }
    });
}

/// The gate's own test, by the other door: a directory whose manifest says it holds changes since
/// an instant is never screened as if its lines were the patients' records. Its one patient, MET on
/// the server, has only a Patient line and a made-up PHQ-9 in the files: the job reads the record
/// whole from the server, and the chart is left as it was. A line of the changes that cannot be
/// read is counted in the report.
#[test]
fn a_changes_only_directory_never_reaches_write_back_as_a_whole_record() {
    if !crate::service::fhir_servers() {
        return;
    }
    let _server = server_to_ourselves();
    let base = service::fhir_url();
    let fhir = Fhir::plain();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let met = rt.block_on(fhir.load("typical-patient.json", "gate"));
    screen_and_write(&met.patient_id);
    let flag_before = rt.block_on(fhir.flags(&met.patient_id)).remove(0);

    let dir = scratch("changes-only");
    let patient = met.resource("typical-patient");
    let remission = json!({"resourceType": "Observation", "id": "not-on-the-server", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
        "subject": {"reference": format!("Patient/{}", met.patient_id)},
        "effectiveDateTime": "2025-05-30", "valueInteger": 0});
    std::fs::write(dir.join("Patient.ndjson"), patient.to_string() + "\n").unwrap();
    // And a line cut short: whose change it holds cannot be known, and the run says so.
    let cut = &remission.to_string()[..40];
    std::fs::write(
        dir.join("Observation.ndjson"),
        format!("{remission}\n{cut}\n"),
    )
    .unwrap();
    let manifest = json!({"transactionTime": "2026-11-20T01:00:00Z",
        "request": format!("{base}/$export?_since=2026-11-19T01:00:00Z"),
        "requiresAccessToken": false, "output": []});
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    let report_path = dir.join("report.json");
    let out = batch(
        &[
            "--ndjson",
            dir.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--write-back",
            "flag-and-care-plan",
            "--report",
            report_path.to_str().unwrap(),
        ],
        &[("TRDSCREEN_FHIR_BASE_URL", base.as_str())],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let flag = rt.block_on(fhir.flags(&met.patient_id)).remove(0);
    assert_eq!(
        flag["status"], "active",
        "nothing is concluded from the changes"
    );
    assert_eq!(flag["meta"]["versionId"], flag_before["meta"]["versionId"]);
    let rows = rows_by_patient(&csv_rows(&report_path));
    assert_eq!(
        rows[&met.patient_id],
        expected_row(&met.resources, "unchanged"),
        "screened on the record the server holds, not on the files' lines"
    );
    let r = report(&report_path);
    assert_eq!(r["incremental"]["full_read"], "per-patient");
    assert_eq!(r["export"]["scope"], "changes");
    assert_eq!(r["incremental"]["unreadable_lines"], 1);
    assert!(
        text(&out).contains("Lines of the changes that could not be read: 1"),
        "{}",
        text(&out)
    );
}
