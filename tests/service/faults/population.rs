//! ScreenPopulation against a FHIR server that hangs: only the configured number of patients is
//! in progress at once, and a caller who goes away stops the rest and frees the call's slot.

use super::*;
use trdscreen::proto::{EvaluateBundleRequest, PatientIds, ScreenPopulationRequest};

#[tokio::test]
async fn a_population_call_is_bounded_and_a_caller_who_leaves_stops_it() {
    let stub = Stub::start().await;
    stub.on("GET", "/fhir/Patient/*", Action::Hang);
    let mut s = settings(&stub);
    s.fhir.timeout = Duration::from_secs(30);
    s.grpc.call_timeout = Duration::from_secs(60);
    s.grpc.population_concurrency = 3;
    // One call at a time: the population call's slot must come back when its caller leaves.
    s.grpc.max_concurrent_calls = 1;
    let mut client = serve(&s, &Secrets::default()).await;

    let ids: Vec<String> = (0..40).map(|i| format!("p{i}")).collect();
    let stream = client
        .screen_population(ScreenPopulationRequest {
            cohort: Some(
                trdscreen::proto::screen_population_request::Cohort::PatientIds(PatientIds { ids }),
            ),
            as_of: None,
            write_back: WriteBackMode::None as i32,
        })
        .await
        .expect("the call starts")
        .into_inner();
    let started = Instant::now();
    while reads_started(&stub) < 3 && started.elapsed() < NO_HANG {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        reads_started(&stub),
        3,
        "population_concurrency patients at once"
    );

    drop(stream);
    let bundle = std::fs::read_to_string(FIXTURE).unwrap();
    let started = Instant::now();
    let answer = loop {
        let answer = client
            .evaluate_bundle(EvaluateBundleRequest {
                bundle_json: bundle.clone(),
                as_of: None,
            })
            .await;
        match answer {
            Err(status)
                if status.code() == Code::ResourceExhausted && started.elapsed() < NO_HANG =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => break other,
        }
    };
    assert!(answer.is_ok(), "the slot came back: {answer:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        reads_started(&stub),
        3,
        "no patient started after the caller left"
    );
}

fn reads_started(stub: &Stub) -> usize {
    stub.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path().starts_with("/fhir/Patient/"))
        .count()
}
