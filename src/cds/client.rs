//! The CDS client's JWT (CDS Hooks 2.0, "Trusting CDS Clients"): every request carries
//! `Authorization: Bearer <JWT>` signed by the EHR. It is accepted only when
//! - its `iss` is a client named in `[cds.clients]`, and its signature verifies with a key of that
//!   client's key set (`jwks_url`, fetched and cached as the callers' keys are: [`JwtVerifier`]);
//!   a `jku` header, when present, must be that same URL: keys are never fetched from a URL the
//!   token names;
//! - RS256/RS384/ES256/ES384 only (never `none`, never HMAC);
//! - `aud` is the endpoint called (`{cds.service_url}/{id}`, CDS Hooks 2.0) or the service's URL
//!   (`cds.service_url`, as some clients send it), `exp` not past and at most five minutes
//!   after `iat`, `iat` not in the future (each within `cds.leeway_secs`);
//! - its `jti` has not been seen from that client before the token expires.
//!
//! Every refusal is the same 401 with no detail at the edge; the reason is only for tests.

use crate::auth::{Caller, JwtSettings, JwtVerifier, bearer_token};
use crate::error::{Error, Result};
use crate::settings::CdsSettings;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;

/// Longest lifetime a client token may claim (`exp - iat`), as CDS Hooks asks.
const MAX_LIFETIME_SECS: u64 = 300;
/// `jti`s remembered at most for one client; a client sending more live tokens than this is
/// refused until some expire (10,000 tokens in five minutes is 33 hooks a second). Each client has
/// its own: one that sends too many never locks the others out.
const MAX_REMEMBERED: usize = 10_000;

pub struct Clients {
    by_issuer: HashMap<String, Trusted>,
    service_url: String,
    leeway: u64,
    seen: Mutex<Seen>,
}

/// The `jti`s each client (by issuer) has used, with when their tokens expire.
#[derive(Default)]
struct Seen(HashMap<String, HashMap<String, u64>>);

impl Seen {
    /// Remembers `jti` of `issuer` until `exp` (plus `leeway`); a second use is refused.
    fn first_use(
        &mut self,
        issuer: &str,
        jti: &str,
        exp: u64,
        now: u64,
        leeway: u64,
    ) -> Result<()> {
        let seen = self.0.entry(issuer.to_owned()).or_default();
        if seen.contains_key(jti) {
            return Err(refused("the token's jti was used before"));
        }
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, exp| *exp + leeway >= now);
            if seen.len() >= MAX_REMEMBERED {
                return Err(refused("too many live tokens to remember"));
            }
        }
        seen.insert(jti.to_owned(), exp);
        Ok(())
    }
}

struct Trusted {
    verifier: JwtVerifier,
    jwks_url: String,
}

#[derive(Deserialize)]
struct Unverified {
    iss: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn names(&self, url: &str) -> bool {
        match self {
            Audience::One(a) => a == url,
            Audience::Many(list) => list.iter().any(|a| a == url),
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    aud: Audience,
    sub: Option<String>,
    jti: String,
    iat: u64,
    exp: u64,
}

impl Clients {
    pub fn new(settings: &CdsSettings) -> Result<Clients> {
        let service_url = settings
            .service_url
            .as_ref()
            .ok_or(Error::NotConfigured("cds.service_url is not set".into()))?
            .as_str()
            .trim_end_matches('/')
            .to_owned();
        let mut by_issuer = HashMap::new();
        for (issuer, client) in &settings.clients {
            let base = service_url.as_str();
            let mut audiences = vec![base.to_owned()];
            for service in super::discovery::Service::ALL {
                audiences.push(format!("{base}/{}", service.id()));
            }
            let jwt = JwtSettings {
                issuer: Some(issuer.parse().map_err(|_| {
                    Error::NotConfigured("a [cds.clients] issuer is not an http(s) URL".into())
                })?),
                audiences,
                jwks_url: Some(client.jwks_url.clone()),
                leeway: std::time::Duration::from_secs(settings.leeway_secs),
                accept_jwt_typ: true,
                ..JwtSettings::default()
            };
            by_issuer.insert(
                issuer.clone(),
                Trusted {
                    verifier: JwtVerifier::new(&jwt)?,
                    jwks_url: client.jwks_url.as_str().to_owned(),
                },
            );
        }
        Ok(Clients {
            by_issuer,
            service_url,
            leeway: settings.leeway_secs,
            seen: Mutex::new(Seen::default()),
        })
    }

    /// The client an `Authorization` header value proves for a call of `service` (`None`: the
    /// service URL itself), at `now` (Unix seconds).
    pub async fn verify(
        &self,
        authorization: Option<&str>,
        service: Option<&str>,
        now: u64,
    ) -> Result<Caller> {
        let token = bearer_token(authorization)?;
        let issuer = jsonwebtoken::dangerous::insecure_decode_claims::<Unverified>(token)
            .ok()
            .and_then(|u| u.iss)
            .ok_or(refused("the token names no issuer"))?;
        let trusted = self
            .by_issuer
            .get(&issuer)
            .ok_or(refused("the token's issuer is not a trusted CDS client"))?;
        let (header, claims) = trusted.verifier.verified::<Claims>(token).await?;
        let endpoint = service.map(|id| format!("{}/{id}", self.service_url));
        if !claims.aud.names(&self.service_url) && !endpoint.is_some_and(|e| claims.aud.names(&e)) {
            return Err(refused("the token is not for this endpoint"));
        }
        if header
            .jku
            .as_deref()
            .is_some_and(|jku| jku != trusted.jwks_url)
        {
            return Err(refused("the token's jku is not the client's key set"));
        }
        if claims.iat > now + self.leeway {
            return Err(refused("the token was issued in the future"));
        }
        if claims.exp.saturating_sub(claims.iat) > MAX_LIFETIME_SECS {
            return Err(refused("the token lives longer than five minutes"));
        }
        if claims.jti.is_empty() || claims.jti.len() > 255 {
            return Err(refused("the token's jti is not 1 to 255 characters"));
        }
        self.first_use(&issuer, &claims.jti, claims.exp, now)?;
        let id = claims.sub.unwrap_or_else(|| issuer.clone());
        if id.is_empty() || id.len() > 255 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(refused(
                "the token's sub is not 1 to 255 printable characters",
            ));
        }
        Ok(Caller {
            id,
            issuer,
            permissions: crate::auth::Permissions::NONE,
        })
    }

    /// Remembers `jti` until `exp`; a second use is refused.
    fn first_use(&self, issuer: &str, jti: &str, exp: u64, now: u64) -> Result<()> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first_use(issuer, jti, exp, now, self.leeway)
    }
}

fn refused(why: &'static str) -> Error {
    Error::Unauthenticated(why.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_used_once_and_one_client_full_of_live_tokens_never_locks_out_another() {
        let mut seen = Seen::default();
        let (now, exp) = (1_000, 1_300);
        seen.first_use("ehr-a", "j1", exp, now, 60).unwrap();
        assert!(
            seen.first_use("ehr-a", "j1", exp, now, 60).is_err(),
            "replayed"
        );
        assert!(
            seen.first_use("ehr-b", "j1", exp, now, 60).is_ok(),
            "another client's"
        );
        for n in 1..MAX_REMEMBERED {
            seen.first_use("ehr-a", &format!("k{n}"), exp, now, 60)
                .unwrap();
        }
        assert!(seen.first_use("ehr-a", "one-more", exp, now, 60).is_err());
        assert!(
            seen.first_use("ehr-b", "still-served", exp, now, 60)
                .is_ok()
        );
        // Once the first client's tokens have expired, it is served again.
        assert!(
            seen.first_use("ehr-a", "later", exp + 400, exp + 61, 60)
                .is_ok()
        );
    }
}
