//! CDS Hooks (issue 13) through `trdscreen serve` with a real HTTP client: the test plays the EHR
//! (it signs its JWTs with its own key and publishes the key set), and the FHIR server is the real
//! one of scripts/fhir-peer where a story needs one.
//!
//! The hooks screen as of today, so each clinical story is a scenario fixture (written as of
//! 2025-06-01) with every date moved forward to fall where the story needs it.

mod jwt;
mod orders;
mod patient_view;

use crate::child;
use crate::service::{self, free_port, unique_prefix};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use trdscreen::date::Date;

/// The day the scenario fixtures are written as of.
pub const SCENARIO_AS_OF: &str = "2025-06-01";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn today() -> Date {
    trdscreen::service::today()
}

/// A scenario's resources with every date moved by `days`.
pub fn scenario(name: &str, days: i32) -> Vec<Value> {
    let mut resources = service::fixture_resources(&format!("scenarios/{name}.json"));
    for r in &mut resources {
        shift(r, days);
    }
    resources
}

/// Days from the scenarios' as-of day to today: the scenario as it would be today.
pub fn to_today() -> i32 {
    Date::parse(SCENARIO_AS_OF).unwrap().days_until(today())
}

fn shift(value: &mut Value, days: i32) {
    match value {
        Value::String(s) => {
            if s.len() >= 10
                && let Ok(day) = Date::parse(&s[..10])
            {
                *s = format!("{}{}", day.plus_days(days), &s[10..]);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| shift(v, days)),
        Value::Object(map) => map.values_mut().for_each(|v| shift(v, days)),
        _ => {}
    }
}

/// The id of the Patient among `resources`.
pub fn patient_id(resources: &[Value]) -> String {
    resources
        .iter()
        .find(|r| r["resourceType"] == "Patient")
        .and_then(|r| r["id"].as_str())
        .expect("a Patient with an id")
        .to_owned()
}

/// A search Bundle of `resources`, as an EHR prefetches one.
pub fn searchset(resources: &[&Value]) -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": resources.iter().map(|r| json!({
            "fullUrl": format!("https://ehr.example.org/fhir/{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap()),
            "resource": r,
            "search": {"mode": "match"},
        })).collect::<Vec<_>>(),
    })
}

/// The whole prefetch of a record, keyed as discovery names the templates; the screening Flag and
/// CarePlan as found (none).
pub fn prefetch(resources: &[Value]) -> Value {
    let of = |types: &[&str]| {
        searchset(
            &resources
                .iter()
                .filter(|r| types.contains(&r["resourceType"].as_str().unwrap()))
                .collect::<Vec<_>>(),
        )
    };
    json!({
        "patient": resources.iter().find(|r| r["resourceType"] == "Patient").unwrap(),
        "medicationRequests": of(&["MedicationRequest", "Medication"]),
        "medicationStatements": of(&["MedicationStatement"]),
        "observations": of(&["Observation"]),
        "conditions": of(&["Condition"]),
        "procedures": of(&["Procedure"]),
        "screeningFlag": searchset(&[]),
        "screeningCarePlan": searchset(&[]),
    })
}

/// The EHR: its signing key (ES384) and its key set served over HTTP.
pub struct Ehr {
    pub issuer: String,
    pub jwks_url: String,
    key: Vec<u8>,
    _keys: tokio::task::JoinHandle<()>,
}

pub fn ec_key(dir: &std::path::Path, name: &str) -> Vec<u8> {
    let path = dir.join(name);
    let status = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
        ])
        .arg(&path)
        .status()
        .expect("openssl runs");
    assert!(status.success());
    std::fs::read(path).unwrap()
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_prefix(&format!("trdscreen-cds-{name}")));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Ehr {
    pub async fn start(dir: &std::path::Path) -> Ehr {
        let key = ec_key(dir, "ehr.pem");
        let jwks = trdscreen::auth::public_jwks(&[trdscreen::auth::PublishedKey {
            pem: &key,
            algorithm: Algorithm::ES384,
            kid: Some("ehr-1"),
        }])
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let keys = tokio::spawn(async move {
            let _ = axum::serve(listener, trdscreen::auth::jwks_router(jwks)).await;
        });
        Ehr {
            issuer: format!("http://127.0.0.1:{port}/ehr"),
            jwks_url: format!("http://127.0.0.1:{port}{}", trdscreen::auth::JWKS_PATH),
            key,
            _keys: keys,
        }
    }

    /// The claims of a good token for `aud`.
    pub fn claims(&self, aud: &str) -> Value {
        json!({
            "iss": self.issuer,
            "sub": "ehr-client",
            "aud": aud,
            "iat": now(),
            "exp": now() + 240,
            "jti": unique_prefix("jti"),
        })
    }

    pub fn header(&self) -> Header {
        let mut h = Header::new(Algorithm::ES384);
        h.kid = Some("ehr-1".into());
        h.typ = Some("JWT".into());
        h.jku = Some(self.jwks_url.clone());
        h
    }

    pub fn sign(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(
            header,
            claims,
            &EncodingKey::from_ec_pem(&self.key).unwrap(),
        )
        .unwrap()
    }

    /// A good token for a call of `service` of `cds`.
    pub fn token(&self, cds: &Cds, service: &str) -> String {
        self.sign(
            &self.header(),
            &self.claims(&format!("{}/{service}", cds.base)),
        )
    }
}

/// `trdscreen serve` with its CDS Hooks port on.
pub struct Cds {
    /// `http://127.0.0.1:{port}/cds-services`
    pub base: String,
    /// `http://127.0.0.1:{port}/metrics`
    pub metrics: String,
    pub http: reqwest::Client,
    _serve: child::Running,
}

impl Cds {
    /// Starts the service trusting `ehr`, with fallback reads allowed from `fhir_servers`.
    pub async fn start(ehr: &Ehr, fhir_servers: &[&str], dir: &std::path::Path) -> Cds {
        Cds::start_with(ehr, fhir_servers, dir, "", None).await
    }

    /// [`Cds::start`] with more `[cds]` settings (TOML lines).
    pub async fn start_with(
        ehr: &Ehr,
        fhir_servers: &[&str],
        dir: &std::path::Path,
        cds_settings: &str,
        fhir_base: Option<&str>,
    ) -> Cds {
        let fhir_base = fhir_base.map_or(String::new(), |b| format!("base_url = \"{b}\"\n"));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        // A port free a moment ago may be taken by another test's server before ours binds it:
        // then ours exits, and is started again on other ports.
        for _attempt in 0..3 {
            let port = free_port();
            let base = format!("http://127.0.0.1:{port}/cds-services");
            let metrics_port = free_port();
            let settings = dir.join("settings.toml");
            std::fs::File::create(&settings)
                .unwrap()
                .write_all(
                    format!(
                        "[grpc]\nlisten = \"127.0.0.1:{}\"\n[telemetry]\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n[fhir]\n{fhir_base}max_retries = 0\n[cds]\nlisten = \"127.0.0.1:{port}\"\nservice_url = \"{base}\"\nfhir_servers = \"{}\"\n{cds_settings}\n[cds.clients.\"{}\"]\njwks_url = \"{}\"\n",
                        free_port(),
                        fhir_servers.join(","),
                        ehr.issuer,
                        ehr.jwks_url
                    )
                    .as_bytes(),
                )
                .unwrap();
            let mut serve = child::spawn(
                Command::new(env!("CARGO_BIN_EXE_trdscreen"))
                    .args(["serve", "--config"])
                    .arg(&settings)
                    .env_remove("TRDSCREEN_FHIR_BASE_URL")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
                "trdscreen serve with CDS Hooks",
            );
            for _ in 0..200 {
                if serve.try_wait().unwrap().is_some() {
                    break;
                }
                if http.get(&base).send().await.is_ok() && serve.try_wait().unwrap().is_none() {
                    return Cds {
                        base,
                        metrics: format!("http://127.0.0.1:{metrics_port}/metrics"),
                        http,
                        _serve: serve,
                    };
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        panic!("the CDS Hooks port did not come up");
    }

    /// POSTs `body` to `{base}/{path}` with `token`; the status and the JSON answer (or Null).
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request = self.http.post(format!("{}/{path}", self.base)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The value of one series of `/metrics` (0 when it is not there).
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self
            .http
            .get(&self.metrics)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// A hook call of `service` with a fresh good token.
    pub async fn hook(&self, ehr: &Ehr, service: &str, body: &Value) -> (u16, Value) {
        self.post(service, Some(&ehr.token(self, service)), body)
            .await
    }
}

/// A hook request body.
pub fn request(hook: &str, patient: &str, context: Value, prefetch: Option<Value>) -> Value {
    let mut context = context;
    context["patientId"] = json!(patient);
    context["userId"] = json!("Practitioner/clinician-1");
    let mut body = json!({
        "hook": hook,
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": context,
    });
    if let Some(p) = prefetch {
        body["prefetch"] = p;
    }
    body
}

pub fn topics(answer: &Value) -> Vec<String> {
    answer["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["source"]["topic"]["code"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn discovery_lists_the_three_hooks_with_the_prefetch_of_what_screening_reads() {
    let dir = scratch("discovery");
    let ehr = Ehr::start(&dir).await;
    let cds = Cds::start(&ehr, &[], &dir).await;
    let found: Value = cds
        .http
        .get(&cds.base)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let services = found["services"].as_array().unwrap();
    let hooks: Vec<&str> = services
        .iter()
        .map(|s| s["hook"].as_str().unwrap())
        .collect();
    assert_eq!(hooks, ["patient-view", "order-select", "order-sign"]);
    for s in services {
        let prefetch = s["prefetch"].as_object().unwrap();
        assert_eq!(prefetch["patient"], "Patient/{{context.patientId}}");
        for key in [
            "medicationRequests",
            "medicationStatements",
            "observations",
            "conditions",
            "procedures",
            "screeningFlag",
            "screeningCarePlan",
        ] {
            assert!(
                prefetch[key]
                    .as_str()
                    .unwrap()
                    .contains("{{context.patientId}}"),
                "{key}"
            );
        }
        assert!(s["id"].as_str().unwrap().starts_with("trd-"));
        assert!(!s["title"].as_str().unwrap().is_empty());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_request_whose_body_never_finishes_is_answered_408_not_held_open() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = scratch("trickle");
    let ehr = Ehr::start(&dir).await;
    let cds = Cds::start_with(&ehr, &[], &dir, "call_timeout_secs = 1", None).await;
    let url = url::Url::parse(&cds.base).unwrap();
    let mut stream = tokio::net::TcpStream::connect((url.host_str().unwrap(), url.port().unwrap()))
        .await
        .unwrap();
    let token = ehr.token(&cds, "trd-patient-view");
    stream
        .write_all(
            format!(
                "POST /cds-services/trd-patient-view HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"hook\":"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // Nothing more is sent; the service answers on its own.
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut answer))
        .await
        .expect("the service answers a stalled request")
        .unwrap();
    let head = String::from_utf8_lossy(&answer[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    std::fs::remove_dir_all(&dir).unwrap();
}
