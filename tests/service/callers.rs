//! Issue 17: who may call the gRPC port. The service verifies callers' access tokens from the real
//! OpenID provider (oidc-provider; scripts/test starts it): `clinic-app` holds `screening.read
//! bundle.evaluate`, `batch-runner` holds `screening.read screening.write population.screen`. The
//! FHIR server is a stub holding one patient, so that a refused call is seen to make no FHIR
//! request at all.

use super::auth::{Provider, client_credentials, provider};
use crate::service::{self, start, timestamp};
use crate::stub::Stub;
use std::path::Path;
use tonic::{Code, Request, Status};
use trdscreen::proto::screen_population_request::Cohort;
use trdscreen::proto::{
    EvaluateBundleRequest, PatientIds, ScreenPatientRequest, ScreenPopulationRequest, WriteBackMode,
};
use trdscreen::settings::CallerAuthentication;

const PATIENT: &str = "met-two-failed-ssri-snri";

async fn token(p: &Provider, client: &str, scope: &str) -> String {
    let (status, answer) = client_credentials(p, client, scope).await;
    assert_eq!(status, 200, "{answer}");
    answer["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

/// The service with callers authenticated by the provider, over a stub FHIR server holding one
/// patient; `limits` are the rate limit settings' TOML (may be empty).
async fn guarded(p: &Provider, limits: &str) -> (service::Service, Stub) {
    let stub = Stub::start().await;
    stub.load_bundle(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("tests/fixtures/scenarios/{PATIENT}.json")),
        )
        .expect("the fixture"),
    );
    let mut settings = service::settings(&stub.base());
    settings.callers.authentication = CallerAuthentication::Jwt;
    settings.callers.jwt.issuer = Some(p.issuer.parse().expect("an http(s) issuer"));
    settings.callers.jwt.audiences = vec!["urn:trdscreen".into()];
    if !limits.is_empty() {
        settings.callers.rate = toml::from_str(limits).expect("rate settings");
    }
    (start(settings).await, stub)
}

fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("a header value"),
    );
    request
}

fn screen(write_back: WriteBackMode) -> ScreenPatientRequest {
    ScreenPatientRequest {
        patient_id: PATIENT.into(),
        as_of: Some(timestamp("2025-06-01")),
        write_back: write_back as i32,
    }
}

fn population() -> ScreenPopulationRequest {
    ScreenPopulationRequest {
        cohort: Some(Cohort::PatientIds(PatientIds {
            ids: vec![PATIENT.into()],
        })),
        as_of: Some(timestamp("2025-06-01")),
        write_back: WriteBackMode::None as i32,
    }
}

fn bundle() -> EvaluateBundleRequest {
    EvaluateBundleRequest {
        bundle_json: std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("tests/fixtures/scenarios/{PATIENT}.json")),
        )
        .expect("the fixture"),
        as_of: Some(timestamp("2025-06-01")),
    }
}

fn code_of<T>(result: Result<T, Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn each_method_asks_its_own_permission_before_any_fhir_request() {
    let Some(p) = provider("callers") else {
        return;
    };
    let (mut svc, stub) = guarded(&p, "").await;
    let clinic = token(&p, "clinic-app", "screening.read bundle.evaluate").await;
    let runner = token(
        &p,
        "batch-runner",
        "screening.read screening.write population.screen",
    )
    .await;

    // What the clinic app may not do is refused, and the FHIR server never hears of it.
    let c = &mut svc.client;
    let denied = [
        code_of(
            c.screen_patient(with_token(screen(WriteBackMode::FlagAndCarePlan), &clinic))
                .await,
        ),
        code_of(c.screen_population(with_token(population(), &clinic)).await),
        code_of(c.evaluate_bundle(with_token(bundle(), &runner)).await),
    ];
    assert_eq!(denied, [Code::PermissionDenied; 3]);
    assert!(
        stub.requests().is_empty(),
        "a refused call reached the FHIR server"
    );

    // What each may do, it does.
    let read = c
        .screen_patient(with_token(screen(WriteBackMode::None), &clinic))
        .await
        .expect("the clinic app reads a screening");
    assert!(read.into_inner().assessment.is_some());
    assert!(!stub.requests().is_empty());
    c.evaluate_bundle(with_token(bundle(), &clinic))
        .await
        .expect("the clinic app evaluates a Bundle");
    let mut stream = c
        .screen_population(with_token(population(), &runner))
        .await
        .expect("the runner screens a population")
        .into_inner();
    let first = stream.message().await.expect("a result").expect("one");
    assert!(first.assessment.is_some(), "{first:?}");
    assert!(
        stub.writes_of("Flag").is_empty(),
        "nothing asked to be written"
    );
    svc.shutdown().await.expect("a clean shutdown");
}

#[tokio::test]
async fn a_call_without_a_good_token_is_unauthenticated_and_health_stays_open() {
    let Some(p) = provider("callers") else {
        return;
    };
    let (mut svc, stub) = guarded(&p, "").await;
    let c = &mut svc.client;
    let none = code_of(c.screen_patient(screen(WriteBackMode::None)).await);
    let junk = code_of(
        c.screen_patient(with_token(screen(WriteBackMode::None), "not.a.token"))
            .await,
    );
    let mut basic = Request::new(bundle());
    basic
        .metadata_mut()
        .insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
    let not_bearer = code_of(c.evaluate_bundle(basic).await);
    assert_eq!(
        [none, junk, not_bearer],
        [Code::Unauthenticated; 3],
        "no token, a token that is none, another scheme"
    );
    assert!(stub.requests().is_empty());
    let mut health = tonic_health::pb::health_client::HealthClient::new(svc.channel.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health answers without a token")
        .into_inner();
    assert_eq!(serving.status, 1, "SERVING");
    svc.shutdown().await.expect("a clean shutdown");
}

#[tokio::test]
async fn a_caller_over_its_rate_is_refused_with_a_retry_hint_while_another_goes_on() {
    let Some(p) = provider("callers") else {
        return;
    };
    // Two calls at once, then one every 100 seconds: the third call in a row is over the limit.
    let limits = r#"
        [limits."bundle.evaluate"]
        per_second = 0.01
        burst = 2
    "#;
    let (mut svc, _stub) = guarded(&p, limits).await;
    let clinic = token(&p, "clinic-app", "screening.read bundle.evaluate").await;
    let runner = token(
        &p,
        "batch-runner",
        "screening.read screening.write population.screen",
    )
    .await;
    let c = &mut svc.client;
    for _ in 0..2 {
        c.evaluate_bundle(with_token(bundle(), &clinic))
            .await
            .expect("within the burst");
    }
    let over = c
        .evaluate_bundle(with_token(bundle(), &clinic))
        .await
        .expect_err("over the limit");
    assert_eq!(over.code(), Code::ResourceExhausted, "{over:?}");
    let hint: u64 = over
        .metadata()
        .get("retry-after")
        .expect("a retry-after hint")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=100).contains(&hint), "{hint}");
    // The other caller's calls are its own: not limited by the clinic app's.
    for _ in 0..3 {
        c.screen_patient(with_token(screen(WriteBackMode::None), &runner))
            .await
            .expect("another caller is not held back");
    }
    svc.shutdown().await.expect("a clean shutdown");
}
