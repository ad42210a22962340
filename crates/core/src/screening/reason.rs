//! Plain-language reasons: why the status is what it is, trial by trial, with the evidence.

use super::assessment::{Reason, TrdStatus, TrialOutcome};
use super::episode::Episode;
use super::outcome::Judged;
use super::status::{CourseTally, Judgement, Tally};
use super::trial::{DoseAdequacy, Trial};
use crate::date::Date;
use crate::knowledge::Knowledge;
use std::fmt::Write;

pub fn status_reason(status: TrdStatus, tally: &Tally, trials: &[Trial], k: &Knowledge) -> Reason {
    // Each course by its ingredients, a combination as "sertraline + mirtazapine".
    let names = |courses: &[CourseTally]| {
        courses
            .iter()
            .map(|c| {
                c.ingredients
                    .iter()
                    .map(|d| k.drug(*d).name.as_str())
                    .collect::<Vec<_>>()
                    .join(" + ")
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let evidence_of = |courses: &[CourseTally], evidence: &mut Vec<String>| {
        let in_courses = |t: &&Trial| {
            courses
                .iter()
                .any(|c| t.course == Some(c.course) && c.ingredients.contains(&t.drug))
        };
        for t in trials.iter().filter(in_courses) {
            evidence.extend(t.evidence.iter().map(|e| (*e).to_owned()));
        }
    };
    let (f, u) = (tally.failed.len(), tally.unconfirmed.len());
    let text = match status {
        TrdStatus::Met => format!(
            "Criteria met: {f} courses of different antidepressants failed after an adequate dose and duration in the current episode ({}).",
            names(&tally.failed)
        ),
        TrdStatus::Possible => format!(
            "Possibly treatment-resistant: {f} confirmed failed adequate course(s){}, and {u} more that would count if confirmed ({}: dose or outcome not recorded).",
            if f > 0 {
                format!(" ({})", names(&tally.failed))
            } else {
                String::new()
            },
            names(&tally.unconfirmed)
        ),
        TrdStatus::NotMet => format!(
            "Criteria not met: antidepressant treatment in the current episode, but {f} confirmed failed adequate course(s) and {u} unconfirmed, fewer than two."
        ),
        TrdStatus::NotApplicable => {
            "No antidepressant treatment in the current episode.".to_owned()
        }
    };
    let mut text = text;
    for course in &tally.repeated {
        let _ = write!(
            text,
            " Course {course} failed too, but every drug that failed in it was already in an earlier failed course: a restart is the same treatment and does not add to the count."
        );
    }
    let mut evidence = Vec::new();
    evidence_of(&tally.failed, &mut evidence);
    evidence_of(&tally.unconfirmed, &mut evidence);
    Reason { text, evidence }
}

/// Why trials of several antidepressants are one course: `course` holds the trials of one course,
/// in order of start (two or more).
fn course_reason(course: &[&Trial], k: &Knowledge) -> Reason {
    let mut text = String::with_capacity(120);
    for (n, t) in course.iter().enumerate() {
        let separator = match n {
            0 => "",
            n if n + 1 == course.len() => " and ",
            _ => ", ",
        };
        text.push_str(separator);
        text.push_str(&k.drug(t.drug).name);
    }
    let first = course[0];
    let _ = write!(
        text,
        " were started together: one course (course {}, started {}",
        first.course.unwrap_or_default(),
        first.start
    );
    let mut last = first.start;
    for t in &course[1..] {
        if t.start != last {
            let _ = write!(text, ", {}", t.start);
            last = t.start;
        }
    }
    text.push_str(").");
    let evidence = course
        .iter()
        .flat_map(|t| t.evidence.iter().map(|e| (*e).to_owned()))
        .collect();
    Reason { text, evidence }
}

pub fn episode_reason(episode: &Episode, k: &Knowledge) -> Reason {
    match episode.cut {
        Some((remission, relapse)) => Reason {
            text: format!(
                "Current episode from {}: remission (score {} on {}) followed by relapse (score {} on {}); trials that ended earlier are not counted.",
                episode.start, remission.value, remission.at.day, relapse.value, relapse.at.day
            ),
            evidence: vec![remission.citation.to_owned(), relapse.citation.to_owned()],
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

/// A reason per trial, in order of start, each course of several trials explained before its first.
pub fn trial_reasons(
    trials: &[Trial],
    judgements: &[Judgement],
    as_of: Date,
    k: &Knowledge,
    out: &mut Vec<Reason>,
) {
    let mut course = Vec::new();
    let mut last_course = None;
    for (i, j) in judgements.iter().enumerate() {
        let t = j.trial;
        if t.course.is_some() && t.course != last_course {
            last_course = t.course;
            course.clear();
            // A course's antidepressants are neighbours among the antidepressants.
            course.extend(
                trials[i..]
                    .iter()
                    .filter(|o| !o.augmentation)
                    .take_while(|o| o.course == t.course),
            );
            if course.len() > 1 {
                out.push(course_reason(&course, k));
            }
        }
        out.push(trial_reason(t, &j.judged, trials, j.counted, as_of, k));
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
    // One buffer written in place: this runs for every trial of every patient screened.
    let info = k.drug(t.drug);
    let mut text = String::with_capacity(160);
    let _ = write!(text, "{} {} to ", info.name, t.start);
    let _ = match t.end {
        Some(end) => write!(text, "{end}"),
        None => write!(text, "now"),
    };
    let _ = write!(text, " ({} weeks, ", t.days(as_of) / 7);
    let _ = match t.daily_mg {
        Some(mg) => write!(text, "{mg} mg/day)"),
        None => write!(text, "dose unknown)"),
    };
    if let Some(course) = t.course {
        let _ = write!(text, ", course {course}");
    }
    if t.augmentation {
        text.push_str(": augmentation, not an antidepressant trial");
    } else {
        text.push_str(match t.dose {
            DoseAdequacy::Adequate => ": adequate dose",
            DoseAdequacy::Inadequate => ": dose below the adequate minimum",
            DoseAdequacy::Unconfirmed => ": dose adequacy unconfirmed",
        });
        text.push_str(if t.adequate_duration {
            ", adequate duration"
        } else {
            ", too short"
        });
    }
    text.push_str("; ");
    let mut evidence = owned(&t.evidence, 2);
    let scores = match (judged.baseline, judged.end_score) {
        (Some(b), Some(e)) => {
            evidence.extend([b.citation.to_owned(), e.citation.to_owned()]);
            Some((Some(b.value), e.value))
        }
        (None, Some(e)) => {
            evidence.push(e.citation.to_owned());
            Some((None, e.value))
        }
        _ => None,
    };
    let write_scores = |text: &mut String| {
        let _ = match scores {
            Some((Some(b), e)) => write!(text, " (score {b} to {e})"),
            Some((None, e)) => write!(text, " (end score {e}, no baseline)"),
            None => Ok(()),
        };
    };
    // A drug restarted alongside this one, which would otherwise look like a switch.
    let not_a_switch = |text: &mut String, evidence: &mut Vec<String>| {
        if let Some(other) = judged.not_a_switch.map(|n| &trials[n]) {
            evidence.extend(other.evidence.iter().map(|e| (*e).to_owned()));
            let _ = write!(
                text,
                "; {} restarted on {} had been taken alongside {}: not a switch",
                k.drug(other.drug).name,
                other.start,
                info.name
            );
        }
    };
    match judged.outcome {
        TrialOutcome::Failed if judged.inferred => {
            let next = judged.switched_to.map(|n| &trials[n]);
            if let Some(n) = next {
                evidence.extend(n.evidence.iter().map(|e| (*e).to_owned()));
            }
            let _ = match next {
                Some(n) => write!(
                    text,
                    "failed (inferred: no end score, and {} was {} on {}",
                    k.drug(n.drug).name,
                    if n.augmentation { "added" } else { "started" },
                    n.start
                ),
                None => write!(
                    text,
                    "failed (inferred: no end score, and another drug was started"
                ),
            };
            not_a_switch(&mut text, &mut evidence);
            text.push(')');
        }
        TrialOutcome::Failed => {
            text.push_str("failed");
            write_scores(&mut text);
        }
        TrialOutcome::Responded => {
            text.push_str("responded");
            write_scores(&mut text);
        }
        TrialOutcome::Ongoing => text.push_str("ongoing, too early to judge"),
        TrialOutcome::Unknown => {
            text.push_str("outcome unknown (no end score, and no switch or add-on");
            not_a_switch(&mut text, &mut evidence);
            text.push(')');
        }
    }
    if !counted {
        text.push_str("; before the current episode, not counted");
    }
    text.push('.');
    Reason { text, evidence }
}

/// The citations as the owned strings of the Assessment, with room for `more`.
pub fn owned(citations: &[&str], more: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(citations.len() + more);
    out.extend(citations.iter().map(|c| (*c).to_owned()));
    out
}
