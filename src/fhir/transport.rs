//! What every exchange with a FHIR server or its token endpoint shares, below the client and the
//! SMART auth (both use it; neither uses the other's internals): the HTTP client with its retry
//! policy and answer limit, the request span and trace context, the metrics of each exchange, the
//! backoff and `Retry-After`, and the turning of a transport failure or a non-2xx answer into an
//! [`Error`] in our own words.

use super::body::{self, BodyError};
use crate::date::Date;
use crate::error::{Error, Ours};
use crate::summary;
use crate::telemetry::{self, RetryReason};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Deserialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The HTTP client of one FHIR server, with the rules every request to it follows.
pub struct Transport {
    pub(crate) http: reqwest::Client,
    pub(crate) retry: RetryPolicy,
    /// The largest answer read into memory (`fhir.max_response_bytes`).
    pub(crate) max_response_bytes: usize,
}

impl Transport {
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    pub fn max_response_bytes(&self) -> usize {
        self.max_response_bytes
    }
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base: Duration,
    pub retry_after_cap: Duration,
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
pub(crate) enum Failure {
    Transport(reqwest::Error),
    /// A 2xx answer larger than the limit (bytes).
    TooLarge {
        limit: u64,
    },
}

/// Sends the request and reads the answer (a 2xx answer up to `limit` bytes, an error answer's
/// head), timing it for `http.client.request.duration` and noting the status on the current span.
pub(crate) async fn exchange(
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
                    body::read_head(response, body::ERROR_HEAD).await,
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

pub(crate) fn header_text(head: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
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

/// `Retry-After` as a wait from now: seconds, or an HTTP date; `None` (the retry's own backoff)
/// when it is neither. An HTTP date was once read as "now", and retries then came with no pause.
pub(crate) fn retry_after(head: &HeaderMap) -> Option<Duration> {
    retry_after_at(head, SystemTime::now())
}

/// `Retry-After` as seconds or as an HTTP date (IMF-fixdate), as a wait from `now`.
pub(crate) fn retry_after_at(head: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = head
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = http_date(text)?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` as seconds since the epoch.
fn http_date(text: &str) -> Option<u64> {
    let (_, rest) = text.split_once(", ")?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? as u32 + 1;
    let date = Date::from_ymd(year.parse().ok()?, month, day.parse().ok()?)?;
    let clock: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = clock.as_slice() else {
        return None;
    };
    if *h > 23 || *m > 59 || *s > 60 {
        return None;
    }
    let days = u64::try_from(date.days_since_epoch()).ok()?;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

pub(crate) fn retry_reason(e: &reqwest::Error) -> RetryReason {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn head(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, value.parse().unwrap());
        h
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_an_http_date() {
        // 1994-11-06T08:49:37Z
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            retry_after_at(&head("7"), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after_at(&head("Sun, 06 Nov 1994 08:50:07 GMT"), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after_at(&head("Sun, 06 Nov 1994 08:00:00 GMT"), now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        for bad in [
            "soon",
            "Sun, 06 Nov 1994 25:00:00 GMT",
            "Sun, 31 Feb 1994 08:00:00 GMT",
        ] {
            assert_eq!(retry_after_at(&head(bad), now), None, "{bad}");
        }
    }
}
