//! Who may call: every method that serves patient data asks [`Gate::admit`] first, before any
//! FHIR request. With `callers.authentication = "jwt"` the caller's bearer token is verified; with
//! `"mtls"` the caller is the identity of the client certificate the TLS handshake verified
//! (`Peer::certificates`); either way the permissions the call needs are required of what the
//! caller is granted, and the caller's rate limit is taken. With `"none"` every caller is let in
//! (health and reflection never ask).

use super::incoming::Peer;
use super::status;
use crate::audit::{self, Requester};
use crate::auth::{
    Caller, JwtVerifier, MtlsSettings, Permission, RateLimiter, bearer_token, certificate_caller,
};
use crate::error::{Error, Result};
use crate::settings::{CallerAuthentication, CallerSettings};
use tonic::{Request, Status};

pub struct Gate {
    verifier: Option<Verifier>,
    limiter: RateLimiter,
}

/// How a caller is told apart.
enum Verifier {
    Jwt(Box<JwtVerifier>),
    Certificate(MtlsSettings),
}

impl Gate {
    pub fn new(settings: &CallerSettings) -> Result<Gate> {
        let verifier = match settings.authentication {
            CallerAuthentication::None => None,
            CallerAuthentication::Jwt => {
                Some(Verifier::Jwt(Box::new(JwtVerifier::new(&settings.jwt)?)))
            }
            CallerAuthentication::Mtls => Some(Verifier::Certificate(settings.mtls.clone())),
        };
        Ok(Gate {
            verifier,
            limiter: RateLimiter::new(&settings.rate)?,
        })
    }

    /// Whether callers are authenticated at all (a start-up warning says so when not).
    pub fn authenticates(&self) -> bool {
        self.verifier.is_some()
    }

    /// The caller, when callers are authenticated, once it has every permission in `needs` (the
    /// first is the one its rate limit is counted against). A missing or bad token, or no
    /// verified client certificate, is `UNAUTHENTICATED`, a missing permission
    /// `PERMISSION_DENIED`, a call over the limit
    /// `RESOURCE_EXHAUSTED` with `retry-after` (whole seconds) in the status metadata.
    pub async fn admit<T>(
        &self,
        request: &Request<T>,
        needs: &[Permission],
    ) -> std::result::Result<Option<Caller>, Status> {
        let Some(verifier) = &self.verifier else {
            return Ok(None);
        };
        let caller = self
            .caller(verifier, request, needs)
            .await
            .map_err(|e| status::status(&e))?;
        if let Some(first) = needs.first()
            && let Err(limited) = self.limiter.check(&caller.id, *first, 1)
        {
            let seconds = limited.retry_after.as_secs_f64().ceil().max(1.0) as u64;
            let mut refused = status::status(&Error::from(limited));
            if let Ok(value) = seconds.to_string().parse() {
                refused.metadata_mut().insert("retry-after", value);
            }
            return Err(refused);
        }
        Ok(Some(caller))
    }

    async fn caller<T>(
        &self,
        verifier: &Verifier,
        request: &Request<T>,
        needs: &[Permission],
    ) -> Result<Caller> {
        let caller = match verifier {
            Verifier::Jwt(verifier) => {
                let authorization = match request.metadata().get("authorization") {
                    Some(value) => Some(value.to_str().map_err(|_| {
                        Error::Unauthenticated(
                            "the authorization header is not a bearer token".into(),
                        )
                    })?),
                    None => None,
                };
                verifier.verify(bearer_token(authorization)?).await?
            }
            // The handshake already verified the chain; without TLS or a certificate there is none.
            Verifier::Certificate(settings) => {
                let chain = Peer::certificates(request).ok_or(Error::Unauthenticated(
                    "no verified client certificate came with the call".into(),
                ))?;
                certificate_caller(&chain, settings)?
            }
        };
        caller.require_all(needs)?;
        Ok(caller)
    }
}

/// Who asked, for the audit trail: the authenticated caller, or one named by its address only.
pub fn requester<T>(caller: Option<Caller>, request: &Request<T>) -> Requester {
    let address = Peer::address(request).map(|a| a.to_string());
    let request_id = audit::trail::request_id(
        request
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
    );
    match caller {
        Some(caller) => Requester {
            caller,
            address,
            request_id,
        },
        None => Requester::unauthenticated(address, request_id),
    }
}
