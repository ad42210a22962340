//! Who the synthetic patients are: a clinical story (profile) drawn by weight, and the caution
//! situations (hint overlays) layered on it. The plan of a patient is public so that tests can
//! check that the screening core concludes what each story intends; it is never written into the
//! NDJSON.

use super::rng::Rng;

/// The clinical story of one patient's record. Weights are per 10,000 patients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Profile {
    /// No depression: perhaps hypertension, lipids, a normal screening PHQ-9.
    NoDepression,
    /// Insomnia treated with trazodone 50 mg at night (hypnotic use, not a trial).
    SleepTrazodone,
    /// Depression diagnosed and scored, no antidepressant (yet).
    UntreatedDepression,
    /// One adequate trial; PHQ-9 falls below 5 or by half.
    Responder,
    /// A first antidepressant started in the last five weeks.
    OngoingFirstTrial,
    /// One adequate trial that failed.
    OneFailed,
    /// A sub-therapeutic dose kept for months, then an adequate trial; both failed.
    InadequateDose,
    /// Four weeks of a drug, a switch, then an adequate trial that failed.
    InadequateDuration,
    /// An adequate failed trial, a break of more than 30 days, the same drug again.
    RestartSameDrug,
    /// Two adequate failed trials of different ingredients (refill chains with short gaps).
    TwoFailed,
    /// Three or four adequate failed trials, often a TCA, sometimes an ECT or rTMS course.
    MultipleFailed,
    /// One adequate failed trial and one failed whose dose cannot be read.
    PossibleUnknownDose,
    /// One adequate failed trial and one adequate trial with no end score and nothing after it.
    PossibleUnknownOutcome,
    /// A failed SSRI continued with aripiprazole added.
    Augmented,
    /// Two failed trials, then lithium augmentation with a low eGFR or an interacting drug.
    LithiumRenal,
    /// Two failed trials, a proper washout, then tranylcypromine (started recently).
    MaoiAfterFailures,
    /// Fluoxetine stopped and phenelzine started inside the five-week washout.
    MaoiWashoutBreach,
    /// Two trials in an earlier episode, remission, relapse, one failed trial now.
    RemissionRelapse,
    /// An SSRI or SNRI with mirtazapine or bupropion started together (up to 10 days apart): the
    /// combination fails once, one course.
    CombinationFailed,
    /// Such a pair started together, stopped, and restarted together after a break of 45 to 120
    /// days; half with failing scores on both courses, half with no score after the baseline.
    CombinationRestarted,
}

pub const PROFILES: [(Profile, u32); 20] = [
    (Profile::NoDepression, 2650),
    (Profile::SleepTrazodone, 300),
    (Profile::UntreatedDepression, 500),
    (Profile::Responder, 1700),
    (Profile::OngoingFirstTrial, 300),
    (Profile::OneFailed, 900),
    (Profile::InadequateDose, 450),
    (Profile::InadequateDuration, 350),
    (Profile::RestartSameDrug, 250),
    (Profile::TwoFailed, 800),
    (Profile::MultipleFailed, 300),
    (Profile::PossibleUnknownDose, 250),
    (Profile::PossibleUnknownOutcome, 200),
    (Profile::Augmented, 250),
    (Profile::LithiumRenal, 100),
    (Profile::MaoiAfterFailures, 100),
    (Profile::MaoiWashoutBreach, 50),
    (Profile::RemissionRelapse, 200),
    (Profile::CombinationFailed, 200),
    (Profile::CombinationRestarted, 150),
];

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::NoDepression => "no-depression",
            Profile::SleepTrazodone => "sleep-trazodone",
            Profile::UntreatedDepression => "untreated-depression",
            Profile::Responder => "responder",
            Profile::OngoingFirstTrial => "ongoing-first-trial",
            Profile::OneFailed => "one-failed",
            Profile::InadequateDose => "inadequate-dose",
            Profile::InadequateDuration => "inadequate-duration",
            Profile::RestartSameDrug => "restart-same-drug",
            Profile::TwoFailed => "two-failed",
            Profile::MultipleFailed => "multiple-failed",
            Profile::PossibleUnknownDose => "possible-unknown-dose",
            Profile::PossibleUnknownOutcome => "possible-unknown-outcome",
            Profile::Augmented => "augmented",
            Profile::LithiumRenal => "lithium-renal",
            Profile::MaoiAfterFailures => "maoi-after-failures",
            Profile::MaoiWashoutBreach => "maoi-washout-breach",
            Profile::RemissionRelapse => "remission-relapse",
            Profile::CombinationFailed => "combination-failed",
            Profile::CombinationRestarted => "combination-restarted",
        }
    }

    /// Whether the story has depression scores (PHQ-9 or PHQ-A) and a depression diagnosis.
    pub fn depressed(self) -> bool {
        !matches!(self, Profile::NoDepression | Profile::SleepTrazodone)
    }

    /// Whether the story has at least one antidepressant trial.
    pub fn treated(self) -> bool {
        self.depressed() && self != Profile::UntreatedDepression
    }

    /// The hints the story itself raises (the overlays add theirs).
    pub fn own_hints(self) -> &'static [&'static str] {
        match self {
            Profile::LithiumRenal => &["lithium-renal"],
            Profile::MaoiAfterFailures => &["maoi-diet"],
            Profile::MaoiWashoutBreach => &["maoi-washout", "maoi-diet"],
            _ => &[],
        }
    }
}

/// A caution situation layered on a story; none of them changes the story's trials or status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Situation {
    /// PHQ-9 item 9 above 0 at the latest answer, or suicidal ideation (R45.851) in the last year.
    SuicideRisk,
    /// A bipolar code, an MDQ of 7 or more, a mood stabiliser without epilepsy, or hypomania
    /// after an antidepressant start.
    Bipolar,
    /// The latest blood pressure in the last 180 days at or above 140/90.
    Hypertension,
    /// Cerebral aneurysm, arteriovenous malformation or aortic aneurysm on record.
    Vascular,
    /// Schizophrenia, or recurrent depression with psychotic features.
    Psychosis,
    /// Alcohol, cannabis or opioid use disorder.
    SubstanceUse,
    /// Epilepsy or a seizure, sometimes with an anticonvulsant.
    Seizure,
    /// Pregnant now (women 18 to 44).
    Pregnancy,
}

/// (situation, per mille of patients, the hint it raises).
pub const SITUATIONS: [(Situation, u32, &str); 8] = [
    (Situation::SuicideRisk, 60, "suicide-risk"),
    (Situation::Bipolar, 40, "bipolar-spectrum"),
    (Situation::Hypertension, 110, "uncontrolled-hypertension"),
    (Situation::Vascular, 6, "vascular-contraindication"),
    (Situation::Psychosis, 20, "psychosis-history"),
    (Situation::SubstanceUse, 50, "substance-use-disorder"),
    (Situation::Seizure, 20, "seizure-disorder"),
    (Situation::Pregnancy, 25, "pregnancy"),
];

impl Situation {
    pub fn hint(self) -> &'static str {
        SITUATIONS
            .iter()
            .find(|(s, _, _)| *s == self)
            .map_or("", |(_, _, hint)| hint)
    }
}

/// Every hint code some story or situation raises: all the engine evaluates (tests/synth.rs checks
/// each one fires).
pub const COVERED_HINTS: [&str; 11] = crate::knowledge::HINT_CODES;

/// What a patient's record is meant to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientPlan {
    pub index: u64,
    pub id: String,
    pub profile: Profile,
    pub situations: Vec<Situation>,
}

impl PatientPlan {
    /// The hint codes the record is built to raise, sorted.
    pub fn expected_hints(&self) -> Vec<&'static str> {
        let mut hints: Vec<&'static str> = self.profile.own_hints().to_vec();
        hints.extend(self.situations.iter().map(|s| s.hint()));
        hints.sort_unstable();
        hints.dedup();
        hints
    }
}

/// The FHIR id of patient `index` (1-based): `syn-00000001`.
pub fn patient_id(index: u64) -> String {
    format!("syn-{index:08}")
}

/// The first patients of every population take each story, then each situation, once, so that even
/// a small population shows all of them; everyone after is drawn by weight.
pub fn draw(rng: &mut Rng, index: u64) -> PatientPlan {
    let profile = match index.checked_sub(1).map(|i| i as usize) {
        Some(i) if i < PROFILES.len() => PROFILES[i].0,
        _ => rng.weighted(&PROFILES),
    };
    let forced = index
        .checked_sub(1 + PROFILES.len() as u64)
        .map(|i| i as usize)
        .filter(|i| *i < SITUATIONS.len())
        .map(|i| SITUATIONS[i].0);
    let mut situations = Vec::new();
    for (situation, per_mille, _) in SITUATIONS {
        // Draw for every situation even when forced, so the stream does not depend on forcing.
        let drawn = rng.chance(per_mille);
        if drawn || forced == Some(situation) {
            situations.push(situation);
        }
    }
    PatientPlan {
        index,
        id: patient_id(index),
        profile,
        situations,
    }
}
