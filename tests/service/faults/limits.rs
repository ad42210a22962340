//! Every answer is bounded in size and time (issue 16, defect 10): an answer larger than
//! `fhir.max_response_bytes` is refused as RESOURCE_EXHAUSTED as soon as it passes the limit (not
//! read whole, not retried), whether its Content-Length says so or it never ends; a Bulk Data
//! manifest likewise; an export's files together stop at `fhir.bulk.max_download_bytes`, and a body
//! trickled in a byte at a time ends in the request's timeout.

use super::*;
use trdscreen::error::Error;
use trdscreen::fhir::bulk::{ExportLevel, ExportRequest, export};
use trdscreen::fhir::client::FhirClient;
use trdscreen::settings::BulkSettings;

const LIMIT: u64 = 64 * 1024;

fn limited(stub: &Stub) -> Settings {
    let mut s = settings(stub);
    s.fhir.max_response_bytes = LIMIT;
    s
}

/// A searchset Bundle of about `bytes` bytes (a note on the Bundle), well-formed.
fn big_searchset(stub: &Stub, bytes: usize) -> Answer {
    let mut bundle = searchset(&[], &stub.base(), None);
    bundle["id"] = json!("x".repeat(bytes));
    Answer::json(200, &bundle)
}

#[tokio::test]
async fn a_search_answer_over_the_limit_is_resource_exhausted_and_not_retried() {
    let stub = stub_with_patient().await;
    stub.on(
        "GET",
        "/fhir/Condition",
        Action::Reply(big_searchset(&stub, 2 * LIMIT as usize)),
    );
    let mut client = serve(&limited(&stub), &Secrets::default()).await;

    let status = screen(&mut client).await.expect_err("too large");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(
        status.message(),
        "resource exhausted: the FHIR server's Condition answer is larger than 65536 bytes (fhir.max_response_bytes)"
    );
    assert_eq!(stub.count("GET", "/fhir/Condition"), 1, "not retried");

    // Under the limit, the same answer is read.
    stub.clear_rules();
    stub.on(
        "GET",
        "/fhir/Condition",
        Action::Reply(big_searchset(&stub, LIMIT as usize / 2)),
    );
    assert_met(&screen(&mut client).await.expect("read"));
}

#[tokio::test]
async fn an_answer_without_end_is_cut_at_the_limit() {
    let stub = stub_with_patient().await;
    stub.on(
        "GET",
        &patient_path(),
        Action::Endless {
            status: 200,
            chunk: vec![b' '; 8192],
        },
    );
    let mut s = limited(&stub);
    // Long enough that only the size limit can end the read.
    s.fhir.timeout = Duration::from_secs(60);
    s.grpc.call_timeout = Duration::from_secs(120);
    let mut client = serve(&s, &Secrets::default()).await;

    let started = Instant::now();
    let status = screen(&mut client).await.expect_err("too large");
    assert!(started.elapsed() < NO_HANG);
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status
            .message()
            .contains("Patient answer is larger than 65536 bytes"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_body_trickled_a_byte_at_a_time_ends_in_the_request_timeout() {
    let stub = stub_with_patient().await;
    stub.on(
        "GET",
        "/fhir/Procedure",
        Action::Trickle {
            answer: Answer::json(200, &searchset(&[], &stub.base(), None)),
            every: Duration::from_millis(200),
        },
    );
    let mut s = settings(&stub);
    s.fhir.timeout = Duration::from_secs(1);
    s.fhir.max_retries = 1;
    let mut client = serve(&s, &Secrets::default()).await;

    let started = Instant::now();
    let status = screen(&mut client).await.expect_err("too slow");
    assert!(started.elapsed() < NO_HANG);
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("Procedure request in time"),
        "{}",
        status.message()
    );
    assert_eq!(stub.count("GET", "/fhir/Procedure"), 2, "retried once");
}

// --- Bulk Data ---------------------------------------------------------------------------------

const STATUS: &str = "/fhir/bulk-status/limits";

/// A kick-off accepted, and the manifest `answer` at the status URL.
fn export_answering(stub: &Stub, manifest: Answer) {
    stub.on(
        "GET",
        "/fhir/Patient/$export",
        Action::Reply(
            Answer::text(202, "text/plain", "")
                .with_header("Content-Location", &format!("{}{STATUS}", stub.origin)),
        ),
    );
    stub.on("GET", STATUS, Action::Reply(manifest));
    stub.on(
        "DELETE",
        STATUS,
        Action::Reply(Answer::text(202, "text/plain", "")),
    );
}

fn manifest_of(stub: &Stub, files: &[&str]) -> Answer {
    let output: Vec<Value> = files
        .iter()
        .map(|name| json!({"type": "Patient", "url": format!("{}/fhir/files/{name}", stub.origin)}))
        .collect();
    Answer::json(
        200,
        &json!({"transactionTime": "2026-01-01T00:00:00Z", "request": "x",
                "requiresAccessToken": false, "output": output, "error": []}),
    )
}

async fn run_export(
    stub: &Stub,
    bulk: BulkSettings,
    dest: &std::path::Path,
) -> Result<trdscreen::fhir::bulk::ExportOutcome, Error> {
    let mut s = limited(stub);
    s.fhir.bulk = BulkSettings {
        poll_interval: Duration::from_secs(1),
        download_retries: 1,
        ..bulk
    };
    let client = FhirClient::new(&s.fhir, &Secrets::default()).expect("the client builds");
    let request = ExportRequest::parse(ExportLevel::Patient, &["Patient"], None).unwrap();
    let _ = std::fs::remove_dir_all(dest);
    tokio::time::timeout(
        NO_HANG,
        export(&client, &s.fhir.bulk, &request, dest, |_| {}),
    )
    .await
    .expect("the export ends")
}

fn scratch(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("trdscreen-limits-{name}-{}", std::process::id()))
}

#[tokio::test]
async fn a_bulk_manifest_over_the_limit_is_resource_exhausted() {
    let stub = Stub::start().await;
    let names: Vec<String> = (0..2000).map(|i| format!("{i:0>40}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    export_answering(&stub, manifest_of(&stub, &names));

    let err = run_export(&stub, BulkSettings::default(), &scratch("manifest"))
        .await
        .expect_err("too large");
    assert!(
        matches!(&err, Error::ResourceExhausted(m) if m.contains("$export manifest answer is larger than 65536 bytes")),
        "{err}"
    );
}

#[tokio::test]
async fn an_exports_files_together_stop_at_the_download_limit() {
    let stub = Stub::start().await;
    let line = "{\"resourceType\":\"Patient\",\"id\":\"a\"}\n".repeat(1000);
    for name in ["one", "two"] {
        stub.on(
            "GET",
            &format!("/fhir/files/{name}"),
            Action::Reply(Answer::text(200, "application/fhir+ndjson", &line)),
        );
    }
    stub.on(
        "GET",
        "/fhir/files/endless",
        Action::Endless {
            status: 200,
            chunk: line.as_bytes().to_vec(),
        },
    );
    let bulk = BulkSettings {
        max_download_bytes: (line.len() * 3 / 2) as u64,
        ..BulkSettings::default()
    };

    // Two files, one and a half files' room: the second stops the export.
    export_answering(&stub, manifest_of(&stub, &["one", "two"]));
    let dest = scratch("two-files");
    let err = run_export(&stub, bulk.clone(), &dest)
        .await
        .expect_err("over the limit");
    assert!(
        matches!(&err, Error::ResourceExhausted(m) if m.contains("fhir.bulk.max_download_bytes")),
        "{err}"
    );
    assert!(stub.count("GET", "/fhir/files/two") <= 1, "not retried");
    assert!(stub.count("GET", "/fhir/files/one") <= 1, "not retried");
    // Files download a few at a time: which of the two met the limit first varies; a file left is
    // whole, a cut one is removed.
    let left: Vec<std::path::PathBuf> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.len() <= 1, "{left:?}");
    for file in &left {
        assert!(
            !file.to_string_lossy().ends_with(".part"),
            "the cut file is removed: {left:?}"
        );
        assert_eq!(
            std::fs::read_to_string(file).unwrap(),
            line,
            "a file left is whole"
        );
    }

    // A file without end stops there too.
    stub.clear_rules();
    stub.on(
        "GET",
        "/fhir/files/endless",
        Action::Endless {
            status: 200,
            chunk: line.as_bytes().to_vec(),
        },
    );
    export_answering(&stub, manifest_of(&stub, &["endless"]));
    let err = run_export(&stub, bulk, &scratch("endless"))
        .await
        .expect_err("over the limit");
    assert!(matches!(&err, Error::ResourceExhausted(_)), "{err}");
}
