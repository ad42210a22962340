use super::{Context, Fired, fired_if};
use crate::knowledge::Role;

/// The latest PHQ-9 item 9 within the window above 0, or suicidal ideation or an attempt recorded
/// within the window (an undated record counts: for this hint, missing a risk is the worse error).
pub fn suicide_risk<'a>(ctx: &Context<'a>) -> Option<Fired<'a>> {
    let window = ctx.k.policy.hints.suicide_window_days;
    let mut evidence = Vec::new();
    let mut detail = String::new();
    if let Some(latest) = ctx.facts.item9.last()
        && latest.value > 0
        && ctx.within(latest.at.day, window)
    {
        detail = format!(
            "Latest PHQ-9 item 9 ({}) scored {}.",
            latest.at.day, latest.value
        );
        evidence.push(latest.citation);
    }
    evidence.extend(ctx.diagnoses_in("suicidality", |d| {
        d.date.is_none_or(|day| ctx.within(day, window))
    }));
    fired_if(evidence, detail)
}

pub fn bipolar_spectrum<'a>(ctx: &Context<'a>) -> Option<Fired<'a>> {
    let k = ctx.k;
    let mut evidence = ctx.diagnoses_in("bipolar", |_| true);
    let mut details = Vec::new();
    if !evidence.is_empty() {
        details.push("A bipolar-spectrum diagnosis is recorded.".to_owned());
    }
    let first_antidepressant = ctx
        .trials
        .iter()
        .filter(|t| !t.augmentation)
        .map(|t| t.start)
        .min();
    let after_antidepressant = ctx.diagnoses_in("hypomania", |d| {
        d.date
            .zip(first_antidepressant)
            .is_some_and(|(dx, ad)| dx > ad)
    });
    if !after_antidepressant.is_empty() {
        details.push(
            "Hypomania or mania was recorded after an antidepressant was started.".to_owned(),
        );
        evidence.extend(after_antidepressant);
    }
    let threshold = k.policy.hints.mdq_positive_at_least;
    let positive_mdq: Vec<&str> = ctx
        .facts
        .mdq
        .iter()
        .filter(|s| s.value >= threshold)
        .map(|s| s.citation)
        .collect();
    if !positive_mdq.is_empty() {
        details.push(format!(
            "A Mood Disorder Questionnaire total of {threshold} or more is recorded."
        ));
        evidence.extend(positive_mdq);
    }
    let has_seizure_disorder = !ctx.diagnoses_in("seizure", |_| true).is_empty();
    if !has_seizure_disorder {
        let stabilisers: Vec<&str> = ctx
            .exposures
            .iter()
            .filter(|e| k.drug(e.drug).role == Role::MoodStabilizer)
            .map(|e| e.citation)
            .collect();
        if !stabilisers.is_empty() {
            details.push("A mood stabiliser (valproate, carbamazepine or lamotrigine) was prescribed without a seizure-disorder diagnosis.".to_owned());
            evidence.extend(stabilisers);
        }
    }
    fired_if(evidence, details.join(" "))
}

pub fn psychosis_history<'a>(ctx: &Context<'a>) -> Option<Fired<'a>> {
    fired_if(ctx.diagnoses_in("psychosis", |_| true), "")
}

pub fn substance_use<'a>(ctx: &Context<'a>) -> Option<Fired<'a>> {
    fired_if(ctx.diagnoses_in("substance_use", |_| true), "")
}
