//! Mutual TLS on the gRPC port (issue 17): with `grpc.client_ca_file` and
//! `callers.authentication = "mtls"`, a caller is the identity of the client certificate the TLS
//! handshake verified, granted the scopes `[callers.mtls.clients]` lists for it. A certificate from
//! another CA, an expired one, and none at all are refused in the handshake (the client sees a
//! failed connection with the TLS alert, never a status from the service); a verified certificate
//! that names no URI or DNS identity is UNAUTHENTICATED; an identity without the method's permission
//! is PERMISSION_DENIED before any FHIR request. Certificates are made with openssl here, as tls.rs
//! makes the server's; the FHIR server is a stub holding one patient.

use crate::service::timestamp;
use crate::stub::Stub;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use trdscreen::proto::trd_screening_client::TrdScreeningClient;
use trdscreen::proto::{EvaluateBundleRequest, ScreenPatientRequest, WriteBackMode};
use trdscreen::service::Screener;
use trdscreen::settings::{CallerAuthentication, Secrets, Settings};

const PATIENT: &str = "met-two-failed-ssri-snri";
const ORDERS: &str = "spiffe://hospital.test/ns/ehr/sa/orders";
const REPORTING: &str = "spiffe://hospital.test/ns/ehr/sa/reporting";

fn openssl(dir: &Path, args: &[&str]) {
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
}

/// A CA (`{name}.crt`, `{name}.key`, P-256) able to sign with chosen validity dates (`openssl ca`).
fn authority(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=trdscreen test {name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
    std::fs::write(
        dir.join(format!("{name}.cnf")),
        format!(
            "[ca]\ndefault_ca = this\n[this]\ndatabase = {name}.index\nnew_certs_dir = .\n\
             serial = {name}.serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\n\
             [any]\ncommonName = supplied\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join(format!("{name}.index")), "").unwrap();
    std::fs::write(dir.join(format!("{name}.serial")), "01\n").unwrap();
}

/// A client certificate (`{name}.crt`, `{name}.key`) signed by the CA `ca`, for client
/// authentication, with `san` (e.g. `URI:spiffe://...`; none when empty), valid from `start` to
/// `end` (`YYYYMMDDHHMMSSZ`) or, when `None`, for two days from now.
fn client(dir: &Path, ca: &str, name: &str, san: &str, dates: Option<(&str, &str)>) -> Identity {
    certificate(dir, ca, name, san, dates, "clientAuth")
}

/// [`client`] with another extended key usage (`serverAuth`: a certificate for servers only).
fn certificate(
    dir: &Path,
    ca: &str,
    name: &str,
    san: &str,
    dates: Option<(&str, &str)>,
    usage: &str,
) -> Identity {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    let mut extensions = format!("basicConstraints=critical,CA:FALSE\nextendedKeyUsage={usage}\n");
    if !san.is_empty() {
        extensions.push_str(&format!("subjectAltName={san}\n"));
    }
    std::fs::write(dir.join(format!("{name}.ext")), extensions).unwrap();
    let (config, cert, key, csr, ext) = (
        format!("{ca}.cnf"),
        format!("{ca}.crt"),
        format!("{ca}.key"),
        format!("{name}.csr"),
        format!("{name}.ext"),
    );
    let out = format!("{name}.crt");
    let mut args = vec![
        "ca", "-batch", "-notext", "-config", &config, "-cert", &cert, "-keyfile", &key, "-in",
        &csr, "-extfile", &ext, "-out", &out,
    ];
    match dates {
        Some((start, end)) => args.extend(["-startdate", start, "-enddate", end]),
        None => args.extend(["-days", "2"]),
    }
    openssl(dir, &args);
    Identity::from_pem(
        std::fs::read(dir.join(&out)).unwrap(),
        std::fs::read(dir.join(format!("{name}.key"))).unwrap(),
    )
}

struct Pki {
    dir: PathBuf,
    /// The CA the server's own certificate is from (clients trust it).
    server_ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    /// The bundle `grpc.client_ca_file` names.
    client_ca: PathBuf,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pki(test: &str) -> Pki {
    let dir = std::env::temp_dir().join(format!("trdscreen-mtls-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (server_ca, server_cert, server_key) = super::tls::certificates(&dir);
    authority(&dir, "clients");
    Pki {
        server_ca,
        server_cert,
        server_key,
        client_ca: dir.join("clients.crt"),
        dir,
    }
}

/// Settings for mutual TLS over `fhir_base`: `orders` may read screenings and evaluate Bundles,
/// `reporting` may only evaluate Bundles.
fn settings(pki: &Pki, fhir_base: &str) -> Settings {
    let mut s = crate::service::settings(fhir_base);
    s.grpc.tls_cert_file = Some(pki.server_cert.clone());
    s.grpc.tls_key_file = Some(pki.server_key.clone());
    s.grpc.client_ca_file = Some(pki.client_ca.clone());
    s.callers.authentication = CallerAuthentication::Mtls;
    s.callers.mtls = toml::from_str(&format!(
        "[clients]\n\"{ORDERS}\" = [\"screening.read\", \"bundle.evaluate\"]\n\
         \"{REPORTING}\" = [\"bundle.evaluate\"]\n"
    ))
    .expect("mtls settings");
    s
}

struct Serving {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

async fn serve(settings: &Settings) -> Serving {
    let screener = Arc::new(Screener::new(settings, &Secrets::default()).unwrap());
    let bound = trdscreen::grpc::server::bind(settings, screener)
        .await
        .unwrap();
    let port = bound.address.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        bound
            .serve(async {
                let _ = stopped.await;
            })
            .await
            .map_err(|e| e.to_string())
    });
    Serving {
        port,
        stop: Some(stop),
        task,
    }
}

impl Serving {
    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap().expect("a clean shutdown");
    }
}

/// What became of a call: served, a status from the service, or a connection refused in the TLS
/// handshake (with the error chain's text).
#[derive(Debug)]
enum Outcome {
    Served,
    Status(Code),
    Refused(String),
}

/// The whole chain of an error's sources, as text.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// A new connection presenting `identity` (or no certificate), trusting the server's CA.
async fn connect(pki: &Pki, port: u16, identity: Option<Identity>) -> Result<Channel, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(
            std::fs::read(&pki.server_ca).unwrap(),
        ))
        .domain_name("localhost");
    if let Some(identity) = identity {
        tls = tls.identity(identity);
    }
    Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(20))
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .map_err(|e| chain(&e))
}

/// A status with its transport error's chain; TLS refusals come back as one.
fn outcome<T>(result: Result<T, tonic::Status>) -> Outcome {
    match result {
        Ok(_) => Outcome::Served,
        Err(status) => match std::error::Error::source(&status) {
            // A status made by the service has no source; one made of a broken connection has.
            Some(_) => Outcome::Refused(chain(&status)),
            None => Outcome::Status(status.code()),
        },
    }
}

fn bundle() -> EvaluateBundleRequest {
    EvaluateBundleRequest {
        bundle_json: std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("tests/fixtures/scenarios/{PATIENT}.json")),
        )
        .expect("the fixture"),
        as_of: Some(timestamp("2025-06-01")),
    }
}

fn screen() -> ScreenPatientRequest {
    ScreenPatientRequest {
        patient_id: PATIENT.into(),
        as_of: Some(timestamp("2025-06-01")),
        write_back: WriteBackMode::None as i32,
    }
}

/// EvaluateBundle as `identity` on a new connection.
async fn evaluate_as(pki: &Pki, port: u16, identity: Option<Identity>) -> Outcome {
    match connect(pki, port, identity).await {
        Err(refused) => Outcome::Refused(refused),
        Ok(channel) => outcome(
            TrdScreeningClient::new(channel)
                .evaluate_bundle(bundle())
                .await,
        ),
    }
}

async fn stub_with_patient() -> Stub {
    let stub = Stub::start().await;
    stub.load_bundle(&bundle().bundle_json);
    stub
}

#[tokio::test]
async fn a_client_certificate_from_the_configured_ca_is_served_and_others_are_refused_in_the_handshake()
 {
    let pki = pki("handshake");
    let stub = stub_with_patient().await;
    let orders = client(
        &pki.dir,
        "clients",
        "orders",
        &format!("URI:{ORDERS}"),
        None,
    );
    authority(&pki.dir, "other");
    let forged = client(&pki.dir, "other", "forged", &format!("URI:{ORDERS}"), None);
    let expired = client(
        &pki.dir,
        "clients",
        "expired",
        &format!("URI:{ORDERS}"),
        Some(("20200101000000Z", "20200102000000Z")),
    );
    let early = client(
        &pki.dir,
        "clients",
        "early",
        &format!("URI:{ORDERS}"),
        Some(("20990101000000Z", "20990102000000Z")),
    );
    let server_only = certificate(
        &pki.dir,
        "clients",
        "server-only",
        &format!("URI:{ORDERS}"),
        None,
        "serverAuth",
    );
    let server = serve(&settings(&pki, &stub.base())).await;

    assert!(
        matches!(
            evaluate_as(&pki, server.port, Some(orders.clone())).await,
            Outcome::Served
        ),
        "a certificate from the configured CA, naming a permitted identity, is served"
    );
    // The same identity in a certificate of another CA, in an expired one, in one not yet valid,
    // in one not for client authentication, and no certificate: refused in the handshake, each
    // with its TLS alert (TLS has one alert for "expired" and "not yet valid").
    for (what, identity, alert) in [
        ("another CA", Some(forged), "UnknownCA"),
        ("expired", Some(expired), "CertificateExpired"),
        ("not yet valid", Some(early), "CertificateExpired"),
        (
            "for servers only",
            Some(server_only),
            "UnsupportedCertificate",
        ),
        ("no certificate", None, "CertificateRequired"),
    ] {
        match evaluate_as(&pki, server.port, identity).await {
            Outcome::Refused(error) => assert!(error.contains(alert), "{what}: {error}"),
            other => panic!("{what}: not refused in the handshake: {other:?}"),
        }
    }
    assert!(
        stub.requests().is_empty(),
        "no refused connection reached the FHIR server"
    );
    // The port still serves the good certificate after the refusals, a patient read included.
    let channel = connect(&pki, server.port, Some(orders))
        .await
        .expect("connects");
    let screened = TrdScreeningClient::new(channel)
        .screen_patient(screen())
        .await
        .expect("orders reads a screening");
    assert_eq!(
        screened
            .into_inner()
            .assessment
            .expect("an assessment")
            .patient_id,
        PATIENT
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_verified_identity_is_held_to_its_permissions_and_rate_before_any_fhir_request() {
    let pki = pki("permission");
    let stub = stub_with_patient().await;
    let reporting = client(
        &pki.dir,
        "clients",
        "reporting",
        &format!("URI:{REPORTING}"),
        None,
    );
    let stranger = client(
        &pki.dir,
        "clients",
        "stranger",
        "URI:spiffe://hospital.test/ns/other/sa/unlisted",
        None,
    );
    let nameless = client(&pki.dir, "clients", "nameless", "", None);
    let mut settings = settings(&pki, &stub.base());
    // Two Bundles at once, then one every 100 seconds.
    settings.callers.rate =
        toml::from_str("[limits.\"bundle.evaluate\"]\nper_second = 0.01\nburst = 2\n")
            .expect("rate settings");
    let server = serve(&settings).await;

    let channel = connect(&pki, server.port, Some(reporting))
        .await
        .expect("a certificate of the configured CA connects");
    let mut reporting = TrdScreeningClient::new(channel);
    for _ in 0..2 {
        assert!(
            matches!(
                outcome(reporting.evaluate_bundle(bundle()).await),
                Outcome::Served
            ),
            "reporting may evaluate a Bundle"
        );
    }
    let over = outcome(reporting.evaluate_bundle(bundle()).await);
    assert!(
        matches!(over, Outcome::Status(Code::ResourceExhausted)),
        "a certificate caller's calls count against its rate limit: {over:?}"
    );
    let denied = outcome(reporting.screen_patient(screen()).await);
    assert!(
        matches!(denied, Outcome::Status(Code::PermissionDenied)),
        "{denied:?}"
    );
    let channel = connect(&pki, server.port, Some(stranger))
        .await
        .expect("connects");
    let unlisted = outcome(
        TrdScreeningClient::new(channel)
            .screen_patient(screen())
            .await,
    );
    assert!(
        matches!(unlisted, Outcome::Status(Code::PermissionDenied)),
        "an identity the settings do not list holds no permission: {unlisted:?}"
    );
    // Verified, but naming no URI or DNS identity: no caller to grant anything to.
    let channel = connect(&pki, server.port, Some(nameless))
        .await
        .expect("connects");
    let anonymous = outcome(
        TrdScreeningClient::new(channel)
            .evaluate_bundle(bundle())
            .await,
    );
    assert!(
        matches!(anonymous, Outcome::Status(Code::Unauthenticated)),
        "{anonymous:?}"
    );
    assert!(
        stub.requests().is_empty(),
        "a refused call reached the FHIR server"
    );
    server.shutdown().await;
}
