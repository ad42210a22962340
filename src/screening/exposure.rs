//! Medication exposures (screening-rules.md sections 2 and 3): which tracked drugs a
//! MedicationRequest or MedicationStatement names, over which days, at what daily dose.

use super::Diagnostics;
use super::dose::{self, Strength};
use super::facts::{parse_date, period_start};
use crate::date::Date;
use crate::fhir::datatypes::{CodeableConcept, Dosage, Lenient, Quantity, Reference};
use crate::fhir::resources::{Medication, MedicationRequest, MedicationStatement};
use crate::fhir::{DiagnosticKind, Entry, PatientRecord};
use crate::knowledge::text;
use crate::knowledge::{DrugId, Knowledge, NameTarget};
use crate::ratio::Ratio;

#[derive(Debug, Clone)]
pub struct Exposure {
    pub drug: DrugId,
    pub start: Date,
    /// Exclusive end; `None` while still taken at `as_of`.
    pub end: Option<Date>,
    pub daily_mg: Option<Ratio>,
    /// A combination product's own adequate dose for this ingredient (Auvelity's bupropion).
    pub min_adequate_override: Option<Ratio>,
    pub citation: String,
}

/// One drug a medication names, with what the product says of it.
#[derive(Debug, Clone)]
struct Recognised {
    drug: DrugId,
    strength: Option<Strength>,
    /// The product itself shows the drug's required route: a brand of that form (Emsam) or the
    /// route in its name ("selegiline 0.25 MG/HR Transdermal System").
    route_shown: bool,
    min_adequate_override: Option<Ratio>,
}

pub fn gather(
    record: &PatientRecord,
    as_of: Date,
    k: &Knowledge,
    d: &mut Diagnostics,
) -> Vec<Exposure> {
    let mut out = Vec::new();
    for entry in &record.medication_requests {
        request(entry, record, as_of, k, d, &mut out);
    }
    for entry in &record.medication_statements {
        statement(entry, record, as_of, k, d, &mut out);
    }
    out.sort_by(|a, b| {
        (a.drug, a.start, a.end.is_none(), a.end, &a.citation).cmp(&(
            b.drug,
            b.start,
            b.end.is_none(),
            b.end,
            &b.citation,
        ))
    });
    out
}

fn request(
    entry: &Entry<MedicationRequest>,
    record: &PatientRecord,
    as_of: Date,
    k: &Knowledge,
    d: &mut Diagnostics,
    out: &mut Vec<Exposure>,
) {
    let mr = &entry.resource;
    let cite = entry.citation.as_str();
    let drugs = recognise_medication(
        mr.medication_codeable_concept.as_ref(),
        mr.medication_reference.as_ref(),
        &mr.contained,
        record,
        k,
        cite,
        d,
    );
    if drugs.is_empty() {
        return;
    }
    let ignored = match (mr.status.as_deref(), mr.intent.as_deref()) {
        (Some(s @ ("entered-in-error" | "draft" | "cancelled")), _) => Some(format!("status {s}")),
        (_, Some("proposal")) => Some("intent proposal".to_owned()),
        _ => None,
    };
    if let Some(why) = ignored {
        d.note(
            cite,
            DiagnosticKind::IgnoredStatus,
            format!("{why} is not used"),
        );
        return;
    }
    let dosage = first_dosage(&mr.dosage_instruction);
    let bounds = dosage
        .and_then(|x| x.timing.as_ref())
        .and_then(|t| t.repeat.as_ref())
        .and_then(|r| r.bounds_period.as_ref());
    let start_text = period_start(bounds).or(mr.authored_on.as_deref());
    let Some(start) = parse_date(start_text, cite, "start date", d).map(|dt| dt.day) else {
        if start_text.is_none() {
            d.note(
                cite,
                DiagnosticKind::MissingDate,
                "has no start date (authoredOn or boundsPeriod); not used".into(),
            );
        }
        return;
    };
    let dispense = mr.dispense_request.as_ref();
    let end_text = bounds.and_then(|b| b.end.as_deref()).or(dispense
        .and_then(|x| x.validity_period.as_ref())
        .and_then(|p| p.end.as_deref()));
    let end = match end_text {
        Some(_) => parse_date(end_text, cite, "end date", d).map(|dt| Some(dt.day)),
        None => match dispense
            .and_then(|x| x.expected_supply_duration.as_ref())
            .and_then(supply_days)
        {
            Some(days) => {
                let fills = 1 + dispense
                    .and_then(|x| x.number_of_repeats_allowed)
                    .unwrap_or(0);
                Some(Some(start.plus_days(days.saturating_mul(fills as i32))))
            }
            None if mr.status.as_deref() == Some("active") => Some(None),
            // A finished order with no duration: it was taken, for an unknown time; it cannot show
            // an adequate duration.
            None => Some(Some(start)),
        },
    };
    let Some(end) = end else { return };
    push_exposures(cite, drugs, start, end, dosage, as_of, k, d, out);
}

fn statement(
    entry: &Entry<MedicationStatement>,
    record: &PatientRecord,
    as_of: Date,
    k: &Knowledge,
    d: &mut Diagnostics,
    out: &mut Vec<Exposure>,
) {
    let ms = &entry.resource;
    let cite = entry.citation.as_str();
    let drugs = recognise_medication(
        ms.medication_codeable_concept.as_ref(),
        ms.medication_reference.as_ref(),
        &ms.contained,
        record,
        k,
        cite,
        d,
    );
    if drugs.is_empty() {
        return;
    }
    if let Some(s @ ("entered-in-error" | "not-taken")) = ms.status.as_deref() {
        d.note(
            cite,
            DiagnosticKind::IgnoredStatus,
            format!("status {s} is not used"),
        );
        return;
    }
    let (start_text, end) = match (&ms.effective_period, &ms.effective_date_time) {
        (Some(p), _) => (p.start.as_deref(), p.end.as_deref().map(Some)),
        (None, Some(t)) => (Some(t.as_str()), Some(Some(t.as_str()))),
        (None, None) => (None, None),
    };
    let Some(start) = parse_date(start_text, cite, "effective start", d).map(|dt| dt.day) else {
        if start_text.is_none() {
            d.note(
                cite,
                DiagnosticKind::MissingDate,
                "has no effective period start; not used".into(),
            );
        }
        return;
    };
    let end = match end {
        // An open period means still taking.
        None | Some(None) => None,
        Some(Some(t)) => match parse_date(Some(t), cite, "effective end", d) {
            Some(dt) => Some(dt.day),
            None => return,
        },
    };
    let dosage = first_dosage(&ms.dosage);
    push_exposures(cite, drugs, start, end, dosage, as_of, k, d, out);
}

#[allow(clippy::too_many_arguments)]
fn push_exposures(
    cite: &str,
    drugs: Vec<Recognised>,
    start: Date,
    end: Option<Date>,
    dosage: Option<&Dosage>,
    as_of: Date,
    k: &Knowledge,
    d: &mut Diagnostics,
    out: &mut Vec<Exposure>,
) {
    if start > as_of {
        d.note(
            cite,
            DiagnosticKind::AfterAsOf,
            "starts after the evaluation date; not used".into(),
        );
        return;
    }
    if end.is_some_and(|e| e < start) {
        d.note(
            cite,
            DiagnosticKind::BadDate,
            "ends before it starts; not used".into(),
        );
        return;
    }
    // Still running at as_of (an end date in the future is a plan, not a fact).
    let end = end.filter(|e| *e <= as_of);
    for r in drugs {
        let info = k.drug(r.drug);
        if let Some(route) = &info.required_route
            && !r.route_shown
            && !route_is(route, dosage)
        {
            d.note(
                cite,
                DiagnosticKind::RouteExcluded,
                format!(
                    "{} counts only by the {} route, which this record does not show",
                    info.name,
                    route.join(" ")
                ),
            );
            continue;
        }
        let daily_mg = match dosage {
            None => {
                d.note(
                    cite,
                    DiagnosticKind::DoseUnknown,
                    format!("{}: no readable dosage; dose unknown", info.name),
                );
                None
            }
            Some(x) => match dose::daily_dose(x, r.strength) {
                Ok(mg) => match info.usual_max_daily_mg {
                    Some(max)
                        if mg
                            > max
                                .checked_mul(Ratio::integer(u64::from(
                                    k.policy.trial.implausible_dose_factor,
                                )))
                                .unwrap_or(max) =>
                    {
                        d.note(cite, DiagnosticKind::DoseImplausible, format!("{}: {mg} mg/day is far above the usual maximum; dose treated as unknown", info.name));
                        None
                    }
                    _ => Some(mg),
                },
                Err(problem) => {
                    d.note(
                        cite,
                        DiagnosticKind::DoseUnknown,
                        format!("{}: {}; dose unknown", info.name, problem.reason()),
                    );
                    None
                }
            },
        };
        out.push(Exposure {
            drug: r.drug,
            start,
            end,
            daily_mg,
            min_adequate_override: r.min_adequate_override,
            citation: cite.to_owned(),
        });
    }
}

fn first_dosage(list: &[Lenient<Dosage>]) -> Option<&Dosage> {
    list.first().and_then(Lenient::read)
}

fn route_is(route: &[String], dosage: Option<&Dosage>) -> bool {
    dosage
        .and_then(|x| x.route.as_ref())
        .is_some_and(|r| r.texts().any(|t| text::text_contains_phrase(t, route)))
}

fn supply_days(q: &Quantity) -> Option<i32> {
    let value = Ratio::parse_decimal(&q.value.as_ref()?.0).ok()?;
    let per = match q.unit_key()?.to_ascii_lowercase().as_str() {
        "d" | "day" | "days" => 1,
        "wk" | "week" | "weeks" => 7,
        "mo" | "month" | "months" => 30,
        _ => return None,
    };
    let days = value.checked_mul(Ratio::integer(per))?.rounded(0);
    (0.0..36_500.0).contains(&days).then_some(days as i32)
}

/// The medication concept: inline, `contained` (`#id`), or a Medication in the record.
fn recognise_medication(
    concept: Option<&CodeableConcept>,
    reference: Option<&Reference>,
    contained: &[Lenient<Medication>],
    record: &PatientRecord,
    k: &Knowledge,
    cite: &str,
    d: &mut Diagnostics,
) -> Vec<Recognised> {
    if let Some(c) = concept {
        return recognise(c, &[], k, cite, d);
    }
    let Some(reference) = reference else {
        return Vec::new();
    };
    match resolve(reference, contained, record) {
        Some(medication) => {
            let code = medication.code.clone().unwrap_or_default();
            recognise(&code, &medication.ingredient, k, cite, d)
        }
        None => {
            let display = CodeableConcept {
                coding: Vec::new(),
                text: reference.display.clone(),
            };
            let found = recognise(&display, &[], k, cite, d);
            d.note(cite, DiagnosticKind::UnresolvedReference, if found.is_empty() {
                "its Medication reference cannot be resolved in this record".into()
            } else {
                "its Medication reference cannot be resolved; recognised from the reference's display text".into()
            });
            found
        }
    }
}

fn resolve<'r>(
    reference: &Reference,
    contained: &'r [Lenient<Medication>],
    record: &'r PatientRecord,
) -> Option<&'r Medication> {
    let r = reference.reference.as_deref()?;
    if let Some(local) = r.strip_prefix('#') {
        return contained.iter().filter_map(Lenient::read).find(|m| {
            m.resource_type.as_deref() == Some("Medication") && m.id.as_deref() == Some(local)
        });
    }
    let path = r.split("/_history/").next().unwrap_or(r);
    record
        .medications
        .iter()
        .find(|m| {
            m.full_url.as_deref() == Some(r)
                || r == m.citation
                || path
                    .strip_suffix(m.citation.as_str())
                    .is_some_and(|rest| rest.ends_with('/'))
        })
        .map(|m| &m.resource)
}

/// Screening-rules section 2: RxNorm ingredient codes; otherwise names and brands in the text;
/// otherwise ATC. Strengths come from Medication.ingredient or from the text.
fn recognise(
    concept: &CodeableConcept,
    ingredients: &[crate::fhir::resources::MedicationIngredient],
    k: &Knowledge,
    cite: &str,
    d: &mut Diagnostics,
) -> Vec<Recognised> {
    let mut found: Vec<Recognised> = Vec::new();
    let add = |found: &mut Vec<Recognised>, r: Recognised| {
        if let Some(existing) = found.iter_mut().find(|x| x.drug == r.drug) {
            existing.strength = existing.strength.or(r.strength);
            existing.route_shown |= r.route_shown;
            existing.min_adequate_override =
                existing.min_adequate_override.or(r.min_adequate_override);
        } else {
            found.push(r);
        }
    };
    let concepts = std::iter::once(concept).chain(
        ingredients
            .iter()
            .filter_map(|i| i.item_codeable_concept.as_ref()),
    );
    // Names in text give strengths even when codes identify the drug.
    let mut from_text = Vec::new();
    let mut texts: Vec<&str> = concepts.clone().flat_map(CodeableConcept::texts).collect();
    // `text` and `coding.display` are often the same string.
    texts.sort_unstable();
    texts.dedup();
    for t in texts {
        scan_text(t, k, &mut from_text);
    }
    let mut by_code = Vec::new();
    for c in concepts.clone() {
        for code in c.codes_in(&k.systems.rxnorm) {
            if let Some(drug) = k.drug_by_rxnorm(code) {
                by_code.push(drug);
            }
        }
    }
    if !by_code.is_empty() {
        for drug in by_code {
            let text_hit = from_text.iter().find(|r: &&Recognised| r.drug == drug);
            let route_in_text = k.drug(drug).required_route.as_ref().is_some_and(|route| {
                concepts
                    .clone()
                    .flat_map(CodeableConcept::texts)
                    .any(|t| text::text_contains_phrase(t, route))
            });
            add(
                &mut found,
                Recognised {
                    drug,
                    strength: text_hit.and_then(|r| r.strength),
                    route_shown: route_in_text || text_hit.is_some_and(|r| r.route_shown),
                    min_adequate_override: text_hit.and_then(|r| r.min_adequate_override),
                },
            );
        }
    } else if !from_text.is_empty() {
        for r in from_text {
            add(&mut found, r);
        }
    } else {
        for c in concepts.clone() {
            for code in c.codes_in(&k.systems.atc) {
                if let Some(drug) = k.drug_by_atc(code) {
                    add(
                        &mut found,
                        Recognised {
                            drug,
                            strength: None,
                            route_shown: false,
                            min_adequate_override: None,
                        },
                    );
                } else if k.is_unlisted_antidepressant_atc(code) {
                    d.note(cite, DiagnosticKind::UnlistedAntidepressant, format!("ATC {code} is an antidepressant the knowledge base does not list; not counted"));
                }
            }
        }
    }
    // Strengths stated per ingredient in a Medication override what the text says.
    for ingredient in ingredients {
        let (Some(item), Some(strength)) =
            (&ingredient.item_codeable_concept, &ingredient.strength)
        else {
            continue;
        };
        let Some(strength) = dose::strength_from_ratio(strength) else {
            continue;
        };
        let mut names = Vec::new();
        for t in item.texts() {
            scan_text(t, k, &mut names);
        }
        let drugs = item
            .codes_in(&k.systems.rxnorm)
            .filter_map(|c| k.drug_by_rxnorm(c))
            .chain(names.iter().map(|r| r.drug));
        for drug in drugs {
            if let Some(r) = found.iter_mut().find(|r| r.drug == drug) {
                r.strength = Some(strength);
            }
        }
    }
    if found.is_empty() && concept.has_code_without_system() {
        d.note(
            cite,
            DiagnosticKind::CodingWithoutSystem,
            "has a medication code with no code system, and no recognisable name".into(),
        );
    }
    found
}

/// Every drug or combination named in one text, each with the strength written after it.
fn scan_text(t: &str, k: &Knowledge, out: &mut Vec<Recognised>) {
    let lowered = text::lower(t);
    let tokens = text::tokenize(&lowered);
    let mut hits = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match k.name_at(&tokens, i) {
            Some(m) => {
                hits.push((i, m));
                i = m.end;
            }
            None => i += 1,
        }
    }
    for (n, (_, m)) in hits.iter().enumerate() {
        let until = hits.get(n + 1).map_or(tokens.len(), |(next, _)| *next);
        let strength = dose::strength_from_tokens(&tokens[m.end..until]);
        match m.target {
            NameTarget::Drug { drug, brand } => {
                let route_in_text = k
                    .drug(drug)
                    .required_route
                    .as_ref()
                    .is_some_and(|route| text::contains_phrase(&tokens, route));
                out.push(Recognised {
                    drug,
                    strength,
                    route_shown: brand || route_in_text,
                    min_adequate_override: None,
                })
            }
            NameTarget::Combination(c) => {
                let combination = &k.combinations[c];
                for drug in &combination.ingredients {
                    out.push(Recognised {
                        drug: *drug,
                        strength: None,
                        route_shown: true,
                        min_adequate_override: combination.min_adequate_daily_mg.get(drug).copied(),
                    });
                }
            }
        }
    }
}
