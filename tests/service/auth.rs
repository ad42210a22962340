//! Issue 17: callers authenticated by JWT access tokens from a real OpenID provider
//! (oidc-provider, started by scripts/test through scripts/oidc-peer: TRDSCREEN_TEST_OIDC_URL is its
//! issuer, TRDSCREEN_TEST_OIDC_KEYS the directory of its signing keys), and the audit trail's
//! AuditEvents on a real FHIR server (TRDSCREEN_TEST_FHIR_URL). Each test prints a line and passes
//! when its server is not configured.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};
use trdscreen::auth::{JwtSettings, JwtVerifier, Permission, bearer_token};
use trdscreen::error::Error;

const AUDIENCE: &str = "urn:trdscreen";

pub(super) struct Provider {
    pub(super) issuer: String,
    keys: PathBuf,
}

/// The provider scripts/test started; `None` (the test skips with a line) without it, a failure
/// under `TRDSCREEN_REQUIRE_FHIR=1` (service::fhir_env).
pub(super) fn provider(_test: &str) -> Option<Provider> {
    let issuer = crate::service::fhir_env("TRDSCREEN_TEST_OIDC_URL")?;
    let keys = crate::service::fhir_env("TRDSCREEN_TEST_OIDC_KEYS")?;
    Some(Provider {
        issuer,
        keys: PathBuf::from(keys),
    })
}

fn verifier(p: &Provider) -> JwtVerifier {
    JwtVerifier::new(&JwtSettings {
        issuer: Some(p.issuer.parse().expect("an http(s) issuer")),
        audiences: vec![AUDIENCE.into()],
        ..JwtSettings::default()
    })
    .unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token from the provider's token endpoint by the client-credentials grant; the answer's
/// status and JSON.
pub(super) async fn client_credentials(p: &Provider, client: &str, scope: &str) -> (u16, Value) {
    let http = reqwest::Client::new();
    let metadata: Value = http
        .get(format!("{}/.well-known/openid-configuration", p.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token_endpoint = metadata["token_endpoint"].as_str().unwrap().to_owned();
    let form = format!(
        "grant_type=client_credentials&scope={}",
        scope.replace(' ', "+")
    );
    let response = http
        .post(token_endpoint)
        .basic_auth(client, Some(format!("{client}-test-secret")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn pem(p: &Provider, name: &str) -> Vec<u8> {
    std::fs::read(p.keys.join(name)).unwrap()
}

/// Claims the provider would put in a clinic-app token.
fn claims(p: &Provider) -> Value {
    let now = now();
    json!({
        "iss": p.issuer, "aud": AUDIENCE, "sub": "clinic-app", "client_id": "clinic-app",
        "scope": "screening.read bundle.evaluate", "iat": now, "exp": now + 300, "jti": "t1",
    })
}

fn header(alg: Algorithm, kid: &str) -> Header {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    header.typ = Some("at+jwt".into());
    header
}

/// Signed with the provider's own RSA key (kid rs-1).
fn signed(p: &Provider, claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(&pem(p, "rs256.pem")).unwrap();
    jsonwebtoken::encode(&header(Algorithm::RS256, "rs-1"), claims, &key).unwrap()
}

pub fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Refused as UNAUTHENTICATED for the reason `expected` (words of the refusal), in words that carry
/// nothing of the token.
fn assert_unauthenticated(
    result: Result<trdscreen::auth::Caller, Error>,
    case: &str,
    expected: &str,
    p: &Provider,
) {
    match result {
        Err(Error::Unauthenticated(summary)) => {
            assert!(
                summary.contains(expected),
                "{case}: refused for another reason: {summary}"
            );
            assert!(
                !summary.contains("clinic-app") && !summary.contains(&p.issuer),
                "{case}: the refusal carries the token's text: {summary}"
            );
        }
        other => panic!("{case}: expected UNAUTHENTICATED, got {other:?}"),
    }
}

#[tokio::test]
async fn a_token_of_each_client_from_the_provider_verifies_with_exactly_its_scopes() {
    let Some(p) =
        provider("a_token_of_each_client_from_the_provider_verifies_with_exactly_its_scopes")
    else {
        return;
    };
    let verifier = verifier(&p);

    let (status, answer) =
        client_credentials(&p, "clinic-app", "screening.read bundle.evaluate").await;
    assert_eq!(status, 200, "{answer}");
    let token = answer["access_token"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(token).unwrap().alg,
        Algorithm::RS256
    );
    let caller = verifier.verify(token).await.unwrap();
    assert_eq!(caller.id, "clinic-app");
    assert_eq!(caller.issuer, p.issuer);
    assert_eq!(
        caller.permissions.iter().collect::<Vec<_>>(),
        vec![Permission::ScreeningRead, Permission::BundleEvaluate]
    );

    let (status, answer) = client_credentials(
        &p,
        "batch-runner",
        "screening.read screening.write population.screen",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let token = answer["access_token"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(token).unwrap().alg,
        Algorithm::ES256
    );
    let header = format!("Bearer {token}");
    let caller = verifier
        .verify(bearer_token(Some(&header)).unwrap())
        .await
        .unwrap();
    assert_eq!(caller.id, "batch-runner");
    assert_eq!(
        caller.permissions.iter().collect::<Vec<_>>(),
        vec![
            Permission::ScreeningRead,
            Permission::ScreeningWrite,
            Permission::PopulationScreen
        ]
    );
    assert_eq!(
        verifier.jwks_fetches(),
        1,
        "one discovery and key fetch serves both clients"
    );
}

#[tokio::test]
async fn a_token_for_the_other_clients_scope_is_permission_denied() {
    let Some(p) = provider("a_token_for_the_other_clients_scope_is_permission_denied") else {
        return;
    };
    let verifier = verifier(&p);
    // The provider itself refuses a client the other's scope...
    let (status, answer) = client_credentials(&p, "clinic-app", "population.screen").await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"], "invalid_scope");
    // ...and the token it grants does not open the other client's methods.
    let (_, answer) = client_credentials(&p, "clinic-app", "screening.read bundle.evaluate").await;
    let clinic = verifier
        .verify(answer["access_token"].as_str().unwrap())
        .await
        .unwrap();
    for needed in [Permission::PopulationScreen, Permission::ScreeningWrite] {
        assert!(
            matches!(clinic.require(needed), Err(Error::PermissionDenied(_))),
            "{needed}"
        );
    }
    assert_eq!(clinic.require(Permission::BundleEvaluate), Ok(()));
    let (_, answer) = client_credentials(&p, "batch-runner", "population.screen").await;
    let batch = verifier
        .verify(answer["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert!(matches!(
        batch.require(Permission::BundleEvaluate),
        Err(Error::PermissionDenied(_))
    ));
    assert!(
        matches!(
            batch.require(Permission::ScreeningRead),
            Err(Error::PermissionDenied(_))
        ),
        "a token carries the scopes asked for, not every scope the client may have"
    );
    assert_eq!(batch.require(Permission::PopulationScreen), Ok(()));
}

#[tokio::test]
async fn hand_made_tokens_with_one_defect_each_are_unauthenticated() {
    let Some(p) = provider("hand_made_tokens_with_one_defect_each_are_unauthenticated") else {
        return;
    };
    let verifier = verifier(&p);
    // The control: a hand-made token without a defect is accepted, so each refusal below is for
    // its one defect.
    let good = claims(&p);
    let caller = verifier.verify(&signed(&p, &good)).await.unwrap();
    assert_eq!(caller.id, "clinic-app");
    let es = EncodingKey::from_ec_pem(&pem(&p, "es256.pem")).unwrap();
    let es_token = jsonwebtoken::encode(&header(Algorithm::ES256, "ec-1"), &good, &es).unwrap();
    assert_eq!(verifier.verify(&es_token).await.unwrap().id, "clinic-app");

    let with = |name: &str, value: Value| {
        let mut c = good.clone();
        c[name] = value;
        c
    };
    let stranger = EncodingKey::from_rsa_pem(&pem(&p, "stranger.pem")).unwrap();

    // Wrong signature: another key's, under the provider's key id; and a payload swapped after
    // signing.
    let forged = jsonwebtoken::encode(&header(Algorithm::RS256, "rs-1"), &good, &stranger).unwrap();
    assert_unauthenticated(
        verifier.verify(&forged).await,
        "signed by another key",
        "signature does not verify",
        &p,
    );
    let original = signed(&p, &good);
    let other = signed(&p, &with("client_id", json!("batch-runner")));
    let parts: Vec<&str> = original.split('.').collect();
    let swapped = format!(
        "{}.{}.{}",
        parts[0],
        other.split('.').nth(1).unwrap(),
        parts[2]
    );
    assert_unauthenticated(
        verifier.verify(&swapped).await,
        "payload swapped",
        "signature does not verify",
        &p,
    );

    let n = now();
    let cases = [
        (
            "wrong iss",
            "another issuer",
            with("iss", json!("http://127.0.0.1:1")),
        ),
        (
            "wrong aud",
            "another audience",
            with("aud", json!("urn:another-api")),
        ),
        ("no aud", "lacks exp, iss or aud", {
            let mut c = good.clone();
            c.as_object_mut().unwrap().remove("aud");
            c
        }),
        ("expired", "has expired", with("exp", json!(n - 3600))),
        (
            "not yet valid",
            "not valid yet",
            with("nbf", json!(n + 3600)),
        ),
        ("no client_id or sub", "names no client_id or sub", {
            let mut c = good.clone();
            c.as_object_mut().unwrap().remove("client_id");
            c.as_object_mut().unwrap().remove("sub");
            c
        }),
        (
            "a caller id with a line break",
            "printable characters",
            with("client_id", json!("clinic\napp")),
        ),
    ];
    for (case, expected, claims) in &cases {
        assert_unauthenticated(
            verifier.verify(&signed(&p, claims)).await,
            case,
            expected,
            &p,
        );
    }
    // Expired, but within the 30 s leeway: accepted.
    verifier
        .verify(&signed(&p, &with("exp", json!(n - 5))))
        .await
        .unwrap();

    // alg none, signature empty.
    let none = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"at+jwt","kid":"rs-1"}"#),
        b64url(good.to_string().as_bytes())
    );
    assert_unauthenticated(
        verifier.verify(&none).await,
        "alg none",
        "accepted algorithm",
        &p,
    );
    // HMAC with the provider's public key as the secret.
    let public_pem = pem(&p, "rs256.pub.pem");
    for alg in [Algorithm::HS256, Algorithm::HS384] {
        let hmac = jsonwebtoken::encode(
            &header(alg, "rs-1"),
            &good,
            &EncodingKey::from_secret(&public_pem),
        )
        .unwrap();
        assert_unauthenticated(
            verifier.verify(&hmac).await,
            "HMAC with the public key",
            "accepted algorithm",
            &p,
        );
    }
    // RS512 and PS256 are not accepted algorithms, even with the provider's key.
    let rsa = EncodingKey::from_rsa_pem(&pem(&p, "rs256.pem")).unwrap();
    for alg in [Algorithm::RS512, Algorithm::PS256] {
        let t = jsonwebtoken::encode(&header(alg, "rs-1"), &good, &rsa).unwrap();
        assert_unauthenticated(
            verifier.verify(&t).await,
            "an algorithm not accepted",
            "accepted algorithm",
            &p,
        );
    }
    // Typed JWT rather than at+jwt (an ID token could be): refused unless accept_jwt_typ.
    let mut jwt_typ = header(Algorithm::RS256, "rs-1");
    jwt_typ.typ = Some("JWT".into());
    let t = jsonwebtoken::encode(&jwt_typ, &good, &rsa).unwrap();
    assert_unauthenticated(verifier.verify(&t).await, "typ JWT", "typ at+jwt", &p);
    // Not a JWT at all.
    for junk in ["", "abc", "a.b.c", &"x".repeat(20_000)] {
        assert_unauthenticated(
            verifier.verify(junk).await,
            "not a JWT",
            "the access token is",
            &p,
        );
    }
    assert_eq!(
        verifier.jwks_fetches(),
        1,
        "no refusal above fetched the keys again"
    );
}

#[tokio::test]
async fn an_unknown_key_id_fetches_the_keys_once_then_is_refused() {
    let Some(p) = provider("an_unknown_key_id_fetches_the_keys_once_then_is_refused") else {
        return;
    };
    let verifier = verifier(&p);
    verifier.verify(&signed(&p, &claims(&p))).await.unwrap();
    assert_eq!(verifier.jwks_fetches(), 1);

    let stranger = EncodingKey::from_rsa_pem(&pem(&p, "stranger.pem")).unwrap();
    let rotated =
        jsonwebtoken::encode(&header(Algorithm::RS256, "rs-2"), &claims(&p), &stranger).unwrap();
    assert_unauthenticated(
        verifier.verify(&rotated).await,
        "unknown kid",
        "not among the issuer's keys",
        &p,
    );
    assert_eq!(
        verifier.jwks_fetches(),
        2,
        "an unknown kid fetches the issuer's keys again, once"
    );
    // Within the interval, other unknown key ids fetch nothing more...
    for kid in ["rs-2", "rs-3", "made-up"] {
        let t =
            jsonwebtoken::encode(&header(Algorithm::RS256, kid), &claims(&p), &stranger).unwrap();
        assert_unauthenticated(
            verifier.verify(&t).await,
            "unknown kid again",
            "not among the issuer's keys",
            &p,
        );
    }
    assert_eq!(verifier.jwks_fetches(), 2);
    // ...and the known key still verifies.
    verifier.verify(&signed(&p, &claims(&p))).await.unwrap();
}

#[tokio::test]
async fn an_issuer_that_cannot_be_reached_is_unavailable_not_unauthenticated() {
    // A loopback port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let verifier = JwtVerifier::new(&JwtSettings {
        issuer: Some(format!("http://127.0.0.1:{port}").parse().unwrap()),
        audiences: vec![AUDIENCE.into()],
        ..JwtSettings::default()
    })
    .unwrap();
    let token = format!(
        "{}.{}.c2ln",
        b64url(br#"{"alg":"RS256","typ":"at+jwt","kid":"k"}"#),
        b64url(br#"{"iss":"x"}"#)
    );
    for _ in 0..3 {
        assert!(matches!(
            verifier.verify(&token).await,
            Err(Error::Unavailable(_))
        ));
    }
    assert_eq!(
        verifier.jwks_fetches(),
        1,
        "an issuer that is down is not asked again by every request"
    );
}

// --- the service's published keys ----------------------------------------------------------------

mod published_keys {
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
    use serde_json::{Value, json};
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use trdscreen::auth::{JWKS_PATH, PublishedKey, jwks_router, public_jwks};

    fn openssl(args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl must be installed to make the test keys");
        assert!(out.status.success(), "openssl {args:?}");
    }

    fn keys_dir(test: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("trdscreen-jwks-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn rsa(dir: &Path, name: &str) -> Vec<u8> {
        let path = dir.join(name);
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            path.to_str().unwrap(),
        ]);
        std::fs::read(path).unwrap()
    }

    fn ec(dir: &Path, name: &str) -> Vec<u8> {
        let path = dir.join(name);
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            path.to_str().unwrap(),
        ]);
        std::fs::read(path).unwrap()
    }

    /// A SMART client assertion as the service signs it.
    fn assertion(pem: &[u8], alg: Algorithm, kid: &str) -> String {
        let key = match alg {
            Algorithm::RS384 => EncodingKey::from_rsa_pem(pem).unwrap(),
            _ => EncodingKey::from_ec_pem(pem).unwrap(),
        };
        let mut header = Header::new(alg);
        header.kid = Some(kid.into());
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 300;
        let claims = json!({"iss": "trdscreen", "sub": "trdscreen", "aud": "https://ehr.example/token", "exp": exp, "jti": kid});
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }

    /// Verifies as an EHR's authorization server would: the key of the assertion's kid in the set.
    fn verifies(set: &JwkSet, token: &str) -> bool {
        let header = jsonwebtoken::decode_header(token).unwrap();
        let Some(jwk) = set.find(header.kid.as_deref().unwrap()) else {
            return false;
        };
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&["https://ehr.example/token"]);
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .is_ok()
    }

    #[tokio::test]
    async fn the_published_set_verifies_assertions_of_both_keys_during_a_rotation() {
        let dir = keys_dir("rotation");
        let current = rsa(&dir, "current.pem");
        let next = ec(&dir, "next.pem");
        let unpublished = rsa(&dir, "other.pem");
        let jwks = public_jwks(&[
            PublishedKey {
                pem: &current,
                algorithm: Algorithm::RS384,
                kid: None,
            },
            PublishedKey {
                pem: &next,
                algorithm: Algorithm::ES384,
                kid: Some("next-2026"),
            },
        ])
        .unwrap();
        assert!(!jwks.contains("\"d\""), "no private parameter is published");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, jwks_router(jwks)).await.unwrap();
        });
        let response = reqwest::get(format!("http://{address}{JWKS_PATH}"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "application/jwk-set+json"
        );
        let set: JwkSet = response.json().await.unwrap();
        assert_eq!(set.keys.len(), 2);
        let current_kid = set.keys[0].common.key_id.clone().unwrap();
        assert_eq!(
            current_kid.len(),
            43,
            "an RFC 7638 SHA-256 thumbprint, base64url"
        );
        assert_eq!(set.keys[1].common.key_id.as_deref(), Some("next-2026"));

        assert!(verifies(
            &set,
            &assertion(&current, Algorithm::RS384, &current_kid)
        ));
        assert!(verifies(
            &set,
            &assertion(&next, Algorithm::ES384, "next-2026")
        ));
        // A key not published, under either kid, does not verify.
        assert!(!verifies(
            &set,
            &assertion(&unpublished, Algorithm::RS384, &current_kid)
        ));
        assert!(!verifies(
            &set,
            &assertion(&unpublished, Algorithm::RS384, "other")
        ));
        let missing = reqwest::get(format!("http://{address}/metrics"))
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
        server.abort();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn two_published_keys_with_one_kid_are_refused() {
        let dir = keys_dir("same-kid");
        let a = rsa(&dir, "a.pem");
        let b = rsa(&dir, "b.pem");
        let key = |pem| PublishedKey {
            pem,
            algorithm: Algorithm::RS384,
            kid: Some("k"),
        };
        assert!(public_jwks(&[key(&a), key(&b)]).is_err());
        // The same key twice has the same thumbprint.
        let thumb = |pem| PublishedKey {
            pem,
            algorithm: Algorithm::RS384,
            kid: None,
        };
        assert!(public_jwks(&[thumb(&a), thumb(&a)]).is_err());
        assert!(public_jwks(&[thumb(&a), thumb(&b)]).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

// --- callers by client certificate ----------------------------------------------------------------

mod client_certificates {
    use rustls_pki_types::CertificateDer;
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use trdscreen::auth::{MtlsSettings, Permission, certificate_caller, certificate_identity};
    use trdscreen::error::Error;

    fn openssl(dir: &Path, args: &[&str]) {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl must be installed to make the test certificates");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A CA, and a certificate it signs for `subject` with the extensions `ext` (none when
    /// empty), as DER.
    fn certificate(dir: &Path, name: &str, subject: &str, ext: &str) -> Vec<u8> {
        if !dir.join("ca.pem").exists() {
            openssl(
                dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=test CA",
                ],
            );
        }
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                subject,
            ],
        );
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-outform",
            "DER",
            "-out",
            &format!("{name}.der"),
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        if !ext.is_empty() {
            std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
            args.extend(["-extfile".to_owned(), format!("{name}.ext")]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        openssl(dir, &args);
        std::fs::read(dir.join(format!("{name}.der"))).unwrap()
    }

    fn dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("trdscreen-mtls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_client_certificate_names_its_caller_by_uri_san_else_dns_san_never_by_common_name() {
        let dir = dir();
        let spiffe = "spiffe://hospital.example/ns/ehr/sa/orders";
        let uri = certificate(
            &dir,
            "uri",
            "/CN=ignored.example",
            &format!("subjectAltName=DNS:orders.hospital.example,URI:{spiffe}"),
        );
        let dns = certificate(
            &dir,
            "dns",
            "/CN=ignored.example",
            "subjectAltName=DNS:nightly.hospital.example",
        );
        let cn_only = certificate(
            &dir,
            "cn",
            "/CN=cn-only.hospital.example",
            "basicConstraints=CA:FALSE",
        );

        let settings = MtlsSettings {
            clients: BTreeMap::from([(
                spiffe.to_owned(),
                vec!["screening.read".to_owned(), "screening.write".to_owned()],
            )]),
        };
        let caller = certificate_caller(&[CertificateDer::from(uri)], &settings).unwrap();
        assert_eq!(caller.id, spiffe);
        assert_eq!(
            caller.permissions.iter().collect::<Vec<_>>(),
            vec![Permission::ScreeningRead, Permission::ScreeningWrite]
        );
        let dns = CertificateDer::from(dns);
        assert_eq!(
            certificate_identity(std::slice::from_ref(&dns)).unwrap(),
            "nightly.hospital.example"
        );
        // Authenticated, but the table grants this identity nothing.
        let unlisted = certificate_caller(&[dns], &settings).unwrap();
        assert!(matches!(
            unlisted.require(Permission::ScreeningRead),
            Err(Error::PermissionDenied(_))
        ));
        match certificate_identity(&[CertificateDer::from(cn_only)]) {
            Err(Error::Unauthenticated(s)) => {
                assert!(s.contains("subject alternative name"), "{s}")
            }
            other => panic!("a certificate with a common name only: {other:?}"),
        }
        assert!(matches!(
            certificate_identity(&[]),
            Err(Error::Unauthenticated(_))
        ));
        assert!(matches!(
            certificate_identity(&[CertificateDer::from(b"not DER".to_vec())]),
            Err(Error::Unauthenticated(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
