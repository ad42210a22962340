//! Contraindication and caution hints (screening-rules.md section 9). Each rule is a function that
//! says whether its hint fires and on what evidence; codes, severities and messages are data
//! (`knowledge/hints.toml`).

mod maoi;
mod psychiatric;
mod somatic;

use super::assessment::{Hint, Severity};
use super::exposure::Exposure;
use super::facts::Facts;
use super::trial::Trial;
use crate::date::Date;
use crate::knowledge::{HintSeverity, Knowledge};

/// Everything a hint rule may read.
pub struct Context<'a> {
    pub facts: &'a Facts<'a>,
    pub exposures: &'a [Exposure<'a>],
    pub trials: &'a [Trial<'a>],
    pub as_of: Date,
    pub k: &'a Knowledge,
}

impl<'a> Context<'a> {
    pub fn within(&self, day: Date, window_days: u32) -> bool {
        day <= self.as_of && day >= self.as_of.plus_days(-(window_days as i32))
    }

    /// Citations of diagnoses in a condition set, optionally only those passing `keep`.
    pub fn diagnoses_in(
        &self,
        set: &str,
        keep: impl Fn(&super::facts::Diagnosis) -> bool,
    ) -> Vec<&'a str> {
        let Some(set) = self.k.condition_set(set) else {
            return Vec::new();
        };
        self.facts
            .diagnoses
            .iter()
            .filter(|d| d.sets.contains(set) && keep(d))
            .map(|d| d.citation)
            .collect()
    }
}

/// A rule that fired: a detail sentence for the clinician and the resources behind it.
pub struct Fired<'a> {
    pub detail: String,
    pub evidence: Vec<&'a str>,
}

type Rule = for<'a> fn(&Context<'a>) -> Option<Fired<'a>>;

const RULES: [(&str, Rule); 11] = [
    ("suicide-risk", psychiatric::suicide_risk),
    ("bipolar-spectrum", psychiatric::bipolar_spectrum),
    ("maoi-diet", maoi::diet),
    ("maoi-washout", maoi::washout),
    (
        "uncontrolled-hypertension",
        somatic::uncontrolled_hypertension,
    ),
    ("vascular-contraindication", somatic::vascular),
    ("psychosis-history", psychiatric::psychosis_history),
    ("substance-use-disorder", psychiatric::substance_use),
    ("seizure-disorder", somatic::seizure_disorder),
    ("lithium-renal", somatic::lithium_renal),
    ("pregnancy", somatic::pregnancy),
];

pub fn evaluate(ctx: &Context) -> Vec<Hint> {
    let mut hints: Vec<Hint> = RULES
        .iter()
        .filter_map(|(code, rule)| {
            let fired = rule(ctx)?;
            let def = ctx.k.hint(code);
            let mut evidence = fired.evidence;
            evidence.sort_unstable();
            evidence.dedup();
            let evidence = evidence.into_iter().map(str::to_owned).collect();
            Some(Hint {
                code: (*code).to_owned(),
                severity: match def.severity {
                    HintSeverity::Info => Severity::Info,
                    HintSeverity::Warning => Severity::Warning,
                    HintSeverity::Critical => Severity::Critical,
                },
                message: format!("{} {}", def.message, fired.detail)
                    .trim_end()
                    .to_owned(),
                affects: def.affects.clone(),
                evidence,
            })
        })
        .collect();
    hints.sort_by_key(|h| std::cmp::Reverse(h.severity));
    hints
}

/// `Some(Fired)` when there is evidence.
fn fired_if(evidence: Vec<&str>, detail: impl Into<String>) -> Option<Fired<'_>> {
    (!evidence.is_empty()).then(|| Fired {
        detail: detail.into(),
        evidence,
    })
}
