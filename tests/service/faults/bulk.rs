//! Bulk Data `$export` against a misbehaving server: 429 and 5xx while polling, `X-Progress`, several
//! files per type, cut-short downloads, status and file URLs on another origin, an export that
//! never completes, and a kick-off refused with an OperationOutcome.

use super::*;
use std::process::Command;
use trdscreen::error::Error;
use trdscreen::fhir::bulk::{
    ExportLevel, ExportOutcome, ExportProgress, ExportRequest, GroupId, TypeFilterOutcome, export,
};
use trdscreen::fhir::client::FhirClient;
use trdscreen::settings::BulkSettings;

const KICK_OFF: &str = "/fhir/Patient/$export";
const STATUS: &str = "/fhir/bulk-status/1";
const TOKEN: &str = "s3cret-token";

const PATIENTS_1: &str =
    "{\"resourceType\":\"Patient\",\"id\":\"a\"}\n{\"resourceType\":\"Patient\",\"id\":\"b\"}\n";
const PATIENTS_2: &str = "{\"resourceType\":\"Patient\",\"id\":\"c\"}\n";
const CONDITIONS_1: &str =
    "{\"resourceType\":\"Condition\",\"id\":\"c1\",\"subject\":{\"reference\":\"Patient/a\"}}\n";
const CONDITIONS_2: &str =
    "{\"resourceType\":\"Condition\",\"id\":\"c2\",\"subject\":{\"reference\":\"Patient/c\"}}\n";

/// Quick polls: the stub says `Retry-After: 0` wherever a test does not ask for a wait.
fn bulk_settings() -> BulkSettings {
    BulkSettings {
        poll_interval: Duration::from_secs(1),
        poll_interval_max: Duration::from_secs(3),
        max_wait: Duration::from_secs(60),
        download_retries: 2,
        download_timeout: Duration::from_secs(10),
        stall_timeout: Duration::from_secs(2),
        ..BulkSettings::default()
    }
}

fn client(stub: &Stub, bearer: bool) -> FhirClient {
    let mut s = settings(stub);
    let mut secrets = Secrets::default();
    if bearer {
        s.fhir.auth = AuthSettings {
            mode: AuthMode::Bearer,
            ..AuthSettings::default()
        };
        secrets.bearer_token = Some(TOKEN.into());
    }
    FhirClient::new(&s.fhir, &secrets).expect("the client builds")
}

/// An empty directory of its own for one test's files.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("trdscreen-bulk-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn accepted(stub: &Stub) {
    stub.on(
        "GET",
        KICK_OFF,
        Action::Reply(
            Answer::text(202, "text/plain", "")
                .with_header("Content-Location", &format!("{}{STATUS}", stub.origin)),
        ),
    );
    stub.on(
        "DELETE",
        STATUS,
        Action::Reply(Answer::text(202, "text/plain", "")),
    );
}

fn still_running(progress: &str) -> Action {
    Action::Reply(
        Answer::text(202, "text/plain", "")
            .with_header("X-Progress", progress)
            .with_header("Retry-After", "0"),
    )
}

/// Serves `body` at `/fhir/files/{name}` and returns its manifest entry.
fn file(stub: &Stub, resource_type: &str, name: &str, body: &str) -> Value {
    stub.on(
        "GET",
        &format!("/fhir/files/{name}"),
        Action::Reply(Answer::text(200, "application/fhir+ndjson", body)),
    );
    json!({"type": resource_type, "url": format!("{}/fhir/files/{name}", stub.origin)})
}

fn manifest(output: Vec<Value>, error: Vec<Value>, requires_token: bool) -> Answer {
    Answer {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: json!({"transactionTime": "2026-01-01T00:00:00Z", "request": "x",
                     "requiresAccessToken": requires_token, "output": output, "error": error})
        .to_string()
        .into_bytes(),
    }
}

fn complete(stub: &Stub, output: Vec<Value>) {
    stub.on(
        "GET",
        STATUS,
        Action::Reply(manifest(output, vec![], false)),
    );
}

async fn run(
    client: &FhirClient,
    bulk: &BulkSettings,
    dest: &std::path::Path,
) -> (Result<ExportOutcome, Error>, Vec<ExportProgress>) {
    let request = ExportRequest::parse(ExportLevel::Patient, &["Patient"], None).unwrap();
    let mut seen = Vec::new();
    let result = tokio::time::timeout(
        NO_HANG,
        export(client, bulk, &request, dest, |p| seen.push(p)),
    )
    .await
    .expect("the export ends");
    (result, seen)
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn a_429_while_polling_is_waited_out_and_x_progress_is_reported() {
    let stub = Stub::start().await;
    accepted(&stub);
    stub.on_times("GET", STATUS, 1, still_running("1 of 3 types"));
    stub.on_times(
        "GET",
        STATUS,
        1,
        Action::Reply(
            Answer::outcome(429, "throttled", "poll less often").with_header("Retry-After", "3"),
        ),
    );
    let patients = file(&stub, "Patient", "p1", PATIENTS_1);
    complete(&stub, vec![patients]);
    let dest = scratch("429");

    let (result, progress) = run(&client(&stub, false), &bulk_settings(), &dest).await;
    let outcome = result.expect("the export completes");

    assert_eq!(outcome.files.len(), 1);
    assert_eq!(read(&outcome.files[0].path), PATIENTS_1);
    assert_eq!(outcome.files[0].path, dest.join("Patient.1.ndjson"));
    assert_eq!(outcome.transaction_time, "2026-01-01T00:00:00Z");
    let polls = stub.requests_to("GET", STATUS);
    assert_eq!(polls.len(), 3, "202, 429, then the manifest");
    // The client's own interval would be 2 s by then (1 s, doubled after the 202): only the
    // Retry-After explains 3 s.
    assert!(
        polls[2].at.duration_since(polls[1].at) >= Duration::from_secs(3),
        "the 429's Retry-After was not waited out"
    );
    assert!(progress.contains(&ExportProgress::InProgress {
        polls: 1,
        x_progress: Some("1 of 3 types".into())
    }));
    assert!(progress.contains(&ExportProgress::Downloaded {
        resource_type: "Patient".into(),
        bytes: PATIENTS_1.len() as u64,
        done: 1,
        of: 1
    }));
    assert_eq!(stub.count("DELETE", STATUS), 1, "the status URL is deleted");
    let kick_off = &stub.requests_to("GET", KICK_OFF)[0];
    assert_eq!(
        kick_off.header("prefer"),
        Some("respond-async, handling=strict"),
        "a parameter the server cannot apply must be refused, not ignored"
    );
    assert_eq!(kick_off.header("accept"), Some("application/fhir+json"));
    assert_eq!(kick_off.query("_type").as_deref(), Some("Patient"));
    assert_eq!(
        kick_off.query("_outputFormat").as_deref(),
        Some("application/fhir+ndjson")
    );
}

#[tokio::test]
async fn a_500_while_polling_is_retried_and_one_that_persists_fails_with_its_status_and_issue_code()
{
    let stub = Stub::start().await;
    accepted(&stub);
    stub.on_times(
        "GET",
        STATUS,
        1,
        Action::Reply(Answer::outcome(500, "transient", "database busy")),
    );
    let patients = file(&stub, "Patient", "p1", PATIENTS_1);
    complete(&stub, vec![patients]);
    let (result, _) = run(&client(&stub, false), &bulk_settings(), &scratch("500")).await;
    result.expect("the export completes after one 500");
    assert_eq!(stub.count("GET", STATUS), 2);

    let stub = Stub::start().await;
    accepted(&stub);
    stub.on(
        "GET",
        STATUS,
        Action::Reply(Answer::outcome(500, "exception", "export job crashed")),
    );
    let (result, _) = run(&client(&stub, false), &bulk_settings(), &scratch("500b")).await;
    let err = result.expect_err("the export fails");
    assert!(
        matches!(&err, Error::Unavailable(m) if m.contains("500, issue exception")),
        "{err}"
    );
    assert!(
        !err.to_string().contains("crashed"),
        "never the server's text: {err}"
    );
    // fhir.max_retries is 3: the first poll and three retries.
    assert_eq!(stub.count("GET", STATUS), 4);
    assert_eq!(stub.count("DELETE", STATUS), 1);
}

#[tokio::test]
async fn every_file_of_a_manifest_with_two_files_per_type_is_downloaded_with_the_token() {
    let stub = Stub::start().await;
    accepted(&stub);
    stub.on_times("GET", STATUS, 1, still_running("half"));
    let output = vec![
        file(&stub, "Patient", "p1", PATIENTS_1),
        file(&stub, "Condition", "c1", CONDITIONS_1),
        file(&stub, "Patient", "p2", PATIENTS_2),
        file(&stub, "Condition", "c2", CONDITIONS_2),
    ];
    let outcomes = "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"error\",\"code\":\"processing\",\"diagnostics\":\"one resource failed\"}]}\n";
    let error = vec![file(&stub, "OperationOutcome", "e1", outcomes)];
    stub.on("GET", STATUS, Action::Reply(manifest(output, error, true)));
    let dest = scratch("two-per-type");

    let (result, progress) = run(&client(&stub, true), &bulk_settings(), &dest).await;
    let outcome = result.expect("the export completes");

    let names: Vec<_> = outcome
        .files
        .iter()
        .map(|f| {
            f.path
                .strip_prefix(&dest)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "Patient.1.ndjson",
            "Condition.1.ndjson",
            "Patient.2.ndjson",
            "Condition.2.ndjson"
        ]
    );
    for (f, body) in outcome
        .files
        .iter()
        .zip([PATIENTS_1, CONDITIONS_1, PATIENTS_2, CONDITIONS_2])
    {
        assert_eq!(read(&f.path), body);
        assert_eq!(f.bytes, body.len() as u64);
    }
    assert_eq!(outcome.errors.len(), 1);
    assert_eq!(
        outcome.errors[0].path,
        dest.join("error/OperationOutcome.1.ndjson")
    );
    assert_eq!(read(&outcome.errors[0].path), outcomes);
    assert!(progress.contains(&ExportProgress::Ready { files: 5 }));
    // requiresAccessToken: the token goes with the status polls and every file (same origin).
    for seen in stub.requests() {
        assert_eq!(
            seen.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str()),
            "{} {}",
            seen.method,
            seen.path()
        );
    }
    assert_eq!(stub.count("DELETE", STATUS), 1);
}

#[tokio::test]
async fn a_cut_short_download_starts_again_and_one_that_keeps_failing_leaves_no_file() {
    let stub = Stub::start().await;
    accepted(&stub);
    stub.on_times(
        "GET",
        "/fhir/files/p1",
        1,
        Action::Truncate {
            answer: Answer::text(200, "application/fhir+ndjson", PATIENTS_1),
            sent: 20,
        },
    );
    let patients = file(&stub, "Patient", "p1", PATIENTS_1);
    complete(&stub, vec![patients]);
    let dest = scratch("truncated");

    let (result, progress) = run(&client(&stub, false), &bulk_settings(), &dest).await;
    let outcome = result.expect("the second attempt succeeds");
    assert_eq!(read(&outcome.files[0].path), PATIENTS_1);
    assert_eq!(stub.count("GET", "/fhir/files/p1"), 2);
    assert!(progress.contains(&ExportProgress::Retrying {
        resource_type: "Patient".into(),
        attempt: 2
    }));

    let stub = Stub::start().await;
    accepted(&stub);
    stub.on(
        "GET",
        "/fhir/files/p1",
        Action::Truncate {
            answer: Answer::text(200, "application/fhir+ndjson", PATIENTS_1),
            sent: 20,
        },
    );
    complete(
        &stub,
        vec![json!({"type": "Patient", "url": format!("{}/fhir/files/p1", stub.origin)})],
    );
    let dest = scratch("truncated-always");
    let (result, _) = run(&client(&stub, false), &bulk_settings(), &dest).await;
    let err = result.expect_err("the download fails");
    assert!(
        matches!(&err, Error::Unavailable(m) if m.contains("cut short") && m.contains("3 attempts")),
        "{err}"
    );
    // download_retries is 2: three attempts in all.
    assert_eq!(stub.count("GET", "/fhir/files/p1"), 3);
    let left: Vec<_> = std::fs::read_dir(&dest).unwrap().collect();
    assert!(left.is_empty(), "no partial file is left: {left:?}");
    assert_eq!(stub.count("DELETE", STATUS), 1);
}

#[tokio::test]
async fn a_status_url_on_another_origin_is_never_polled() {
    let stub = Stub::start().await;
    let elsewhere = Stub::start().await;
    stub.on(
        "GET",
        KICK_OFF,
        Action::Reply(
            Answer::text(202, "text/plain", "")
                .with_header("Content-Location", &format!("{}{STATUS}", elsewhere.origin)),
        ),
    );
    let (result, _) = run(&client(&stub, true), &bulk_settings(), &scratch("origin")).await;
    let err = result.expect_err("refused");
    assert!(
        matches!(&err, Error::BadGateway(m) if m.contains("leaves the FHIR server")),
        "{err}"
    );
    assert!(
        elsewhere.requests().is_empty(),
        "{:?}",
        elsewhere.requests()
    );
}

#[tokio::test]
async fn a_relative_status_url_is_read_against_the_fhir_server() {
    let stub = Stub::start().await;
    stub.on(
        "GET",
        KICK_OFF,
        Action::Reply(Answer::text(202, "text/plain", "").with_header("Content-Location", STATUS)),
    );
    stub.on(
        "DELETE",
        STATUS,
        Action::Reply(Answer::text(202, "text/plain", "")),
    );
    let patients = file(&stub, "Patient", "p1", PATIENTS_1);
    complete(&stub, vec![patients]);
    let (result, _) = run(
        &client(&stub, false),
        &bulk_settings(),
        &scratch("relative"),
    )
    .await;
    result.expect("the export completes");
    assert_eq!(stub.count("GET", STATUS), 1);
}

#[tokio::test]
async fn a_file_that_needs_the_token_on_another_origin_is_refused() {
    let stub = Stub::start().await;
    let elsewhere = Stub::start().await;
    accepted(&stub);
    let away = file(&elsewhere, "Patient", "p1", PATIENTS_1);
    stub.on(
        "GET",
        STATUS,
        Action::Reply(manifest(vec![away], vec![], true)),
    );
    let dest = scratch("file-origin");

    let (result, _) = run(&client(&stub, true), &bulk_settings(), &dest).await;
    let err = result.expect_err("refused");
    assert!(
        matches!(&err, Error::BadGateway(m) if m.contains("Patient file") && m.contains("another server")),
        "{err}"
    );
    assert!(
        elsewhere.requests().is_empty(),
        "{:?}",
        elsewhere.requests()
    );
    assert_eq!(stub.count("DELETE", STATUS), 1);

    // Without requiresAccessToken the same file is fetched, and without the token.
    let stub = Stub::start().await;
    accepted(&stub);
    let away = file(&elsewhere, "Patient", "p1", PATIENTS_1);
    stub.on(
        "GET",
        STATUS,
        Action::Reply(manifest(vec![away], vec![], false)),
    );
    let (result, _) = run(
        &client(&stub, true),
        &bulk_settings(),
        &scratch("file-origin-2"),
    )
    .await;
    let outcome = result.expect("the export completes");
    assert_eq!(read(&outcome.files[0].path), PATIENTS_1);
    let fetched = elsewhere.requests_to("GET", "/fhir/files/p1");
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].header("authorization"), None);
}

#[tokio::test]
async fn an_export_that_never_completes_stops_at_the_deadline_and_is_cancelled() {
    let stub = Stub::start().await;
    accepted(&stub);
    // No Retry-After: the client's own interval (1 s, doubling, at most 3 s).
    stub.on(
        "GET",
        STATUS,
        Action::Reply(Answer::text(202, "text/plain", "").with_header("X-Progress", "forever")),
    );
    let bulk = BulkSettings {
        max_wait: Duration::from_secs(2),
        ..bulk_settings()
    };
    let (result, progress) = run(&client(&stub, false), &bulk, &scratch("deadline")).await;
    let err = result.expect_err("times out");
    assert!(
        matches!(&err, Error::Timeout(m) if m.contains("fhir.bulk.max_wait_secs")),
        "{err}"
    );
    assert!(stub.count("GET", STATUS) >= 2, "it kept polling until then");
    assert!(
        progress
            .iter()
            .any(|p| matches!(p, ExportProgress::InProgress { .. }))
    );
    assert_eq!(stub.count("DELETE", STATUS), 1, "the export is cancelled");
}

#[tokio::test]
async fn a_refused_kick_off_names_its_status_and_issue_code_but_not_the_servers_text() {
    let stub = Stub::start().await;
    stub.on(
        "GET",
        "/fhir/Group/g1/$export",
        Action::Reply(Answer::outcome(
            400,
            "not-supported",
            "_type Foo is not exported",
        )),
    );
    let request = ExportRequest::parse(
        ExportLevel::Group(GroupId::parse("g1").unwrap()),
        &["Foo"],
        None,
    )
    .unwrap();
    let dest = scratch("kick-off");
    let err = export(
        &client(&stub, false),
        &bulk_settings(),
        &request,
        &dest,
        |_| {},
    )
    .await
    .expect_err("refused");
    assert!(
        matches!(&err, Error::BadGateway(m) if m.contains("400, issue not-supported")),
        "{err}"
    );
    assert!(!err.to_string().contains("Foo"), "{err}");
    assert_eq!(stub.requests().len(), 1, "nothing after the kick-off");
}

#[tokio::test]
async fn an_export_into_a_directory_holding_files_is_refused_before_any_request() {
    let stub = Stub::start().await;
    let dest = scratch("not-empty");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join("Patient.1.ndjson"), "old").unwrap();
    let (result, _) = run(&client(&stub, false), &bulk_settings(), &dest).await;
    let err = result.expect_err("refused");
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("not empty")),
        "{err}"
    );
    assert!(stub.requests().is_empty());
}

/// Downloads at most this many files at once in the tests below.
const AT_ONCE: usize = 4;

#[tokio::test]
async fn many_small_files_arrive_in_parallel_within_the_bound_every_byte_once() {
    let stub = Stub::start().await;
    accepted(&stub);
    // One file per 20 resources, as servers that split every type do; every fifth answers 503 or
    // 429 once before its content, and each takes a while, so that downloads overlap.
    let mut output = Vec::new();
    let mut bodies = Vec::new();
    for n in 0..60 {
        let body: String = (0..20)
            .map(|k| format!("{{\"resourceType\":\"Patient\",\"id\":\"f{n}-p{k}\"}}\n"))
            .collect();
        let path = format!("/fhir/files/f{n}");
        if n % 5 == 0 {
            let status = if n % 10 == 0 { 503 } else { 429 };
            stub.on_times(
                "GET",
                &path,
                1,
                Action::Reply(
                    Answer::outcome(status, "transient", "busy").with_header("Retry-After", "0"),
                ),
            );
        }
        stub.on(
            "GET",
            &path,
            Action::Slow {
                answer: Answer::text(200, "application/fhir+ndjson", &body),
                millis: 40,
            },
        );
        output.push(json!({"type": "Patient", "url": format!("{}{path}", stub.origin)}));
        bodies.push(body);
    }
    complete(&stub, output);
    let bulk = BulkSettings {
        download_concurrency: AT_ONCE,
        ..bulk_settings()
    };
    let dest = scratch("parallel");

    let (result, progress) = run(&client(&stub, false), &bulk, &dest).await;
    let outcome = result.expect("the export completes");

    assert_eq!(outcome.files.len(), bodies.len());
    for (n, body) in bodies.iter().enumerate() {
        let file = &outcome.files[n];
        assert_eq!(file.path, dest.join(format!("Patient.{}.ndjson", n + 1)));
        assert_eq!(read(&file.path), *body, "file {n}: every byte, once");
        assert_eq!(file.bytes, body.len() as u64);
    }
    let left: Vec<_> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".part"))
        .collect();
    assert!(left.is_empty(), "no part file is left: {left:?}");
    let most = stub.max_in_flight();
    assert!(
        most <= AT_ONCE,
        "at most {AT_ONCE} downloads at once, saw {most}"
    );
    assert!(most > 1, "the files were not downloaded one at a time");
    let retried = progress
        .iter()
        .filter(|p| matches!(p, ExportProgress::Retrying { .. }))
        .count();
    assert_eq!(retried, 12, "each 503 and 429 retried once");
    let counted: u64 = progress
        .iter()
        .filter_map(|p| match p {
            ExportProgress::Received { bytes } => Some(*bytes),
            _ => None,
        })
        .sum();
    let total: u64 = bodies.iter().map(|b| b.len() as u64).sum();
    assert_eq!(counted, total, "the progress line counts the bytes");
}

#[tokio::test]
async fn a_refused_type_filter_is_dropped_and_the_export_asked_again_with_type_alone() {
    let stub = Stub::start().await;
    stub.on_times(
        "GET",
        KICK_OFF,
        1,
        Action::Reply(Answer::outcome(
            400,
            "not-supported",
            "_typeFilter is not supported",
        )),
    );
    accepted(&stub);
    let patients = file(&stub, "Patient", "p1", PATIENTS_1);
    complete(&stub, vec![patients]);
    let request = ExportRequest::parse(ExportLevel::Patient, &["Patient", "Observation"], None)
        .unwrap()
        .with_type_filter(vec!["Observation?code=44261-6%2C8480-6".into()]);
    let dest = scratch("refused-filter");

    let outcome = tokio::time::timeout(
        NO_HANG,
        export(
            &client(&stub, false),
            &bulk_settings(),
            &request,
            &dest,
            |_| {},
        ),
    )
    .await
    .expect("the export ends")
    .expect("the export completes without the filter");

    assert_eq!(outcome.type_filter, TypeFilterOutcome::Refused);
    let kick_offs = stub.requests_to("GET", KICK_OFF);
    assert_eq!(kick_offs.len(), 2);
    assert_eq!(
        kick_offs[0].query("_typeFilter").as_deref(),
        Some("Observation?code=44261-6%2C8480-6"),
        "the codes' commas stay inside the one query"
    );
    assert_eq!(kick_offs[1].query("_typeFilter"), None);
    assert_eq!(
        kick_offs[1].query("_type").as_deref(),
        Some("Patient,Observation")
    );
    assert_eq!(read(&outcome.files[0].path), PATIENTS_1);
}

/// A server that takes the `patient` parameter: the incremental export finds the changed patients,
/// then exports their whole records; the shards screen those patients, and only those.
#[test]
fn an_incremental_export_reads_the_changed_patients_whole_by_a_patient_scoped_export() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stub = rt.block_on(Stub::start());
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    let record: Vec<Value> = fixture["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].clone())
        .collect();
    let lines = |resources: &[&Value], kind: &str| -> String {
        resources
            .iter()
            .filter(|r| r["resourceType"] == kind)
            .map(|r| r.to_string() + "\n")
            .collect()
    };
    // Since last night only the Patient was edited.
    let patient = record
        .iter()
        .find(|r| r["resourceType"] == "Patient")
        .unwrap();
    stub.on(
        "GET",
        "/fhir/$export",
        Action::Reply(Answer::text(202, "text/plain", "").with_header(
            "Content-Location",
            &format!("{}/fhir/bulk-status/since", stub.origin),
        )),
    );
    // And one line cut short, which may be anyone's change: counted and said, not dropped.
    let cut = &patient.to_string()[..30];
    let changes = file(
        &stub,
        "Patient",
        "since-patients",
        &format!("{}{cut}\n", lines(&[patient], "Patient")),
    );
    stub.on(
        "GET",
        "/fhir/bulk-status/since",
        Action::Reply(manifest(vec![changes], vec![], false)),
    );
    // The patient-scoped export holds the whole record, and another patient the server added
    // although nobody asked for them.
    stub.on(
        "POST",
        KICK_OFF,
        Action::Reply(Answer::text(202, "text/plain", "").with_header(
            "Content-Location",
            &format!("{}/fhir/bulk-status/whole", stub.origin),
        )),
    );
    let stranger = json!({"resourceType": "Patient", "id": "not-asked-for"});
    let all: Vec<&Value> = record.iter().chain([&stranger]).collect();
    let mut output = Vec::new();
    for kind in [
        "Patient",
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
        "Condition",
        "Medication",
    ] {
        let text = lines(&all, kind);
        if !text.is_empty() {
            output.push(file(&stub, kind, &format!("whole-{kind}"), &text));
        }
    }
    stub.on(
        "GET",
        "/fhir/bulk-status/whole",
        Action::Reply(manifest(output, vec![], false)),
    );
    stub.on(
        "DELETE",
        "/fhir/bulk-status/*",
        Action::Reply(Answer::text(202, "text/plain", "")),
    );
    let out = scratch("patient-scoped");
    let exported = Command::new(env!("CARGO_BIN_EXE_trdscreen"))
        .args([
            "export",
            "--out",
            out.to_str().unwrap(),
            "--since",
            "2026-11-19T00:00:00Z",
        ])
        .env("TRDSCREEN_FHIR_BASE_URL", stub.base())
        .env("TRDSCREEN_FHIR_BULK_POLL_INTERVAL_SECS", "1")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&exported.stderr).into_owned()
        + &String::from_utf8_lossy(&exported.stdout);
    assert_eq!(exported.status.code(), Some(0), "{said}");
    assert!(said.contains("patient-export"), "{said}");
    assert!(
        said.contains("Lines of the changes that could not be read: 1"),
        "{said}"
    );

    let kick_off = stub.requests_to("POST", KICK_OFF).remove(0);
    assert_eq!(
        kick_off.header("prefer"),
        Some("respond-async, handling=strict")
    );
    let parameters = kick_off.json().expect("a Parameters body");
    let asked: Vec<&str> = parameters["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "patient")
        .map(|p| p["valueReference"]["reference"].as_str().unwrap())
        .collect();
    assert_eq!(asked, [format!("Patient/{PATIENT}")]);
    assert!(
        parameters.to_string().contains("_typeFilter"),
        "the whole records are filtered as the first export was: {parameters}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("changed-patients.txt")).unwrap(),
        format!("{PATIENT}\n")
    );

    let report = out.join("report.json");
    let screened = Command::new(env!("CARGO_BIN_EXE_trdscreen"))
        .args(["batch", "--ndjson", out.to_str().unwrap(), "--as-of", AS_OF])
        .args(["--report", report.to_str().unwrap()])
        .env_remove("TRDSCREEN_FHIR_BASE_URL")
        .output()
        .unwrap();
    assert_eq!(
        screened.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&screened.stderr)
    );
    let csv = std::fs::read_to_string(report.with_extension("csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "only the patient asked for: {csv}");
    assert!(rows[0].starts_with(&format!("{PATIENT},MET,")), "{csv}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["incremental"]["full_read"], "patient-export");
    assert_eq!(r["incremental"]["changed_patients"], 1);
    assert_eq!(r["incremental"]["screened_in_full"], 1);
    assert_eq!(r["incremental"]["unreadable_lines"], 1);
    assert_eq!(
        r["incremental"]["not_asked_for"], 1,
        "the patient nobody asked for is counted, not screened"
    );
}
