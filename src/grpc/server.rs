//! `trdscreen serve`: the gRPC server with health and reflection, TLS when configured, and a
//! graceful shutdown (in-flight calls finish within a grace period, new ones are refused).

use super::Service;
use crate::proto::trd_screening_server::TrdScreeningServer;
use crate::service::Screener;
use crate::settings::Settings;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::transport::Server;

/// An HTTP/2 ping after this long, and the connection dropped when it is not answered within
/// the timeout: a peer that vanished (its host gone, a NAT that forgot it) does not hold a
/// connection until TCP keepalive gives up on it, many minutes later.
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// After this long a connection is asked to go (GOAWAY) and clients open a new one, so that no
/// connection lives for ever and replicas added later get their share. Calls in flight finish
/// first: no grace period cuts them off, because a ScreenPopulation stream may rightly run for
/// hours.
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(30 * 60);

/// A bound, not yet serving, server: tests bind port 0 and read the address.
pub struct Bound {
    pub address: SocketAddr,
    listener: TcpListener,
    /// The CDS Hooks port (`cds.listen`), when it is on.
    pub cds_address: Option<SocketAddr>,
    cds_listener: Option<TcpListener>,
    settings: Settings,
    screener: Arc<Screener>,
}

pub async fn bind(settings: &Settings, screener: Arc<Screener>) -> std::io::Result<Bound> {
    let listener = TcpListener::bind(settings.grpc.listen).await?;
    let cds_listener = match settings.cds.listen {
        None => None,
        Some(address) => Some(TcpListener::bind(address).await?),
    };
    Ok(Bound {
        address: listener.local_addr()?,
        cds_address: cds_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?,
        cds_listener,
        listener,
        settings: settings.clone(),
        screener,
    })
}

impl Bound {
    /// Serves until `shutdown` completes, then lets in-flight calls finish for up to the grace period.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let g = &self.settings.grpc;
        let gate = super::callers::Gate::new(&self.settings.callers)?;
        if !gate.authenticates() && !self.address.ip().is_loopback() {
            tracing::warn!(
                address = %self.address,
                "callers.authentication is \"none\": anyone who reaches this port can screen any patient and write to the chart"
            );
        }
        let audit = self.screener.clone();
        let (cds_stop, cds_stopped) = tokio::sync::oneshot::channel::<()>();
        let cds = match self.cds_listener {
            Some(listener) => {
                let cds = Arc::new(crate::cds::Cds::new(self.screener.clone(), &self.settings)?);
                tracing::info!(address = ?self.cds_address, "serving CDS Hooks");
                Some(tokio::spawn(crate::cds::server::serve(
                    listener,
                    cds,
                    crate::http_server::Limits {
                        header_read_timeout: crate::http_server::HEADER_READ_TIMEOUT,
                        max_connections: self.settings.cds.max_connections,
                    },
                    async move {
                        let _ = cds_stopped.await;
                    },
                )))
            }
            None => None,
        };
        let service = Service::new(self.screener, gate, g);
        // tonic's own ceiling (it answers OUT_OF_RANGE above it); the service refuses Bundles over
        // the configured limit with RESOURCE_EXHAUSTED below it.
        let grpc = TrdScreeningServer::new(service)
            .max_decoding_message_size(g.max_request_bytes.saturating_mul(2));
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<TrdScreeningServer<Service>>()
            .await;
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        // The telemetry layer goes outermost, so that it sees the status clients see.
        // A bound on every call's time, reading its request included (a request body trickled in
        // never reaches a handler's own deadline); a little later than the handlers' deadline so
        // that theirs, DEADLINE_EXCEEDED, is the one callers see.
        let mut builder = Server::builder()
            .timeout(g.call_timeout.saturating_add(Duration::from_secs(5)))
            .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
            .max_connection_age(MAX_CONNECTION_AGE)
            .layer(super::telemetry::RpcTelemetryLayer)
            .layer(tower::util::MapResponseLayer::new(over_limit_is_exhausted));
        let tls = super::tls::server_config(g)?;
        let grace = g.shutdown_grace;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let reporter = health_reporter.clone();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: refusing new calls, letting in-flight calls finish");
            reporter
                .set_not_serving::<TrdScreeningServer<Service>>()
                .await;
            let _ = stop_tx.send(());
        };
        // No Nagle: small gRPC responses otherwise wait for the peer's delayed ACK (~40 ms).
        let incoming = tonic::transport::server::TcpIncoming::from(self.listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(Duration::from_secs(60)));
        let incoming = super::incoming::limited(
            incoming,
            g.max_connections,
            super::incoming::PREFACE_TIMEOUT,
            tls,
        );
        let serving = builder
            .add_service(health)
            .add_optional_service(g.reflection.then_some(reflection_v1))
            .add_optional_service(g.reflection.then_some(reflection_v1alpha))
            .add_service(grpc)
            .serve_with_incoming_shutdown(incoming, signal);
        let (audit_stop, audit_stopped) = tokio::sync::oneshot::channel::<()>();
        let audit_sender = audit.audit().run_sender(async move {
            let _ = audit_stopped.await;
        });
        let served = async {
            tokio::pin!(serving);
            tokio::select! {
                result = &mut serving => return result,
                _ = stop_rx => {}
            }
            match tokio::time::timeout(grace, serving).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!(
                        grace_secs = grace.as_secs(),
                        "calls still running after the grace period were cut off"
                    );
                    Ok(())
                }
            }
        }
        .await;
        let _ = cds_stop.send(());
        // Its in-flight hooks get the same grace: a client that never reads its answer must not
        // keep the audit trail below from being sent.
        if let Some(cds) = cds
            && tokio::time::timeout(grace, cds).await.is_err()
        {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "CDS Hooks calls still running after the grace period were cut off"
            );
        }
        // The calls are over: what the audit trail still holds is sent, or put on disk.
        let _ = audit_stop.send(());
        if let Some(sender) = audit_sender {
            let _ = sender.await;
        }
        served.map_err(Into::into)
    }
}

/// tonic refuses a message over its decoding limit with OUT_OF_RANGE before any handler runs; the
/// contract (and gRPC's own convention) says RESOURCE_EXHAUSTED. The service itself never answers
/// OUT_OF_RANGE, so the rewrite cannot hide anything else.
fn over_limit_is_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    if headers.get("grpc-status").is_some_and(|v| v == "11") {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    response
}
