//! Status (screening-rules.md section 7) from the courses counted in the current episode: F counts
//! the courses that failed adequately, U those that would if their dose or outcome were confirmed.

use super::assessment::{TrdStatus, TrialOutcome};
use super::outcome::Judged;
use super::trial::{DoseAdequacy, Trial};
use crate::knowledge::DrugId;

/// A trial with its judged outcome and whether it lies in the current episode: one value per
/// trial, so that nothing pairs parallel lists by index.
pub struct Judgement<'t> {
    pub trial: &'t Trial<'t>,
    pub judged: Judged<'t>,
    pub counted: bool,
}

/// A course in F or U, and the ingredients that put it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CourseTally {
    pub course: u32,
    pub ingredients: Vec<DrugId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// F, in order of start: counted courses with an adequate (dose and duration) failed trial of an
    /// ingredient that no earlier course in F holds. Their ingredients are all their adequate
    /// failed trials'.
    pub failed: Vec<CourseTally>,
    /// U, in order of start: counted courses not in F with a trial of an ingredient that no course
    /// in F and no earlier course in U holds, that failed with adequate duration but unconfirmed
    /// dose, or was adequate with an unknown outcome. Their ingredients are those trials'.
    pub unconfirmed: Vec<CourseTally>,
    /// Counted courses with an adequate failed trial that are not in F: every such ingredient was
    /// held by an earlier course in F (a restart).
    pub repeated: Vec<u32>,
    pub any_antidepressant: bool,
}

fn failed_adequately(j: &Judgement) -> bool {
    j.judged.outcome == TrialOutcome::Failed
        && j.trial.adequate_duration
        && j.trial.dose == DoseAdequacy::Adequate
}

fn would_count_if_confirmed(j: &Judgement) -> bool {
    j.trial.adequate_duration
        && matches!(
            (j.judged.outcome, j.trial.dose),
            (TrialOutcome::Failed, DoseAdequacy::Unconfirmed)
                | (TrialOutcome::Unknown, DoseAdequacy::Adequate)
        )
}

/// `judged` in the order of the trials (by start), so that a course's trials are neighbours.
pub fn tally(judged: &[Judgement]) -> Tally {
    let counted: Vec<&Judgement> = judged
        .iter()
        .filter(|j| j.counted && !j.trial.augmentation)
        .collect();
    let courses: Vec<&[&Judgement]> = counted
        .chunk_by(|a, b| a.trial.course == b.trial.course)
        .collect();
    // A course holds the ingredients of all its counted trials, whatever their dose or outcome.
    let holds = |course: &[&Judgement], held: &mut Vec<DrugId>| {
        held.extend(course.iter().map(|j| j.trial.drug));
    };
    let mut held = Vec::new();
    let mut in_f = vec![false; courses.len()];
    let mut failed = Vec::new();
    let mut repeated = Vec::new();
    for (n, course) in courses.iter().enumerate() {
        let adds_an_agent = course
            .iter()
            .any(|j| failed_adequately(j) && !held.contains(&j.trial.drug));
        if adds_an_agent {
            failed.push(tally_of(course, failed_adequately));
            holds(course, &mut held);
            in_f[n] = true;
        } else if course.iter().any(|j| failed_adequately(j)) {
            repeated.push(course[0].trial.course.unwrap_or_default());
        }
    }
    let mut unconfirmed = Vec::new();
    for (n, course) in courses.iter().enumerate().filter(|(n, _)| !in_f[*n]) {
        let new = |j: &Judgement| would_count_if_confirmed(j) && !held.contains(&j.trial.drug);
        if course.iter().any(|j| new(j)) {
            unconfirmed.push(tally_of(course, new));
            holds(courses[n], &mut held);
        }
    }
    Tally {
        failed,
        unconfirmed,
        repeated,
        any_antidepressant: !counted.is_empty(),
    }
}

fn tally_of(course: &[&Judgement], include: impl Fn(&Judgement) -> bool) -> CourseTally {
    let mut ingredients = Vec::with_capacity(course.len());
    for j in course.iter().filter(|j| include(j)) {
        if !ingredients.contains(&j.trial.drug) {
            ingredients.push(j.trial.drug);
        }
    }
    CourseTally {
        course: course[0].trial.course.unwrap_or_default(),
        ingredients,
    }
}

impl Tally {
    /// F: the `failed_adequate_trials` of the assessment.
    pub fn failed_courses(&self) -> u32 {
        self.failed.len() as u32
    }

    /// The ingredients of the courses in F.
    pub fn failed_ingredients(&self) -> impl Iterator<Item = DrugId> + '_ {
        self.failed
            .iter()
            .flat_map(|c| c.ingredients.iter().copied())
    }

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
