//! The result of screening one patient, with the gRPC contract's field and enum names
//! (`trdscreen.v1.Assessment`), so the JSON a person sees is the message a client receives.

use crate::date::Date;
use crate::fhir::{Diagnostic, PatientId};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TrdStatus {
    #[serde(rename = "TRD_STATUS_MET")]
    Met,
    #[serde(rename = "TRD_STATUS_POSSIBLE")]
    Possible,
    #[serde(rename = "TRD_STATUS_NOT_MET")]
    NotMet,
    #[serde(rename = "TRD_STATUS_NOT_APPLICABLE")]
    NotApplicable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TrialOutcome {
    #[serde(rename = "TRIAL_OUTCOME_FAILED")]
    Failed,
    #[serde(rename = "TRIAL_OUTCOME_RESPONDED")]
    Responded,
    #[serde(rename = "TRIAL_OUTCOME_ONGOING")]
    Ongoing,
    #[serde(rename = "TRIAL_OUTCOME_UNKNOWN")]
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Severity {
    #[serde(rename = "SEVERITY_INFO")]
    Info,
    #[serde(rename = "SEVERITY_WARNING")]
    Warning,
    #[serde(rename = "SEVERITY_CRITICAL")]
    Critical,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TreatmentTrial {
    pub ingredient: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rxnorm_ingredient: Option<String>,
    pub drug_class: String,
    pub start: String,
    /// Unset while the trial is ongoing at `as_of`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    pub weeks: f64,
    /// Unset when the dose is unknown (reported, never guessed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_dose_mg: Option<f64>,
    pub adequate_dose: bool,
    pub adequate_duration: bool,
    pub outcome: TrialOutcome,
    pub outcome_inferred: bool,
    pub augmentation: bool,
    pub counted: bool,
    pub evidence: Vec<String>,
    /// The course (antidepressants started within two weeks of one another), numbered from 1 in
    /// order of start; unset for augmentation agents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub course: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hint {
    pub code: String,
    pub severity: Severity,
    pub message: String,
    pub affects: Vec<String>,
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Staging {
    pub thase_rush_stage: u32,
    /// Maudsley Staging Method total (3-15); unset when severity is unknown or no trial failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maudsley_score: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestion {
    pub code: String,
    pub title: String,
    pub cautions: Vec<String>,
    pub contraindicated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub text: String,
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    pub patient_id: PatientId,
    pub status: TrdStatus,
    pub failed_adequate_trials: u32,
    pub trials: Vec<TreatmentTrial>,
    pub hints: Vec<Hint>,
    pub staging: Staging,
    pub suggestions: Vec<Suggestion>,
    pub reasons: Vec<Reason>,
    pub ruleset_version: String,
    /// The day the record was evaluated as of; written as RFC 3339, the start (UTC) of the day.
    #[serde(serialize_with = "start_of_day")]
    pub as_of: Date,
    pub diagnostics: Vec<Diagnostic>,
    /// `Type/id` of the depression Conditions active (not refuted, not abated) as of `as_of`: what a
    /// CarePlan made from this assessment addresses.
    pub depression_conditions: Vec<String>,
}

/// A day as the contract's timestamps write it: RFC 3339, the start of the day in UTC.
fn start_of_day<S: serde::Serializer>(day: &Date, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{day}T00:00:00Z"))
}
