//! Telemetry of every gRPC call, as a tower layer around the whole server (so calls refused by the
//! size or concurrency limits, health checks and reflection count too): one span per call, a child
//! of the caller's W3C trace context when it sent one, and `rpc.server.duration` by service, method
//! and status code once the response has ended (the status of a successful call arrives in its
//! trailers).

use crate::telemetry;
use http_body::{Body, Frame};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tracing::Instrument;

#[derive(Clone, Copy, Default)]
pub struct RpcTelemetryLayer;

impl<S> tower::Layer<S> for RpcTelemetryLayer {
    type Service = RpcTelemetry<S>;

    fn layer(&self, inner: S) -> RpcTelemetry<S> {
        RpcTelemetry { inner }
    }
}

#[derive(Clone)]
pub struct RpcTelemetry<S> {
    inner: S,
}

/// The services this server offers, and their methods: any other path is labelled `other`, so a
/// client cannot invent label values.
const KNOWN: &[(&str, &[&str])] = &[
    (
        "trdscreen.v1.TrdScreening",
        &["ScreenPatient", "EvaluateBundle", "ScreenPopulation"],
    ),
    ("grpc.health.v1.Health", &["Check", "Watch", "List"]),
    (
        "grpc.reflection.v1.ServerReflection",
        &["ServerReflectionInfo"],
    ),
    (
        "grpc.reflection.v1alpha.ServerReflection",
        &["ServerReflectionInfo"],
    ),
];

/// `(rpc.service, rpc.method)` of a request path `/package.Service/Method`.
pub fn rpc_name(path: &str) -> (&'static str, &'static str) {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (service, method) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    KNOWN
        .iter()
        .find(|(s, _)| *s == service)
        .and_then(|(s, methods)| methods.iter().find(|m| **m == method).map(|m| (*s, *m)))
        .unwrap_or(("other", "other"))
}

/// Status codes the OpenTelemetry conventions count as a server error (the others are the
/// caller's problem, or no problem).
fn is_server_error(code: i32) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

fn grpc_status(headers: &http::HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

impl<S, B, R> tower::Service<http::Request<B>> for RpcTelemetry<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Body + Unpin,
{
    type Response = http::Response<Observed<R>>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<http::Response<Observed<R>>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (service, method) = rpc_name(request.uri().path());
        let span = tracing::info_span!(
            "rpc",
            otel.name = format!("{service}/{method}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        telemetry::propagation::continue_trace(&span, request.headers());
        let call = Call {
            service,
            method,
            started: Instant::now(),
            span: span.clone(),
            done: false,
        };
        let response = self.inner.call(request).instrument(span);
        Box::pin(async move {
            let mut call = call;
            let response = response.await;
            Ok(match response {
                Ok(response) => {
                    let (head, body) = response.into_parts();
                    // A trailers-only response (every error tonic answers) has its status here.
                    if let Some(code) = grpc_status(&head.headers) {
                        call.finish(code);
                    }
                    http::Response::from_parts(head, Observed { body, call })
                }
                Err(e) => {
                    call.finish(2);
                    return Err(e);
                }
            })
        })
    }
}

struct Call {
    service: &'static str,
    method: &'static str,
    started: Instant,
    span: tracing::Span,
    done: bool,
}

impl Call {
    fn finish(&mut self, code: i32) {
        if self.done {
            return;
        }
        self.done = true;
        self.span.record("rpc.grpc.status_code", code);
        if is_server_error(code) {
            self.span.record("otel.status_code", "ERROR");
        }
        telemetry::record_rpc(self.service, self.method, code, self.started.elapsed());
    }
}

impl Drop for Call {
    /// A response dropped before its trailers: the client went away (CANCELLED).
    fn drop(&mut self) {
        self.finish(1);
    }
}

/// The response body, watched for the trailers that carry the call's status.
pub struct Observed<R> {
    body: R,
    call: Call,
}

impl<R: Body + Unpin> Body for Observed<R> {
    type Data = R::Data;
    type Error = R::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
                    this.call.finish(code);
                }
            }
            Poll::Ready(Some(Err(_))) => this.call.finish(2),
            // Ended without a status: gRPC says the call is then UNKNOWN; tonic always sends one.
            Poll::Ready(None) => this.call.finish(2),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_known_methods_and_nothing_else() {
        assert_eq!(
            rpc_name("/trdscreen.v1.TrdScreening/ScreenPatient"),
            ("trdscreen.v1.TrdScreening", "ScreenPatient")
        );
        assert_eq!(
            rpc_name("/grpc.health.v1.Health/Check"),
            ("grpc.health.v1.Health", "Check")
        );
        for path in [
            "/trdscreen.v1.TrdScreening/patient-123",
            "/x.Y/ScreenPatient",
            "/",
            "",
            "/metrics",
        ] {
            assert_eq!(rpc_name(path), ("other", "other"), "{path}");
        }
    }

    #[test]
    fn reads_the_status_header() {
        let mut h = http::HeaderMap::new();
        assert_eq!(grpc_status(&h), None);
        h.insert("grpc-status", http::HeaderValue::from_static("8"));
        assert_eq!(grpc_status(&h), Some(8));
    }
}
