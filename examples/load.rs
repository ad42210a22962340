//! Load tool for the gRPC service, loopback only, bounded in calls and time.
//!
//! ```sh
//! cargo run --release --example load -- --fhir http://127.0.0.1:PORT/fhir --seconds 10
//! ```
//!
//! Phases, each at a fixed concurrency for at most `--seconds` and `--max-calls`:
//! 1. `EvaluateBundle` with tests/fixtures/typical-patient.json at concurrency 1, 16 and 64;
//! 2. with `--fhir`: the typical patient is loaded into that FHIR server, then the same Patient read
//!    and five searches that `ScreenPatient` makes are timed with a bare HTTP client, and
//!    `ScreenPatient` (no write-back) is timed, both at concurrency 16, in the same run.
//!
//! The service runs in this process on 127.0.0.1 (an ephemeral port), so client and server share
//! the machine's cores, as they would on a 2-core pod with a sidecar caller.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use trdscreen::proto::trd_screening_client::TrdScreeningClient;
use trdscreen::proto::{EvaluateBundleRequest, ScreenPatientRequest, WriteBackMode};
use trdscreen::service::Screener;
use trdscreen::settings::{Secrets, Settings};

struct Options {
    fhir: Option<String>,
    seconds: u64,
    max_calls: usize,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        fhir: None,
        seconds: 10,
        max_calls: 200_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--fhir" => o.fhir = Some(value()?),
            "--seconds" => o.seconds = value()?.parse().map_err(|_| "--seconds: a number")?,
            "--max-calls" => o.max_calls = value()?.parse().map_err(|_| "--max-calls: a number")?,
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
    settings.grpc.listen = "127.0.0.1:0".into();
    settings.grpc.max_concurrent_calls = 1024;
    if let Some(fhir) = &o.fhir {
        settings.fhir.base_url = fhir.clone();
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
    let client = TrdScreeningClient::new(channel).max_decoding_message_size(64 << 20);
    let bundle = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/typical-patient.json"
    ))?;
    let as_of = Some(prost_types::Timestamp {
        seconds: 1_748_736_000, // 2025-06-01, the fixture's evaluation day
        nanos: 0,
    });

    println!("| phase | concurrency | calls ok | failed | seconds | calls/s | p50 ms | p99 ms |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for concurrency in [1, 16, 64] {
        let (client, bundle) = (client.clone(), bundle.clone());
        let result = phase(concurrency, budget, o.max_calls, move || {
            let mut client = client.clone();
            let request = EvaluateBundleRequest {
                bundle_json: bundle.clone(),
                as_of,
            };
            async move { client.evaluate_bundle(request).await.is_ok() }
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
        let bare = phase(16, budget, o.max_calls, move || {
            let (http, urls) = (http.clone(), urls.clone());
            async move { bare_fetch(&http, &urls).await }
        })
        .await;
        let bare_rate = report("bare HTTP: Patient read + 5 searches", 16, &bare);
        let c = client.clone();
        let screen = phase(16, budget, o.max_calls, move || {
            let mut client = c.clone();
            let request = ScreenPatientRequest {
                patient_id: patient.clone(),
                as_of,
                write_back: WriteBackMode::None as i32,
            };
            async move { client.screen_patient(request).await.is_ok() }
        })
        .await;
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
