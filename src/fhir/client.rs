//! The HTTP side of FHIR: every request to the FHIR server goes through [`FhirClient::send`], which
//! adds authentication, applies the timeout, retries what is safe to retry, reads the answer within
//! `fhir.max_response_bytes`, and turns a non-2xx answer into an [`Error`] in our own words.
//!
//! A server's error body is never copied into an error: its text (an OperationOutcome's
//! diagnostics, an HTML page) may name a patient, and errors reach callers, logs and terminals.
//! What the caller gets is the status and the OperationOutcome's issue codes, each checked against
//! FHIR's closed IssueType value set; the issue severities and codes also go to a debug log line.
//!
//! Logs name the resource type, the method and the status, never a URL (URLs carry patient ids).

use super::auth::Auth;
use super::body::{self, BodyError};
use crate::error::{Error, Ours, Result};
use crate::settings::{FhirSettings, Secrets};
use crate::summary;
use crate::telemetry::{self, RetryReason};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::time::Duration;
use tracing::Instrument;

const FHIR_JSON: &str = "application/fhir+json";
/// What is read of an error answer: enough for an OperationOutcome's issue codes.
const ERROR_BODY_HEAD: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base: Duration,
    pub retry_after_cap: Duration,
}

pub struct FhirClient {
    http: reqwest::Client,
    /// The base URL without a trailing slash.
    base: String,
    origin: url::Origin,
    auth: Auth,
    retry: RetryPolicy,
    page_size: u32,
    page_cap: u32,
    /// Largest answer read into memory (`fhir.max_response_bytes`).
    max_response_bytes: usize,
}

/// A 2xx answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub etag: Option<String>,
    pub location: Option<String>,
    pub body: bytes::Bytes,
}

/// One entry of a search result, with the resource left as JSON text.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchEntry {
    pub full_url: Option<String>,
    pub resource: Option<Box<RawValue>>,
    pub search: Option<SearchInfo>,
}

#[derive(Debug, Deserialize)]
pub struct SearchInfo {
    pub mode: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchPage {
    resource_type: Option<String>,
    #[serde(default)]
    entry: Vec<SearchEntry>,
    #[serde(default)]
    link: Vec<PageLink>,
}

#[derive(Deserialize)]
struct PageLink {
    relation: Option<String>,
    url: Option<String>,
}

/// What an idempotent request may be retried on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Idempotent {
    Yes,
    No,
}

impl FhirClient {
    pub fn new(settings: &FhirSettings, secrets: &Secrets) -> Result<FhirClient> {
        if settings.base_url.is_empty() {
            return Err(Error::NotConfigured("fhir.base_url is not set".into()));
        }
        let base = settings.base_url.trim_end_matches('/').to_owned();
        let origin = url::Url::parse(&base)
            .map_err(|_| Error::NotConfigured("fhir.base_url is not a URL".into()))?
            .origin();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.timeout_secs))
            .connect_timeout(Duration::from_secs(settings.connect_timeout_secs))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("trdscreen/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| Error::NotConfigured("cannot build the HTTP client".into()))?;
        Ok(FhirClient {
            auth: Auth::from_settings(&settings.auth, secrets, &base)?,
            http,
            base,
            origin,
            retry: RetryPolicy {
                max_retries: settings.max_retries,
                base: Duration::from_millis(settings.retry_base_ms),
                retry_after_cap: Duration::from_secs(settings.retry_after_cap_secs),
            },
            page_size: settings.page_size,
            page_cap: settings.page_cap,
            max_response_bytes: usize::try_from(settings.max_response_bytes).unwrap_or(usize::MAX),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub(crate) fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The largest answer read into memory (`fhir.max_response_bytes`): for the Bulk Data status
    /// and manifest, read outside [`send`](Self::send).
    pub(crate) fn max_response_bytes(&self) -> usize {
        self.max_response_bytes
    }

    /// `{base}/{path}`; `path` is built by this crate from validated ids and fixed parameter names.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path)
    }

    /// Reads `Type/id`; `None` when the server says it does not exist (404 or 410).
    pub async fn read(&self, resource_type: &'static str, id: &str) -> Result<Option<Reply>> {
        let url = self.url(&format!("{resource_type}/{id}"));
        match self
            .send(Method::GET, &url, None, &[], Idempotent::Yes, resource_type)
            .await
        {
            Ok(reply) => Ok(Some(reply)),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every entry of a search, following `next` links as opaque URLs up to the page cap.
    pub async fn search(
        &self,
        resource_type: &'static str,
        params: &[(&str, &str)],
    ) -> Result<Vec<SearchEntry>> {
        self.search_pages(resource_type, params, (self.page_cap, "fhir.page_cap"))
            .await
    }

    /// [`search`](Self::search) with its own page cap (a population search has many more pages
    /// than one patient's).
    pub async fn search_pages(
        &self,
        resource_type: &'static str,
        params: &[(&str, &str)],
        (page_cap, cap_name): (u32, &'static str),
    ) -> Result<Vec<SearchEntry>> {
        let mut url = url::Url::parse(&self.url(resource_type))
            .map_err(|_| Error::NotConfigured("fhir.base_url is not a URL".into()))?;
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in params {
                query.append_pair(name, value);
            }
            query.append_pair("_count", &self.page_size.to_string());
        }
        let mut next = Some(url.to_string());
        let mut seen = std::collections::HashSet::new();
        let mut entries = Vec::new();
        let mut pages = 0;
        while let Some(page_url) = next.take() {
            if !seen.insert(page_url.clone()) {
                return Err(Error::BadGateway(summary!(
                    "the {} search's next link points back to a page already read",
                    resource_type
                )));
            }
            pages += 1;
            if pages > page_cap {
                return Err(Error::BadGateway(summary!(
                    "the {} search has more than {} pages ({})",
                    resource_type,
                    page_cap,
                    cap_name
                )));
            }
            // NOT_FOUND means an unknown patient to callers; a search answering 404 means the
            // server does not offer this search: the server's problem, not the patient's.
            let reply = self
                .send(
                    Method::GET,
                    &page_url,
                    None,
                    &[],
                    Idempotent::Yes,
                    resource_type,
                )
                .await
                .map_err(|e| match e {
                    Error::NotFound(m) => {
                        Error::BadGateway(summary!("the {} search failed: {}", resource_type, m))
                    }
                    other => other,
                })?;
            let page: SearchPage = serde_json::from_slice(&reply.body).map_err(|_| {
                Error::BadGateway(summary!("the {} search did not return JSON", resource_type))
            })?;
            if page.resource_type.as_deref() != Some("Bundle") {
                return Err(Error::BadGateway(summary!(
                    "the {} search did not return a Bundle",
                    resource_type
                )));
            }
            entries.extend(page.entry);
            next = page
                .link
                .into_iter()
                .find(|l| l.relation.as_deref() == Some("next"))
                .and_then(|l| l.url);
            if let Some(n) = &next {
                self.check_same_origin(n, resource_type)?;
            }
        }
        Ok(entries)
    }

    /// Credentials go only to the configured server: a `next` link elsewhere is refused.
    fn check_same_origin(&self, link: &str, resource_type: &'static str) -> Result<()> {
        if self.same_origin(link) {
            Ok(())
        } else {
            Err(Error::BadGateway(summary!(
                "the {} search's next link leaves the FHIR server",
                resource_type
            )))
        }
    }

    /// Whether `url` is on the configured server's origin (scheme, host and port).
    pub(crate) fn same_origin(&self, url: &str) -> bool {
        url::Url::parse(url).is_ok_and(|u| u.origin() == self.origin)
    }

    /// One request and its answer as it came (status, headers, body unread), with no retries: for
    /// Bulk Data, which reads status headers and streams files. With `authorised`, credentials as in
    /// [`FhirClient::send`] (a 401 renews a SMART token once), and only to the configured origin.
    /// `timeout` replaces the whole-request timeout (a large file takes longer than a page). Read
    /// the body with [`body::read_bounded`] or a [`body::ByteBudget`].
    pub(crate) async fn send_raw(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        authorised: bool,
        timeout: Option<Duration>,
        label: &'static str,
    ) -> Result<reqwest::Response> {
        self.send_raw_request(method, url, headers, None, authorised, timeout, label)
            .await
    }

    /// [`send_raw`](Self::send_raw) with credentials and a body (a Bulk kick-off's `Parameters`).
    pub(crate) async fn send_raw_with_body(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        label: &'static str,
    ) -> Result<reqwest::Response> {
        self.send_raw_request(method, url, headers, body, true, None, label)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_raw_request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        authorised: bool,
        timeout: Option<Duration>,
        label: &'static str,
    ) -> Result<reqwest::Response> {
        if authorised && !self.same_origin(url) {
            return Err(Error::BadGateway(summary!(
                "the {} URL leaves the FHIR server: credentials are not sent there",
                label
            )));
        }
        let mut renewed_token = false;
        loop {
            let token = if authorised {
                self.auth.token(self).await?
            } else {
                None
            };
            let mut request = self.http.request(method.clone(), url);
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            if let Some(timeout) = timeout {
                request = request.timeout(timeout);
            }
            if let Some(body) = body {
                request = request.body(body.to_vec());
            }
            let response = request
                .send()
                .await
                .map_err(|e| transport_error(&e, label))?;
            let status = response.status();
            tracing::debug!(resource_type = label, method = %method, status = status.as_u16(), "FHIR request");
            if status == StatusCode::UNAUTHORIZED
                && token.is_some()
                && self.auth.renewable()
                && !renewed_token
            {
                renewed_token = true;
                self.auth.forget(token.as_deref()).await;
                continue;
            }
            return Ok(response);
        }
    }

    /// One request with authentication, timeout and (when idempotent) retries with jittered
    /// exponential backoff on connection errors, timeouts, 429 and 5xx, honouring `Retry-After` up
    /// to a cap. A 401 renews a SMART token once.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
        idempotent: Idempotent,
        resource_type: &'static str,
    ) -> Result<Reply> {
        let mut attempt = 0;
        let mut renewed_token = false;
        loop {
            let token = self.auth.token(self).await?;
            let mut request = self
                .http
                .request(method.clone(), url)
                .header(reqwest::header::ACCEPT, FHIR_JSON);
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            if let Some(body) = body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, FHIR_JSON)
                    .body(body.to_vec());
            }
            let span = request_span(&method, resource_type);
            let outcome = exchange(
                traced(request, &span),
                &method,
                resource_type,
                self.max_response_bytes,
            )
            .instrument(span)
            .await;
            let retries_left = idempotent == Idempotent::Yes && attempt < self.retry.max_retries;
            match outcome {
                // The same request brings the same answer: not retried.
                Err(Failure::TooLarge { limit }) => {
                    tracing::warn!(resource_type, method = %method, limit, "FHIR answer over fhir.max_response_bytes");
                    return Err(too_large(resource_type, limit));
                }
                Err(Failure::Transport(e)) => {
                    let failure = transport_error(&e, resource_type);
                    tracing::warn!(resource_type, method = %method, attempt, error = %failure, "FHIR request failed");
                    if !retries_left {
                        return Err(failure);
                    }
                    telemetry::record_retry(retry_reason(&e));
                    tokio::time::sleep(backoff(&self.retry, attempt)).await;
                }
                Ok((status, head, body)) if status.is_success() => {
                    tracing::debug!(resource_type, method = %method, status = status.as_u16(), "FHIR request");
                    return Ok(Reply {
                        status,
                        etag: header_text(&head, reqwest::header::ETAG),
                        location: header_text(&head, reqwest::header::LOCATION)
                            .or_else(|| header_text(&head, reqwest::header::CONTENT_LOCATION)),
                        body,
                    });
                }
                Ok((status, head, body)) => {
                    if status.is_server_error() || matches!(status.as_u16(), 401 | 403 | 429) {
                        tracing::warn!(resource_type, method = %method, status = status.as_u16(), attempt, "FHIR request refused");
                    } else {
                        tracing::debug!(resource_type, method = %method, status = status.as_u16(), "FHIR request refused");
                    }
                    if status == StatusCode::UNAUTHORIZED && self.auth.renewable() && !renewed_token
                    {
                        renewed_token = true;
                        self.auth.forget(token.as_deref()).await;
                        continue;
                    }
                    let retryable =
                        status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    if retryable && retries_left {
                        telemetry::record_retry(if status == StatusCode::TOO_MANY_REQUESTS {
                            RetryReason::TooManyRequests
                        } else {
                            RetryReason::ServerError
                        });
                        let wait = match retry_after(&head) {
                            Some(asked) if asked > self.retry.retry_after_cap => {
                                return Err(Error::Unavailable(summary!(
                                    "the FHIR server asked to wait {} s before retrying, more than the {} s allowed",
                                    asked.as_secs(),
                                    self.retry.retry_after_cap.as_secs()
                                )));
                            }
                            Some(asked) => asked,
                            None => backoff(&self.retry, attempt),
                        };
                        tokio::time::sleep(wait).await;
                    } else {
                        return Err(status_error(status, &body, resource_type));
                    }
                }
            }
            attempt += 1;
        }
    }
}

/// One HTTP exchange's span (a child of the current span: the RPC or batch patient), named and
/// labelled by method and resource type only: the URL carries ids and stays out.
pub(crate) fn request_span(method: &Method, resource_type: &str) -> tracing::Span {
    let resource_type = telemetry::resource_type_label(resource_type);
    tracing::info_span!(
        "fhir",
        otel.name = format!("{method} {resource_type}"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        http.request.method = method.as_str(),
        fhir.resource_type = resource_type,
        http.response.status_code = tracing::field::Empty,
    )
}

/// The request with `span`'s W3C trace context (`traceparent`) for the server.
pub(crate) fn traced(mut request: RequestBuilder, span: &tracing::Span) -> RequestBuilder {
    for (name, value) in telemetry::propagation::trace_headers(span) {
        request = request.header(name, value);
    }
    request
}

/// Why an exchange brought no answer to look at.
enum Failure {
    Transport(reqwest::Error),
    /// A 2xx answer larger than the limit (bytes).
    TooLarge {
        limit: u64,
    },
}

/// Sends the request and reads the answer (a 2xx answer up to `limit` bytes, an error answer's
/// head), timing it for `http.client.request.duration` and noting the status on the current span.
async fn exchange(
    request: RequestBuilder,
    method: &Method,
    resource_type: &str,
    limit: usize,
) -> std::result::Result<(StatusCode, HeaderMap, bytes::Bytes), Failure> {
    let started = std::time::Instant::now();
    let outcome = match request.send().await {
        Ok(response) => {
            let status = response.status();
            let head = response.headers().clone();
            if status.is_success() {
                match body::read_bounded(response, limit).await {
                    Ok(body) => Ok((status, head, body)),
                    Err(BodyError::TooLarge { limit }) => {
                        Err((Failure::TooLarge { limit }, status))
                    }
                    Err(BodyError::Transport(e)) => Err((Failure::Transport(e), status)),
                }
            } else {
                Ok((
                    status,
                    head,
                    body::read_head(response, ERROR_BODY_HEAD).await,
                ))
            }
        }
        Err(e) => {
            return Err(failed_exchange(
                Failure::Transport(e),
                method,
                resource_type,
                started,
            ));
        }
    };
    match outcome {
        Ok(answer) => {
            let class = telemetry::StatusClass::of(answer.0.as_u16());
            observed(
                method.as_str(),
                resource_type,
                class,
                Some(answer.0),
                started,
            );
            Ok(answer)
        }
        Err((Failure::TooLarge { limit }, status)) => {
            let class = telemetry::StatusClass::of(status.as_u16());
            observed(method.as_str(), resource_type, class, Some(status), started);
            Err(Failure::TooLarge { limit })
        }
        Err((failure, _)) => Err(failed_exchange(failure, method, resource_type, started)),
    }
}

fn failed_exchange(
    failure: Failure,
    method: &Method,
    resource_type: &str,
    started: std::time::Instant,
) -> Failure {
    observed(
        method.as_str(),
        resource_type,
        telemetry::StatusClass::Error,
        None,
        started,
    );
    failure
}

/// Records one exchange on the current span and in `http.client.request.duration`.
pub(crate) fn observed(
    method: &str,
    resource_type: &str,
    class: telemetry::StatusClass,
    status: Option<StatusCode>,
    started: std::time::Instant,
) {
    let span = tracing::Span::current();
    if let Some(status) = status {
        span.record("http.response.status_code", status.as_u16());
    }
    if matches!(
        class,
        telemetry::StatusClass::Error | telemetry::StatusClass::ServerError
    ) {
        span.record("otel.status_code", "ERROR");
    }
    telemetry::record_http_request(method, resource_type, class, started.elapsed());
}

fn header_text(head: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    head.get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(str::to_owned)
}

/// Full jitter: a random wait between zero and base × 2^attempt (capped at 30 s).
pub(crate) fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let ceiling = policy
        .base
        .saturating_mul(1u32 << attempt.min(16))
        .min(Duration::from_secs(30));
    let mut bytes = [0u8; 8];
    let fraction = match getrandom::fill(&mut bytes) {
        Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    };
    ceiling.mul_f64(fraction)
}

/// `Retry-After` as seconds (the form FHIR servers use); an HTTP date is read as "now".
fn retry_after(head: &HeaderMap) -> Option<Duration> {
    let text = head.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    match text.trim().parse::<u64>() {
        Ok(secs) => Some(Duration::from_secs(secs)),
        Err(_) => Some(Duration::ZERO),
    }
}

fn retry_reason(e: &reqwest::Error) -> RetryReason {
    if e.is_timeout() {
        RetryReason::Timeout
    } else {
        RetryReason::Connect
    }
}

/// A failed exchange in our words: reqwest's own text is not used (it can carry the URL, with a
/// patient id, and the words of whatever the connection met).
pub(crate) fn transport_error(e: &reqwest::Error, what: impl Ours) -> Error {
    if e.is_timeout() {
        Error::Timeout(summary!(
            "the FHIR server did not answer the {} request in time",
            what
        ))
    } else if e.is_connect() {
        Error::Unavailable("cannot connect to the FHIR server".into())
    } else if e.is_body() || e.is_decode() {
        Error::Unavailable(summary!("the FHIR server's {} answer was cut short", what))
    } else {
        Error::Unavailable(summary!(
            "the {} request failed on the connection to the FHIR server",
            what
        ))
    }
}

/// The name of a resource type this service reads or writes, for a message or a log field; any
/// other name (one a server sent, say in a Bulk Data manifest) is `other`.
pub fn known_type(name: &str) -> &'static str {
    // Besides the types screening reads (one list, `Typed::NAMES`): what the service itself
    // reads, writes or receives.
    const OTHERS: [&str; 6] = [
        "Patient",
        "Group",
        "Flag",
        "CarePlan",
        "OperationOutcome",
        "Bundle",
    ];
    crate::fhir::resources::Typed::NAMES
        .iter()
        .chain(OTHERS.iter())
        .find(|k| **k == name)
        .copied()
        .unwrap_or("other")
}

/// An answer over `fhir.max_response_bytes`.
pub(crate) fn too_large(what: &'static str, limit: u64) -> Error {
    Error::ResourceExhausted(summary!(
        "the FHIR server's {} answer is larger than {} bytes (fhir.max_response_bytes)",
        what,
        limit
    ))
}

/// A non-2xx status as an error: the status, and the issue codes of the server's OperationOutcome
/// when it sent one (never its text). The outcome's severities and codes are logged at debug.
pub(crate) fn status_error(status: StatusCode, body: &[u8], what: impl Ours) -> Error {
    let issues = Issues::read(body);
    if !issues.is_empty() {
        tracing::debug!(resource_type = %what, status = status.as_u16(), issues = %issues.logged(), "FHIR OperationOutcome");
    }
    let code = status.as_u16();
    let codes = issues.codes();
    match status {
        StatusCode::UNAUTHORIZED => Error::Unauthenticated(summary!(
            "the FHIR server refused the credentials ({}{})",
            code,
            codes
        )),
        StatusCode::FORBIDDEN => Error::PermissionDenied(summary!(
            "the FHIR server refused the {} request ({}{})",
            what,
            code,
            codes
        )),
        StatusCode::NOT_FOUND | StatusCode::GONE => {
            Error::NotFound(summary!("{} not found ({}{})", what, code, codes))
        }
        StatusCode::CONFLICT | StatusCode::PRECONDITION_FAILED => Error::Conflict(summary!(
            "the {} write conflicted ({}{})",
            what,
            code,
            codes
        )),
        StatusCode::TOO_MANY_REQUESTS => Error::Unavailable(summary!(
            "the FHIR server is rate limiting ({}{})",
            code,
            codes
        )),
        s if s.is_server_error() => Error::Unavailable(summary!(
            "the FHIR server failed the {} request ({}{})",
            what,
            code,
            codes
        )),
        _ => Error::BadGateway(summary!(
            "the FHIR server answered the {} request with {}{}",
            what,
            code,
            codes
        )),
    }
}

/// The issues of an OperationOutcome, each its severity and code as FHIR's closed value sets
/// spell them (anything else is `other`); the diagnostics and details text are not read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Issues(Vec<(&'static str, &'static str)>);

/// IssueSeverity (http://hl7.org/fhir/issue-severity).
const ISSUE_SEVERITIES: [&str; 4] = ["fatal", "error", "warning", "information"];
/// IssueType (http://hl7.org/fhir/issue-type), R4.
const ISSUE_TYPES: [&str; 31] = [
    "invalid",
    "structure",
    "required",
    "value",
    "invariant",
    "security",
    "login",
    "unknown",
    "expired",
    "forbidden",
    "suppressed",
    "processing",
    "not-supported",
    "duplicate",
    "multiple-matches",
    "not-found",
    "deleted",
    "too-long",
    "code-invalid",
    "extension",
    "too-costly",
    "business-rule",
    "conflict",
    "transient",
    "lock-error",
    "no-store",
    "exception",
    "timeout",
    "incomplete",
    "throttled",
    "informational",
];
/// Issues named in a message or a log line; a longer list ends in "...".
const ISSUES_SHOWN: usize = 5;

impl Issues {
    pub fn read(body: &[u8]) -> Issues {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Outcome {
            resource_type: Option<String>,
            #[serde(default)]
            issue: Vec<Issue>,
        }
        #[derive(Deserialize)]
        struct Issue {
            severity: Option<String>,
            code: Option<String>,
        }
        let Ok(outcome) = serde_json::from_slice::<Outcome>(body) else {
            return Issues::default();
        };
        if outcome.resource_type.as_deref() != Some("OperationOutcome") {
            return Issues::default();
        }
        let known = |set: &[&'static str], word: Option<&str>| {
            set.iter()
                .find(|s| Some(**s) == word)
                .copied()
                .unwrap_or("other")
        };
        Issues(
            outcome
                .issue
                .iter()
                .map(|i| {
                    (
                        known(&ISSUE_SEVERITIES, i.severity.as_deref()),
                        known(&ISSUE_TYPES, i.code.as_deref()),
                    )
                })
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The issue codes, for a message.
    pub fn codes(&self) -> IssueCodes {
        let mut codes: Vec<&'static str> = self.0.iter().map(|(_, code)| *code).collect();
        codes.dedup();
        IssueCodes(codes)
    }

    /// `error/not-found warning/informational`: for the debug log line.
    fn logged(&self) -> String {
        let mut shown: Vec<String> = self
            .0
            .iter()
            .take(ISSUES_SHOWN)
            .map(|(severity, code)| format!("{severity}/{code}"))
            .collect();
        if self.0.len() > ISSUES_SHOWN {
            shown.push("...".into());
        }
        shown.join(" ")
    }
}

/// An OperationOutcome's issue codes in a message: `", issue not-found"`, `", issues invalid,
/// required"`, or nothing. Words of FHIR's IssueType value set only.
pub struct IssueCodes(Vec<&'static str>);

impl std::fmt::Display for IssueCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_slice() {
            [] => Ok(()),
            [one] => write!(f, ", issue {one}"),
            many => {
                let shown = &many[..many.len().min(ISSUES_SHOWN)];
                write!(f, ", issues {}", shown.join(", "))?;
                if many.len() > ISSUES_SHOWN {
                    f.write_str(", ...")?;
                }
                Ok(())
            }
        }
    }
}

impl crate::error::Ours for IssueCodes {}
