//! A hand-made HTTP/1.1 server standing in for a FHIR server that misbehaves on demand.
//!
//! A real FHIR server will not answer 503, hang, cut a body short or send a `next` link to another
//! host when a test asks it to, so this one does: scripted rules (method, path, how many times, what
//! to do) are tried in order, and a request no rule claims is answered by a tiny in-memory FHIR
//! server (Patient read, searches by patient, Flag/CarePlan search by identifier, versioned PUT, and
//! one-entry transactions holding a conditional create) so that write-back can be checked for
//! duplicates. Every request is recorded with
//! the instant it arrived. Each answer closes its connection.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the stub received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query, as sent on the request line.
    pub target: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Seen {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or(&self.target)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter, decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        let (_, query) = self.target.split_once('?')?;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.into_owned())
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// For a transaction (`POST` to the base), the resource types its entries write.
    pub fn transaction_types(&self) -> Vec<String> {
        if self.method != "POST" || self.path() != "/fhir" {
            return Vec::new();
        }
        let Some(bundle) = self.json() else {
            return Vec::new();
        };
        bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["resource"]["resourceType"].as_str().map(str::to_owned))
            .collect()
    }

    /// Whether this request writes a `resource_type`: a PUT to `/fhir/{type}...` or a transaction
    /// with an entry of that type.
    pub fn writes(&self, resource_type: &str) -> bool {
        let put = self.method == "PUT"
            && self
                .path()
                .strip_prefix("/fhir/")
                .and_then(|rest| rest.split('/').next())
                == Some(resource_type);
        put || self.transaction_types().iter().any(|t| t == resource_type)
    }
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(status: u16, value: &Value) -> Answer {
        Answer {
            status,
            headers: vec![("Content-Type".into(), "application/fhir+json".into())],
            body: value.to_string().into_bytes(),
        }
    }

    pub fn text(status: u16, content_type: &str, body: &str) -> Answer {
        Answer {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.as_bytes().to_vec(),
        }
    }

    /// An OperationOutcome with one error issue.
    pub fn outcome(status: u16, code: &str, diagnostics: &str) -> Answer {
        Answer::json(status, &operation_outcome(code, diagnostics))
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }
}

pub fn operation_outcome(code: &str, diagnostics: &str) -> Value {
    json!({"resourceType": "OperationOutcome",
           "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}]})
}

/// A searchset Bundle of `resources`, with a `next` link when given.
pub fn searchset(resources: &[Value], origin_base: &str, next: Option<&str>) -> Value {
    let entry: Vec<Value> = resources
        .iter()
        .map(|r| {
            json!({
                "fullUrl": format!("{origin_base}/{}/{}", r["resourceType"].as_str().unwrap_or(""), r["id"].as_str().unwrap_or("")),
                "resource": r,
                "search": {"mode": "match"}
            })
        })
        .collect();
    let mut bundle = json!({"resourceType": "Bundle", "type": "searchset", "total": entry.len(), "entry": entry});
    if let Some(next) = next {
        bundle["link"] = json!([{"relation": "next", "url": next}]);
    }
    bundle
}

/// Builds an answer from the request and the stub's origin (`http://127.0.0.1:port`).
pub type Respond = Arc<dyn Fn(&Seen, &str) -> Answer + Send + Sync>;

#[derive(Clone)]
pub enum Action {
    Reply(Answer),
    Dynamic(Respond),
    /// Reads the request and never answers, holding the connection open.
    Hang,
    /// Sends the head of `answer` with its Content-Length, then only the first `sent` body bytes,
    /// then closes the connection.
    Truncate {
        answer: Answer,
        sent: usize,
    },
    /// Sends the head of `answer` and the first `sent` body bytes, then stalls with the
    /// connection open.
    Stall {
        answer: Answer,
        sent: usize,
    },
    /// The mini FHIR server carries the request out, then the answer is replaced by this status:
    /// a write that landed although its answer was lost.
    ApplyThenFail(u16),
    /// Puts this resource into the mini FHIR server, then carries the request out: another writer
    /// that got there first.
    InsertThenApply(Value),
    /// Answers `status` with no Content-Length and then `chunk` again and again, as fast as the
    /// client reads, until it goes away: a body without end.
    Endless {
        status: u16,
        chunk: Vec<u8>,
    },
    /// Sends the head of `answer`, then its body one byte every `every`.
    Trickle {
        answer: Answer,
        every: std::time::Duration,
    },
    /// Waits this long, then answers: a request that stays in flight for a while.
    Slow {
        answer: Answer,
        millis: u64,
    },
}

struct Rule {
    method: String,
    path: String,
    /// Only transactions with an entry of this resource type.
    transaction_of: Option<String>,
    remaining: Option<usize>,
    action: Action,
}

impl Rule {
    fn matches(&self, seen: &Seen) -> bool {
        let method = self.method == "*" || self.method.eq_ignore_ascii_case(&seen.method);
        let path = match self.path.strip_suffix('*') {
            Some(prefix) => seen.path().starts_with(prefix),
            None => seen.path() == self.path,
        };
        let transaction = self
            .transaction_of
            .as_deref()
            .is_none_or(|t| seen.transaction_types().iter().any(|s| s == t));
        method && path && transaction && self.remaining != Some(0)
    }
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    seen: Vec<Seen>,
    fhir: MiniFhir,
    /// Requests being answered now, and the most at any one time.
    in_flight: usize,
    max_in_flight: usize,
}

pub struct Stub {
    /// `http://127.0.0.1:port`
    pub origin: String,
    state: Arc<Mutex<State>>,
}

impl Stub {
    pub async fn start() -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("stub binds");
        let origin = format!("http://{}", listener.local_addr().expect("stub address"));
        let state = Arc::new(Mutex::new(State::default()));
        let accepting = state.clone();
        let base = format!("{origin}/fhir");
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(connection(stream, accepting.clone(), base.clone()));
            }
        });
        Stub { origin, state }
    }

    /// The FHIR base URL: origin + `/fhir`.
    pub fn base(&self) -> String {
        format!("{}/fhir", self.origin)
    }

    /// Serves the Patient and resources of a FHIR Bundle (JSON text).
    pub fn load_bundle(&self, json: &str) {
        let bundle: Value = serde_json::from_str(json).expect("fixture is JSON");
        let mut state = self.state.lock().unwrap();
        for entry in bundle["entry"].as_array().into_iter().flatten() {
            state.fhir.insert(entry["resource"].clone());
        }
    }

    /// Puts a resource into the mini FHIR server as it stands (with its id and meta).
    pub fn insert(&self, resource: Value) {
        self.state.lock().unwrap().fhir.insert(resource);
    }

    /// `action` for every request matching `method` (or `*`) and `path` (exact, or a prefix ending
    /// in `*`; without the query).
    pub fn on(&self, method: &str, path: &str, action: Action) {
        self.add(method, path, None, action);
    }

    /// `action` for the next `times` matching requests only.
    pub fn on_times(&self, method: &str, path: &str, times: usize, action: Action) {
        self.add(method, path, Some(times), action);
    }

    /// `action` for every transaction (`POST /fhir`) with an entry writing `resource_type`.
    pub fn on_transaction(&self, resource_type: &str, action: Action) {
        self.add_rule("POST", "/fhir", Some(resource_type), None, action);
    }

    /// `action` for the next `times` such transactions only.
    pub fn on_transaction_times(&self, resource_type: &str, times: usize, action: Action) {
        self.add_rule("POST", "/fhir", Some(resource_type), Some(times), action);
    }

    fn add(&self, method: &str, path: &str, remaining: Option<usize>, action: Action) {
        self.add_rule(method, path, None, remaining, action);
    }

    fn add_rule(
        &self,
        method: &str,
        path: &str,
        transaction_of: Option<&str>,
        remaining: Option<usize>,
        action: Action,
    ) {
        self.state.lock().unwrap().rules.push(Rule {
            method: method.into(),
            path: path.into(),
            transaction_of: transaction_of.map(str::to_owned),
            remaining,
            action,
        });
    }

    /// The most requests the stub was answering at one time.
    pub fn max_in_flight(&self) -> usize {
        self.state.lock().unwrap().max_in_flight
    }

    pub fn clear_rules(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Requests with this method and path (without the query).
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<Seen> {
        self.requests()
            .into_iter()
            .filter(|s| s.method == method && s.path() == path)
            .collect()
    }

    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests_to(method, path).len()
    }

    /// Requests that write a `resource_type` (see [`Seen::writes`]), in order.
    pub fn writes_of(&self, resource_type: &str) -> Vec<Seen> {
        self.requests()
            .into_iter()
            .filter(|s| s.writes(resource_type))
            .collect()
    }

    /// Resources of a type written (or inserted), in the mini FHIR server now.
    pub fn stored(&self, resource_type: &str) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .fhir
            .resources
            .values()
            .filter(|r| r["resourceType"] == resource_type)
            .cloned()
            .collect()
    }
}

async fn connection(mut stream: TcpStream, state: Arc<Mutex<State>>, base: String) {
    let Some(seen) = read_request(&mut stream).await else {
        return;
    };
    let origin = base.trim_end_matches("/fhir").to_owned();
    let _counted = InFlight::start(&state);
    let action = {
        let mut state = state.lock().unwrap();
        state.seen.push(seen.clone());
        let rule = state.rules.iter_mut().find(|r| r.matches(&seen));
        match rule {
            Some(rule) => {
                if let Some(n) = &mut rule.remaining {
                    *n -= 1;
                }
                Some(rule.action.clone())
            }
            None => None,
        }
    };
    let answer = match action {
        None => state.lock().unwrap().fhir.handle(&seen, &base),
        Some(Action::Reply(answer)) => answer,
        Some(Action::Dynamic(respond)) => respond(&seen, &origin),
        Some(Action::ApplyThenFail(status)) => {
            let _ = state.lock().unwrap().fhir.handle(&seen, &base);
            Answer::outcome(status, "exception", "the answer was lost")
        }
        Some(Action::InsertThenApply(resource)) => {
            let mut state = state.lock().unwrap();
            state.fhir.insert(resource);
            state.fhir.handle(&seen, &base)
        }
        Some(Action::Slow { answer, millis }) => {
            tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
            answer
        }
        Some(Action::Hang) => {
            hold(stream).await;
            return;
        }
        Some(Action::Truncate { answer, sent }) => {
            let _ = stream.write_all(&head(&answer)).await;
            let _ = stream.write_all(&answer.body[..sent]).await;
            let _ = stream.shutdown().await;
            return;
        }
        Some(Action::Endless { status, chunk }) => {
            let head = format!(
                "HTTP/1.1 {status} {}\r\nContent-Type: application/fhir+json\r\nConnection: close\r\n\r\n",
                reason(status)
            );
            if stream.write_all(head.as_bytes()).await.is_ok() {
                while stream.write_all(&chunk).await.is_ok() {}
            }
            return;
        }
        Some(Action::Trickle { answer, every }) => {
            let _ = stream.write_all(&head(&answer)).await;
            for byte in &answer.body {
                tokio::time::sleep(every).await;
                if stream.write_all(std::slice::from_ref(byte)).await.is_err() {
                    return;
                }
            }
            let _ = stream.shutdown().await;
            return;
        }
        Some(Action::Stall { answer, sent }) => {
            let _ = stream.write_all(&head(&answer)).await;
            let _ = stream.write_all(&answer.body[..sent]).await;
            let _ = stream.flush().await;
            hold(stream).await;
            return;
        }
    };
    let _ = stream.write_all(&head(&answer)).await;
    let _ = stream.write_all(&answer.body).await;
    let _ = stream.shutdown().await;
}

/// Counts a request in flight from when it was read until its connection is done with, however
/// that ends.
struct InFlight(Arc<Mutex<State>>);

impl InFlight {
    fn start(state: &Arc<Mutex<State>>) -> InFlight {
        let mut s = state.lock().unwrap();
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        InFlight(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut state) = self.0.lock() {
            state.in_flight -= 1;
        }
    }
}

/// Keeps a connection open, unanswered, until the peer closes it (or the test's runtime ends).
async fn hold(mut stream: TcpStream) {
    let mut sink = [0u8; 256];
    while let Ok(n) = stream.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
}

fn head(answer: &Answer) -> Vec<u8> {
    let mut text = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        reason(answer.status),
        answer.body.len()
    );
    for (name, value) in &answer.headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.into_bytes()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        412 => "Precondition Failed",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

async fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let at = Instant::now();
    let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buffer[end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Seen {
        method,
        target,
        headers,
        body,
        at,
    })
}

/// Just enough of a FHIR server: resources by `Type/id`, reads, searches by patient or by
/// identifier, PUT by id (honouring `If-Match`) or by identifier (conditional update), and transactions of one conditional create
/// (`POST Type` with `ifNoneExist`), carried out atomically (the stub's state is locked around each
/// request).
#[derive(Default)]
struct MiniFhir {
    resources: BTreeMap<String, Value>,
    next_id: u32,
}

impl MiniFhir {
    fn insert(&mut self, resource: Value) {
        let key = format!(
            "{}/{}",
            resource["resourceType"].as_str().unwrap_or(""),
            resource["id"].as_str().unwrap_or("")
        );
        self.resources.insert(key, resource);
    }

    fn handle(&mut self, seen: &Seen, base: &str) -> Answer {
        if seen.method == "POST" && seen.path() == "/fhir" {
            return self.transaction(seen, base);
        }
        let Some(rest) = seen.path().strip_prefix("/fhir/") else {
            return Answer::outcome(404, "not-found", "no such endpoint");
        };
        let parts: Vec<&str> = rest.split('/').collect();
        match (seen.method.as_str(), parts.as_slice()) {
            ("GET", [t, id]) => match self.resources.get(&format!("{t}/{id}")) {
                Some(r) => Answer::json(200, r),
                None => Answer::outcome(404, "not-found", &format!("{t}/{id} is not known")),
            },
            ("GET", [t]) => {
                let found = self.search(
                    t,
                    seen.query("patient").as_deref(),
                    seen.query("identifier").as_deref(),
                );
                Answer::json(200, &searchset(&found, base, None))
            }
            ("PUT", [t]) => {
                // A conditional update: creates when nothing matches.
                let found = self.search(t, None, seen.query("identifier").as_deref());
                let (status, id) = match found.as_slice() {
                    [] => {
                        self.next_id += 1;
                        (201, format!("{}-{}", t.to_ascii_lowercase(), self.next_id))
                    }
                    [one] => (200, one["id"].as_str().unwrap_or("").to_owned()),
                    _ => return Answer::outcome(412, "multiple-matches", "more than one match"),
                };
                let Some(body) = seen.json() else {
                    return Answer::outcome(400, "structure", "the body is not JSON");
                };
                let written = self.write(t, &id, body);
                Answer::json(status, &written)
                    .with_header("Location", &location(base, &written))
                    .with_header("ETag", &format!("W/\"{}\"", version(&written)))
            }
            ("PUT", [t, id]) => {
                let current = self
                    .resources
                    .get(&format!("{t}/{id}"))
                    .map(|r| version(r).to_owned());
                if let (Some(asked), Some(current)) = (seen.header("if-match"), &current)
                    && asked != format!("W/\"{current}\"")
                {
                    return Answer::outcome(412, "conflict", "the version has changed");
                }
                let Some(body) = seen.json() else {
                    return Answer::outcome(400, "structure", "the body is not JSON");
                };
                let status = if current.is_some() { 200 } else { 201 };
                let written = self.write(t, id, body);
                Answer::json(status, &written)
                    .with_header("Location", &location(base, &written))
                    .with_header("ETag", &format!("W/\"{}\"", version(&written)))
            }
            _ => Answer::outcome(404, "not-supported", "the stub does not do that"),
        }
    }

    /// A transaction Bundle of exactly one entry, `POST Type` with `ifNoneExist`: creates the
    /// resource unless one matches (`201`), else names the match (`200`); two matches fail the
    /// transaction with `412`.
    fn transaction(&mut self, seen: &Seen, base: &str) -> Answer {
        let Some(bundle) = seen.json() else {
            return Answer::outcome(400, "structure", "the body is not JSON");
        };
        let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
        let ([entry], "transaction") = (entries.as_slice(), bundle["type"].as_str().unwrap_or(""))
        else {
            return Answer::outcome(
                400,
                "not-supported",
                "the stub takes one-entry transactions",
            );
        };
        let (Some("POST"), Some(t), Some(criteria)) = (
            entry["request"]["method"].as_str(),
            entry["request"]["url"].as_str(),
            entry["request"]["ifNoneExist"].as_str(),
        ) else {
            return Answer::outcome(400, "not-supported", "the stub takes conditional creates");
        };
        let criteria: BTreeMap<String, String> = url::form_urlencoded::parse(criteria.as_bytes())
            .into_owned()
            .collect();
        let found = self.search(
            t,
            criteria.get("patient").map(String::as_str),
            criteria.get("identifier").map(String::as_str),
        );
        let (status, resource) = match found.as_slice() {
            [] => {
                self.next_id += 1;
                let id = format!("{}-{}", t.to_ascii_lowercase(), self.next_id);
                ("201 Created", self.write(t, &id, entry["resource"].clone()))
            }
            [one] => ("200 OK", one.clone()),
            _ => return Answer::outcome(412, "multiple-matches", "more than one match"),
        };
        Answer::json(
            200,
            &json!({
                "resourceType": "Bundle", "type": "transaction-response",
                "entry": [{
                    "response": {
                        "status": status,
                        "location": location(base, &resource),
                        "etag": format!("W/\"{}\"", version(&resource))
                    },
                    "resource": resource
                }]
            }),
        )
    }

    /// Resources of a type matching a `patient` and an `identifier` (`system|value`) criterion.
    fn search(
        &self,
        resource_type: &str,
        patient: Option<&str>,
        identifier: Option<&str>,
    ) -> Vec<Value> {
        self.resources
            .values()
            .filter(|r| r["resourceType"] == resource_type)
            .filter(|r| {
                patient.is_none_or(|p| {
                    r["subject"]["reference"] == p || r["patient"]["reference"] == p
                })
            })
            .filter(|r| {
                identifier.is_none_or(|wanted| {
                    let (system, value) = wanted.split_once('|').unwrap_or(("", wanted));
                    r["identifier"].as_array().into_iter().flatten().any(|i| {
                        i["value"] == value && (system.is_empty() || i["system"] == system)
                    })
                })
            })
            .cloned()
            .collect()
    }

    /// Stores `resource` as `t/id` with the next version, and returns it as stored.
    fn write(&mut self, t: &str, id: &str, mut resource: Value) -> Value {
        let key = format!("{t}/{id}");
        let next_version = self
            .resources
            .get(&key)
            .map_or(1, |r| version(r).parse::<u32>().unwrap_or(0) + 1);
        resource["id"] = json!(id);
        resource["meta"] = json!({"versionId": next_version.to_string()});
        self.resources.insert(key, resource.clone());
        resource
    }
}

fn version(resource: &Value) -> &str {
    resource["meta"]["versionId"].as_str().unwrap_or("0")
}

fn location(base: &str, resource: &Value) -> String {
    format!(
        "{base}/{}/{}/_history/{}",
        resource["resourceType"].as_str().unwrap_or(""),
        resource["id"].as_str().unwrap_or(""),
        version(resource)
    )
}
