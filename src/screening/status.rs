//! Status (screening-rules.md section 7) from the trials counted in the current episode.

use super::assessment::{TrdStatus, TrialOutcome};
use super::trial::{DoseAdequacy, Trial};
use crate::knowledge::DrugId;
use std::collections::BTreeSet;

/// A trial with its judged outcome and whether it lies in the current episode.
pub struct Judgement<'t> {
    pub trial: &'t Trial<'t>,
    pub outcome: TrialOutcome,
    pub counted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Distinct ingredients with an adequate, failed trial (F).
    pub failed: BTreeSet<DrugId>,
    /// Distinct ingredients, not in F, that would join it if confirmed (U).
    pub unconfirmed: BTreeSet<DrugId>,
    pub any_antidepressant: bool,
}

pub fn tally(judged: &[Judgement]) -> Tally {
    let antidepressants = || judged.iter().filter(|j| j.counted && !j.trial.augmentation);
    let failed: BTreeSet<DrugId> = antidepressants()
        .filter(|j| {
            j.outcome == TrialOutcome::Failed
                && j.trial.adequate_duration
                && j.trial.dose == DoseAdequacy::Adequate
        })
        .map(|j| j.trial.drug)
        .collect();
    let unconfirmed = antidepressants()
        .filter(|j| !failed.contains(&j.trial.drug) && j.trial.adequate_duration)
        .filter(|j| {
            matches!(
                (j.outcome, j.trial.dose),
                (TrialOutcome::Failed, DoseAdequacy::Unconfirmed)
                    | (TrialOutcome::Unknown, DoseAdequacy::Adequate)
            )
        })
        .map(|j| j.trial.drug)
        .collect();
    Tally {
        failed,
        unconfirmed,
        any_antidepressant: antidepressants().next().is_some(),
    }
}

impl Tally {
    pub fn status(&self) -> TrdStatus {
        let f = self.failed.len();
        if f >= 2 {
            TrdStatus::Met
        } else if f + self.unconfirmed.len() >= 2 {
            TrdStatus::Possible
        } else if self.any_antidepressant {
            TrdStatus::NotMet
        } else {
            TrdStatus::NotApplicable
        }
    }
}
