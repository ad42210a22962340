//! A Bundle as EvaluateBundle and `trdscreen evaluate` receive it: read, evaluate on two days, and
//! render for a person and as JSON. Any outcome but a panic (or a hang) is fine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use trdscreen::date::Date;
use trdscreen::fhir::read_patient_bundle;
use trdscreen::knowledge::Knowledge;
use trdscreen::render::summary;
use trdscreen::screening::evaluate;

static KNOWLEDGE: LazyLock<Knowledge> = LazyLock::new(Knowledge::embedded);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(record) = read_patient_bundle(text) else {
        return;
    };
    for day in ["2025-06-01", "1970-01-01"] {
        let a = evaluate(&record, Date::parse(day).unwrap(), &KNOWLEDGE);
        let _ = summary(&a, false);
        let _ = serde_json::to_string(&a).unwrap();
    }
});
