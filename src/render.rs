//! The assessment as a person reads it on a terminal.

use crate::screening::{Assessment, Severity, TrdStatus, TrialOutcome};
use std::borrow::Cow;
use std::fmt::Write;

/// Text from a record or a caller as a terminal may show it: control characters (escape
/// sequences, newlines that would forge a line) and bidirectional overrides written as `\u{..}`.
/// Ids are checked where they are read; this is the second line of defence.
fn safe(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A list of such texts, joined.
fn safe_list(items: &[String]) -> String {
    items.iter().map(|i| safe(i)).collect::<Vec<_>>().join(", ")
}

pub fn summary(a: &Assessment, color: bool) -> String {
    let paint = |code: &str, text: &str| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    };
    let mut out = String::new();
    let status = match a.status {
        TrdStatus::Met => paint("1;31", "MET"),
        TrdStatus::Possible => paint("1;33", "POSSIBLE"),
        TrdStatus::NotMet => paint("1", "NOT MET"),
        TrdStatus::NotApplicable => "NOT APPLICABLE".to_owned(),
    };
    let _ = writeln!(
        out,
        "Patient {}  as of {}  (rules {})",
        safe(a.patient_id.as_str()),
        safe(&a.as_of.to_string()),
        safe(&a.ruleset_version)
    );
    let _ = write!(
        out,
        "TRD criteria: {status}  failed adequate courses: {}  Thase-Rush stage: {}",
        a.failed_adequate_trials, a.staging.thase_rush_stage
    );
    match a.staging.maudsley_score {
        Some(m) => {
            let _ = writeln!(out, "  Maudsley: {m}/15");
        }
        None => out.push('\n'),
    }
    if !a.trials.is_empty() {
        let _ = writeln!(
            out,
            "\nTrials (course: antidepressants started within two weeks of one another)"
        );
        for t in &a.trials {
            let dose = t
                .daily_dose_mg
                .map_or("dose unknown".to_owned(), |d| format!("{d} mg/day"));
            let outcome = match t.outcome {
                TrialOutcome::Failed if t.outcome_inferred => "failed (inferred)",
                TrialOutcome::Failed => "failed",
                TrialOutcome::Responded => "responded",
                TrialOutcome::Ongoing => "ongoing",
                TrialOutcome::Unknown => "outcome unknown",
            };
            let flags = if t.augmentation {
                "augmentation".to_owned()
            } else {
                format!(
                    "{}, {}",
                    if t.adequate_dose {
                        "adequate dose"
                    } else {
                        "dose not adequate/unconfirmed"
                    },
                    if t.adequate_duration {
                        "adequate duration"
                    } else {
                        "short"
                    }
                )
            };
            let course = t.course.map_or("-".to_owned(), |c| c.to_string());
            let _ = writeln!(
                out,
                "  {course:>3}  {:<16} {} to {:<10} {:>5.1} wk  {:<16} {:<36} {}{}",
                safe(&t.ingredient),
                safe(&t.start),
                safe(t.end.as_deref().unwrap_or("now")),
                t.weeks,
                dose,
                flags,
                outcome,
                if t.counted {
                    ""
                } else {
                    "  (before this episode)"
                }
            );
            let _ = writeln!(out, "    evidence: {}", safe_list(&t.evidence));
        }
    }
    if !a.hints.is_empty() {
        let _ = writeln!(out, "\nCautions");
        for h in &a.hints {
            let level = match h.severity {
                Severity::Critical => paint("1;31", "CRITICAL"),
                Severity::Warning => paint("33", "WARNING"),
                Severity::Info => "INFO".to_owned(),
            };
            let _ = writeln!(out, "  {level} {}: {}", safe(&h.code), safe(&h.message));
            let _ = writeln!(
                out,
                "    affects: {}; evidence: {}",
                safe_list(&h.affects),
                safe_list(&h.evidence)
            );
        }
    }
    if !a.suggestions.is_empty() {
        let _ = writeln!(
            out,
            "\nOptions to consider (screening only: a clinician decides)"
        );
        for s in &a.suggestions {
            let mark = if s.contraindicated {
                paint("1;31", " [CONTRAINDICATED]")
            } else {
                String::new()
            };
            let cautions = if s.cautions.is_empty() {
                String::new()
            } else {
                format!("  (caution: {})", safe_list(&s.cautions))
            };
            let _ = writeln!(out, "  - {}{mark}{cautions}", safe(&s.title));
        }
    }
    let _ = writeln!(out, "\nWhy");
    for r in &a.reasons {
        let _ = writeln!(out, "  - {}", safe(&r.text));
        if !r.evidence.is_empty() {
            let _ = writeln!(out, "    evidence: {}", safe_list(&r.evidence));
        }
    }
    if !a.diagnostics.is_empty() {
        let _ = writeln!(out, "\nSet aside ({})", a.diagnostics.len());
        for d in &a.diagnostics {
            let _ = writeln!(
                out,
                "  - {} [{}]: {}",
                safe(&d.resource),
                d.kind.as_str(),
                safe(&d.message)
            );
        }
    }
    out
}

/// A nightly job's outcome in a few lines for the person or log that ran it.
/// `trdscreen export`'s summary: what the directory now holds.
pub fn export_summary(e: &crate::batch::export::ExportSummary, dir: &std::path::Path) -> String {
    let scope = match e.scope {
        crate::fhir::bulk::local::ScopeKind::Whole => "every patient's whole record",
        crate::fhir::bulk::local::ScopeKind::Patients => {
            "the whole records of the changed patients (a patient-scoped export)"
        }
        crate::fhir::bulk::local::ScopeKind::Changes => {
            "the changed patients, to be read whole one by one by the shards"
        }
    };
    let mut out = format!(
        "Exported {} files ({:.1} MB) into {}: {scope}; transactionTime {}.\n",
        e.files,
        e.bytes as f64 / 1e6,
        dir.display(),
        e.transaction_time
    );
    out.push_str(&format!("_typeFilter: {}", e.type_filter));
    if e.resources_outside_filter > 0 {
        out.push_str(&format!(
            " ({} Observations outside it)",
            e.resources_outside_filter
        ));
    }
    out.push('\n');
    if let Some(changed) = e.changed_patients {
        out.push_str(&format!(
            "Changed patients: {changed}, read whole by {}.\n",
            e.full_read.as_deref().unwrap_or("per-patient")
        ));
    }
    if e.deleted_unattributed > 0 {
        out.push_str(&format!(
            "Deleted resources naming no patient: {} (screened at the next full run).\n",
            e.deleted_unattributed
        ));
    }
    if e.unreadable_lines > 0 {
        out.push_str(&format!(
            "Lines of the changes that could not be read: {} (a changed patient among them is screened at the next full run).\n",
            e.unreadable_lines
        ));
    }
    if e.medications_read > 0 {
        out.push_str(&format!(
            "Medications read by id: {}.\n",
            e.medications_read
        ));
    }
    out
}

pub fn batch_summary(r: &crate::batch::report::Report) -> String {
    let counts = |m: &std::collections::BTreeMap<String, u64>| {
        if m.is_empty() {
            return "none".to_owned();
        }
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let p = &r.patients;
    let mut out = format!(
        "Screened {} of {} patients ({} failed, {} resumed from the checkpoint) in {:.1} s.\n",
        p.screened, p.total, p.failed, p.resumed_from_checkpoint, r.durations.total_secs
    );
    out.push_str(&format!("Status: {}\n", counts(&r.status)));
    out.push_str(&format!("Hints: {}\n", counts(&r.hints)));
    if !r.write_back.is_empty() {
        out.push_str(&format!("Write-back: {}\n", counts(&r.write_back)));
    }
    if !r.errors.is_empty() {
        out.push_str(&format!("Errors: {}\n", counts(&r.errors)));
    }
    if let Some(x) = &r.export {
        out.push_str(&format!(
            "Export: {}{}{}.\n",
            x.scope,
            x.transaction_time
                .as_deref()
                .map(|t| format!(", transactionTime {t}"))
                .unwrap_or_default(),
            x.type_filter
                .as_deref()
                .map(|f| format!(", _typeFilter {f}"))
                .unwrap_or_default()
        ));
    }
    if let Some(i) = &r.incremental {
        out.push_str(&format!(
            "Incremental since {}: {} changed patients found, {} screened in full ({}).\n",
            i.since, i.changed_patients, i.screened_in_full, i.full_read
        ));
        if i.deleted_unattributed > 0 {
            out.push_str(&format!(
                "Deleted resources naming no patient: {} (screened at the next full run).\n",
                i.deleted_unattributed
            ));
        }
        if i.unreadable_lines > 0 {
            out.push_str(&format!(
                "Lines of the changes that could not be read: {} (a changed patient among them is screened at the next full run).\n",
                i.unreadable_lines
            ));
        }
    }
    if let Some(i) = &r.input {
        out.push_str(&format!(
            "Input: {} lines in {} files; {} malformed, {} of other types, {} without a patient, {} with a bad patient id, {} Medications with a bad id, {} of other shards; {} patient ids with resources but no Patient.\n",
            i.lines,
            i.files,
            i.malformed_lines,
            i.other_type,
            i.no_patient,
            i.bad_patient_id,
            i.bad_medication_id,
            i.other_shard,
            p.not_in_population
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::safe;

    #[test]
    fn terminal_controls_in_record_text_are_shown_escaped() {
        assert_eq!(safe("MedicationRequest/mr-1"), "MedicationRequest/mr-1");
        assert_eq!(
            safe("x\u{1b}[2K\rTRD criteria: NOT APPLICABLE\n"),
            "x\\u{1b}[2K\\u{d}TRD criteria: NOT APPLICABLE\\u{a}"
        );
        assert_eq!(safe("a\u{202e}b"), "a\\u{202e}b");
    }
}
