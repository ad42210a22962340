//! The service against a FHIR server that fails: 5xx and 429 are retried (honouring a bounded
//! `Retry-After`), hangs end in a deadline without leaking the call's permit, bodies that are not
//! JSON or are cut short are clean errors, answers too large or too slow are refused, `next` links
//! that loop, never end or leave the server are refused, a retried write never makes a duplicate
//! Flag or CarePlan, bad ids and undecodable requests never reach the server, and the server's own
//! words (an OperationOutcome's text) reach no caller: its status and issue codes do.
//!
//! Each test starts its own stub FHIR server (tests/common/stub.rs: a real FHIR server will not
//! produce these faults on demand) and its own in-process gRPC service, and checks outcomes and
//! the requests the stub saw.

use crate::stub;

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stub::{Action, Answer, Seen, Stub, searchset};
use tonic::Code;
use tonic::transport::Channel;
use trdscreen::date::Date;
use trdscreen::proto::trd_screening_client::TrdScreeningClient;
use trdscreen::proto::{
    ScreenPatientRequest, ScreenPatientResponse, TrdStatus, WriteBackMode, WriteBackResult,
};
use trdscreen::service::Screener;
use trdscreen::settings::{AuthMode, AuthSettings, FhirSettings, GrpcSettings, Secrets, Settings};

/// A patient whose record screens MET on 2025-06-01 (two failed adequate trials).
const PATIENT: &str = "met-two-failed-ssri-snri";
const FIXTURE: &str = "tests/fixtures/scenarios/met-two-failed-ssri-snri.json";
const AS_OF: &str = "2025-06-01";
/// Generous bound that only proves a call did not hang.
const NO_HANG: Duration = Duration::from_secs(20);
const SEARCHES: [&str; 5] = [
    "MedicationRequest",
    "MedicationStatement",
    "Observation",
    "Condition",
    "Procedure",
];

type Client = TrdScreeningClient<Channel>;

/// A stub serving the MET patient's record.
async fn stub_with_patient() -> Stub {
    let stub = Stub::start().await;
    stub.load_bundle(&std::fs::read_to_string(FIXTURE).expect("fixture exists"));
    stub
}

/// Defaults with the stub as FHIR server and small timeouts.
fn settings(stub: &Stub) -> Settings {
    Settings {
        grpc: GrpcSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..GrpcSettings::default()
        },
        fhir: FhirSettings {
            base_url: Some(stub.base().parse().unwrap()),
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            retry_base: Duration::from_millis(10),
            retry_after_cap: Duration::from_secs(5),
            ..FhirSettings::default()
        },
        ..Settings::default()
    }
}

/// Starts the service in process and connects a gRPC client to it.
async fn serve(settings: &Settings, secrets: &Secrets) -> Client {
    TrdScreeningClient::connect(format!("http://{}", serve_at(settings, secrets).await))
        .await
        .expect("connects")
}

/// Starts the service in process; its address.
async fn serve_at(settings: &Settings, secrets: &Secrets) -> std::net::SocketAddr {
    let screener = Arc::new(Screener::new(settings, secrets).expect("screener builds"));
    let bound = trdscreen::grpc::server::bind(settings, screener)
        .await
        .expect("binds");
    let address = bound.address;
    tokio::spawn(bound.serve(std::future::pending()));
    address
}

async fn service(stub: &Stub) -> Client {
    serve(&settings(stub), &Secrets::default()).await
}

fn request(patient: &str, mode: WriteBackMode) -> ScreenPatientRequest {
    let day = Date::parse(AS_OF).unwrap();
    ScreenPatientRequest {
        patient_id: patient.into(),
        as_of: Some(prost_types::Timestamp {
            seconds: i64::from(day.days_since_epoch()) * 86_400,
            nanos: 0,
        }),
        write_back: mode as i32,
    }
}

/// ScreenPatient without write-back.
async fn screen(client: &mut Client) -> Result<ScreenPatientResponse, tonic::Status> {
    screen_with(client, WriteBackMode::None).await
}

async fn screen_with(
    client: &mut Client,
    mode: WriteBackMode,
) -> Result<ScreenPatientResponse, tonic::Status> {
    client
        .screen_patient(request(PATIENT, mode))
        .await
        .map(tonic::Response::into_inner)
}

fn assert_met(response: &ScreenPatientResponse) {
    let a = response.assessment.as_ref().expect("an assessment");
    assert_eq!(a.patient_id, PATIENT);
    assert_eq!(a.status, TrdStatus::Met as i32, "{a:?}");
    assert_eq!(a.failed_adequate_trials, 2);
}

fn write_back(response: &ScreenPatientResponse) -> &WriteBackResult {
    response.write_back.as_ref().expect("a write-back result")
}

fn path(resource_type: &str) -> String {
    format!("/fhir/{resource_type}")
}

fn patient_path() -> String {
    format!("/fhir/Patient/{PATIENT}")
}

mod bodies;
mod bulk;
mod credentials;
mod leaks;
mod limits;
mod paging;
mod population;
mod requests;
mod transport;
mod writeback;
