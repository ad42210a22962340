//! Plain-language reasons: why the status is what it is, trial by trial, with the evidence.

use super::assessment::{Reason, TrdStatus, TrialOutcome};
use super::episode::Episode;
use super::outcome::Judged;
use super::status::Tally;
use super::trial::{DoseAdequacy, Trial};
use crate::date::Date;
use crate::knowledge::Knowledge;

pub fn status_reason(status: TrdStatus, tally: &Tally, trials: &[Trial], k: &Knowledge) -> Reason {
    let names = |set: &std::collections::BTreeSet<crate::knowledge::DrugId>| {
        set.iter()
            .map(|d| k.drug(*d).name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let evidence_of = |set: &std::collections::BTreeSet<crate::knowledge::DrugId>| {
        trials
            .iter()
            .filter(|t| set.contains(&t.drug))
            .flat_map(|t| t.evidence.iter().cloned())
            .collect::<Vec<_>>()
    };
    let (f, u) = (tally.failed.len(), tally.unconfirmed.len());
    let text = match status {
        TrdStatus::Met => format!(
            "Criteria met: {f} different antidepressants failed after an adequate dose and duration in the current episode ({}).",
            names(&tally.failed)
        ),
        TrdStatus::Possible => format!(
            "Possibly treatment-resistant: {f} confirmed failed adequate trial(s){}, and {u} more that would count if confirmed ({}: dose or outcome not recorded).",
            if f > 0 {
                format!(" ({})", names(&tally.failed))
            } else {
                String::new()
            },
            names(&tally.unconfirmed)
        ),
        TrdStatus::NotMet => format!(
            "Criteria not met: antidepressant treatment in the current episode, but {f} confirmed failed adequate trial(s) and {u} unconfirmed, fewer than two."
        ),
        TrdStatus::NotApplicable => {
            "No antidepressant treatment in the current episode.".to_owned()
        }
    };
    let mut evidence = evidence_of(&tally.failed);
    evidence.extend(evidence_of(&tally.unconfirmed));
    Reason { text, evidence }
}

pub fn episode_reason(episode: &Episode, k: &Knowledge) -> Reason {
    match episode.cut {
        Some((remission, relapse)) => Reason {
            text: format!(
                "Current episode from {}: remission (score {} on {}) followed by relapse (score {} on {}); trials that ended earlier are not counted.",
                episode.start, remission.value, remission.at.day, relapse.value, relapse.at.day
            ),
            evidence: vec![remission.citation.clone(), relapse.citation.clone()],
        },
        None => Reason {
            text: format!(
                "Current episode: the {} months from {}, with no remission followed by relapse.",
                k.policy.episode.lookback_months, episode.start
            ),
            evidence: Vec::new(),
        },
    }
}

pub fn trial_reason(
    t: &Trial,
    judged: &Judged,
    trials: &[Trial],
    counted: bool,
    as_of: Date,
    k: &Knowledge,
) -> Reason {
    let info = k.drug(t.drug);
    let span = match t.end {
        Some(end) => format!("{} to {}", t.start, end),
        None => format!("{} to now", t.start),
    };
    let weeks = t.days(as_of) / 7;
    let dose = t
        .daily_mg
        .map_or("dose unknown".to_owned(), |mg| format!("{mg} mg/day"));
    let mut text = format!("{} {span} ({weeks} weeks, {dose})", info.name);
    if t.augmentation {
        text.push_str(": augmentation, not an antidepressant trial");
    } else {
        let dose_word = match t.dose {
            DoseAdequacy::Adequate => "adequate dose",
            DoseAdequacy::Inadequate => "dose below the adequate minimum",
            DoseAdequacy::Unconfirmed => "dose adequacy unconfirmed",
        };
        let duration_word = if t.adequate_duration {
            "adequate duration"
        } else {
            "too short"
        };
        text.push_str(&format!(": {dose_word}, {duration_word}"));
    }
    let mut evidence = t.evidence.clone();
    let scores = match (judged.baseline, judged.end_score) {
        (Some(b), Some(e)) => {
            evidence.extend([b.citation.clone(), e.citation.clone()]);
            format!(" (score {} to {})", b.value, e.value)
        }
        (None, Some(e)) => {
            evidence.push(e.citation.clone());
            format!(" (end score {}, no baseline)", e.value)
        }
        _ => String::new(),
    };
    let outcome = match judged.outcome {
        TrialOutcome::Failed if judged.inferred => {
            let next = judged.switched_to.map(|n| &trials[n]);
            if let Some(n) = next {
                evidence.extend(n.evidence.iter().cloned());
            }
            format!(
                "failed (inferred: no end score, and {} was started on {})",
                next.map_or("another drug", |n| k.drug(n.drug).name.as_str()),
                next.map_or_else(String::new, |n| n.start.to_string())
            )
        }
        TrialOutcome::Failed => format!("failed{scores}"),
        TrialOutcome::Responded => format!("responded{scores}"),
        TrialOutcome::Ongoing => "ongoing, too early to judge".to_owned(),
        TrialOutcome::Unknown => "outcome unknown (no end score and no switch)".to_owned(),
    };
    text.push_str(&format!("; {outcome}"));
    if !counted {
        text.push_str("; before the current episode, not counted");
    }
    text.push('.');
    Reason { text, evidence }
}
