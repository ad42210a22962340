//! Retries, Retry-After, hangs and deadlines.

use super::*;

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
    s.fhir.timeout = Duration::from_secs(10);
    s.grpc.call_timeout = Duration::from_secs(1);
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
    s.fhir.timeout = Duration::from_secs(10);
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

// --- connections ---------------------------------------------------------------------------

/// Past `grpc.max_connections`, a new connection waits (in the listen backlog) until one closes;
/// the process never holds more.
#[tokio::test]
async fn a_connection_past_the_limit_waits_until_one_closes_and_is_then_served() {
    let stub = stub_with_patient().await;
    let mut s = settings(&stub);
    s.grpc.max_connections = 1;
    let address = serve_at(&s, &Secrets::default()).await;
    let url = format!("http://{address}");
    let mut first = TrdScreeningClient::connect(url.clone())
        .await
        .expect("connects");
    assert_met(
        &screen(&mut first)
            .await
            .expect("the first connection is served"),
    );

    let waiting = tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .connect_lazy();
    let mut second = TrdScreeningClient::new(waiting);
    let mut call = tonic::Request::new(request(PATIENT, WriteBackMode::None));
    call.set_timeout(Duration::from_secs(1));
    let status = second
        .screen_patient(call)
        .await
        .expect_err("no second connection is served while the first is open");
    assert!(
        matches!(
            status.code(),
            Code::DeadlineExceeded | Code::Cancelled | Code::Unavailable
        ),
        "{status:?}"
    );

    drop(first);
    let started = Instant::now();
    let response = loop {
        match screen(&mut second).await {
            Ok(response) => break response,
            Err(e) if started.elapsed() < NO_HANG => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the second connection was never served: {e:?}"),
        }
    };
    assert_met(&response);
}
