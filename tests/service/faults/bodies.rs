//! Bodies that are not what FHIR promises.

use super::*;

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
