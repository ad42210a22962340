//! Medication exposures (screening-rules.md sections 2 and 3): which tracked drugs a
//! MedicationRequest or MedicationStatement names, over which days, at what daily dose.

use super::Diagnostics;
use super::dose;
use super::facts::{parse_date, period_start};
use super::recognition::{Recognised, Recogniser};
use crate::date::Date;
use crate::fhir::datatypes::{Dosage, Lenient, Quantity};
use crate::fhir::resources::{DispenseRequest, MedicationRequest, MedicationStatement};
use crate::fhir::{Deceased, DiagnosticKind, Entry, PatientRecord};
use crate::knowledge::text;
use crate::knowledge::{DrugId, Knowledge};
use crate::ratio::Ratio;

#[derive(Debug, Clone)]
pub struct Exposure<'r> {
    pub drug: DrugId,
    pub start: Date,
    /// Exclusive end; `None` while still taken at `as_of`.
    pub end: Option<Date>,
    pub daily_mg: Option<Ratio>,
    /// A combination product's own adequate dose for this ingredient (Auvelity's bupropion).
    pub min_adequate_override: Option<Ratio>,
    pub citation: &'r str,
}

/// Until when exposures can run: `as_of`, or the patient's death before it.
#[derive(Debug, Clone, Copy)]
struct Horizon {
    as_of: Date,
    death: Option<Death>,
}

#[derive(Debug, Clone, Copy)]
enum Death {
    On(Date),
    /// Died on a day the record does not give (`deceasedBoolean`, or a date that does not parse).
    Undated,
}

impl Horizon {
    fn of(record: &PatientRecord, as_of: Date, d: &mut Diagnostics) -> Horizon {
        let death = match &record.deceased {
            None => None,
            Some(Deceased::Undated) => Some(Death::Undated),
            Some(Deceased::On(text)) => {
                let cite = format!("Patient/{}", record.patient_id);
                match parse_date(Some(text), &cite, "deceasedDateTime", d) {
                    // Alive as of `as_of`.
                    Some(dt) if dt.day > as_of => None,
                    Some(dt) => Some(Death::On(dt.day)),
                    None => Some(Death::Undated),
                }
            }
        };
        Horizon { as_of, death }
    }
}

pub fn gather<'r>(
    record: &'r PatientRecord,
    as_of: Date,
    k: &Knowledge,
    d: &mut Diagnostics,
) -> Vec<Exposure<'r>> {
    let mut out =
        Vec::with_capacity(record.medication_requests.len() + record.medication_statements.len());
    let mut recogniser = Recogniser::new(record);
    let horizon = Horizon::of(record, as_of, d);
    for entry in &record.medication_requests {
        request(entry, horizon, k, d, &mut recogniser, &mut out);
    }
    for entry in &record.medication_statements {
        statement(entry, horizon, k, d, &mut recogniser, &mut out);
    }
    out.sort_by(|a, b| {
        (a.drug, a.start, a.end.is_none(), a.end, &a.citation).cmp(&(
            b.drug,
            b.start,
            b.end.is_none(),
            b.end,
            &b.citation,
        ))
    });
    out
}

fn request<'r>(
    entry: &'r Entry<MedicationRequest>,
    horizon: Horizon,
    k: &Knowledge,
    d: &mut Diagnostics,
    recogniser: &mut Recogniser<'r>,
    out: &mut Vec<Exposure<'r>>,
) {
    let mr = &entry.resource;
    let cite = entry.citation.as_str();
    let drugs = recogniser.medication(
        mr.medication_codeable_concept.as_ref(),
        mr.medication_reference.as_ref(),
        &mr.contained,
        k,
        cite,
        d,
    );
    if drugs.is_empty() {
        return;
    }
    if mr.do_not_perform == Some(true) {
        d.note(
            cite,
            DiagnosticKind::Modifier,
            "doNotPerform is true: an order not to give this medication, never an exposure".into(),
        );
        return;
    }
    let ignored = match (mr.status.as_deref(), mr.intent.as_deref()) {
        (Some(s @ ("entered-in-error" | "draft" | "cancelled")), _) => Some(format!("status {s}")),
        (_, Some("proposal")) => Some("intent proposal".to_owned()),
        _ => None,
    };
    if let Some(why) = ignored {
        d.note(
            cite,
            DiagnosticKind::IgnoredStatus,
            format!("{why} is not used"),
        );
        return;
    }
    let dosage = first_dosage(&mr.dosage_instruction);
    let bounds = dosage
        .and_then(|x| x.timing.as_ref())
        .and_then(|t| t.repeat.as_ref())
        .and_then(|r| r.bounds_period.as_ref());
    let start_text = period_start(bounds).or(mr.authored_on.as_deref());
    let Some(start) = parse_date(start_text, cite, "start date", d).map(|dt| dt.day) else {
        if start_text.is_none() {
            d.note(
                cite,
                DiagnosticKind::MissingDate,
                "has no start date (authoredOn or boundsPeriod); not used".into(),
            );
        }
        return;
    };
    let dispense = mr.dispense_request.as_ref();
    let end_text = bounds.and_then(|b| b.end.as_deref()).or(dispense
        .and_then(|x| x.validity_period.as_ref())
        .and_then(|p| p.end.as_deref()));
    let end = match end_text {
        Some(_) => parse_date(end_text, cite, "end date", d).map(|dt| Some(dt.day)),
        None => match supply(dispense, k, cite, d) {
            Some(days) => Some(Some(start.plus_days(days))),
            None if mr.status.as_deref() == Some("active") => Some(None),
            // A finished order with no duration: it was taken, for an unknown time; it cannot show
            // an adequate duration.
            None => Some(Some(start)),
        },
    };
    let Some(end) = end else { return };
    push_exposures(cite, &drugs, start, end, dosage, horizon, k, d, out);
}

fn statement<'r>(
    entry: &'r Entry<MedicationStatement>,
    horizon: Horizon,
    k: &Knowledge,
    d: &mut Diagnostics,
    recogniser: &mut Recogniser<'r>,
    out: &mut Vec<Exposure<'r>>,
) {
    let ms = &entry.resource;
    let cite = entry.citation.as_str();
    let drugs = recogniser.medication(
        ms.medication_codeable_concept.as_ref(),
        ms.medication_reference.as_ref(),
        &ms.contained,
        k,
        cite,
        d,
    );
    if drugs.is_empty() {
        return;
    }
    // Only statuses that say the drug was taken: not `intended` (not yet), `not-taken`,
    // `entered-in-error`, or `unknown` (which says nothing of taking).
    match ms.status.as_deref() {
        Some("active" | "completed" | "stopped" | "on-hold") => {}
        Some(s @ ("intended" | "not-taken" | "entered-in-error" | "unknown")) => {
            d.note(
                cite,
                DiagnosticKind::IgnoredStatus,
                format!("status {s} does not say the medication was taken; not used"),
            );
            return;
        }
        Some(_) => {
            d.note(
                cite,
                DiagnosticKind::IgnoredStatus,
                "its status is not a FHIR R4 MedicationStatement status; not used".into(),
            );
            return;
        }
        None => {
            d.note(
                cite,
                DiagnosticKind::IgnoredStatus,
                "has no status, so it does not say the medication was taken; not used".into(),
            );
            return;
        }
    }
    let (start_text, end) = match (&ms.effective_period, &ms.effective_date_time) {
        (Some(p), _) => (p.start.as_deref(), p.end.as_deref().map(Some)),
        (None, Some(t)) => (Some(t.as_str()), Some(Some(t.as_str()))),
        (None, None) => (None, None),
    };
    let Some(start) = parse_date(start_text, cite, "effective start", d).map(|dt| dt.day) else {
        if start_text.is_none() {
            d.note(
                cite,
                DiagnosticKind::MissingDate,
                "has no effective period start; not used".into(),
            );
        }
        return;
    };
    let end = match end {
        // An open period means still taking.
        None | Some(None) => None,
        Some(Some(t)) => match parse_date(Some(t), cite, "effective end", d) {
            Some(dt) => Some(dt.day),
            None => return,
        },
    };
    let dosage = first_dosage(&ms.dosage);
    push_exposures(cite, &drugs, start, end, dosage, horizon, k, d, out);
}

#[allow(clippy::too_many_arguments)]
fn push_exposures<'r>(
    cite: &'r str,
    drugs: &[Recognised],
    start: Date,
    end: Option<Date>,
    dosage: Option<&Dosage>,
    horizon: Horizon,
    k: &Knowledge,
    d: &mut Diagnostics,
    out: &mut Vec<Exposure<'r>>,
) {
    let as_of = horizon.as_of;
    if start > as_of {
        d.note(
            cite,
            DiagnosticKind::AfterAsOf,
            "starts after the evaluation date; not used".into(),
        );
        return;
    }
    if end.is_some_and(|e| e < start) {
        d.note(
            cite,
            DiagnosticKind::BadDate,
            "ends before it starts; not used".into(),
        );
        return;
    }
    // Still running at as_of (an end date in the future is a plan, not a fact).
    let mut end = end.filter(|e| *e <= as_of);
    match horizon.death {
        None => {}
        Some(Death::On(day)) if start > day => {
            d.note(
                cite,
                DiagnosticKind::BadDate,
                "starts after the patient's death; not used".into(),
            );
            return;
        }
        // Nothing is taken after death: an open or later end is the day of death.
        Some(Death::On(day)) => end = Some(end.map_or(day, |e| e.min(day))),
        Some(Death::Undated) if end.is_none() => {
            d.note(
                cite,
                DiagnosticKind::MissingDate,
                "runs on, but the patient is recorded as deceased without a date: its end is unknown, so it cannot show an adequate duration".into(),
            );
            end = Some(start);
        }
        Some(Death::Undated) => {}
    }
    for r in drugs {
        let info = k.drug(r.drug);
        if let Some(route) = &info.required_route
            && !r.route_shown
            && !route_is(route, dosage)
        {
            d.note(
                cite,
                DiagnosticKind::RouteExcluded,
                format!(
                    "{} counts only by the {} route, which this record does not show",
                    info.name,
                    route.join(" ")
                ),
            );
            continue;
        }
        let daily_mg = match dosage {
            None => {
                d.note(
                    cite,
                    DiagnosticKind::DoseUnknown,
                    format!("{}: no readable dosage; dose unknown", info.name),
                );
                None
            }
            Some(x) => match dose::daily_dose(x, r.strength) {
                Ok(mg) => match info.usual_max_daily_mg {
                    Some(max)
                        if mg
                            > max
                                .checked_mul(Ratio::integer(u64::from(
                                    k.policy.trial.implausible_dose_factor,
                                )))
                                .unwrap_or(max) =>
                    {
                        d.note(cite, DiagnosticKind::DoseImplausible, format!("{}: {mg} mg/day is far above the usual maximum; dose treated as unknown", info.name));
                        None
                    }
                    _ => Some(mg),
                },
                Err(problem) => {
                    d.note(
                        cite,
                        DiagnosticKind::DoseUnknown,
                        format!("{}: {}; dose unknown", info.name, problem.reason()),
                    );
                    None
                }
            },
        };
        out.push(Exposure {
            drug: r.drug,
            start,
            end,
            daily_mg,
            min_adequate_override: r.min_adequate_override,
            citation: cite,
        });
    }
}

fn first_dosage(list: &[Lenient<Dosage>]) -> Option<&Dosage> {
    list.first().and_then(Lenient::read)
}

fn route_is(route: &[String], dosage: Option<&Dosage>) -> bool {
    dosage
        .and_then(|x| x.route.as_ref())
        .is_some_and(|r| r.texts().any(|t| text::text_contains_phrase(t, route)))
}

/// The days an order supplies: `expectedSupplyDuration` x (1 + `numberOfRepeatsAllowed`). `None`
/// when it gives none, or none that is usable (named): not a positive number of days, weeks or
/// months, or more in all than `trial.max_supply_days`.
fn supply(
    dispense: Option<&DispenseRequest>,
    k: &Knowledge,
    cite: &str,
    d: &mut Diagnostics,
) -> Option<i32> {
    let dispense = dispense?;
    let quantity = dispense.expected_supply_duration.as_ref()?;
    let max = k.policy.trial.max_supply_days;
    let fills = 1 + u64::from(dispense.number_of_repeats_allowed.unwrap_or(0));
    match supply_days(quantity) {
        Ok(days) if days.saturating_mul(fills) <= u64::from(max) => {
            i32::try_from(days * fills).ok()
        }
        Ok(_) => {
            d.note(
                cite,
                DiagnosticKind::BadDuration,
                format!(
                    "its supply (expectedSupplyDuration x (1 + numberOfRepeatsAllowed)) is more than {max} days, which is implausible; its duration is unknown"
                ),
            );
            None
        }
        Err(why) => {
            d.note(
                cite,
                DiagnosticKind::BadDuration,
                format!("its expectedSupplyDuration {why}; its duration is unknown"),
            );
            None
        }
    }
}

fn supply_days(q: &Quantity) -> Result<u64, &'static str> {
    let text = &q.value.as_ref().ok_or("has no value")?.0;
    let value = match Ratio::parse_decimal(text) {
        Ok(value) => value,
        Err(_) if text.trim_start().starts_with('-') => return Err("is negative"),
        Err(_) => return Err("is not a number this engine can read"),
    };
    let mut buf = [0; 8];
    let per = match q.unit_key().and_then(|u| text::ascii_lower(u, &mut buf)) {
        Some("d" | "day" | "days") => 1,
        Some("wk" | "week" | "weeks") => 7,
        Some("mo" | "month" | "months") => 30,
        _ => return Err("is not in days, weeks or months"),
    };
    let days = value
        .checked_mul(Ratio::integer(per))
        .ok_or("is too large")?
        .rounded(0);
    if days < 1.0 {
        Err("is not a positive number of days")
    } else if days > 1e9 {
        Err("is too large")
    } else {
        Ok(days as u64)
    }
}
