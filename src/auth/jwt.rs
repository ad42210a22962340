//! Verifying OAuth 2.0 JWT access tokens (RFC 9068) against the issuer's published keys.
//!
//! The keys are the issuer's JWKS, at the `jwks_uri` of its metadata
//! (`{issuer}/.well-known/openid-configuration`, else RFC 8414's
//! `{issuer}/.well-known/oauth-authorization-server`), or at a configured URL. They are fetched
//! on first use, again when older than `jwks_max_age_secs` (the old set is kept if that fails), and
//! again when a token names a `kid` the set does not hold, at most once per
//! `jwks_refresh_min_interval_secs`: a stream of tokens with made-up key ids costs the issuer one
//! request per interval, not one per token. Every answer is read within `max_document_bytes` and
//! the HTTP client's timeouts, without following redirects.
//!
//! A token is accepted only when all of these hold:
//! - it is a JWS whose `alg` is RS256, RS384, ES256 or ES384 (never `none`, never HMAC: a public
//!   key is no secret), and whose `typ` is `at+jwt` (or, with `accept_jwt_typ`, `JWT` or absent);
//! - the key it names (`kid`; without one, the only key of its kind) is in the issuer's set, of
//!   the algorithm's kind (RSA of 2048 bits or more; EC on the algorithm's curve), meant for
//!   signatures, and its signature verifies;
//! - `iss` is the configured issuer, `aud` holds a configured audience, `exp` is not past and
//!   `nbf` (when present) not ahead, each within `leeway_secs`;
//! - it names the caller by `client_id` or `sub` (1 to 255 printable ASCII characters).

use super::permission::{Caller, Permissions};
use crate::error::{Error, Result};
use crate::fhir::body::{self, BodyError};
use crate::settings::values::{HttpUrl, empty_is_off, seconds};
use crate::summary;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation, errors::ErrorKind};
use serde::Deserialize;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The signature algorithms accepted.
pub const ACCEPTED_ALGORITHMS: [Algorithm; 4] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::ES256,
    Algorithm::ES384,
];
/// A bearer token longer than this is refused before it is parsed.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Keys read from one JWKS at most; the rest are ignored.
const MAX_KEYS: usize = 64;
/// Smallest RSA modulus accepted, in bytes.
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// How access tokens are verified (the `[callers.jwt]` settings).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtSettings {
    /// The identity provider's issuer URL, exactly as its tokens' `iss` and its metadata's
    /// `issuer` say. `https`, or `http` on a loopback address (tests). Empty: none (then
    /// `authentication = "jwt"` is refused).
    #[serde(with = "empty_is_off")]
    pub issuer: Option<HttpUrl>,
    /// The audiences accepted in `aud`: this service's resource identifier(s). At least one. In a
    /// settings file a list or one text of comma-separated values (as an environment variable
    /// gives it).
    #[serde(with = "comma_list")]
    pub audiences: Vec<String>,
    /// The JWKS URL; default: the `jwks_uri` of the issuer's metadata.
    #[serde(deserialize_with = "empty_is_off::deserialize")]
    pub jwks_url: Option<HttpUrl>,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(rename = "leeway_secs", with = "seconds")]
    pub leeway: Duration,
    /// A token naming an unknown `kid` fetches the keys again at most this often.
    #[serde(rename = "jwks_refresh_min_interval_secs", with = "seconds")]
    pub jwks_refresh_min_interval: Duration,
    /// Keys older than this are fetched again before use (kept if that fails).
    #[serde(rename = "jwks_max_age_secs", with = "seconds")]
    pub jwks_max_age: Duration,
    /// After a failed fetch, the issuer is asked again only this much later (requests meanwhile
    /// use the cached keys, or are refused `UNAVAILABLE` when there are none).
    #[serde(rename = "jwks_retry_after_failure_secs", with = "seconds")]
    pub jwks_retry_after_failure: Duration,
    #[serde(rename = "timeout_secs", with = "seconds")]
    pub timeout: Duration,
    #[serde(rename = "connect_timeout_secs", with = "seconds")]
    pub connect_timeout: Duration,
    /// Largest metadata document or JWKS read.
    pub max_document_bytes: u64,
    /// Also accept tokens typed `JWT` or untyped (identity providers that do not follow RFC 9068's
    /// `at+jwt`; such a token could be an ID token, so the audience check is what tells them apart).
    pub accept_jwt_typ: bool,
}

/// A list written as a TOML list or as one comma-separated text; written back as the text.
pub mod comma_list {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Text(String),
        List(Vec<String>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::Text(text) => text
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
            OneOrMany::List(list) => list,
        })
    }

    pub fn serialize<S: Serializer>(list: &[String], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&list.join(","))
    }
}

impl Default for JwtSettings {
    fn default() -> Self {
        JwtSettings {
            issuer: None,
            audiences: Vec::new(),
            jwks_url: None,
            leeway: Duration::from_secs(30),
            jwks_refresh_min_interval: Duration::from_secs(60),
            jwks_max_age: Duration::from_secs(3600),
            jwks_retry_after_failure: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_document_bytes: 256 * 1024,
            accept_jwt_typ: false,
        }
    }
}

/// The token of an `Authorization: Bearer ...` header value (scheme case-insensitive).
pub fn bearer_token(authorization: Option<&str>) -> Result<&str> {
    let value = authorization
        .ok_or(Error::Unauthenticated(
            "no bearer access token was sent".into(),
        ))?
        .trim();
    let (scheme, token) = value.split_once(' ').ok_or(Error::Unauthenticated(
        "the authorization is not a bearer token".into(),
    ))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Error::Unauthenticated(
            "the authorization is not a bearer token".into(),
        ));
    }
    let token = token.trim_start();
    if token.is_empty() {
        return Err(Error::Unauthenticated(
            "no bearer access token was sent".into(),
        ));
    }
    Ok(token)
}

/// Verifies access tokens of one issuer. Shared by every request (`Arc<JwtVerifier>`).
pub struct JwtVerifier {
    settings: JwtSettings,
    /// `settings.issuer`, which a verifier has.
    issuer: HttpUrl,
    http: reqwest::Client,
    keys: RwLock<KeySet>,
    fetch: Mutex<FetchState>,
    fetches: AtomicU64,
}

#[derive(Default)]
struct KeySet {
    keys: Vec<Key>,
    fetched: Option<Instant>,
    /// Counts the sets stored, so a waiter can tell that another request refreshed meanwhile.
    generation: u64,
}

struct Key {
    kid: Option<String>,
    kind: KeyKind,
    /// The key's own `alg`, when its JWK names one.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
}

#[derive(Default)]
struct FetchState {
    jwks_url: Option<String>,
    /// When a token's unknown `kid` last caused a fetch.
    last_unknown_kid_fetch: Option<Instant>,
    /// When a fetch last failed, and how: an issuer that is down is asked again only after
    /// `jwks_retry_after_failure_secs`, not by every request.
    last_failure: Option<(Instant, Error)>,
}

#[derive(Clone, Copy)]
enum Why {
    /// No keys yet, or keys older than `jwks_max_age_secs`.
    Stale,
    /// A token names a key that the set of this generation does not hold.
    UnknownKey(u64),
}

#[derive(Deserialize)]
struct Metadata {
    issuer: Option<String>,
    jwks_uri: Option<String>,
}

#[derive(Deserialize)]
struct RawKeySet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    scope: Option<Scope>,
    /// A list of scopes, as some identity providers send it instead of `scope`.
    #[serde(default)]
    scp: Option<Scope>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Scope {
    Text(String),
    List(Vec<String>),
}

impl Scope {
    fn permissions(&self) -> Permissions {
        match self {
            Scope::Text(text) => Permissions::from_scope_string(text),
            Scope::List(list) => Permissions::from_scopes(list.iter().map(String::as_str)),
        }
    }
}

impl JwtVerifier {
    /// A verifier for `settings`; no request is made until the first token.
    pub fn new(settings: &JwtSettings) -> Result<JwtVerifier> {
        let issuer = settings
            .issuer
            .clone()
            .ok_or(Error::NotConfigured("auth.jwt.issuer is not set".into()))?;
        check_secure(issuer.url(), "auth.jwt.issuer")?;
        if let Some(url) = &settings.jwks_url {
            check_secure(url.url(), "auth.jwt.jwks_url")?;
        }
        if settings.audiences.iter().all(|a| a.is_empty()) {
            return Err(Error::NotConfigured("auth.jwt.audiences is empty".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("trdscreen/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| Error::NotConfigured("cannot build the HTTP client".into()))?;
        Ok(JwtVerifier {
            settings: settings.clone(),
            issuer,
            http,
            keys: RwLock::new(KeySet::default()),
            fetch: Mutex::new(FetchState {
                jwks_url: settings.jwks_url.as_ref().map(|u| u.as_str().to_owned()),
                last_unknown_kid_fetch: None,
                last_failure: None,
            }),
            fetches: AtomicU64::new(0),
        })
    }

    /// How many times the issuer's keys were fetched (successfully or not): for metrics and tests.
    pub fn jwks_fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The header and claims of a token once its signature, `iss`, `aud`, `exp` and `nbf` are
    /// verified (the other claims are the caller's to check).
    pub async fn verified<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
    ) -> Result<(Header, T)> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Error::Unauthenticated(
                "the access token is too long".into(),
            ));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            Error::Unauthenticated(
                "the access token is not a JWT signed with an accepted algorithm".into(),
            )
        })?;
        if !ACCEPTED_ALGORITHMS.contains(&header.alg) {
            return Err(Error::Unauthenticated(
                "the access token is not a JWT signed with an accepted algorithm".into(),
            ));
        }
        self.check_type(&header)?;

        if self.stale() {
            self.refresh(Why::Stale).await?;
        }
        let key = match self.find(&header)? {
            Found::Key(key) => key,
            Found::Unknown(generation) => {
                self.refresh(Why::UnknownKey(generation)).await?;
                match self.find(&header)? {
                    Found::Key(key) => key,
                    Found::Unknown(_) => {
                        return Err(Error::Unauthenticated(
                            "the access token's signing key is not among the issuer's keys".into(),
                        ));
                    }
                }
            }
        };

        let mut validation = Validation::new(header.alg);
        validation.leeway = self.settings.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_audience(&self.settings.audiences);
        let claims = jsonwebtoken::decode::<T>(token, &key, &validation)
            .map_err(|e| refusal(e.kind()))?
            .claims;
        Ok((header, claims))
    }

    /// The caller a bearer access token names, once the token is verified.
    pub async fn verify(&self, token: &str) -> Result<Caller> {
        let (_, claims) = self.verified::<Claims>(token).await?;
        let id = claims
            .client_id
            .or(claims.sub)
            .ok_or(Error::Unauthenticated(
                "the access token names no client_id or sub".into(),
            ))?;
        if id.is_empty() || id.len() > 255 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Unauthenticated(
                "the access token's client_id or sub is not 1 to 255 printable characters".into(),
            ));
        }
        let mut permissions = Permissions::NONE;
        for scope in [&claims.scope, &claims.scp].into_iter().flatten() {
            for p in scope.permissions().iter() {
                permissions = permissions.with(p);
            }
        }
        Ok(Caller {
            id,
            issuer: self.issuer.as_str().to_owned(),
            permissions,
        })
    }

    fn check_type(&self, header: &Header) -> Result<()> {
        let typ = header.typ.as_deref().map(|t| t.to_ascii_lowercase());
        let accepted = match typ.as_deref() {
            Some("at+jwt" | "application/at+jwt") => true,
            Some("jwt") | None => self.settings.accept_jwt_typ,
            Some(_) => false,
        };
        if accepted {
            Ok(())
        } else {
            Err(Error::Unauthenticated(
                "the token is not an access token (typ at+jwt)".into(),
            ))
        }
    }

    fn has_keys(&self) -> bool {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .fetched
            .is_some()
    }

    fn stale(&self) -> bool {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        match keys.fetched {
            None => true,
            Some(at) => at.elapsed() > self.settings.jwks_max_age,
        }
    }

    fn find(&self, header: &Header) -> Result<Found> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let fits =
            |k: &&Key| k.kind == kind_for(header.alg) && k.alg.is_none_or(|alg| alg == header.alg);
        match &header.kid {
            Some(kid) => Ok(
                match keys
                    .keys
                    .iter()
                    .filter(fits)
                    .find(|k| k.kid.as_deref() == Some(kid))
                {
                    Some(k) => Found::Key(k.key.clone()),
                    None => Found::Unknown(keys.generation),
                },
            ),
            None => {
                let mut candidates = keys.keys.iter().filter(fits);
                match (candidates.next(), candidates.next()) {
                    (Some(k), None) => Ok(Found::Key(k.key.clone())),
                    (None, _) => Ok(Found::Unknown(keys.generation)),
                    (Some(_), Some(_)) => Err(Error::Unauthenticated(
                        "the access token names no key (kid) and the issuer has several".into(),
                    )),
                }
            }
        }
    }

    /// Fetches the keys again, once for all the requests waiting (one fetch at a time), and for
    /// an unknown key at most once per `jwks_refresh_min_interval_secs`.
    async fn refresh(&self, why: Why) -> Result<()> {
        let mut state = self.fetch.lock().await;
        let now = Instant::now();
        match why {
            Why::Stale => {
                if !self.stale() {
                    return Ok(()); // another request fetched them while this one waited
                }
                let retry = self.settings.jwks_retry_after_failure;
                if let Some((at, error)) = &state.last_failure
                    && now.duration_since(*at) < retry
                {
                    // Failed a moment ago: the cached keys (if any) go on, else the same error.
                    return if self.has_keys() {
                        Ok(())
                    } else {
                        Err(error.clone())
                    };
                }
            }
            Why::UnknownKey(generation) => {
                let current = self
                    .keys
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .generation;
                if current != generation {
                    return Ok(()); // fetched meanwhile: look again
                }
                let interval = self.settings.jwks_refresh_min_interval;
                if state
                    .last_unknown_kid_fetch
                    .is_some_and(|at| now.duration_since(at) < interval)
                {
                    return Ok(()); // fetched too recently: the key stays unknown
                }
                state.last_unknown_kid_fetch = Some(now);
            }
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let fetched = async {
            let url = match &state.jwks_url {
                Some(url) => url.clone(),
                None => {
                    let url = self.discover().await?;
                    state.jwks_url = Some(url.clone());
                    url
                }
            };
            self.fetch_keys(&url).await
        }
        .await;
        state.last_failure = fetched.as_ref().err().map(|e| (Instant::now(), e.clone()));
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        match fetched {
            Ok(new) => {
                keys.keys = new;
                keys.fetched = Some(Instant::now());
                keys.generation += 1;
                Ok(())
            }
            Err(e) if keys.fetched.is_some() => {
                // Keep verifying with the keys we have; an unknown key stays unknown.
                tracing::warn!(error = %e, "the identity provider's keys could not be fetched again; the cached keys are kept");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn discover(&self) -> Result<String> {
        let issuer = self.issuer.as_str().trim_end_matches('/');
        let mut metadata = None;
        for path in [
            "/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server",
        ] {
            match self.get(&format!("{issuer}{path}"), "metadata").await? {
                Some(body) => {
                    metadata = Some(body);
                    break;
                }
                None => continue, // 404: try RFC 8414's place
            }
        }
        let body = metadata.ok_or(Error::Unavailable(
            "the identity provider publishes no metadata; set auth.jwt.jwks_url".into(),
        ))?;
        let metadata: Metadata = serde_json::from_slice(&body).map_err(|_| {
            Error::BadGateway("the identity provider's metadata is not JSON".into())
        })?;
        if metadata.issuer.as_deref() != Some(self.issuer.as_str()) {
            return Err(Error::BadGateway(
                "the identity provider's metadata names another issuer than auth.jwt.issuer".into(),
            ));
        }
        let url = metadata.jwks_uri.ok_or(Error::BadGateway(
            "the identity provider's metadata names no jwks_uri".into(),
        ))?;
        check_url(&url, "the metadata's jwks_uri").map_err(|_| {
            Error::BadGateway(
                "the identity provider's jwks_uri is not https (or http on loopback)".into(),
            )
        })?;
        Ok(url)
    }

    async fn fetch_keys(&self, url: &str) -> Result<Vec<Key>> {
        let body = self.get(url, "JWKS").await?.ok_or(Error::Unavailable(
            "the identity provider's JWKS answered 404".into(),
        ))?;
        let set: RawKeySet = serde_json::from_slice(&body).map_err(|_| {
            Error::BadGateway("the identity provider's JWKS is not a JWK Set".into())
        })?;
        let keys: Vec<Key> = set
            .keys
            .into_iter()
            .take(MAX_KEYS)
            .filter_map(usable_key)
            .collect();
        if keys.is_empty() {
            return Err(Error::BadGateway(
                "the identity provider's JWKS holds no RSA or EC signing key".into(),
            ));
        }
        Ok(keys)
    }

    /// GETs a JSON document within the size limit; `None` on 404.
    async fn get(&self, url: &str, what: &'static str) -> Result<Option<bytes::Bytes>> {
        let response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    Error::Timeout(summary!(
                        "the identity provider's {} did not answer in time",
                        what
                    ))
                } else {
                    Error::Unavailable(summary!(
                        "the identity provider's {} cannot be reached",
                        what
                    ))
                }
            })?;
        let status = response.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(Error::Unavailable(summary!(
                "the identity provider's {} answered {}",
                what,
                status
            )));
        }
        let limit = usize::try_from(self.settings.max_document_bytes).unwrap_or(usize::MAX);
        body::read_bounded(response, limit)
            .await
            .map(Some)
            .map_err(|e| match e {
                BodyError::TooLarge { limit } => Error::BadGateway(summary!(
                    "the identity provider's {} is larger than {} bytes (auth.jwt.max_document_bytes)",
                    what,
                    limit
                )),
                BodyError::Transport(_) => Error::Unavailable(summary!(
                    "the identity provider's {} was cut off",
                    what
                )),
            })
    }
}

enum Found {
    Key(DecodingKey),
    /// Not in the set of this generation.
    Unknown(u64),
}

fn kind_for(alg: Algorithm) -> KeyKind {
    match alg {
        Algorithm::ES256 => KeyKind::P256,
        Algorithm::ES384 => KeyKind::P384,
        _ => KeyKind::Rsa,
    }
}

/// A key of the set that can verify an accepted algorithm; `None` for any other (encryption
/// keys, HMAC secrets, other curves, short RSA moduli, what does not parse).
fn usable_key(value: serde_json::Value) -> Option<Key> {
    let jwk: Jwk = serde_json::from_value(value).ok()?;
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return None;
    }
    if jwk
        .common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return None;
    }
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let modulus_bytes = rsa.n.trim_end_matches('=').len() * 6 / 8;
            if modulus_bytes < MIN_RSA_MODULUS_BYTES {
                return None;
            }
            KeyKind::Rsa
        }
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => KeyKind::P256,
            EllipticCurve::P384 => KeyKind::P384,
            _ => return None,
        },
        _ => return None,
    };
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(named) => {
            let alg: Algorithm = named.to_string().parse().ok()?;
            if !ACCEPTED_ALGORITHMS.contains(&alg) || kind_for(alg) != kind {
                return None;
            }
            Some(alg)
        }
    };
    Some(Key {
        kid: jwk.common.key_id.clone(),
        kind,
        alg,
        key: DecodingKey::from_jwk(&jwk).ok()?,
    })
}

/// The refusal for a token that failed validation, in fixed words.
fn refusal(kind: &ErrorKind) -> Error {
    Error::Unauthenticated(match kind {
        ErrorKind::InvalidSignature => "the access token's signature does not verify".into(),
        ErrorKind::ExpiredSignature => "the access token has expired".into(),
        ErrorKind::ImmatureSignature => "the access token is not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "the access token is from another issuer".into(),
        ErrorKind::InvalidAudience => "the access token is for another audience".into(),
        ErrorKind::MissingRequiredClaim(_) => "the access token lacks exp, iss or aud".into(),
        ErrorKind::InvalidAlgorithm => "the access token's algorithm does not fit its key".into(),
        _ => "the access token is not a valid JWT".into(),
    })
}

/// An issuer or JWKS URL: `https`, or `http` on a loopback address.
fn check_url(url: &str, name: &'static str) -> Result<()> {
    let parsed = url::Url::parse(url)
        .map_err(|_| Error::NotConfigured(summary!("{} is not a URL", name)))?;
    check_secure(&parsed, name)
}

/// [`check_url`] of a URL already parsed.
fn check_secure(parsed: &url::Url, name: &'static str) -> Result<()> {
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(Error::NotConfigured(summary!(
            "{} must be https (http only on a loopback address)",
            name
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_header_gives_its_token_and_anything_else_is_unauthenticated() {
        assert_eq!(
            bearer_token(Some("Bearer abc.def.ghi")).unwrap(),
            "abc.def.ghi"
        );
        assert_eq!(bearer_token(Some("bearer  abc")).unwrap(), "abc");
        for bad in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer  "),
            Some("Basic dXNlcjpwYXNz"),
        ] {
            assert!(
                matches!(bearer_token(bad), Err(Error::Unauthenticated(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn issuer_urls_must_be_https_or_loopback_http() {
        assert!(check_url("https://idp.example/realms/h", "x").is_ok());
        assert!(check_url("http://127.0.0.1:8080", "x").is_ok());
        assert!(check_url("http://[::1]:8080", "x").is_ok());
        assert!(check_url("http://localhost:8080", "x").is_ok());
        assert!(check_url("http://idp.example", "x").is_err());
        assert!(check_url("http://10.0.0.1", "x").is_err());
        assert!(check_url("file:///etc/keys", "x").is_err());
        assert!(check_url("not a url", "x").is_err());
    }

    #[test]
    fn a_verifier_needs_an_issuer_and_an_audience() {
        let mut settings = JwtSettings {
            issuer: Some("https://idp.example".parse().unwrap()),
            ..JwtSettings::default()
        };
        assert!(matches!(
            JwtVerifier::new(&settings),
            Err(Error::NotConfigured(_))
        ));
        settings.audiences = vec!["urn:trdscreen".into()];
        assert!(JwtVerifier::new(&settings).is_ok());
        settings.issuer = Some("http://idp.example".parse().unwrap());
        assert!(matches!(
            JwtVerifier::new(&settings),
            Err(Error::NotConfigured(_))
        ));
    }

    #[test]
    fn only_signing_keys_of_the_accepted_kinds_are_kept_from_a_key_set() {
        // A P-256 public key (from RFC 7517 appendix A.1) and variants of it.
        let ec = serde_json::json!({"kty": "EC", "crv": "P-256",
            "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
            "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM", "kid": "ec"});
        assert!(usable_key(ec.clone()).is_some());
        let mut enc = ec.clone();
        enc["use"] = "enc".into();
        assert!(usable_key(enc).is_none(), "an encryption key");
        let mut wrong_alg = ec.clone();
        wrong_alg["alg"] = "ES384".into();
        assert!(
            usable_key(wrong_alg).is_none(),
            "a P-256 key declared for ES384"
        );
        let mut hmac_alg = ec.clone();
        hmac_alg["alg"] = "HS256".into();
        assert!(usable_key(hmac_alg).is_none(), "a key declared for HMAC");
        let oct = serde_json::json!({"kty": "oct", "k": "c2VjcmV0", "kid": "s"});
        assert!(usable_key(oct).is_none(), "an HMAC secret");
        // Public moduli of RSA keys made with openssl for this test.
        let rsa_2048 = serde_json::json!({"kty": "RSA", "e": "AQAB", "kid": "r", "n": "7FMaL778DlIN4pIk5PZ2218gdU_928nfAoPRRpQNdkZxfbUUfhplejWQNvhPDQ02KbfZstg_ASsEiTMxXq9-Vwpr8tdRfGzE0NTmeBlc8mIxPk37TYQqwZ8jKGRczbNTfaLkV1-V8_9FhaeXepRvVBDXTbLgZxBD33dVqmC4wjYqMX9QOH_f4Rcgybo6-fMg8r6P8ChRJm9Nlu-TV40dct2PQay8fin05i-ja6d2x3i5qCNhWaEBWFzxYpdrKurmEITYhvTlndOdOHnegK4nyKa3BG5TKNNEhP5jOS4Nuy0Rgv0LunMHXdvd6ihJHlehbd1h_qhXYilsSzBIB0Jp4w"});
        assert!(usable_key(rsa_2048).is_some(), "2048 bits is enough");
        let rsa_1024 = serde_json::json!({"kty": "RSA", "e": "AQAB", "kid": "r", "n": "uIp0VyPkIikPOT1Kt2Vv0WMXSpOb1WR5Nu2Ke52P1XtF8eG1IDS_sWAtqV9xYdUozCE9PfCmq3qhlkmQ38YmBKGUspTVKqjcY2iu8Vuscasc-HGX9JA5BzcuDjMHtBnIcrGCE6XzC3mNs5ZuWOpjQP3Ln9YB7gC1G1mFaxY9Xz0"});
        assert!(usable_key(rsa_1024).is_none(), "a 1024-bit modulus");
    }
}
