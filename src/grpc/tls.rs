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
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        use tokio_rustls::rustls::{Error as Tls, InconsistentKeys};
        not_configured(match e {
            Tls::InconsistentKeys(InconsistentKeys::KeyMismatch) => {
                "grpc.tls_key_file is not the key of grpc.tls_cert_file's certificate"
            }
            _ => "grpc.tls_key_file holds a key of a type or size TLS cannot use",
        })
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::settings::GrpcSettings;
    use std::path::PathBuf;

    /// A fresh directory of this call's own (tests run in parallel).
    pub fn scratch(test: &str) -> PathBuf {
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "trdscreen-grpc-tls-{test}-{}-{call}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A test CA and a server certificate for `localhost` signed by it, made with openssl in
    /// `dir`: (CA certificate, server certificate, server key).
    pub fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let openssl = |args: &str| {
            let out = std::process::Command::new("openssl")
                .current_dir(dir)
                .args(args.split(' '))
                .output()
                .expect("openssl must be installed to make the test certificates");
            assert!(out.status.success(), "openssl {args} failed");
        };
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
        openssl(&format!(
            "req -x509 {ec} -days 2 -subj /CN=test-CA -keyout ca.key -out ca.crt"
        ));
        openssl(&format!(
            "req {ec} -subj /CN=localhost -keyout tls.key -out tls.csr"
        ));
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            "x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
             -extfile ext.cnf -out tls.crt",
        );
        (dir.join("ca.crt"), dir.join("tls.crt"), dir.join("tls.key"))
    }

    /// The gRPC settings of a TLS port with this certificate and key.
    pub fn settings(cert: PathBuf, key: PathBuf) -> GrpcSettings {
        GrpcSettings {
            tls_cert_file: Some(cert),
            tls_key_file: Some(key),
            ..GrpcSettings::default()
        }
    }

    #[test]
    fn a_port_without_certificate_and_key_is_plaintext() {
        assert!(server_config(&GrpcSettings::default()).unwrap().is_none());
    }

    #[test]
    fn a_certificate_and_its_key_make_a_config_offering_http2_only() {
        let dir = scratch("good");
        let (_, cert, key) = certificates(&dir);
        let config = server_config(&settings(cert, key)).unwrap().unwrap();
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_that_are_not_a_certificate_and_its_key_are_refused_naming_the_setting_not_the_content()
    {
        let dir = scratch("bad");
        let (ca, cert, key) = certificates(&dir);
        let secret = dir.join("not-pem.txt");
        std::fs::write(&secret, "SECRET-CONTENT").unwrap();
        let refused = |cert: &PathBuf, key: &PathBuf| match server_config(&settings(
            cert.clone(),
            key.clone(),
        )) {
            Ok(_) => panic!("refused"),
            Err(e) => e.to_string(),
        };
        let no_cert = refused(&secret, &key);
        assert!(no_cert.contains("grpc.tls_cert_file"), "{no_cert}");
        let no_key = refused(&cert, &secret);
        assert!(no_key.contains("grpc.tls_key_file"), "{no_key}");
        // The CA's certificate with the server's key: a pair that does not belong together.
        let mismatched = refused(&ca, &key);
        assert!(mismatched.contains("is not the key of"), "{mismatched}");
        let missing = refused(&dir.join("absent.crt"), &key);
        assert!(
            missing.contains("cannot read grpc.tls_cert_file"),
            "{missing}"
        );
        for message in [no_cert, no_key, mismatched, missing] {
            assert!(!message.contains("SECRET"), "{message}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
