//! RxNorm product codes (`products.toml`): which drugs of `drugs.toml` a product contains, so that a
//! product code ("sertraline 100 MG Oral Tablet", 312938) is recognised with no text at all.

use super::files::{ProductsFile, ValueSetSource};
use super::{DrugId, FastMap, Knowledge, KnowledgeError, Named, invalid};

const FILE: &str = "products.toml";

/// A product the knowledge base knows by its RxNorm code.
#[derive(Debug, Clone)]
pub struct ProductInfo {
    /// The RxNorm name ("sertraline 100 MG Oral Tablet").
    pub name: String,
    /// Each tracked drug it contains (every ingredient of a combination), with the strength and route
    /// its name shows, read once at load time; empty for a product screening does not track.
    pub contents: Vec<Named>,
    /// Listed in a value set of antidepressants, yet naming no drug of `drugs.toml`.
    pub unlisted_antidepressant: bool,
}

impl ProductInfo {
    pub fn drugs(&self) -> impl Iterator<Item = DrugId> + '_ {
        self.contents.iter().map(|n| n.drug)
    }
}

/// What a known RxNorm code stands for.
#[derive(Debug, Clone, Copy)]
pub enum RxnormConcept<'k> {
    /// An ingredient code of `drugs.toml`: names the drug, shows no strength or route.
    Ingredient(DrugId),
    Product(&'k ProductInfo),
}

/// The products of a knowledge base, by RxNorm code.
#[derive(Debug, Clone, Default)]
pub(super) struct ProductIndex {
    products: Vec<ProductInfo>,
    by_rxnorm: FastMap<String, usize>,
}

impl Knowledge {
    /// The ingredient or product an RxNorm code stands for; `None` for a code the knowledge base
    /// does not hold.
    pub fn rxnorm_concept(&self, code: &str) -> Option<RxnormConcept<'_>> {
        if let Some(drug) = self.drug_by_rxnorm(code) {
            return Some(RxnormConcept::Ingredient(drug));
        }
        let index = &self.products;
        let at = *index.by_rxnorm.get(code)?;
        Some(RxnormConcept::Product(&index.products[at]))
    }

    /// How many product codes the knowledge base holds.
    pub fn product_count(&self) -> usize {
        self.products.products.len()
    }

    /// Indexes `products.toml`, after `drugs.toml`: every entry is checked against the drugs its
    /// RxNorm name names, so that the table cannot drift from the drug names it was derived with.
    pub(super) fn add_products(&mut self, file: ProductsFile) -> Result<(), KnowledgeError> {
        let ids: FastMap<&str, DrugId> = self
            .drugs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                (
                    d.name.as_str(),
                    DrugId(u16::try_from(i).expect("checked in add_drugs")),
                )
            })
            .collect();
        let mut index = ProductIndex::default();
        for set in &file.value_set {
            check_source(set)?;
            for p in &set.products {
                let code = p.rxnorm.as_str();
                if code.is_empty() || code.len() > 12 || !code.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid(
                        FILE,
                        format!(
                            "RxNorm code {code:?} in value set {:?} is not a number",
                            set.title
                        ),
                    ));
                }
                if p.name.trim().is_empty() || p.name.chars().any(char::is_control) {
                    return Err(invalid(FILE, format!("RxNorm {code} needs a name")));
                }
                let mut drugs = Vec::with_capacity(p.drugs.len());
                for name in &p.drugs {
                    let drug = *ids.get(name.as_str()).ok_or_else(|| {
                        invalid(
                            FILE,
                            format!(
                                "RxNorm {code} lists `{name}`, which drugs.toml does not define"
                            ),
                        )
                    })?;
                    if drugs.contains(&drug) {
                        return Err(invalid(FILE, format!("RxNorm {code} lists `{name}` twice")));
                    }
                    drugs.push(drug);
                }
                let mut read = Vec::new();
                self.read_text(&p.name, &mut String::new(), &mut read);
                let mut named: Vec<DrugId> = read.iter().map(|n| n.drug).collect();
                named.sort_unstable();
                named.dedup();
                let mut sorted = drugs.clone();
                sorted.sort_unstable();
                if named != sorted {
                    let names = |ds: &[DrugId]| {
                        ds.iter()
                            .map(|d| self.drug(*d).name.as_str())
                            .collect::<Vec<_>>()
                    };
                    return Err(invalid(
                        FILE,
                        format!(
                            "RxNorm {code} ({:?}) names {:?} in drugs.toml's names but lists {:?}; \
                             regenerate the file (scripts/products-from-value-sets) or correct the entry",
                            p.name,
                            names(&self.drugs_named(&p.name)),
                            names(&drugs),
                        ),
                    ));
                }
                if let Some(ingredient) = self.drug_by_rxnorm(code) {
                    if drugs != [ingredient] {
                        return Err(invalid(
                            FILE,
                            format!(
                                "RxNorm {code} is the ingredient code of `{}` in drugs.toml but lists other drugs",
                                self.drug(ingredient).name
                            ),
                        ));
                    }
                }
                if index
                    .by_rxnorm
                    .insert(p.rxnorm.clone(), index.products.len())
                    .is_some()
                {
                    return Err(invalid(FILE, format!("RxNorm {code} is listed twice")));
                }
                // A product that holds exactly a combination's ingredients takes its minimum doses.
                let combination = self.combinations.iter().find(|c| {
                    drugs.len() > 1
                        && c.ingredients.len() == drugs.len()
                        && c.ingredients.iter().all(|d| drugs.contains(d))
                });
                let contents = drugs
                    .iter()
                    .map(|&drug| {
                        let shown = || read.iter().filter(|n| n.drug == drug);
                        Named {
                            drug,
                            strength: shown().find_map(|n| n.strength),
                            route_shown: shown().any(|n| n.route_shown),
                            min_adequate_override: combination
                                .and_then(|c| c.min_adequate_daily_mg.get(&drug).copied())
                                .or_else(|| shown().find_map(|n| n.min_adequate_override)),
                        }
                    })
                    .collect();
                index.products.push(ProductInfo {
                    name: p.name.clone(),
                    unlisted_antidepressant: set.antidepressants && drugs.is_empty(),
                    contents,
                });
            }
        }
        self.products = index;
        Ok(())
    }
}

/// A value set says where it was read: all of OID, version, repository, path and commit for a
/// published one, or `source` for a site's own list.
fn check_source(set: &ValueSetSource) -> Result<(), KnowledgeError> {
    if set.title.trim().is_empty() {
        return Err(invalid(FILE, "a value set needs a title"));
    }
    let published = [&set.oid, &set.version, &set.repo, &set.path, &set.commit];
    let complete = published
        .iter()
        .all(|f| f.as_deref().is_some_and(|v| !v.trim().is_empty()));
    if !complete && set.source.as_deref().is_none_or(|s| s.trim().is_empty()) {
        return Err(invalid(
            FILE,
            format!(
                "value set {:?} must name its oid, version, repo, path and commit, or give a source",
                set.title
            ),
        ));
    }
    if let Some(commit) = &set.commit {
        if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                FILE,
                format!("value set {:?}: commit must be 40 hex digits", set.title),
            ));
        }
    }
    Ok(())
}
