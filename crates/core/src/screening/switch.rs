//! Switches and add-ons (screening-rules.md section 5): what closes a trial's end-score window and,
//! when there is no end score, shows that the trial failed.
//!
//! A switch or add-on for a trial T is a trial X of another ingredient (an antidepressant, or an
//! augmentation agent) started more than `switch_after_days` after T's start that the patient had
//! not taken at any time between T's start and X's start. A drug co-started with T is not one (it
//! starts too soon), nor is one restarted together with T after a break (it was taken since T
//! began); a return to a drug last taken before T started is a switch.

use super::trial::Trial;
use crate::date::Date;
use crate::knowledge::Knowledge;

/// What followed a trial, as indexes into the trials.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Next {
    /// The first switch or add-on.
    pub switch: Option<usize>,
    /// The first trial of another ingredient started as late as a switch, before it, that is not
    /// one because the patient had taken that ingredient since the trial began: a drug restarted
    /// together with it.
    pub alongside: Option<usize>,
}

/// What followed trial `index` (trials sorted by start), looking at starts up to `horizon` only.
/// Each ingredient's earlier trials are summed up in `previous_end`, so this reads only the trials
/// that started between two weeks after this one's start and the horizon, usually none or one.
pub fn next(index: usize, trials: &[Trial], horizon: Date, k: &Knowledge) -> Next {
    let t = &trials[index];
    let too_soon = t.start.plus_days(k.policy.outcome.switch_after_days as i32);
    let from = trials.partition_point(|o| o.start <= too_soon);
    let mut next = Next::default();
    for (n, o) in trials.iter().enumerate().skip(from) {
        if o.start > horizon {
            break;
        }
        if o.drug == t.drug {
            // A refill or restart of the same drug is the same agent.
            continue;
        }
        let taken_since_start = o.previous_end.is_some_and(|end| end > t.start);
        if taken_since_start {
            next.alongside.get_or_insert(n);
        } else {
            next.switch = Some(n);
            break;
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::DrugId;
    use crate::screening::trial::DoseAdequacy;

    fn day(n: i32) -> Date {
        Date::parse("2024-01-01").unwrap().plus_days(n)
    }

    /// A trial of drug `drug` on days `start..end`, after one that ended on `previous_end`.
    fn trial(drug: u16, start: i32, end: i32, previous_end: Option<i32>) -> Trial<'static> {
        Trial {
            drug: DrugId(drug),
            start: day(start),
            end: Some(day(end)),
            daily_mg: None,
            dose: DoseAdequacy::Unconfirmed,
            adequate_duration: false,
            augmentation: false,
            evidence: Vec::new(),
            course: None,
            previous_end: previous_end.map(day),
        }
    }

    fn next_of(index: usize, trials: &[Trial]) -> Next {
        next(index, trials, day(10_000), &Knowledge::embedded())
    }

    #[test]
    fn a_drug_started_more_than_two_weeks_later_is_a_switch_and_a_co_start_is_not() {
        let trials = [
            trial(1, 0, 60, None),
            trial(2, 14, 60, None),
            trial(3, 15, 60, None),
        ];
        assert_eq!(
            next_of(0, &trials),
            Next {
                switch: Some(2),
                alongside: None
            }
        );
    }

    #[test]
    fn a_pair_restarted_together_is_not_a_switch_but_a_return_to_an_earlier_drug_is() {
        // 1 and 2 together on days 0-60, both again from day 120.
        let pair = [
            trial(1, 0, 60, None),
            trial(2, 0, 60, None),
            trial(1, 120, 180, Some(60)),
            trial(2, 120, 180, Some(60)),
        ];
        assert_eq!(
            next_of(0, &pair),
            Next {
                switch: None,
                alongside: Some(3)
            }
        );
        // 1 on days 0-60, 2 from day 70, 1 again from day 170: a return, so a switch for 2.
        let back = [
            trial(1, 0, 60, None),
            trial(2, 70, 160, None),
            trial(1, 170, 250, Some(60)),
        ];
        assert_eq!(next_of(1, &back).switch, Some(2));
    }

    #[test]
    fn starts_after_the_horizon_are_not_read() {
        let trials = [trial(1, 0, 60, None), trial(2, 200, 260, None)];
        let k = Knowledge::embedded();
        assert_eq!(next(0, &trials, day(199), &k).switch, None);
        assert_eq!(next(0, &trials, day(200), &k).switch, Some(1));
    }
}
