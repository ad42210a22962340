//! A server's words never reach a caller (issue 16, defect 9). A FHIR server's error body may name
//! a patient ("DB down for Jane Roe MRN-48213"); what callers get is the status class, the HTTP
//! status and the OperationOutcome's issue codes, in the service's own words: in ScreenPatient's
//! status, in ScreenPopulation's `PatientError`, in `write_back.error_message`, on `trdscreen
//! screen`'s standard error (its logs included), and from a token endpoint's refusal. A caller's
//! own text (a Bundle's resourceType) is not echoed either.

use super::*;
use trdscreen::proto::screen_population_request::Cohort;
use trdscreen::proto::{EvaluateBundleRequest, PatientIds, ScreenPopulationRequest};

/// What a careless server writes into its error answers.
const CLINICAL: &str = "DB down for Jane Roe MRN-48213 (sertraline 200 mg)";

/// Whether `text` carries any piece of [`CLINICAL`].
fn leaks(text: &str) -> bool {
    ["Jane", "Roe", "MRN", "48213", "sertraline", "DB down"]
        .iter()
        .any(|piece| text.contains(piece))
}

fn clinical_outcome(status: u16) -> Action {
    Action::Reply(Answer::outcome(status, "exception", CLINICAL))
}

#[tokio::test]
async fn a_servers_error_text_reaches_no_screen_patient_population_or_write_back_caller() {
    let stub = stub_with_patient().await;
    stub.on("GET", &patient_path(), clinical_outcome(500));
    stub.on("GET", "/fhir/Patient/other", clinical_outcome(503));
    let mut client = service(&stub).await;

    let status = screen(&mut client).await.expect_err("the server fails");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(
        status.message(),
        "FHIR server unavailable: the FHIR server failed the Patient request (500, issue exception)"
    );

    let mut stream = client
        .screen_population(ScreenPopulationRequest {
            cohort: Some(Cohort::PatientIds(PatientIds {
                ids: vec![PATIENT.into(), "other".into()],
            })),
            as_of: None,
            write_back: WriteBackMode::None as i32,
        })
        .await
        .expect("the call starts")
        .into_inner();
    let mut errors = Vec::new();
    while let Some(response) = stream.message().await.expect("the stream goes on") {
        errors.push(response.error.expect("each patient fails"));
    }
    assert_eq!(errors.len(), 2);
    for e in &errors {
        assert_eq!(e.code, "UNAVAILABLE", "{e:?}");
        assert!(e.message.contains("issue exception"), "{e:?}");
        assert!(!leaks(&e.message), "{e:?}");
    }

    // The record reads; the Flag's create fails with the same words.
    stub.clear_rules();
    stub.on_transaction("Flag", clinical_outcome(500));
    let response = screen_with(&mut client, WriteBackMode::Flag)
        .await
        .expect("the screening succeeds");
    assert_met(&response);
    let result = write_back(&response);
    assert_eq!(result.error_code, "UNAVAILABLE", "{result:?}");
    assert!(
        result
            .error_message
            .contains("the FHIR server failed the Flag request (500, issue exception)"),
        "{result:?}"
    );
    assert!(!leaks(&result.error_message), "{result:?}");

    // A caller's own text is not echoed back either (nor into a log).
    let status = client
        .evaluate_bundle(EvaluateBundleRequest {
            bundle_json: format!(r#"{{"resourceType": "{CLINICAL}"}}"#),
            as_of: None,
        })
        .await
        .expect_err("not a Bundle");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(!leaks(status.message()), "{}", status.message());
}

#[tokio::test]
async fn a_servers_error_text_never_reaches_the_screen_commands_terminal() {
    for (status, expected) in [
        (
            500,
            "trdscreen: FHIR server unavailable: the FHIR server failed the Patient request (500, issue exception)",
        ),
        (
            401,
            "trdscreen: unauthenticated: the FHIR server refused the credentials (401, issue exception)",
        ),
    ] {
        let stub = stub_with_patient().await;
        stub.on("*", "*", clinical_outcome(status));
        let dir =
            std::env::temp_dir().join(format!("trdscreen-leaks-{status}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("settings.toml");
        std::fs::write(
            &config,
            format!(
                "[fhir]\nbase_url = \"{}\"\nmax_retries = 0\ntimeout_secs = 5\n",
                stub.base()
            ),
        )
        .unwrap();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_trdscreen"))
                .args(["screen", "--patient", PATIENT, "--write-back", "none", "-c"])
                .arg(&config)
                .env("RUST_LOG", "trdscreen=trace")
                .output()
                .expect("runs")
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(out.stdout.is_empty());
        assert_eq!(stderr.lines().last(), Some(expected), "{stderr}");
        assert!(!leaks(&stderr), "logs and message, even at trace: {stderr}");
        assert!(
            stderr.contains("error/exception"),
            "the OperationOutcome's severity and code are logged at debug: {stderr}"
        );
    }
}

#[tokio::test]
async fn a_token_endpoints_error_description_never_reaches_callers() {
    let stub = stub_with_patient().await;
    stub.on(
        "POST",
        "/auth/token",
        Action::Reply(Answer::json(
            400,
            &json!({"error": "invalid_client", "error_description": CLINICAL}),
        )),
    );
    let mut s = settings(&stub);
    s.fhir.auth = AuthSettings {
        mode: AuthMode::Smart,
        token_url: Some(format!("{}/auth/token", stub.origin).parse().unwrap()),
        ..AuthSettings::default()
    };
    let secrets = Secrets {
        private_key_pem: Some(private_key()),
        ..Secrets::default()
    };
    let mut client = serve(&s, &secrets).await;

    let status = screen(&mut client).await.expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(
        status.message(),
        "unauthenticated: the token endpoint refused the client (400, invalid_client)"
    );
    assert!(
        stub.count("GET", &patient_path()) == 0,
        "no token, no request"
    );
}

/// A fresh RS384-capable key (openssl, as scripts/test makes the SMART test key).
pub(super) fn private_key() -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "openssl genpkey");
    out.stdout
}
