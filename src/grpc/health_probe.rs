//! `trdscreen health`: one `grpc.health.v1.Health/Check` against a running server, for a container
//! HEALTHCHECK or an exec probe. Plain TCP only: a server with TLS is probed by the orchestrator's
//! native gRPC probe instead.

use std::time::Duration;
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Why a probe got no serving status; the server's own answers are a [`ServingStatus`].
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot reach {address}: {reason}")]
    Unreachable { address: String, reason: String },
    #[error("the health check was refused: {code:?}: {message}")]
    Refused { code: tonic::Code, message: String },
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

/// A server address as `HOST:PORT` (a name, an IPv4 address or a bracketed IPv6 address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address(http::uri::Authority);

impl std::str::FromStr for Address {
    type Err = String;

    fn from_str(text: &str) -> Result<Address, String> {
        let bad = || format!("{text:?} is not HOST:PORT (e.g. 127.0.0.1:50051)");
        let authority: http::uri::Authority = text.parse().map_err(|_| bad())?;
        if authority.port_u16().is_none() || authority.as_str().contains('@') {
            return Err(bad());
        }
        Ok(Address(authority))
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// Asks the server at `address` for the status of `service` ("" is the server as a whole), giving up
/// after `timeout` in all (connecting included).
pub async fn check(
    address: &Address,
    service: &str,
    timeout: Duration,
) -> Result<ServingStatus, ProbeError> {
    let ask = async {
        let unreachable = |e: tonic::transport::Error| ProbeError::Unreachable {
            address: address.to_string(),
            reason: error_chain(&e),
        };
        let channel = Endpoint::from_shared(format!("http://{address}"))
            .map_err(unreachable)?
            .connect_timeout(timeout)
            .connect()
            .await
            .map_err(unreachable)?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .map_err(|s| ProbeError::Refused {
                code: s.code(),
                message: s.message().to_owned(),
            })?;
        // A status this client does not know is not "serving".
        Ok(ServingStatus::try_from(response.into_inner().status).unwrap_or(ServingStatus::Unknown))
    };
    tokio::time::timeout(timeout, ask)
        .await
        .unwrap_or(Err(ProbeError::TimedOut(timeout)))
}

/// tonic's transport errors say "transport error" on top and the cause (connection refused, ...) below.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Layers that repeat the layer above them add nothing.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_host_and_port() {
        for good in [
            "127.0.0.1:50051",
            "localhost:1",
            "[::1]:50051",
            "trdscreen.ns.svc:50051",
        ] {
            assert_eq!(
                good.parse::<Address>().map(|a| a.to_string()),
                Ok(good.into())
            );
        }
        for bad in [
            "",
            "127.0.0.1",
            "localhost:",
            "http://a:1",
            "a:1/x",
            "u@a:1",
            "a:99999",
        ] {
            assert!(bad.parse::<Address>().is_err(), "{bad:?} was accepted");
        }
    }
}
