//! The cards (CDS Hooks 2.0 `Card`), built from an assessment. Everything shown comes from the
//! screening and the knowledge base; nothing a client sent is echoed.
//!
//! - `patient-view`: one card when the patient screens MET or POSSIBLE; none otherwise (NOT_MET or
//!   NOT_APPLICABLE, whatever the hints: hints alone belong to the moment a drug is ordered, see
//!   docs/decisions.md). The card lists the courses, the hints and their evidence, and suggests
//!   writing the screening Flag and draft CarePlan exactly as the write-back builds them, as
//!   `update` actions on fixed ids, so accepting twice leaves one of each.
//! - `order-select` / `order-sign`: one card per firing hint whose `affects` names a treatment the
//!   ordered drug is (`[[treatment]]` of hints.toml), or `all`.

use super::prefetch::Known;
use crate::knowledge::{DrugId, Knowledge};
use crate::screening::{Assessment, Hint, Severity, TrdStatus, TrialOutcome};
use crate::settings::WriteBackSettings;
use serde_json::{Value, json};
use std::fmt::Write as _;

/// Override reasons offered on every card, and the only codes feedback is counted under.
pub const OVERRIDE_REASONS: [(&str, &str); 3] = [
    ("not-relevant", "Not relevant for this patient"),
    ("already-addressed", "Already addressed"),
    ("clinical-judgement", "Overridden on clinical judgement"),
];
pub const OVERRIDE_SYSTEM: &str = "urn:trdscreen:cds:override-reason";

/// A card's indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indicator {
    Info,
    Warning,
    Critical,
}

impl Indicator {
    pub fn as_str(self) -> &'static str {
        match self {
            Indicator::Info => "info",
            Indicator::Warning => "warning",
            Indicator::Critical => "critical",
        }
    }

    fn of(severity: Severity) -> Indicator {
        match severity {
            Severity::Info => Indicator::Info,
            Severity::Warning => Indicator::Warning,
            Severity::Critical => Indicator::Critical,
        }
    }
}

/// A card and its indicator (for the metrics).
pub struct Card {
    pub indicator: Indicator,
    pub json: Value,
}

/// Makes the clinician view's URL for the card of this uuid.
pub type ViewLink<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// What the patient-view card needs besides the assessment.
pub struct PatientView<'a> {
    pub writeback: &'a WriteBackSettings,
    pub flag: &'a Known,
    pub care_plan: &'a Known,
    /// The clinician view's URL for a card (by its uuid), when the service can issue one.
    pub view_link: Option<&'a ViewLink<'a>>,
}

/// The patient-view card, or none when the patient does not screen MET or POSSIBLE.
pub fn patient_view(a: &Assessment, k: &Knowledge, cx: &PatientView) -> Option<Card> {
    let label = match a.status {
        TrdStatus::Met => "Treatment-resistant depression",
        TrdStatus::Possible => "Possible treatment-resistant depression",
        TrdStatus::NotMet | TrdStatus::NotApplicable => return None,
    };
    let courses = a.failed_adequate_trials;
    let summary = format!(
        "{label}: {courses} failed adequate course{}",
        if courses == 1 { "" } else { "s" }
    );
    let indicator = match a.hints.iter().map(|h| h.severity).max() {
        Some(Severity::Critical) => Indicator::Critical,
        Some(Severity::Warning) => Indicator::Warning,
        _ if a.status == TrdStatus::Met => Indicator::Warning,
        _ => Indicator::Info,
    };
    let mut card = base(
        &summary,
        indicator,
        detail(a),
        "trd-screening",
        "Treatment-resistant depression screening",
    );
    if let Some(suggestion) = suggestion(a, k, cx) {
        card["suggestions"] = json!([suggestion]);
        card["selectionBehavior"] = json!("at-most-one");
    }
    let uuid = card["uuid"].as_str().unwrap_or_default().to_owned();
    if let Some(url) = cx.view_link.and_then(|link| link(&uuid)) {
        card["links"] = json!([{
            "label": "Treatment history and PHQ-9 timeline",
            "url": url,
            "type": "absolute",
        }]);
    }
    Some(Card {
        indicator,
        json: card,
    })
}

/// The cards for the drugs being ordered: each firing hint that affects one of them, once.
pub fn orders(a: &Assessment, ordered: &[DrugId], k: &Knowledge) -> Vec<Card> {
    let mut cards = Vec::new();
    for hint in &a.hints {
        let cautioned: Vec<&str> = ordered
            .iter()
            .filter(|drug| {
                let treatments = k.treatments_of(**drug);
                hint.affects
                    .iter()
                    .any(|t| t == "all" || treatments.contains(&t.as_str()))
            })
            .map(|drug| k.drug(*drug).name.as_str())
            .collect();
        let Some(first) = cautioned.first() else {
            continue;
        };
        let indicator = Indicator::of(hint.severity);
        let summary = clip(&format!("{}: {}", capitalised(first), headline(hint)), 140);
        let mut detail = format!("{}\n", hint.message);
        if hint.code == "maoi-washout"
            && let Some(end) = washout_end(a, k)
        {
            let _ = writeln!(detail, "\nThe washout ends on **{end}**.");
        }
        evidence(&mut detail, &hint.evidence);
        cards.push(Card {
            indicator,
            json: base(&summary, indicator, detail, &hint.code, headline(hint)),
        });
    }
    cards
}

/// The topic's system: a card's topic is the hint it is about, or `trd-screening`.
pub const TOPIC_SYSTEM: &str = "urn:trdscreen:cds:topic";

fn base(
    summary: &str,
    indicator: Indicator,
    detail: String,
    topic: &str,
    topic_display: &str,
) -> Value {
    json!({
        "uuid": uuid(),
        "summary": summary,
        "indicator": indicator.as_str(),
        "detail": detail,
        "source": {
            "label": "trdscreen (treatment-resistant depression screening)",
            "topic": {"system": TOPIC_SYSTEM, "code": topic, "display": topic_display},
        },
        "overrideReasons": OVERRIDE_REASONS
            .iter()
            .map(|(code, display)| json!({"code": code, "system": OVERRIDE_SYSTEM, "display": display}))
            .collect::<Vec<_>>(),
    })
}

/// The markdown detail: the status and its reasons, the courses, the hints, with evidence.
fn detail(a: &Assessment) -> String {
    let mut out = String::new();
    for reason in &a.reasons {
        let _ = writeln!(out, "- {}", reason.text);
    }
    let mut courses: Vec<u32> = a.trials.iter().filter_map(|t| t.course).collect();
    courses.dedup();
    if !a.trials.is_empty() {
        let _ = writeln!(out, "\n**Antidepressant courses**\n");
    }
    for t in &a.trials {
        let dose = t
            .daily_dose_mg
            .map_or_else(|| "dose unknown".to_owned(), |mg| format!("{mg} mg/day"));
        let outcome = match t.outcome {
            TrialOutcome::Failed => "no response",
            TrialOutcome::Responded => "responded",
            TrialOutcome::Ongoing => "ongoing",
            TrialOutcome::Unknown => "outcome unknown",
        };
        let adequacy = match (t.adequate_dose, t.adequate_duration) {
            (true, true) => "adequate",
            (false, true) => "dose below adequate",
            (true, false) => "shorter than adequate",
            (false, false) => "dose and duration below adequate",
        };
        let course = t
            .course
            .map_or_else(|| "augmentation".to_owned(), |c| format!("course {c}"));
        let _ = write!(
            out,
            "- {course}: {} {dose}, from {} for {:.0} weeks, {adequacy}, {outcome}",
            t.ingredient, t.start, t.weeks
        );
        evidence_inline(&mut out, &t.evidence);
    }
    if !a.hints.is_empty() {
        let _ = writeln!(out, "\n**Cautions**\n");
    }
    for h in &a.hints {
        let _ = write!(out, "- **{}** ({}): {}", headline(h), h.code, h.message);
        evidence_inline(&mut out, &h.evidence);
    }
    let _ = writeln!(
        out,
        "\nScreened as of {} with ruleset {}.",
        a.as_of, a.ruleset_version
    );
    out
}

fn evidence_inline(out: &mut String, evidence: &[String]) {
    if evidence.is_empty() {
        out.push('\n');
    } else {
        let _ = writeln!(out, " ({})", as_markdown_text(evidence));
    }
}

fn evidence(out: &mut String, evidence: &[String]) {
    if !evidence.is_empty() {
        let _ = writeln!(out, "\nEvidence: {}", as_markdown_text(evidence));
    }
}

/// Citations as plain text in the card's markdown: a resource without an id is cited by the
/// `fullUrl` the request gave it, and `![x](https://...)` there would render as an image or a
/// link in the clinician's EHR. Every markdown punctuation character is escaped.
fn as_markdown_text(citations: &[String]) -> String {
    let mut out = String::new();
    for (n, citation) in citations.iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        for c in citation.chars() {
            if c.is_ascii_punctuation() && c != '/' && c != '-' && c != '.' && c != ':' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

/// The suggestion to write the screening Flag and draft CarePlan, when what the chart holds is
/// known: `update` actions with the ids the chart's resources have, or fixed ids made from the
/// business identifiers, so that carrying it out twice writes each once.
fn suggestion(a: &Assessment, k: &Knowledge, cx: &PatientView) -> Option<Value> {
    let existing = |known: &Known| match known {
        Known::Absent => Some(None),
        Known::Present(v) => Some(Some(v.clone())),
        Known::Unknown => None,
    };
    let flag = existing(cx.flag)?;
    let plan = existing(cx.care_plan)?;
    let id_of = |found: &Option<Value>, kind: &str| {
        found
            .as_ref()
            .and_then(|v| v["id"].as_str().map(str::to_owned))
            .unwrap_or_else(|| fixed_id(kind, &a.patient_id))
    };
    let flag_id = id_of(&flag, "flag");
    let plan_id = id_of(&plan, "careplan");
    let (new_flag, new_plan) = crate::writeback::proposed(
        cx.writeback,
        &a.patient_id,
        a,
        k,
        flag.as_ref(),
        plan.as_ref(),
        &flag_id,
    );
    let mut actions = Vec::new();
    for (resource, id, what) in [
        (
            new_flag,
            flag_id,
            "Flag the chart: treatment-resistant depression screening",
        ),
        (
            new_plan,
            plan_id,
            "Draft a care plan for the next treatment step",
        ),
    ] {
        let Some(mut resource) = resource else {
            continue;
        };
        resource["id"] = json!(id);
        actions.push(json!({"type": "update", "description": what, "resource": resource}));
    }
    (!actions.is_empty()).then(|| {
        json!({
            "label": "Flag the chart and draft a care plan",
            "uuid": uuid(),
            "isRecommended": true,
            "actions": actions,
        })
    })
}

/// A fixed resource id for the patient's screening Flag or CarePlan: `trd-` and the FNV-1a hash of
/// the business identifier value (ids are at most 64 characters; a patient id may be 64).
pub fn fixed_id(kind: &str, patient: &crate::fhir::PatientId) -> String {
    let value = crate::writeback::identifier_value(kind, patient);
    let mut hash = crate::fnv::Fnv1a::default();
    hash.update(value.as_bytes());
    format!("trd-{kind}-{:016x}", hash.value())
}

/// The first clause of a hint's message (up to its first colon or full stop).
fn headline(h: &Hint) -> &str {
    let end = h.message.find([':', '.']).unwrap_or(h.message.len());
    &h.message[..end]
}

fn capitalised(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// `text` cut to at most `max` characters, with an ellipsis when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// When the washout of the ended serotonergic antidepressants runs out: the latest end plus the
/// drug's washout (knowledge `maoi_washout_days`), if it is after `as_of`.
fn washout_end(a: &Assessment, k: &Knowledge) -> Option<crate::date::Date> {
    a.trials
        .iter()
        .filter_map(|t| {
            let end = crate::date::Date::parse(t.end.as_deref()?.get(..10)?).ok()?;
            let drug = k.drugs.iter().find(|d| d.name == t.ingredient)?;
            if drug.maoi {
                return None;
            }
            Some(end.plus_days(drug.maoi_washout_days? as i32))
        })
        .max()
        .filter(|end| *end > a.as_of)
}

/// A random UUID (version 4) for a card or a suggestion.
pub fn uuid() -> String {
    let mut b = [0u8; 16];
    // Without random numbers a card still needs an id: the clock's nanoseconds stand in.
    if getrandom::fill(&mut b).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        b = nanos.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The drugs of the orders: `ordered` citations (`MedicationRequest/id`) among the record's.
pub fn ordered_drugs(exposed: &[(String, DrugId)], ordered: &[String]) -> Vec<DrugId> {
    let mut drugs: Vec<DrugId> = exposed
        .iter()
        .filter(|(citation, _)| ordered.contains(citation))
        .map(|(_, drug)| *drug)
        .collect();
    drugs.sort_by_key(|d| d.0);
    drugs.dedup();
    drugs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_are_plain_text_in_the_markdown_never_an_image_or_a_link() {
        let cited = as_markdown_text(&[
            "MedicationRequest/m1".to_owned(),
            "![x](https://evil.example/p.png)".to_owned(),
            "urn:uuid:9f1c-44".to_owned(),
        ]);
        assert_eq!(
            cited,
            "MedicationRequest/m1, \\!\\[x\\]\\(https://evil.example/p.png\\), urn:uuid:9f1c-44"
        );
    }

    #[test]
    fn summaries_are_cut_to_140_characters() {
        let long = "x".repeat(200);
        assert_eq!(clip(&long, 140).chars().count(), 140);
        assert_eq!(clip("short", 140), "short");
    }

    #[test]
    fn fixed_ids_are_fhir_ids_for_the_longest_patient_id() {
        let p = crate::fhir::PatientId::parse(&"a".repeat(64)).unwrap();
        let id = fixed_id("careplan", &p);
        assert!(crate::fhir::FhirId::parse(&id).is_ok(), "{id}");
        assert_ne!(id, fixed_id("flag", &p));
    }

    #[test]
    fn uuids_are_version_4() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
