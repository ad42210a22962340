//! The current episode (screening-rules.md section 6): the last 24 months before `as_of`, cut at the
//! latest remission that was followed by a relapse.

use super::facts::Score;
use crate::date::Date;
use crate::knowledge::Knowledge;

#[derive(Debug, Clone)]
pub struct Episode<'s> {
    pub start: Date,
    /// The remission and the relapse that cut the episode, when one did.
    pub cut: Option<(&'s Score<'s>, &'s Score<'s>)>,
}

impl Episode<'_> {
    /// A trial counts when it ended (or still runs) on or after the episode's start.
    pub fn counts(&self, trial_end: Date) -> bool {
        trial_end >= self.start
    }
}

/// `scores` are PHQ-9/PHQ-A totals, oldest first.
pub fn current<'s>(scores: &'s [Score<'s>], as_of: Date, k: &Knowledge) -> Episode<'s> {
    let p = &k.policy.episode;
    let window_start = as_of.minus_months(p.lookback_months);
    // The latest score below the remission line that some later score at or above the relapse line
    // follows; the episode starts with the first such relapse score.
    let mut cut = None;
    let mut first_relapse_after: Option<&Score> = None;
    for s in scores.iter().rev() {
        if s.value >= p.relapse_at_least {
            first_relapse_after = Some(s);
        } else if s.value < p.remission_below
            && let Some(relapse) = first_relapse_after
        {
            cut = Some((s, relapse));
            break;
        }
    }
    let start = cut.map_or(window_start, |(_, relapse)| {
        relapse.at.day.max(window_start)
    });
    Episode { start, cut }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::date::DateTime;

    /// A score cited by its day.
    fn score(day: &'static str, value: i64) -> Score<'static> {
        Score {
            value,
            at: DateTime::from_day(Date::parse(day).unwrap()),
            citation: day,
        }
    }

    #[test]
    fn remission_followed_by_relapse_starts_a_new_episode() {
        let k = Knowledge::embedded();
        let scores = [
            score("2024-01-01", 18),
            score("2024-03-01", 3),
            score("2024-06-01", 9),
            score("2024-08-01", 16),
            score("2024-09-01", 12),
        ];
        let e = current(&scores, Date::parse("2025-01-01").unwrap(), &k);
        assert_eq!(e.start.to_string(), "2024-08-01");
        assert_eq!(e.cut.unwrap().0.citation, "2024-03-01");
    }

    #[test]
    fn remission_without_relapse_does_not_cut() {
        let k = Knowledge::embedded();
        let scores = [score("2024-01-01", 18), score("2024-03-01", 3)];
        let e = current(&scores, Date::parse("2025-01-01").unwrap(), &k);
        assert_eq!(e.start.to_string(), "2023-01-01");
        assert!(e.cut.is_none());
    }
}
