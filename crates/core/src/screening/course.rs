//! Courses (screening-rules.md section 7): antidepressant trials started within two weeks of one
//! another are one course, a combination started together. Courses, not ingredients, are what the
//! status counts; most courses hold one trial.

use super::trial::Trial;
use crate::knowledge::Knowledge;

/// Numbers the courses of the antidepressant trials (sorted by start) from 1; augmentation agents
/// are in none. A course opens with the first trial not yet in one and takes every later trial
/// started within `co_start_days` of that first start, so any two starts of a course lie within the
/// window. A chain (A on day 0, B on day 10, C on day 20) is two courses, {A, B} and {C}: C, started
/// more than two weeks after A, is an add-on to A (section 5), which is a course of its own.
pub fn number(trials: &mut [Trial], k: &Knowledge) {
    let window = k.policy.course.co_start_days as i32;
    let mut open: Option<(u32, crate::date::Date)> = None;
    for t in trials.iter_mut().filter(|t| !t.augmentation) {
        let course = match open {
            Some((n, first)) if first.days_until(t.start) <= window => n,
            Some((n, _)) => n + 1,
            None => 1,
        };
        if open.is_none_or(|(n, _)| n != course) {
            open = Some((course, t.start));
        }
        t.course = Some(course);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::date::Date;
    use crate::knowledge::DrugId;
    use crate::screening::trial::DoseAdequacy;

    fn trial(day: i32, augmentation: bool) -> Trial<'static> {
        Trial {
            drug: DrugId(day as u16),
            start: Date::parse("2024-01-01").unwrap().plus_days(day),
            end: None,
            daily_mg: None,
            dose: DoseAdequacy::Unconfirmed,
            adequate_duration: false,
            augmentation,
            evidence: Vec::new(),
            course: None,
            previous_end: None,
        }
    }

    fn courses(trials: &mut [Trial]) -> Vec<Option<u32>> {
        number(trials, &Knowledge::embedded());
        trials.iter().map(|t| t.course).collect()
    }

    #[test]
    fn a_chain_of_starts_is_cut_two_weeks_after_the_first_start_of_a_course() {
        let mut chain = [trial(0, false), trial(10, false), trial(20, false)];
        assert_eq!(courses(&mut chain), [Some(1), Some(1), Some(2)]);
        let mut edge = [trial(0, false), trial(14, false), trial(15, false)];
        assert_eq!(
            courses(&mut edge),
            [Some(1), Some(1), Some(2)],
            "day 14 is within two weeks, day 15 is not"
        );
    }

    #[test]
    fn augmentation_agents_are_in_no_course_and_do_not_open_one() {
        let mut trials = [
            trial(0, false),
            trial(5, true),
            trial(30, true),
            trial(40, false),
        ];
        assert_eq!(courses(&mut trials), [Some(1), None, None, Some(2)]);
    }
}
