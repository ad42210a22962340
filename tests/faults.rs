//! The service against a FHIR server that fails: 5xx and 429 are retried (honouring a bounded
//! `Retry-After`), hangs end in a deadline without leaking the call's permit, bodies that are not
//! JSON or are cut short are clean errors, `next` links that loop, never end or leave the server are
//! refused, a retried write never makes a duplicate Flag or CarePlan, bad ids never reach the
//! server, and the server's own words (OperationOutcome) reach the caller.
//!
//! Each test starts its own stub FHIR server (tests/common/stub.rs: a real FHIR server will not
//! produce these faults on demand) and its own in-process gRPC service, and checks outcomes and
//! the requests the stub saw.

#[path = "common/stub.rs"]
mod stub;

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
            listen: "127.0.0.1:0".into(),
            ..GrpcSettings::default()
        },
        fhir: FhirSettings {
            base_url: stub.base(),
            timeout_secs: 2,
            connect_timeout_secs: 2,
            retry_base_ms: 10,
            retry_after_cap_secs: 5,
            ..FhirSettings::default()
        },
        ..Settings::default()
    }
}

/// Starts the service in process and connects a gRPC client to it.
async fn serve(settings: &Settings, secrets: &Secrets) -> Client {
    let screener = Arc::new(Screener::new(settings, secrets).expect("screener builds"));
    let bound = trdscreen::grpc::server::bind(settings, screener)
        .await
        .expect("binds");
    let address = bound.address;
    tokio::spawn(bound.serve(std::future::pending()));
    TrdScreeningClient::connect(format!("http://{address}"))
        .await
        .expect("connects")
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

// --- retries ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_503_on_a_search_is_retried_and_the_screening_succeeds() {
    let stub = stub_with_patient().await;
    stub.on_times(
        "GET",
        "/fhir/MedicationRequest",
        1,
        Action::Reply(Answer::outcome(503, "transient", "busy")),
    );
    let mut client = service(&stub).await;

    let response = screen(&mut client).await.expect("screening succeeds");
    assert_met(&response);
    let tries = stub.requests_to("GET", "/fhir/MedicationRequest");
    assert_eq!(tries.len(), 2, "the 503 was retried once");
    assert_eq!(
        tries[0].target, tries[1].target,
        "the retry is the same request"
    );
    for other in [
        "MedicationStatement",
        "Observation",
        "Condition",
        "Procedure",
    ] {
        assert_eq!(stub.count("GET", &path(other)), 1, "{other}");
    }
}

#[tokio::test]
async fn a_429_with_retry_after_1_is_retried_after_waiting_a_second() {
    let stub = stub_with_patient().await;
    stub.on_times(
        "GET",
        "/fhir/Observation",
        1,
        Action::Reply(
            Answer::outcome(429, "throttled", "slow down").with_header("Retry-After", "1"),
        ),
    );
    let mut client = service(&stub).await;

    let response = screen(&mut client).await.expect("screening succeeds");
    assert_met(&response);
    let tries = stub.requests_to("GET", "/fhir/Observation");
    assert_eq!(tries.len(), 2);
    let waited = tries[1].at.duration_since(tries[0].at);
    // retry_base_ms is 10: only Retry-After explains a wait this long.
    assert!(
        waited >= Duration::from_millis(950),
        "the retry came {waited:?} after the 429"
    );
}

#[tokio::test]
async fn a_429_asking_to_wait_longer_than_the_cap_fails_fast_with_unavailable() {
    let stub = stub_with_patient().await;
    stub.on(
        "GET",
        &patient_path(),
        Action::Reply(
            Answer::outcome(429, "throttled", "come back in an hour")
                .with_header("Retry-After", "3600"),
        ),
    );
    let mut client = service(&stub).await;

    let started = Instant::now();
    let status = screen(&mut client).await.expect_err("fails");
    assert!(started.elapsed() < NO_HANG, "did not wait for Retry-After");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("3600"), "{}", status.message());
    assert_eq!(stub.requests().len(), 1, "one request, no retry");
}

// --- hangs and deadlines ---------------------------------------------------------------------

#[tokio::test]
async fn a_hanging_server_ends_in_a_timeout_and_the_next_call_still_works() {
    let stub = stub_with_patient().await;
    // Both attempts (max_retries = 1) of the first call's Observation search hang.
    stub.on_times("GET", "/fhir/Observation", 2, Action::Hang);
    let mut s = settings(&stub);
    s.fhir.max_retries = 1;
    // One call at a time: a permit leaked by the first call would refuse the second.
    s.grpc.max_concurrent_calls = 1;
    let mut client = serve(&s, &Secrets::default()).await;

    let started = Instant::now();
    let status = screen(&mut client).await.expect_err("times out");
    assert!(started.elapsed() < NO_HANG, "returned instead of hanging");
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Unavailable),
        "{status:?}"
    );
    assert_eq!(stub.count("GET", "/fhir/Observation"), 2);

    let response = screen(&mut client).await.expect("the next call works");
    assert_met(&response);
    assert_eq!(stub.count("GET", "/fhir/Observation"), 3);
}

#[tokio::test]
async fn a_body_that_stalls_midway_times_out_and_is_retried() {
    let stub = stub_with_patient().await;
    let partial = Answer::json(200, &searchset(&[], &stub.base(), None));
    stub.on_times(
        "GET",
        "/fhir/Condition",
        1,
        Action::Stall {
            answer: partial,
            sent: 10,
        },
    );
    let mut client = service(&stub).await;

    let started = Instant::now();
    let response = screen(&mut client).await.expect("the retry succeeds");
    assert!(started.elapsed() < NO_HANG);
    assert_met(&response);
    assert_eq!(stub.count("GET", "/fhir/Condition"), 2);
}

#[tokio::test]
async fn the_grpc_call_deadline_cuts_off_a_hanging_fhir_server() {
    let stub = stub_with_patient().await;
    stub.on("*", "*", Action::Hang);
    let mut s = settings(&stub);
    s.fhir.timeout_secs = 10;
    s.grpc.call_timeout_secs = 1;
    let mut client = serve(&s, &Secrets::default()).await;

    let started = Instant::now();
    let status = screen(&mut client).await.expect_err("deadline");
    // The FHIR client alone would take 4 × 10 s to give up.
    assert!(started.elapsed() < NO_HANG);
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("within its deadline"),
        "the call deadline, not the FHIR timeout: {}",
        status.message()
    );
}

#[tokio::test]
async fn a_shorter_deadline_set_by_the_caller_ends_the_call_and_frees_its_slot() {
    let stub = stub_with_patient().await;
    stub.on("*", "*", Action::Hang);
    let mut s = settings(&stub);
    s.fhir.timeout_secs = 10;
    s.grpc.max_concurrent_calls = 1;
    let mut client = serve(&s, &Secrets::default()).await;

    let mut call = tonic::Request::new(request(PATIENT, WriteBackMode::None));
    call.set_timeout(Duration::from_secs(1));
    let started = Instant::now();
    let status = client.screen_patient(call).await.expect_err("deadline");
    assert!(started.elapsed() < NO_HANG);
    // tonic reports a deadline it enforces itself (client or server side) as CANCELLED "Timeout
    // expired"; the service's own deadline is DEADLINE_EXCEEDED.
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );

    // The abandoned call gives its slot back (max_concurrent_calls = 1), promptly.
    stub.clear_rules();
    let mut attempts = 0;
    let response = loop {
        match screen(&mut client).await {
            Err(e) if e.code() == Code::ResourceExhausted && attempts < 50 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => break other.expect("the next call works"),
        }
    };
    assert_met(&response);
}

// --- bodies that are not what FHIR promises --------------------------------------------------

#[tokio::test]
async fn an_html_body_on_a_search_is_unavailable_with_a_clear_message() {
    let stub = stub_with_patient().await;
    stub.on_times(
        "GET",
        "/fhir/Condition",
        1,
        Action::Reply(Answer::text(
            200,
            "text/html",
            "<html><body>Gateway login</body></html>",
        )),
    );
    let mut client = service(&stub).await;

    let status = screen(&mut client).await.expect_err("fails");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status
            .message()
            .contains("Condition search did not return JSON"),
        "{}",
        status.message()
    );
    assert!(!status.message().contains("<html>"), "{}", status.message());
    assert_eq!(
        stub.count("GET", "/fhir/Condition"),
        1,
        "a 200 is not retried"
    );

    // The service is still up and the next call succeeds.
    let response = screen(&mut client).await.expect("next call works");
    assert_met(&response);
}

#[tokio::test]
async fn a_truncated_body_is_retried() {
    let stub = stub_with_patient().await;
    let full = Answer::json(200, &searchset(&[], &stub.base(), None));
    stub.on_times(
        "GET",
        "/fhir/Procedure",
        1,
        Action::Truncate {
            answer: full,
            sent: 12,
        },
    );
    let mut client = service(&stub).await;

    let response = screen(&mut client).await.expect("the retry succeeds");
    assert_met(&response);
    assert_eq!(stub.count("GET", "/fhir/Procedure"), 2);
}

#[tokio::test]
async fn a_body_always_cut_short_is_a_clean_unavailable_after_the_retries() {
    let stub = stub_with_patient().await;
    let full = Answer::json(200, &searchset(&[], &stub.base(), None));
    stub.on(
        "GET",
        "/fhir/Procedure",
        Action::Truncate {
            answer: full,
            sent: 12,
        },
    );
    let s = settings(&stub);
    let mut client = serve(&s, &Secrets::default()).await;

    let status = screen(&mut client).await.expect_err("fails");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("Procedure"),
        "{}",
        status.message()
    );
    assert_eq!(
        stub.count("GET", "/fhir/Procedure"),
        s.fhir.max_retries as usize + 1
    );
}

// --- paging ----------------------------------------------------------------------------------

#[tokio::test]
async fn a_next_link_back_to_the_same_page_is_refused_after_one_request() {
    let stub = stub_with_patient().await;
    stub.on(
        "GET",
        "/fhir/Condition",
        Action::Dynamic(Arc::new(|seen: &Seen, origin: &str| {
            let myself = format!("{origin}{}", seen.target);
            Answer::json(
                200,
                &searchset(&[], &format!("{origin}/fhir"), Some(&myself)),
            )
        })),
    );
    let mut s = settings(&stub);
    s.fhir.page_cap = 5;
    let mut client = serve(&s, &Secrets::default()).await;

    let status = screen(&mut client).await.expect_err("fails");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("Condition") && status.message().contains("page"),
        "{}",
        status.message()
    );
    let pages = stub.count("GET", "/fhir/Condition");
    assert!(pages <= 5, "{pages} requests");
    assert_eq!(pages, 1, "the loop is seen before the page is read again");
}

#[tokio::test]
async fn next_links_cycling_between_two_pages_are_refused() {
    let stub = stub_with_patient().await;
    stub.on(
        "GET",
        "/fhir/Condition",
        Action::Dynamic(Arc::new(|seen: &Seen, origin: &str| {
            let other = if seen.query("page").as_deref() == Some("2") {
                "1"
            } else {
                "2"
            };
            let next = format!("{origin}/fhir/Condition?page={other}");
            Answer::json(200, &searchset(&[], &format!("{origin}/fhir"), Some(&next)))
        })),
    );
    let mut s = settings(&stub);
    s.fhir.page_cap = 10;
    let mut client = serve(&s, &Secrets::default()).await;

    let status = screen(&mut client).await.expect_err("fails");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("page"), "{}", status.message());
    // First page, page 2, page 1: then page 2 again is refused.
    assert_eq!(stub.count("GET", "/fhir/Condition"), 3);
}

#[tokio::test]
async fn a_next_chain_that_never_ends_stops_at_the_page_cap() {
    let stub = stub_with_patient().await;
    stub.on(
        "GET",
        "/fhir/Condition",
        Action::Dynamic(Arc::new(|seen: &Seen, origin: &str| {
            let page: u32 = seen.query("page").and_then(|p| p.parse().ok()).unwrap_or(1);
            let next = format!("{origin}/fhir/Condition?page={}", page + 1);
            Answer::json(200, &searchset(&[], &format!("{origin}/fhir"), Some(&next)))
        })),
    );
    let mut s = settings(&stub);
    s.fhir.page_cap = 4;
    let mut client = serve(&s, &Secrets::default()).await;

    let status = screen(&mut client).await.expect_err("fails");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("fhir.page_cap"),
        "{}",
        status.message()
    );
    assert_eq!(
        stub.count("GET", "/fhir/Condition"),
        4,
        "exactly page_cap pages"
    );
}

#[tokio::test]
async fn a_long_but_finite_chain_within_the_cap_is_read_whole() {
    let stub = stub_with_patient().await;
    let conditions: Vec<Value> = stub.stored("Condition");
    assert_eq!(conditions.len(), 1);
    // Three pages: two empty ones, then the real Condition.
    stub.on(
        "GET",
        "/fhir/Condition",
        Action::Dynamic(Arc::new(move |seen: &Seen, origin: &str| {
            let page: u32 = seen.query("page").and_then(|p| p.parse().ok()).unwrap_or(1);
            let base = format!("{origin}/fhir");
            if page < 3 {
                let next = format!("{base}/Condition?page={}", page + 1);
                Answer::json(200, &searchset(&[], &base, Some(&next)))
            } else {
                Answer::json(200, &searchset(&conditions, &base, None))
            }
        })),
    );
    let mut s = settings(&stub);
    s.fhir.page_cap = 3;
    let mut client = serve(&s, &Secrets::default()).await;

    let response = screen(&mut client).await.expect("succeeds");
    assert_met(&response);
    assert_eq!(stub.count("GET", "/fhir/Condition"), 3);
}

#[tokio::test]
async fn a_404_on_a_search_is_not_reported_as_an_unknown_patient() {
    // A server without MedicationStatement support answers its search 404; the patient exists.
    let stub = stub_with_patient().await;
    stub.on(
        "GET",
        "/fhir/MedicationStatement",
        Action::Reply(Answer::outcome(
            404,
            "not-supported",
            "Unknown resource type 'MedicationStatement'",
        )),
    );
    let mut client = service(&stub).await;

    let status = screen(&mut client).await.expect_err("fails");
    assert!(
        status
            .message()
            .contains("Unknown resource type 'MedicationStatement'"),
        "{}",
        status.message()
    );
    // The contract keeps NOT_FOUND for an unknown patient.
    assert_ne!(
        status.code(),
        Code::NotFound,
        "the Patient was read; a failed search is not an unknown patient: {status:?}"
    );
}

#[tokio::test]
async fn an_unknown_patient_is_not_found_after_one_request() {
    let stub = stub_with_patient().await;
    let mut client = service(&stub).await;

    let status = client
        .screen_patient(request("nobody", WriteBackMode::FlagAndCarePlan))
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(stub.requests().len(), 1, "no search, no write");
}

// --- credentials stay with the FHIR server ---------------------------------------------------

fn bearer(stub: &Stub) -> (Settings, Secrets) {
    let mut s = settings(stub);
    s.fhir.auth = AuthSettings {
        mode: AuthMode::Bearer,
        ..AuthSettings::default()
    };
    let secrets = Secrets {
        bearer_token: Some("s3cret-token".into()),
        ..Secrets::default()
    };
    (s, secrets)
}

#[tokio::test]
async fn a_next_link_to_another_host_is_not_followed() {
    let stub = stub_with_patient().await;
    let evil = Stub::start().await;
    let (s, secrets) = bearer(&stub);
    let mut client = serve(&s, &secrets).await;

    let elsewhere = [
        format!("{}/fhir/Condition?page=2", evil.origin),
        "http://evil.example/fhir/Condition?page=2".to_owned(),
        // Same host and port, other scheme: another origin.
        format!(
            "{}/fhir/Condition?page=2",
            stub.origin.replace("http://", "https://")
        ),
        // Not an absolute URL at all.
        "//evil.example/fhir/Condition?page=2".to_owned(),
    ];
    for next in elsewhere {
        stub.clear_rules();
        let link = next.clone();
        stub.on(
            "GET",
            "/fhir/Condition",
            Action::Dynamic(Arc::new(move |_: &Seen, origin: &str| {
                Answer::json(200, &searchset(&[], &format!("{origin}/fhir"), Some(&link)))
            })),
        );
        let before = stub.count("GET", "/fhir/Condition");
        let status = screen(&mut client).await.expect_err("refused");
        assert_eq!(status.code(), Code::Unavailable, "{next}: {status:?}");
        assert!(
            status.message().contains("leaves the FHIR server"),
            "{next}: {}",
            status.message()
        );
        assert_eq!(stub.count("GET", "/fhir/Condition"), before + 1, "{next}");
    }
    assert!(evil.requests().is_empty(), "{:?}", evil.requests());
    // The token did go to the FHIR server itself.
    let first = &stub.requests()[0];
    assert_eq!(first.header("authorization"), Some("Bearer s3cret-token"));
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed() {
    let stub = stub_with_patient().await;
    let evil = Stub::start().await;
    let (s, secrets) = bearer(&stub);
    stub.on(
        "GET",
        &patient_path(),
        Action::Reply(Answer::text(302, "text/plain", "moved").with_header(
            "Location",
            &format!("{}/fhir/Patient/{PATIENT}", evil.origin),
        )),
    );
    let mut client = serve(&s, &secrets).await;

    let status = screen(&mut client).await.expect_err("refused");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("302"), "{}", status.message());
    assert!(evil.requests().is_empty(), "{:?}", evil.requests());
    assert_eq!(stub.requests().len(), 1);
}

// --- write-back under failure ----------------------------------------------------------------

fn flag_puts(stub: &Stub) -> Vec<Seen> {
    stub.requests()
        .into_iter()
        .filter(|s| s.method == "PUT" && s.path().starts_with("/fhir/Flag"))
        .collect()
}

fn care_plan_puts(stub: &Stub) -> Vec<Seen> {
    stub.requests()
        .into_iter()
        .filter(|s| s.method == "PUT" && s.path().starts_with("/fhir/CarePlan"))
        .collect()
}

/// After a write-back: one Flag and one CarePlan, named by the response.
fn assert_one_flag_and_one_care_plan(stub: &Stub, result: &WriteBackResult) {
    let flags = stub.stored("Flag");
    let plans = stub.stored("CarePlan");
    assert_eq!(flags.len(), 1, "{flags:#?}");
    assert_eq!(plans.len(), 1, "{plans:#?}");
    assert_eq!(
        result.flag_reference,
        format!("Flag/{}", flags[0]["id"].as_str().unwrap())
    );
    assert_eq!(
        result.care_plan_reference,
        format!("CarePlan/{}", plans[0]["id"].as_str().unwrap())
    );
    assert_eq!(flags[0]["status"], "active");
    assert_eq!(
        flags[0]["subject"]["reference"],
        format!("Patient/{PATIENT}")
    );
    assert_eq!(
        plans[0]["supportingInfo"][0]["reference"],
        result.flag_reference.as_str()
    );
}

/// A conditional create is `PUT Flag?identifier=system|flag-{patient}`.
fn assert_conditional(put: &Seen, kind: &str) {
    assert_eq!(
        put.query("identifier").as_deref(),
        Some(format!("urn:trdscreen:screening|{kind}-{PATIENT}").as_str()),
        "{}",
        put.target
    );
}

#[tokio::test]
async fn a_500_on_the_flag_put_is_retried_and_a_second_screening_changes_nothing() {
    let stub = stub_with_patient().await;
    stub.on_times(
        "PUT",
        "/fhir/Flag",
        1,
        Action::Reply(Answer::outcome(500, "exception", "database restarting")),
    );
    let mut client = service(&stub).await;

    let first = screen_with(&mut client, WriteBackMode::FlagAndCarePlan)
        .await
        .expect("succeeds");
    assert_met(&first);
    let result = write_back(&first);
    assert_eq!(result.error_code, "", "{result:?}");
    assert!(result.changed);
    let puts = flag_puts(&stub);
    assert_eq!(puts.len(), 2, "one refused, one retried");
    for put in &puts {
        assert_conditional(put, "flag");
    }
    assert_eq!(puts[0].body, puts[1].body, "the retry sends the same Flag");
    assert_eq!(care_plan_puts(&stub).len(), 1);
    assert_conditional(&care_plan_puts(&stub)[0], "careplan");
    assert_one_flag_and_one_care_plan(&stub, result);

    let second = screen_with(&mut client, WriteBackMode::FlagAndCarePlan)
        .await
        .expect("succeeds");
    let again = write_back(&second);
    assert_eq!(again.error_code, "", "{again:?}");
    assert!(!again.changed, "the chart is already up to date");
    assert_eq!(again.flag_reference, result.flag_reference);
    assert_eq!(again.care_plan_reference, result.care_plan_reference);
    assert_eq!(flag_puts(&stub).len(), 2, "no PUT the second time");
    assert_eq!(care_plan_puts(&stub).len(), 1);
    assert_one_flag_and_one_care_plan(&stub, again);
}

#[tokio::test]
async fn a_flag_put_that_landed_but_lost_its_answer_is_retried_without_a_duplicate() {
    let stub = stub_with_patient().await;
    // The first conditional create of each is carried out, then answered 500.
    stub.on_times("PUT", "/fhir/Flag", 1, Action::ApplyThenFail(500));
    stub.on_times("PUT", "/fhir/CarePlan", 1, Action::ApplyThenFail(503));
    let mut client = service(&stub).await;

    let first = screen_with(&mut client, WriteBackMode::FlagAndCarePlan)
        .await
        .expect("succeeds");
    assert_met(&first);
    let result = write_back(&first);
    assert_eq!(result.error_code, "", "{result:?}");
    assert!(result.changed);
    assert_eq!(flag_puts(&stub).len(), 2);
    assert_eq!(care_plan_puts(&stub).len(), 2);
    for put in flag_puts(&stub) {
        assert_conditional(&put, "flag");
    }
    assert_one_flag_and_one_care_plan(&stub, result);

    let second = screen_with(&mut client, WriteBackMode::FlagAndCarePlan)
        .await
        .expect("succeeds");
    let again = write_back(&second);
    assert!(!again.changed, "{again:?}");
    assert_eq!(flag_puts(&stub).len(), 2, "no PUT the second time");
    assert_eq!(care_plan_puts(&stub).len(), 2);
    assert_one_flag_and_one_care_plan(&stub, again);
}

/// A Flag this service wrote earlier, when the patient screened only "possible".
fn earlier_possible_flag() -> Value {
    json!({
        "resourceType": "Flag", "id": "flag-old", "meta": {"versionId": "1"},
        "identifier": [{"system": "urn:trdscreen:screening", "value": format!("flag-{PATIENT}")}],
        "status": "active",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/flag-category", "code": "clinical", "display": "Clinical"}]}],
        "code": {"coding": [{"system": "urn:trdscreen:CodeSystem:screening-result", "code": "trd-possible", "display": "Possibly treatment-resistant depression"}]},
        "subject": {"reference": format!("Patient/{PATIENT}")},
        "period": {"start": "2025-01-01"}
    })
}

#[tokio::test]
async fn an_update_by_id_that_landed_but_lost_its_answer_is_reported_as_a_change() {
    let stub = stub_with_patient().await;
    stub.insert(earlier_possible_flag());
    // The update (If-Match W/"1") is carried out, then answered 500; its retry meets a 412.
    stub.on_times("PUT", "/fhir/Flag/flag-old", 1, Action::ApplyThenFail(500));
    let mut client = service(&stub).await;

    let response = screen_with(&mut client, WriteBackMode::Flag)
        .await
        .expect("succeeds");
    let result = write_back(&response);
    assert_eq!(result.error_code, "", "{result:?}");
    assert_eq!(result.flag_reference, "Flag/flag-old");
    let flags = stub.stored("Flag");
    assert_eq!(flags.len(), 1);
    assert_eq!(
        flags[0]["meta"]["versionId"], "2",
        "this screening updated the Flag"
    );
    assert_eq!(flags[0]["code"]["coding"][1]["code"], "trd-met");
    let puts = flag_puts(&stub);
    assert!(puts.iter().all(|p| p.path() == "/fhir/Flag/flag-old"));
    assert!(puts.iter().all(|p| p.header("if-match") == Some("W/\"1\"")));
    assert!(
        result.changed,
        "this screening changed the Flag (version 1 -> 2), but the write-back says changed = false \
         ({} PUTs)",
        puts.len()
    );
}

#[tokio::test]
async fn a_flag_put_that_always_fails_still_returns_the_assessment() {
    let stub = stub_with_patient().await;
    stub.on(
        "PUT",
        "/fhir/Flag",
        Action::Reply(Answer::outcome(500, "exception", "disk full")),
    );
    let s = settings(&stub);
    let mut client = serve(&s, &Secrets::default()).await;

    let response = screen_with(&mut client, WriteBackMode::FlagAndCarePlan)
        .await
        .expect("the call itself succeeds");
    assert_met(&response);
    let result = write_back(&response);
    assert_eq!(result.error_code, "UNAVAILABLE", "{result:?}");
    assert!(
        result.error_message.contains("disk full"),
        "{}",
        result.error_message
    );
    assert!(!result.changed);
    assert_eq!(flag_puts(&stub).len(), s.fhir.max_retries as usize + 1);
    assert!(
        care_plan_puts(&stub).is_empty(),
        "no CarePlan without its Flag"
    );
    assert!(stub.stored("Flag").is_empty());
}

#[tokio::test]
async fn concurrent_screenings_of_one_patient_write_one_flag() {
    let stub = stub_with_patient().await;
    let client = service(&stub).await;

    let calls = (0..4).map(|_| {
        let mut c = client.clone();
        tokio::spawn(async move { screen_with(&mut c, WriteBackMode::FlagAndCarePlan).await })
    });
    let mut changed = 0;
    for call in calls {
        let response = call.await.unwrap().expect("succeeds");
        let result = write_back(&response);
        assert_eq!(result.error_code, "", "{result:?}");
        changed += usize::from(result.changed);
    }
    assert_eq!(changed, 1, "only the first screening writes");
    assert_eq!(stub.stored("Flag").len(), 1);
    assert_eq!(stub.stored("CarePlan").len(), 1);
    assert_eq!(flag_puts(&stub).len(), 1);
}

// --- bad input never reaches the FHIR server -------------------------------------------------

#[tokio::test]
async fn bad_patient_ids_are_invalid_argument_and_never_reach_the_server() {
    let stub = stub_with_patient().await;
    let mut client = service(&stub).await;

    let long = "a".repeat(65);
    let bad = [
        "../Patient",
        "a/b",
        "x?y=1",
        "",
        long.as_str(),
        "a b",
        "%2e%2e",
        "p#1",
        "é",
        "a\r\nHost: evil.example",
    ];
    for id in bad {
        let status = client
            .screen_patient(request(id, WriteBackMode::FlagAndCarePlan))
            .await
            .expect_err(id);
        assert_eq!(status.code(), Code::InvalidArgument, "{id:?}: {status:?}");
        assert!(
            status.message().contains("patient_id"),
            "{}",
            status.message()
        );
    }
    assert!(stub.requests().is_empty(), "{:?}", stub.requests());

    // 64 characters is still an id.
    let status = client
        .screen_patient(request(&"a".repeat(64), WriteBackMode::None))
        .await
        .expect_err("unknown patient");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

// --- the server's own words ------------------------------------------------------------------

#[tokio::test]
async fn an_operation_outcome_on_a_400_is_kept_in_the_error() {
    let stub = stub_with_patient().await;
    stub.on(
        "GET",
        "/fhir/Observation",
        Action::Reply(Answer::outcome(
            400,
            "invalid",
            "Unknown search parameter 'code' for resource type 'Observation'",
        )),
    );
    let mut client = service(&stub).await;

    let status = screen(&mut client).await.expect_err("fails");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status
            .message()
            .contains("Unknown search parameter 'code' for resource type 'Observation'"),
        "{}",
        status.message()
    );
    assert!(status.message().contains("400"), "{}", status.message());
    assert_eq!(
        stub.count("GET", "/fhir/Observation"),
        1,
        "a 400 is not retried"
    );
}

#[tokio::test]
async fn an_operation_outcome_on_a_422_write_is_kept_in_the_write_back_error() {
    let stub = stub_with_patient().await;
    stub.on(
        "PUT",
        "/fhir/Flag",
        Action::Reply(Answer::outcome(
            422,
            "processing",
            "Flag.code: no binding for urn:trdscreen:CodeSystem:screening-result",
        )),
    );
    let mut client = service(&stub).await;

    let response = screen_with(&mut client, WriteBackMode::Flag)
        .await
        .expect("the call succeeds");
    assert_met(&response);
    let result = write_back(&response);
    assert!(!result.error_code.is_empty(), "{result:?}");
    assert!(
        result
            .error_message
            .contains("Flag.code: no binding for urn:trdscreen:CodeSystem:screening-result"),
        "{}",
        result.error_message
    );
    assert!(
        result.error_message.contains("422"),
        "{}",
        result.error_message
    );
    assert_eq!(flag_puts(&stub).len(), 1, "a 422 is not retried");
}

// --- authentication --------------------------------------------------------------------------

#[tokio::test]
async fn a_401_in_bearer_mode_is_unauthenticated_and_not_retried() {
    let stub = stub_with_patient().await;
    stub.on(
        "*",
        "*",
        Action::Reply(
            Answer::outcome(401, "login", "token expired")
                .with_header("WWW-Authenticate", "Bearer error=\"invalid_token\""),
        ),
    );
    let (s, secrets) = bearer(&stub);
    let mut client = serve(&s, &secrets).await;

    let started = Instant::now();
    let status = screen(&mut client).await.expect_err("refused");
    assert!(started.elapsed() < NO_HANG);
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(
        status.message().contains("token expired"),
        "{}",
        status.message()
    );
    assert!(
        !status.message().contains("s3cret-token"),
        "{}",
        status.message()
    );
    let requests = stub.requests();
    assert_eq!(requests.len(), 1, "not retried");
    assert_eq!(
        requests[0].header("authorization"),
        Some("Bearer s3cret-token")
    );
}

#[tokio::test]
async fn every_search_is_made_once_when_nothing_fails() {
    // The baseline the other tests' counts rest on.
    let stub = stub_with_patient().await;
    let mut client = service(&stub).await;

    let response = screen(&mut client).await.expect("succeeds");
    assert_met(&response);
    assert_eq!(stub.count("GET", &patient_path()), 1);
    for t in SEARCHES {
        let seen = stub.requests_to("GET", &path(t));
        assert_eq!(seen.len(), 1, "{t}");
        assert_eq!(
            seen[0].query("patient").as_deref(),
            Some(format!("Patient/{PATIENT}").as_str())
        );
    }
    assert_eq!(stub.requests().len(), 1 + SEARCHES.len());
}
