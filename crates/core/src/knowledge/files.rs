//! The shapes of the knowledge files. Unknown keys are rejected so that a typo in a site's override is
//! an error at load time, not a silently ignored rule.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    pub version: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Antidepressant,
    Augmentation,
    MoodStabilizer,
    Esketamine,
    Ketamine,
    Nsaid,
    AceInhibitor,
    Arb,
    Thiazide,
    MaoiInteracting,
    Other,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drug {
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub class: Option<String>,
    #[serde(default)]
    pub rxnorm: Vec<String>,
    #[serde(default)]
    pub atc: Vec<String>,
    #[serde(default)]
    pub atc_prefix: Vec<String>,
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default)]
    pub brands: Vec<String>,
    pub min_adequate_daily_dose_mg: Option<f64>,
    pub usual_max_daily_dose_mg: Option<f64>,
    pub maoi_washout_days: Option<u32>,
    #[serde(default)]
    pub maoi: bool,
    pub maoi_diet_free_max_daily_mg: Option<f64>,
    pub required_route: Option<String>,
    pub hypnotic_below_daily_mg: Option<f64>,
    pub hypnotic_at_most_daily_mg: Option<f64>,
    pub source: String,
    #[serde(default)]
    pub unverified: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Combination {
    #[serde(default)]
    pub brands: Vec<String>,
    #[serde(default)]
    pub names: Vec<String>,
    pub ingredients: Vec<String>,
    #[serde(default)]
    pub min_adequate_daily_dose_mg: BTreeMap<String, f64>,
    pub source: String,
    #[serde(default)]
    pub unverified: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrugsFile {
    pub meta: Meta,
    pub drug: Vec<Drug>,
    #[serde(default)]
    pub combination: Vec<Combination>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Systems {
    pub rxnorm: Vec<String>,
    pub atc: Vec<String>,
    pub loinc: Vec<String>,
    pub snomed: Vec<String>,
    pub icd10: Vec<String>,
    pub cpt: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observations {
    pub phq9_total: Vec<String>,
    pub phqa_total: Vec<String>,
    pub phq9_item9: Vec<String>,
    #[serde(default)]
    pub phq9_panel: Vec<String>,
    pub mdq_total: Vec<String>,
    pub bp_panel: Vec<String>,
    pub systolic_bp: Vec<String>,
    pub diastolic_bp: Vec<String>,
    pub egfr: Vec<String>,
    pub lithium_level: Vec<String>,
}

impl Observations {
    /// Whether a bare code is one of the LOINC codes screening reads (to name a coding that lacks
    /// its system).
    pub fn is_known_loinc(&self, code: &str) -> bool {
        [
            &self.phq9_total,
            &self.phqa_total,
            &self.phq9_item9,
            &self.phq9_panel,
            &self.mdq_total,
            &self.bp_panel,
            &self.systolic_bp,
            &self.diastolic_bp,
            &self.egfr,
        ]
        .iter()
        .any(|codes| codes.iter().any(|c| c == code))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleMax {
    pub phq9_total: i64,
    pub phq9_item9: i64,
    pub mdq_total: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrugGroups {
    pub antidepressant_atc_prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeSet {
    #[serde(default)]
    pub icd10: Vec<String>,
    #[serde(default)]
    pub snomed: Vec<String>,
    pub source: String,
    #[serde(default)]
    pub unverified: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcedureSet {
    #[serde(default)]
    pub snomed: Vec<String>,
    #[serde(default)]
    pub cpt: Vec<String>,
    #[serde(default)]
    pub text: Vec<String>,
    pub source: String,
    #[serde(default)]
    pub unverified: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodesFile {
    pub meta: Meta,
    pub systems: Systems,
    pub flag: FlagCodes,
    pub observations: Observations,
    pub scale_max: ScaleMax,
    pub drug_groups: DrugGroups,
    #[serde(default)]
    pub observation_sources: BTreeMap<String, String>,
    pub conditions: BTreeMap<String, CodeSet>,
    pub procedures: BTreeMap<String, ProcedureSet>,
}

/// The SNOMED CT concept of the Flag written back for a patient who meets the TRD criteria.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagCodes {
    pub source: String,
    pub trd_snomed: String,
    pub trd_display: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialPolicy {
    pub min_duration_weeks: u32,
    pub refill_gap_days: u32,
    pub dose_hold_days: u32,
    pub implausible_dose_factor: u32,
    pub max_supply_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordPolicy {
    pub max_resources: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomePolicy {
    pub baseline_before_days: u32,
    pub baseline_after_days: u32,
    pub end_from_start_days: u32,
    pub end_after_end_days: u32,
    pub response_improvement_percent: u32,
    pub response_below: i64,
    pub inferred_failure_window_days: u32,
    pub switch_after_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoursePolicy {
    pub co_start_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpisodePolicy {
    pub lookback_months: u32,
    pub remission_below: i64,
    pub relapse_at_least: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HintPolicy {
    pub suicide_window_days: u32,
    pub mdq_positive_at_least: i64,
    pub maoi_reverse_washout_days: u32,
    pub maoi_washout_lookback_days: u32,
    pub bp_window_days: u32,
    pub systolic_at_least: u32,
    pub diastolic_at_least: u32,
    pub egfr_below: u32,
    pub egfr_window_days: u32,
    pub pregnancy_window_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub meta: Meta,
    pub trial: TrialPolicy,
    pub record: RecordPolicy,
    pub outcome: OutcomePolicy,
    pub course: CoursePolicy,
    pub episode: EpisodePolicy,
    pub hints: HintPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HintSeverity {
    Info,
    Warning,
    Critical,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HintDef {
    pub code: String,
    pub severity: HintSeverity,
    pub affects: Vec<String>,
    #[serde(default)]
    pub contraindicates: Vec<String>,
    pub message: String,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuggestionDef {
    pub code: String,
    pub title: String,
    pub treatments: Vec<String>,
    #[serde(default)]
    pub min_failed_adequate_trials: u32,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HintsFile {
    pub meta: Meta,
    pub hint: Vec<HintDef>,
    pub suggestion: Vec<SuggestionDef>,
    #[serde(default)]
    pub treatment: Vec<TreatmentDef>,
}

/// A treatment name of `affects` that drugs can be: a drug being ordered is that treatment when its
/// role, its class or its name is listed (the cards of CDS Hooks `order-select` and `order-sign`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreatmentDef {
    pub name: String,
    #[serde(default)]
    pub roles: Vec<Role>,
    #[serde(default)]
    pub classes: Vec<String>,
    #[serde(default)]
    pub drugs: Vec<String>,
}

/// `products.toml`: RxNorm product codes of published value sets, with the drugs each contains.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductsFile {
    pub meta: Meta,
    #[serde(default)]
    pub value_set: Vec<ValueSetSource>,
}

/// One value set the products come from, with where it was read: a published value set names its
/// OID, version, repository, path and commit; a site's own list says its source in `source`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueSetSource {
    pub title: String,
    #[serde(default)]
    pub oid: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub rxnorm_version: Option<String>,
    #[serde(default)]
    pub repo: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub commit: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    /// Its members are antidepressant products: one that names no drug of `drugs.toml` is an
    /// antidepressant the knowledge base does not list.
    #[serde(default)]
    pub antidepressants: bool,
    pub products: Vec<Product>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub rxnorm: String,
    /// The RxNorm name ("sertraline 100 MG Oral Tablet"): the engine reads the product's strength and
    /// route from it, and checks at load time that it names exactly `drugs`.
    pub name: String,
    /// Names of `drugs.toml` entries the product contains; none for a product screening does not track.
    #[serde(default)]
    pub drugs: Vec<String>,
}
