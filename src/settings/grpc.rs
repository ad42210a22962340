//! `[grpc]`: the gRPC port.

use super::values::{seconds, text};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcSettings {
    #[serde(with = "text")]
    pub listen: SocketAddr,
    /// Largest request accepted, in bytes (a Bundle sent to EvaluateBundle included).
    pub max_request_bytes: usize,
    /// Upper bound on one call, whatever deadline the caller sets.
    #[serde(rename = "call_timeout_secs", with = "seconds")]
    pub call_timeout: Duration,
    /// Calls handled at once; more are refused with RESOURCE_EXHAUSTED rather than queued unboundedly.
    pub max_concurrent_calls: usize,
    /// Connections the port holds at once (each may carry many calls); more wait until one
    /// closes, so that a flood of connections cannot take every file descriptor.
    pub max_connections: usize,
    /// Patients screened at once by one ScreenPopulation call.
    pub population_concurrency: usize,
    /// PEM certificate chain and private key: both set turns TLS on for the gRPC port.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// PEM bundle of the CAs that issue callers' client certificates: set (with the certificate
    /// and key above), the TLS handshake requires a client certificate that chains to one of them
    /// and is within its validity dates, and refuses the connection otherwise (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
    /// Seconds in-flight calls get to finish after SIGTERM/SIGINT.
    #[serde(rename = "shutdown_grace_secs", with = "seconds")]
    pub shutdown_grace: Duration,
    /// Server reflection (grpcurl and similar tools list the methods); open to anyone who reaches
    /// the port, like health. `false` leaves it out.
    pub reflection: bool,
}

impl Default for GrpcSettings {
    fn default() -> Self {
        GrpcSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            max_request_bytes: 4 * 1024 * 1024,
            call_timeout: Duration::from_secs(30),
            max_concurrent_calls: 256,
            max_connections: 1024,
            population_concurrency: 8,
            tls_cert_file: None,
            tls_key_file: None,
            reflection: true,
            client_ca_file: None,
            shutdown_grace: Duration::from_secs(20),
        }
    }
}
