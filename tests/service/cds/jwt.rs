//! The CDS client's JWT: a good one is served; each defect is a 401 with nothing in the body.

use super::{Cds, Ehr, ec_key, now, request, scenario, scratch, to_today};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

#[tokio::test]
async fn a_trusted_client_is_served_and_each_defect_of_its_jwt_is_a_bare_401() {
    let dir = scratch("jwt");
    let ehr = Ehr::start(&dir).await;
    let cds = Cds::start(&ehr, &[], &dir).await;
    let service = "trd-patient-view";
    let aud = format!("{}/{service}", cds.base);
    let record = scenario("not-applicable-no-antidepressant", to_today());
    let body = request(
        "patient-view",
        record[0]["id"].as_str().unwrap(),
        json!({}),
        Some(super::prefetch(&record)),
    );

    let good = ehr.sign(&ehr.header(), &ehr.claims(&aud));
    let (status, answer) = cds.post(service, Some(&good), &body).await;
    assert_eq!(status, 200, "a good token is served: {answer}");
    let (status, answer) = cds.post(service, Some(&good), &body).await;
    assert_eq!(
        (status, answer),
        (401, serde_json::Value::Null),
        "replayed jti"
    );

    let other_key = ec_key(&dir, "other.pem");
    let mut cases: Vec<(&str, String)> = Vec::new();
    cases.push((
        "another key's signature",
        jsonwebtoken::encode(
            &ehr.header(),
            &ehr.claims(&aud),
            &EncodingKey::from_ec_pem(&other_key).unwrap(),
        )
        .unwrap(),
    ));
    let mut claims = ehr.claims(&format!("{}/trd-order-sign", cds.base));
    cases.push(("aud of another endpoint", ehr.sign(&ehr.header(), &claims)));
    claims = ehr.claims("https://elsewhere.example/cds-services");
    cases.push(("aud of another service", ehr.sign(&ehr.header(), &claims)));
    claims = ehr.claims(&aud);
    claims["iat"] = json!(now() - 400);
    claims["exp"] = json!(now() - 120);
    cases.push(("expired", ehr.sign(&ehr.header(), &claims)));
    claims = ehr.claims(&aud);
    claims["exp"] = json!(now() + 3600);
    cases.push(("lives an hour", ehr.sign(&ehr.header(), &claims)));
    claims = ehr.claims(&aud);
    claims["iss"] = json!("http://127.0.0.1:9/another-ehr");
    cases.push(("unknown iss", ehr.sign(&ehr.header(), &claims)));
    let mut header = ehr.header();
    header.jku = Some("http://127.0.0.1:9/keys.json".into());
    cases.push((
        "jku not on the allow list",
        ehr.sign(&header, &ehr.claims(&aud)),
    ));
    let b64 = |v: &serde_json::Value| crate::auth::b64url(v.to_string().as_bytes());
    cases.push((
        "alg none",
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&ehr.claims(&aud))
        ),
    ));
    cases.push((
        "HS256 with the public key set as the secret",
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &ehr.claims(&aud),
            &EncodingKey::from_secret(ehr.jwks_url.as_bytes()),
        )
        .unwrap(),
    ));
    for (defect, token) in &cases {
        let (status, answer) = cds.post(service, Some(token), &body).await;
        assert_eq!(status, 401, "{defect}: {answer}");
        assert_eq!(answer, serde_json::Value::Null, "{defect}: no detail");
    }
    let (status, _) = cds.post(service, None, &body).await;
    assert_eq!(status, 401, "no token");
    let (status, _) = cds
        .post("trd-patient-view/feedback", None, &json!({"feedback": []}))
        .await;
    assert_eq!(status, 401, "feedback needs the client's token too");
    std::fs::remove_dir_all(&dir).unwrap();
}
