//! W3C Trace Context (`traceparent`, `tracestate`) in and out: read from a gRPC call's headers,
//! written into every request to the FHIR server, so a caller's trace continues through this
//! service to the FHIR server.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct Headers<'h>(&'h http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct Pairs(Vec<(&'static str, String)>);

impl Injector for Pairs {
    fn set(&mut self, key: &str, value: String) {
        let name = match key {
            "traceparent" => "traceparent",
            "tracestate" => "tracestate",
            _ => return,
        };
        self.0.push((name, value));
    }
}

/// Makes `span` a child of the trace context in `headers`, if they carry a valid one.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    use opentelemetry::trace::TraceContextExt;
    if parent.span().span_context().is_valid() {
        // Fails only when the span is already closed or not recorded by OpenTelemetry.
        let _ = span.set_parent(parent);
    }
}

/// The headers that carry `span`'s trace context to a server (none when the span is not traced).
pub fn trace_headers(span: &tracing::Span) -> Vec<(&'static str, String)> {
    let mut pairs = Pairs(Vec::new());
    TraceContextPropagator::new().inject_context(&span.context(), &mut pairs);
    pairs.0
}
