//! The gRPC port's TLS: the server's certificate and key, and with `grpc.client_ca_file` the CAs a
//! client certificate must chain to (mutual TLS). The handshake itself runs on each connection
//! ([`super::incoming`]), under the same deadline as the HTTP/2 preface that follows it: tonic's
//! own TLS would bound the handshake only, and a client that finished it and then sent nothing
//! would hold its connection for ever.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};

/// Largest TLS file read (a certificate chain, a key, a CA bundle): a system's whole CA bundle is
/// a few hundred kilobytes.
const TLS_FILE_CAP: u64 = crate::files::MIB;

/// The protocol offered in the handshake (ALPN): gRPC is HTTP/2 only.
const ALPN_H2: &[u8] = b"h2";

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The TLS configuration the settings describe, or `None` when the port is plaintext. Errors name
/// the setting and its file, never the file's content.
pub fn server_config(g: &crate::settings::GrpcSettings) -> Result<Option<Arc<ServerConfig>>> {
    let (Some(cert), Some(key)) = (&g.tls_cert_file, &g.tls_key_file) else {
        return Ok(None);
    };
    let chain = CertificateDer::pem_slice_iter(&read(cert, "grpc.tls_cert_file")?)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| not_configured("grpc.tls_cert_file is not a PEM certificate chain"))?;
    if chain.is_empty() {
        return Err(not_configured("grpc.tls_cert_file holds no PEM certificate").into());
    }
    let key = PrivateKeyDer::from_pem_slice(&read(key, "grpc.tls_key_file")?)
        .map_err(|_| not_configured("grpc.tls_key_file holds no PEM private key"))?;
    let builder = ServerConfig::builder();
    let builder = match &g.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(bundle) => {
            // Mutual TLS: a client without a certificate from one of these CAs, within its
            // validity dates and for client authentication, never completes the handshake.
            let pem = read(bundle, "grpc.client_ca_file")?;
            let authorities = crate::auth::mtls::check_client_ca_bundle(&pem)?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
                roots.add(cert).map_err(|_| {
                    not_configured("grpc.client_ca_file holds a CA that cannot be used")
                })?;
            }
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .map_err(|_| not_configured("grpc.client_ca_file gives no usable CA"))?;
            tracing::info!(
                authorities,
                "the gRPC port requires a client certificate (mutual TLS)"
            );
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|_| {
        not_configured("grpc.tls_key_file is not the key of grpc.tls_cert_file's certificate")
    })?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Some(Arc::new(config)))
}

fn not_configured(what: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

/// A file a setting names, or an error naming the setting and the file (never its content).
fn read(path: &Path, setting: &str) -> std::io::Result<Vec<u8>> {
    crate::files::read_bounded(path, TLS_FILE_CAP).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot read {setting} {}: {e}", path.display()),
        )
    })
}
