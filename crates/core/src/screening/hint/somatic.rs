use super::{Context, Fired, fired_if};
use crate::knowledge::Role;
use crate::ratio::Ratio;

/// The latest blood pressure within the window at or above the systolic or diastolic line. Separate
/// systolic and diastolic Observations taken at the same instant are read as one reading.
pub fn uncontrolled_hypertension<'a>(ctx: &Context<'a>) -> Option<Fired<'a>> {
    let h = &ctx.k.policy.hints;
    let latest = ctx.facts.blood_pressures.last()?;
    if !ctx.within(latest.at.day, h.bp_window_days) {
        return None;
    }
    let same_reading: Vec<_> = ctx
        .facts
        .blood_pressures
        .iter()
        .filter(|b| b.at == latest.at)
        .collect();
    let systolic = same_reading.iter().find_map(|b| b.systolic);
    let diastolic = same_reading.iter().find_map(|b| b.diastolic);
    let high = systolic.is_some_and(|s| s >= Ratio::integer(u64::from(h.systolic_at_least)))
        || diastolic.is_some_and(|d| d >= Ratio::integer(u64::from(h.diastolic_at_least)));
    if !high {
        return None;
    }
    let show = |v: Option<Ratio>| v.map_or("?".to_owned(), |v| v.to_string());
    let detail = format!(
        "Latest reading ({}): {}/{} mmHg.",
        latest.at.day,
        show(systolic),
        show(diastolic)
    );
    fired_if(same_reading.iter().map(|b| b.citation).collect(), detail)
}

pub fn vascular<'a>(ctx: &Context<'a>) -> Option<Fired<'a>> {
    fired_if(ctx.diagnoses_in("vascular", |_| true), "")
}

pub fn seizure_disorder<'a>(ctx: &Context<'a>) -> Option<Fired<'a>> {
    fired_if(ctx.diagnoses_in("seizure", |_| true), "")
}

/// Lithium running at `as_of` with an eGFR below the line in the window, or with a running NSAID,
/// ACE inhibitor, angiotensin receptor blocker or thiazide.
pub fn lithium_renal<'a>(ctx: &Context<'a>) -> Option<Fired<'a>> {
    let k = ctx.k;
    let h = &k.policy.hints;
    let running = |e: &&crate::screening::exposure::Exposure| e.end.is_none();
    let lithium: Vec<&str> = ctx
        .exposures
        .iter()
        .filter(running)
        .filter(|e| k.drug(e.drug).class.as_deref() == Some("lithium"))
        .map(|e| e.citation)
        .collect();
    if lithium.is_empty() {
        return None;
    }
    let mut details = Vec::new();
    let mut evidence = Vec::new();
    let low_egfr: Vec<_> = ctx
        .facts
        .egfr
        .iter()
        .filter(|m| {
            ctx.within(m.at.day, h.egfr_window_days)
                && m.value < Ratio::integer(u64::from(h.egfr_below))
        })
        .collect();
    if let Some(lowest) = low_egfr.iter().min_by_key(|m| m.value) {
        details.push(format!("eGFR {} on {}.", lowest.value, lowest.at.day));
        evidence.extend(low_egfr.iter().map(|m| m.citation));
    }
    let interacting: Vec<_> = ctx
        .exposures
        .iter()
        .filter(running)
        .filter(|e| {
            matches!(
                k.drug(e.drug).role,
                Role::Nsaid | Role::AceInhibitor | Role::Arb | Role::Thiazide
            )
        })
        .collect();
    if !interacting.is_empty() {
        let mut names: Vec<&str> = interacting
            .iter()
            .map(|e| k.drug(e.drug).name.as_str())
            .collect();
        names.dedup();
        details.push(format!("Taken with: {}.", names.join(", ")));
        evidence.extend(interacting.iter().map(|e| e.citation));
    }
    if evidence.is_empty() {
        return None;
    }
    evidence.extend(lithium);
    fired_if(evidence, details.join(" "))
}

pub fn pregnancy<'a>(ctx: &Context<'a>) -> Option<Fired<'a>> {
    let window = ctx.k.policy.hints.pregnancy_window_days;
    fired_if(
        ctx.diagnoses_in("pregnancy", |d| {
            d.active && d.date.is_none_or(|day| ctx.within(day, window))
        }),
        "",
    )
}
