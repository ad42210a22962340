//! Authentication to the FHIR server: none, a static bearer token, or SMART Backend Services
//! (a client assertion signed with the service's private key, exchanged for an access token that is
//! cached until shortly before it expires and renewed once on a 401).

use super::body::{self, BodyError};
use super::retry::{AskedWait, Attempt, Rules, Stop, with_retries};
use super::transport::{Transport, observed, request_span, traced};
use crate::auth::jwks::{self, PublishedKey};
use crate::error::{Error, Result};
use crate::settings::{AuthMode, AuthSettings, Secrets, SigningAlgorithm};
use crate::summary;
use crate::telemetry::{self, RetryReason, StatusClass};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;
use tracing::Instrument;

/// A token is renewed this long before the server says it expires.
const RENEW_MARGIN: Duration = Duration::from_secs(60);
/// The assertion's lifetime; SMART allows at most five minutes.
const ASSERTION_LIFETIME_SECS: u64 = 300;
/// Largest answer read from the authorization server (a SMART configuration, a token): a few KB
/// in practice.
const AUTHORIZATION_ANSWER_LIMIT: usize = 256 * 1024;
/// The `error` codes of an OAuth 2.0 token error answer (RFC 6749, section 5.2); the only words of
/// a refusal passed on (its `error_description` is the server's free text, never passed on).
const TOKEN_ERRORS: [&str; 6] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
];

pub enum Auth {
    None,
    Bearer(String),
    Smart(Box<Smart>),
}

pub struct Smart {
    client_id: String,
    key: EncodingKey,
    algorithm: Algorithm,
    /// The key's `kid` in the published JWKS ([`jwks::key_id`]).
    key_id: String,
    scope: String,
    configured_token_url: Option<String>,
    base: String,
    state: Mutex<TokenState>,
}

#[derive(Default)]
struct TokenState {
    token_url: Option<String>,
    token: Option<(String, Instant)>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    iat: u64,
    jti: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct SmartConfiguration {
    token_endpoint: Option<String>,
}

impl Auth {
    pub fn from_settings(settings: &AuthSettings, secrets: &Secrets, base: &str) -> Result<Auth> {
        match settings.mode {
            AuthMode::None => Ok(Auth::None),
            AuthMode::Bearer => secrets
                .bearer_token
                .clone()
                .map(Auth::Bearer)
                .ok_or_else(|| Error::NotConfigured("no bearer token was read".into())),
            AuthMode::Smart => {
                let pem = secrets
                    .private_key_pem
                    .as_deref()
                    .ok_or_else(|| Error::NotConfigured("no SMART private key was read".into()))?;
                let algorithm = jwks::jose_algorithm(settings.algorithm);
                let key = match settings.algorithm {
                    SigningAlgorithm::RS384 => EncodingKey::from_rsa_pem(pem),
                    SigningAlgorithm::ES384 => EncodingKey::from_ec_pem(pem),
                };
                let key = key.map_err(|_| {
                    Error::NotConfigured(summary!(
                        "the SMART private key is not a PEM key for {}",
                        match settings.algorithm {
                            SigningAlgorithm::RS384 => "RS384",
                            SigningAlgorithm::ES384 => "ES384",
                        }
                    ))
                })?;
                // The kid the published JWKS gives this key, so the EHR finds it by its kid.
                let key_id = jwks::key_id(&PublishedKey {
                    pem,
                    algorithm,
                    kid: settings.key_id.as_deref(),
                })?;
                Ok(Auth::Smart(Box::new(Smart {
                    client_id: settings.client_id.clone(),
                    key,
                    algorithm,
                    key_id,
                    scope: settings.scope.clone(),
                    configured_token_url: settings
                        .token_url
                        .as_ref()
                        .map(|u| u.as_str().to_owned()),
                    base: base.to_owned(),
                    state: Mutex::new(TokenState::default()),
                })))
            }
        }
    }

    pub fn renewable(&self) -> bool {
        matches!(self, Auth::Smart(_))
    }

    /// The bearer token to send, if any.
    pub async fn token(&self, transport: &Transport) -> Result<Option<String>> {
        match self {
            Auth::None => Ok(None),
            Auth::Bearer(token) => Ok(Some(token.clone())),
            Auth::Smart(smart) => smart.token(transport).await.map(Some),
        }
    }

    /// Drops a cached token the server refused, so the next request obtains a new one.
    pub async fn forget(&self, refused: Option<&str>) {
        if let Auth::Smart(smart) = self {
            let mut state = smart.state.lock().await;
            if state.token.as_ref().map(|(t, _)| t.as_str()) == refused {
                state.token = None;
            }
        }
    }
}

impl Smart {
    async fn token(&self, transport: &Transport) -> Result<String> {
        // One request for a token at a time: callers waiting here then share the new token.
        let mut state = self.state.lock().await;
        if let Some((token, renew_at)) = &state.token
            && Instant::now() < *renew_at
        {
            return Ok(token.clone());
        }
        let fetched = async {
            let token_url = match (&state.token_url, &self.configured_token_url) {
                (Some(url), _) | (None, Some(url)) => url.clone(),
                (None, None) => self.discover(transport).await?,
            };
            state.token_url = Some(token_url.clone());
            self.request_token(transport, &token_url).await
        }
        .await;
        telemetry::record_token_fetch(fetched.is_ok());
        let (token, lifetime) = fetched?;
        state.token = Some((token.clone(), Instant::now() + renew_after(lifetime)));
        Ok(token)
    }

    async fn discover(&self, transport: &Transport) -> Result<String> {
        let url = format!("{}/.well-known/smart-configuration", self.base);
        let span = request_span(&Method::GET, "smart-configuration");
        let request = transport
            .http()
            .get(&url)
            .header(reqwest::header::ACCEPT, "application/json");
        let response = observed_send(traced(request, &span), &Method::GET, "smart-configuration")
            .instrument(span)
            .await
            .map_err(|e| unreachable_auth(&e, "SMART configuration"))?;
        if !response.status().is_success() {
            return Err(Error::Unavailable(summary!(
                "SMART discovery answered {}; set fhir.auth.token_url",
                response.status().as_u16()
            )));
        }
        let answer = read_answer(response, "SMART configuration").await?;
        let config: SmartConfiguration = serde_json::from_slice(&answer)
            .map_err(|_| Error::BadGateway("the SMART configuration is not JSON".into()))?;
        let endpoint = config.token_endpoint.ok_or_else(|| {
            Error::BadGateway("the SMART configuration names no token_endpoint".into())
        })?;
        if !token_endpoint_allowed(&endpoint, &self.base) {
            return Err(Error::BadGateway(
                "the SMART configuration's token_endpoint is not an https URL; set fhir.auth.token_url".into(),
            ));
        }
        Ok(endpoint)
    }

    fn assertion(&self, token_url: &str) -> Result<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| Error::NotConfigured("the system clock is before 1970".into()))?
            .as_secs();
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.key_id.clone());
        header.typ = Some("JWT".into());
        let claims = Claims {
            iss: &self.client_id,
            sub: &self.client_id,
            aud: token_url,
            exp: now + ASSERTION_LIFETIME_SECS,
            iat: now,
            jti: random_id()?,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|_| Error::NotConfigured("cannot sign the SMART client assertion".into()))
    }

    async fn request_token(
        &self,
        transport: &Transport,
        token_url: &str,
    ) -> Result<(String, Duration)> {
        let policy = transport.retry_policy();
        let rules = Rules {
            policy,
            retries: policy.max_retries,
            asked: AskedWait::UpTo(policy.retry_after_cap),
        };
        let attempt = |_| async move {
            // A fresh assertion (and jti) per attempt: servers refuse a replayed jti.
            let assertion = match self.assertion(token_url) {
                Ok(assertion) => assertion,
                Err(e) => return Attempt::Failed(e),
            };
            let form = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                )
                .append_pair("client_assertion", &assertion)
                .append_pair("scope", &self.scope)
                .finish();
            let span = request_span(&Method::POST, "token");
            let request = transport
                .http()
                .post(token_url)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .header(reqwest::header::ACCEPT, "application/json")
                .body(form);
            let response = match observed_send(traced(request, &span), &Method::POST, "token")
                .instrument(span)
                .await
            {
                Ok(response) => response,
                Err(e) => {
                    return Attempt::Again {
                        error: unreachable_auth(&e, "token endpoint"),
                        reason: Some(if e.is_timeout() {
                            RetryReason::Timeout
                        } else {
                            RetryReason::Connect
                        }),
                        asked: None,
                    };
                }
            };
            let status = response.status();
            let reason = if status.as_u16() == 429 {
                Some(RetryReason::TooManyRequests)
            } else if status.is_server_error() {
                Some(RetryReason::ServerError)
            } else {
                None
            };
            match (status.is_success(), reason) {
                (true, _) => match token_of(response).await {
                    Ok(token) => Attempt::Done(token),
                    Err(e) => Attempt::Failed(e),
                },
                (false, Some(reason)) => Attempt::Again {
                    error: refusal(response).await,
                    reason: Some(reason),
                    asked: None,
                },
                (false, None) => Attempt::Failed(refusal(response).await),
            }
        };
        with_retries(rules, attempt, |_, _| {})
            .await
            .map_err(Stop::into_error)
    }
}

/// The token endpoint's refusal in our words: its status and, when it is one of OAuth's, its
/// error code (never its description).
async fn refusal(response: reqwest::Response) -> Error {
    let status = response.status();
    let head = body::read_head(response, AUTHORIZATION_ANSWER_LIMIT).await;
    let error = serde_json::from_slice::<serde_json::Value>(&head)
        .ok()
        .and_then(|v| {
            let error = v.get("error")?.as_str()?;
            TOKEN_ERRORS.iter().find(|known| **known == error).copied()
        });
    tracing::warn!(
        status = status.as_u16(),
        error = error.unwrap_or("unknown"),
        "SMART token request refused"
    );
    Error::Unauthenticated(match error {
        Some(error) => summary!(
            "the token endpoint refused the client ({}, {})",
            status.as_u16(),
            error
        ),
        None => summary!(
            "the token endpoint refused the client ({})",
            status.as_u16()
        ),
    })
}

/// The longest a token is kept: the endpoint's `expires_in` is any number it sends, and a time
/// past what `Instant` can hold would panic every call that needs a token.
const MAX_TOKEN_SECS: u64 = 24 * 3600;

/// Whether a discovered token endpoint may be sent the signed assertion (and answer with the
/// access token): over HTTPS, or over HTTP only when the FHIR server itself is reached so (a test
/// server on this machine).
fn token_endpoint_allowed(endpoint: &str, fhir_base: &str) -> bool {
    match url::Url::parse(endpoint).as_ref().map(url::Url::scheme) {
        Ok("https") => true,
        Ok("http") => fhir_base.starts_with("http://"),
        _ => false,
    }
}

/// How long a token of `lifetime` is used before a new one is asked for: [`RENEW_MARGIN`] before
/// it expires, or half-way through a lifetime shorter than twice that (a token of under a minute
/// was otherwise never reused, and every request asked for a new one).
fn renew_after(lifetime: Duration) -> Duration {
    lifetime.saturating_sub(RENEW_MARGIN.min(lifetime / 2))
}

/// The access token of a successful answer, and its lifetime (at most [`MAX_TOKEN_SECS`]).
async fn token_of(response: reqwest::Response) -> Result<(String, Duration)> {
    let answer = read_answer(response, "token endpoint").await?;
    let token: TokenResponse = serde_json::from_slice(&answer)
        .map_err(|_| Error::BadGateway("the token endpoint's answer is not a token".into()))?;
    // It goes into an Authorization header: a character a header cannot carry failed every
    // request as if the server were unreachable, with the token kept for its whole lifetime.
    let usable =
        !token.access_token.is_empty() && token.access_token.bytes().all(|b| b.is_ascii_graphic());
    if !usable {
        return Err(Error::BadGateway(
            "the token endpoint's access token is empty or holds characters a header cannot carry"
                .into(),
        ));
    }
    let lifetime = Duration::from_secs(token.expires_in.unwrap_or(300).min(MAX_TOKEN_SECS));
    tracing::info!(
        expires_in = lifetime.as_secs(),
        "obtained a SMART access token"
    );
    Ok((token.access_token, lifetime))
}

/// Sends a request to the authorization server, timing it up to its answer's head (the body is
/// small and read by the caller).
async fn observed_send(
    request: reqwest::RequestBuilder,
    method: &Method,
    endpoint: &str,
) -> reqwest::Result<reqwest::Response> {
    let started = std::time::Instant::now();
    let result = request.send().await;
    let (class, status) = match &result {
        Ok(r) => (StatusClass::of(r.status().as_u16()), Some(r.status())),
        Err(_) => (StatusClass::Error, None),
    };
    observed(method.as_str(), endpoint, class, status, started);
    result
}

/// An answer of the authorization server, within [`AUTHORIZATION_ANSWER_LIMIT`].
async fn read_answer(response: reqwest::Response, what: &'static str) -> Result<bytes::Bytes> {
    body::read_bounded(response, AUTHORIZATION_ANSWER_LIMIT)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge { limit } => Error::BadGateway(summary!(
                "the {} answer is larger than {} bytes",
                what,
                limit
            )),
            BodyError::Transport(e) => unreachable_auth(&e, what),
        })
}

fn unreachable_auth(e: &reqwest::Error, what: &'static str) -> Error {
    if e.is_timeout() {
        Error::Timeout(summary!("the {} did not answer in time", what))
    } else {
        Error::Unavailable(summary!("cannot reach the {}", what))
    }
}

/// 128 random bits as hex, for `jti`.
fn random_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|_| Error::NotConfigured("no random numbers from the operating system".into()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwks::tests::private_key;

    fn assertion_kid(settings: &AuthSettings, pem: &[u8]) -> Option<String> {
        let secrets = Secrets {
            private_key_pem: Some(pem.to_vec()),
            ..Secrets::default()
        };
        let Ok(Auth::Smart(smart)) = Auth::from_settings(settings, &secrets, "http://fhir.test")
        else {
            panic!("a SMART client");
        };
        let assertion = smart.assertion("http://fhir.test/token").unwrap();
        jsonwebtoken::decode_header(&assertion).unwrap().kid
    }

    #[tokio::test]
    async fn a_token_endpoint_promising_a_lifetime_past_what_a_clock_holds_gets_a_day() {
        let answer = |expires_in: &str| {
            reqwest::Response::from(http::Response::new(format!(
                r#"{{"access_token":"t","token_type":"bearer","expires_in":{expires_in}}}"#
            )))
        };
        let (_, lifetime) = token_of(answer("18446744073709551615")).await.unwrap();
        assert_eq!(lifetime, Duration::from_secs(MAX_TOKEN_SECS));
        // What the cache does with it: before the cap, this addition panicked.
        let _ = Instant::now() + lifetime;
        let (_, lifetime) = token_of(answer("3600")).await.unwrap();
        assert_eq!(lifetime, Duration::from_secs(3600));
    }

    #[tokio::test]
    async fn a_token_a_header_cannot_carry_is_refused_when_it_comes() {
        for token in ["", "a\\nb", "a b", "caf\u{e9}"] {
            let body = format!(r#"{{"access_token":"{token}","token_type":"bearer"}}"#);
            let answer = reqwest::Response::from(http::Response::new(body));
            let refused = token_of(answer).await.expect_err(token);
            assert!(matches!(refused, Error::BadGateway(_)), "{token}");
        }
    }

    #[test]
    fn a_discovered_token_endpoint_must_be_https_unless_the_fhir_server_is_plain_http() {
        let https = "https://ehr.example/fhir";
        assert!(token_endpoint_allowed("https://auth.example/token", https));
        assert!(!token_endpoint_allowed("http://auth.example/token", https));
        assert!(!token_endpoint_allowed("file:///token", https));
        assert!(!token_endpoint_allowed("not a url", https));
        assert!(token_endpoint_allowed(
            "http://127.0.0.1:8080/token",
            "http://127.0.0.1:8080/fhir"
        ));
    }

    #[test]
    fn a_token_is_renewed_a_minute_before_it_expires_or_half_way_through_a_short_one() {
        let secs = Duration::from_secs;
        assert_eq!(renew_after(secs(3600)), secs(3540));
        assert_eq!(renew_after(secs(60)), secs(30));
        assert_eq!(renew_after(secs(10)), secs(5));
        assert_eq!(renew_after(secs(0)), secs(0));
    }

    #[test]
    fn the_assertion_names_the_kid_the_published_set_gives_the_current_key() {
        let pem = private_key("EC");
        let mut settings = AuthSettings {
            mode: AuthMode::Smart,
            client_id: "trdscreen".into(),
            algorithm: SigningAlgorithm::ES384,
            ..AuthSettings::default()
        };
        let secrets = Secrets {
            private_key_pem: Some(pem.clone()),
            ..Secrets::default()
        };
        let published = |settings: &AuthSettings| {
            let set = jwks::smart_client_jwks(settings, &secrets)
                .unwrap()
                .unwrap();
            let set: serde_json::Value = serde_json::from_str(&set).unwrap();
            set["keys"][0]["kid"].as_str().map(str::to_owned)
        };
        assert_eq!(assertion_kid(&settings, &pem), published(&settings));
        settings.key_id = Some("2026-12".into());
        assert_eq!(assertion_kid(&settings, &pem).as_deref(), Some("2026-12"));
        assert_eq!(published(&settings).as_deref(), Some("2026-12"));
    }
}
