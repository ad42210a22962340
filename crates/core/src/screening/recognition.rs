//! Which tracked drugs a medication concept names (screening-rules.md section 2), with the strength
//! and route the product shows.

use super::Diagnostics;
use super::dose;
use crate::fhir::datatypes::{CodeableConcept, Coding, Lenient, Reference};
use crate::fhir::resources::{Medication, MedicationIngredient};
use crate::fhir::{DiagnosticKind, PatientRecord};
use crate::knowledge::text;
use crate::knowledge::{DrugId, Knowledge, RxnormConcept};
use std::borrow::Cow;

/// One drug a medication names, with what the product shows of it (strength, route).
pub type Recognised = crate::knowledge::Named;

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

/// The Medication a `medicationReference` names: a `contained` one (`#id`), or one of the
/// record's by citation, `fullUrl` or an absolute URL ending in its citation; `None` when the
/// record does not hold it.
pub fn resolve<'r>(
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

/// Screening-rules section 2, with the rule that a recognised code decides: the RxNorm ingredient
/// and product codes, and the ATC codes, of the concept and of its Medication's ingredients name the
/// drugs. The text (`text` and every `display`) names them only when no coding is recognised; when
/// one is, the text is only checked against it, and a text that names another drug or strength is a
/// diagnostic. Strengths come from Medication.ingredient, else the product's RxNorm name, else (for an
/// ingredient or ATC code, which show none) the text.
fn recognise<'t>(
    concept: &'t CodeableConcept,
    ingredients: &'t [MedicationIngredient],
    k: &Knowledge,
    scratch: &mut Scratch<'t>,
    notes: &mut Vec<Note>,
) -> Vec<Recognised> {
    let concepts = std::iter::once(concept).chain(
        ingredients
            .iter()
            .filter_map(|i| i.item_codeable_concept.as_ref()),
    );
    let Scratch {
        texts,
        from_text,
        lowered,
    } = scratch;
    texts.clear();
    texts.extend(
        concepts
            .clone()
            .flat_map(CodeableConcept::texts)
            .filter(|t| !t.trim().is_empty()),
    );
    // `text` and `coding.display` are often the same string.
    texts.sort_unstable();
    texts.dedup();
    from_text.clear();
    for t in texts.iter() {
        k.read_text(t, lowered, from_text);
    }

    let Coded {
        mut found,
        decided_by,
        unknown,
    } = read_codes(concepts, k, texts, from_text, notes);
    match decided_by {
        Some(code) => note_other_drugs_in_text(code, &found, from_text, k, notes),
        None if !from_text.is_empty() => {
            for r in from_text.iter() {
                add(&mut found, *r);
            }
            if !unknown.is_empty() {
                notes.push((
                    DiagnosticKind::UnknownCode,
                    format!(
                        "{} not in the knowledge base; recognised from its text",
                        unknown_codes(&unknown)
                    ),
                ));
            }
        }
        None => {
            if !unknown.is_empty() {
                let text = if texts.is_empty() {
                    "it has no text"
                } else {
                    "its text names no drug screening tracks"
                };
                notes.push((
                    DiagnosticKind::UnknownCode,
                    format!(
                        "{} not in the knowledge base, and {text}; not counted",
                        unknown_codes(&unknown)
                    ),
                ));
            }
        }
    }
    // Strengths stated per ingredient in a Medication override what the product and the text say.
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
            k.read_text(t, lowered, names);
        }
        let mut drugs: Vec<DrugId> = names.iter().map(|r| r.drug).collect();
        for code in item.codes_in(&k.systems.rxnorm) {
            match k.rxnorm_concept(code) {
                Some(RxnormConcept::Ingredient(drug)) => drugs.push(drug),
                Some(RxnormConcept::Product(p)) => drugs.extend(p.drugs()),
                None => {}
            }
        }
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

/// What the codings of a concept (and of its Medication's ingredients) say.
struct Coded<'t> {
    found: Vec<Recognised>,
    /// The first recognised coding: when there is one, the codes decide.
    decided_by: Option<CodeName<'t>>,
    /// RxNorm codes the knowledge base does not hold.
    unknown: Vec<&'t str>,
}

/// The drugs the recognised codings name. An ingredient or ATC code shows no strength or route, so
/// the text's are taken for the same drug; a product's come from its RxNorm name, and a text that
/// gives the drug another strength is noted.
fn read_codes<'t>(
    concepts: impl Iterator<Item = &'t CodeableConcept>,
    k: &Knowledge,
    texts: &[&str],
    from_text: &[Recognised],
    notes: &mut Vec<Note>,
) -> Coded<'t> {
    let mut found: Vec<Recognised> = Vec::new();
    let mut decided_by: Option<CodeName<'t>> = None;
    let mut unknown: Vec<&'t str> = Vec::new();
    for coding in concepts.flat_map(|c| &c.coding) {
        let (Some(system), Some(code)) = (coding.system.as_deref(), coding.code.as_deref()) else {
            continue;
        };
        if k.systems.rxnorm.iter().any(|s| s == system) {
            match k.rxnorm_concept(code) {
                Some(RxnormConcept::Ingredient(drug)) => {
                    decided_by.get_or_insert(CodeName::RxNorm(code));
                    add(&mut found, from_code_and_text(drug, k, texts, from_text));
                }
                Some(RxnormConcept::Product(product)) => {
                    decided_by.get_or_insert(CodeName::RxNorm(code));
                    if product.unlisted_antidepressant {
                        notes.push((
                            DiagnosticKind::UnlistedAntidepressant,
                            format!("RxNorm {code} ({}) is an antidepressant the knowledge base does not list; not counted", product.name),
                        ));
                    }
                    for &shown in &product.contents {
                        let drug = shown.drug;
                        // A name with no strength (an ingredient in a value set of ingredients) is
                        // read as an ingredient code is.
                        let r = match shown.strength {
                            Some(_) => shown,
                            None => Recognised {
                                min_adequate_override: shown.min_adequate_override,
                                ..from_code_and_text(drug, k, texts, from_text)
                            },
                        };
                        let text_strength = from_text
                            .iter()
                            .filter(|t| t.drug == drug)
                            .find_map(|t| t.strength);
                        if let (Some(coded), Some(written)) = (r.strength, text_strength) {
                            if coded != written {
                                notes.push((
                                    DiagnosticKind::CodeTextConflict,
                                    format!(
                                        "its text gives {} another strength than its RxNorm code {code} ({}); the code decides",
                                        k.drug(drug).name,
                                        product.name
                                    ),
                                ));
                            }
                        }
                        add(&mut found, r);
                    }
                }
                None => unknown.push(code),
            }
        } else if k.systems.atc.iter().any(|s| s == system) {
            if let Some(drug) = k.drug_by_atc(code) {
                decided_by.get_or_insert(CodeName::Atc(code));
                add(&mut found, from_code_and_text(drug, k, texts, from_text));
            } else if k.is_unlisted_antidepressant_atc(code) {
                decided_by.get_or_insert(CodeName::Atc(code));
                notes.push((
                    DiagnosticKind::UnlistedAntidepressant,
                    format!(
                        "{} is an antidepressant the knowledge base does not list; not counted",
                        CodeName::Atc(code)
                    ),
                ));
            }
            // Any other ATC code decides nothing: drugs.toml does not give every drug its ATC code.
        }
    }

    Coded {
        found,
        decided_by,
        unknown,
    }
}

/// The codes decide; a text that names another drug is named in a diagnostic, not followed.
fn note_other_drugs_in_text(
    code: CodeName<'_>,
    found: &[Recognised],
    from_text: &[Recognised],
    k: &Knowledge,
    notes: &mut Vec<Note>,
) {
    let mut others: Vec<&str> = Vec::new();
    for t in from_text.iter() {
        let name = k.drug(t.drug).name.as_str();
        if !found.iter().any(|f| f.drug == t.drug) && !others.contains(&name) {
            others.push(name);
        }
    }
    if !others.is_empty() {
        let coded = if found.is_empty() {
            "none of the drugs screening tracks".to_owned()
        } else {
            found
                .iter()
                .map(|f| k.drug(f.drug).name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        notes.push((
            DiagnosticKind::CodeTextConflict,
            format!(
                "its text names {}, but its {code} is {coded}; the code decides",
                others.join(", ")
            ),
        ));
    }
}

/// The code that decided, for a diagnostic: only codes the knowledge base holds are quoted.
#[derive(Debug, Clone, Copy)]
enum CodeName<'t> {
    RxNorm(&'t str),
    Atc(&'t str),
}

impl std::fmt::Display for CodeName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodeName::RxNorm(code) => write!(f, "RxNorm code {code}"),
            // An ATC code is matched by its prefix, so what follows the prefix is the sender's.
            CodeName::Atc(code)
                if code.len() <= 7 && code.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                write!(f, "ATC code {code}")
            }
            CodeName::Atc(_) => write!(f, "ATC code"),
        }
    }
}

/// RxNorm codes the knowledge base does not hold, as a diagnostic names them ("RxNorm code 123 is"):
/// a code that is not a number is not quoted (it would be the sender's text), and a long list is cut.
fn unknown_codes(codes: &[&str]) -> String {
    const SHOWN: usize = 3;
    let is_number =
        |c: &&str| !c.is_empty() && c.len() <= 12 && c.bytes().all(|b| b.is_ascii_digit());
    let mut numbers: Vec<&str> = codes.iter().copied().filter(is_number).collect();
    numbers.sort_unstable();
    numbers.dedup();
    let malformed = codes.iter().any(|c| !is_number(c));
    match (numbers.as_slice(), malformed) {
        ([one], false) => format!("RxNorm code {one} is"),
        ([], _) => "an RxNorm code that is not a number is".to_owned(),
        _ => {
            let mut parts: Vec<String> = numbers
                .iter()
                .take(SHOWN)
                .map(|c| (*c).to_owned())
                .collect();
            if numbers.len() > SHOWN {
                parts.push(format!("{} more", numbers.len() - SHOWN));
            }
            if malformed {
                parts.push("a code that is not a number".to_owned());
            }
            format!("RxNorm codes {} are", parts.join(", "))
        }
    }
}

fn add(found: &mut Vec<Recognised>, r: Recognised) {
    if let Some(existing) = found.iter_mut().find(|x| x.drug == r.drug) {
        existing.strength = existing.strength.or(r.strength);
        existing.route_shown |= r.route_shown;
        existing.min_adequate_override = existing.min_adequate_override.or(r.min_adequate_override);
    } else {
        found.push(r);
    }
}

/// A drug named by an ingredient or ATC code, which shows no strength or route: the text's, when the
/// text names the same drug.
fn from_code_and_text(
    drug: DrugId,
    k: &Knowledge,
    texts: &[&str],
    from_text: &[Recognised],
) -> Recognised {
    // The same drug may be named in several texts ("lisinopril", "lisinopril 10 MG Oral Tablet").
    let text_hits = || from_text.iter().filter(|r| r.drug == drug);
    let route_in_text = k
        .drug(drug)
        .required_route
        .as_ref()
        .is_some_and(|route| texts.iter().any(|t| text::text_contains_phrase(t, route)));
    Recognised {
        drug,
        strength: text_hits().find_map(|r| r.strength),
        route_shown: route_in_text || text_hits().any(|r| r.route_shown),
        min_adequate_override: text_hits().find_map(|r| r.min_adequate_override),
    }
}
