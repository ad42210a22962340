//! The screening engine: pure. A patient's record, the evaluation day and the knowledge base in; an
//! explained [`Assessment`] out. No I/O, no clock, no globals: the same input gives the same output.

pub mod assessment;
pub mod course;
pub mod dose;
pub mod episode;
pub mod exposure;
pub mod facts;
pub mod hint;
pub mod outcome;
pub mod reason;
pub mod recognition;
pub mod staging;
pub mod status;
pub mod suggestion;
pub mod switch;
pub mod trial;

pub use assessment::*;

use crate::date::Date;
use crate::fhir::{Diagnostic, DiagnosticKind, PatientRecord};
use crate::knowledge::Knowledge;
use status::Judgement;

/// Diagnostics collected while screening, added to those of reading the record.
#[derive(Debug, Default)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    pub fn note(&mut self, resource: &str, kind: DiagnosticKind, message: String) {
        self.0.push(Diagnostic {
            resource: resource.to_owned(),
            kind,
            message,
        });
    }
}

/// The drugs the record's medication requests and statements expose the patient to, each with the
/// resource that names it (`MedicationRequest/{id}`): what a drug being ordered is.
pub fn exposed_drugs(
    record: &PatientRecord,
    as_of: Date,
    k: &Knowledge,
) -> Vec<(String, crate::knowledge::DrugId)> {
    let mut ignored = Diagnostics::default();
    exposure::gather(record, as_of, k, &mut ignored)
        .into_iter()
        .map(|e| (e.citation.to_owned(), e.drug))
        .collect()
}

pub fn evaluate(record: &PatientRecord, as_of: Date, k: &Knowledge) -> Assessment {
    let mut diagnostics = Diagnostics::default();
    let facts = facts::gather(record, as_of, k, &mut diagnostics);
    let exposures = exposure::gather(record, as_of, k, &mut diagnostics);
    let trials = {
        let mut trials = trial::build(&exposures, as_of, k, &mut diagnostics);
        course::number(&mut trials, k);
        trials
    };
    let episode = episode::current(&facts.depression_scores, as_of, k);

    let judgements: Vec<status::Judgement> = trials
        .iter()
        .enumerate()
        .map(|(i, trial)| status::Judgement {
            trial,
            judged: outcome::judge(i, &trials, &facts.depression_scores, as_of, k),
            counted: episode.counts(trial.end_or(as_of)),
        })
        .collect();
    let tally = status::tally(&judgements);
    let status = tally.status();

    let severity = staging::severity_score(&judgements, &facts.depression_scores, &episode);
    let staging = Staging {
        thase_rush_stage: staging::thase_rush(&tally, &facts, &episode, k),
        maudsley_score: staging::maudsley(
            &staging::MaudsleyInput {
                tally: &tally,
                judged: &judgements,
                facts: &facts,
                episode: &episode,
                severity_score: severity,
                as_of,
            },
            k,
        ),
    };

    let hints = hint::evaluate(&hint::Context {
        facts: &facts,
        exposures: &exposures,
        trials: &trials,
        as_of,
        k,
    });
    let failed = tally.failed_courses();
    let suggestions = match status {
        TrdStatus::Met | TrdStatus::Possible => suggestion::suggest(failed, &hints, k),
        _ => Vec::new(),
    };

    let mut reasons = vec![
        reason::status_reason(status, &tally, &trials, k),
        reason::episode_reason(&episode, k),
    ];
    reason::trial_reasons(&trials, &judgements, as_of, k, &mut reasons);

    let trial_views = judgements
        .iter()
        .map(
            |Judgement {
                 trial: t,
                 judged: j,
                 counted,
             }| {
                let info = k.drug(t.drug);
                let switched_to = j.switched_to.map_or(&[][..], |n| &trials[n].evidence);
                let mut evidence = reason::owned(&t.evidence, 2 + switched_to.len());
                evidence.extend(
                    j.baseline
                        .iter()
                        .chain(&j.end_score)
                        .map(|s| s.citation.to_owned()),
                );
                evidence.extend(switched_to.iter().map(|e| (*e).to_owned()));
                TreatmentTrial {
                    ingredient: info.name.clone(),
                    rxnorm_ingredient: info.rxnorm.clone(),
                    drug_class: info.class.clone().unwrap_or_default(),
                    start: t.start.to_string(),
                    end: t.end.map(|e| e.to_string()),
                    weeks: f64::from(t.days(as_of)) / 7.0,
                    daily_dose_mg: t.daily_mg.map(|mg| mg.rounded(3)),
                    adequate_dose: t.dose == trial::DoseAdequacy::Adequate,
                    adequate_duration: t.adequate_duration,
                    outcome: j.outcome,
                    outcome_inferred: j.inferred,
                    augmentation: t.augmentation,
                    counted: *counted,
                    evidence,
                    course: t.course,
                }
            },
        )
        .collect();

    let mut all_diagnostics = record.diagnostics.clone();
    all_diagnostics.extend(diagnostics.0);
    all_diagnostics.sort();
    all_diagnostics.dedup();

    Assessment {
        patient_id: record.patient_id.clone(),
        status,
        failed_adequate_trials: failed,
        trials: trial_views,
        hints,
        staging,
        suggestions,
        reasons,
        ruleset_version: k.ruleset_version.clone(),
        as_of,
        diagnostics: all_diagnostics,
        depression_conditions: facts
            .active_in("depression", k)
            .map(|d| d.citation.to_owned())
            .collect(),
    }
}
