//! `[writeback]`: what is written back to the chart.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DefaultWriteBack {
    None,
    Flag,
    #[default]
    FlagAndCarePlan,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriteBackSettings {
    /// What a request with WRITE_BACK_MODE_UNSPECIFIED writes.
    pub default_mode: DefaultWriteBack,
    /// System of the business identifiers of the Flag and CarePlan written (one per patient).
    pub identifier_system: String,
    /// The service's own CodeSystem for screening results (`trd-met`, `trd-possible`).
    pub code_system: String,
}

impl Default for WriteBackSettings {
    fn default() -> Self {
        WriteBackSettings {
            default_mode: DefaultWriteBack::FlagAndCarePlan,
            identifier_system: "urn:trdscreen:screening".into(),
            code_system: "urn:trdscreen:CodeSystem:screening-result".into(),
        }
    }
}
