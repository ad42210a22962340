//! `GET /cds-services`: the three services and what each asks the EHR to prefetch: the Patient, the
//! five searches ScreenPatient makes ([`crate::fhir::fetch::searches`]), and the patient's screening
//! Flag and CarePlan found by their business identifiers (so a card's suggestion updates them
//! rather than adding a second).

use crate::fhir::PatientId;
use crate::knowledge::Knowledge;
use crate::settings::WriteBackSettings;
use serde_json::{Value, json};

/// The hooks served, by service id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    PatientView,
    OrderSelect,
    OrderSign,
}

impl Service {
    pub const ALL: [Service; 3] = [
        Service::PatientView,
        Service::OrderSelect,
        Service::OrderSign,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Service::PatientView => "trd-patient-view",
            Service::OrderSelect => "trd-order-select",
            Service::OrderSign => "trd-order-sign",
        }
    }

    pub fn hook(self) -> &'static str {
        match self {
            Service::PatientView => "patient-view",
            Service::OrderSelect => "order-select",
            Service::OrderSign => "order-sign",
        }
    }

    pub fn by_id(id: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.id() == id)
    }

    fn title(self) -> &'static str {
        match self {
            Service::PatientView => "Treatment-resistant depression screening",
            Service::OrderSelect | Service::OrderSign => {
                "Cautions for antidepressant and related orders"
            }
        }
    }

    fn description(self) -> &'static str {
        match self {
            Service::PatientView => {
                "When the chart opens: a card when the patient's depression has not responded to two or more adequate antidepressant courses (MET) or may not have (POSSIBLE), with the courses, the safety hints and their evidence, and a suggestion to flag the chart and draft a care plan."
            }
            Service::OrderSelect | Service::OrderSign => {
                "While a drug is ordered: a card for each safety hint that affects it (MAOI washout and diet, bipolar features, seizures with bupropion, blood pressure and vascular disease with esketamine, kidneys with lithium, ...)."
            }
        }
    }
}

/// The prefetch keys, in the order [`crate::fhir::fetch::Given`] holds the searches.
pub const SEARCH_KEYS: [&str; 5] = [
    "medicationRequests",
    "medicationStatements",
    "observations",
    "conditions",
    "procedures",
];
pub const PATIENT_KEY: &str = "patient";
pub const FLAG_KEY: &str = "screeningFlag";
pub const CARE_PLAN_KEY: &str = "screeningCarePlan";

/// The placeholder the EHR replaces with the patient's id.
const PATIENT_TOKEN: &str = "{{context.patientId}}";

/// The prefetch templates: each the query the service would make itself.
pub fn prefetch(k: &Knowledge, writeback: &WriteBackSettings) -> Value {
    // A placeholder id that is a valid FHIR id, replaced by the token after the queries are built.
    const MARK: &str = "patient-id-placeholder";
    let id = PatientId::parse(MARK).expect("the placeholder is a valid id");
    let mut templates = serde_json::Map::new();
    templates.insert(
        PATIENT_KEY.into(),
        json!(format!("Patient/{PATIENT_TOKEN}")),
    );
    for (key, (resource_type, params)) in
        SEARCH_KEYS.iter().zip(crate::fhir::fetch::searches(&id, k))
    {
        let query: Vec<String> = params
            .iter()
            .map(|(name, value)| {
                let value = value.replace(MARK, PATIENT_TOKEN);
                format!("{name}={value}")
            })
            .collect();
        templates.insert(
            (*key).into(),
            json!(format!("{resource_type}?{}", query.join("&"))),
        );
    }
    for (key, resource_type, kind) in [
        (FLAG_KEY, "Flag", "flag"),
        (CARE_PLAN_KEY, "CarePlan", "careplan"),
    ] {
        templates.insert(
            key.into(),
            json!(format!(
                "{resource_type}?identifier={}|{kind}-{PATIENT_TOKEN}",
                writeback.identifier_system
            )),
        );
    }
    Value::Object(templates)
}

/// The discovery document.
pub fn services(k: &Knowledge, writeback: &WriteBackSettings) -> Value {
    let prefetch = prefetch(k, writeback);
    let services: Vec<Value> = Service::ALL
        .iter()
        .map(|s| {
            json!({
                "hook": s.hook(),
                "id": s.id(),
                "title": s.title(),
                "description": s.description(),
                "prefetch": prefetch,
            })
        })
        .collect();
    json!({ "services": services })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefetch_asks_for_what_screen_patient_reads_with_the_patient_token() {
        let k = Knowledge::embedded();
        let p = prefetch(&k, &WriteBackSettings::default());
        assert_eq!(p["patient"], "Patient/{{context.patientId}}");
        assert_eq!(
            p["conditions"],
            "Condition?patient=Patient/{{context.patientId}}"
        );
        assert!(
            p["medicationRequests"]
                .as_str()
                .unwrap()
                .contains("_include=MedicationRequest:medication")
        );
        assert!(p["observations"].as_str().unwrap().contains("44261-6"));
        assert_eq!(
            p["screeningFlag"],
            "Flag?identifier=urn:trdscreen:screening|flag-{{context.patientId}}"
        );
        assert_eq!(p.as_object().unwrap().len(), 8);
    }
}
