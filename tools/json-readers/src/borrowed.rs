//! The one-pass resource of `trdscreen_core` (`AnyResource`: every element of every type screening
//! reads), mirrored with borrowed strings: what reading would cost if the record kept slices of the
//! line instead of owned strings. Same elements, same shapes; decimals kept as their JSON text.
// The elements are read as screening reads them; this measurement only times the reading.
#![allow(dead_code)]

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use std::borrow::Cow;

type Text<'a> = Option<Cow<'a, str>>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta<'a> {
    #[serde(borrow)]
    pub version_id: Text<'a>,
    #[serde(borrow)]
    pub last_updated: Text<'a>,
}

#[derive(Deserialize)]
pub struct Coding<'a> {
    #[serde(borrow)]
    pub system: Text<'a>,
    #[serde(borrow)]
    pub code: Text<'a>,
    #[serde(borrow)]
    pub display: Text<'a>,
}

#[derive(Deserialize)]
pub struct CodeableConcept<'a> {
    #[serde(default, borrow)]
    pub coding: Vec<Coding<'a>>,
    #[serde(borrow)]
    pub text: Text<'a>,
}

#[derive(Deserialize)]
pub struct Reference<'a> {
    #[serde(borrow)]
    pub reference: Text<'a>,
    #[serde(borrow)]
    pub display: Text<'a>,
}

#[derive(Deserialize)]
pub struct Period<'a> {
    #[serde(borrow)]
    pub start: Text<'a>,
    #[serde(borrow)]
    pub end: Text<'a>,
}

#[derive(Deserialize)]
pub struct Quantity<'a> {
    #[serde(borrow)]
    pub value: Option<&'a RawValue>,
    #[serde(borrow)]
    pub unit: Text<'a>,
    #[serde(borrow)]
    pub system: Text<'a>,
    #[serde(borrow)]
    pub code: Text<'a>,
}

#[derive(Deserialize)]
pub struct FhirRatio<'a> {
    #[serde(borrow)]
    pub numerator: Option<Quantity<'a>>,
    #[serde(borrow)]
    pub denominator: Option<Quantity<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimingRepeat<'a> {
    #[serde(borrow)]
    pub bounds_period: Option<Period<'a>>,
    pub frequency: Option<u32>,
    #[serde(borrow)]
    pub period: Option<&'a RawValue>,
    #[serde(borrow)]
    pub period_unit: Text<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timing<'a> {
    #[serde(borrow)]
    pub repeat: Option<TimingRepeat<'a>>,
    #[serde(borrow)]
    pub code: Option<CodeableConcept<'a>>,
    #[serde(default)]
    pub modifier_extension: Vec<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DoseAndRate<'a> {
    #[serde(borrow)]
    pub dose_quantity: Option<Quantity<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dosage<'a> {
    #[serde(borrow)]
    pub text: Text<'a>,
    #[serde(borrow)]
    pub timing: Option<Timing<'a>>,
    pub as_needed_boolean: Option<bool>,
    #[serde(borrow)]
    pub as_needed_codeable_concept: Option<CodeableConcept<'a>>,
    #[serde(borrow)]
    pub route: Option<CodeableConcept<'a>>,
    #[serde(default, borrow)]
    pub dose_and_rate: Vec<DoseAndRate<'a>>,
    #[serde(default)]
    pub modifier_extension: Vec<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DispenseRequest<'a> {
    #[serde(borrow)]
    pub validity_period: Option<Period<'a>>,
    pub number_of_repeats_allowed: Option<u32>,
    #[serde(borrow)]
    pub expected_supply_duration: Option<Quantity<'a>>,
    #[serde(default)]
    pub modifier_extension: Vec<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MedicationIngredient<'a> {
    #[serde(borrow)]
    pub item_codeable_concept: Option<CodeableConcept<'a>>,
    #[serde(borrow)]
    pub strength: Option<FhirRatio<'a>>,
    #[serde(default)]
    pub modifier_extension: Vec<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Medication<'a> {
    #[serde(borrow)]
    pub resource_type: Text<'a>,
    #[serde(borrow)]
    pub id: Text<'a>,
    #[serde(borrow)]
    pub code: Option<CodeableConcept<'a>>,
    #[serde(default, borrow)]
    pub ingredient: Vec<MedicationIngredient<'a>>,
    #[serde(default)]
    pub modifier_extension: Vec<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservationComponent<'a> {
    #[serde(borrow)]
    pub code: Option<CodeableConcept<'a>>,
    #[serde(borrow)]
    pub value_quantity: Option<Quantity<'a>>,
    pub value_integer: Option<i64>,
    #[serde(borrow)]
    pub value_string: Text<'a>,
    #[serde(default)]
    pub modifier_extension: Vec<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnyResource<'a> {
    #[serde(borrow)]
    pub resource_type: Text<'a>,
    #[serde(borrow)]
    pub id: Text<'a>,
    #[serde(borrow)]
    pub subject: Option<Reference<'a>>,
    #[serde(borrow)]
    pub patient: Option<Reference<'a>>,
    #[serde(borrow)]
    pub meta: Option<Meta<'a>>,
    #[serde(default)]
    pub modifier_extension: Vec<IgnoredAny>,
    pub deceased_boolean: Option<bool>,
    #[serde(borrow)]
    pub deceased_date_time: Text<'a>,
    pub do_not_perform: Option<bool>,
    #[serde(borrow)]
    pub value_string: Text<'a>,
    #[serde(borrow)]
    pub status: Text<'a>,
    #[serde(borrow)]
    pub code: Option<CodeableConcept<'a>>,
    #[serde(borrow)]
    pub clinical_status: Option<CodeableConcept<'a>>,
    #[serde(borrow)]
    pub verification_status: Option<CodeableConcept<'a>>,
    #[serde(borrow)]
    pub onset_date_time: Text<'a>,
    #[serde(borrow)]
    pub onset_period: Option<Period<'a>>,
    #[serde(borrow)]
    pub recorded_date: Text<'a>,
    #[serde(borrow)]
    pub abatement_date_time: Text<'a>,
    #[serde(borrow)]
    pub abatement_period: Option<Period<'a>>,
    #[serde(borrow)]
    pub intent: Text<'a>,
    #[serde(borrow)]
    pub medication_codeable_concept: Option<CodeableConcept<'a>>,
    #[serde(borrow)]
    pub medication_reference: Option<Reference<'a>>,
    #[serde(borrow)]
    pub authored_on: Text<'a>,
    #[serde(default, borrow)]
    pub dosage_instruction: Vec<Dosage<'a>>,
    #[serde(borrow)]
    pub dispense_request: Option<DispenseRequest<'a>>,
    #[serde(default, borrow)]
    pub contained: Vec<Medication<'a>>,
    #[serde(borrow)]
    pub effective_date_time: Text<'a>,
    #[serde(borrow)]
    pub effective_period: Option<Period<'a>>,
    #[serde(borrow)]
    pub date_asserted: Text<'a>,
    #[serde(default, borrow)]
    pub dosage: Vec<Dosage<'a>>,
    #[serde(default, borrow)]
    pub ingredient: Vec<MedicationIngredient<'a>>,
    #[serde(borrow)]
    pub effective_instant: Text<'a>,
    #[serde(borrow)]
    pub issued: Text<'a>,
    #[serde(borrow)]
    pub value_quantity: Option<Quantity<'a>>,
    pub value_integer: Option<i64>,
    #[serde(default, borrow)]
    pub component: Vec<ObservationComponent<'a>>,
    #[serde(borrow)]
    pub performed_date_time: Text<'a>,
    #[serde(borrow)]
    pub performed_period: Option<Period<'a>>,
}

impl AnyResource<'_> {
    pub fn key(&self) -> (Option<String>, Option<String>, Option<String>) {
        let patient = self
            .subject
            .as_ref()
            .or(self.patient.as_ref())
            .and_then(|r| r.reference.as_deref().map(str::to_owned));
        (
            self.resource_type.as_deref().map(str::to_owned),
            self.id.as_deref().map(str::to_owned),
            patient,
        )
    }
}
