//! Load tool for the gRPC service, loopback only, bounded in calls and time.
//!
//! ```sh
//! cargo run --release --example load -- --fhir http://127.0.0.1:PORT/fhir --seconds 10
//! ```
//!
//! Phases, each at a fixed concurrency for at most `--seconds` and `--max-calls`:
//! 1. `EvaluateBundle` with tests/fixtures/typical-patient.json, its request encoded once, at
//!    concurrency 1, 16 and 64 (with `--compact`, the same Bundle without its whitespace: 43 KB
//!    instead of the fixture's pretty-printed 76 KB);
//! 2. with `--fhir`: the typical patient is loaded into that FHIR server, then the same Patient read
//!    and five searches that `ScreenPatient` makes are timed with a bare HTTP client, and
//!    `ScreenPatient` (no write-back) is timed, both at concurrency 16, in the same run: four
//!    alternating slices each, `--seconds` in all per side.
//!
//! The service runs in this process on 127.0.0.1 (an ephemeral port), so client and server share
//! the machine's cores, as they would on a 2-core pod with a sidecar caller.

use bytes::{BufMut, Bytes};
use http::uri::PathAndQuery;
use prost::Message;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tonic::client::Grpc;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic_prost::ProstDecoder;
use trdscreen::proto::trd_screening_client::TrdScreeningClient;
use trdscreen::proto::{
    EvaluateBundleRequest, ScreenPatientRequest, ScreenPatientResponse, WriteBackMode,
};
use trdscreen::service::Screener;
use trdscreen::settings::{Secrets, Settings};

// The same allocator as the trdscreen binary, so that the in-process service is the one deployed.
#[global_allocator]
static ALLOCATOR: trdscreen::allocator::Allocator = trdscreen::allocator::Allocator;

struct Options {
    fhir: Option<String>,
    seconds: u64,
    max_calls: usize,
    compact: bool,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        fhir: None,
        seconds: 10,
        max_calls: 200_000,
        compact: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--fhir" => o.fhir = Some(value()?),
            "--seconds" => o.seconds = value()?.parse().map_err(|_| "--seconds: a number")?,
            "--max-calls" => o.max_calls = value()?.parse().map_err(|_| "--max-calls: a number")?,
            "--compact" => o.compact = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if let Some(url) = &o.fhir {
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        if !matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]") {
            return Err("--fhir must be a loopback URL: this tool only loads local servers".into());
        }
    }
    if o.seconds == 0 || o.seconds > 120 {
        return Err("--seconds must be 1 to 120".into());
    }
    Ok(o)
}

/// The JSON text without the whitespace between its tokens (keys and values untouched, in their
/// order): the Bundle as most FHIR servers and clients serialise it.
fn without_whitespace(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if c.is_ascii_whitespace() {
            continue;
        }
        out.push(c);
    }
    out
}

/// How many alternating slices the bare-client and `ScreenPatient` phases are cut into.
const COMPARISON_SLICES: u32 = 4;

/// The results of several slices of one phase, put together.
#[derive(Default)]
struct Timed {
    latencies: Vec<Duration>,
    failed: usize,
    elapsed: Duration,
}

impl Timed {
    fn add(&mut self, (latencies, failed, elapsed): (Vec<Duration>, usize, Duration)) {
        self.latencies.extend(latencies);
        self.failed += failed;
        self.elapsed += elapsed;
    }

    fn done(mut self) -> (Vec<Duration>, usize, Duration) {
        self.latencies.sort_unstable();
        (self.latencies, self.failed, self.elapsed)
    }
}

/// Runs `call` from `concurrency` tasks until the time or call budget is spent; returns the latency
/// of every successful call, the failures, and the elapsed time.
async fn phase<F, Fut>(
    concurrency: usize,
    budget: Duration,
    max_calls: usize,
    call: F,
) -> (Vec<Duration>, usize, Duration)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let issued = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (call, issued) = (call.clone(), issued.clone());
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut failures) = (Vec::new(), 0);
            while start.elapsed() < budget && issued.fetch_add(1, Ordering::Relaxed) < max_calls {
                let t = Instant::now();
                if call().await {
                    latencies.push(t.elapsed());
                } else {
                    failures += 1;
                }
            }
            (latencies, failures)
        }));
    }
    let (mut all, mut failed) = (Vec::new(), 0);
    for task in tasks {
        if let Ok((latencies, failures)) = task.await {
            all.extend(latencies);
            failed += failures;
        }
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    (all, failed, elapsed)
}

fn report(
    name: &str,
    concurrency: usize,
    (latencies, failed, elapsed): &(Vec<Duration>, usize, Duration),
) -> f64 {
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    println!(
        "| {name} | {concurrency} | {} | {failed} | {:.1} | {rate:.0} | {:.2} | {:.2} |",
        latencies.len(),
        elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99)
    );
    rate
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let o = options()?;
    let budget = Duration::from_secs(o.seconds);
    let mut settings = Settings::default();
    settings.grpc.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    settings.grpc.max_concurrent_calls = 1024;
    if let Some(fhir) = &o.fhir {
        settings.fhir.base_url = Some(fhir.parse()?);
    }
    let screener = Arc::new(Screener::new(&settings, &Secrets::default())?);
    let bound = trdscreen::grpc::server::bind(&settings, screener).await?;
    let address = bound.address;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bound.serve(async {
        let _ = stopped.await;
    }));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?
        .connect()
        .await?;
    let client = TrdScreeningClient::new(channel.clone()).max_decoding_message_size(64 << 20);
    let bundle = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/typical-patient.json"
    ))?;
    let bundle = if o.compact {
        let compact = without_whitespace(&bundle);
        let same = serde_json::from_str::<serde_json::Value>(&compact)?
            == serde_json::from_str::<serde_json::Value>(&bundle)?;
        if !same {
            return Err("the Bundle without whitespace is not the same JSON".into());
        }
        println!(
            "(--compact: the Bundle is {} bytes instead of {})",
            compact.len(),
            bundle.len()
        );
        compact
    } else {
        bundle
    };
    let as_of = Some(prost_types::Timestamp {
        seconds: 1_748_736_000, // 2025-06-01, the fixture's evaluation day
        nanos: 0,
    });

    println!("| phase | concurrency | calls ok | failed | seconds | calls/s | p50 ms | p99 ms |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let encoded = Bytes::from(
        EvaluateBundleRequest {
            bundle_json: bundle.clone(),
            as_of,
        }
        .encode_to_vec(),
    );
    for concurrency in [1, 16, 64] {
        let grpc = Grpc::new(channel.clone());
        let encoded = encoded.clone();
        let result = phase(concurrency, budget, o.max_calls, move || {
            let (mut grpc, request) = (grpc.clone(), encoded.clone());
            async move { evaluate_pre_encoded(&mut grpc, request).await }
        })
        .await;
        report("EvaluateBundle", concurrency, &result);
    }

    if let Some(fhir) = &o.fhir {
        let patient = load_typical_patient(fhir, &bundle).await?;
        let http = reqwest::Client::new();
        let id = trdscreen::fhir::PatientId::parse(&patient)?;
        let knowledge = trdscreen::knowledge::Knowledge::embedded();
        let mut urls = vec![format!("{fhir}/Patient/{patient}")];
        for (resource_type, params) in trdscreen::fhir::fetch::searches(&id, &knowledge) {
            let mut url = url::Url::parse(&format!("{fhir}/{resource_type}"))?;
            url.query_pairs_mut()
                .extend_pairs(params)
                .append_pair("_count", "1000");
            urls.push(url.to_string());
        }
        let urls = Arc::new(urls);
        let bare = move || {
            let (http, urls) = (http.clone(), urls.clone());
            async move { bare_fetch(&http, &urls).await }
        };
        let c = client.clone();
        let screen = move || {
            let mut client = c.clone();
            let request = ScreenPatientRequest {
                patient_id: patient.clone(),
                as_of,
                write_back: WriteBackMode::None as i32,
            };
            async move { client.screen_patient(request).await.is_ok() }
        };
        // Alternating slices (ABAB...), so that drift in the FHIR server or the machine over the
        // run falls on both sides of the comparison instead of on whichever ran second.
        let (mut bare_total, mut screen_total) = (Timed::default(), Timed::default());
        let slice = budget / COMPARISON_SLICES;
        let calls = o.max_calls / COMPARISON_SLICES as usize;
        for _ in 0..COMPARISON_SLICES {
            bare_total.add(phase(16, slice, calls, bare.clone()).await);
            screen_total.add(phase(16, slice, calls, screen.clone()).await);
        }
        let (bare, screen) = (bare_total.done(), screen_total.done());
        let bare_rate = report("bare HTTP: Patient read + 5 searches", 16, &bare);
        let screen_rate = report("ScreenPatient (no write-back)", 16, &screen);
        println!(
            "\nScreenPatient rate / bare HTTP rate: {:.1} %",
            100.0 * screen_rate / bare_rate.max(f64::MIN_POSITIVE)
        );
    }
    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}

/// One `EvaluateBundle` call whose request message was encoded once, up front. A caller on its own
/// machine pays for building and encoding its Bundle; here the caller shares the service's two
/// cores, and copying and re-encoding 76 KB per call was 7 % of all instructions (callgrind), which
/// the service's figure should not carry. The server still decodes every byte.
async fn evaluate_pre_encoded(grpc: &mut Grpc<Channel>, request: Bytes) -> bool {
    if grpc.ready().await.is_err() {
        return false;
    }
    let path = PathAndQuery::from_static("/trdscreen.v1.TrdScreening/EvaluateBundle");
    grpc.unary(tonic::Request::new(request), path, PreEncoded)
        .await
        .is_ok_and(|r| r.get_ref().assessment.is_some())
}

/// Sends bytes already in protobuf form; reads the response as the generated client does.
#[derive(Clone, Copy)]
struct PreEncoded;

impl Codec for PreEncoded {
    type Encode = Bytes;
    type Decode = ScreenPatientResponse;
    type Encoder = PreEncoded;
    type Decoder = ProstDecoder<ScreenPatientResponse>;

    fn encoder(&mut self) -> Self::Encoder {
        PreEncoded
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(BufferSettings::default())
    }
}

impl Encoder for PreEncoded {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put_slice(&item);
        Ok(())
    }

    /// One buffer that holds the whole message, so that it is copied once and never regrown.
    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(128 << 10, 32 << 10)
    }
}

/// The Patient read, then the five searches concurrently, as the service makes them.
async fn bare_fetch(http: &reqwest::Client, urls: &[String]) -> bool {
    let get = |url: &String| {
        let request = http.get(url).header("Accept", "application/fhir+json");
        async move {
            match request.send().await {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            }
        }
    };
    if !get(&urls[0]).await {
        return false;
    }
    let results = tokio::join!(
        get(&urls[1]),
        get(&urls[2]),
        get(&urls[3]),
        get(&urls[4]),
        get(&urls[5])
    );
    results.0 && results.1 && results.2 && results.3 && results.4
}

/// PUTs the fixture's resources (ids prefixed per run) and returns the patient id.
async fn load_typical_patient(
    fhir: &str,
    bundle: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let prefix = format!("load{}", std::process::id());
    let mut value: serde_json::Value = serde_json::from_str(bundle)?;
    let entries = value["entry"]
        .as_array_mut()
        .ok_or("the fixture has no entries")?;
    let ids: Vec<(String, String)> = entries
        .iter()
        .filter_map(|e| {
            let r = &e["resource"];
            Some((
                r["resourceType"].as_str()?.to_owned(),
                r["id"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let mut text = serde_json::to_string(&entries)?;
    for (t, id) in &ids {
        text = text.replace(&format!("\"{t}/{id}\""), &format!("\"{t}/{prefix}-{id}\""));
        text = text.replace(
            &format!("\"id\":\"{id}\""),
            &format!("\"id\":\"{prefix}-{id}\""),
        );
    }
    let entries: Vec<serde_json::Value> = serde_json::from_str(&text)?;
    let http = reqwest::Client::new();
    let mut patient = None;
    for e in entries {
        let r = &e["resource"];
        let (t, id) = (
            r["resourceType"].as_str().unwrap_or(""),
            r["id"].as_str().unwrap_or(""),
        );
        if t == "Patient" {
            patient = Some(id.to_owned());
        }
        let response = http
            .put(format!("{fhir}/{t}/{id}"))
            .header("Content-Type", "application/fhir+json")
            .body(serde_json::to_vec(r)?)
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(format!("loading {t} failed with {}", response.status()).into());
        }
    }
    patient.ok_or_else(|| "the fixture has no Patient".into())
}
