//! Credentials stay with the FHIR server; authentication failures.

use super::*;

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
        status.message().contains("401, issue login"),
        "{}",
        status.message()
    );
    assert!(
        !status.message().contains("token expired"),
        "never the server's text: {}",
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
async fn a_401_to_a_smart_token_renews_it_once_and_a_second_401_is_unauthenticated() {
    let stub = stub_with_patient().await;
    stub.on(
        "POST",
        "/auth/token",
        Action::Reply(Answer::json(
            200,
            &json!({"access_token": "a-token", "token_type": "bearer", "expires_in": 300}),
        )),
    );
    stub.on_times(
        "GET",
        &patient_path(),
        1,
        Action::Reply(Answer::outcome(401, "login", "token expired")),
    );
    let mut s = settings(&stub);
    s.fhir.auth = AuthSettings {
        mode: AuthMode::Smart,
        client_id: "trdscreen".into(),
        token_url: Some(format!("{}/auth/token", stub.origin).parse().unwrap()),
        ..AuthSettings::default()
    };
    let secrets = Secrets {
        private_key_pem: Some(super::leaks::private_key()),
        ..Secrets::default()
    };
    let mut client = serve(&s, &secrets).await;

    // The token the server refused is renewed once, and the request sent again.
    screen(&mut client)
        .await
        .expect("screened after one renewal");
    assert_eq!(stub.count("POST", "/auth/token"), 2);
    assert_eq!(stub.count("GET", &patient_path()), 2);

    // A server that refuses every token: one renewal, then UNAUTHENTICATED, not a loop.
    stub.on(
        "GET",
        &patient_path(),
        Action::Reply(Answer::outcome(401, "login", "token expired")),
    );
    let status = screen(&mut client).await.expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(stub.count("POST", "/auth/token"), 3);
    assert_eq!(stub.count("GET", &patient_path()), 4);
}

#[tokio::test]
async fn a_token_endpoint_that_is_briefly_unavailable_is_asked_again_within_the_retries() {
    let stub = stub_with_patient().await;
    // The first matching rule answers: two 503s, then tokens.
    stub.on_times(
        "POST",
        "/auth/token",
        2,
        Action::Reply(Answer::outcome(503, "transient", "busy")),
    );
    stub.on(
        "POST",
        "/auth/token",
        Action::Reply(Answer::json(
            200,
            &json!({"access_token": "a-token", "token_type": "bearer", "expires_in": 300}),
        )),
    );
    let mut s = settings(&stub);
    s.fhir.auth = AuthSettings {
        mode: AuthMode::Smart,
        client_id: "trdscreen".into(),
        token_url: Some(format!("{}/auth/token", stub.origin).parse().unwrap()),
        ..AuthSettings::default()
    };
    let secrets = Secrets {
        private_key_pem: Some(super::leaks::private_key()),
        ..Secrets::default()
    };
    let mut client = serve(&s, &secrets).await;
    screen(&mut client)
        .await
        .expect("screened after two refused token requests");
    assert_eq!(stub.count("POST", "/auth/token"), 3);

    // Down for longer than the retries (fhir.max_retries = 3): four requests, then an error.
    let stub = stub_with_patient().await;
    stub.on(
        "POST",
        "/auth/token",
        Action::Reply(Answer::outcome(503, "transient", "busy")),
    );
    s.fhir.base_url = Some(stub.base().parse().unwrap());
    s.fhir.auth.token_url = Some(format!("{}/auth/token", stub.origin).parse().unwrap());
    let mut client = serve(&s, &secrets).await;
    screen(&mut client).await.expect_err("no token");
    assert_eq!(stub.count("POST", "/auth/token"), 4);
    assert_eq!(stub.count("GET", &patient_path()), 0);
}
