//! `[fhir]`: the FHIR server, how it is called, `[fhir.auth]` and `[fhir.bulk]`.

use super::values::{HttpUrl, empty_is_off, milliseconds, seconds};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FhirSettings {
    /// The FHIR R4 base URL, e.g. `https://ehr.example.org/fhir`; empty: no FHIR server (only
    /// EvaluateBundle works).
    #[serde(with = "empty_is_off")]
    pub base_url: Option<HttpUrl>,
    /// Whole-request timeout for one HTTP exchange.
    #[serde(rename = "timeout_secs", with = "seconds")]
    pub timeout: Duration,
    #[serde(rename = "connect_timeout_secs", with = "seconds")]
    pub connect_timeout: Duration,
    /// Retries of an idempotent request after a connection error, 429 or 5xx.
    pub max_retries: u32,
    /// First backoff; doubled per retry, with full jitter.
    #[serde(rename = "retry_base_ms", with = "milliseconds")]
    pub retry_base: Duration,
    /// Longest `Retry-After` honoured; a server asking for more gets an error instead.
    #[serde(rename = "retry_after_cap_secs", with = "seconds")]
    pub retry_after_cap: Duration,
    /// `_count` asked for on searches.
    pub page_size: u32,
    /// Pages followed per search before giving up (protects against `next` links that loop).
    pub page_cap: u32,
    /// Largest answer of the FHIR server read into memory (a search page, a read, a Bulk Data
    /// manifest); a larger one is refused with RESOURCE_EXHAUSTED, not retried.
    pub max_response_bytes: u64,
    pub auth: AuthSettings,
    pub bulk: BulkSettings,
}

impl Default for FhirSettings {
    fn default() -> Self {
        FhirSettings {
            base_url: None,
            timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            max_retries: 3,
            retry_base: Duration::from_millis(200),
            retry_after_cap: Duration::from_secs(30),
            page_size: 1000,
            page_cap: 20,
            max_response_bytes: 32 * 1024 * 1024,
            auth: AuthSettings::default(),
            bulk: BulkSettings::default(),
        }
    }
}

/// Bulk Data `$export` (`[fhir.bulk]`): how the status URL is polled and the files downloaded.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BulkSettings {
    /// First wait between status polls when the server sends no `Retry-After`; doubled per poll.
    #[serde(rename = "poll_interval_secs", with = "seconds")]
    pub poll_interval: Duration,
    /// Longest wait between polls: a longer `Retry-After`, or the doubled interval, is cut to this.
    #[serde(rename = "poll_interval_max_secs", with = "seconds")]
    pub poll_interval_max: Duration,
    /// Longest time from kick-off to the manifest; past it the export is cancelled and fails.
    #[serde(rename = "max_wait_secs", with = "seconds")]
    pub max_wait: Duration,
    /// Extra attempts at one output file after a failed or cut-short download (each from scratch).
    pub download_retries: u32,
    /// Longest time for one file's download.
    #[serde(rename = "download_timeout_secs", with = "seconds")]
    pub download_timeout: Duration,
    /// A download that receives nothing for this long is a failed attempt.
    #[serde(rename = "stall_timeout_secs", with = "seconds")]
    pub stall_timeout: Duration,
    /// Output files downloaded at once.
    pub download_concurrency: usize,
    /// Patients named in one patient-scoped export (`patient` parameter) of an incremental run;
    /// more changed patients make more exports.
    pub patients_per_export: usize,
    /// Bytes one export may write into the work directory, all files together.
    pub max_download_bytes: u64,
}

impl Default for BulkSettings {
    fn default() -> Self {
        BulkSettings {
            poll_interval: Duration::from_secs(2),
            poll_interval_max: Duration::from_secs(60),
            max_wait: Duration::from_secs(4 * 3600),
            download_retries: 3,
            download_timeout: Duration::from_secs(3600),
            stall_timeout: Duration::from_secs(60),
            download_concurrency: 4,
            patients_per_export: 1000,
            max_download_bytes: 64 * 1024 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    #[default]
    None,
    /// A static bearer token, from `token_file` or `TRDSCREEN_FHIR_AUTH_TOKEN`.
    Bearer,
    /// SMART Backend Services (client credentials with a signed JWT assertion).
    Smart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
pub enum SigningAlgorithm {
    #[default]
    RS384,
    ES384,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    pub mode: AuthMode,
    pub token_file: Option<PathBuf>,
    pub client_id: String,
    /// PEM private key (PKCS#8 or PKCS#1 for RSA, PKCS#8 or SEC1 for EC); or the key itself in
    /// `TRDSCREEN_FHIR_AUTH_PRIVATE_KEY`.
    pub private_key_file: Option<PathBuf>,
    pub algorithm: SigningAlgorithm,
    /// The `kid` of this key in the published JWKS and in the assertions' header; default: the
    /// key's RFC 7638 thumbprint.
    pub key_id: Option<String>,
    /// The next key, published beside the current one so the private key can be rotated without
    /// downtime (deploy/helm/trdscreen/README.md); or the key itself in
    /// `TRDSCREEN_FHIR_AUTH_NEXT_PRIVATE_KEY`. Same algorithm; never signs until it becomes
    /// `private_key_file`.
    pub next_private_key_file: Option<PathBuf>,
    /// The next key's `kid`; default: its thumbprint.
    pub next_key_id: Option<String>,
    /// The token endpoint; default: discovered from `{base}/.well-known/smart-configuration`.
    /// (`""` is the same as leaving it out.)
    #[serde(deserialize_with = "empty_is_off::deserialize")]
    pub token_url: Option<HttpUrl>,
    pub scope: String,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            mode: AuthMode::None,
            token_file: None,
            client_id: String::new(),
            private_key_file: None,
            algorithm: SigningAlgorithm::RS384,
            key_id: None,
            next_private_key_file: None,
            next_key_id: None,
            token_url: None,
            scope: "system/*.read system/Flag.write system/CarePlan.write".into(),
        }
    }
}
