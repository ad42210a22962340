//! The JSON readers issue 15 names, over the same NDJSON lines into the same types, one thread each:
//!
//! - `head`: what the nightly job's first pass reads of every line (`src/batch/line.rs`'s `RawHead`,
//!   copied here: type, id, subject, patient, medicationReference; the rest skipped);
//! - `resource`: the whole resource as screening reads it (`trdscreen_core`'s `ParsedResource`, the
//!   job's second pass and `EvaluateBundle`'s per-entry read); also into the same elements with
//!   borrowed strings (`borrowed.rs`), and each line as its own type with the type known beforehand
//!   (a lower bound: no head).
//!
//! ```sh
//! cargo run --release -- DIR [ROUNDS]
//! cargo run --release -- ../../tests/fixtures/typical-patient.json   # a Bundle's resources, pretty-printed
//! RUSTFLAGS="-C target-cpu=x86-64-v3" cargo run --release -- DIR   # sonic-rs's SIMD is chosen at build time
//! ```
//!
//! With `ONLY=ignored|value|resource`, only serde_json, ROUNDS times: each line checked and skipped
//! (`IgnoredAny`: the tokenising alone, no value built), read into a `serde_json::Value`, or read as
//! screening reads it; for `perf record` and for the share of a read that is building values.
//!
//! Prints MB/s per reader and target (rounds alternate the readers), and how many lines each read.

mod borrowed;
mod hand;

use serde::Deserialize;
use std::borrow::Cow;
use std::time::Instant;
use trdscreen_core::fhir::record::ParsedResource;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct RawHead<'a> {
    #[serde(borrow)]
    resource_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    subject: Option<RawReference<'a>>,
    #[serde(borrow)]
    patient: Option<RawReference<'a>>,
    #[serde(borrow)]
    medication_reference: Option<RawReference<'a>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct RawReference<'a> {
    #[serde(borrow)]
    reference: Option<Cow<'a, str>>,
}

/// What a read gave, to check that the readers agree: per line, read or not, and the head's type
/// and id.
fn head_key(h: &RawHead) -> (Option<String>, Option<String>, Option<String>) {
    let subject = h
        .subject
        .as_ref()
        .or(h.patient.as_ref())
        .and_then(|r| r.reference.as_deref().map(str::to_owned));
    (
        h.resource_type.as_deref().map(str::to_owned),
        h.id.as_deref().map(str::to_owned),
        subject,
    )
}

fn resource_key(r: &ParsedResource) -> (Option<String>, Option<String>, Option<String>) {
    let h = r.head();
    (
        h.resource_type.clone(),
        h.id.clone(),
        h.patient_reference().map(str::to_owned),
    )
}

type Key = Option<(Option<String>, Option<String>, Option<String>)>;

fn run(name: &str, lines: &[String], read: impl Fn(&str, &mut Vec<u8>) -> Key) -> Vec<Key> {
    let bytes: usize = lines.iter().map(String::len).sum();
    let mut scratch = Vec::new();
    let started = Instant::now();
    let keys: Vec<Key> = lines.iter().map(|l| read(l, &mut scratch)).collect();
    let secs = started.elapsed().as_secs_f64();
    let read_ok = keys.iter().filter(|k| k.is_some()).count();
    println!(
        "  {name:28} {:7.1} MB/s  {secs:6.2} s  {read_ok} of {} lines read",
        bytes as f64 / 1e6 / secs,
        lines.len()
    );
    keys
}

fn simd_copy<'a>(line: &str, scratch: &'a mut Vec<u8>) -> &'a mut [u8] {
    scratch.clear();
    scratch.extend_from_slice(line.as_bytes());
    scratch
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: json-readers DIR|BUNDLE.json [ROUNDS]");
    let rounds: usize = args
        .next()
        .map_or(3, |r| r.parse().expect("ROUNDS: a count"));
    if dir.ends_with(".json") {
        // A Bundle (the 76 KB typical patient): its entries' resources, each pretty-printed as the
        // Bundle is, read many times over.
        let bundle: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&dir).expect("a readable Bundle"))
                .expect("a JSON Bundle");
        let resources: Vec<String> = bundle["entry"]
            .as_array()
            .expect("Bundle.entry")
            .iter()
            .map(|e| serde_json::to_string_pretty(&e["resource"]).expect("JSON"))
            .collect();
        let lines: Vec<String> = (0..2000).flat_map(|_| resources.iter().cloned()).collect();
        return measure(
            &lines,
            rounds,
            &format!("{dir}: {} resources x 2000", resources.len()),
        );
    }
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("a readable directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
        .collect();
    files.sort();
    let mut lines = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("UTF-8 NDJSON");
        lines.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned),
        );
    }
    measure(&lines, rounds, &format!("{dir}: {} files", files.len()));
}

fn measure(lines: &[String], rounds: usize, what: &str) {
    let bytes: usize = lines.iter().map(String::len).sum();
    println!(
        "{what}: {} lines, {:.1} MB",
        lines.len(),
        bytes as f64 / 1e6
    );
    if let Ok(only) = std::env::var("ONLY") {
        for _ in 0..rounds {
            match only.as_str() {
                "ignored" => {
                    run("ignored serde_json", lines, |l, _| {
                        serde_json::from_str::<serde::de::IgnoredAny>(l)
                            .ok()
                            .map(|_| (None, None, None))
                    });
                }
                "borrowed" => {
                    run("borrowed serde_json", lines, |l, _| {
                        serde_json::from_str::<borrowed::AnyResource>(l)
                            .ok()
                            .map(|r| r.key())
                    });
                }
                "hand" => {
                    run("borrowed hand-written", lines, |l, _| {
                        hand::read(l).ok().map(|r| r.key())
                    });
                }
                "agree" => {
                    let a: Vec<_> = lines
                        .iter()
                        .map(|l| {
                            serde_json::from_str::<borrowed::AnyResource>(l)
                                .ok()
                                .map(|r| borrowed_digest(&r))
                        })
                        .collect();
                    let b: Vec<_> = lines
                        .iter()
                        .map(|l| hand::read(l).ok().map(|r| hand_digest(&r)))
                        .collect();
                    let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count();
                    println!(
                        "  hand-written differs from serde_json (borrowed) on {differ} of {} lines",
                        lines.len()
                    );
                    return;
                }
                "value" => {
                    run("value serde_json", lines, |l, _| {
                        serde_json::from_str::<serde_json::Value>(l)
                            .ok()
                            .map(|_| (None, None, None))
                    });
                }
                _ => {
                    run("resource serde_json", lines, |l, _| {
                        serde_json::from_str::<ParsedResource>(l)
                            .ok()
                            .map(|r| resource_key(&r))
                    });
                }
            }
        }
        return;
    }
    for round in 1..=rounds {
        println!("round {round}");
        let a = run("head serde_json", lines, |l, _| {
            serde_json::from_str::<RawHead>(l)
                .ok()
                .map(|h| head_key(&h))
        });
        let b = run("head sonic-rs", lines, |l, _| {
            sonic_rs::from_str::<RawHead>(l).ok().map(|h| head_key(&h))
        });
        let c = run("head simd-json (copy)", lines, |l, s| {
            simd_json::serde::from_slice::<RawHead>(simd_copy(l, s))
                .ok()
                .map(|h| head_key(&h))
        });
        report_agreement("head", &a, &[("sonic-rs", &b), ("simd-json", &c)]);
        let a = run("resource serde_json", lines, |l, _| {
            serde_json::from_str::<ParsedResource>(l)
                .ok()
                .map(|r| resource_key(&r))
        });
        let b = run("resource sonic-rs", lines, |l, _| {
            sonic_rs::from_str::<ParsedResource>(l)
                .ok()
                .map(|r| resource_key(&r))
        });
        let c = run("resource simd-json (copy)", lines, |l, s| {
            simd_json::serde::from_slice::<ParsedResource>(simd_copy(l, s))
                .ok()
                .map(|r| resource_key(&r))
        });
        let d = run("resource serde_json borrowed", lines, |l, _| {
            serde_json::from_str::<borrowed::AnyResource>(l)
                .ok()
                .map(|r| r.key())
        });
        // A lower bound: the resource read as its own type, its type known beforehand (as the
        // first pass knows it); no head, so it reads fewer elements than the others.
        let kinds: Vec<Option<String>> = lines
            .iter()
            .map(|l| {
                serde_json::from_str::<RawHead>(l)
                    .ok()
                    .and_then(|h| h.resource_type.map(Cow::into_owned))
            })
            .collect();
        let next = std::cell::Cell::new(0);
        run("resource as its own type", lines, |l, _| {
            let i = next.replace(next.get() + 1);
            let kind = kinds[i].as_deref()?;
            trdscreen_core::fhir::resources::Typed::parse(kind, l)?
                .ok()
                .map(|_| (None, None, None))
        });
        report_agreement(
            "resource",
            &a,
            &[("sonic-rs", &b), ("simd-json", &c), ("borrowed", &d)],
        );
    }
}

fn report_agreement(target: &str, reference: &[Key], others: &[(&str, &[Key])]) {
    for (name, keys) in others {
        let differ = reference
            .iter()
            .zip(keys.iter())
            .filter(|(a, b)| a != b)
            .count();
        println!("  {target}: {name} differs from serde_json on {differ} lines");
    }
}

/// What a read gave, deeper than the key: codes, display texts, values, counts of lists.
type Digest = (
    (Option<String>, Option<String>, Option<String>),
    Vec<String>,
    usize,
    usize,
    Option<i64>,
);

fn borrowed_digest(r: &borrowed::AnyResource) -> Digest {
    let mut codes = Vec::new();
    let concepts = [&r.code, &r.medication_codeable_concept, &r.clinical_status];
    for c in concepts.into_iter().flatten() {
        for coding in &c.coding {
            codes.push(format!(
                "{:?}|{:?}|{:?}",
                coding.system, coding.code, coding.display
            ));
        }
        codes.push(format!("{:?}", c.text));
    }
    for c in &r.component {
        codes.push(format!(
            "{:?}",
            c.value_quantity.as_ref().map(|q| q.value.map(|v| v.get()))
        ));
        codes.push(format!("{:?}", c.value_integer));
    }
    for d in &r.dosage_instruction {
        codes.push(format!("{:?}", d.text));
        let period = d.timing.as_ref().and_then(|t| t.repeat.as_ref()).map(|r| {
            (
                r.frequency,
                r.period.map(|p| p.get()),
                r.period_unit.clone(),
            )
        });
        codes.push(format!("{period:?}"));
        for q in &d.dose_and_rate {
            codes.push(format!(
                "{:?}",
                q.dose_quantity
                    .as_ref()
                    .map(|q| (q.value.map(|v| v.get()), q.unit.clone()))
            ));
        }
    }
    codes.push(format!(
        "{:?}{:?}{:?}",
        r.effective_date_time, r.authored_on, r.onset_date_time
    ));
    (
        r.key(),
        codes,
        r.component.len(),
        r.dosage_instruction.len(),
        r.value_integer,
    )
}

fn hand_digest(r: &hand::AnyResource) -> Digest {
    let mut codes = Vec::new();
    let concepts = [&r.code, &r.medication_codeable_concept, &r.clinical_status];
    for c in concepts.into_iter().flatten() {
        for coding in &c.coding {
            codes.push(format!(
                "{:?}|{:?}|{:?}",
                coding.system, coding.code, coding.display
            ));
        }
        codes.push(format!("{:?}", c.text));
    }
    for c in &r.component {
        codes.push(format!("{:?}", c.value_quantity.as_ref().map(|q| q.value)));
        codes.push(format!("{:?}", c.value_integer));
    }
    for d in &r.dosage_instruction {
        codes.push(format!("{:?}", d.text));
        let period = d
            .timing
            .as_ref()
            .and_then(|t| t.repeat.as_ref())
            .map(|r| (r.frequency, r.period, r.period_unit.clone()));
        codes.push(format!("{period:?}"));
        for q in &d.dose_quantities {
            codes.push(format!(
                "{:?}",
                q.as_ref().map(|q| (q.value, q.unit.clone()))
            ));
        }
    }
    codes.push(format!(
        "{:?}{:?}{:?}",
        r.effective_date_time, r.authored_on, r.onset_date_time
    ));
    (
        r.key(),
        codes,
        r.component.len(),
        r.dosage_instruction.len(),
        r.value_integer,
    )
}
