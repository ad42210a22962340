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
/// `alongside` on the current Tokio runtime.
pub fn start(
    address: std::net::SocketAddr,
    registry: prometheus::Registry,
    alongside: axum::Router,
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
    tokio::spawn(async move {
        let serving = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = serving.await {
            tracing::warn!(error = %e, "the /metrics server stopped");
        }
    });
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
