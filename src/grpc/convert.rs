//! The core's assessment as the contract's messages. The core already uses the contract's names;
//! this only changes representation.

use crate::error::Error;
use crate::proto;
use crate::screening::{self as s, Assessment};
use crate::writeback::Outcome;

pub fn assessment(a: Assessment) -> proto::Assessment {
    proto::Assessment {
        patient_id: a.patient_id.to_string(),
        status: status(a.status) as i32,
        failed_adequate_trials: a.failed_adequate_trials,
        trials: a.trials.into_iter().map(trial).collect(),
        hints: a.hints.into_iter().map(hint).collect(),
        staging: Some(proto::Staging {
            thase_rush_stage: a.staging.thase_rush_stage,
            maudsley_score: a.staging.maudsley_score,
        }),
        suggestions: a
            .suggestions
            .into_iter()
            .map(|x| proto::Suggestion {
                code: x.code,
                title: x.title,
                cautions: x.cautions,
                contraindicated: x.contraindicated,
            })
            .collect(),
        reasons: a
            .reasons
            .into_iter()
            .map(|r| proto::Reason {
                text: r.text,
                evidence: r.evidence,
            })
            .collect(),
        ruleset_version: a.ruleset_version,
        as_of: Some(timestamp(a.as_of)),
        diagnostics: a
            .diagnostics
            .into_iter()
            .map(|d| proto::Diagnostic {
                resource: d.resource,
                kind: d.kind.as_str().to_owned(),
                message: d.message,
            })
            .collect(),
        depression_conditions: a.depression_conditions,
    }
}

fn status(x: s::TrdStatus) -> proto::TrdStatus {
    match x {
        s::TrdStatus::Met => proto::TrdStatus::Met,
        s::TrdStatus::Possible => proto::TrdStatus::Possible,
        s::TrdStatus::NotMet => proto::TrdStatus::NotMet,
        s::TrdStatus::NotApplicable => proto::TrdStatus::NotApplicable,
    }
}

fn trial(t: s::TreatmentTrial) -> proto::TreatmentTrial {
    proto::TreatmentTrial {
        ingredient: t.ingredient,
        rxnorm_ingredient: t.rxnorm_ingredient,
        drug_class: t.drug_class,
        start: t.start,
        end: t.end,
        weeks: t.weeks,
        daily_dose_mg: t.daily_dose_mg,
        adequate_dose: t.adequate_dose,
        adequate_duration: t.adequate_duration,
        outcome: match t.outcome {
            s::TrialOutcome::Failed => proto::TrialOutcome::Failed,
            s::TrialOutcome::Responded => proto::TrialOutcome::Responded,
            s::TrialOutcome::Ongoing => proto::TrialOutcome::Ongoing,
            s::TrialOutcome::Unknown => proto::TrialOutcome::Unknown,
        } as i32,
        outcome_inferred: t.outcome_inferred,
        augmentation: t.augmentation,
        counted: t.counted,
        evidence: t.evidence,
        course: t.course,
    }
}

fn hint(h: s::Hint) -> proto::Hint {
    proto::Hint {
        code: h.code,
        severity: match h.severity {
            s::Severity::Info => proto::Severity::Info,
            s::Severity::Warning => proto::Severity::Warning,
            s::Severity::Critical => proto::Severity::Critical,
        } as i32,
        message: h.message,
        affects: h.affects,
        evidence: h.evidence,
    }
}

/// `YYYY-MM-DDT00:00:00Z` (the core's `as_of`) as a Timestamp.
fn timestamp(day: crate::date::Date) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: i64::from(day.days_since_epoch()) * 86_400,
        nanos: 0,
    }
}

pub fn write_back(result: Result<Outcome, Error>) -> proto::WriteBackResult {
    match result {
        Ok(o) => proto::WriteBackResult {
            flag_reference: o.flag_reference.unwrap_or_default(),
            care_plan_reference: o.care_plan_reference.unwrap_or_default(),
            changed: o.changed,
            error_code: String::new(),
            error_message: String::new(),
        },
        Err(e) => proto::WriteBackResult {
            error_code: super::status::code_name(super::status::code(&e)).to_owned(),
            error_message: e.to_string(),
            ..Default::default()
        },
    }
}
