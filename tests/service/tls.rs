//! TLS on the gRPC port: with a certificate and key configured, a client that trusts the certificate
//! is served, and a plaintext client is not.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use trdscreen::proto::EvaluateBundleRequest;
use trdscreen::proto::trd_screening_client::TrdScreeningClient;
use trdscreen::service::Screener;
use trdscreen::settings::{Secrets, Settings};

/// A test CA and a certificate for `localhost` signed by it (rustls refuses a CA certificate used
/// as the server's own). Returns (CA certificate, server certificate, server key).
pub(crate) fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |name: &str| dir.join(name);
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl must be installed to make the test certificates");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=trdscreen test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "tls.key",
        "-out",
        "tls.csr",
    ]);
    std::fs::write(p("ext.cnf"), "subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "tls.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "tls.crt",
    ]);
    (p("ca.crt"), p("tls.crt"), p("tls.key"))
}

#[tokio::test]
async fn tls_port_serves_clients_that_trust_the_certificate_and_refuses_plaintext() {
    let dir = std::env::temp_dir().join(format!("trdscreen-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, cert, key) = certificates(&dir);
    let mut settings = Settings::default();
    settings.grpc.listen = "127.0.0.1:0".parse().unwrap();
    settings.grpc.tls_cert_file = Some(cert);
    settings.grpc.tls_key_file = Some(key);
    let screener = Arc::new(Screener::new(&settings, &Secrets::default()).unwrap());
    let bound = trdscreen::grpc::server::bind(&settings, screener)
        .await
        .unwrap();
    let port = bound.address.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bound.serve(async {
        let _ = stopped.await;
    }));

    let bundle = std::fs::read_to_string("tests/fixtures/typical-patient.json").unwrap();
    let request = || EvaluateBundleRequest {
        bundle_json: bundle.clone(),
        as_of: None,
    };
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(&ca).unwrap()))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("a client trusting the certificate connects");
    let response = TrdScreeningClient::new(channel)
        .evaluate_bundle(request())
        .await
        .expect("served over TLS");
    assert_eq!(
        response.into_inner().assessment.unwrap().patient_id,
        "typical-patient"
    );

    let plaintext = async {
        let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await?;
        TrdScreeningClient::new(channel)
            .evaluate_bundle(request())
            .await
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)
            .map(|_| ())
    };
    let result: Result<(), Box<dyn std::error::Error>> =
        tokio::time::timeout(std::time::Duration::from_secs(20), plaintext)
            .await
            .unwrap_or_else(|_| Err("no answer".into()));
    assert!(
        result.is_err(),
        "a plaintext call must not be served on the TLS port"
    );

    // A client that finishes the handshake and then sends nothing (no HTTP/2 preface) is closed
    // once the port's preface deadline has passed, rather than holding its connection for ever.
    let mut idle = idle_tls_client(&ca, port).await;
    let mut sent = Vec::new();
    tokio::time::timeout(
        trdscreen::grpc::PREFACE_TIMEOUT + std::time::Duration::from_secs(20),
        tokio::io::AsyncReadExt::read_to_end(&mut idle, &mut sent),
    )
    .await
    .expect("the server closes a connection that sends no preface")
    .ok();

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// A TLS connection to the port, its handshake done (the server's certificate verified against
/// `ca`, HTTP/2 offered), and nothing sent over it.
async fn idle_tls_client(
    ca: &Path,
    port: u16,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("the handshake completes")
}
