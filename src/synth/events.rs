//! One patient's record as the generator plans it, before it is written as FHIR: diagnoses,
//! prescriptions and statements, scores, other observations and procedures, in days. The buffers
//! are reused from one patient to the next.

use super::catalog::{Drug, Regimen};
use crate::date::Date;

#[derive(Debug, Clone, Copy)]
pub struct Dx {
    pub icd10: Option<(&'static str, &'static str)>,
    pub snomed: Option<(&'static str, &'static str)>,
    pub text: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    Confirmed,
    Refuted,
}

#[derive(Debug, Clone, Copy)]
pub struct ConditionEvent {
    pub dx: &'static Dx,
    pub onset: Date,
    /// `None`: active.
    pub abated: Option<Date>,
    pub verification: Verification,
}

/// How a prescription is written: the FHIR shapes EHRs send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// MedicationRequest with the product (SCD) coding; dose in tablets or capsules.
    RequestProduct,
    /// MedicationRequest with the ingredient coding; dose in mg.
    RequestIngredient,
    /// MedicationRequest naming a Medication of Medication.ndjson; dose in tablets or capsules.
    RequestReference,
    /// MedicationRequest with only the brand in free text ("Zoloft 100 mg tablet").
    RequestBrandText,
    /// MedicationStatement (patient-reported or reconciled), product coding, dose in mg.
    Statement,
}

/// How long a prescription lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supply {
    /// `expectedSupplyDuration` days, `numberOfRepeatsAllowed` repeats.
    Days { days: u16, repeats: u8 },
    /// `boundsPeriod` (request) or `effectivePeriod` (statement) to this day.
    Until(Date),
    /// Still taken: an active request with no end, a statement with an open period.
    Open,
}

/// How the dose is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoseStyle {
    Structured,
    /// `asNeededBoolean`: the daily dose cannot be known.
    AsNeeded,
    /// Only a free-text instruction ("take as directed").
    TextOnly,
    /// A brand named without a strength, dosed in units ("Cymbalta capsule", 1 capsule daily).
    NoStrength,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MedStatus {
    Completed,
    Active,
    /// Not used by screening: a request that was cancelled or only proposed.
    Cancelled,
    Proposal,
}

#[derive(Debug, Clone, Copy)]
pub struct MedicationEvent {
    pub regimen: Regimen,
    pub start: Date,
    pub supply: Supply,
    pub shape: Shape,
    pub dose: DoseStyle,
    pub status: MedStatus,
}

impl MedicationEvent {
    pub fn drug(&self) -> &'static Drug {
        self.regimen.drug
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreStatus {
    Final,
    /// Set aside by screening whatever its value.
    EnteredInError,
}

#[derive(Debug, Clone, Copy)]
pub struct ScoreEvent {
    pub day: Date,
    pub minute: u16,
    pub total: u8,
    /// PHQ-9 item 9, when the answers were recorded.
    pub item9: Option<u8>,
    /// Item 9 as its own Observation (44260-8) rather than a component of the total.
    pub item9_separate: bool,
    pub status: ScoreStatus,
}

#[derive(Debug, Clone, Copy)]
pub enum OtherObservation {
    BloodPressure {
        day: Date,
        systolic: u16,
        diastolic: u16,
    },
    Egfr {
        day: Date,
        value: u16,
    },
    Mdq {
        day: Date,
        total: u8,
    },
    /// PHQ-9 item 9 answered on its own (a standalone suicide screen).
    Item9 {
        day: Date,
        value: u8,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Therapy {
    Ect,
    Rtms,
}

#[derive(Debug, Clone, Copy)]
pub struct ProcedureEvent {
    pub day: Date,
    pub therapy: Therapy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    Female,
    Male,
}

#[derive(Debug, Default)]
pub struct Events {
    pub conditions: Vec<ConditionEvent>,
    pub medications: Vec<MedicationEvent>,
    pub scores: Vec<ScoreEvent>,
    pub observations: Vec<OtherObservation>,
    pub procedures: Vec<ProcedureEvent>,
    /// PHQ-A (teens) instead of PHQ-9.
    pub teen: bool,
}

impl Events {
    pub fn clear(&mut self) {
        self.conditions.clear();
        self.medications.clear();
        self.scores.clear();
        self.observations.clear();
        self.procedures.clear();
        self.teen = false;
    }
}
