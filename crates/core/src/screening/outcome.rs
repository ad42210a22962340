//! Outcome of a trial (screening-rules.md section 5): scored from PHQ-9/PHQ-A totals around it, or
//! inferred from a switch or add-on when there is no end score.

use super::assessment::TrialOutcome;
use super::facts::Score;
use super::switch;
use super::trial::Trial;
use crate::date::Date;
use crate::knowledge::Knowledge;

#[derive(Debug, Clone)]
pub struct Judged<'s> {
    pub outcome: TrialOutcome,
    pub inferred: bool,
    pub baseline: Option<&'s Score<'s>>,
    pub end_score: Option<&'s Score<'s>>,
    /// The switch or add-on whose start implied failure, when inferred.
    pub switched_to: Option<usize>,
    /// Without an end score: a drug restarted alongside within the window in which a switch would
    /// have implied failure, which is not a switch (said so in the reason).
    pub not_a_switch: Option<usize>,
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
    let window_end = end.plus_days(p.end_after_end_days as i32);
    let switch_deadline = end.plus_days(p.inferred_failure_window_days as i32);
    let next = switch::next(index, trials, window_end.max(switch_deadline), k);
    // The end-score window closes at the first switch or add-on, not at any other drug's start.
    let window_end = next
        .switch
        .map_or(window_end, |n| trials[n].start.min(window_end));
    let end_score = latest_in(t.start.plus_days(p.end_from_start_days as i32), window_end);
    let judged = |outcome, inferred, switched_to, not_a_switch| Judged {
        outcome,
        inferred,
        baseline,
        end_score,
        switched_to,
        not_a_switch,
    };

    let min_days = k.policy.trial.min_duration_weeks as i32 * 7;
    if t.is_ongoing() && t.start.days_until(as_of) < min_days {
        return judged(TrialOutcome::Ongoing, false, None, None);
    }
    if let Some(e) = end_score {
        if e.value < p.response_below {
            return judged(TrialOutcome::Responded, false, None, None);
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
            return judged(outcome, false, None, None);
        }
    }
    let within = |n: &usize| trials[*n].start <= switch_deadline;
    let not_a_switch = next.alongside.filter(within);
    match next.switch.filter(within) {
        Some(n) => judged(TrialOutcome::Failed, true, Some(n), not_a_switch),
        None => judged(TrialOutcome::Unknown, false, None, not_a_switch),
    }
}
