//! NDJSON lines as the nightly job reads them: routed to bucket files by the first pass, grouped by
//! patient and screened by the second. Beyond "never a panic", the routing must not let one line
//! become another: every resource line that reaches a patient's group is one the first pass routed,
//! and each is one whole JSON value (the second pass reads it without checking it again). The
//! bucket is held to 1 KiB, so that the second pass splits it and weighs its patients: a patient is
//! read in one piece or named too large, never both, never in two pieces (a record in two parts
//! would be screened as two partial records).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use std::sync::LazyLock;
use trdscreen::batch::ndjson::record_of;
use trdscreen::batch::bucket::{Bound, Piece};
use trdscreen::batch::partition::{group_bucket, partition};
use trdscreen::batch::progress::Progress;
use trdscreen::batch::shard::Shard;
use trdscreen::date::Date;
use trdscreen::fhir::PatientId;
use trdscreen::knowledge::Knowledge;
use trdscreen::screening::evaluate;

static KNOWLEDGE: LazyLock<Knowledge> = LazyLock::new(Knowledge::embedded);

fuzz_target!(|data: &[u8]| {
    let dir = tempdir();
    let input = dir.join("input.ndjson");
    std::fs::write(&input, data).unwrap();
    let work = dir.join("work");
    std::fs::create_dir(&work).unwrap();
    let progress = Progress::new(false);
    let shard = Shard::new(0, 1).unwrap();
    let mut parts = partition(&[input], shard, &work, 1 << 20, &progress, None).unwrap();
    // One bucket, held to 1 KiB: split (16 ways at most, to keep file churn low) and weighed.
    parts.bound = Bound::of_bucket(128, 16);
    let mut routed = 0;
    let mut read = HashSet::new();
    let mut too_large = HashSet::new();
    let mut text = String::new();
    for i in 0..parts.buckets.len() {
        parts
            .take(i, &mut text, &mut |piece| {
                let text = match piece {
                    Piece::Text(text) => text,
                    Piece::TooLarge { patient, .. } => {
                        assert!(too_large.insert(patient.to_owned()), "named too large twice");
                        return Ok(());
                    }
                };
                assert!(text.len() <= 1024, "a piece over the bound");
                let (groups, medications) = group_bucket(text);
                for group in &groups {
                    assert!(read.insert(group.patient.to_owned()), "a patient in two pieces");
                    routed += group.resources.len() as u64;
                    for line in group.resources.iter().chain(medications.values()) {
                        assert!(
                            serde_json::from_str::<&serde_json::value::RawValue>(line).is_ok(),
                            "a bucket line is not one JSON value"
                        );
                    }
                    let id = PatientId::parse(group.patient)
                        .expect("a bucket holds only valid patient ids");
                    let record = record_of(id, group, &medications);
                    let _ = evaluate(&record, Date::parse("2025-06-01").unwrap(), &KNOWLEDGE);
                }
                Ok(())
            })
            .unwrap();
    }
    assert!(read.is_disjoint(&too_large), "a patient both read and named too large");
    if too_large.is_empty() {
        assert_eq!(routed, parts.stats.clinical_resources, "a line became another line");
    } else {
        assert!(routed < parts.stats.clinical_resources, "a line became another line");
    }
    std::fs::remove_dir_all(&dir).unwrap();
});

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("trdscreen-fuzz-ndjson-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
