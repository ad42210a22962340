//! `[telemetry]`: metrics, traces and logs.

use super::values::{HttpUrl, empty_is_off};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Metrics, traces and logs (docs/metrics.md).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Address of the Prometheus `/metrics` endpoint (its own port); empty turns it off.
    #[serde(with = "empty_is_off")]
    pub metrics_listen: Option<SocketAddr>,
    /// OTLP/gRPC collector for metrics and traces, e.g. `http://collector:4317`; empty: no export.
    #[serde(with = "empty_is_off")]
    pub otlp_endpoint: Option<HttpUrl>,
    pub log_format: LogFormat,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            otlp_endpoint: None,
            log_format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines on stderr.
    #[default]
    Text,
    /// One JSON object per line on stderr, for log collectors.
    Json,
}
