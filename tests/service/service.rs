//! The service in-process and the real FHIR servers scripts/test starts (sekmet-fhir): a gRPC service
//! on 127.0.0.1:0 with a connected client, fixtures loaded into the FHIR server under per-test ids,
//! and searches of what the service wrote, made with plain HTTP (not with the code under test).
#![allow(dead_code)]

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use trdscreen::proto::trd_screening_client::TrdScreeningClient;
use trdscreen::service::Screener;
use trdscreen::settings::{Secrets, Settings};

/// The business identifier system the service writes its Flag and CarePlan under (its default).
pub const IDENTIFIER_SYSTEM: &str = "urn:trdscreen:screening";

fn from_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!("{name} is not set: run scripts/test, which starts the FHIR server"),
    }
}

/// Whether the real FHIR servers scripts/test starts are there (`TRDSCREEN_TEST_FHIR_URL`). A test
/// that needs them starts with `if !crate::service::fhir_servers() { return; }`: under a plain
/// `cargo test` without them it prints a line and passes as skipped; with
/// `TRDSCREEN_REQUIRE_FHIR=1` (scripts/test sets it) their absence fails the test instead, so the
/// CI run never skips one.
pub fn fhir_servers() -> bool {
    fhir_env("TRDSCREEN_TEST_FHIR_URL").is_some()
}

/// The variable's value; when it is not set, `None` after a line saying the test is skipped, or a
/// failure under `TRDSCREEN_REQUIRE_FHIR=1`.
pub fn fhir_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("TRDSCREEN_REQUIRE_FHIR").is_ok_and(|v| v == "1") => {
            panic!(
                "{name} is not set, and TRDSCREEN_REQUIRE_FHIR=1 says the FHIR servers must be there"
            )
        }
        _ => {
            eprintln!("skipped: {name} is not set (scripts/test starts the FHIR servers)");
            None
        }
    }
}

/// The base URL of the plain (no authentication) FHIR server.
pub fn fhir_url() -> String {
    from_env("TRDSCREEN_TEST_FHIR_URL")
}

/// The base URL of the SMART Backend Services FHIR server (clients `trdscreen`, `trdscreen-ro`).
pub fn smart_url() -> String {
    from_env("TRDSCREEN_TEST_SMART_URL")
}

/// The private PEM key both SMART clients are registered with.
pub fn smart_key_file() -> PathBuf {
    PathBuf::from(from_env("TRDSCREEN_TEST_SMART_KEY"))
}

/// Settings for a service listening on 127.0.0.1:0 that reads `base_url` without authentication.
pub fn settings(base_url: &str) -> Settings {
    let mut s = Settings::default();
    s.grpc.listen = "127.0.0.1:0".parse().unwrap();
    s.fhir.base_url = (!base_url.is_empty()).then(|| base_url.parse().expect("an http(s) URL"));
    s
}

/// A running in-process service.
pub struct Service {
    pub client: TrdScreeningClient<Channel>,
    pub channel: Channel,
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), String>>>,
}

/// Starts the service with secrets read as the binary reads them (`Settings::secrets` over the
/// process environment).
pub async fn start(settings: Settings) -> Service {
    start_with_env(settings, &|name| std::env::var(name).ok()).await
}

/// Starts the service with secrets read by `Settings::secrets` from the given environment.
pub async fn start_with_env(settings: Settings, env: &dyn Fn(&str) -> Option<String>) -> Service {
    let secrets = settings
        .secrets(env)
        .expect("the settings' secrets are readable");
    start_with_secrets(settings, &secrets).await
}

pub async fn start_with_secrets(settings: Settings, secrets: &Secrets) -> Service {
    let screener = Arc::new(Screener::new(&settings, secrets).expect("the screener starts"));
    let bound = trdscreen::grpc::server::bind(&settings, screener)
        .await
        .expect("the service binds 127.0.0.1:0");
    let address = bound.address;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        bound
            .serve(async {
                let _ = stopped.await;
            })
            .await
            .map_err(|e| e.to_string())
    });
    let channel = connect(address)
        .await
        .expect("a client connects to the service");
    Service {
        client: TrdScreeningClient::new(channel.clone()),
        channel,
        address,
        stop: Some(stop),
        task: Some(task),
    }
}

/// A new HTTP/2 connection to the service.
pub async fn connect(address: SocketAddr) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("http://{address}"))
        .expect("a valid endpoint")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

impl Service {
    /// Triggers the graceful shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Triggers the shutdown and waits (at most 30 s) until the server has stopped.
    pub async fn shutdown(mut self) -> Result<(), String> {
        self.begin_shutdown();
        let task = self.task.take().expect("the server task");
        match tokio::time::timeout(Duration::from_secs(30), task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(format!("the server task failed: {join}")),
            Err(_) => Err("the server did not stop within 30 s".into()),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}

/// A prefix no other test (and no earlier run against the same server) uses: `{name}-{suffix}`.
pub fn unique_prefix(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut n = nanos
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(u64::from(std::process::id()) << 20)
        .wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed));
    let mut suffix = String::new();
    for _ in 0..7 {
        suffix.push(char::from(
            b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize],
        ));
        n /= 36;
    }
    format!("{name}-{suffix}")
}

/// The resources of a Bundle fixture file (relative to tests/fixtures), in order.
pub fn fixture_resources(relative: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let bundle: Value = serde_json::from_str(&text).expect("the fixture is JSON");
    bundle["entry"]
        .as_array()
        .expect("the fixture is a Bundle with entries")
        .iter()
        .map(|e| e["resource"].clone())
        .collect()
}

/// `{prefix}-{id}` for every resource id, and `Type/{prefix}-{id}` for every relative reference
/// `Type/id` (or `Type/id/_history/n`); contained (`#x`) and absolute references are kept.
pub fn with_prefix(resources: &[Value], prefix: &str) -> Vec<Value> {
    resources
        .iter()
        .map(|r| {
            let mut r = r.clone();
            let id = r["id"].as_str().expect("every fixture resource has an id");
            r["id"] = json!(format!("{prefix}-{id}"));
            rewrite_references(&mut r, prefix);
            r
        })
        .collect()
}

fn rewrite_references(value: &mut Value, prefix: &str) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "reference"
                    && let Some(text) = v.as_str()
                    && let Some(rewritten) = prefixed_reference(text, prefix)
                {
                    *v = json!(rewritten);
                } else {
                    rewrite_references(v, prefix);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_references(v, prefix)),
        _ => {}
    }
}

fn prefixed_reference(reference: &str, prefix: &str) -> Option<String> {
    let mut parts = reference.split('/');
    let (Some(kind), Some(id)) = (parts.next(), parts.next()) else {
        return None;
    };
    let rest: Vec<&str> = parts.collect();
    let relative = kind.starts_with(|c: char| c.is_ascii_uppercase())
        && kind.chars().all(|c| c.is_ascii_alphabetic())
        && !id.is_empty()
        && (rest.is_empty() || (rest.len() == 2 && rest[0] == "_history"));
    relative.then(|| format!("{kind}/{prefix}-{id}"))
}

/// A Bundle (collection) of `resources` as the FHIR server at `base` would name them.
pub fn bundle_json(base: &str, resources: &[Value]) -> String {
    let entries: Vec<Value> = resources
        .iter()
        .map(|r| {
            json!({
                "fullUrl": format!("{base}/{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap()),
                "resource": r
            })
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "collection", "entry": entries}).to_string()
}

/// A fixture as loaded into the FHIR server.
pub struct Loaded {
    pub prefix: String,
    /// The Patient's id on the server.
    pub patient_id: String,
    /// The resources as they were PUT.
    pub resources: Vec<Value>,
}

impl Loaded {
    /// The server id of a fixture id.
    pub fn id(&self, fixture_id: &str) -> String {
        format!("{}-{fixture_id}", self.prefix)
    }

    /// A loaded resource by its fixture id.
    pub fn resource(&self, fixture_id: &str) -> Value {
        let id = self.id(fixture_id);
        self.resources
            .iter()
            .find(|r| r["id"] == id.as_str())
            .unwrap_or_else(|| panic!("the fixture has no resource {fixture_id}"))
            .clone()
    }
}

/// Plain HTTP access to a FHIR server, with a bearer token when it needs one.
#[derive(Clone)]
pub struct Fhir {
    pub base: String,
    pub http: reqwest::Client,
    pub token: Option<String>,
}

impl Fhir {
    pub fn plain() -> Fhir {
        Fhir::new(&fhir_url(), None)
    }

    pub fn new(base: &str, token: Option<String>) -> Fhir {
        Fhir {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
            token,
        }
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let r = self
            .http
            .request(method, url)
            .header("Accept", "application/fhir+json");
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// PUT `Type/id`; panics with the server's answer unless it is 200 or 201.
    pub async fn put(&self, resource: &Value) -> Value {
        let url = format!(
            "{}/{}/{}",
            self.base,
            resource["resourceType"].as_str().expect("a resourceType"),
            resource["id"].as_str().expect("an id")
        );
        let response = self
            .request(reqwest::Method::PUT, &url)
            .header("Content-Type", "application/fhir+json")
            .body(resource.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "PUT {url} answered {status}: {body}");
        serde_json::from_str(&body).expect("the PUT answer is JSON")
    }

    /// Loads a Bundle fixture (path relative to tests/fixtures) with every id prefixed by
    /// `unique_prefix(name)`.
    pub async fn load(&self, fixture: &str, name: &str) -> Loaded {
        let prefix = unique_prefix(name);
        let resources = with_prefix(&fixture_resources(fixture), &prefix);
        for r in &resources {
            self.put(r).await;
        }
        let patient_id = resources
            .iter()
            .find(|r| r["resourceType"] == "Patient")
            .and_then(|r| r["id"].as_str())
            .expect("the fixture has a Patient")
            .to_owned();
        Loaded {
            prefix,
            patient_id,
            resources,
        }
    }

    /// GET `Type/id`.
    pub async fn read(&self, resource_type: &str, id: &str) -> Value {
        let url = format!("{}/{resource_type}/{id}", self.base);
        let response = self
            .request(reqwest::Method::GET, &url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "GET {url} answered {status}: {body}");
        serde_json::from_str(&body).expect("the read answer is JSON")
    }

    /// The resources of `resource_type` carrying `identifier` `{IDENTIFIER_SYSTEM}|{value}`.
    pub async fn search_by_identifier(&self, resource_type: &str, value: &str) -> Vec<Value> {
        let mut url = url::Url::parse(&format!("{}/{resource_type}", self.base)).expect("a URL");
        url.query_pairs_mut()
            .append_pair("identifier", &format!("{IDENTIFIER_SYSTEM}|{value}"))
            .append_pair("_count", "100");
        let response = self
            .request(reqwest::Method::GET, url.as_str())
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}?identifier=...: {e}"));
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "searching {resource_type} answered {status}: {body}"
        );
        let bundle: Value = serde_json::from_str(&body).expect("the search answer is JSON");
        bundle["entry"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["search"]["mode"] != "outcome")
                    .map(|e| e["resource"].clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The patient's screening Flags (identifier `flag-{patient}`).
    pub async fn flags(&self, patient_id: &str) -> Vec<Value> {
        self.search_by_identifier("Flag", &format!("flag-{patient_id}"))
            .await
    }

    /// The patient's screening CarePlans (identifier `careplan-{patient}`).
    pub async fn care_plans(&self, patient_id: &str) -> Vec<Value> {
        self.search_by_identifier("CarePlan", &format!("careplan-{patient_id}"))
            .await
    }
}

/// A Timestamp at 00:00 UTC of `day` (`YYYY-MM-DD`).
pub fn timestamp(day: &str) -> prost_types::Timestamp {
    let date = trdscreen::date::Date::parse(day).expect("a day");
    prost_types::Timestamp {
        seconds: i64::from(date.days_since_epoch()) * 86_400,
        nanos: 0,
    }
}
