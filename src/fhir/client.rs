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
use super::retry::{AskedWait, Attempt, Rules, Stop, with_retries};
use super::transport::{
    Failure, RetryPolicy, Transport, exchange, header_text, request_span, retry_after,
    retry_reason, status_error, too_large, traced, transport_error,
};
use crate::error::{Error, Result};
use crate::settings::{FhirSettings, Secrets};
use crate::summary;
use crate::telemetry::RetryReason;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tracing::Instrument;

const FHIR_JSON: &str = "application/fhir+json";

pub struct FhirClient {
    /// The HTTP client, its retry policy and answer limit, shared with the SMART auth.
    transport: Transport,
    /// The base URL without a trailing slash.
    base: String,
    /// The base URL parsed, for the URLs that get query parameters.
    base_url: url::Url,
    origin: url::Origin,
    auth: Auth,
    page_size: u32,
    page_cap: u32,
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

/// Whether a search result entry is the server's OperationOutcome (`search.mode` outcome) with an
/// issue of severity error or fatal: a search it cut short (too costly, timed out), whose
/// results are not all there. Warnings and information are the server's notes.
pub(crate) fn reports_failure(entry: &SearchEntry) -> bool {
    #[derive(Deserialize)]
    struct Outcome {
        #[serde(default)]
        issue: Vec<Issue>,
    }
    #[derive(Deserialize)]
    struct Issue {
        severity: Option<String>,
    }
    let is_outcome = entry.search.as_ref().and_then(|s| s.mode.as_deref()) == Some("outcome");
    is_outcome
        && entry.resource.as_ref().is_some_and(|r| {
            serde_json::from_str::<Outcome>(r.get()).map_or(true, |o| {
                o.issue
                    .iter()
                    .any(|i| matches!(i.severity.as_deref(), Some("error" | "fatal")))
            })
        })
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

/// The bearer token of one logical request (all its attempts): a 401 answer to a SMART token
/// renews it once, in one place for every request the client makes.
struct Credentials<'a> {
    auth: &'a Auth,
    transport: &'a Transport,
    renewed: AtomicBool,
}

impl<'a> Credentials<'a> {
    fn new(auth: &'a Auth, transport: &'a Transport) -> Credentials<'a> {
        Credentials {
            auth,
            transport,
            renewed: AtomicBool::new(false),
        }
    }

    /// The token to send now, if the server takes one.
    async fn token(&self) -> Result<Option<String>> {
        self.auth.token(self.transport).await
    }

    /// Whether to send the request again with a new token: after a 401 to a token that can be
    /// renewed (SMART), once; the refused token is forgotten.
    async fn renew_after(&self, status: StatusCode, sent: Option<&str>) -> bool {
        if status != StatusCode::UNAUTHORIZED
            || sent.is_none()
            || !self.auth.renewable()
            || self.renewed.swap(true, Ordering::Relaxed)
        {
            return false;
        }
        self.auth.forget(sent).await;
        true
    }
}

/// What an idempotent request may be retried on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Idempotent {
    Yes,
    No,
}

impl FhirClient {
    pub fn new(settings: &FhirSettings, secrets: &Secrets) -> Result<FhirClient> {
        let Some(base_url) = &settings.base_url else {
            return Err(Error::NotConfigured("fhir.base_url is not set".into()));
        };
        let base = base_url.as_str().trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("trdscreen/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| Error::NotConfigured("cannot build the HTTP client".into()))?;
        Ok(FhirClient {
            auth: Auth::from_settings(&settings.auth, secrets, &base)?,
            transport: Transport {
                http,
                retry: RetryPolicy {
                    max_retries: settings.max_retries,
                    base: settings.retry_base,
                    retry_after_cap: settings.retry_after_cap,
                },
                max_response_bytes: usize::try_from(settings.max_response_bytes)
                    .unwrap_or(usize::MAX),
            },
            base,
            origin: base_url.url().origin(),
            base_url: base_url.url().clone(),
            page_size: settings.page_size,
            page_cap: settings.page_cap,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn retry_policy(&self) -> &RetryPolicy {
        self.transport.retry_policy()
    }

    /// The largest answer read into memory (`fhir.max_response_bytes`): for the Bulk Data status
    /// and manifest, read outside [`send`](Self::send).
    pub(crate) fn max_response_bytes(&self) -> usize {
        self.transport.max_response_bytes()
    }

    /// `{base}/{path}`; `path` is built by this crate from validated ids and fixed parameter names.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path)
    }

    /// [`url`](Self::url) parsed, to add query parameters to.
    pub(crate) fn endpoint(&self, path: &str) -> url::Url {
        let mut url = self.base_url.clone();
        let joined = format!("{}/{}", url.path().trim_end_matches('/'), path);
        url.set_path(&joined);
        url
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
    /// than one patient's), each page's entries handed to `each` as it comes, so that a caller
    /// keeping only part of them (a population's ids) never holds every page at once.
    pub async fn for_each_page(
        &self,
        resource_type: &'static str,
        params: &[(&str, &str)],
        (page_cap, cap_name): (u32, &'static str),
        mut each: impl FnMut(Vec<SearchEntry>),
    ) -> Result<()> {
        let mut url = self.endpoint(resource_type);
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in params {
                query.append_pair(name, value);
            }
            query.append_pair("_count", &self.page_size.to_string());
        }
        let mut next = Some(url.to_string());
        let mut seen = std::collections::HashSet::new();
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
            if page.entry.iter().any(reports_failure) {
                return Err(Error::BadGateway(summary!(
                    "the {} search's answer carries an error from the server (an OperationOutcome in its results): they may be incomplete",
                    resource_type
                )));
            }
            each(page.entry);
            next = page
                .link
                .into_iter()
                .find(|l| l.relation.as_deref() == Some("next"))
                .and_then(|l| l.url);
            if let Some(n) = &next {
                self.check_same_origin(n, resource_type)?;
            }
        }
        Ok(())
    }

    /// Every entry of a search with its own page cap, gathered.
    pub async fn search_pages(
        &self,
        resource_type: &'static str,
        params: &[(&str, &str)],
        cap: (u32, &'static str),
    ) -> Result<Vec<SearchEntry>> {
        let mut entries = Vec::new();
        self.for_each_page(resource_type, params, cap, |page| entries.extend(page))
            .await?;
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
        let credentials = Credentials::new(&self.auth, &self.transport);
        loop {
            let token = if authorised {
                credentials.token().await?
            } else {
                None
            };
            let mut request = self.transport.http().request(method.clone(), url);
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
            if credentials.renew_after(status, token.as_deref()).await {
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
        let policy = self.transport.retry_policy();
        let rules = Rules {
            policy,
            retries: match idempotent {
                Idempotent::Yes => policy.max_retries,
                Idempotent::No => 0,
            },
            asked: AskedWait::UpTo(policy.retry_after_cap),
        };
        let credentials = Credentials::new(&self.auth, &self.transport);
        let attempt = |attempt: u32| {
            let credentials = &credentials;
            let method = &method;
            async move {
                loop {
                    let token = match credentials.token().await {
                        Ok(token) => token,
                        Err(e) => return Attempt::Failed(e),
                    };
                    let mut request = self
                        .transport
                        .http()
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
                    let span = request_span(method, resource_type);
                    let outcome = exchange(
                        traced(request, &span),
                        method,
                        resource_type,
                        self.transport.max_response_bytes(),
                    )
                    .instrument(span)
                    .await;
                    return match outcome {
                        // The same request brings the same answer: not retried.
                        Err(Failure::TooLarge { limit }) => {
                            tracing::warn!(resource_type, method = %method, limit, "FHIR answer over fhir.max_response_bytes");
                            Attempt::Failed(too_large(resource_type, limit))
                        }
                        Err(Failure::Transport(e)) => {
                            let failure = transport_error(&e, resource_type);
                            tracing::warn!(resource_type, method = %method, attempt, error = %failure, "FHIR request failed");
                            Attempt::Again {
                                error: failure,
                                reason: Some(retry_reason(&e)),
                                asked: None,
                            }
                        }
                        Ok((status, head, body)) if status.is_success() => {
                            tracing::debug!(resource_type, method = %method, status = status.as_u16(), "FHIR request");
                            Attempt::Done(Reply {
                                status,
                                etag: header_text(&head, reqwest::header::ETAG),
                                location: header_text(&head, reqwest::header::LOCATION).or_else(
                                    || header_text(&head, reqwest::header::CONTENT_LOCATION),
                                ),
                                body,
                            })
                        }
                        Ok((status, head, body)) => {
                            if status.is_server_error()
                                || matches!(status.as_u16(), 401 | 403 | 429)
                            {
                                tracing::warn!(resource_type, method = %method, status = status.as_u16(), attempt, "FHIR request refused");
                            } else {
                                tracing::debug!(resource_type, method = %method, status = status.as_u16(), "FHIR request refused");
                            }
                            // A renewed token is the same attempt again, not a retry.
                            if credentials.renew_after(status, token.as_deref()).await {
                                continue;
                            }
                            let error = status_error(status, &body, resource_type);
                            if status == StatusCode::TOO_MANY_REQUESTS {
                                Attempt::Again {
                                    error,
                                    reason: Some(RetryReason::TooManyRequests),
                                    asked: retry_after(&head),
                                }
                            } else if status.is_server_error() {
                                Attempt::Again {
                                    error,
                                    reason: Some(RetryReason::ServerError),
                                    asked: retry_after(&head),
                                }
                            } else {
                                Attempt::Failed(error)
                            }
                        }
                    };
                }
            }
        };
        with_retries(rules, attempt, |_, _| {})
            .await
            .map_err(Stop::into_error)
    }
}
