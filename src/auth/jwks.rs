//! The service's own public keys, published as a JWKS for the EHR (issue 17): the SMART Backend
//! Services client signs its assertions with a private key, and the EHR's authorization server
//! fetches the matching public key from a URL it was given. Two keys may be published at once,
//! the current one and the next, so the private key can be rotated without downtime: publish both,
//! wait until the EHR has fetched the set (its cache lifetime), switch the signer to the next key,
//! then drop the old one.
//!
//! Each key's `kid` is the configured one or, by default, its RFC 7638 thumbprint (SHA-256), which
//! the signer then puts in its assertions' header: both take it from [`key_id`]. Served at
//! `GET /.well-known/jwks.json` as `application/jwk-set+json` on the metrics port
//! (`telemetry.metrics_listen`), which serves no patient data, whenever `fhir.auth.mode = "smart"`
//! ([`smart_client_jwks`]).

use crate::error::{Error, Result};
use crate::settings::{AuthMode, AuthSettings, Secrets, SigningAlgorithm};
use crate::summary;
use axum::http::header;
use axum::response::IntoResponse;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};

/// The path the set is served at.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// One private key whose public half is published.
#[derive(Clone, Copy)]
pub struct PublishedKey<'a> {
    /// PEM private key (PKCS#8 or PKCS#1 for RSA, PKCS#8 or SEC1 for EC).
    pub pem: &'a [u8],
    /// RS384 or ES384 (what SMART Backend Services asks for), or RS256 / ES256.
    pub algorithm: Algorithm,
    /// The `kid`; default: the key's thumbprint.
    pub kid: Option<&'a str>,
}

/// The JOSE algorithm of a SMART signing algorithm setting.
pub const fn jose_algorithm(algorithm: SigningAlgorithm) -> Algorithm {
    match algorithm {
        SigningAlgorithm::RS384 => Algorithm::RS384,
        SigningAlgorithm::ES384 => Algorithm::ES384,
    }
}

/// The `kid` a key is published under and signs with: the configured one, else its RFC 7638
/// thumbprint.
pub fn key_id(key: &PublishedKey) -> Result<String> {
    public_jwk(key)?
        .common
        .key_id
        .ok_or_else(|| Error::NotConfigured("a published key has no kid".into()))
}

/// The JWKS of the SMART client's keys (current, then next when one is configured) when
/// `fhir.auth.mode = "smart"`; `None` otherwise.
pub fn smart_client_jwks(settings: &AuthSettings, secrets: &Secrets) -> Result<Option<String>> {
    if settings.mode != AuthMode::Smart {
        return Ok(None);
    }
    let algorithm = jose_algorithm(settings.algorithm);
    let current = secrets
        .private_key_pem
        .as_deref()
        .ok_or_else(|| Error::NotConfigured("no SMART private key was read".into()))?;
    let mut keys = vec![PublishedKey {
        pem: current,
        algorithm,
        kid: settings.key_id.as_deref(),
    }];
    if let Some(next) = secrets.next_private_key_pem.as_deref() {
        keys.push(PublishedKey {
            pem: next,
            algorithm,
            kid: settings.next_key_id.as_deref(),
        });
    }
    public_jwks(&keys).map(Some)
}

/// The public JWK of a private key, with its `kid`, `alg` and `use: sig`. Only public parameters
/// are in it.
pub fn public_jwk(key: &PublishedKey) -> Result<Jwk> {
    let encoding = match key.algorithm {
        Algorithm::RS256 | Algorithm::RS384 => EncodingKey::from_rsa_pem(key.pem),
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(key.pem),
        _ => {
            return Err(Error::NotConfigured(
                "a published key is RS256, RS384, ES256 or ES384".into(),
            ));
        }
    }
    .map_err(|_| {
        Error::NotConfigured("a published key is not a PEM key of its algorithm".into())
    })?;
    let mut jwk = Jwk::from_encoding_key(&encoding, key.algorithm)
        .map_err(|_| Error::NotConfigured("cannot derive a published key's public half".into()))?;
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_id = Some(match key.kid {
        Some(kid) => kid.to_owned(),
        None => jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| Error::NotConfigured("cannot compute a key's thumbprint".into()))?,
    });
    Ok(jwk)
}

/// The JSON text of the set of `keys` (current first, then next); their `kid`s must differ.
pub fn public_jwks(keys: &[PublishedKey]) -> Result<String> {
    let mut set = JwkSet { keys: Vec::new() };
    for key in keys {
        let jwk = public_jwk(key)?;
        if set
            .keys
            .iter()
            .any(|k| k.common.key_id == jwk.common.key_id)
        {
            return Err(Error::NotConfigured(summary!(
                "two published keys have the same kid ({} keys given)",
                keys.len()
            )));
        }
        set.keys.push(jwk);
    }
    serde_json::to_string(&set)
        .map_err(|_| Error::NotConfigured("cannot encode the published keys".into()))
}

/// A router serving `jwks` (from [`public_jwks`]) at [`JWKS_PATH`], for the service's
/// non-patient-data HTTP port; anything else is 404.
pub fn jwks_router(jwks: String) -> axum::Router {
    let jwks = bytes::Bytes::from(jwks);
    axum::Router::new().route(
        JWKS_PATH,
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move {
                (
                    [
                        (header::CONTENT_TYPE, "application/jwk-set+json"),
                        (header::CACHE_CONTROL, "max-age=300"),
                    ],
                    jwks,
                )
                    .into_response()
            }
        }),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A private key made with openssl (PKCS#8 PEM): `RSA` or `EC` (P-384).
    pub(crate) fn private_key(kind: &str) -> Vec<u8> {
        let options: &[&str] = match kind {
            "RSA" => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            _ => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
        };
        let out = std::process::Command::new("openssl")
            .arg("genpkey")
            .args(options)
            .output()
            .expect("openssl makes the test keys");
        assert!(out.status.success());
        out.stdout
    }

    #[test]
    fn a_key_is_published_under_its_configured_kid_or_its_thumbprint_with_public_parameters_only() {
        let rsa = private_key("RSA");
        let ec = private_key("EC");
        let keys = [
            PublishedKey {
                pem: &rsa,
                algorithm: Algorithm::RS384,
                kid: Some("2026-12"),
            },
            PublishedKey {
                pem: &ec,
                algorithm: Algorithm::ES384,
                kid: None,
            },
        ];
        let set: serde_json::Value = serde_json::from_str(&public_jwks(&keys).unwrap()).unwrap();
        let published = set["keys"].as_array().unwrap();
        assert_eq!(published[0]["kid"], "2026-12");
        assert_eq!(published[0]["alg"], "RS384");
        let thumbprint = public_jwk(&keys[1])
            .unwrap()
            .thumbprint(ThumbprintHash::SHA256)
            .unwrap();
        assert_eq!(published[1]["kid"], thumbprint.as_str());
        assert_eq!(key_id(&keys[1]).unwrap(), thumbprint);
        assert_eq!(published[1]["crv"], "P-384");
        for key in published {
            for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
                assert!(key.get(private).is_none(), "{private} in {key}");
            }
        }
        // The same key twice has the same kid: refused, as is a key of another algorithm.
        let twice = [keys[1], keys[1]];
        assert!(
            public_jwks(&twice)
                .unwrap_err()
                .to_string()
                .contains("same kid")
        );
        let mislabelled = PublishedKey {
            pem: &ec,
            algorithm: Algorithm::RS384,
            kid: None,
        };
        assert!(public_jwk(&mislabelled).is_err());
    }

    #[test]
    fn only_smart_auth_publishes_keys_and_the_next_key_follows_the_current() {
        let (current, next) = (private_key("RSA"), private_key("RSA"));
        let secrets = Secrets {
            private_key_pem: Some(current),
            next_private_key_pem: Some(next),
            ..Secrets::default()
        };
        let mut settings = AuthSettings::default();
        assert_eq!(smart_client_jwks(&settings, &secrets).unwrap(), None);
        settings.mode = AuthMode::Smart;
        settings.next_key_id = Some("next".into());
        let set: serde_json::Value =
            serde_json::from_str(&smart_client_jwks(&settings, &secrets).unwrap().unwrap())
                .unwrap();
        let kids: Vec<&str> = set["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids.len(), 2);
        assert_ne!(kids[0], "next");
        assert_eq!(kids[1], "next");
    }
}
