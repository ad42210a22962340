//! Which tracked drugs a medication concept names (screening-rules.md section 2), with the strength
//! and route the product shows.

use super::Diagnostics;
use super::dose::{self, Strength};
use crate::fhir::datatypes::{CodeableConcept, Coding, Lenient, Reference};
use crate::fhir::resources::{Medication, MedicationIngredient};
use crate::fhir::{DiagnosticKind, PatientRecord};
use crate::knowledge::text::{self, Token};
use crate::knowledge::{Knowledge, NameMatch, NameTarget};
use crate::ratio::Ratio;
use std::borrow::Cow;

/// One drug a medication names, with what the product says of it.
#[derive(Debug, Clone, Copy)]
pub struct Recognised {
    pub drug: crate::knowledge::DrugId,
    pub strength: Option<Strength>,
    /// The product itself shows the drug's required route: a brand of that form (Emsam) or the
    /// route in its name ("selegiline 0.25 MG/HR Transdermal System").
    pub route_shown: bool,
    pub min_adequate_override: Option<Ratio>,
}

/// A notice about a concept, written under every record that names it.
type Note = (DiagnosticKind, String);

/// The concepts recognised so far in one evaluation. Refills and renewals repeat the same concept,
/// and recognising one reads every word of its texts; what it finds depends on the concept alone, so
/// each distinct concept is recognised once per evaluation and its notes repeated for each record.
pub struct Recogniser<'r> {
    record: &'r PatientRecord,
    seen: Vec<Seen<'r>>,
    scratch: Scratch<'r>,
}

/// Buffers reused from one concept to the next, to spare their allocations.
#[derive(Default)]
struct Scratch<'t> {
    texts: Vec<&'t str>,
    from_text: Vec<Recognised>,
    lowered: String,
}

struct Seen<'r> {
    concept: &'r CodeableConcept,
    ingredients: &'r [MedicationIngredient],
    drugs: Vec<Recognised>,
    notes: Vec<Note>,
}

/// A Medication with no `code` is read as an empty concept.
static NO_CODE: CodeableConcept = CodeableConcept {
    coding: Vec::new(),
    text: None,
};

impl<'r> Recogniser<'r> {
    pub fn new(record: &'r PatientRecord) -> Recogniser<'r> {
        let medications = record.medication_requests.len() + record.medication_statements.len();
        Recogniser {
            record,
            seen: Vec::with_capacity(medications),
            scratch: Scratch::default(),
        }
    }

    /// The medication concept: inline, `contained` (`#id`), or a Medication in the record.
    pub fn medication(
        &mut self,
        concept: Option<&'r CodeableConcept>,
        reference: Option<&'r Reference>,
        contained: &'r [Lenient<Medication>],
        k: &Knowledge,
        cite: &str,
        d: &mut Diagnostics,
    ) -> Cow<'_, [Recognised]> {
        if let Some(c) = concept {
            return Cow::Borrowed(self.concept(c, &[], k, cite, d));
        }
        let Some(reference) = reference else {
            return Cow::Borrowed(&[]);
        };
        match resolve(reference, contained, self.record) {
            Some(medication) => {
                let code = medication.code.as_ref().unwrap_or(&NO_CODE);
                Cow::Borrowed(self.concept(code, &medication.ingredient, k, cite, d))
            }
            None => {
                let display = CodeableConcept {
                    coding: Vec::new(),
                    text: reference.display.clone(),
                };
                let mut notes = Vec::new();
                let found = recognise(&display, &[], k, &mut Scratch::default(), &mut notes);
                replay(&notes, cite, d);
                d.note(cite, DiagnosticKind::UnresolvedReference, if found.is_empty() {
                    "its Medication reference cannot be resolved in this record".into()
                } else {
                    "its Medication reference cannot be resolved; recognised from the reference's display text".into()
                });
                Cow::Owned(found)
            }
        }
    }

    fn concept(
        &mut self,
        concept: &'r CodeableConcept,
        ingredients: &'r [MedicationIngredient],
        k: &Knowledge,
        cite: &str,
        d: &mut Diagnostics,
    ) -> &[Recognised] {
        let known = self.seen.iter().position(|s| {
            same_ingredients(s.ingredients, ingredients) && same_concept(s.concept, concept)
        });
        let seen = match known {
            Some(at) => &self.seen[at],
            None => {
                let mut notes = Vec::new();
                let drugs = recognise(concept, ingredients, k, &mut self.scratch, &mut notes);
                self.seen.push(Seen {
                    concept,
                    ingredients,
                    drugs,
                    notes,
                });
                self.seen.last().expect("just pushed")
            }
        };
        replay(&seen.notes, cite, d);
        &seen.drugs
    }
}

fn replay(notes: &[Note], cite: &str, d: &mut Diagnostics) {
    for (kind, message) in notes {
        d.note(cite, *kind, message.clone());
    }
}

/// Ingredients are compared as the same list (of one Medication), or both none: comparing their
/// strengths field by field would cost more than it saves.
fn same_ingredients(a: &[MedicationIngredient], b: &[MedicationIngredient]) -> bool {
    (a.is_empty() && b.is_empty()) || std::ptr::eq(a, b)
}

fn same_concept(a: &CodeableConcept, b: &CodeableConcept) -> bool {
    let same_coding =
        |x: &Coding, y: &Coding| x.system == y.system && x.code == y.code && x.display == y.display;
    std::ptr::eq(a, b)
        || (a.text == b.text
            && a.coding.len() == b.coding.len()
            && a.coding
                .iter()
                .zip(&b.coding)
                .all(|(x, y)| same_coding(x, y)))
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
fn recognise<'t>(
    concept: &'t CodeableConcept,
    ingredients: &'t [MedicationIngredient],
    k: &Knowledge,
    scratch: &mut Scratch<'t>,
    notes: &mut Vec<Note>,
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
    let Scratch {
        texts,
        from_text,
        lowered,
    } = scratch;
    texts.clear();
    texts.extend(concepts.clone().flat_map(CodeableConcept::texts));
    // `text` and `coding.display` are often the same string.
    texts.sort_unstable();
    texts.dedup();
    from_text.clear();
    for t in texts.iter() {
        scan_text(t, k, lowered, from_text);
    }
    let mut by_code = concepts
        .clone()
        .flat_map(|c| c.codes_in(&k.systems.rxnorm))
        .filter_map(|code| k.drug_by_rxnorm(code))
        .peekable();
    if by_code.peek().is_some() {
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
        for r in from_text.iter() {
            add(&mut found, *r);
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
                    notes.push((DiagnosticKind::UnlistedAntidepressant, format!("ATC {code} is an antidepressant the knowledge base does not list; not counted")));
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
        let names = &mut *from_text;
        names.clear();
        for t in item.texts() {
            scan_text(t, k, lowered, names);
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
        notes.push((
            DiagnosticKind::CodingWithoutSystem,
            "has a medication code with no code system, and no recognisable name".into(),
        ));
    }
    found
}

/// Every drug or combination named in one text, each with the strength written after it (up to the
/// next name).
fn scan_text(t: &str, k: &Knowledge, lowered: &mut String, out: &mut Vec<Recognised>) {
    text::lower_into(t, lowered);
    let tokens = text::tokenize(lowered);
    let mut previous: Option<NameMatch> = None;
    let mut i = 0;
    while i < tokens.len() {
        match k.name_at(&tokens, i) {
            Some(m) => {
                if let Some(p) = previous.replace(m) {
                    push_named(p, &tokens, i, k, out);
                }
                i = m.end;
            }
            None => i += 1,
        }
    }
    if let Some(last) = previous {
        push_named(last, &tokens, tokens.len(), k, out);
    }
}

/// The drug or combination of a name found in `tokens`, with the strength written between the name
/// and `until`.
fn push_named(
    m: NameMatch,
    tokens: &[Token<'_>],
    until: usize,
    k: &Knowledge,
    out: &mut Vec<Recognised>,
) {
    let strength = dose::strength_from_tokens(&tokens[m.end..until]);
    match m.target {
        NameTarget::Drug { drug, brand } => {
            let route_in_text = k
                .drug(drug)
                .required_route
                .as_ref()
                .is_some_and(|route| text::contains_phrase(tokens, route));
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
