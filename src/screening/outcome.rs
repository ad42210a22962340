//! Outcome of a trial (screening-rules.md section 5): scored from PHQ-9/PHQ-A totals around it, or
//! inferred from a switch or an augmentation when there is no end score.

use super::assessment::TrialOutcome;
use super::facts::Score;
use super::trial::Trial;
use crate::date::Date;
use crate::knowledge::Knowledge;

#[derive(Debug, Clone)]
pub struct Judged<'s> {
    pub outcome: TrialOutcome,
    pub inferred: bool,
    pub baseline: Option<&'s Score<'s>>,
    pub end_score: Option<&'s Score<'s>>,
    /// The trial whose start implied failure, when inferred.
    pub switched_to: Option<usize>,
}

pub fn judge<'s>(
    index: usize,
    trials: &[Trial],
    scores: &'s [Score<'s>],
    as_of: Date,
    k: &Knowledge,
) -> Judged<'s> {
    let p = &k.policy.outcome;
    let t = &trials[index];
    let end = t.end_or(as_of);
    let latest_in = |from: Date, to: Date| {
        scores
            .iter()
            .rev()
            .find(|s| from <= s.at.day && s.at.day <= to)
    };
    let baseline = latest_in(
        t.start.plus_days(-(p.baseline_before_days as i32)),
        t.start.plus_days(p.baseline_after_days as i32),
    );
    let next_other = trials
        .iter()
        .filter(|o| o.drug != t.drug && o.start > t.start)
        .map(|o| o.start)
        .min();
    let window_end = end.plus_days(p.end_after_end_days as i32);
    let window_end = next_other.map_or(window_end, |n| n.min(window_end));
    let end_score = latest_in(t.start.plus_days(p.end_from_start_days as i32), window_end);
    let judged = |outcome, inferred, switched_to| Judged {
        outcome,
        inferred,
        baseline,
        end_score,
        switched_to,
    };

    let min_days = k.policy.trial.min_duration_weeks as i32 * 7;
    if t.is_ongoing() && t.start.days_until(as_of) < min_days {
        return judged(TrialOutcome::Ongoing, false, None);
    }
    if let Some(e) = end_score {
        if e.value < p.response_below {
            return judged(TrialOutcome::Responded, false, None);
        }
        if let Some(b) = baseline {
            // At least N % lower than baseline: (b - e) * 100 >= N * b, in integers.
            let improved =
                (b.value - e.value) * 100 >= i64::from(p.response_improvement_percent) * b.value;
            let outcome = if improved {
                TrialOutcome::Responded
            } else {
                TrialOutcome::Failed
            };
            return judged(outcome, false, None);
        }
    }
    let switch_deadline = end.plus_days(p.inferred_failure_window_days as i32);
    let switch = trials
        .iter()
        .enumerate()
        .filter(|(_, o)| o.drug != t.drug && o.start > t.start && o.start <= switch_deadline)
        .min_by_key(|(_, o)| o.start);
    match switch {
        Some((n, _)) => judged(TrialOutcome::Failed, true, Some(n)),
        None => judged(TrialOutcome::Unknown, false, None),
    }
}
