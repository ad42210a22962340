//! Throughput of screening one patient, on `tests/fixtures/typical-patient.json` (one patient, about
//! two years of care: 12 medication records, 20 observations, 8 conditions; 76 KB of JSON).
//!
//! - `evaluate/typical_patient`: the pure engine alone, `screening::evaluate` on a record parsed
//!   once before the loop (the knowledge base is loaded once too).
//! - `parse_and_evaluate/typical_patient`: from the JSON text, `fhir::read_patient_bundle` then
//!   `screening::evaluate`, which is what one request costs before any transport.
//!
//! Both report one element per iteration, so criterion prints evaluations per second. Criterion runs
//! on one thread: the figures are for one core. No timing is asserted anywhere; results and the
//! machine they were taken on are in `docs/performance.md`.
//!
//! The bench declares the allocator the service and the nightly job ship (mimalloc, see
//! `src/allocator.rs`), so its figures are what one call costs there; until issue 15 it ran on
//! glibc's malloc (docs/performance.md gives both).
//!
//! Run with:
//!
//! ```text
//! cargo bench --bench evaluate -- --warm-up-time 2 --measurement-time 8
//! ```
//!
//! With `TRDSCREEN_BENCH_ITERATIONS=N` set, the binary skips criterion and runs `parse_and_evaluate`
//! exactly N times: a fixed amount of work whose instruction count `valgrind --tool=callgrind`
//! measures the same on a busy machine as on a quiet one (docs/performance.md).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, Throughput, criterion_group};
use std::hint::black_box;
use trdscreen_core::date::Date;
use trdscreen_core::fhir::read_patient_bundle;
use trdscreen_core::knowledge::Knowledge;
use trdscreen_core::screening::evaluate;

const TYPICAL_PATIENT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/typical-patient.json"
));

fn as_of() -> Date {
    Date::parse("2025-06-01").expect("a valid day")
}

fn bench_evaluate(c: &mut Criterion) {
    let k = Knowledge::embedded();
    let as_of = as_of();
    let record =
        read_patient_bundle(TYPICAL_PATIENT).expect("the fixture is a valid one-patient Bundle");
    // Guard against measuring a record that screens to nothing.
    assert!(
        !evaluate(&record, as_of, &k).trials.is_empty(),
        "the fixture should yield trials"
    );

    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(1));
    group.bench_function("typical_patient", |b| {
        b.iter(|| evaluate(black_box(&record), black_box(as_of), black_box(&k)))
    });
    group.finish();
}

fn bench_parse_and_evaluate(c: &mut Criterion) {
    let k = Knowledge::embedded();
    let as_of = as_of();

    let mut group = c.benchmark_group("parse_and_evaluate");
    group.throughput(Throughput::Elements(1));
    group.bench_function("typical_patient", |b| {
        b.iter(|| {
            let record =
                read_patient_bundle(black_box(TYPICAL_PATIENT)).expect("the fixture parses");
            evaluate(&record, black_box(as_of), black_box(&k))
        })
    });
    group.finish();
}

/// `parse_and_evaluate` `iterations` times, outside criterion.
fn parse_and_evaluate_times(iterations: u64) {
    let k = Knowledge::embedded();
    let as_of = as_of();
    let mut trials = 0;
    for _ in 0..iterations {
        let record = read_patient_bundle(black_box(TYPICAL_PATIENT)).expect("the fixture parses");
        trials += evaluate(&record, black_box(as_of), black_box(&k))
            .trials
            .len();
    }
    println!("{iterations} iterations, {trials} trials");
}

criterion_group!(benches, bench_evaluate, bench_parse_and_evaluate);

fn main() {
    match std::env::var("TRDSCREEN_BENCH_ITERATIONS") {
        Ok(n) => {
            parse_and_evaluate_times(n.parse().expect("TRDSCREEN_BENCH_ITERATIONS is a count"))
        }
        Err(_) => {
            benches();
            Criterion::default().configure_from_args().final_summary();
        }
    }
}
