//! Paging: loops, endless chains, the page cap, and 404s on searches.

use super::*;

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
            .contains("MedicationStatement search failed: MedicationStatement not found (404, issue not-supported)"),
        "{}",
        status.message()
    );
    assert!(
        !status.message().contains("Unknown"),
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

#[tokio::test]
async fn a_search_whose_answer_carries_an_error_outcome_is_not_taken_as_complete() {
    let stub = stub_with_patient().await;
    // The server cut the search short and said so in an OperationOutcome among the results.
    stub.on(
        "GET",
        "/fhir/Condition",
        Action::Dynamic(Arc::new(|_: &Seen, origin: &str| {
            let mut page = searchset(&[], &format!("{origin}/fhir"), None);
            page["entry"] = json!([{
                "resource": {"resourceType": "OperationOutcome", "issue": [
                    {"severity": "error", "code": "too-costly", "diagnostics": "PHI-LIKE TEXT"}
                ]},
                "search": {"mode": "outcome"}
            }]);
            Answer::json(200, &page)
        })),
    );
    let mut client = service(&stub).await;

    let status = screen_with(&mut client, WriteBackMode::FlagAndCarePlan)
        .await
        .expect_err("a search cut short is no whole record");
    assert!(
        status.message().contains("Condition") && !status.message().contains("PHI-LIKE"),
        "{}",
        status.message()
    );
    assert!(stub.writes_of("Flag").is_empty());
}
