//! The SMART client's keys, published for the EHR (issue 17): `trdscreen serve` with SMART Backend
//! Services serves its public keys as a JWKS at `/.well-known/jwks.json` on the metrics port, and
//! signs its client assertions with the current key under the `kid` the set gives it. A rotation
//! is four deployments of the same service: current A; A with B published as the next key; B
//! current with A still published; B alone. At each step the assertion the token endpoint receives
//! verifies against the set published at that step, and after the swap also against the set of
//! the step before (what an EHR that cached it holds). The token endpoint is a stub that records
//! the assertions; the keys are made with openssl.

use crate::stub::{Action, Answer, Stub};
use crate::telemetry::collector::Served;
use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use trdscreen::proto::{ScreenPatientRequest, WriteBackMode};

const PATIENT: &str = "met-two-failed-ssri-snri";
const CLIENT_ID: &str = "trdscreen-jwks";
/// Parameters of a private key (RFC 7518, section 6) and of a symmetric one.
const PRIVATE_PARAMETERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// An RSA private key (PKCS#8 PEM) made with openssl.
fn rsa_key(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&path)
        .output()
        .expect("openssl must be installed to make the test keys");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// One deployment: `trdscreen serve` with SMART auth signing with `current`, publishing `next` too
/// when given (from the environment secret, as a Kubernetes Secret may give it).
struct Deployment {
    served: Served,
}

impl Deployment {
    async fn start(stub: &Stub, current: &Path, next: Option<&Path>) -> Deployment {
        let mut env = vec![
            ("TRDSCREEN_FHIR_BASE_URL", stub.base()),
            ("TRDSCREEN_FHIR_AUTH_MODE", "smart".to_owned()),
            ("TRDSCREEN_FHIR_AUTH_CLIENT_ID", CLIENT_ID.to_owned()),
            ("TRDSCREEN_FHIR_AUTH_TOKEN_URL", token_url(stub)),
            (
                "TRDSCREEN_FHIR_AUTH_PRIVATE_KEY_FILE",
                current.display().to_string(),
            ),
        ];
        if let Some(next) = next {
            env.push((
                "TRDSCREEN_FHIR_AUTH_NEXT_PRIVATE_KEY",
                std::fs::read_to_string(next).expect("the next key"),
            ));
        }
        Deployment {
            served: Served::start(&env).await,
        }
    }

    /// The published set: its JSON (checked for its content type and for private parameters).
    async fn jwks(&self) -> JwkSet {
        let response = reqwest::get(format!(
            "http://{}/.well-known/jwks.json",
            self.served.metrics
        ))
        .await
        .expect("the JWKS is served");
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/jwk-set+json")
        );
        let set: Value = response.json().await.expect("the JWKS is JSON");
        for key in set["keys"].as_array().expect("a keys array") {
            let names: Vec<&str> = key
                .as_object()
                .expect("a key is an object")
                .keys()
                .map(String::as_str)
                .collect();
            assert!(
                !names.iter().any(|n| PRIVATE_PARAMETERS.contains(n)),
                "a published key carries a private parameter: {names:?}"
            );
            assert_eq!(key["use"], "sig");
            assert_eq!(key["alg"], "RS384");
        }
        let set: JwkSet = serde_json::from_value(set).expect("a JWK set");
        for key in &set.keys {
            assert_eq!(
                key.common.key_id.as_deref(),
                Some(key.thumbprint(ThumbprintHash::SHA256).unwrap().as_str()),
                "without a configured kid, a key's kid is its RFC 7638 thumbprint"
            );
        }
        set
    }

    /// Makes the service sign an assertion (a screening needs a token) and returns the assertion
    /// the token endpoint received.
    async fn assertion(&self, stub: &Stub) -> String {
        let before = stub.count("POST", "/token");
        let mut client = self.served.client().await;
        client
            .screen_patient(ScreenPatientRequest {
                patient_id: PATIENT.into(),
                as_of: Some(crate::service::timestamp("2025-06-01")),
                write_back: WriteBackMode::None as i32,
            })
            .await
            .expect("screened with a SMART token");
        let requests = stub.requests_to("POST", "/token");
        assert_eq!(requests.len(), before + 1, "one token request");
        let form = requests.last().expect("a token request").body.clone();
        url::form_urlencoded::parse(&form)
            .find(|(name, _)| name == "client_assertion")
            .map(|(_, value)| value.into_owned())
            .expect("a client_assertion")
    }
}

fn token_url(stub: &Stub) -> String {
    format!("{}/token", stub.origin)
}

fn kids(set: &JwkSet) -> Vec<String> {
    set.keys
        .iter()
        .map(|k| k.common.key_id.clone().expect("a kid"))
        .collect()
}

/// Verifies `assertion` with the key of its `kid` in `set`, as the EHR's authorization server
/// does: `Err` when the set has no such key or the signature or claims do not hold.
fn verify(assertion: &str, set: &JwkSet, stub: &Stub) -> Result<(), String> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("the assertion names no kid")?;
    let jwk: &Jwk = set.find(&kid).ok_or(format!("no published key {kid}"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(jsonwebtoken::Algorithm::RS384);
    validation.set_audience(&[token_url(stub)]);
    validation.set_issuer(&[CLIENT_ID]);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let claims = jsonwebtoken::decode::<Value>(assertion, &key, &validation)
        .map_err(|e| e.to_string())?
        .claims;
    if claims["sub"] != CLIENT_ID || claims["jti"].as_str().is_none_or(str::is_empty) {
        return Err(format!("claims: {claims}"));
    }
    Ok(())
}

fn kid_of(assertion: &str) -> String {
    jsonwebtoken::decode_header(assertion)
        .expect("a JWT")
        .kid
        .expect("a kid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_keys_verify_the_assertions_through_a_rotation() {
    let dir = std::env::temp_dir().join(format!("trdscreen-jwks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (rsa_key(&dir, "a.pem"), rsa_key(&dir, "b.pem"));
    let stub = Stub::start().await;
    stub.load_bundle(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("tests/fixtures/scenarios/{PATIENT}.json")),
        )
        .expect("the fixture"),
    );
    stub.on(
        "POST",
        "/token",
        Action::Reply(Answer::json(
            200,
            &json!({"access_token": "stub-token", "token_type": "bearer", "expires_in": 3600}),
        )),
    );

    // 1. Key A alone.
    let only_a = Deployment::start(&stub, &a, None).await;
    let set_a = only_a.jwks().await;
    let assertion_a = only_a.assertion(&stub).await;
    assert_eq!(kids(&set_a), [kid_of(&assertion_a)]);
    verify(&assertion_a, &set_a, &stub).expect("A's assertion verifies against the set");
    drop(only_a);

    // 2. B published as the next key; A still signs.
    let next_b = Deployment::start(&stub, &a, Some(&b)).await;
    let set_ab = next_b.jwks().await;
    let kid_a = kid_of(&assertion_a);
    assert_eq!(set_ab.keys.len(), 2);
    assert_eq!(kids(&set_ab)[0], kid_a, "the current key first");
    let kid_b = kids(&set_ab)[1].clone();
    assert_ne!(kid_a, kid_b);
    let signed = next_b.assertion(&stub).await;
    assert_eq!(kid_of(&signed), kid_a, "the next key does not sign yet");
    verify(&signed, &set_ab, &stub).expect("verifies against the set of both keys");
    drop(next_b);

    // 3. Swapped: B signs, A is still published.
    let swapped = Deployment::start(&stub, &b, Some(&a)).await;
    let set_ba = swapped.jwks().await;
    assert_eq!(kids(&set_ba), [kid_b.clone(), kid_a.clone()]);
    let assertion_b = swapped.assertion(&stub).await;
    assert_eq!(kid_of(&assertion_b), kid_b);
    verify(&assertion_b, &set_ba, &stub).expect("B's assertion verifies against the new set");
    verify(&assertion_b, &set_ab, &stub)
        .expect("and against the set an EHR cached before the swap");
    drop(swapped);

    // 4. A dropped: B alone; an assertion signed by A no longer verifies.
    let only_b = Deployment::start(&stub, &b, None).await;
    let set_b = only_b.jwks().await;
    assert_eq!(kids(&set_b), [kid_b]);
    verify(&only_b.assertion(&stub).await, &set_b, &stub).expect("B's assertion verifies");
    assert!(
        verify(&assertion_a, &set_b, &stub).is_err(),
        "the dropped key verifies nothing"
    );
    drop(only_b);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn serve_refuses_to_start_when_the_next_key_has_the_current_keys_kid() {
    let dir = std::env::temp_dir().join(format!("trdscreen-jwks-same-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let a = rsa_key(&dir, "a.pem");
    let out = Command::new(env!("CARGO_BIN_EXE_trdscreen"))
        .arg("serve")
        .env("TRDSCREEN_GRPC_LISTEN", "127.0.0.1:0")
        .env("TRDSCREEN_TELEMETRY_METRICS_LISTEN", "127.0.0.1:0")
        .env("TRDSCREEN_FHIR_BASE_URL", "http://127.0.0.1:9/fhir")
        .env("TRDSCREEN_FHIR_AUTH_MODE", "smart")
        .env("TRDSCREEN_FHIR_AUTH_CLIENT_ID", CLIENT_ID)
        .env("TRDSCREEN_FHIR_AUTH_PRIVATE_KEY_FILE", &a)
        .env("TRDSCREEN_FHIR_AUTH_NEXT_PRIVATE_KEY_FILE", &a)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("same kid"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
