//! The timeline as plain SVG geometry: one bar per trial (antidepressants and augmentation agents,
//! grouped by course) and the PHQ-9 totals as a line, over one time axis. Only numbers and labels
//! are computed here; the template writes the elements (and escapes every label).

use crate::date::Date;
use crate::screening::{TreatmentTrial, TrialOutcome};

/// The drawing's width in SVG units (the page scales it to the window and the sheet).
pub const WIDTH: f64 = 960.0;
/// Left of the plot: the column of course and drug names.
const PLOT_LEFT: f64 = 210.0;
const PLOT_RIGHT: f64 = WIDTH - 16.0;
const TOP: f64 = 44.0;
const ROW: f64 = 44.0;
const BAR_HEIGHT: f64 = 18.0;
const GAP: f64 = 28.0;
const SCORES_HEIGHT: f64 = 170.0;
const AXIS_HEIGHT: f64 = 26.0;
/// The PHQ-9 (and PHQ-A) total runs from 0 to 27.
const MAX_SCORE: i64 = 27;
/// Room a label beside a bar needs, in SVG units.
const LABEL_ROOM: f64 = 150.0;
/// Above this many scores, points are drawn without their value written beside them.
const LABELLED_POINTS: usize = 40;

/// One PHQ-9 (or PHQ-A) total as the chart reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScorePoint {
    pub day: Date,
    pub value: i64,
    /// `Type/id` of the Observation.
    pub citation: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub plot_left: f64,
    pub plot_right: f64,
    /// The vertical extent of the grid lines and the as-of line.
    pub grid_top: f64,
    pub grid_bottom: f64,
    pub ticks: Vec<Tick>,
    pub as_of_x: String,
    /// Where the as-of label ends, just left of its line.
    pub as_of_label_x: String,
    pub rows: Vec<Row>,
    pub scores: Scores,
}

/// A date on the axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub x: String,
    pub label: String,
}

/// One trial: its names in the left column and its bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name_y: String,
    pub detail_y: String,
    /// "Course 2", or "Augmentation".
    pub course: String,
    pub drug: String,
    /// Dose and length: "100 mg/day · 12.0 wk".
    pub detail: String,
    pub bar_x: String,
    pub bar_y: String,
    pub bar_width: String,
    pub bar_height: String,
    /// CSS classes: the outcome, and `inadequate`, `earlier` (before this episode) as they apply.
    pub class: String,
    /// Outcome and adequacy in words, written beside (or in) the bar.
    pub label: String,
    pub label_x: String,
    pub label_y: String,
    /// `start`, `end`: which side of the label is at `label_x`.
    pub label_anchor: &'static str,
    pub label_inside: bool,
    /// The tooltip: drug, dates, dose, outcome.
    pub title: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    pub top: f64,
    pub bottom: f64,
    /// Severity thresholds (5, 10, 15, 20) as horizontal lines with their names.
    pub bands: Vec<Band>,
    /// The `points` attribute of the polyline: `x,y x,y ...`.
    pub polyline: String,
    pub points: Vec<Point>,
    pub label_values: bool,
    /// Points are smaller when there are many, so that the line stays readable.
    pub point_radius: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub y: String,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub x: String,
    pub y: String,
    pub label_y: String,
    pub value: i64,
    pub title: String,
}

/// The outcome as the page writes it.
pub fn outcome_text(t: &TreatmentTrial) -> &'static str {
    match t.outcome {
        TrialOutcome::Failed if t.outcome_inferred => "failed (inferred)",
        TrialOutcome::Failed => "failed",
        TrialOutcome::Responded => "responded",
        TrialOutcome::Ongoing => "ongoing",
        TrialOutcome::Unknown => "outcome unknown",
    }
}

/// The CSS class of an outcome.
pub fn outcome_class(outcome: TrialOutcome) -> &'static str {
    match outcome {
        TrialOutcome::Failed => "failed",
        TrialOutcome::Responded => "responded",
        TrialOutcome::Ongoing => "ongoing",
        TrialOutcome::Unknown => "unknown",
    }
}

/// Whether a trial had an adequate dose and duration, in words.
pub fn adequacy_text(t: &TreatmentTrial) -> &'static str {
    match (t.augmentation, t.adequate_dose, t.adequate_duration) {
        (true, _, _) => "augmentation",
        (false, true, true) => "adequate",
        (false, false, true) => "dose not adequate or not confirmed",
        (false, true, false) => "too short",
        (false, false, false) => "dose not adequate or not confirmed, too short",
    }
}

pub fn dose_text(t: &TreatmentTrial) -> String {
    t.daily_dose_mg
        .map_or_else(|| "dose unknown".to_owned(), |mg| format!("{mg} mg/day"))
}

fn num(v: f64) -> String {
    format!("{v:.1}")
}

/// The days the axis spans: every trial and score, and the as-of day, with a margin.
fn span(trials: &[(Date, Date)], scores: &[ScorePoint], as_of: Date) -> (Date, Date) {
    let days = trials
        .iter()
        .flat_map(|(s, e)| [*s, *e])
        .chain(scores.iter().map(|s| s.day))
        .chain([as_of]);
    let (first, last) = days.fold((as_of, as_of), |(lo, hi), d| (lo.min(d), hi.max(d)));
    let first = if first == last {
        first.plus_days(-365)
    } else {
        first
    };
    let margin = (first.days_until(last) / 40).max(7);
    (first.plus_days(-margin), last.plus_days(margin))
}

/// First days of months from `first` to `last`, a whole number of months apart, at most ten.
fn ticks(first: Date, last: Date) -> Vec<(Date, String)> {
    let months = first.whole_months_until(last).max(1);
    let step = [1u32, 2, 3, 6, 12, 24, 60, 120]
        .into_iter()
        .find(|s| months / s <= 10)
        .unwrap_or(240);
    let (mut y, mut m, _) = first.ymd();
    // The first month whose first day is on the axis and that the step lands on (January for
    // steps of a year or more).
    let mut out = Vec::new();
    loop {
        m += 1;
        if m > 12 {
            m = 1;
            y += 1;
        }
        let aligned = if step >= 12 {
            m == 1 && (y as u32).is_multiple_of(step / 12)
        } else {
            (m - 1) % step == 0
        };
        let Some(day) = Date::from_ymd(y, m, 1) else {
            break;
        };
        if day > last || out.len() == 10 {
            break;
        }
        if aligned {
            let label = if step >= 12 {
                format!("{y}")
            } else {
                format!("{y}-{m:02}")
            };
            out.push((day, label));
        }
    }
    out
}

pub fn chart(trials: &[TreatmentTrial], scores: &[ScorePoint], as_of: Date) -> Chart {
    let spans: Vec<(Date, Date)> = trials
        .iter()
        .map(|t| {
            let start = Date::parse(&t.start).unwrap_or(as_of);
            let end = t
                .end
                .as_deref()
                .and_then(|e| Date::parse(e).ok())
                .unwrap_or(as_of);
            (start, end.max(start))
        })
        .collect();
    let (first, last) = span(&spans, scores, as_of);
    let total = f64::from(first.days_until(last).max(1));
    let x = |d: Date| PLOT_LEFT + f64::from(first.days_until(d)) / total * (PLOT_RIGHT - PLOT_LEFT);

    let rows: Vec<Row> = trials
        .iter()
        .zip(&spans)
        .enumerate()
        .map(|(n, (t, (start, end)))| {
            let top = TOP + ROW * n as f64;
            let bar_y = top + (ROW - BAR_HEIGHT) / 2.0;
            let (x0, x1) = (x(*start), x(*end));
            // A trial of a day or two still shows.
            let width = (x1 - x0).max(3.0);
            let outcome = outcome_text(t);
            let adequacy = adequacy_text(t);
            let label = if t.augmentation {
                outcome.to_owned()
            } else {
                format!("{outcome} · {adequacy}")
            };
            let (label_x, anchor, inside) = if PLOT_RIGHT - (x0 + width) >= LABEL_ROOM {
                (x0 + width + 6.0, "start", false)
            } else if x0 - PLOT_LEFT >= LABEL_ROOM {
                (x0 - 6.0, "end", false)
            } else {
                (x0 + 6.0, "start", true)
            };
            let mut class = outcome_class(t.outcome).to_owned();
            if t.augmentation {
                class.push_str(" augmentation");
            } else if !(t.adequate_dose && t.adequate_duration) {
                class.push_str(" inadequate");
            }
            if !t.counted {
                class.push_str(" earlier");
            }
            let course = match t.course {
                Some(c) => format!("Course {c}"),
                None => "Augmentation".to_owned(),
            };
            let dates = format!("{} to {}", t.start, t.end.as_deref().unwrap_or("now"));
            let dose = dose_text(t);
            Row {
                name_y: num(top + 17.0),
                detail_y: num(top + 34.0),
                course,
                drug: t.ingredient.clone(),
                detail: format!("{dose} · {:.1} wk", t.weeks),
                bar_x: num(x0),
                bar_y: num(bar_y),
                bar_width: num(width),
                bar_height: num(BAR_HEIGHT),
                class,
                label,
                label_x: num(label_x),
                label_y: num(bar_y + BAR_HEIGHT / 2.0 + 4.5),
                label_anchor: anchor,
                label_inside: inside,
                title: format!(
                    "{}: {dates}, {dose}, {outcome}{}",
                    t.ingredient,
                    if t.counted {
                        ""
                    } else {
                        " (before this episode)"
                    }
                ),
            }
        })
        .collect();

    let scores_top = TOP + ROW * rows.len().max(1) as f64 + GAP;
    let scores_bottom = scores_top + SCORES_HEIGHT;
    let y = |v: i64| {
        let v = v.clamp(0, MAX_SCORE);
        scores_bottom - (v as f64) / (MAX_SCORE as f64) * SCORES_HEIGHT
    };
    let bands = [
        (5, "5 mild"),
        (10, "10 moderate"),
        (15, "15 moderately severe"),
        (20, "20 severe"),
    ]
    .into_iter()
    .map(|(v, label)| Band {
        y: num(y(v)),
        label: label.to_owned(),
    })
    .collect();
    let points: Vec<Point> = scores
        .iter()
        .map(|s| Point {
            x: num(x(s.day)),
            y: num(y(s.value)),
            label_y: num(y(s.value) - 8.0),
            value: s.value,
            title: format!("PHQ-9 {} on {} ({})", s.value, s.day, s.citation),
        })
        .collect();
    let polyline = points
        .iter()
        .map(|p| format!("{},{}", p.x, p.y))
        .collect::<Vec<_>>()
        .join(" ");

    Chart {
        width: WIDTH,
        height: scores_bottom + AXIS_HEIGHT,
        plot_left: PLOT_LEFT,
        plot_right: PLOT_RIGHT,
        grid_top: TOP - 6.0,
        grid_bottom: scores_bottom,
        ticks: ticks(first, last)
            .into_iter()
            .map(|(d, label)| Tick {
                x: num(x(d)),
                label,
            })
            .collect(),
        as_of_x: num(x(as_of)),
        as_of_label_x: num(x(as_of) - 4.0),
        rows,
        scores: Scores {
            top: scores_top,
            bottom: scores_bottom,
            bands,
            polyline,
            label_values: points.len() <= LABELLED_POINTS,
            point_radius: if points.len() <= LABELLED_POINTS {
                "4"
            } else {
                "1.5"
            },
            points,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> Date {
        Date::parse(text).unwrap()
    }

    fn trial(start: &str, end: Option<&str>, outcome: TrialOutcome) -> TreatmentTrial {
        TreatmentTrial {
            ingredient: "sertraline".into(),
            rxnorm_ingredient: None,
            drug_class: "SSRI".into(),
            start: start.into(),
            end: end.map(Into::into),
            weeks: 12.0,
            daily_dose_mg: Some(100.0),
            adequate_dose: true,
            adequate_duration: true,
            outcome,
            outcome_inferred: false,
            augmentation: false,
            counted: true,
            evidence: vec![],
            course: Some(1),
        }
    }

    #[test]
    fn bars_and_scores_share_one_time_axis() {
        let trials = [trial(
            "2024-01-01",
            Some("2024-04-01"),
            TrialOutcome::Failed,
        )];
        let scores = [
            ScorePoint {
                day: day("2024-01-01"),
                value: 20,
                citation: "Observation/a".into(),
            },
            ScorePoint {
                day: day("2024-04-01"),
                value: 18,
                citation: "Observation/b".into(),
            },
        ];
        let c = chart(&trials, &scores, day("2025-01-01"));
        let bar = &c.rows[0];
        assert_eq!(
            bar.bar_x, c.scores.points[0].x,
            "the start is the first score's day"
        );
        let end: f64 = bar.bar_x.parse::<f64>().unwrap() + bar.bar_width.parse::<f64>().unwrap();
        let second: f64 = c.scores.points[1].x.parse().unwrap();
        assert!((end - second).abs() < 0.11, "{end} vs {second}");
        assert_eq!(c.scores.polyline.split(' ').count(), 2);
        assert!(bar.class.starts_with("failed"));
    }

    #[test]
    fn an_ongoing_trial_runs_to_the_as_of_day() {
        let c = chart(
            &[trial("2024-06-01", None, TrialOutcome::Ongoing)],
            &[],
            day("2024-09-01"),
        );
        let bar = &c.rows[0];
        let end: f64 = bar.bar_x.parse::<f64>().unwrap() + bar.bar_width.parse::<f64>().unwrap();
        assert!((end - c.as_of_x.parse::<f64>().unwrap()).abs() < 0.11);
        assert_eq!(bar.class, "ongoing");
    }

    #[test]
    fn the_axis_has_at_most_ten_ticks_on_month_or_year_starts() {
        for (first, last) in [
            ("2024-01-15", "2024-03-01"),
            ("2020-03-01", "2025-06-01"),
            ("1990-01-01", "2025-06-01"),
        ] {
            let t = ticks(day(first), day(last));
            assert!(!t.is_empty() && t.len() <= 10, "{first}..{last}: {t:?}");
            assert!(t.iter().all(|(d, _)| d.ymd().2 == 1));
        }
    }

    #[test]
    fn scores_outside_zero_to_27_stay_in_the_panel() {
        let c = chart(
            &[],
            &[ScorePoint {
                day: day("2024-01-01"),
                value: 99,
                citation: "Observation/x".into(),
            }],
            day("2024-06-01"),
        );
        let y: f64 = c.scores.points[0].y.parse().unwrap();
        assert!((y - c.scores.top).abs() < 0.11);
    }
}
