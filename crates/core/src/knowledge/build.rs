//! Building the knowledge base from the texts of its five files: parsing, checking every rule a
//! file must keep (a site's override is refused with the file and the problem), and indexing.

use super::*;

impl Knowledge {
    /// The knowledge compiled into the binary, read and checked once per process.
    pub fn embedded() -> Knowledge {
        static EMBEDDED_KNOWLEDGE: std::sync::OnceLock<Knowledge> = std::sync::OnceLock::new();
        EMBEDDED_KNOWLEDGE
            .get_or_init(|| {
                Knowledge::from_texts(&EMBEDDED.map(|(name, text)| (name, text.to_owned())))
                    .expect("the embedded knowledge files are validated by the test suite")
            })
            .clone()
    }

    /// The embedded files, each replaced by the site's text where `site` has one: `site(name)`
    /// gives the text of the site's file of that name, `None` when the site keeps the embedded one.
    /// Reading the site's files is the caller's (the service reads a directory).
    pub fn with_overrides(
        mut site: impl FnMut(&str) -> Result<Option<String>, KnowledgeError>,
    ) -> Result<Knowledge, KnowledgeError> {
        let mut texts = Vec::new();
        for (name, embedded) in EMBEDDED {
            let text = site(name)?.unwrap_or_else(|| embedded.to_owned());
            texts.push((name, text));
        }
        let texts: [(&str, String); 5] = texts.try_into().expect("five files");
        Knowledge::from_texts(&texts)
    }

    /// The knowledge base from the texts of its five files, in the order of [`EMBEDDED`].
    pub fn from_texts(texts: &[(&str, String); 5]) -> Result<Knowledge, KnowledgeError> {
        fn parse<T: serde::de::DeserializeOwned>(
            name: &str,
            text: &str,
        ) -> Result<T, KnowledgeError> {
            toml::from_str(text).map_err(|e| invalid(name, e.to_string().replace('\n', " ")))
        }
        let drugs: DrugsFile = parse("drugs.toml", &texts[0].1)?;
        let codes: CodesFile = parse("codes.toml", &texts[1].1)?;
        let policy: PolicyFile = parse("policy.toml", &texts[2].1)?;
        let hints: HintsFile = parse("hints.toml", &texts[3].1)?;
        let product_file: ProductsFile = parse("products.toml", &texts[4].1)?;
        validate_policy(&policy)?;
        validate_hints(&hints)?;
        validate_treatments(&hints, &drugs)?;
        for set in CONDITION_SETS {
            if !codes.conditions.contains_key(set) {
                return Err(invalid(
                    "codes.toml",
                    format!("condition set `{set}` is missing"),
                ));
            }
        }
        if codes.systems.snomed.is_empty() {
            return Err(invalid(
                "codes.toml",
                "[systems] snomed must name at least one system URI (the Flag's code uses the first)".to_owned(),
            ));
        }
        if codes.conditions.len() > MAX_CONDITION_SETS {
            return Err(invalid(
                "codes.toml",
                format!("at most {MAX_CONDITION_SETS} condition sets are supported"),
            ));
        }
        for set in ["ect", "rtms"] {
            if !codes.procedures.contains_key(set) {
                return Err(invalid(
                    "codes.toml",
                    format!("procedure set `{set}` is missing"),
                ));
            }
        }
        let version = format!(
            "{}+{:016x}",
            policy.meta.version,
            fnv1a(texts.iter().map(|(_, t)| t.as_str()))
        );
        let icd10_prefix_sets = set_masks(
            codes
                .conditions
                .values()
                .map(|v| v.icd10.iter().map(|c| normalize_icd(c)).collect::<Vec<_>>()),
        );
        let mut knowledge = Knowledge {
            drugs: Vec::new(),
            combinations: Vec::new(),
            systems: codes.systems.clone(),
            observations: codes.observations.clone(),
            flag: codes.flag.clone(),
            policy,
            hints: hints.hint,
            suggestions: hints.suggestion,
            treatments: hints.treatment,
            ruleset_version: version,
            icd10_longest_prefix: icd10_prefix_sets
                .keys()
                .map(|k| k.chars().count())
                .max()
                .unwrap_or(0),
            icd10_prefix_sets,
            snomed_sets: set_masks(codes.conditions.values().map(|v| v.snomed.clone())),
            condition_ids: codes
                .conditions
                .keys()
                .enumerate()
                .map(|(i, name)| (name.clone(), i))
                .collect(),
            procedures: codes
                .procedures
                .iter()
                .map(|(k, v)| {
                    let index = ProcedureIndex {
                        snomed: v.snomed.iter().cloned().collect(),
                        cpt: v.cpt.iter().cloned().collect(),
                        text: v.text.iter().map(|t| text::words(t)).collect(),
                    };
                    (k.clone(), index)
                })
                .collect(),
            by_rxnorm: FastMap::default(),
            products: products::ProductIndex::default(),
            by_atc: FastMap::default(),
            by_atc_prefix: Vec::new(),
            by_first_word: FastMap::default(),
            unlisted_antidepressant_atc: codes.drug_groups.antidepressant_atc_prefix.clone(),
            scale_max: codes.scale_max.clone(),
        };
        knowledge.add_drugs(drugs)?;
        knowledge.add_products(product_file)?;
        Ok(knowledge)
    }

    fn add_drugs(&mut self, file: DrugsFile) -> Result<(), KnowledgeError> {
        let f = "drugs.toml";
        let mut ids = HashMap::new();
        for (i, d) in file.drug.iter().enumerate() {
            let id = DrugId(u16::try_from(i).map_err(|_| invalid(f, "too many drugs"))?);
            if ids.insert(d.name.clone(), id).is_some() {
                return Err(invalid(f, format!("drug `{}` is defined twice", d.name)));
            }
            if matches!(d.role, Role::Antidepressant | Role::Augmentation) && d.class.is_none() {
                return Err(invalid(f, format!("drug `{}` needs a class", d.name)));
            }
            let mg = |v: Option<f64>, what: &str| -> Result<Option<Ratio>, KnowledgeError> {
                v.map(|x| {
                    dose(x).ok_or_else(|| {
                        invalid(f, format!("`{}`: {what} must be a positive number", d.name))
                    })
                })
                .transpose()
            };
            let hypnotic = match (d.hypnotic_below_daily_mg, d.hypnotic_at_most_daily_mg) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        f,
                        format!("`{}`: give one hypnotic limit, not two", d.name),
                    ));
                }
                (Some(x), None) => {
                    mg(Some(x), "hypnotic_below_daily_mg")?.map(HypnoticLimit::Below)
                }
                (None, Some(x)) => {
                    mg(Some(x), "hypnotic_at_most_daily_mg")?.map(HypnoticLimit::AtMost)
                }
                (None, None) => None,
            };
            self.drugs.push(DrugInfo {
                name: d.name.clone(),
                role: d.role,
                class: d.class.clone(),
                min_adequate_daily_mg: mg(
                    d.min_adequate_daily_dose_mg,
                    "min_adequate_daily_dose_mg",
                )?,
                usual_max_daily_mg: mg(d.usual_max_daily_dose_mg, "usual_max_daily_dose_mg")?,
                maoi_washout_days: d.maoi_washout_days,
                maoi: d.maoi,
                maoi_diet_free_max_daily_mg: mg(
                    d.maoi_diet_free_max_daily_mg,
                    "maoi_diet_free_max_daily_mg",
                )?,
                required_route: d.required_route.as_deref().map(text::words),
                hypnotic,
                rxnorm: d.rxnorm.first().cloned(),
            });
            for code in &d.rxnorm {
                if self.by_rxnorm.insert(code.clone(), id).is_some() {
                    return Err(invalid(
                        f,
                        format!("RxNorm code {code} is given to two drugs"),
                    ));
                }
            }
            for code in &d.atc {
                self.by_atc.insert(code.clone(), id);
            }
            for prefix in &d.atc_prefix {
                self.by_atc_prefix.push((prefix.clone(), id));
            }
            for name in &d.names {
                self.add_name(
                    name,
                    NameTarget::Drug {
                        drug: id,
                        brand: false,
                    },
                )?;
            }
            for brand in &d.brands {
                self.add_name(
                    brand,
                    NameTarget::Drug {
                        drug: id,
                        brand: true,
                    },
                )?;
            }
        }
        for (i, c) in file.combination.iter().enumerate() {
            let mut ingredients = Vec::new();
            for name in &c.ingredients {
                let id = ids.get(name).ok_or_else(|| {
                    invalid(f, format!("combination ingredient `{name}` is not a drug"))
                })?;
                ingredients.push(*id);
            }
            let mut min = HashMap::new();
            for (name, value) in &c.min_adequate_daily_dose_mg {
                let id = ids
                    .get(name)
                    .filter(|id| ingredients.contains(id))
                    .ok_or_else(|| {
                        invalid(
                            f,
                            format!("dose override for `{name}`, which is not an ingredient"),
                        )
                    })?;
                let value = dose(*value).ok_or_else(|| {
                    invalid(f, format!("dose override for `{name}` must be positive"))
                })?;
                min.insert(*id, value);
            }
            self.combinations.push(CombinationInfo {
                ingredients,
                min_adequate_daily_mg: min,
            });
            for name in c.brands.iter().chain(&c.names) {
                self.add_name(name, NameTarget::Combination(i))?;
            }
        }
        Ok(())
    }

    fn add_name(&mut self, name: &str, target: NameTarget) -> Result<(), KnowledgeError> {
        let mut words = text::words(name);
        if words.is_empty() {
            return Err(invalid(
                "drugs.toml",
                format!("name {name:?} has no letters"),
            ));
        }
        let first = words.remove(0);
        let entries = self.by_first_word.entry(first).or_default();
        if entries
            .iter()
            .any(|e| e.rest == words && e.target != target)
        {
            return Err(invalid(
                "drugs.toml",
                format!("name {name:?} is given to two drugs"),
            ));
        }
        entries.push(NameEntry {
            rest: words,
            target,
        });
        // Longest names first, so "lithium carbonate" wins over "lithium".
        entries.sort_by_key(|e| std::cmp::Reverse(e.rest.len()));
        Ok(())
    }
}

fn dose(value: f64) -> Option<Ratio> {
    if !(value.is_finite() && value > 0.0) {
        return None;
    }
    // f64's Display is the shortest text that reads back as the same number: the literal in the file.
    Ratio::parse_decimal(&value.to_string()).ok()
}

/// Whether an ICD-10 code starts with a normalised prefix, ignoring dots and case, without allocating.
/// For each code, the sets (by position) that list it.
fn set_masks(sets: impl Iterator<Item = Vec<String>>) -> FastMap<String, ConditionSets> {
    let mut masks: FastMap<String, ConditionSets> = FastMap::default();
    for (i, codes) in sets.enumerate() {
        for code in codes {
            masks.entry(code).or_default().0 |= 1 << i;
        }
    }
    masks
}

fn validate_policy(p: &PolicyFile) -> Result<(), KnowledgeError> {
    let f = "policy.toml";
    if !(4..=8).contains(&p.trial.min_duration_weeks) {
        return Err(invalid(f, "trial.min_duration_weeks must be 4 to 8"));
    }
    if !(1..=100).contains(&p.outcome.response_improvement_percent) {
        return Err(invalid(
            f,
            "outcome.response_improvement_percent must be 1 to 100",
        ));
    }
    if p.trial.dose_hold_days == 0 || p.trial.implausible_dose_factor == 0 {
        return Err(invalid(
            f,
            "trial.dose_hold_days and trial.implausible_dose_factor must be positive",
        ));
    }
    if p.trial.max_supply_days == 0 || p.record.max_resources == 0 {
        return Err(invalid(
            f,
            "trial.max_supply_days and record.max_resources must be positive",
        ));
    }
    if p.outcome.switch_after_days < p.course.co_start_days {
        // Otherwise a drug of the same course would count as a switch from its partner.
        return Err(invalid(
            f,
            "outcome.switch_after_days must be at least course.co_start_days",
        ));
    }
    if p.episode.lookback_months == 0 {
        return Err(invalid(f, "episode.lookback_months must be positive"));
    }
    if p.episode.remission_below > p.episode.relapse_at_least {
        return Err(invalid(
            f,
            "episode.remission_below must not exceed episode.relapse_at_least",
        ));
    }
    Ok(())
}

fn validate_hints(h: &HintsFile) -> Result<(), KnowledgeError> {
    let f = "hints.toml";
    for code in HINT_CODES {
        if h.hint.iter().filter(|d| d.code == code).count() != 1 {
            return Err(invalid(
                f,
                format!("hint `{code}` must be defined exactly once"),
            ));
        }
    }
    if let Some(extra) = h
        .hint
        .iter()
        .find(|d| !HINT_CODES.contains(&d.code.as_str()))
    {
        return Err(invalid(
            f,
            format!("hint `{}` is not one the engine evaluates", extra.code),
        ));
    }
    let suggestions: HashSet<&str> = h.suggestion.iter().map(|s| s.code.as_str()).collect();
    if suggestions.len() != h.suggestion.len() {
        return Err(invalid(f, "a suggestion code is defined twice"));
    }
    for hint in &h.hint {
        if let Some(bad) = hint
            .contraindicates
            .iter()
            .find(|c| !suggestions.contains(c.as_str()))
        {
            return Err(invalid(
                f,
                format!(
                    "hint `{}` contraindicates unknown suggestion `{bad}`",
                    hint.code
                ),
            ));
        }
    }
    Ok(())
}

/// Each treatment named once, and every drug and class it lists one that `drugs.toml` has.
fn validate_treatments(h: &HintsFile, drugs: &DrugsFile) -> Result<(), KnowledgeError> {
    let f = "hints.toml";
    let mut names = HashSet::new();
    for t in &h.treatment {
        if t.name == "all" || !names.insert(t.name.as_str()) {
            return Err(invalid(
                f,
                format!("treatment `{}` is reserved or defined twice", t.name),
            ));
        }
        if let Some(bad) = t
            .drugs
            .iter()
            .find(|name| !drugs.drug.iter().any(|d| &d.name == *name))
        {
            return Err(invalid(
                f,
                format!("treatment `{}` names unknown drug `{bad}`", t.name),
            ));
        }
        if let Some(bad) = t
            .classes
            .iter()
            .find(|class| !drugs.drug.iter().any(|d| d.class.as_ref() == Some(*class)))
        {
            return Err(invalid(
                f,
                format!("treatment `{}` names unknown class `{bad}`", t.name),
            ));
        }
    }
    Ok(())
}

/// FNV-1a of the texts, each ended by a NUL byte.
fn fnv1a<'a>(texts: impl Iterator<Item = &'a str>) -> u64 {
    let mut hash = crate::fnv::Fnv1a::default();
    for text in texts {
        hash.update(text.as_bytes());
        hash.update(&[0]);
    }
    hash.value()
}
