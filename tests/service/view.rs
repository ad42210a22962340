//! The clinician view (issue 13) as a clinician's browser shows it: pages written by
//! `trdscreen evaluate --html` for three patients, rendered by headless Chromium (Debian's
//! `chromium`) into a screenshot and a dump of the rendered DOM, both in a temporary directory
//! (never in the repository). Then `GET /view/{token}` served on 127.0.0.1:0: a link that was
//! altered, expired or signed with another key is 403, a valid one is the page of the patient read
//! from the real FHIR server.
//!
//! Chromium is installed by scripts/test; without it these tests print a line and pass as skipped
//! under a plain `cargo test`, and fail under `TRDSCREEN_REQUIRE_FHIR=1`, as the FHIR server's do.

use serde_json::Value;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use trdscreen::fhir::PatientId;
use trdscreen::service::Screener;
use trdscreen::settings::{Secrets, Settings};
use trdscreen::view::link::{DEFAULT_TTL, LinkKey};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/scenarios");
const WINDOW: (u32, u32) = (1100, 1600);
/// The colour of a failed course's bar (`--failed` in templates/view/page.css).
const FAILED_RED: [u8; 3] = [0xb4, 0x23, 0x18];
/// The background of a critical caution (`.hint.critical`).
const CRITICAL_BACKGROUND: [u8; 3] = [0xfe, 0xf3, 0xf2];

/// A directory under the system's temporary directory, removed when the test passes (kept, and
/// named, when it fails, for a person to look at the screenshot).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(crate::service::unique_prefix(&format!(
            "trdscreen-view-{name}"
        )));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("the pages and screenshots are kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Debian's `chromium` on the PATH; when it is not there, `None` after a line saying the test is
/// skipped, or a failure under `TRDSCREEN_REQUIRE_FHIR=1`.
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("TRDSCREEN_REQUIRE_FHIR").is_ok_and(|v| v == "1") {
            panic!(
                "chromium is not installed, and TRDSCREEN_REQUIRE_FHIR=1 says the peers must be there"
            );
        }
        eprintln!("skipped: chromium is not installed (scripts/test installs it)");
    }
    found
}

/// Runs headless Chromium on `url` with `args`, its standard output into `out`; fails the test
/// when it does not end within two minutes or ends in failure.
fn run_chromium(chromium: &Path, scratch: &Path, args: &[String], url: &str, out: &Path) {
    let stdout = std::fs::File::create(out).expect("Chromium's output file");
    let stderr_path = out.with_extension("stderr");
    let stderr = std::fs::File::create(&stderr_path).expect("Chromium's error file");
    let mut child = crate::child::spawn(
        Command::new(chromium)
            .args([
                "--headless",
                // Root in CI and containers: Chromium's sandbox needs user namespaces it may not have.
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--disable-dev-shm-usage",
                "--force-device-scale-factor=1",
            ])
            .arg(format!(
                "--user-data-dir={}",
                scratch.join("chromium-profile").display()
            ))
            .args(args)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr),
        "chromium starts",
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("chromium is waited for") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "chromium did not finish within 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "chromium {args:?} failed ({status}): {}",
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );
}

/// An 8-bit RGB or RGBA PNG, not interlaced (what Chromium writes), as its size and RGB pixels.
struct Image {
    width: u32,
    height: u32,
    pixels: Vec<[u8; 3]>,
}

fn decode_png(bytes: &[u8]) -> Image {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG signature");
    let (mut at, mut header, mut data) = (8, None, Vec::new());
    while at + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let kind = &bytes[at + 4..at + 8];
        let body = &bytes[at + 8..at + 8 + len];
        match kind {
            b"IHDR" => header = Some(body.to_vec()),
            b"IDAT" => data.extend_from_slice(body),
            _ => {}
        }
        at += 12 + len;
    }
    let header = header.expect("an IHDR chunk");
    let width = u32::from_be_bytes(header[0..4].try_into().unwrap());
    let height = u32::from_be_bytes(header[4..8].try_into().unwrap());
    let (depth, colour, interlace) = (header[8], header[9], header[12]);
    assert_eq!(
        (depth, interlace),
        (8, 0),
        "8 bits a sample, not interlaced"
    );
    let channels = match colour {
        2 => 3,
        6 => 4,
        other => panic!("colour type {other}: neither RGB nor RGBA"),
    };
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&data[..])
        .read_to_end(&mut raw)
        .expect("the image data inflates");
    let stride = width as usize * channels;
    assert_eq!(raw.len(), (stride + 1) * height as usize, "whole rows");
    let mut previous = vec![0u8; stride];
    let mut pixels = Vec::with_capacity(width as usize * height as usize);
    for row in raw.chunks_exact(stride + 1) {
        let (filter, line) = (row[0], &row[1..]);
        let mut current = vec![0u8; stride];
        for i in 0..stride {
            let left = if i >= channels {
                current[i - channels]
            } else {
                0
            };
            let up = previous[i];
            let up_left = if i >= channels {
                previous[i - channels]
            } else {
                0
            };
            let predicted = match filter {
                0 => 0,
                1 => left,
                2 => up,
                3 => ((u16::from(left) + u16::from(up)) / 2) as u8,
                4 => paeth(left, up, up_left),
                other => panic!("filter type {other}"),
            };
            current[i] = line[i].wrapping_add(predicted);
        }
        pixels.extend(current.chunks_exact(channels).map(|p| [p[0], p[1], p[2]]));
        previous = current;
    }
    Image {
        width,
        height,
        pixels,
    }
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = (
        (p - i16::from(a)).abs(),
        (p - i16::from(b)).abs(),
        (p - i16::from(c)).abs(),
    );
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

impl Image {
    fn count(&self, colour: [u8; 3]) -> usize {
        let near = |p: &[u8; 3]| (0..3).all(|i| p[i].abs_diff(colour[i]) <= 6);
        self.pixels.iter().filter(|p| near(p)).count()
    }

    fn not_white(&self) -> usize {
        self.pixels
            .iter()
            .filter(|p| p.iter().any(|&c| c < 240))
            .count()
    }
}

/// What must be on one patient's page, written from the fixture's story (tests/fixtures/
/// scenarios.toml), not from the code under test.
struct Expected {
    fixture: &'static str,
    status: &'static str,
    status_class: &'static str,
    drugs: &'static [&'static str],
    hints: &'static [(&'static str, &'static [&'static str])],
    critical: bool,
    /// The patient's name and birth date in the fixture: never on the page.
    not_shown: &'static [&'static str],
}

const MET_THREE_COURSES: Expected = Expected {
    fixture: "staging-thase-rush-3-ssri-snri-tca.json",
    status: "MET",
    status_class: "met",
    drugs: &["sertraline", "duloxetine", "nortriptyline"],
    hints: &[],
    critical: false,
    not_shown: &["Carter", "William"],
};

const POSSIBLE: Expected = Expected {
    fixture: "possible-failed-plus-unknown-dose.json",
    status: "POSSIBLE",
    status_class: "possible",
    drugs: &["citalopram", "duloxetine"],
    hints: &[],
    critical: false,
    not_shown: &["Okafor", "Daniel"],
};

const NOT_MET_WITH_SUICIDE_RISK: Expected = Expected {
    fixture: "hint-suicide-risk-item9-positive.json",
    status: "NOT MET",
    status_class: "not-met",
    drugs: &["escitalopram"],
    hints: &[("suicide-risk", &["Observation/phq9-item9-2025-04-14"])],
    critical: true,
    not_shown: &["Jordan", "1998-04-30"],
};

/// The PHQ-9 totals (LOINC 44261-6) in a fixture.
fn phq9_totals(fixture: &str) -> usize {
    let bundle: Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(FIXTURES).join(fixture)).unwrap())
            .unwrap();
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"]["code"]["coding"][0]["code"] == "44261-6")
        .count()
}

/// Writes the page with `trdscreen evaluate --html`, renders it with Chromium, and checks the
/// rendered DOM and the screenshot.
fn rendered_page_shows(expected: &Expected) {
    let Some(chromium) = chromium() else { return };
    let scratch = Scratch::new(expected.status_class);
    let page = scratch.0.join("page.html");
    let out = Command::new(env!("CARGO_BIN_EXE_trdscreen"))
        .arg("evaluate")
        .arg(Path::new(FIXTURES).join(expected.fixture))
        .args(["--as-of", "2025-06-01", "--html"])
        .arg(&page)
        .output()
        .expect("trdscreen runs");
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "evaluate --html OUT: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = format!("file://{}", page.display());

    let dom_file = scratch.0.join("dom.html");
    run_chromium(
        &chromium,
        &scratch.0,
        &["--dump-dom".into()],
        &url,
        &dom_file,
    );
    let dom = std::fs::read_to_string(&dom_file).expect("the rendered DOM");
    assert!(
        dom.contains(&format!(
            r#"<span id="status" class="status {}">{}</span>"#,
            expected.status_class, expected.status
        )),
        "status {}",
        expected.status
    );
    for drug in expected.drugs {
        let named = dom.split(r#"<text class="drug""#).skip(1).any(|element| {
            element
                .split_once('>')
                .is_some_and(|(_, text)| text.starts_with(&format!("{drug}</text>")))
        });
        assert!(named, "the timeline names {drug}");
    }
    assert_eq!(
        dom.matches(r#"<rect class="bar "#).count(),
        expected.drugs.len(),
        "one bar per trial"
    );
    assert!(dom.contains(r#"<polyline class="phq9" points=""#));
    assert_eq!(
        dom.matches(r#"<circle class="phq9""#).count(),
        phq9_totals(expected.fixture),
        "one point per PHQ-9 total"
    );
    for (code, evidence) in expected.hints {
        assert!(
            dom.contains(&format!(r#"<span class="code">{code}</span>"#)),
            "{code}"
        );
        for e in *evidence {
            assert!(dom.contains(&format!("<code>{e}</code>")), "{code}: {e}");
        }
    }
    assert_eq!(
        dom.contains(r#"<div class="hint critical""#),
        expected.critical
    );
    if expected.critical {
        let caution = dom.find(r#"<div class="hint critical""#).unwrap();
        let timeline = dom.find(r#"<section id="timeline">"#).unwrap();
        assert!(
            caution < timeline,
            "a critical caution comes before the timeline"
        );
    }
    assert!(dom.contains("as of <b id=\"as-of\">2025-06-01</b>"));
    for private in expected.not_shown {
        assert!(!dom.contains(private), "the page shows {private}");
    }
    assert!(!dom.contains("<script"));

    let shot = scratch.0.join("page.png");
    run_chromium(
        &chromium,
        &scratch.0,
        &[
            format!("--screenshot={}", shot.display()),
            format!("--window-size={},{}", WINDOW.0, WINDOW.1),
        ],
        &url,
        &scratch.0.join("screenshot.out"),
    );
    let image = decode_png(&std::fs::read(&shot).expect("the screenshot"));
    assert_eq!((image.width, image.height), WINDOW);
    let total = image.pixels.len();
    assert!(
        image.not_white() > total / 50,
        "the page is drawn: {} of {total} pixels are not white",
        image.not_white()
    );
    assert!(
        image.count(FAILED_RED) > 500,
        "failed courses are drawn as red bars ({} red pixels)",
        image.count(FAILED_RED)
    );
    assert_eq!(
        image.count(CRITICAL_BACKGROUND) > 5_000,
        expected.critical,
        "a critical caution stands out"
    );
}

#[test]
fn chromium_renders_a_met_patients_three_failed_courses_and_phq9_line() {
    rendered_page_shows(&MET_THREE_COURSES);
}

#[test]
fn chromium_renders_a_possible_patient_with_a_course_of_unknown_dose() {
    rendered_page_shows(&POSSIBLE);
}

#[test]
fn chromium_renders_a_not_met_patient_with_the_critical_suicide_risk_caution_first() {
    rendered_page_shows(&NOT_MET_WITH_SUICIDE_RISK);
}

#[test]
fn the_html_page_goes_to_standard_output_and_a_failed_write_is_an_error() {
    let fixture = Path::new(FIXTURES).join(POSSIBLE.fixture);
    let out = Command::new(env!("CARGO_BIN_EXE_trdscreen"))
        .arg("evaluate")
        .arg(&fixture)
        .args(["--as-of", "2025-06-01", "--html"])
        .output()
        .expect("runs");
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));

    let full = || std::fs::File::create("/dev/full").expect("/dev/full");
    let to_stdout = Command::new(env!("CARGO_BIN_EXE_trdscreen"))
        .arg("evaluate")
        .arg(&fixture)
        .args(["--as-of", "2025-06-01", "--html"])
        .stdout(full())
        .output()
        .expect("runs");
    assert_eq!(to_stdout.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&to_stdout.stderr),
        "trdscreen: cannot write the output: no storage space\n"
    );
    let to_file = Command::new(env!("CARGO_BIN_EXE_trdscreen"))
        .arg("evaluate")
        .arg(&fixture)
        .args(["--as-of", "2025-06-01", "--html", "/dev/full"])
        .output()
        .expect("runs");
    assert_eq!(to_file.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&to_file.stderr),
        "trdscreen: cannot write /dev/full: no storage space\n"
    );
    let both = Command::new(env!("CARGO_BIN_EXE_trdscreen"))
        .arg("evaluate")
        .arg(&fixture)
        .args(["--json", "--html"])
        .output()
        .expect("runs");
    assert_eq!(
        both.status.code(),
        Some(2),
        "--json and --html exclude each other"
    );
}

#[test]
fn a_reader_that_goes_away_ends_a_long_page_quietly() {
    // 1,200 PHQ-9 totals: a page well over what a pipe holds (64 KiB).
    let mut entries =
        vec![serde_json::json!({"resource": {"resourceType": "Patient", "id": "p1"}})];
    for i in 0..1200 {
        let day = trdscreen::date::Date::parse("2020-01-01")
            .unwrap()
            .plus_days(i * 2);
        entries.push(serde_json::json!({"resource": {
            "resourceType": "Observation", "id": format!("o{i}"), "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": day.to_string(),
            "valueInteger": i % 28}}));
    }
    let scratch = Scratch::new("pipe");
    let bundle = scratch.0.join("many-scores.json");
    std::fs::write(
        &bundle,
        serde_json::json!({"resourceType": "Bundle", "type": "collection", "entry": entries})
            .to_string(),
    )
    .unwrap();
    let whole = Command::new(env!("CARGO_BIN_EXE_trdscreen"))
        .arg("evaluate")
        .arg(&bundle)
        .args(["--as-of", "2025-06-01", "--html"])
        .output()
        .expect("runs");
    assert!(whole.stdout.len() > 2 * 64 * 1024, "more than a pipe holds");
    let mut child = crate::child::spawn(
        Command::new(env!("CARGO_BIN_EXE_trdscreen"))
            .arg("evaluate")
            .arg(&bundle)
            .args(["--as-of", "2025-06-01", "--html"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        "runs",
    );
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 9];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(&first, b"<!DOCTYPE");
    assert_eq!(
        out.status.code(),
        Some(0),
        "a closed pipe ends the output quietly"
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The view's router served on 127.0.0.1:0 (and the audit trail's sender, when it is on) until
/// dropped.
struct ViewServer {
    address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    audit_sender: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for ViewServer {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(sender) = &self.audit_sender {
            sender.abort();
        }
    }
}

async fn serve_view(settings: &Settings, key: Arc<LinkKey>) -> ViewServer {
    let screener =
        Arc::new(Screener::new(settings, &Secrets::default()).expect("the screener starts"));
    let audit_sender = screener.audit().run_sender(std::future::pending::<()>());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds 127.0.0.1:0");
    let address = listener.local_addr().unwrap();
    let app = trdscreen::view::http::router(screener, key);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    ViewServer {
        address,
        task,
        audit_sender,
    }
}

/// The AuditEvents naming `Patient/{patient}` that `service_name` recorded, once there are any
/// (asked for up to 30 s: the trail sends in the background).
async fn audit_events(
    fhir: &crate::service::Fhir,
    patient: &str,
    service_name: &str,
) -> Vec<Value> {
    let url = format!(
        "{}/AuditEvent?entity=Patient/{patient}&_count=100",
        fhir.base
    );
    for _ in 0..150 {
        let bundle: Value = fhir
            .http
            .get(&url)
            .header("Accept", "application/fhir+json")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let found: Vec<Value> = bundle["entry"]
            .as_array()
            .map(|e| e.iter().map(|e| e["resource"].clone()).collect())
            .unwrap_or_default();
        let ours: Vec<Value> = found
            .into_iter()
            .filter(|e| e["source"]["observer"]["display"] == service_name)
            .collect();
        if !ours.is_empty() {
            return ours;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Vec::new()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

const CARD: &str = "3c5e2f0a-7d41-4b8e-9a6f-2b1d0c9e8f71";

#[tokio::test]
async fn a_link_altered_expired_or_of_another_key_is_refused_with_403_and_nothing_said() {
    let key = Arc::new(LinkKey::generate().unwrap());
    // No FHIR server: a link that verified would answer 503, not 403.
    let server = serve_view(&Settings::default(), key.clone()).await;
    let patient = PatientId::parse("p-1").unwrap();
    let now = SystemTime::now();
    let valid = key.issue(&patient, CARD, now, DEFAULT_TTL).unwrap();
    let expired = key
        .issue(&patient, CARD, now - Duration::from_secs(600), DEFAULT_TTL)
        .unwrap();
    let mut altered = valid.clone().into_bytes();
    let at = altered.len() / 2;
    altered[at] = if altered[at] == b'x' { b'y' } else { b'x' };
    let altered = String::from_utf8(altered).unwrap();
    let foreign = LinkKey::generate()
        .unwrap()
        .issue(&patient, CARD, now, DEFAULT_TTL)
        .unwrap();
    let client = http();
    for (what, token) in [
        ("expired", expired.as_str()),
        ("altered", altered.as_str()),
        ("of another key", foreign.as_str()),
        ("not a token", "not-a-token"),
    ] {
        let response = client
            .get(format!("http://{}/view/{token}", server.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{what}");
        assert_eq!(response.headers()["cache-control"], "no-store", "{what}");
        assert!(
            response.bytes().await.unwrap().is_empty(),
            "{what}: no detail"
        );
    }
    let response = client
        .get(format!("http://{}/view/{valid}", server.address))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        503,
        "the valid link passes the check and finds no FHIR server"
    );
}

#[tokio::test]
async fn a_valid_link_shows_the_patients_page_read_from_the_fhir_server() {
    if !crate::service::fhir_servers() {
        return;
    }
    let fhir = crate::service::Fhir::plain();
    let loaded = fhir
        .load(&format!("scenarios/{}", MET_THREE_COURSES.fixture), "view")
        .await;
    let key = Arc::new(LinkKey::generate().unwrap());
    // The audit trail goes to the same FHIR server, under a service name of this test's own.
    let service_name = crate::service::unique_prefix("trdscreen-view");
    let spill = Scratch::new("audit");
    let mut settings = crate::service::settings(&fhir.base);
    settings.audit.base_url = Some(fhir.base.parse().expect("an http(s) URL"));
    settings.audit.spill_dir = Some(spill.0.clone());
    settings.audit.service_name = service_name.clone();
    settings.audit.retry_interval = Duration::from_millis(200);
    let server = serve_view(&settings, key.clone()).await;
    let patient = PatientId::parse(&loaded.patient_id).unwrap();
    let token = key
        .issue(&patient, CARD, SystemTime::now(), DEFAULT_TTL)
        .unwrap();
    let response = http()
        .get(format!("http://{}/view/{token}", server.address))
        .header("x-request-id", "view-request-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("default-src 'none';") && policy.contains("script-src 'none'"));
    let page = response.text().await.unwrap();
    assert!(page.contains(&format!("Patient/{}", loaded.patient_id)));
    assert!(page.contains(r#"<span id="status" class="status "#));
    for drug in MET_THREE_COURSES.drugs {
        assert!(page.contains(&format!(">{drug}</text>")), "{drug}");
    }
    assert_eq!(
        page.matches(r#"<circle class="phq9""#).count(),
        phq9_totals(MET_THREE_COURSES.fixture)
    );
    for private in MET_THREE_COURSES.not_shown {
        assert!(!page.contains(private), "the page shows {private}");
    }

    // The view is in the audit trail as a read of the patient's record by the card's link.
    let events = audit_events(&fhir, &loaded.patient_id, &service_name).await;
    assert_eq!(events.len(), 1, "one audit record for one view: {events:?}");
    let client = &events[0]["agent"][0]["who"]["identifier"];
    assert_eq!(client["system"], trdscreen::view::http::LINK_ISSUER);
    assert_eq!(client["value"], format!("card:{CARD}"));
    assert_eq!(events[0]["outcome"], "0", "success");
    let request_ids: Vec<&Value> = events[0]["entity"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"]["code"] == "XrequestId")
        .map(|e| &e["what"]["identifier"]["value"])
        .collect();
    assert_eq!(request_ids, [&Value::from("view-request-1")]);

    // A link to a patient the server does not have.
    let missing = PatientId::parse(&format!("{}-nobody", loaded.prefix)).unwrap();
    let token = key
        .issue(&missing, CARD, SystemTime::now(), DEFAULT_TTL)
        .unwrap();
    let response = http()
        .get(format!("http://{}/view/{token}", server.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}
