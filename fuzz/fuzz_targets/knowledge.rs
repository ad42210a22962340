//! A site's knowledge override: one of the five files replaced by the input (its first byte picks
//! which). A bad file must be refused with a reason, and a file that loads must screen.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use trdscreen::date::Date;
use trdscreen::fhir::read_patient_bundle;
use trdscreen::knowledge::{EMBEDDED, Knowledge};
use trdscreen::screening::evaluate;

static TYPICAL: &str = include_str!("../../tests/fixtures/typical-patient.json");
static RECORD: LazyLock<trdscreen::fhir::PatientRecord> =
    LazyLock::new(|| read_patient_bundle(TYPICAL).unwrap());

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut texts = EMBEDDED.map(|(name, text)| (name, text.to_owned()));
    texts[usize::from(which) % texts.len()].1 = text.to_owned();
    if let Ok(k) = Knowledge::from_texts(&texts) {
        let _ = evaluate(&RECORD, Date::parse("2025-06-01").unwrap(), &k);
    }
});
