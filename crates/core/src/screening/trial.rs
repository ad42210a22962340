//! Trials (screening-rules.md sections 3 and 4): exposures of one ingredient merged across refill
//! gaps, the dose held, and whether dose and duration were adequate.

use super::Diagnostics;
use super::exposure::Exposure;
use crate::date::Date;
use crate::fhir::DiagnosticKind;
use crate::knowledge::{DrugId, Knowledge, Role};
use crate::ratio::Ratio;

/// Adequacy of dose: confirmed, refuted, or not confirmable (dose unknown or no threshold known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoseAdequacy {
    Adequate,
    Inadequate,
    Unconfirmed,
}

#[derive(Debug, Clone)]
pub struct Trial<'r> {
    pub drug: DrugId,
    pub start: Date,
    /// `None` while ongoing at `as_of`.
    pub end: Option<Date>,
    pub daily_mg: Option<Ratio>,
    pub dose: DoseAdequacy,
    pub adequate_duration: bool,
    pub augmentation: bool,
    pub evidence: Vec<&'r str>,
    /// The course (section 7) of an antidepressant trial, numbered from 1 in order of start (set
    /// by `course::number`); `None` for augmentation agents.
    pub course: Option<u32>,
    /// When this ingredient's previous trial ended (`as_of` if it ran on); `None` for its first.
    pub previous_end: Option<Date>,
}

impl Trial<'_> {
    /// The last day of exposure, `as_of` while ongoing.
    pub fn end_or(&self, as_of: Date) -> Date {
        self.end.unwrap_or(as_of)
    }

    pub fn days(&self, as_of: Date) -> i32 {
        self.start.days_until(self.end_or(as_of))
    }

    pub fn is_ongoing(&self) -> bool {
        self.end.is_none()
    }
}

/// Builds trials of antidepressants and augmentation agents from exposures sorted by drug and start.
pub fn build<'r>(
    exposures: &[Exposure<'r>],
    as_of: Date,
    k: &Knowledge,
    d: &mut Diagnostics,
) -> Vec<Trial<'r>> {
    let gap = k.policy.trial.refill_gap_days as i32;
    let mut trials = Vec::new();
    let mut i = 0;
    while i < exposures.len() {
        let drug = exposures[i].drug;
        let mut j = i + 1;
        let mut end = exposures[i].end;
        while j < exposures.len() && exposures[j].drug == drug {
            let joins = match end {
                None => true,
                Some(e) => e.days_until(exposures[j].start) <= gap,
            };
            if !joins {
                break;
            }
            end = match (end, exposures[j].end) {
                (None, _) | (_, None) => None,
                (Some(a), Some(b)) => Some(a.max(b)),
            };
            j += 1;
        }
        let role = k.drug(drug).role;
        if matches!(role, Role::Antidepressant | Role::Augmentation) {
            if let Some(trial) = trial(&exposures[i..j], end, as_of, k, d) {
                trials.push(trial);
            }
        }
        i = j;
    }
    // The loop made each ingredient's trials one after another, in order of start.
    for n in 1..trials.len() {
        if trials[n].drug == trials[n - 1].drug {
            trials[n].previous_end = Some(trials[n - 1].end_or(as_of));
        }
    }
    trials.sort_by_key(|t| (t.start, t.drug));
    trials
}

fn trial<'r>(
    parts: &[Exposure<'r>],
    end: Option<Date>,
    as_of: Date,
    k: &Knowledge,
    d: &mut Diagnostics,
) -> Option<Trial<'r>> {
    let info = k.drug(parts[0].drug);
    let start = parts[0].start;
    let daily_mg = held_dose(
        parts,
        end.unwrap_or(as_of),
        k.policy.trial.dose_hold_days as i32,
    );
    let evidence = dedup(parts.iter().map(|p| p.citation));
    if let (Some(limit), Some(mg)) = (info.hypnotic, daily_mg)
        && limit.is_hypnotic(mg)
    {
        for cite in &evidence {
            d.note(
                cite,
                DiagnosticKind::HypnoticDose,
                format!(
                    "{} at {mg} mg/day is hypnotic use, not an antidepressant trial",
                    info.name
                ),
            );
        }
        return None;
    }
    let augmentation = info.role == Role::Augmentation;
    let threshold = parts
        .iter()
        .filter_map(|p| p.min_adequate_override)
        .min()
        .or(info.min_adequate_daily_mg);
    let dose = match (augmentation, daily_mg, threshold) {
        (true, _, _) => DoseAdequacy::Unconfirmed,
        (false, Some(mg), Some(min)) if mg >= min => DoseAdequacy::Adequate,
        (false, Some(_), Some(_)) => DoseAdequacy::Inadequate,
        _ => DoseAdequacy::Unconfirmed,
    };
    let days = start.days_until(end.unwrap_or(as_of));
    Some(Trial {
        drug: parts[0].drug,
        start,
        end,
        daily_mg,
        dose,
        adequate_duration: !augmentation && days >= k.policy.trial.min_duration_weeks as i32 * 7,
        augmentation,
        evidence,
        course: None,
        previous_end: None,
    })
}

/// The citations in order of first appearance, each once (in linear time: a trial may gather
/// thousands of refills).
fn dedup<'r>(items: impl ExactSizeIterator<Item = &'r str>) -> Vec<&'r str> {
    // Most trials have a handful of records, which a scan of the list checks faster than a hash.
    const SCANNED: usize = 16;
    if items.len() <= SCANNED {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if !out.contains(&item) {
                out.push(item);
            }
        }
        return out;
    }
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    items.filter(|item| seen.insert(*item)).collect()
}

/// The highest daily dose held for at least `hold_days` in a row. Gaps between the exposures of a
/// trial are bridged by the dose before them; overlapping exposures hold the higher dose; days of
/// unknown dose break a run. When no dose was held that long, the highest known dose.
fn held_dose(parts: &[Exposure], trial_end: Date, hold_days: i32) -> Option<Ratio> {
    // Segments [start, end) with their dose, each extended over the gap to the next start.
    let segments: Vec<Segment> = parts
        .iter()
        .enumerate()
        .map(|(n, p)| {
            let own_end = p.end.unwrap_or(trial_end);
            let bridged = parts
                .get(n + 1)
                .map_or(own_end, |next| own_end.max(next.start));
            Segment {
                start: p.start,
                end: bridged.max(p.start),
                dose: p.daily_mg,
            }
        })
        .collect();
    let highest = segments.iter().filter_map(|s| s.dose).max();
    longest_held(&held_by_interval(&segments), hold_days).or(highest)
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    start: Date,
    end: Date,
    dose: Option<Ratio>,
}

/// The trial cut at every segment's start and end: each elementary interval's length in days and
/// the highest known dose held over it (`None`: only unknown doses). One sweep over the cuts with
/// the known doses held at the time in an ordered multiset: n log n.
fn held_by_interval(segments: &[Segment]) -> Vec<(i32, Option<Ratio>)> {
    let mut cuts: Vec<Date> = segments.iter().flat_map(|s| [s.start, s.end]).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut by_start: Vec<&Segment> = segments.iter().filter(|s| s.dose.is_some()).collect();
    by_start.sort_by_key(|s| s.start);
    let mut by_end = by_start.clone();
    by_end.sort_by_key(|s| s.end);
    let (mut started, mut ended) = (by_start.iter().peekable(), by_end.iter().peekable());
    let mut held: std::collections::BTreeMap<Ratio, usize> = std::collections::BTreeMap::new();
    let mut out = Vec::with_capacity(cuts.len().saturating_sub(1));
    for w in cuts.windows(2) {
        while let Some(s) = started.next_if(|s| s.start <= w[0]) {
            *held.entry(s.dose.expect("known doses only")).or_default() += 1;
        }
        // Every end is a cut, so a segment that has not ended by w[0] covers all of [w[0], w[1]).
        while let Some(s) = ended.next_if(|s| s.end <= w[0]) {
            let dose = s.dose.expect("known doses only");
            if let Some(count) = held.get_mut(&dose) {
                *count -= 1;
                if *count == 0 {
                    held.remove(&dose);
                }
            }
        }
        out.push((
            w[0].days_until(w[1]),
            held.last_key_value().map(|(d, _)| *d),
        ));
    }
    out
}

/// The highest dose held over a run of consecutive intervals lasting at least `hold_days` (each
/// interval of the run holding at least that dose). For each first interval, the shortest run
/// that lasts long enough is the one that holds the most, and its lowest dose is kept in a
/// monotonic queue as the run slides: linear.
fn longest_held(held: &[(i32, Option<Ratio>)], hold_days: i32) -> Option<Ratio> {
    let mut best: Option<Ratio> = None;
    let mut lowest: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
    let (mut end, mut days) = (0, 0);
    for first in 0..held.len() {
        if end < first {
            (end, days) = (first, 0);
            lowest.clear();
        }
        while end < held.len() && (days < hold_days || end == first) {
            let Some(dose) = held[end].1 else { break };
            while lowest.back().is_some_and(|&b| held[b].1 >= Some(dose)) {
                lowest.pop_back();
            }
            lowest.push_back(end);
            days += held[end].0;
            end += 1;
        }
        if end > first && days >= hold_days {
            let run_holds = lowest.front().and_then(|&i| held[i].1);
            best = best.max(run_holds);
        }
        if end > first {
            days -= held[first].0;
            if lowest.front() == Some(&first) {
                lowest.pop_front();
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposure(start: &'static str, end: &str, mg: Option<u64>) -> Exposure<'static> {
        Exposure {
            drug: DrugId(0),
            start: Date::parse(start).unwrap(),
            end: Some(Date::parse(end).unwrap()),
            daily_mg: mg.map(Ratio::integer),
            min_adequate_override: None,
            citation: start,
        }
    }

    fn held(parts: &[Exposure]) -> Option<u64> {
        let end = parts.iter().filter_map(|p| p.end).max().unwrap();
        held_dose(parts, end, 14).map(|r| r.to_f64() as u64)
    }

    #[test]
    fn a_dose_counts_once_held_for_two_weeks() {
        let titration = [
            exposure("2024-01-01", "2024-01-15", Some(50)),
            exposure("2024-01-15", "2024-03-01", Some(100)),
        ];
        assert_eq!(held(&titration), Some(100));
        let brief_peak = [
            exposure("2024-01-01", "2024-03-01", Some(50)),
            exposure("2024-03-01", "2024-03-14", Some(200)),
        ];
        assert_eq!(held(&brief_peak), Some(50), "13 days at 200 mg is not held");
    }

    #[test]
    fn gaps_are_bridged_by_the_dose_before_them() {
        let parts = [
            exposure("2024-01-01", "2024-01-08", Some(100)),
            exposure("2024-01-20", "2024-01-25", Some(100)),
        ];
        assert_eq!(held(&parts), Some(100));
    }

    /// The first version: every interval against every segment, every dose against every interval.
    fn held_dose_quadratic(parts: &[Exposure], trial_end: Date, hold_days: i32) -> Option<Ratio> {
        let mut segments: Vec<(Date, Date, Option<Ratio>)> = Vec::new();
        for (n, p) in parts.iter().enumerate() {
            let own_end = p.end.unwrap_or(trial_end);
            let bridged = parts
                .get(n + 1)
                .map_or(own_end, |next| own_end.max(next.start));
            segments.push((p.start, bridged.max(p.start), p.daily_mg));
        }
        let mut candidates: Vec<Ratio> = segments.iter().filter_map(|s| s.2).collect();
        candidates.sort();
        candidates.dedup();
        let mut cuts: Vec<Date> = segments.iter().flat_map(|s| [s.0, s.1]).collect();
        cuts.sort();
        cuts.dedup();
        let held: Vec<(i32, Option<Ratio>)> = cuts
            .windows(2)
            .map(|w| {
                let covering = segments.iter().filter(|s| s.0 <= w[0] && w[1] <= s.1);
                (w[0].days_until(w[1]), covering.filter_map(|s| s.2).max())
            })
            .collect();
        for candidate in candidates.iter().rev() {
            let mut run = 0;
            for (days, dose) in &held {
                run = if dose.is_some_and(|x| x >= *candidate) {
                    run + days
                } else {
                    0
                };
                if run >= hold_days {
                    return Some(*candidate);
                }
            }
        }
        candidates.last().copied()
    }

    #[test]
    fn the_held_dose_is_the_same_as_the_first_versions_on_many_shapes_of_trial() {
        // A fixed pseudo-random walk over starts, lengths, overlaps, gaps and unknown doses.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let day0 = Date::parse("2024-01-01").unwrap();
        for case in 0..2000 {
            let count = 1 + next(12) as usize;
            let mut start = day0;
            let mut parts = Vec::new();
            for _ in 0..count {
                start = start.plus_days(next(40) as i32);
                let end = (next(6) > 0).then(|| start.plus_days(next(60) as i32));
                let dose = (next(5) > 0).then(|| Ratio::integer(25 * (1 + next(8))));
                parts.push(Exposure {
                    drug: DrugId(0),
                    start,
                    end,
                    daily_mg: dose,
                    min_adequate_override: None,
                    citation: "x",
                });
            }
            let trial_end = start.plus_days(next(90) as i32);
            for hold in [1, 14, 30] {
                assert_eq!(
                    held_dose(&parts, trial_end, hold),
                    held_dose_quadratic(&parts, trial_end, hold),
                    "case {case}, hold {hold}: {parts:?}"
                );
            }
        }
    }

    #[test]
    fn evidence_keeps_the_first_of_each_citation_in_order() {
        assert_eq!(
            dedup(["b", "a", "b", "c", "a"].into_iter()),
            vec!["b", "a", "c"]
        );
        let many: Vec<String> = (0..40).map(|i| format!("c{}", i % 25)).collect();
        let expected: Vec<String> = (0..25).map(|i| format!("c{i}")).collect();
        assert_eq!(dedup(many.iter().map(String::as_str)), expected);
    }

    #[test]
    fn unknown_doses_break_runs_and_short_trials_fall_back_to_the_highest_dose() {
        let parts = [
            exposure("2024-01-01", "2024-01-10", Some(100)),
            exposure("2024-01-10", "2024-01-20", None),
            exposure("2024-01-20", "2024-01-28", Some(100)),
        ];
        assert_eq!(held(&parts), Some(100), "no 14-day run: highest known dose");
        assert_eq!(held(&[exposure("2024-01-01", "2024-03-01", None)]), None);
    }
}
