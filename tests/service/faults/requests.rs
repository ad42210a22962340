//! Bad input never reaches the FHIR server; the server's status and issue codes, never its words;
//! the baseline request count.

use super::writeback::flag_writes;
use super::*;

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

#[tokio::test]
async fn patient_and_group_ids_of_dots_are_invalid_argument_and_never_reach_the_server() {
    use trdscreen::proto::screen_population_request::Cohort;
    use trdscreen::proto::{PatientIds, ScreenPopulationRequest};
    let stub = stub_with_patient().await;
    let mut client = service(&stub).await;
    // `.` and `..` match the id grammar's characters but are path segments: `GET /fhir/Patient/..`
    // is `GET /fhir/`.
    for id in [".", "..", "..."] {
        let status = client
            .screen_patient(request(id, WriteBackMode::FlagAndCarePlan))
            .await
            .expect_err(id);
        assert_eq!(status.code(), Code::InvalidArgument, "{id:?}: {status:?}");
        assert!(status.message().contains("patient_id"), "{status:?}");

        let status = client
            .screen_population(ScreenPopulationRequest {
                cohort: Some(Cohort::GroupId(id.into())),
                as_of: None,
                write_back: WriteBackMode::None as i32,
            })
            .await
            .expect_err(id);
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "group {id:?}: {status:?}"
        );
    }
    let mut stream = client
        .screen_population(ScreenPopulationRequest {
            cohort: Some(Cohort::PatientIds(PatientIds {
                ids: vec!["..".into()],
            })),
            as_of: None,
            write_back: WriteBackMode::None as i32,
        })
        .await
        .expect("the call starts")
        .into_inner();
    let answer = stream
        .message()
        .await
        .expect("one answer")
        .expect("one answer");
    let error = answer.error.expect("the patient fails");
    assert_eq!(error.code, "INVALID_ARGUMENT", "{error:?}");
    assert!(stub.requests().is_empty(), "{:?}", stub.requests());
}

// --- the server's status and issue codes, never its words --------------------------------------

#[tokio::test]
async fn an_operation_outcome_on_a_400_gives_its_status_and_issue_code() {
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
    assert_eq!(
        status.message(),
        "bad response from the FHIR server: the FHIR server answered the Observation request with 400, issue invalid"
    );
    assert_eq!(
        stub.count("GET", "/fhir/Observation"),
        1,
        "a 400 is not retried"
    );
}

#[tokio::test]
async fn an_operation_outcome_on_a_422_write_gives_its_status_and_issue_code() {
    let stub = stub_with_patient().await;
    stub.on_transaction(
        "Flag",
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
        result.error_message.contains("422, issue processing"),
        "{}",
        result.error_message
    );
    assert!(
        !result.error_message.contains("binding"),
        "{}",
        result.error_message
    );
    assert_eq!(flag_writes(&stub).len(), 1, "a 422 is not retried");
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

// --- requests that do not decode (issue 16, defect 15) ---------------------------------------

/// Sends a request message's bytes as they are (the generated client cannot send a string that is
/// not UTF-8).
#[derive(Clone, Copy)]
struct Raw;

impl tonic::codec::Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = ScreenPatientResponse;
    type Encoder = Raw;
    type Decoder = tonic_prost::ProstDecoder<ScreenPatientResponse>;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

#[tokio::test]
async fn a_bundle_that_is_not_utf8_and_a_malformed_as_of_are_invalid_argument() {
    let stub = Stub::start().await;
    let address = serve_at(&settings(&stub), &Secrets::default()).await;
    let channel = Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .expect("connects");
    let mut grpc = tonic::client::Grpc::new(channel);
    let evaluate =
        http::uri::PathAndQuery::from_static("/trdscreen.v1.TrdScreening/EvaluateBundle");
    let screen = http::uri::PathAndQuery::from_static("/trdscreen.v1.TrdScreening/ScreenPatient");

    let latin1 = b"{\"resourceType\": \"Bundle\", \"id\": \"M\xfcller\"}";
    let mut not_utf8 = vec![0x0a, latin1.len() as u8];
    not_utf8.extend_from_slice(latin1);
    // ScreenPatientRequest.as_of (field 2) as a varint, not a Timestamp message.
    let as_of_not_a_message = vec![0x0a, 0x02, b'p', b'1', 0x10, 0x05];
    // EvaluateBundleRequest.as_of (field 2) whose length runs past the end.
    let as_of_cut_short = vec![0x12, 0x09, 0x08, 0x01];
    for (path, bytes, field) in [
        (&evaluate, not_utf8, "bundle_json"),
        (&screen, as_of_not_a_message, "as_of"),
        (&evaluate, as_of_cut_short, ""),
    ] {
        grpc.ready().await.expect("ready");
        let status = grpc
            .unary(tonic::Request::new(bytes), path.clone(), Raw)
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{path}: {status:?}");
        assert!(status.message().contains(field), "{status:?}");
        assert!(!status.message().contains("ller"), "{status:?}");
    }

    // A Timestamp out of its own range is malformed too.
    let mut client = serve(&settings(&stub), &Secrets::default()).await;
    let status = client
        .evaluate_bundle(trdscreen::proto::EvaluateBundleRequest {
            bundle_json: std::fs::read_to_string(FIXTURE).unwrap(),
            as_of: Some(prost_types::Timestamp {
                seconds: 1_750_000_000,
                nanos: -1,
            }),
        })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(stub.requests().is_empty());
}
