//! Staging (screening-rules.md section 8; reference.md 1.3): Thase-Rush stage and the Maudsley
//! Staging Method score.

use super::episode::Episode;
use super::facts::{Facts, ProcedureKind, Score};
use super::status::{Judgement, Tally};
use crate::date::Date;
use crate::knowledge::Knowledge;
use std::collections::BTreeSet;

/// Stage II needs two failed courses (F >= 2) whose ingredients span two or more classes; a
/// combination of two classes that failed once is one course, stage I.
pub fn thase_rush(tally: &Tally, facts: &Facts, episode: &Episode, k: &Knowledge) -> u32 {
    let classes: BTreeSet<&str> = tally
        .failed_ingredients()
        .filter_map(|d| k.drug(d).class.as_deref())
        .collect();
    let completed_ect = facts
        .procedures
        .iter()
        .any(|p| p.kind == ProcedureKind::Ect && p.completed && p.date >= episode.start);
    match (tally.failed.len(), classes.len()) {
        (0, _) => 0,
        (1, _) | (_, 0 | 1) => 1,
        _ if !classes.contains("TCA") => 2,
        _ if !classes.contains("MAOI") => 3,
        _ if !completed_ect => 4,
        _ => 5,
    }
}

pub struct MaudsleyInput<'a, 's> {
    pub tally: &'a Tally,
    pub judged: &'a [Judgement<'a>],
    pub facts: &'a Facts<'a>,
    pub episode: &'a Episode<'s>,
    pub severity_score: Option<&'s Score<'s>>,
    pub as_of: Date,
}

/// The MSM total (3-15), or `None` when no antidepressant failed or severity is unknown. The
/// failed-antidepressant count is F, counted by courses.
pub fn maudsley(input: &MaudsleyInput, k: &Knowledge) -> Option<u32> {
    let failed = input.tally.failed_courses();
    let severity = input.severity_score?.value;
    if failed == 0 {
        return None;
    }
    let onset = episode_onset(input, k);
    let months = onset.whole_months_until(input.as_of);
    let duration = match months {
        0..=12 => 1,
        13..=24 => 2,
        _ => 3,
    };
    let psychotic = input
        .facts
        .active_in("psychotic_depression", k)
        .next()
        .is_some();
    let severity = match severity {
        s if s < 5 => 1,
        5..=9 => 2,
        10..=14 => 3,
        _ if psychotic => 5,
        _ => 4,
    };
    let failures = match failed {
        1..=2 => 1,
        3..=4 => 2,
        5..=6 => 3,
        7..=10 => 4,
        _ => 5,
    };
    let augmentation = u32::from(
        input
            .judged
            .iter()
            .any(|j| j.counted && j.trial.augmentation),
    );
    let ect = u32::from(
        input
            .facts
            .procedures
            .iter()
            .any(|p| p.kind == ProcedureKind::Ect && p.date >= input.episode.start),
    );
    Some(duration + severity + failures + augmentation + ect)
}

/// The earliest evidence of the current episode: the first counted antidepressant trial's start or
/// the first score at or above the relapse line in the episode, whichever is earlier. (The
/// episode's own start may be just the edge of the lookback window, which says nothing of onset.)
fn episode_onset(input: &MaudsleyInput, k: &Knowledge) -> Date {
    let first_trial = input
        .judged
        .iter()
        .filter(|j| j.counted && !j.trial.augmentation)
        .map(|j| j.trial.start)
        .min();
    let first_depressed = input
        .facts
        .depression_scores
        .iter()
        .find(|s| s.at.day >= input.episode.start && s.value >= k.policy.episode.relapse_at_least)
        .map(|s| s.at.day);
    [first_trial, first_depressed]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(input.as_of)
}

/// Baseline severity: the baseline of the earliest counted antidepressant trial, else the first score
/// in the episode.
pub fn severity_score<'s>(
    judged: &[Judgement<'s>],
    scores: &'s [Score<'s>],
    episode: &Episode,
) -> Option<&'s Score<'s>> {
    judged
        .iter()
        .filter(|j| j.counted && !j.trial.augmentation)
        .min_by_key(|j| j.trial.start)
        .and_then(|j| j.judged.baseline)
        .or_else(|| scores.iter().find(|s| s.at.day >= episode.start))
}
