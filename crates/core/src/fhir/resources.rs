//! The FHIR R4 resources screening reads. Choice elements (`medication[x]`, `effective[x]`, ...) are
//! one optional field per choice; dates stay text until screening parses them, so a bad date becomes
//! a named diagnostic rather than an unreadable resource. Whose resource it is (`subject`,
//! `patient`) is read once, into the record's head ([`super::record::Head`]), and not kept twice.

use super::datatypes::*;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Patient {
    pub id: Option<String>,
    pub deceased_boolean: Option<bool>,
    pub deceased_date_time: Option<String>,
    #[serde(default)]
    pub modifier_extension: ModifierExtensions,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    pub id: Option<String>,
    pub clinical_status: Option<CodeableConcept>,
    pub verification_status: Option<CodeableConcept>,
    pub code: Option<CodeableConcept>,
    pub onset_date_time: Option<String>,
    pub onset_period: Option<Period>,
    pub recorded_date: Option<String>,
    pub abatement_date_time: Option<String>,
    pub abatement_period: Option<Period>,
    #[serde(default)]
    pub modifier_extension: ModifierExtensions,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DispenseRequest {
    pub validity_period: Option<Period>,
    pub number_of_repeats_allowed: Option<u32>,
    pub expected_supply_duration: Option<Quantity>,
    #[serde(default)]
    pub modifier_extension: ModifierExtensions,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MedicationRequest {
    pub id: Option<String>,
    pub status: Option<String>,
    pub intent: Option<String>,
    /// A modifier element: `true` is an order *not* to give the medication.
    pub do_not_perform: Option<bool>,
    pub medication_codeable_concept: Option<CodeableConcept>,
    pub medication_reference: Option<Reference>,
    pub authored_on: Option<String>,
    #[serde(default)]
    pub dosage_instruction: Vec<Lenient<Dosage>>,
    pub dispense_request: Option<DispenseRequest>,
    #[serde(default)]
    pub contained: Vec<Lenient<Medication>>,
    #[serde(default)]
    pub modifier_extension: ModifierExtensions,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MedicationStatement {
    pub id: Option<String>,
    pub status: Option<String>,
    pub medication_codeable_concept: Option<CodeableConcept>,
    pub medication_reference: Option<Reference>,
    pub effective_date_time: Option<String>,
    pub effective_period: Option<Period>,
    pub date_asserted: Option<String>,
    #[serde(default)]
    pub dosage: Vec<Lenient<Dosage>>,
    #[serde(default)]
    pub contained: Vec<Lenient<Medication>>,
    #[serde(default)]
    pub modifier_extension: ModifierExtensions,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MedicationIngredient {
    pub item_codeable_concept: Option<CodeableConcept>,
    pub strength: Option<FhirRatio>,
    #[serde(default)]
    pub modifier_extension: ModifierExtensions,
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
    #[serde(default)]
    pub modifier_extension: ModifierExtensions,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservationComponent {
    pub code: Option<CodeableConcept>,
    pub value_quantity: Option<Quantity>,
    pub value_integer: Option<i64>,
    pub value_string: Option<String>,
    #[serde(default)]
    pub modifier_extension: ModifierExtensions,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    pub id: Option<String>,
    pub status: Option<String>,
    pub code: Option<CodeableConcept>,
    pub effective_date_time: Option<String>,
    pub effective_period: Option<Period>,
    pub effective_instant: Option<String>,
    pub issued: Option<String>,
    pub value_quantity: Option<Quantity>,
    pub value_integer: Option<i64>,
    pub value_string: Option<String>,
    #[serde(default)]
    pub component: Vec<ObservationComponent>,
    #[serde(default)]
    pub modifier_extension: ModifierExtensions,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Procedure {
    pub id: Option<String>,
    pub status: Option<String>,
    pub code: Option<CodeableConcept>,
    pub performed_date_time: Option<String>,
    pub performed_period: Option<Period>,
    #[serde(default)]
    pub modifier_extension: ModifierExtensions,
}

/// Every element of every type above, and of the resource head, in one struct: a resource is read
/// into it in one pass, before its type is known (`resourceType` need not come first). Each element
/// has the same Rust type as in the struct that owns it, and a `Lenient` element is read strictly
/// here. So when this reads, the head and the resource's own type read the same values from the same
/// text; when it does not (a malformed element, an element of another resource type that clashes),
/// the resource must be read the careful way, which says exactly what is wrong.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AnyResource {
    pub resource_type: Option<String>,
    pub id: Option<String>,
    pub subject: Option<Reference>,
    pub patient: Option<Reference>,
    pub meta: Option<Meta>,
    #[serde(default)]
    modifier_extension: ModifierExtensions,
    deceased_boolean: Option<bool>,
    deceased_date_time: Option<String>,
    do_not_perform: Option<bool>,
    value_string: Option<String>,
    status: Option<String>,
    code: Option<CodeableConcept>,
    clinical_status: Option<CodeableConcept>,
    verification_status: Option<CodeableConcept>,
    onset_date_time: Option<String>,
    onset_period: Option<Period>,
    recorded_date: Option<String>,
    abatement_date_time: Option<String>,
    abatement_period: Option<Period>,
    intent: Option<String>,
    medication_codeable_concept: Option<CodeableConcept>,
    medication_reference: Option<Reference>,
    authored_on: Option<String>,
    #[serde(default, deserialize_with = "all_read")]
    dosage_instruction: Vec<Lenient<Dosage>>,
    dispense_request: Option<DispenseRequest>,
    #[serde(default, deserialize_with = "all_read")]
    contained: Vec<Lenient<Medication>>,
    effective_date_time: Option<String>,
    effective_period: Option<Period>,
    date_asserted: Option<String>,
    #[serde(default, deserialize_with = "all_read")]
    dosage: Vec<Lenient<Dosage>>,
    #[serde(default)]
    ingredient: Vec<MedicationIngredient>,
    effective_instant: Option<String>,
    issued: Option<String>,
    value_quantity: Option<Quantity>,
    value_integer: Option<i64>,
    #[serde(default)]
    component: Vec<ObservationComponent>,
    performed_date_time: Option<String>,
    performed_period: Option<Period>,
}

/// A list of `Lenient` elements that must all read: any that does not fails the one-pass read.
fn all_read<'de, D, T>(deserializer: D) -> Result<Vec<Lenient<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Vec::<T>::deserialize(deserializer)?
        .into_iter()
        .map(Lenient::Read)
        .collect())
}

/// A resource of a type screening reads (or the Patient itself), already read.
#[derive(Debug, Clone)]
pub enum Typed {
    Patient(Patient),
    Condition(Condition),
    MedicationRequest(MedicationRequest),
    MedicationStatement(MedicationStatement),
    Medication(Medication),
    Observation(Observation),
    Procedure(Procedure),
}

impl Typed {
    /// The resource types screening reads for a patient (besides the Patient).
    pub const NAMES: [&'static str; 6] = [
        "Condition",
        "MedicationRequest",
        "MedicationStatement",
        "Medication",
        "Observation",
        "Procedure",
    ];

    /// Reads `json` as the type `resource_type` names; `None` for a type screening does not read.
    pub fn parse(resource_type: &str, json: &str) -> Option<serde_json::Result<Typed>> {
        Some(match resource_type {
            "Patient" => serde_json::from_str(json).map(Typed::Patient),
            "Condition" => serde_json::from_str(json).map(Typed::Condition),
            "MedicationRequest" => serde_json::from_str(json).map(Typed::MedicationRequest),
            "MedicationStatement" => serde_json::from_str(json).map(Typed::MedicationStatement),
            "Medication" => serde_json::from_str(json).map(Typed::Medication),
            "Observation" => serde_json::from_str(json).map(Typed::Observation),
            "Procedure" => serde_json::from_str(json).map(Typed::Procedure),
            _ => return None,
        })
    }

    /// Where the resource carries a modifier extension in what screening reads of it (a modifier
    /// extension elsewhere changes only the element that holds it), if it does.
    pub fn modifier_extension_at(&self) -> Option<&'static str> {
        fn any<T>(items: &[T], modified: impl Fn(&T) -> bool) -> bool {
            items.iter().any(modified)
        }
        let dosages = |list: &[Lenient<Dosage>]| {
            any(list, |d| d.read().is_some_and(Dosage::is_modified)).then_some("a dosage")
        };
        let contained = |list: &[Lenient<Medication>]| {
            any(list, |m| m.read().is_some_and(Medication::is_modified))
                .then_some("a contained Medication")
        };
        let own = |m: &ModifierExtensions| (!m.is_empty()).then_some("the resource");
        match self {
            Typed::Patient(r) => own(&r.modifier_extension),
            Typed::Condition(r) => own(&r.modifier_extension),
            Typed::MedicationRequest(r) => own(&r.modifier_extension)
                .or_else(|| dosages(&r.dosage_instruction))
                .or_else(|| {
                    r.dispense_request
                        .as_ref()
                        .is_some_and(|d| !d.modifier_extension.is_empty())
                        .then_some("dispenseRequest")
                })
                .or_else(|| contained(&r.contained)),
            Typed::MedicationStatement(r) => own(&r.modifier_extension)
                .or_else(|| dosages(&r.dosage))
                .or_else(|| contained(&r.contained)),
            Typed::Medication(r) => own(&r.modifier_extension).or_else(|| {
                any(&r.ingredient, |i| !i.modifier_extension.is_empty()).then_some("an ingredient")
            }),
            Typed::Observation(r) => own(&r.modifier_extension).or_else(|| {
                any(&r.component, |c| !c.modifier_extension.is_empty()).then_some("a component")
            }),
            Typed::Procedure(r) => own(&r.modifier_extension),
        }
    }
}

impl Medication {
    /// Whether the Medication or one of its ingredients carries a modifier extension.
    pub fn is_modified(&self) -> bool {
        !self.modifier_extension.is_empty()
            || self
                .ingredient
                .iter()
                .any(|i| !i.modifier_extension.is_empty())
    }
}

impl AnyResource {
    /// The resource as the type `kind` names (its `resourceType`, which the caller keeps), if
    /// screening reads that type.
    pub(crate) fn typed(self, kind: &str) -> Option<Typed> {
        let r = self;
        Some(match kind {
            "Patient" => Typed::Patient(Patient {
                id: r.id,
                deceased_boolean: r.deceased_boolean,
                deceased_date_time: r.deceased_date_time,
                modifier_extension: r.modifier_extension,
            }),
            "Condition" => Typed::Condition(Condition {
                id: r.id,
                clinical_status: r.clinical_status,
                verification_status: r.verification_status,
                code: r.code,
                onset_date_time: r.onset_date_time,
                onset_period: r.onset_period,
                recorded_date: r.recorded_date,
                abatement_date_time: r.abatement_date_time,
                abatement_period: r.abatement_period,
                modifier_extension: r.modifier_extension,
            }),
            "MedicationRequest" => Typed::MedicationRequest(MedicationRequest {
                id: r.id,
                status: r.status,
                intent: r.intent,
                do_not_perform: r.do_not_perform,
                medication_codeable_concept: r.medication_codeable_concept,
                medication_reference: r.medication_reference,
                authored_on: r.authored_on,
                dosage_instruction: r.dosage_instruction,
                dispense_request: r.dispense_request,
                contained: r.contained,
                modifier_extension: r.modifier_extension,
            }),
            "MedicationStatement" => Typed::MedicationStatement(MedicationStatement {
                id: r.id,
                status: r.status,
                medication_codeable_concept: r.medication_codeable_concept,
                medication_reference: r.medication_reference,
                effective_date_time: r.effective_date_time,
                effective_period: r.effective_period,
                date_asserted: r.date_asserted,
                dosage: r.dosage,
                contained: r.contained,
                modifier_extension: r.modifier_extension,
            }),
            "Medication" => Typed::Medication(Medication {
                resource_type: Some(kind.to_owned()),
                id: r.id,
                code: r.code,
                ingredient: r.ingredient,
                modifier_extension: r.modifier_extension,
            }),
            "Observation" => Typed::Observation(Observation {
                id: r.id,
                status: r.status,
                code: r.code,
                effective_date_time: r.effective_date_time,
                effective_period: r.effective_period,
                effective_instant: r.effective_instant,
                issued: r.issued,
                value_quantity: r.value_quantity,
                value_integer: r.value_integer,
                value_string: r.value_string,
                component: r.component,
                modifier_extension: r.modifier_extension,
            }),
            "Procedure" => Typed::Procedure(Procedure {
                id: r.id,
                status: r.status,
                code: r.code,
                performed_date_time: r.performed_date_time,
                performed_period: r.performed_period,
                modifier_extension: r.modifier_extension,
            }),
            _ => return None,
        })
    }
}
