//! Intake: the resources of a record turned into the clinical facts the rules read (scores, blood
//! pressures, diagnoses, procedures; medication exposures are in `exposure`), after the status
//! filters of screening-rules.md section 1. Whatever is set aside gets a diagnostic.

use super::Diagnostics;
use crate::date::{Date, DateTime};
use crate::fhir::datatypes::{CodeableConcept, Period, Quantity};
use crate::fhir::resources::{Condition, Observation, Procedure};
use crate::fhir::{DiagnosticKind, Entry, PatientRecord};
use crate::knowledge::{ConditionSets, Knowledge};
use crate::ratio::Ratio;

/// A whole-number score (PHQ-9 total, item 9, MDQ total). Citations here and in exposures and trials
/// borrow the record's: only those an Assessment shows are copied, once, when it is built.
#[derive(Debug, Clone)]
pub struct Score<'r> {
    pub value: i64,
    pub at: DateTime,
    pub citation: &'r str,
}

#[derive(Debug, Clone)]
pub struct Measurement<'r> {
    pub value: Ratio,
    pub at: DateTime,
    pub citation: &'r str,
}

#[derive(Debug, Clone)]
pub struct BloodPressure<'r> {
    pub systolic: Option<Ratio>,
    pub diastolic: Option<Ratio>,
    pub at: DateTime,
    pub citation: &'r str,
}

#[derive(Debug, Clone)]
pub struct Diagnosis<'r> {
    pub code: &'r CodeableConcept,
    /// The condition sets of `codes.toml` the code falls in.
    pub sets: ConditionSets,
    /// Onset, else recorded date.
    pub date: Option<Date>,
    /// clinicalStatus active, recurrence or relapse (or unstated), and not abated by `as_of`.
    pub active: bool,
    pub citation: &'r str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcedureKind {
    Ect,
    Rtms,
}

#[derive(Debug, Clone)]
pub struct TreatmentProcedure<'r> {
    pub kind: ProcedureKind,
    pub date: Date,
    pub completed: bool,
    pub citation: &'r str,
}

#[derive(Debug, Default)]
pub struct Facts<'r> {
    /// PHQ-9 and PHQ-A totals, oldest first.
    pub depression_scores: Vec<Score<'r>>,
    pub item9: Vec<Score<'r>>,
    pub mdq: Vec<Score<'r>>,
    pub blood_pressures: Vec<BloodPressure<'r>>,
    pub egfr: Vec<Measurement<'r>>,
    pub diagnoses: Vec<Diagnosis<'r>>,
    pub procedures: Vec<TreatmentProcedure<'r>>,
}

impl Facts<'_> {
    /// The active diagnoses in a condition set of `codes.toml` (refuted, entered-in-error, later
    /// than `as_of`, abated and inactive ones are not among them).
    pub fn active_in<'f>(
        &'f self,
        set: &str,
        k: &Knowledge,
    ) -> impl Iterator<Item = &'f Diagnosis<'f>> + 'f {
        let set = k.condition_set(set);
        self.diagnoses
            .iter()
            .filter(move |d| d.active && set.is_some_and(|s| d.sets.contains(s)))
    }
}

/// Reads a FHIR date, noting a bad one. `None` when absent or unreadable.
pub fn parse_date(
    text: Option<&str>,
    citation: &str,
    what: &str,
    d: &mut Diagnostics,
) -> Option<DateTime> {
    let text = text?;
    match DateTime::parse(text) {
        Ok(dt) => Some(dt),
        Err(_) => {
            d.note(
                citation,
                DiagnosticKind::BadDate,
                format!("its {what} is not a valid FHIR date"),
            );
            None
        }
    }
}

pub fn period_start(p: Option<&Period>) -> Option<&str> {
    p.and_then(|p| p.start.as_deref())
}

pub fn gather<'r>(
    record: &'r PatientRecord,
    as_of: Date,
    k: &Knowledge,
    d: &mut Diagnostics,
) -> Facts<'r> {
    let mut facts = Facts {
        depression_scores: Vec::with_capacity(record.observations.len()),
        diagnoses: Vec::with_capacity(record.conditions.len()),
        ..Facts::default()
    };
    for entry in &record.observations {
        observation(entry, as_of, k, &mut facts, d);
    }
    for entry in &record.conditions {
        if let Some(dx) = diagnosis(entry, as_of, k, d) {
            facts.diagnoses.push(dx);
        }
    }
    for entry in &record.procedures {
        if let Some(p) = procedure(entry, as_of, k, d) {
            facts.procedures.push(p);
        }
    }
    let by_time = |a: &Score, b: &Score| (a.at, &a.citation).cmp(&(b.at, &b.citation));
    facts.depression_scores.sort_by(by_time);
    facts.item9.sort_by(by_time);
    facts.mdq.sort_by(by_time);
    facts
        .blood_pressures
        .sort_by(|a, b| (a.at, &a.citation).cmp(&(b.at, &b.citation)));
    facts
        .egfr
        .sort_by(|a, b| (a.at, &a.citation).cmp(&(b.at, &b.citation)));
    facts
}

fn has_code(concept: &CodeableConcept, systems: &[String], codes: &[String]) -> bool {
    concept
        .codes_in(systems)
        .any(|c| codes.iter().any(|x| x == c))
}

fn observation<'r>(
    entry: &'r Entry<Observation>,
    as_of: Date,
    k: &Knowledge,
    facts: &mut Facts<'r>,
    d: &mut Diagnostics,
) {
    let obs = &entry.resource;
    let cite = entry.citation.as_str();
    let Some(code) = &obs.code else { return };
    let o = &k.observations;
    let loinc = &k.systems.loinc;
    let kind = if has_code(code, loinc, &o.phq9_total) || has_code(code, loinc, &o.phqa_total) {
        ObsKind::Depression
    } else if has_code(code, loinc, &o.phq9_item9) {
        ObsKind::Item9
    } else if has_code(code, loinc, &o.mdq_total) {
        ObsKind::Mdq
    } else if has_code(code, loinc, &o.bp_panel)
        || has_code(code, loinc, &o.systolic_bp)
        || has_code(code, loinc, &o.diastolic_bp)
    {
        ObsKind::BloodPressure
    } else if has_code(code, loinc, &o.egfr) {
        ObsKind::Egfr
    } else if has_code(code, loinc, &o.phq9_panel) {
        // A PHQ-9 panel may carry item 9 as a component.
        ObsKind::Panel
    } else {
        if code.has_code_without_system()
            && code.coding.iter().any(|c| {
                c.system.is_none() && c.code.as_deref().is_some_and(|x| o.is_known_loinc(x))
            })
        {
            d.note(cite, DiagnosticKind::CodingWithoutSystem, "has a code that looks like a screening LOINC code but names no code system; not used".into());
        }
        return;
    };
    if let Some("cancelled" | "entered-in-error" | "preliminary") = obs.status.as_deref() {
        d.note(
            cite,
            DiagnosticKind::IgnoredStatus,
            format!(
                "status {} is not used",
                obs.status.as_deref().unwrap_or_default()
            ),
        );
        return;
    }
    let when = obs
        .effective_date_time
        .as_deref()
        .or(period_start(obs.effective_period.as_ref()))
        .or(obs.effective_instant.as_deref())
        .or(obs.issued.as_deref());
    let Some(at) = parse_date(when, cite, "effective date", d) else {
        if when.is_none() {
            d.note(
                cite,
                DiagnosticKind::MissingDate,
                "has no effective date; not used".into(),
            );
        }
        return;
    };
    if at.day > as_of {
        d.note(
            cite,
            DiagnosticKind::AfterAsOf,
            "is dated after the evaluation date; not used".into(),
        );
        return;
    }
    let max = &k.scale_max;
    let own_value = |max: i64, d: &mut Diagnostics| {
        let value = ScoreValue {
            integer: obs.value_integer,
            quantity: obs.value_quantity.as_ref(),
            string: obs.value_string.as_deref(),
        };
        score_value(value, max, cite, d)
    };
    let item9_component =
        |d: &mut Diagnostics| component_score(obs, &o.phq9_item9, loinc, max.phq9_item9, cite, d);
    let score = |value: i64| Score {
        value,
        at,
        citation: cite,
    };
    match kind {
        ObsKind::Depression => {
            facts
                .depression_scores
                .extend(own_value(max.phq9_total, d).map(score));
            // A PHQ-9 total may carry the items as components.
            facts.item9.extend(item9_component(d).map(score));
        }
        ObsKind::Panel => facts.item9.extend(item9_component(d).map(score)),
        ObsKind::Item9 => facts.item9.extend(own_value(max.phq9_item9, d).map(score)),
        ObsKind::Mdq => facts.mdq.extend(own_value(max.mdq_total, d).map(score)),
        ObsKind::BloodPressure => {
            let mut measured = |q: Option<&Quantity>| measurement(q, cite, d);
            let component = |codes: &[String]| {
                obs.component
                    .iter()
                    .find(|c| c.code.as_ref().is_some_and(|cc| has_code(cc, loinc, codes)))
                    .and_then(|c| c.value_quantity.as_ref())
            };
            let own = measured(obs.value_quantity.as_ref());
            let (systolic, diastolic) = (component(&o.systolic_bp), component(&o.diastolic_bp));
            let (systolic, diastolic) = (measured(systolic), measured(diastolic));
            let systolic = systolic.or(own.filter(|_| has_code(code, loinc, &o.systolic_bp)));
            let diastolic = diastolic.or(own.filter(|_| has_code(code, loinc, &o.diastolic_bp)));
            if systolic.is_some() || diastolic.is_some() {
                facts.blood_pressures.push(BloodPressure {
                    systolic,
                    diastolic,
                    at,
                    citation: cite,
                });
            }
        }
        ObsKind::Egfr => {
            if let Some(value) = measurement(obs.value_quantity.as_ref(), cite, d) {
                facts.egfr.push(Measurement {
                    value,
                    at,
                    citation: cite,
                });
            }
        }
    }
}

enum ObsKind {
    Depression,
    Panel,
    Item9,
    Mdq,
    BloodPressure,
    Egfr,
}

/// A measured value (blood pressure, eGFR): a decimal, else named.
fn measurement(q: Option<&Quantity>, cite: &str, d: &mut Diagnostics) -> Option<Ratio> {
    let text = &q?.value.as_ref()?.0;
    match Ratio::parse_decimal(text) {
        Ok(value) => Some(value),
        Err(_) => {
            d.note(
                cite,
                DiagnosticKind::Unreadable,
                "its value is not a decimal this engine can read; not used".into(),
            );
            None
        }
    }
}

/// The forms a questionnaire score is sent in.
#[derive(Clone, Copy)]
struct ScoreValue<'a> {
    integer: Option<i64>,
    quantity: Option<&'a Quantity>,
    /// Some systems send the number as text.
    string: Option<&'a str>,
}

/// A questionnaire score: a whole number from 0 to `max` (the scale's, from the knowledge base),
/// whichever form it comes in (`valueInteger`, `valueQuantity`, or `valueString` holding only the
/// digits). Anything else, and a score that is missing, is named.
fn score_value(value: ScoreValue, max: i64, cite: &str, d: &mut Diagnostics) -> Option<i64> {
    let whole = match value {
        ScoreValue {
            integer: Some(v), ..
        } => Some(v),
        ScoreValue {
            quantity: Some(q), ..
        } => q
            .value
            .as_ref()
            .and_then(|v| Ratio::parse_decimal(&v.0).ok())
            .and_then(|r| (0..=max).find(|v| Ratio::integer(*v as u64) == r)),
        ScoreValue {
            string: Some(text), ..
        } => {
            let text = text.trim();
            let digits =
                !text.is_empty() && text.len() <= 6 && text.bytes().all(|b| b.is_ascii_digit());
            digits.then(|| text.parse().ok()).flatten()
        }
        _ => {
            d.note(
                cite,
                DiagnosticKind::Unreadable,
                "has no score (valueInteger, valueQuantity or valueString); not used".into(),
            );
            return None;
        }
    };
    match whole {
        Some(v) if (0..=max).contains(&v) => Some(v),
        _ => {
            d.note(
                cite,
                DiagnosticKind::ScoreOutOfRange,
                format!("score is not a whole number from 0 to {max}; not used"),
            );
            None
        }
    }
}

fn component_score(
    obs: &Observation,
    codes: &[String],
    loinc: &[String],
    max: i64,
    cite: &str,
    d: &mut Diagnostics,
) -> Option<i64> {
    let c = obs
        .component
        .iter()
        .find(|c| c.code.as_ref().is_some_and(|cc| has_code(cc, loinc, codes)))?;
    let value = ScoreValue {
        integer: c.value_integer,
        quantity: c.value_quantity.as_ref(),
        string: c.value_string.as_deref(),
    };
    score_value(value, max, cite, d)
}

fn diagnosis<'r>(
    entry: &'r Entry<Condition>,
    as_of: Date,
    k: &Knowledge,
    d: &mut Diagnostics,
) -> Option<Diagnosis<'r>> {
    let c = &entry.resource;
    let cite = entry.citation.as_str();
    let code = c.code.as_ref()?;
    if let Some(v) = c
        .verification_status
        .as_ref()
        .and_then(CodeableConcept::first_code)
        && matches!(v, "refuted" | "entered-in-error")
    {
        d.note(
            cite,
            DiagnosticKind::IgnoredStatus,
            format!("verification status {v} is not used"),
        );
        return None;
    }
    let onset = c
        .onset_date_time
        .as_deref()
        .or(period_start(c.onset_period.as_ref()))
        .or(c.recorded_date.as_deref());
    let date = parse_date(onset, cite, "onset or recorded date", d).map(|dt| dt.day);
    if date.is_some_and(|day| day > as_of) {
        d.note(
            cite,
            DiagnosticKind::AfterAsOf,
            "is dated after the evaluation date; not used".into(),
        );
        return None;
    }
    let abated = c
        .abatement_date_time
        .as_deref()
        .or(c.abatement_period.as_ref().and_then(|p| p.end.as_deref()))
        .and_then(|t| DateTime::parse(t).ok())
        .is_some_and(|dt| dt.day <= as_of);
    let clinically_active = match c
        .clinical_status
        .as_ref()
        .and_then(CodeableConcept::first_code)
    {
        None => true,
        Some(s) => matches!(s, "active" | "recurrence" | "relapse"),
    };
    if code.has_code_without_system() {
        d.note(
            cite,
            DiagnosticKind::CodingWithoutSystem,
            "has a code with no code system; that code is not used".into(),
        );
    }
    Some(Diagnosis {
        code,
        sets: k.condition_sets_of(code),
        date,
        active: clinically_active && !abated,
        citation: cite,
    })
}

fn procedure<'r>(
    entry: &'r Entry<Procedure>,
    as_of: Date,
    k: &Knowledge,
    d: &mut Diagnostics,
) -> Option<TreatmentProcedure<'r>> {
    let p = &entry.resource;
    let cite = entry.citation.as_str();
    let code = p.code.as_ref()?;
    let kind = if k.is_procedure("ect", code) {
        ProcedureKind::Ect
    } else if k.is_procedure("rtms", code) {
        ProcedureKind::Rtms
    } else {
        return None;
    };
    if matches!(p.status.as_deref(), Some("entered-in-error" | "not-done")) {
        d.note(
            cite,
            DiagnosticKind::IgnoredStatus,
            format!(
                "status {} is not used",
                p.status.as_deref().unwrap_or_default()
            ),
        );
        return None;
    }
    let when = p
        .performed_date_time
        .as_deref()
        .or(period_start(p.performed_period.as_ref()));
    let Some(at) = parse_date(when, cite, "performed date", d) else {
        if when.is_none() {
            d.note(
                cite,
                DiagnosticKind::MissingDate,
                "has no performed date; not used".into(),
            );
        }
        return None;
    };
    if at.day > as_of {
        d.note(
            cite,
            DiagnosticKind::AfterAsOf,
            "is dated after the evaluation date; not used".into(),
        );
        return None;
    }
    Some(TreatmentProcedure {
        kind,
        date: at.day,
        completed: p.status.as_deref() == Some("completed"),
        citation: cite,
    })
}
