//! The clinical knowledge base: drugs, code sets, the screening policy and the hint texts, as versioned
//! TOML files in `knowledge/`, compiled into the binary and replaceable file by file from a directory.

mod build;
pub mod files;
mod products;
mod reading;
pub mod text;

use crate::ratio::Ratio;
use files::*;
pub use files::{FlagCodes, HintDef, HintSeverity, Role, SuggestionDef};
pub use products::{ProductInfo, RxnormConcept};
pub use reading::Named;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;

/// The knowledge indexes hash with FNV-1a (see [`crate::fnv`]).
type Fnv = crate::fnv::Fnv1a;

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;
use text::Token;

/// The knowledge files compiled into the binary, by file name.
pub const EMBEDDED: [(&str, &str); 5] = [
    (
        "drugs.toml",
        include_str!("../../../../knowledge/drugs.toml"),
    ),
    (
        "codes.toml",
        include_str!("../../../../knowledge/codes.toml"),
    ),
    (
        "policy.toml",
        include_str!("../../../../knowledge/policy.toml"),
    ),
    (
        "hints.toml",
        include_str!("../../../../knowledge/hints.toml"),
    ),
    (
        "products.toml",
        include_str!("../../../../knowledge/products.toml"),
    ),
];

/// Hint codes the engine evaluates; `hints.toml` must define each (and no other).
pub const HINT_CODES: [&str; 11] = [
    "suicide-risk",
    "bipolar-spectrum",
    "maoi-diet",
    "maoi-washout",
    "uncontrolled-hypertension",
    "vascular-contraindication",
    "psychosis-history",
    "substance-use-disorder",
    "seizure-disorder",
    "lithium-renal",
    "pregnancy",
];

const CONDITION_SETS: [&str; 10] = [
    "depression",
    "bipolar",
    "hypomania",
    "suicidality",
    "vascular",
    "psychosis",
    "psychotic_depression",
    "substance_use",
    "seizure",
    "pregnancy",
];

#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("cannot read knowledge file {file}: {reason}")]
    Read { file: String, reason: String },
    #[error("knowledge file {file} is not valid: {reason}")]
    Invalid { file: String, reason: String },
}

fn invalid(file: &str, reason: impl Into<String>) -> KnowledgeError {
    KnowledgeError::Invalid {
        file: file.to_owned(),
        reason: reason.into(),
    }
}

/// Index of a drug in [`Knowledge::drugs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DrugId(pub u16);

#[derive(Debug, Clone, Copy)]
pub enum HypnoticLimit {
    Below(Ratio),
    AtMost(Ratio),
}

impl HypnoticLimit {
    pub fn is_hypnotic(self, daily_mg: Ratio) -> bool {
        match self {
            HypnoticLimit::Below(limit) => daily_mg < limit,
            HypnoticLimit::AtMost(limit) => daily_mg <= limit,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DrugInfo {
    pub name: String,
    pub role: Role,
    pub class: Option<String>,
    pub min_adequate_daily_mg: Option<Ratio>,
    pub usual_max_daily_mg: Option<Ratio>,
    pub maoi_washout_days: Option<u32>,
    pub maoi: bool,
    pub maoi_diet_free_max_daily_mg: Option<Ratio>,
    pub required_route: Option<Vec<String>>,
    pub hypnotic: Option<HypnoticLimit>,
    pub rxnorm: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CombinationInfo {
    pub ingredients: Vec<DrugId>,
    pub min_adequate_daily_mg: HashMap<DrugId, Ratio>,
}

/// What a name in product text stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameTarget {
    Drug { drug: DrugId, brand: bool },
    Combination(usize),
}

#[derive(Debug, Clone)]
struct NameEntry {
    rest: Vec<String>,
    target: NameTarget,
}

/// Which condition sets (of `codes.toml`) a concept belongs to: one bit per set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConditionSets(u64);

/// One condition set of `codes.toml`, by position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConditionSetId(usize);

impl ConditionSets {
    pub fn contains(self, id: ConditionSetId) -> bool {
        self.0 & (1 << id.0) != 0
    }
}

/// A bit per set in [`ConditionSets`].
const MAX_CONDITION_SETS: usize = 64;

/// ICD-10 codes are looked up by their first 8 characters at most.
const ICD_PREFIX_MAX: usize = 8;

#[derive(Debug, Clone)]
pub struct ProcedureIndex {
    snomed: HashSet<String, BuildHasherDefault<Fnv>>,
    cpt: HashSet<String, BuildHasherDefault<Fnv>>,
    text: Vec<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct Knowledge {
    pub drugs: Vec<DrugInfo>,
    pub combinations: Vec<CombinationInfo>,
    pub systems: Systems,
    pub observations: Observations,
    pub flag: files::FlagCodes,
    pub policy: PolicyFile,
    pub hints: Vec<HintDef>,
    pub suggestions: Vec<SuggestionDef>,
    /// What the treatment names of `affects` stand for among drugs.
    pub treatments: Vec<files::TreatmentDef>,
    pub ruleset_version: String,
    /// Condition sets by normalised ICD-10 prefix, and by SNOMED CT code.
    icd10_prefix_sets: FastMap<String, ConditionSets>,
    /// In chars: longer prefixes of a code need not be looked up.
    icd10_longest_prefix: usize,
    snomed_sets: FastMap<String, ConditionSets>,
    condition_ids: FastMap<String, usize>,
    procedures: FastMap<String, ProcedureIndex>,
    by_rxnorm: FastMap<String, DrugId>,
    products: products::ProductIndex,
    by_atc: FastMap<String, DrugId>,
    by_atc_prefix: Vec<(String, DrugId)>,
    by_first_word: FastMap<String, Vec<NameEntry>>,
    unlisted_antidepressant_atc: String,
    pub scale_max: ScaleMax,
}

/// A recognised name in tokenised text: what it stands for and the token after it.
#[derive(Debug, Clone, Copy)]
pub struct NameMatch {
    pub target: NameTarget,
    pub end: usize,
}

impl Knowledge {
    pub fn drug(&self, id: DrugId) -> &DrugInfo {
        &self.drugs[usize::from(id.0)]
    }

    pub fn drug_by_rxnorm(&self, code: &str) -> Option<DrugId> {
        self.by_rxnorm.get(code).copied()
    }

    pub fn drug_by_atc(&self, code: &str) -> Option<DrugId> {
        self.by_atc.get(code).copied().or_else(|| {
            self.by_atc_prefix
                .iter()
                .find(|(prefix, _)| code.starts_with(prefix.as_str()))
                .map(|(_, id)| *id)
        })
    }

    /// An ATC code in the antidepressant group (N06A) that no drug entry knows.
    pub fn is_unlisted_antidepressant_atc(&self, code: &str) -> bool {
        code.starts_with(self.unlisted_antidepressant_atc.as_str())
            && self.drug_by_atc(code).is_none()
    }

    /// The drug or combination named at `tokens[at]`, if any.
    pub fn name_at(&self, tokens: &[Token<'_>], at: usize) -> Option<NameMatch> {
        let Token::Word(first) = &tokens[at] else {
            return None;
        };
        let entries = self.by_first_word.get(*first)?;
        entries.iter().find_map(|e| {
            let end = at + 1 + e.rest.len();
            let rest_matches = tokens.get(at + 1..end).is_some_and(|window| {
                window
                    .iter()
                    .zip(&e.rest)
                    .all(|(t, w)| matches!(t, Token::Word(x) if *x == w.as_str()))
            });
            rest_matches.then_some(NameMatch {
                target: e.target,
                end,
            })
        })
    }

    /// The condition sets a coded concept falls in (ICD-10 by prefix, SNOMED CT exactly), worked out
    /// once per diagnosis so that each hint rule asks a bit test, not a code search.
    pub fn condition_sets_of(
        &self,
        concept: &crate::fhir::datatypes::CodeableConcept,
    ) -> ConditionSets {
        let mut sets = ConditionSets::default();
        for c in &concept.coding {
            let (Some(system), Some(code)) = (c.system.as_deref(), c.code.as_deref()) else {
                continue;
            };
            if self.systems.icd10.iter().any(|s| s == system) {
                // Every prefix of the code, dots dropped: F33.1 is in the sets of F, F3, F33, F331.
                // Each byte is taken as a char, in a buffer on the stack as the code is read.
                let mut prefix = [0u8; 2 * ICD_PREFIX_MAX];
                let mut len = 0;
                let longest = self.icd10_longest_prefix.min(ICD_PREFIX_MAX);
                for b in code.bytes().filter(|b| *b != b'.').take(longest) {
                    len += char::from(b.to_ascii_uppercase())
                        .encode_utf8(&mut prefix[len..])
                        .len();
                    let text = std::str::from_utf8(&prefix[..len]).expect("whole chars");
                    if let Some(found) = self.icd10_prefix_sets.get(text) {
                        sets.0 |= found.0;
                    }
                }
            } else if self.systems.snomed.iter().any(|s| s == system) {
                if let Some(found) = self.snomed_sets.get(code) {
                    sets.0 |= found.0;
                }
            }
        }
        sets
    }

    /// A named condition set, for testing [`ConditionSets`]; `None` if the codes file has no such set.
    pub fn condition_set(&self, name: &str) -> Option<ConditionSetId> {
        self.condition_ids.get(name).map(|&i| ConditionSetId(i))
    }

    /// Whether a coded concept falls in a named condition set.
    pub fn in_condition_set(
        &self,
        set: &str,
        concept: &crate::fhir::datatypes::CodeableConcept,
    ) -> bool {
        self.condition_set(set)
            .is_some_and(|id| self.condition_sets_of(concept).contains(id))
    }

    /// Whether a procedure code or its text names the given procedure (`ect`, `rtms`).
    pub fn is_procedure(
        &self,
        set: &str,
        concept: &crate::fhir::datatypes::CodeableConcept,
    ) -> bool {
        let Some(index) = self.procedures.get(set) else {
            return false;
        };
        let coded = concept
            .coding
            .iter()
            .any(|c| match (c.system.as_deref(), c.code.as_deref()) {
                (Some(system), Some(code)) => {
                    (self.systems.snomed.iter().any(|s| s == system) && index.snomed.contains(code))
                        || (self.systems.cpt.iter().any(|s| s == system)
                            && index.cpt.contains(code))
                }
                _ => false,
            });
        coded
            || concept.texts().any(|t| {
                let lowered = text::lower(t);
                let tokens = text::tokenize(&lowered);
                index
                    .text
                    .iter()
                    .any(|phrase| text::contains_phrase(&tokens, phrase))
            })
    }

    /// The treatment names (of hints' `affects`) a drug is: what an order of it is cautioned by.
    pub fn treatments_of(&self, id: DrugId) -> Vec<&str> {
        let drug = self.drug(id);
        self.treatments
            .iter()
            .filter(|t| {
                t.roles.contains(&drug.role)
                    || drug.class.as_ref().is_some_and(|c| t.classes.contains(c))
                    || t.drugs.contains(&drug.name)
            })
            .map(|t| t.name.as_str())
            .collect()
    }

    pub fn hint(&self, code: &str) -> &HintDef {
        self.hints
            .iter()
            .find(|h| h.code == code)
            .expect("hints.toml is validated to define every engine hint code")
    }
}

fn normalize_icd(code: &str) -> String {
    code.chars()
        .filter(|c| *c != '.')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}
