//! `GET /metrics` in the Prometheus text format, on its own port, served by axum (already in the
//! dependency graph under tonic), beside what the service adds that holds no patient data (the
//! SMART client's JWKS, `/.well-known/jwks.json`). Anything else is 404.

use super::TelemetryError;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use prometheus::{Encoder, TextEncoder};
use std::net::SocketAddr;

pub struct Running {
    pub address: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl Running {
    pub fn stop(self) {
        let _ = self.stop.send(());
    }
}

/// Binds now (so a taken port is an error at start-up) and serves `/metrics` and the routes of
/// `alongside` on the current Tokio runtime (see [`crate::http_server::serve`]).
pub fn start(
    address: std::net::SocketAddr,
    registry: prometheus::Registry,
    alongside: axum::Router,
    limits: crate::http_server::Limits,
) -> Result<Running, TelemetryError> {
    let listen_error = |source| TelemetryError::MetricsListen { address, source };
    let listener = std::net::TcpListener::bind(address).map_err(listen_error)?;
    listener.set_nonblocking(true).map_err(listen_error)?;
    let bound = listener.local_addr().map_err(listen_error)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(listen_error)?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let registry = registry.clone();
                async move { exposition(&registry) }
            }),
        )
        .merge(alongside);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(crate::http_server::serve(listener, app, limits, async {
        let _ = stopped.await;
    }));
    Ok(Running {
        address: bound,
        stop,
    })
}

fn exposition(registry: &prometheus::Registry) -> axum::response::Response {
    match encode(registry) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

pub fn encode(registry: &prometheus::Registry) -> Result<String, prometheus::Error> {
    let mut buffer = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut buffer)?;
    String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_server::tests::{SHORT_LIMITS, request, trickle_a_request_head};

    fn started() -> Running {
        start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            prometheus::Registry::new(),
            axum::Router::new(),
            SHORT_LIMITS,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_metrics_request_head_trickled_in_is_cut_off_after_the_header_read_timeout() {
        let running = started();
        let answer = trickle_a_request_head(running.address, "/metrics").await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
        running.stop();
    }

    #[tokio::test]
    async fn metrics_are_answered_and_stopping_closes_the_port() {
        let running = started();
        let address = running.address;
        let answer = request(address, "GET", "/metrics").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        running.stop();
        let refused = tokio::time::timeout(crate::http_server::tests::GUARD, async {
            while tokio::net::TcpStream::connect(address).await.is_ok() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(refused.is_ok(), "the port still accepts connections");
    }
}
