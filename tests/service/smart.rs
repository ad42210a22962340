//! The service against the real FHIR server in SMART Backend Services mode (sekmet-fhir, started by
//! scripts/test with the clients `trdscreen`, scope system/*.*, and `trdscreen-ro`, system/*.read,
//! both registered with the key in TRDSCREEN_TEST_SMART_KEY). The service finds the token endpoint
//! by discovery and signs its client assertion with RS384.

use crate::service;

use serde_json::Value;
use service::{Fhir, settings, smart_key_file, smart_url, start, start_with_env, timestamp};
use std::time::{SystemTime, UNIX_EPOCH};
use tonic::Code;
use trdscreen::proto::{ScreenPatientRequest, TrdStatus, WriteBackMode};
use trdscreen::settings::{AuthMode, Settings, SigningAlgorithm};

const AS_OF: &str = "2025-06-01";

/// An access token for `client_id`, obtained the way a SMART backend service does (discovery, a
/// signed client assertion), without the code under test.
async fn access_token(client_id: &str, scope: &str) -> String {
    let http = reqwest::Client::new();
    let base = smart_url();
    let config: Value = http
        .get(format!("{base}/.well-known/smart-configuration"))
        .send()
        .await
        .expect("SMART discovery answers")
        .json()
        .await
        .expect("the SMART configuration is JSON");
    let token_url = config["token_endpoint"]
        .as_str()
        .expect("a token_endpoint")
        .to_owned();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": client_id, "sub": client_id, "aud": token_url,
        "exp": now + 240, "iat": now, "jti": service::unique_prefix("jti"),
    });
    let pem = std::fs::read(smart_key_file()).expect("the SMART private key is readable");
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).expect("an RSA PEM key");
    let assertion = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS384),
        &claims,
        &key,
    )
    .expect("the assertion is signed");
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair(
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        )
        .append_pair("client_assertion", &assertion)
        .append_pair("scope", scope)
        .finish();
    let response = http
        .post(&token_url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("the token endpoint answers");
    let status = response.status();
    let body: Value = response.json().await.expect("the token answer is JSON");
    assert!(
        status.is_success(),
        "token request refused: {status} {body}"
    );
    body["access_token"]
        .as_str()
        .expect("an access_token")
        .to_owned()
}

/// The SMART server with a full-scope token, for loading fixtures and checking what was written.
async fn admin() -> Fhir {
    Fhir::new(
        &smart_url(),
        Some(access_token("trdscreen", "system/*.*").await),
    )
}

/// Settings for SMART Backend Services as `client_id`: RS384, token endpoint discovered, the
/// default scope.
fn smart_settings(client_id: &str) -> Settings {
    let mut s = settings(&smart_url());
    s.fhir.auth.mode = AuthMode::Smart;
    s.fhir.auth.client_id = client_id.to_owned();
    s.fhir.auth.algorithm = SigningAlgorithm::RS384;
    s.fhir.auth.token_url = None;
    s
}

fn request(patient_id: &str) -> ScreenPatientRequest {
    ScreenPatientRequest {
        patient_id: patient_id.to_owned(),
        as_of: Some(timestamp(AS_OF)),
        write_back: WriteBackMode::FlagAndCarePlan as i32,
    }
}

#[tokio::test]
async fn a_fhir_request_without_a_token_gets_401() {
    if !crate::service::fhir_servers() {
        return;
    }
    let response = reqwest::Client::new()
        .get(format!("{}/Patient/anyone", smart_url()))
        .header("Accept", "application/fhir+json")
        .send()
        .await
        .expect("the SMART server answers");
    assert_eq!(response.status().as_u16(), 401);
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(challenge.starts_with("Bearer"), "{challenge:?}");
}

#[tokio::test]
async fn the_service_with_smart_auth_screens_a_patient_and_writes_back() {
    if !crate::service::fhir_servers() {
        return;
    }
    let fhir = admin().await;
    let loaded = fhir
        .load("fhir/requests-medication-reference.json", "smart")
        .await;
    let mut s = smart_settings("trdscreen");
    s.fhir.auth.private_key_file = Some(smart_key_file());
    let mut svc = start(s).await;

    let response = svc
        .client
        .screen_patient(request(&loaded.patient_id))
        .await
        .expect("ScreenPatient succeeds")
        .into_inner();
    let a = response.assessment.expect("an assessment");
    assert_eq!(a.patient_id, loaded.patient_id);
    assert_eq!(a.status, TrdStatus::Met as i32);
    let wb = response.write_back.expect("a write-back result");
    assert_eq!(
        (wb.error_code.as_str(), wb.error_message.as_str()),
        ("", ""),
        "the write-back failed"
    );
    assert!(wb.changed);
    let flags = fhir.flags(&loaded.patient_id).await;
    let plans = fhir.care_plans(&loaded.patient_id).await;
    assert_eq!(flags.len(), 1, "{flags:#?}");
    assert_eq!(plans.len(), 1, "{plans:#?}");
    assert_eq!(
        wb.flag_reference,
        format!("Flag/{}", flags[0]["id"].as_str().unwrap())
    );
    assert_eq!(
        wb.care_plan_reference,
        format!("CarePlan/{}", plans[0]["id"].as_str().unwrap())
    );

    // The cached token serves the next call too; nothing changed, so nothing is written.
    let again = svc
        .client
        .screen_patient(request(&loaded.patient_id))
        .await
        .expect("a second ScreenPatient succeeds")
        .into_inner();
    let wb2 = again.write_back.expect("a write-back result");
    assert_eq!(wb2.error_code, "", "{wb2:?}");
    assert!(!wb2.changed);
    assert_eq!(wb2.flag_reference, wb.flag_reference);
}

#[tokio::test]
async fn a_read_only_client_gets_the_assessment_and_a_permission_denied_write_back() {
    if !crate::service::fhir_servers() {
        return;
    }
    let fhir = admin().await;
    let loaded = fhir
        .load("fhir/statements-medication-reference.json", "smart-ro")
        .await;
    // The key comes from TRDSCREEN_FHIR_AUTH_PRIVATE_KEY this time (as Settings::secrets reads it).
    let pem = std::fs::read_to_string(smart_key_file()).expect("the key");
    let env = move |name: &str| (name == "TRDSCREEN_FHIR_AUTH_PRIVATE_KEY").then(|| pem.clone());
    let mut svc = start_with_env(smart_settings("trdscreen-ro"), &env).await;

    let response = svc
        .client
        .screen_patient(request(&loaded.patient_id))
        .await
        .expect("ScreenPatient succeeds although the write-back cannot")
        .into_inner();
    let a = response.assessment.expect("the assessment is returned");
    assert_eq!(a.patient_id, loaded.patient_id);
    assert_eq!(a.status, TrdStatus::Met as i32);
    let wb = response.write_back.expect("a write-back result");
    assert_eq!(wb.error_code, "PERMISSION_DENIED", "{wb:?}");
    assert_eq!(wb.flag_reference, "");
    assert_eq!(wb.care_plan_reference, "");
    assert!(!wb.changed);
    let message = wb.error_message.to_lowercase();
    assert!(
        message.contains("permission denied") && message.contains("403"),
        "{:?}",
        wb.error_message
    );
    // The server's own reason (its OperationOutcome) is passed on.
    assert!(
        message.contains("flag") && message.contains("forbidden"),
        "{:?}",
        wb.error_message
    );
    assert!(fhir.flags(&loaded.patient_id).await.is_empty());
    assert!(fhir.care_plans(&loaded.patient_id).await.is_empty());
}

#[tokio::test]
async fn an_unknown_smart_client_is_unauthenticated() {
    if !crate::service::fhir_servers() {
        return;
    }
    let mut s = smart_settings("not-registered");
    s.fhir.auth.private_key_file = Some(smart_key_file());
    let mut svc = start(s).await;
    let status = svc
        .client
        .screen_patient(request("anyone"))
        .await
        .expect_err("no token, no screening");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
}
