//! The Flag and the draft CarePlan of screening-rules section 11, as FHIR JSON. Pure: each builder
//! takes what is in the chart now (if anything) and returns what should be there, or `None` when
//! nothing should be written.

use crate::screening::{Assessment, TrdStatus};
use serde_json::{Value, json};

const FLAG_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/flag-category";

/// What the builders need besides the assessment.
pub struct Context<'a> {
    pub patient_reference: &'a str,
    pub identifier_system: &'a str,
    pub identifier_value: &'a str,
    pub code_system: &'a str,
    /// The SNOMED CT concept for TRD (knowledge/codes.toml `[flag]`).
    pub trd_code: &'a crate::knowledge::FlagCodes,
    pub snomed_system: &'a str,
    /// The day screened, `YYYY-MM-DD`.
    pub day: &'a str,
}

/// Sets `key` of a resource read from the server. `resource[key] = ..` panics on a value that is
/// no object; the write-back only ever takes a resource that is one (it checks `resourceType`), so
/// anything else is left as it is.
fn set(resource: &mut Value, key: &str, value: Value) {
    if let Some(object) = resource.as_object_mut() {
        object.insert(key.to_owned(), value);
    }
}

pub fn is_positive(status: TrdStatus) -> bool {
    matches!(status, TrdStatus::Met | TrdStatus::Possible)
}

pub fn flag(existing: Option<&Value>, a: &Assessment, cx: &Context) -> Option<Value> {
    if !is_positive(a.status) {
        // Nothing is deleted: a Flag raised earlier becomes inactive, and stays as it is after that.
        let mut flag = existing?.clone();
        if flag["status"] == "active" {
            set(&mut flag, "status", json!("inactive"));
            // The server's `period` as it is, unless it is no object (no valid Flag has one such;
            // indexing into it would panic).
            let mut period = flag
                .get("period")
                .filter(|p| p.is_object())
                .cloned()
                .unwrap_or_else(|| json!({}));
            set(&mut period, "end", json!(cx.day));
            set(&mut flag, "period", period);
        }
        return Some(flag);
    }
    if existing.is_some_and(|f| f["status"] == "entered-in-error") {
        // Someone marked the Flag raised in error: that judgement stands, night after night.
        return None;
    }
    // A Flag that is already active keeps the day it was first raised.
    let start = existing
        .filter(|f| f["status"] == "active")
        .and_then(|f| f["period"]["start"].as_str())
        .unwrap_or(cx.day);
    let (code, display) = match a.status {
        TrdStatus::Met => ("trd-met", "Treatment-resistant depression criteria met"),
        _ => ("trd-possible", "Possibly treatment-resistant depression"),
    };
    let mut coding = Vec::new();
    if a.status == TrdStatus::Met {
        coding.push(json!({
            "system": cx.snomed_system,
            "code": cx.trd_code.trd_snomed,
            "display": cx.trd_code.trd_display
        }));
    }
    coding.push(json!({"system": cx.code_system, "code": code, "display": display}));
    Some(json!({
        "resourceType": "Flag",
        "identifier": [{"system": cx.identifier_system, "value": cx.identifier_value}],
        "status": "active",
        "category": [{"coding": [{"system": FLAG_CATEGORY, "code": "clinical", "display": "Clinical"}]}],
        "code": {"coding": coding, "text": format!("{display} (trdscreen screening, ruleset {})", a.ruleset_version)},
        "subject": {"reference": cx.patient_reference},
        "period": {"start": start}
    }))
}

pub fn care_plan(
    existing: Option<&Value>,
    a: &Assessment,
    cx: &Context,
    flag_reference: Option<&str>,
) -> Option<Value> {
    // A plan a clinician took up (active, on hold, completed) or marked entered in error is
    // theirs: neither rewritten nor revoked. Only the service's own proposal (draft), or one it
    // revoked, follows the screening.
    let proposal = |plan: &Value| plan["status"] == "draft" || plan["status"] == "revoked";
    if existing.is_some_and(|plan| !proposal(plan)) {
        return None;
    }
    if !is_positive(a.status) {
        let mut plan = existing?.clone();
        if plan["status"] != "revoked" {
            set(&mut plan, "status", json!("revoked"));
        }
        return Some(plan);
    }
    let mut supporting: Vec<Value> = flag_reference
        .into_iter()
        .map(|r| json!({"reference": r}))
        .collect();
    let mut evidence: Vec<&str> = a
        .trials
        .iter()
        .filter(|t| t.counted)
        .flat_map(|t| t.evidence.iter())
        .chain(a.hints.iter().flat_map(|h| h.evidence.iter()))
        .map(String::as_str)
        .filter(|e| is_reference(e))
        .collect();
    evidence.sort_unstable();
    evidence.dedup();
    supporting.extend(evidence.into_iter().map(|e| json!({"reference": e})));
    let activities: Vec<Value> = a
        .suggestions
        .iter()
        .map(|s| {
            let mut description = s.title.clone();
            if s.contraindicated {
                description.push_str(&format!(" Contraindicated by: {}.", s.cautions.join(", ")));
            } else if !s.cautions.is_empty() {
                description.push_str(&format!(" Cautions: {}.", s.cautions.join(", ")));
            }
            json!({"detail": {
                "code": {"coding": [{"system": cx.code_system, "code": s.code}], "text": s.title},
                "status": "not-started",
                "doNotPerform": s.contraindicated,
                "description": description
            }})
        })
        .collect();
    let description = a
        .reasons
        .first()
        .map(|r| r.text.clone())
        .unwrap_or_default();
    let mut plan = json!({
        "resourceType": "CarePlan",
        "identifier": [{"system": cx.identifier_system, "value": cx.identifier_value}],
        "status": "draft",
        "intent": "proposal",
        "title": "Treatment-resistant depression: next-step options for review",
        "description": description,
        "subject": {"reference": cx.patient_reference},
        "supportingInfo": supporting,
        "activity": activities
    });
    // The screening decided which Conditions are active depression; write-back only cites them.
    let addresses: Vec<Value> = a
        .depression_conditions
        .iter()
        .filter(|c| is_reference(c))
        .map(|c| json!({"reference": c}))
        .collect();
    if !addresses.is_empty() {
        plan["addresses"] = Value::Array(addresses);
    }
    Some(plan)
}

/// `Type/id` citations only (not "entry 3" or a urn from a Bundle).
fn is_reference(citation: &str) -> bool {
    let mut parts = citation.split('/');
    matches!((parts.next(), parts.next(), parts.next()), (Some(t), Some(id), None)
        if t.starts_with(|c: char| c.is_ascii_uppercase()) && crate::fhir::FhirId::parse(id).is_ok())
}

/// The resource as the service compares it: without the server's `id`, `meta` and narrative.
pub fn comparable(resource: &Value) -> Value {
    let mut v = resource.clone();
    if let Some(map) = v.as_object_mut() {
        for key in ["id", "meta", "text"] {
            map.remove(key);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::Knowledge;
    use crate::screening::Staging;

    fn assessment(status: TrdStatus) -> Assessment {
        Assessment {
            patient_id: crate::fhir::PatientId::parse("p1").unwrap(),
            status,
            failed_adequate_trials: 2,
            trials: Vec::new(),
            hints: Vec::new(),
            staging: Staging {
                thase_rush_stage: 2,
                maudsley_score: None,
            },
            suggestions: Vec::new(),
            reasons: Vec::new(),
            ruleset_version: "test".into(),
            as_of: crate::date::Date::parse("2025-06-01").unwrap(),
            diagnostics: Vec::new(),
            depression_conditions: Vec::new(),
        }
    }

    /// The builders' context for patient p1's resource of business identifier `value`.
    fn context<'a>(k: &'a Knowledge, value: &'a str, day: &'a str) -> Context<'a> {
        Context {
            patient_reference: "Patient/p1",
            identifier_system: "urn:test",
            identifier_value: value,
            code_system: "urn:test:codes",
            trd_code: &k.flag,
            snomed_system: &k.systems.snomed[0],
            day,
        }
    }

    fn flag_for(status: TrdStatus, existing: Option<&Value>, day: &str) -> Option<Value> {
        let k = Knowledge::embedded();
        flag(existing, &assessment(status), &context(&k, "flag-p1", day))
    }

    fn codes(flag: &Value) -> Vec<&str> {
        flag["code"]["coding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["code"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn a_met_flag_carries_the_snomed_trd_code_and_a_possible_one_only_the_service_code() {
        let met = flag_for(TrdStatus::Met, None, "2025-06-01").unwrap();
        assert_eq!(codes(&met), ["1153570009", "trd-met"]);
        assert_eq!(met["status"], "active");
        assert_eq!(met["category"][0]["coding"][0]["code"], "clinical");
        let possible = flag_for(TrdStatus::Possible, None, "2025-06-01").unwrap();
        assert_eq!(codes(&possible), ["trd-possible"]);
    }

    #[test]
    fn an_active_flag_keeps_its_start_and_is_made_inactive_when_criteria_are_no_longer_met() {
        let first = flag_for(TrdStatus::Met, None, "2025-06-01").unwrap();
        let next_day = flag_for(TrdStatus::Met, Some(&first), "2025-06-02").unwrap();
        assert_eq!(next_day["period"]["start"], "2025-06-01");
        let retired = flag_for(TrdStatus::NotMet, Some(&next_day), "2025-07-01").unwrap();
        assert_eq!(retired["status"], "inactive");
        assert_eq!(retired["period"]["start"], "2025-06-01");
        assert_eq!(retired["period"]["end"], "2025-07-01");
        assert!(flag_for(TrdStatus::NotMet, None, "2025-07-01").is_none());
    }

    #[test]
    fn a_flag_marked_entered_in_error_is_not_raised_again() {
        let mut marked = flag_for(TrdStatus::Met, None, "2025-06-01").unwrap();
        marked["status"] = json!("entered-in-error");
        assert!(flag_for(TrdStatus::Met, Some(&marked), "2025-06-02").is_none());
        let withdrawn = flag_for(TrdStatus::NotMet, Some(&marked), "2025-06-02").unwrap();
        assert_eq!(withdrawn["status"], "entered-in-error");
    }

    fn plan_for(status: TrdStatus, existing: Option<&Value>) -> Option<Value> {
        let k = Knowledge::embedded();
        let cx = context(&k, "careplan-p1", "2025-06-01");
        care_plan(existing, &assessment(status), &cx, Some("Flag/f1"))
    }

    #[test]
    fn the_draft_plan_follows_the_screening_and_a_plan_a_clinician_took_up_is_left_as_it_is() {
        let draft = plan_for(TrdStatus::Met, None).unwrap();
        assert_eq!(draft["status"], "draft");
        let revoked = plan_for(TrdStatus::NotMet, Some(&draft)).unwrap();
        assert_eq!(revoked["status"], "revoked");
        assert_eq!(
            plan_for(TrdStatus::Met, Some(&revoked)).unwrap()["status"],
            "draft"
        );
        for taken_up in ["active", "on-hold", "completed", "entered-in-error"] {
            let mut plan = draft.clone();
            plan["status"] = json!(taken_up);
            plan["description"] = json!("edited by the clinician");
            assert!(
                plan_for(TrdStatus::Met, Some(&plan)).is_none(),
                "{taken_up}"
            );
            assert!(
                plan_for(TrdStatus::NotMet, Some(&plan)).is_none(),
                "{taken_up}"
            );
        }
    }

    #[test]
    fn a_flag_from_the_server_with_a_period_that_is_no_object_is_withdrawn_without_a_panic() {
        let mut odd = flag_for(TrdStatus::Met, None, "2025-06-01").unwrap();
        for period in [json!("2025-06-01"), json!([1, 2]), json!(7)] {
            odd["period"] = period;
            let retired = flag_for(TrdStatus::NotMet, Some(&odd), "2025-07-01").unwrap();
            assert_eq!(retired["status"], "inactive");
            assert_eq!(retired["period"], json!({"end": "2025-07-01"}));
        }
    }
}
