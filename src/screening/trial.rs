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

fn dedup<'r>(items: impl ExactSizeIterator<Item = &'r str>) -> Vec<&'r str> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// The highest daily dose held for at least `hold_days` in a row. Gaps between the exposures of a
/// trial are bridged by the dose before them; overlapping exposures hold the higher dose; days of
/// unknown dose break a run. When no dose was held that long, the highest known dose.
fn held_dose(parts: &[Exposure], trial_end: Date, hold_days: i32) -> Option<Ratio> {
    // Segments [start, end) with their dose, each extended over the gap to the next start.
    let mut segments: Vec<(Date, Date, Option<Ratio>)> = Vec::with_capacity(parts.len());
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
    // For each elementary interval, the highest known dose held (None: only unknown doses).
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
