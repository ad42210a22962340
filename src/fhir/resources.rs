//! The FHIR R4 resources screening reads. Choice elements (`medication[x]`, `effective[x]`, ...) are
//! one optional field per choice; dates stay text until screening parses them, so a bad date becomes
//! a named diagnostic rather than an unreadable resource.

use super::datatypes::*;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Patient {
    pub id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    pub id: Option<String>,
    pub clinical_status: Option<CodeableConcept>,
    pub verification_status: Option<CodeableConcept>,
    pub code: Option<CodeableConcept>,
    pub subject: Option<Reference>,
    pub onset_date_time: Option<String>,
    pub onset_period: Option<Period>,
    pub recorded_date: Option<String>,
    pub abatement_date_time: Option<String>,
    pub abatement_period: Option<Period>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DispenseRequest {
    pub validity_period: Option<Period>,
    pub number_of_repeats_allowed: Option<u32>,
    pub expected_supply_duration: Option<Quantity>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MedicationRequest {
    pub id: Option<String>,
    pub status: Option<String>,
    pub intent: Option<String>,
    pub medication_codeable_concept: Option<CodeableConcept>,
    pub medication_reference: Option<Reference>,
    pub subject: Option<Reference>,
    pub authored_on: Option<String>,
    #[serde(default)]
    pub dosage_instruction: Vec<Lenient<Dosage>>,
    pub dispense_request: Option<DispenseRequest>,
    #[serde(default)]
    pub contained: Vec<Lenient<Medication>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MedicationStatement {
    pub id: Option<String>,
    pub status: Option<String>,
    pub medication_codeable_concept: Option<CodeableConcept>,
    pub medication_reference: Option<Reference>,
    pub subject: Option<Reference>,
    pub effective_date_time: Option<String>,
    pub effective_period: Option<Period>,
    pub date_asserted: Option<String>,
    #[serde(default)]
    pub dosage: Vec<Lenient<Dosage>>,
    #[serde(default)]
    pub contained: Vec<Lenient<Medication>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MedicationIngredient {
    pub item_codeable_concept: Option<CodeableConcept>,
    pub strength: Option<FhirRatio>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Medication {
    /// Read so that, among `contained` resources, only Medications are taken as one.
    pub resource_type: Option<String>,
    pub id: Option<String>,
    pub code: Option<CodeableConcept>,
    #[serde(default)]
    pub ingredient: Vec<MedicationIngredient>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservationComponent {
    pub code: Option<CodeableConcept>,
    pub value_quantity: Option<Quantity>,
    pub value_integer: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    pub id: Option<String>,
    pub status: Option<String>,
    pub code: Option<CodeableConcept>,
    pub subject: Option<Reference>,
    pub effective_date_time: Option<String>,
    pub effective_period: Option<Period>,
    pub effective_instant: Option<String>,
    pub issued: Option<String>,
    pub value_quantity: Option<Quantity>,
    pub value_integer: Option<i64>,
    #[serde(default)]
    pub component: Vec<ObservationComponent>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Procedure {
    pub id: Option<String>,
    pub status: Option<String>,
    pub code: Option<CodeableConcept>,
    pub subject: Option<Reference>,
    pub performed_date_time: Option<String>,
    pub performed_period: Option<Period>,
}
