//! For telemetry tests: the built `trdscreen serve` as a child process, an in-process OTLP/gRPC
//! receiver (the collector's protocol, from opentelemetry-proto's generated server stubs), a reader
//! of the Prometheus text format, and the metric names a PromQL expression uses.
#![allow(dead_code)]

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use trdscreen::proto::trd_screening_client::TrdScreeningClient;

pub use crate::service::free_port;

/// `trdscreen serve` started from the built binary with `TRDSCREEN_...` settings in its environment.
pub struct Served {
    child: Option<crate::child::Running>,
    pub grpc: SocketAddr,
    pub metrics: SocketAddr,
    stderr: PathBuf,
}

impl Served {
    /// Starts the service (gRPC and metrics on free ports, JSON logs) and waits until both answer.
    pub async fn start(env: &[(&str, String)]) -> Served {
        let grpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let stderr = std::env::temp_dir().join(format!(
            "trdscreen-telemetry-{}-{}.log",
            std::process::id(),
            grpc.port()
        ));
        let log = std::fs::File::create(&stderr).expect("a log file");
        let child = crate::child::spawn(
            Command::new(env!("CARGO_BIN_EXE_trdscreen"))
                .arg("serve")
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("RUST_LOG", "info")
                .env("TRDSCREEN_GRPC_LISTEN", grpc.to_string())
                .env("TRDSCREEN_TELEMETRY_METRICS_LISTEN", metrics.to_string())
                .env("TRDSCREEN_TELEMETRY_LOG_FORMAT", "json")
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .stdout(Stdio::null())
                .stderr(log),
            "trdscreen serve starts",
        );
        let mut served = Served {
            child: Some(child),
            grpc,
            metrics,
            stderr,
        };
        let started = Instant::now();
        loop {
            if let Some(status) = served
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("trdscreen serve exited with {status}:\n{}", served.log());
            }
            let grpc_up = tokio::net::TcpStream::connect(grpc).await.is_ok();
            let metrics_up = tokio::net::TcpStream::connect(metrics).await.is_ok();
            if grpc_up && metrics_up {
                return served;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "trdscreen serve did not listen within 30 s:\n{}",
                served.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn client(&self) -> TrdScreeningClient<Channel> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.grpc))
            .expect("an endpoint")
            .connect()
            .await
            .expect("a client connects");
        TrdScreeningClient::new(channel)
    }

    /// `GET /metrics`: the status, the content type and the body.
    pub async fn scrape(&self) -> (u16, String, String) {
        let response = reqwest::get(format!("http://{}/metrics", self.metrics))
            .await
            .expect("GET /metrics answers");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (status, content_type, response.text().await.expect("a body"))
    }

    /// What the service logged on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM, then waits (at most 30 s) for the graceful exit; returns the exit code.
    pub async fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("trdscreen serve did not stop within 30 s of SIGTERM");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        drop(self.child.take()); // stopped as every `crate::child::Running` is
        let _ = std::fs::remove_file(&self.stderr);
    }
}

/// An OTLP/gRPC collector in the test process that keeps every span and metric it receives.
#[derive(Clone, Default)]
pub struct Receiver {
    spans: Arc<Mutex<Vec<Span>>>,
    metric_names: Arc<Mutex<BTreeSet<String>>>,
    /// Every attribute value received (resource, scope, span, event, data point), as text.
    attribute_values: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    /// Listens on a free loopback port; returns the receiver and its `http://` endpoint.
    pub async fn start() -> (Receiver, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the receiver binds");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let receiver = Receiver::default();
        let serving = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .add_service(MetricsServiceServer::new(receiver.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        tokio::spawn(serving);
        (receiver, endpoint)
    }

    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    pub fn metric_names(&self) -> BTreeSet<String> {
        self.metric_names.lock().unwrap().clone()
    }

    pub fn attribute_values(&self) -> Vec<String> {
        self.attribute_values.lock().unwrap().clone()
    }

    fn keep_values(&self, attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue]) {
        let mut values = self.attribute_values.lock().unwrap();
        values.extend(attributes.iter().map(|kv| format!("{:?}", kv.value)));
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        for resource_spans in request.into_inner().resource_spans {
            if let Some(resource) = &resource_spans.resource {
                self.keep_values(&resource.attributes);
            }
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    self.keep_values(&span.attributes);
                    for event in &span.events {
                        self.keep_values(&event.attributes);
                    }
                    self.spans.lock().unwrap().push(span);
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        for resource_metrics in request.into_inner().resource_metrics {
            for scope_metrics in resource_metrics.scope_metrics {
                for metric in scope_metrics.metrics {
                    match &metric.data {
                        Some(Data::Sum(s)) => s
                            .data_points
                            .iter()
                            .for_each(|p| self.keep_values(&p.attributes)),
                        Some(Data::Gauge(g)) => g
                            .data_points
                            .iter()
                            .for_each(|p| self.keep_values(&p.attributes)),
                        Some(Data::Histogram(h)) => h
                            .data_points
                            .iter()
                            .for_each(|p| self.keep_values(&p.attributes)),
                        _ => {}
                    }
                    self.metric_names.lock().unwrap().insert(metric.name);
                }
            }
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The samples of a Prometheus text exposition; panics on a line that is not one.
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| sample(line).unwrap_or_else(|| panic!("not a sample line: {line:?}")))
        .collect()
}

fn sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut key = String::new();
        let close = loop {
            let (at, c) = chars.next()?;
            match c {
                '}' => break at,
                ',' => continue,
                '=' => {
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                other => key.push(other),
            }
        };
        rest = &inner[close + 1..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// The sum of the samples named `name` whose labels include all of `with`.
pub fn total(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            with.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// PromQL words that are not metric names (aggregations may be followed by `by (...)`, not `(`).
const PROMQL_WORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
];

/// The metric names a PromQL expression selects: identifiers outside label matchers, grouping
/// lists, strings and range selectors that are neither functions (followed by `(`) nor keywords.
/// Grafana variables (`$__rate_interval`, `$job`) are ignored.
pub fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut grouping_next = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while i < chars.len() && chars[i] != close {
                    if chars[i] == '"' {
                        i += 1;
                        while i < chars.len() && chars[i] != '"' {
                            if chars[i] == '\\' {
                                i += 1;
                            }
                            i += 1;
                        }
                    }
                    i += 1;
                }
                i += 1;
            }
            '(' if grouping_next => {
                grouping_next = false;
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                i += 1;
            }
            '$' => {
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // Numbers and durations (5m, 1e3, 0.5).
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = i;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                let is_call = j < chars.len() && chars[j] == '(';
                let lower = word.to_ascii_lowercase();
                if matches!(
                    lower.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                ) {
                    grouping_next = true;
                } else if !is_call && !PROMQL_WORDS.contains(&lower.as_str()) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[test]
fn promql_names_are_the_selected_metrics_only() {
    let names = promql_metric_names(
        r#"sum by (rpc_method) (rate(rpc_server_duration_seconds_count{rpc_grpc_status_code!="0", job=~"$job"}[$__rate_interval])) / on (x) group_left sum without (le) (rate(trdscreen_hints_total[5m] offset 1h)) > 0.05 and time() - max(trdscreen_batch_last_run_end) > 26 * 3600"#,
    );
    let want: BTreeSet<String> = [
        "rpc_server_duration_seconds_count",
        "trdscreen_hints_total",
        "trdscreen_batch_last_run_end",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(names, want);
}

#[test]
fn reads_samples_with_escaped_labels() {
    let s =
        samples("# HELP x y\nx_total{a=\"1\",b=\"q\\\"uote\"} 3\nup 1\nh_bucket{le=\"+Inf\"} 2\n");
    assert_eq!(s.len(), 3);
    assert_eq!(s[0].labels["b"], "q\"uote");
    assert_eq!(s[0].value, 3.0);
    assert_eq!(s[1].name, "up");
    assert_eq!(s[2].labels["le"], "+Inf");
}
