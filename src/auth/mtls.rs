//! Callers authenticated by a client certificate (mutual TLS, issue 17). The TLS layer verifies
//! the chain against the CA bundle in `grpc.client_ca_file`, with the validity dates and the
//! `clientAuth` extended key usage (rustls' WebPKI client verifier, set up in
//! `grpc::tls`): a connection without such a certificate never completes
//! its handshake. With `callers.authentication = "mtls"` this module then names the caller the
//! verified certificate identifies and the permissions the settings give that identity.
//!
//! The identity is the certificate's first URI subject alternative name (a SPIFFE id such as
//! `spiffe://hospital.example/ns/ehr/sa/orders`), else its first DNS name. The subject's common
//! name is never used (RFC 6125 deprecates it). Permissions come from `[callers.mtls.clients]`:
//!
//! ```toml
//! [grpc]
//! tls_cert_file = "/etc/trdscreen/tls/tls.crt"
//! tls_key_file = "/etc/trdscreen/tls/tls.key"
//! client_ca_file = "/etc/trdscreen/client-ca/ca.crt"
//!
//! [callers]
//! authentication = "mtls"
//!
//! [callers.mtls.clients]
//! "spiffe://hospital.example/ns/ehr/sa/orders" = ["screening.read", "screening.write"]
//! ```
//!
//! An identity the table does not name holds no permission (every method is then
//! `PERMISSION_DENIED`). Revocation lists are not read: certificates are expected to be short-lived
//! (as SPIFFE's are), and removing an identity from the table withdraws its permissions.

use super::permission::{Caller, Permissions};
use crate::error::{Error, Result};
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The issuer recorded for certificate callers in the audit trail.
pub const MTLS_ISSUER: &str = "urn:trdscreen:mtls";

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MtlsSettings {
    /// Identity (URI or DNS SAN) to the scopes it is granted.
    pub clients: BTreeMap<String, Vec<String>>,
}

/// Checks a client CA bundle (PEM) before the TLS layer takes it: at least one certificate, and
/// every one readable as a trust anchor (the TLS layer would skip an unreadable one silently).
/// Returns how many there are.
pub fn check_client_ca_bundle(pem: &[u8]) -> Result<usize> {
    use rustls_pki_types::pem::PemObject;
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|_| {
            Error::NotConfigured("grpc.client_ca_file is not a PEM certificate bundle".into())
        })?;
        webpki::anchor_from_trusted_cert(&cert).map_err(|_| {
            Error::NotConfigured(crate::summary!(
                "certificate {} of grpc.client_ca_file cannot be read as a CA",
                count + 1
            ))
        })?;
        count += 1;
    }
    if count == 0 {
        return Err(Error::NotConfigured(
            "grpc.client_ca_file holds no PEM certificate".into(),
        ));
    }
    Ok(count)
}

/// The identity of a verified client certificate (the leaf, first of the chain).
pub fn certificate_identity(chain: &[CertificateDer<'_>]) -> Result<String> {
    let leaf = chain.first().ok_or(Error::Unauthenticated(
        "no client certificate was presented".into(),
    ))?;
    let cert = webpki::EndEntityCert::try_from(leaf)
        .map_err(|_| Error::Unauthenticated("the client certificate cannot be read".into()))?;
    let name = cert
        .valid_uri_names()
        .next()
        .or_else(|| cert.valid_dns_names().next())
        .ok_or(Error::Unauthenticated(
            "the client certificate names no URI or DNS subject alternative name".into(),
        ))?;
    if name.is_empty() || name.len() > 255 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Unauthenticated(
            "the client certificate's name is not 1 to 255 printable characters".into(),
        ));
    }
    Ok(name.to_owned())
}

/// The caller a verified client certificate names, with the permissions the settings give it.
pub fn certificate_caller(chain: &[CertificateDer<'_>], settings: &MtlsSettings) -> Result<Caller> {
    let id = certificate_identity(chain)?;
    let permissions = settings
        .clients
        .get(&id)
        .map(|scopes| Permissions::from_scopes(scopes.iter().map(String::as_str)))
        .unwrap_or(Permissions::NONE);
    Ok(Caller {
        id,
        issuer: MTLS_ISSUER.to_owned(),
        permissions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_ca_bundle_without_a_readable_certificate_is_refused() {
        for bundle in [
            &b""[..],
            b"not a bundle",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            let err = check_client_ca_bundle(bundle).unwrap_err().to_string();
            assert!(err.contains("grpc.client_ca_file"), "{err}");
        }
    }

    #[test]
    fn no_certificate_or_an_unreadable_one_is_unauthenticated() {
        let err = certificate_caller(&[], &MtlsSettings::default()).unwrap_err();
        assert!(matches!(err, Error::Unauthenticated(_)), "{err}");
        let junk = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        let err = certificate_caller(&[junk], &MtlsSettings::default()).unwrap_err();
        assert!(matches!(err, Error::Unauthenticated(_)), "{err}");
    }
}
