//! The audit trail of issue 17, told as the hospital's security officer would check it: every
//! access through `trdscreen serve` (ScreenPatient with its write-back, EvaluateBundle,
//! ScreenPopulation) and through the nightly job is an AuditEvent on the audit server (the real
//! FHIR server), field by field; with the endpoint down calls go on, records wait on disk, survive
//! a killed process, and arrive once each when it is back; and a trail that cannot keep a record
//! refuses the call when the settings say so.

mod queue;

use crate::child;
use crate::service::{self, Fhir, timestamp, unique_prefix};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use tonic::Code;
use trdscreen::proto::screen_population_request::Cohort;
use trdscreen::proto::{
    EvaluateBundleRequest, PatientIds, ScreenPatientRequest, ScreenPopulationRequest, WriteBackMode,
};
use trdscreen::settings::{Settings, WhenUnrecorded};

const AS_OF: &str = "2025-06-01";
const BALP: &str = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.";

fn spill_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(unique_prefix(&format!("trdscreen-audit-{name}")))
}

/// Settings for a service reading `fhir` and auditing to `audit` under its own service name.
fn audited(fhir: &str, audit: &str, service_name: &str, dir: &Path) -> Settings {
    let mut s = service::settings(fhir);
    s.audit.base_url = Some(audit.parse().expect("an http(s) URL"));
    s.audit.spill_dir = Some(dir.to_owned());
    s.audit.service_name = service_name.to_owned();
    s.audit.retry_interval = Duration::from_millis(200);
    s.grpc.shutdown_grace = Duration::from_secs(1);
    s
}

/// The AuditEvents naming `Patient/{patient}` that `service_name` recorded, oldest first.
async fn events_of(fhir: &Fhir, patient: &str, service_name: &str) -> Vec<Value> {
    let url = format!(
        "{}/AuditEvent?entity=Patient/{patient}&_count=100",
        fhir.base
    );
    let bundle: Value = fhir
        .http
        .get(&url)
        .header("Accept", "application/fhir+json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut found: Vec<Value> = bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|e| e["resource"].clone()).collect())
        .unwrap_or_default();
    found.retain(|e| e["source"]["observer"]["display"] == service_name);
    found.sort_by(|a, b| {
        a["recorded"]
            .as_str()
            .cmp(&b["recorded"].as_str())
            .then(profile(a).cmp(&profile(b)))
    });
    found
}

/// Waits (up to 30 s) until `count` events naming the patient are on the server.
async fn wait_for_events(
    fhir: &Fhir,
    patient: &str,
    service_name: &str,
    count: usize,
) -> Vec<Value> {
    for _ in 0..150 {
        let found = events_of(fhir, patient, service_name).await;
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    events_of(fhir, patient, service_name).await
}

fn profile(event: &Value) -> String {
    event["meta"]["profile"][0]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches(BALP)
        .to_owned()
}

fn entity_references(event: &Value) -> Vec<String> {
    event["entity"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["what"]["reference"].as_str().map(str::to_owned))
        .collect()
}

fn detail(event: &Value, reference: &str, kind: &str) -> String {
    event["entity"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["what"]["reference"] == reference)
        .and_then(|e| e["detail"].as_array())
        .and_then(|d| d.iter().find(|d| d["type"] == kind))
        .and_then(|d| d["valueString"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn request_id(event: &Value) -> Option<String> {
    event["entity"]
        .as_array()?
        .iter()
        .find(|e| e["type"]["code"] == "XrequestId")
        .and_then(|e| e["what"]["identifier"]["value"].as_str())
        .map(str::to_owned)
}

fn with_request_id<T>(message: T, id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-request-id", id.parse().unwrap());
    request
}

#[tokio::test]
async fn every_access_through_the_service_is_an_audit_event_on_the_server_field_by_field() {
    if !service::fhir_servers() {
        return;
    }
    let fhir = Fhir::plain();
    let loaded = fhir.load("typical-patient.json", "audited").await;
    let patient = loaded.patient_id.clone();
    let name = unique_prefix("trdscreen-audit-calls");
    let dir = spill_dir("calls");
    let mut svc = service::start(audited(&fhir.base, &fhir.base, &name, &dir)).await;

    let screened = svc
        .client
        .screen_patient(with_request_id(
            ScreenPatientRequest {
                patient_id: patient.clone(),
                as_of: Some(timestamp(AS_OF)),
                write_back: WriteBackMode::FlagAndCarePlan as i32,
            },
            "req-screen-1",
        ))
        .await
        .expect("ScreenPatient is served")
        .into_inner();
    let write_back = screened.write_back.expect("a write-back result");
    assert!(write_back.changed, "{write_back:?}");
    let bundle = service::bundle_json(&fhir.base, &loaded.resources);
    svc.client
        .evaluate_bundle(with_request_id(
            EvaluateBundleRequest {
                bundle_json: bundle,
                as_of: Some(timestamp(AS_OF)),
            },
            "req-bundle-1",
        ))
        .await
        .expect("EvaluateBundle is served");
    let mut stream = svc
        .client
        .screen_population(ScreenPopulationRequest {
            cohort: Some(Cohort::PatientIds(PatientIds {
                ids: vec![patient.clone()],
            })),
            as_of: Some(timestamp(AS_OF)),
            write_back: WriteBackMode::None as i32,
        })
        .await
        .expect("ScreenPopulation is served")
        .into_inner();
    while let Some(answer) = stream.message().await.unwrap() {
        assert!(answer.error.is_none(), "{answer:?}");
    }
    svc.shutdown().await.unwrap();

    let events = wait_for_events(&fhir, &patient, &name, 4).await;
    let profiles: Vec<String> = events.iter().map(profile).collect();
    assert_eq!(events.len(), 4, "{profiles:?}");
    let find = |p: &str| {
        events
            .iter()
            .find(|e| profile(e) == p)
            .unwrap_or_else(|| panic!("no {p} event in {profiles:?}"))
    };
    let read = events
        .iter()
        .find(|e| profile(e) == "PatientRead" && request_id(e).as_deref() == Some("req-screen-1"))
        .expect("the ScreenPatient read");
    let created = find("PatientCreate");
    let bundle_read = events
        .iter()
        .find(|e| request_id(e).as_deref() == Some("req-bundle-1"))
        .expect("the EvaluateBundle read");
    let query = find("PatientQuery");

    for event in &events {
        assert_eq!(event["resourceType"], "AuditEvent");
        assert_eq!(event["type"]["code"], "rest");
        assert_eq!(event["outcome"], "0", "{event}");
        assert!(event["recorded"].as_str().unwrap().ends_with('Z'));
        let client = &event["agent"][0];
        assert_eq!(client["requestor"], true);
        assert_eq!(
            client["who"]["identifier"]["system"], "urn:trdscreen:unauthenticated",
            "callers.authentication = \"none\": the caller is named by its address"
        );
        assert!(
            client["network"]["address"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:"),
            "{client}"
        );
        assert_eq!(event["agent"][1]["who"]["display"], name.as_str());
        assert!(entity_references(event).contains(&format!("Patient/{patient}")));
    }
    assert_eq!(read["action"], "R");
    assert_eq!(read["subtype"][0]["code"], "read");
    assert_eq!(created["action"], "C");
    assert_eq!(request_id(created).as_deref(), Some("req-screen-1"));
    let flag = write_back.flag_reference.clone();
    let plan = write_back.care_plan_reference.clone();
    let refs = entity_references(created);
    assert!(refs.contains(&flag) && refs.contains(&plan), "{refs:?}");
    for written in [&flag, &plan] {
        assert_eq!(detail(created, written, "changed"), "true");
        assert_eq!(detail(created, written, "created"), "true");
    }
    assert_eq!(bundle_read["subtype"][1]["code"], "operation");
    assert_eq!(query["action"], "E");
    assert_eq!(
        query["entity"][1]["description"], "patient_ids",
        "the cohort as asked"
    );
    assert_eq!(
        query["entity"][1]["detail"][0]["valueString"], "1",
        "the population's size"
    );
    // Nothing was left waiting on disk.
    assert!(!dir.join("audit-spill.ndjson").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A TCP forwarder to the real FHIR server on a port fixed before it starts: the audit endpoint
/// is "down" while nothing listens there, and "back" once this runs.
async fn forward(listener: tokio::net::TcpListener, target: String) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            return;
        };
        let target = target.clone();
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

fn settings_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("settings.toml");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path
}

/// `trdscreen serve` as a child process (so it can be killed), on a free port, with `/metrics` on
/// `metrics` (or off).
fn serve(settings: &Path, metrics: &str) -> (child::Running, std::net::SocketAddr) {
    let port = free_port();
    let address: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let running = child::spawn(
        Command::new(env!("CARGO_BIN_EXE_trdscreen"))
            .args(["serve", "--config"])
            .arg(settings)
            .env("TRDSCREEN_GRPC_LISTEN", address.to_string())
            .env("TRDSCREEN_TELEMETRY_METRICS_LISTEN", metrics)
            .env_remove("TRDSCREEN_FHIR_BASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "trdscreen serve",
    );
    (running, address)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn connect_when_up(
    address: std::net::SocketAddr,
) -> trdscreen::proto::trd_screening_client::TrdScreeningClient<tonic::transport::Channel> {
    for _ in 0..100 {
        if let Ok(channel) = service::connect(address).await {
            return trdscreen::proto::trd_screening_client::TrdScreeningClient::new(channel);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("trdscreen serve did not come up on {address}");
}

fn spilled_lines(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("audit-spill.ndjson"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[tokio::test]
async fn with_the_endpoint_down_calls_go_on_and_every_record_arrives_once_after_a_kill_and_its_return()
 {
    if !service::fhir_servers() {
        return;
    }
    let fhir = Fhir::plain();
    let real = url::Url::parse(&fhir.base).unwrap();
    let target = format!(
        "{}:{}",
        real.host_str().unwrap(),
        real.port_or_known_default().unwrap()
    );
    let port = free_port(); // nothing listens here yet: the endpoint is down
    let mut audit_url = real.clone();
    audit_url.set_port(Some(port)).unwrap();
    let audit_url = audit_url.as_str().trim_end_matches('/').to_owned();
    let name = unique_prefix("trdscreen-audit-down");
    let dir = spill_dir("down");
    let spill = dir.join("spill");
    let settings = settings_file(
        &dir,
        &format!(
            "[audit]\nbase_url = \"{audit_url}\"\nspill_dir = \"{}\"\nservice_name = \"{name}\"\nretry_interval_ms = 200\n[fhir]\nmax_retries = 0\n",
            spill.display()
        ),
    );
    let loaded = service::with_prefix(
        &service::fixture_resources("typical-patient.json"),
        &unique_prefix("audit-down"),
    );
    let patient = loaded
        .iter()
        .find(|r| r["resourceType"] == "Patient")
        .and_then(|r| r["id"].as_str())
        .unwrap()
        .to_owned();
    let bundle = service::bundle_json("https://ehr.example.org/fhir", &loaded);

    let metrics = format!("127.0.0.1:{}", free_port());
    let (mut first, address) = serve(&settings, &metrics);
    let mut client = connect_when_up(address).await;
    for _ in 0..3 {
        client
            .evaluate_bundle(EvaluateBundleRequest {
                bundle_json: bundle.clone(),
                as_of: Some(timestamp(AS_OF)),
            })
            .await
            .expect("with the audit endpoint down the call goes on");
    }
    // The sender finds the endpoint down and puts the records on disk (fsync'd).
    for _ in 0..150 {
        if spilled_lines(&spill) == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(spilled_lines(&spill), 3, "the three records wait on disk");
    // ... and the metrics say so, for the alert (deploy/prometheus/alerts.yaml).
    let mut exposition = String::new();
    for _ in 0..50 {
        exposition = reqwest::get(format!("http://{metrics}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // A sample line, not the HELP text.
        if exposition
            .lines()
            .any(|l| l.trim_end() == "trdscreen_audit_spilling 1")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let value = |series: &str| -> f64 {
        exposition
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in {exposition}"))
    };
    assert_eq!(value("trdscreen_audit_spilling"), 1.0);
    assert_eq!(value("trdscreen_audit_queue_records"), 0.0);
    assert!(value("trdscreen_audit_spill_bytes") > 0.0);
    let taken = value("trdscreen_audit_records_total{outcome=\"queued\"}")
        + value("trdscreen_audit_records_total{outcome=\"spilled\"}");
    assert_eq!(taken, 3.0, "each record taken once, in memory or on disk");
    first.kill().unwrap();
    let _ = first.wait();
    assert!(
        events_of(&fhir, &patient, &name).await.is_empty(),
        "nothing reached the server while it was down"
    );

    // The endpoint comes back, and so does the service: it sends what the killed one left.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let forwarder = tokio::spawn(forward(listener, target));
    let (second, _) = serve(&settings, "");
    let events = wait_for_events(&fhir, &patient, &name, 3).await;
    assert_eq!(events.len(), 3, "each record once");
    let mut ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    for _ in 0..100 {
        if !spill.join("audit-spill.ndjson").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !spill.join("audit-spill.ndjson").exists(),
        "the spill file is removed once replayed"
    );
    drop(second);
    // Another wait: no record was sent a second time by the replay.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(events_of(&fhir, &patient, &name).await.len(), 3);
    forwarder.abort();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_trail_that_cannot_keep_a_record_refuses_the_call_or_lets_it_go_on_as_configured() {
    // The endpoint is down and the spill file may hold 64 KiB: it soon has no room. No FHIR
    // server is read (EvaluateBundle), so this needs none.
    let down = format!("http://127.0.0.1:{}/fhir", free_port());
    let bundle = service::bundle_json(
        "https://ehr.example.org/fhir",
        &service::fixture_resources("typical-patient.json"),
    );
    let call = |bundle: String| EvaluateBundleRequest {
        bundle_json: bundle,
        as_of: Some(timestamp(AS_OF)),
    };
    for when in [WhenUnrecorded::Refuse, WhenUnrecorded::Continue] {
        let dir = spill_dir("full");
        let mut settings = audited("", &down, "trdscreen-audit-full", &dir);
        settings.fhir.max_retries = 0;
        settings.audit.max_spill_bytes = 65_536;
        settings.audit.when_unrecorded = when;
        let mut svc = service::start(settings).await;
        let mut refused = None;
        for _ in 0..200 {
            match svc.client.evaluate_bundle(call(bundle.clone())).await {
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(status) => {
                    refused = Some(status);
                    break;
                }
            }
        }
        let spill_bytes = std::fs::metadata(dir.join("audit-spill.ndjson"))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(spill_bytes <= 65_536, "{spill_bytes}");
        match when {
            WhenUnrecorded::Refuse => {
                let status = refused.expect("a call is refused once no record can be kept");
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(status.message().contains("audit"), "{status:?}");
                assert!(spill_bytes > 0, "records were kept on disk until then");
            }
            WhenUnrecorded::Continue => {
                assert!(refused.is_none(), "{refused:?}");
            }
        }
        svc.shutdown().await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[tokio::test]
async fn the_nightly_job_records_each_patient_it_screens_under_one_run_id() {
    if !service::fhir_servers() {
        return;
    }
    let fhir = Fhir::plain();
    let name = unique_prefix("trdscreen-audit-batch");
    let dir = spill_dir("batch");
    let input = dir.join("export");
    std::fs::create_dir_all(&input).unwrap();
    let mut patients = Vec::new();
    let mut by_type: std::collections::BTreeMap<String, String> = Default::default();
    for n in 0..2 {
        let resources = service::with_prefix(
            &service::fixture_resources("typical-patient.json"),
            &unique_prefix(&format!("audit-batch{n}")),
        );
        for r in &resources {
            if r["resourceType"] == "Patient" {
                patients.push(r["id"].as_str().unwrap().to_owned());
            }
            let lines = by_type
                .entry(r["resourceType"].as_str().unwrap().to_owned())
                .or_default();
            lines.push_str(&r.to_string());
            lines.push('\n');
        }
    }
    for (kind, lines) in &by_type {
        std::fs::write(input.join(format!("{kind}.ndjson")), lines).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_trdscreen"))
        .args(["batch", "--ndjson"])
        .arg(&input)
        .args(["--as-of", AS_OF, "--report"])
        .arg(dir.join("report.json"))
        .env_remove("TRDSCREEN_FHIR_BASE_URL")
        .env("TRDSCREEN_AUDIT_BASE_URL", &fhir.base)
        .env("TRDSCREEN_AUDIT_SPILL_DIR", dir.join("spill"))
        .env("TRDSCREEN_AUDIT_SERVICE_NAME", &name)
        .env("TRDSCREEN_TELEMETRY_METRICS_LISTEN", "")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut runs = Vec::new();
    for patient in &patients {
        let events = events_of(&fhir, patient, &name).await;
        assert_eq!(events.len(), 1, "one event for {patient}");
        let event = &events[0];
        assert_eq!(profile(event), "PatientQuery");
        assert_eq!(event["outcome"], "0");
        assert_eq!(
            event["agent"][0]["who"]["identifier"]["value"], "trdscreen-batch",
            "the service asked, on its own schedule"
        );
        assert_eq!(event["entity"][1]["detail"][0]["valueString"], "2");
        runs.push(request_id(event).expect("the run id"));
    }
    assert_eq!(runs[0], runs[1], "both patients under the run's id");
    assert!(!dir.join("spill").join("audit-spill.ndjson").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
