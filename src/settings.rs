//! Service settings: one TOML file plus `TRDSCREEN_...` environment overrides, checked once at
//! start-up. Secrets (private key, bearer token, TLS key) come from files or the environment only,
//! never from the settings file itself or the command line.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub grpc: GrpcSettings,
    pub fhir: FhirSettings,
    pub writeback: WriteBackSettings,
    pub batch: BatchSettings,
    pub telemetry: TelemetrySettings,
    /// Who may call the gRPC port, and how often.
    pub callers: CallerSettings,
    /// Where the audit trail of every access to patient data goes (docs/security.md).
    pub audit: AuditSettings,
    /// A directory of knowledge files (drugs.toml, codes.toml, policy.toml, hints.toml) replacing the
    /// built-in ones, file by file.
    pub knowledge_dir: Option<PathBuf>,
}

/// How callers of the gRPC port prove who they are (docs/security.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallerAuthentication {
    /// Anyone who reaches the port: only where the network admits nothing but a trusted
    /// integration engine. The service says so at start-up.
    #[default]
    None,
    /// An OAuth 2.0 bearer access token (JWT) from the identity provider in `[callers.jwt]`,
    /// whose scopes grant the permissions each method needs.
    Jwt,
    /// A client certificate verified in the TLS handshake against `grpc.client_ca_file`; the
    /// identity its URI (SPIFFE) or DNS name gives is granted the scopes `[callers.mtls.clients]`
    /// lists for it.
    Mtls,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallerSettings {
    pub authentication: CallerAuthentication,
    pub jwt: crate::auth::JwtSettings,
    /// `[callers.mtls.clients]`: certificate identity (`"spiffe://..."` or a DNS name) to the
    /// scopes it is granted, for `authentication = "mtls"`.
    pub mtls: crate::auth::MtlsSettings,
    /// Calls per second per caller and permission (`[callers.rate.limits."screening.read"]`
    /// `per_second`, `burst`); a permission without a limit is not limited.
    pub rate: crate::auth::RateSettings,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcSettings {
    pub listen: String,
    /// Largest request accepted, in bytes (a Bundle sent to EvaluateBundle included).
    pub max_request_bytes: usize,
    /// Upper bound on one call, whatever deadline the caller sets.
    pub call_timeout_secs: u64,
    /// Calls handled at once; more are refused with RESOURCE_EXHAUSTED rather than queued unboundedly.
    pub max_concurrent_calls: usize,
    /// Patients screened at once by one ScreenPopulation call.
    pub population_concurrency: usize,
    /// PEM certificate chain and private key: both set turns TLS on for the gRPC port.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// PEM bundle of the CAs that issue callers' client certificates: set (with the certificate
    /// and key above), the TLS handshake requires a client certificate that chains to one of them
    /// and is within its validity dates, and refuses the connection otherwise (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
    /// Seconds in-flight calls get to finish after SIGTERM/SIGINT.
    pub shutdown_grace_secs: u64,
}

impl Default for GrpcSettings {
    fn default() -> Self {
        GrpcSettings {
            listen: "127.0.0.1:50051".into(),
            max_request_bytes: 4 * 1024 * 1024,
            call_timeout_secs: 30,
            max_concurrent_calls: 256,
            population_concurrency: 8,
            tls_cert_file: None,
            tls_key_file: None,
            client_ca_file: None,
            shutdown_grace_secs: 20,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FhirSettings {
    /// The FHIR R4 base URL, e.g. `https://ehr.example.org/fhir`.
    pub base_url: String,
    /// Whole-request timeout for one HTTP exchange.
    pub timeout_secs: u64,
    pub connect_timeout_secs: u64,
    /// Retries of an idempotent request after a connection error, 429 or 5xx.
    pub max_retries: u32,
    /// First backoff; doubled per retry, with full jitter.
    pub retry_base_ms: u64,
    /// Longest `Retry-After` honoured; a server asking for more gets an error instead.
    pub retry_after_cap_secs: u64,
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
            base_url: String::new(),
            timeout_secs: 15,
            connect_timeout_secs: 5,
            max_retries: 3,
            retry_base_ms: 200,
            retry_after_cap_secs: 30,
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
    pub poll_interval_secs: u64,
    /// Longest wait between polls: a longer `Retry-After`, or the doubled interval, is cut to this.
    pub poll_interval_max_secs: u64,
    /// Longest time from kick-off to the manifest; past it the export is cancelled and fails.
    pub max_wait_secs: u64,
    /// Extra attempts at one output file after a failed or cut-short download (each from scratch).
    pub download_retries: u32,
    /// Longest time for one file's download.
    pub download_timeout_secs: u64,
    /// A download that receives nothing for this long is a failed attempt.
    pub stall_timeout_secs: u64,
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
            poll_interval_secs: 2,
            poll_interval_max_secs: 60,
            max_wait_secs: 4 * 3600,
            download_retries: 3,
            download_timeout_secs: 3600,
            stall_timeout_secs: 60,
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
    pub token_url: Option<String>,
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

/// The nightly job (`trdscreen batch`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchSettings {
    /// Patients read and screened at once from the FHIR server (per-patient sources), and
    /// write-backs in flight at once.
    pub concurrency: usize,
    /// Patients started per second on per-patient sources (each costs about six FHIR requests);
    /// 0 for no limit. Protects the hospital's server.
    pub patients_per_second: u32,
    /// Write-backs started per second; 0 for no limit.
    pub writes_per_second: u32,
    /// Size of one bucket of the NDJSON reader, in KiB: what its second pass holds in memory per
    /// core (the text of one bucket and the records of one patient at a time).
    pub bucket_kilobytes: u64,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            concurrency: 8,
            patients_per_second: 50,
            writes_per_second: 10,
            bucket_kilobytes: 64 * 1024,
        }
    }
}

/// Metrics, traces and logs (docs/metrics.md).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Address of the Prometheus `/metrics` endpoint (its own port); empty turns it off.
    pub metrics_listen: String,
    /// OTLP/gRPC collector for metrics and traces, e.g. `http://collector:4317`; empty: no export.
    pub otlp_endpoint: String,
    pub log_format: LogFormat,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            metrics_listen: "127.0.0.1:9464".into(),
            otlp_endpoint: String::new(),
            log_format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines on stderr.
    #[default]
    Text,
    /// One JSON object per line on stderr, for log collectors.
    Json,
}

/// What a call does when its access cannot be recorded in the audit trail (the spill file is full
/// or cannot be written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WhenUnrecorded {
    /// The call is refused (UNAVAILABLE) before it reads anything, and a call whose record is
    /// refused gets no result: no access goes unrecorded.
    #[default]
    Refuse,
    /// The call goes on; each record that could not be kept is counted
    /// (`trdscreen_audit_records_total{outcome="lost"}`) and logged as an error, without its
    /// content.
    Continue,
}

/// The audit trail (`[audit]`): an AuditEvent (IHE BALP) for every access to patient data, sent to
/// a FHIR endpoint through a queue that spills to disk while the endpoint is down.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// The FHIR base URL AuditEvents are written to (`PUT AuditEvent/{id}`), with the `[fhir.auth]`
    /// credentials; empty: no audit trail.
    pub base_url: String,
    /// Directory of the spill file (records kept on disk while the endpoint is down); required
    /// with `base_url`. On a volume that outlives the pod.
    pub spill_dir: Option<PathBuf>,
    /// How this service names itself in the records (agent and observer).
    pub service_name: String,
    /// Records held in memory while the endpoint answers; 0 writes every record to disk (fsync'd)
    /// before the call is answered, so a killed process loses none.
    pub memory_capacity: usize,
    /// Largest spill file; past it records are refused (see `when_unrecorded`).
    pub max_spill_bytes: u64,
    /// How often a down endpoint is tried again, in milliseconds.
    pub retry_interval_ms: u64,
    pub when_unrecorded: WhenUnrecorded,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            base_url: String::new(),
            spill_dir: None,
            service_name: "trdscreen".into(),
            memory_capacity: 1000,
            max_spill_bytes: 1024 * 1024 * 1024,
            retry_interval_ms: 5000,
            when_unrecorded: WhenUnrecorded::Refuse,
        }
    }
}

/// Secrets, read from files named in the settings or from the environment.
#[derive(Clone, Default)]
pub struct Secrets {
    pub bearer_token: Option<String>,
    pub private_key_pem: Option<Vec<u8>>,
    /// The next SMART key, published but not used to sign.
    pub next_private_key_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(redacted)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("settings: {0}")]
pub struct SettingsError(pub String);

/// The value kind of each setting that an environment variable may override.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Text,
    Integer,
    Boolean,
}

/// `TRDSCREEN_<SECTION>_<KEY>` overrides `[section] key`; e.g. `TRDSCREEN_FHIR_BASE_URL`. Every
/// setting is here (a test walks the settings and fails on one left out).
const OVERRIDABLE: &[(&str, Kind)] = &[
    ("grpc.listen", Kind::Text),
    ("grpc.max_request_bytes", Kind::Integer),
    ("grpc.call_timeout_secs", Kind::Integer),
    ("grpc.max_concurrent_calls", Kind::Integer),
    ("grpc.population_concurrency", Kind::Integer),
    ("grpc.tls_cert_file", Kind::Text),
    ("grpc.tls_key_file", Kind::Text),
    ("grpc.client_ca_file", Kind::Text),
    ("grpc.shutdown_grace_secs", Kind::Integer),
    ("fhir.base_url", Kind::Text),
    ("fhir.timeout_secs", Kind::Integer),
    ("fhir.connect_timeout_secs", Kind::Integer),
    ("fhir.max_retries", Kind::Integer),
    ("fhir.retry_base_ms", Kind::Integer),
    ("fhir.retry_after_cap_secs", Kind::Integer),
    ("fhir.page_size", Kind::Integer),
    ("fhir.page_cap", Kind::Integer),
    ("fhir.max_response_bytes", Kind::Integer),
    ("fhir.bulk.poll_interval_secs", Kind::Integer),
    ("fhir.bulk.poll_interval_max_secs", Kind::Integer),
    ("fhir.bulk.max_wait_secs", Kind::Integer),
    ("fhir.bulk.download_retries", Kind::Integer),
    ("fhir.bulk.download_timeout_secs", Kind::Integer),
    ("fhir.bulk.stall_timeout_secs", Kind::Integer),
    ("fhir.bulk.download_concurrency", Kind::Integer),
    ("fhir.bulk.patients_per_export", Kind::Integer),
    ("fhir.bulk.max_download_bytes", Kind::Integer),
    ("fhir.auth.mode", Kind::Text),
    ("fhir.auth.token_file", Kind::Text),
    ("fhir.auth.client_id", Kind::Text),
    ("fhir.auth.private_key_file", Kind::Text),
    ("fhir.auth.algorithm", Kind::Text),
    ("fhir.auth.key_id", Kind::Text),
    ("fhir.auth.next_private_key_file", Kind::Text),
    ("fhir.auth.next_key_id", Kind::Text),
    ("fhir.auth.token_url", Kind::Text),
    ("fhir.auth.scope", Kind::Text),
    ("writeback.default_mode", Kind::Text),
    ("writeback.identifier_system", Kind::Text),
    ("writeback.code_system", Kind::Text),
    ("batch.concurrency", Kind::Integer),
    ("batch.patients_per_second", Kind::Integer),
    ("batch.writes_per_second", Kind::Integer),
    ("batch.bucket_kilobytes", Kind::Integer),
    ("telemetry.metrics_listen", Kind::Text),
    ("telemetry.otlp_endpoint", Kind::Text),
    ("telemetry.log_format", Kind::Text),
    ("callers.authentication", Kind::Text),
    ("callers.jwt.issuer", Kind::Text),
    ("callers.jwt.audiences", Kind::Text),
    ("callers.jwt.jwks_url", Kind::Text),
    ("callers.jwt.leeway_secs", Kind::Integer),
    ("callers.jwt.jwks_refresh_min_interval_secs", Kind::Integer),
    ("callers.jwt.jwks_max_age_secs", Kind::Integer),
    ("callers.jwt.jwks_retry_after_failure_secs", Kind::Integer),
    ("callers.jwt.timeout_secs", Kind::Integer),
    ("callers.jwt.connect_timeout_secs", Kind::Integer),
    ("callers.jwt.max_document_bytes", Kind::Integer),
    ("callers.jwt.accept_jwt_typ", Kind::Boolean),
    ("callers.rate.max_callers", Kind::Integer),
    ("audit.base_url", Kind::Text),
    ("audit.spill_dir", Kind::Text),
    ("audit.service_name", Kind::Text),
    ("audit.memory_capacity", Kind::Integer),
    ("audit.max_spill_bytes", Kind::Integer),
    ("audit.retry_interval_ms", Kind::Integer),
    ("audit.when_unrecorded", Kind::Text),
    ("knowledge_dir", Kind::Text),
];

pub fn env_name(path: &str) -> String {
    format!("TRDSCREEN_{}", path.replace('.', "_").to_ascii_uppercase())
}

impl Settings {
    /// Reads the file (if any), applies the environment, and checks the result.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, SettingsError> {
        let text = match file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| SettingsError(format!("cannot read {}: {e}", path.display())))?,
            None => String::new(),
        };
        Settings::from_text(&text, env)
    }

    /// The settings from a settings file's text and the environment, checked.
    pub fn from_text(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, SettingsError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| {
            SettingsError(format!(
                "the settings file is not valid TOML: {}",
                e.message()
            ))
        })?;
        for (path, kind) in OVERRIDABLE {
            let name = env_name(path);
            let Some(raw) = env(&name) else { continue };
            let value = match kind {
                Kind::Text => toml::Value::String(raw),
                Kind::Integer => raw
                    .trim()
                    .parse::<i64>()
                    .map(toml::Value::Integer)
                    .map_err(|_| SettingsError(format!("{name} must be a whole number")))?,
                Kind::Boolean => match raw.trim() {
                    "true" => toml::Value::Boolean(true),
                    "false" => toml::Value::Boolean(false),
                    _ => return Err(SettingsError(format!("{name} must be true or false"))),
                },
            };
            set_path(&mut table, path, value);
        }
        let settings: Settings = Settings::deserialize(toml::Value::Table(table))
            .map_err(|e| SettingsError(e.to_string().trim().replace('\n', " ")))?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), SettingsError> {
        let fail = |m: &str| Err(SettingsError(m.to_owned()));
        if self.callers.authentication == CallerAuthentication::Jwt
            && (self.callers.jwt.issuer.is_empty() || self.callers.jwt.audiences.is_empty())
        {
            return fail(
                "callers.authentication = \"jwt\" needs callers.jwt.issuer and callers.jwt.audiences",
            );
        }
        if self.grpc.listen.parse::<std::net::SocketAddr>().is_err() {
            return fail("grpc.listen must be an address such as 127.0.0.1:50051");
        }
        if self.grpc.tls_cert_file.is_some() != self.grpc.tls_key_file.is_some() {
            return fail("grpc.tls_cert_file and grpc.tls_key_file go together");
        }
        if self.grpc.client_ca_file.is_some() && self.grpc.tls_cert_file.is_none() {
            return fail(
                "grpc.client_ca_file (mutual TLS) needs grpc.tls_cert_file and grpc.tls_key_file",
            );
        }
        if self.callers.authentication == CallerAuthentication::Mtls
            && self.grpc.client_ca_file.is_none()
        {
            return fail("callers.authentication = \"mtls\" needs grpc.client_ca_file");
        }
        if let Some(scope) = self
            .callers
            .mtls
            .clients
            .values()
            .flatten()
            .find(|s| crate::auth::Permission::from_scope(s).is_none())
        {
            // The scope is the operator's own text from the settings file, not a caller's.
            return Err(SettingsError(format!(
                "callers.mtls.clients grants {scope:?}, which is not a permission (screening.read, screening.write, population.screen, bundle.evaluate)"
            )));
        }
        if self.batch.concurrency == 0 || self.batch.bucket_kilobytes == 0 {
            return fail("batch.concurrency and batch.bucket_kilobytes must be at least 1");
        }
        if self.grpc.max_concurrent_calls == 0 || self.grpc.population_concurrency == 0 {
            return fail(
                "grpc.max_concurrent_calls and grpc.population_concurrency must be at least 1",
            );
        }
        if self.grpc.max_request_bytes < 1024 {
            return fail("grpc.max_request_bytes must be at least 1024");
        }
        if !self.fhir.base_url.is_empty() {
            match url::Url::parse(&self.fhir.base_url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => {
                    return fail(
                        "fhir.base_url must be an http(s) URL such as https://ehr.example.org/fhir",
                    );
                }
            }
        }
        if self.fhir.page_size == 0 || self.fhir.page_cap == 0 || self.fhir.timeout_secs == 0 {
            return fail("fhir.page_size, fhir.page_cap and fhir.timeout_secs must be at least 1");
        }
        if self.fhir.max_response_bytes < 1024 || self.fhir.bulk.max_download_bytes < 1024 {
            return fail(
                "fhir.max_response_bytes and fhir.bulk.max_download_bytes must be at least 1024",
            );
        }
        let bulk = &self.fhir.bulk;
        if bulk.poll_interval_secs == 0
            || bulk.poll_interval_max_secs < bulk.poll_interval_secs
            || bulk.max_wait_secs == 0
            || bulk.download_timeout_secs == 0
            || bulk.stall_timeout_secs == 0
            || bulk.download_concurrency == 0
            || bulk.patients_per_export == 0
        {
            return fail(
                "fhir.bulk: poll_interval_secs, max_wait_secs, download_timeout_secs, stall_timeout_secs, download_concurrency and patients_per_export must be at least 1, and poll_interval_max_secs at least poll_interval_secs",
            );
        }
        let auth = &self.fhir.auth;
        match auth.mode {
            AuthMode::None => {}
            AuthMode::Bearer => {}
            AuthMode::Smart => {
                if auth.client_id.is_empty() {
                    return fail("fhir.auth.client_id is required for SMART Backend Services");
                }
                if let Some(u) = &auth.token_url
                    && url::Url::parse(u).is_err()
                {
                    return fail("fhir.auth.token_url must be a URL");
                }
            }
        }
        let t = &self.telemetry;
        if !t.metrics_listen.is_empty() && t.metrics_listen.parse::<std::net::SocketAddr>().is_err()
        {
            return fail(
                "telemetry.metrics_listen must be an address such as 127.0.0.1:9464, or empty",
            );
        }
        if !t.otlp_endpoint.is_empty() {
            match url::Url::parse(&t.otlp_endpoint) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => {
                    return fail(
                        "telemetry.otlp_endpoint must be an http(s) URL such as http://collector:4317, or empty",
                    );
                }
            }
        }
        let audit = &self.audit;
        if !audit.base_url.is_empty() {
            match url::Url::parse(&audit.base_url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => {
                    return fail(
                        "audit.base_url must be an http(s) URL such as https://audit.example.org/fhir, or empty",
                    );
                }
            }
            if audit.spill_dir.is_none() {
                return fail(
                    "audit.base_url needs audit.spill_dir (where records wait while the endpoint is down)",
                );
            }
            if audit.retry_interval_ms == 0 || audit.max_spill_bytes < 64 * 1024 {
                return fail(
                    "audit.retry_interval_ms must be at least 1 and audit.max_spill_bytes at least 65536",
                );
            }
        }
        if audit.service_name.trim().is_empty() || audit.service_name.len() > 128 {
            return fail("audit.service_name must be 1 to 128 characters");
        }
        if self.writeback.identifier_system.is_empty() || self.writeback.code_system.is_empty() {
            return fail("writeback.identifier_system and writeback.code_system must be set");
        }
        Ok(())
    }

    /// Reads the secrets the settings call for; a missing one is an error naming where it was looked
    /// for (never its content).
    pub fn secrets(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Secrets, SettingsError> {
        let auth = &self.fhir.auth;
        let read = |path: &Path, what: &str| {
            std::fs::read(path).map_err(|e| {
                SettingsError(format!(
                    "cannot read the {what} file {}: {e}",
                    path.display()
                ))
            })
        };
        let mut secrets = Secrets::default();
        match auth.mode {
            AuthMode::None => {}
            AuthMode::Bearer => {
                let token = match (&auth.token_file, env("TRDSCREEN_FHIR_AUTH_TOKEN")) {
                    (Some(path), _) => String::from_utf8(read(path, "bearer token")?)
                        .map_err(|_| SettingsError("the bearer token file is not text".into()))?,
                    (None, Some(token)) => token,
                    (None, None) => {
                        return Err(SettingsError(
                            "bearer auth needs fhir.auth.token_file or TRDSCREEN_FHIR_AUTH_TOKEN"
                                .into(),
                        ));
                    }
                };
                secrets.bearer_token = Some(token.trim().to_owned());
            }
            AuthMode::Smart => {
                let pem = match (
                    &auth.private_key_file,
                    env("TRDSCREEN_FHIR_AUTH_PRIVATE_KEY"),
                ) {
                    (Some(path), _) => read(path, "private key")?,
                    (None, Some(pem)) => pem.into_bytes(),
                    (None, None) => {
                        return Err(SettingsError(
                            "SMART auth needs fhir.auth.private_key_file or TRDSCREEN_FHIR_AUTH_PRIVATE_KEY".into(),
                        ));
                    }
                };
                secrets.private_key_pem = Some(pem);
                secrets.next_private_key_pem = match (
                    &auth.next_private_key_file,
                    env("TRDSCREEN_FHIR_AUTH_NEXT_PRIVATE_KEY"),
                ) {
                    (Some(path), _) => Some(read(path, "next private key")?),
                    (None, pem) => pem.map(String::into_bytes),
                };
            }
        }
        Ok(secrets)
    }

    pub fn call_timeout(&self) -> Duration {
        Duration::from_secs(self.grpc.call_timeout_secs)
    }
}

fn set_path(table: &mut toml::Table, path: &str, value: toml::Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap_or(path);
    let mut current = table;
    for part in parts {
        let entry = current
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(t) = entry else { return };
        current = t;
    }
    current.insert(last.to_owned(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every leaf of the settings as `section.key` paths, with whether it is a number.
    fn leaves(value: &serde_json::Value, prefix: &str, out: &mut Vec<(String, Kind)>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    leaves(v, &path, out);
                }
            }
            v => out.push((
                prefix.to_owned(),
                if v.is_number() {
                    Kind::Integer
                } else if v.is_boolean() {
                    Kind::Boolean
                } else {
                    Kind::Text
                },
            )),
        }
    }

    #[test]
    fn every_setting_can_be_overridden_from_the_environment() {
        let mut all = Vec::new();
        leaves(
            &serde_json::to_value(Settings::default()).unwrap(),
            "",
            &mut all,
        );
        assert!(all.len() >= 40, "{all:?}");
        for (path, leaf) in &all {
            let kind = OVERRIDABLE.iter().find(|(p, _)| p == path).map(|(_, k)| *k);
            match kind {
                Some(kind) => assert_eq!(kind, *leaf, "{path}"),
                None => panic!("{path} has no environment override (OVERRIDABLE)"),
            }
        }
        assert_eq!(
            OVERRIDABLE.len(),
            all.len(),
            "OVERRIDABLE names a setting that is not one"
        );
        // Each override reaches its setting: a value other than the default, read back. Not
        // every value is valid for every setting (those are refused, and skipped here); what must
        // not happen is that a variable is ignored.
        let mut reached = 0;
        for (path, leaf) in &all {
            let (value, expected) = match leaf {
                Kind::Integer => ("7", serde_json::json!(7)),
                Kind::Boolean => ("true", serde_json::json!(true)),
                Kind::Text => ("json", serde_json::json!("json")),
            };
            let name = env_name(path);
            let env = |n: &str| (n == name).then(|| value.to_owned());
            if let Ok(settings) = Settings::from_text("", &env) {
                let settings = serde_json::to_value(settings).unwrap();
                let got = settings.pointer(&format!("/{}", path.replace('.', "/")));
                assert_eq!(got, Some(&expected), "{name}");
                reached += 1;
            }
        }
        assert!(reached >= 30, "{reached}");
    }

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn environment_overrides_the_file_and_defaults_fill_the_rest() {
        let dir = std::env::temp_dir().join(format!("trdscreen-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("settings.toml");
        std::fs::write(
            &file,
            "[fhir]\nbase_url = \"http://a.example/fhir\"\npage_cap = 3\n",
        )
        .unwrap();
        let env = env_of(&[
            ("TRDSCREEN_FHIR_BASE_URL", "https://b.example/fhir"),
            ("TRDSCREEN_GRPC_MAX_CONCURRENT_CALLS", "7"),
            ("TRDSCREEN_FHIR_BULK_MAX_WAIT_SECS", "600"),
        ]);
        let s = Settings::load(Some(&file), &env).unwrap();
        assert_eq!(s.fhir.base_url, "https://b.example/fhir");
        assert_eq!(s.fhir.page_cap, 3);
        assert_eq!(s.grpc.max_concurrent_calls, 7);
        assert_eq!(s.fhir.timeout_secs, 15);
        assert_eq!(s.fhir.bulk.max_wait_secs, 600);
        assert_eq!(s.fhir.bulk.download_retries, 3);
    }

    #[test]
    fn bad_settings_are_refused_with_the_name_of_the_setting() {
        let cases: [&'static [(&'static str, &'static str)]; 8] = [
            &[("TRDSCREEN_GRPC_LISTEN", "not an address")],
            &[("TRDSCREEN_FHIR_BULK_POLL_INTERVAL_SECS", "0")],
            &[("TRDSCREEN_FHIR_BASE_URL", "ftp://x")],
            &[("TRDSCREEN_FHIR_PAGE_CAP", "many")],
            &[("TRDSCREEN_FHIR_AUTH_MODE", "smart")],
            &[("TRDSCREEN_TELEMETRY_METRICS_LISTEN", "9464")],
            &[("TRDSCREEN_TELEMETRY_OTLP_ENDPOINT", "collector:4317")],
            &[("TRDSCREEN_TELEMETRY_LOG_FORMAT", "xml")],
        ];
        let names = [
            "grpc.listen",
            "fhir.bulk",
            "fhir.base_url",
            "TRDSCREEN_FHIR_PAGE_CAP",
            "client_id",
            "telemetry.metrics_listen",
            "telemetry.otlp_endpoint",
            "xml",
        ];
        for (env, name) in cases.into_iter().zip(names) {
            let err = Settings::load(None, &env_of(env)).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn telemetry_defaults_to_local_metrics_and_can_be_turned_off_or_pointed_at_a_collector() {
        let s = Settings::load(None, &|_| None).unwrap();
        assert_eq!(s.telemetry.metrics_listen, "127.0.0.1:9464");
        assert_eq!(s.telemetry.otlp_endpoint, "");
        assert_eq!(s.telemetry.log_format, LogFormat::Text);
        let env = env_of(&[
            ("TRDSCREEN_TELEMETRY_METRICS_LISTEN", ""),
            ("TRDSCREEN_TELEMETRY_OTLP_ENDPOINT", "http://collector:4317"),
            ("TRDSCREEN_TELEMETRY_LOG_FORMAT", "json"),
        ]);
        let s = Settings::load(None, &env).unwrap();
        assert_eq!(s.telemetry.metrics_listen, "");
        assert_eq!(s.telemetry.otlp_endpoint, "http://collector:4317");
        assert_eq!(s.telemetry.log_format, LogFormat::Json);
    }

    #[test]
    fn mutual_tls_needs_the_server_certificate_and_mtls_callers_need_the_client_ca() {
        let tls = [
            ("TRDSCREEN_GRPC_TLS_CERT_FILE", "/tls/tls.crt"),
            ("TRDSCREEN_GRPC_TLS_KEY_FILE", "/tls/tls.key"),
        ];
        let load = |pairs: &[(&str, &str)], file: &str| {
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect();
            Settings::from_text(file, &move |name| {
                pairs
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            })
        };
        let ca = ("TRDSCREEN_GRPC_CLIENT_CA_FILE", "/ca/ca.crt");
        let mtls = ("TRDSCREEN_CALLERS_AUTHENTICATION", "mtls");
        let err = load(&[ca], "").unwrap_err().to_string();
        assert!(err.contains("grpc.tls_cert_file"), "{err}");
        let err = load(&[tls[0], tls[1], mtls], "").unwrap_err().to_string();
        assert!(err.contains("grpc.client_ca_file"), "{err}");
        let clients = "[callers.mtls.clients]\n\"spiffe://h.test/ns/ehr/sa/orders\" = [\"screening.read\", \"bundle.evaluate\"]\n";
        let s = load(&[tls[0], tls[1], ca, mtls], clients).unwrap();
        assert_eq!(s.callers.authentication, CallerAuthentication::Mtls);
        assert_eq!(
            s.callers.mtls.clients["spiffe://h.test/ns/ehr/sa/orders"],
            ["screening.read", "bundle.evaluate"]
        );
        // A misspelt scope would grant nothing without a word: refused.
        let typo = clients.replace("screening.read", "screening.reed");
        let err = load(&[tls[0], tls[1], ca, mtls], &typo)
            .unwrap_err()
            .to_string();
        assert!(err.contains("screening.reed"), "{err}");
    }

    #[test]
    fn the_next_smart_key_is_read_from_its_file_or_the_environment_and_is_optional() {
        let dir = std::env::temp_dir().join(format!("trdscreen-settings-k-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (current, next) = (dir.join("current.pem"), dir.join("next.pem"));
        std::fs::write(&current, "CURRENT").unwrap();
        std::fs::write(&next, "NEXT").unwrap();
        let mut s = Settings::default();
        s.fhir.auth.mode = AuthMode::Smart;
        s.fhir.auth.private_key_file = Some(current);
        let none = s.secrets(&|_| None).unwrap();
        assert_eq!(none.private_key_pem.as_deref(), Some(&b"CURRENT"[..]));
        assert_eq!(none.next_private_key_pem, None);
        let env =
            |name: &str| (name == "TRDSCREEN_FHIR_AUTH_NEXT_PRIVATE_KEY").then(|| "ENV".into());
        let from_env = s.secrets(&env).unwrap();
        assert_eq!(from_env.next_private_key_pem.as_deref(), Some(&b"ENV"[..]));
        s.fhir.auth.next_private_key_file = Some(next);
        let from_file = s.secrets(&env).unwrap();
        assert_eq!(
            from_file.next_private_key_pem.as_deref(),
            Some(&b"NEXT"[..])
        );
        s.fhir.auth.next_private_key_file = Some(dir.join("missing.pem"));
        let err = s.secrets(&env).unwrap_err().to_string();
        assert!(err.contains("next private key"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_keys_and_secrets_in_the_file_are_refused() {
        let dir = std::env::temp_dir().join(format!("trdscreen-settings-u-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("settings.toml");
        std::fs::write(&file, "[fhir.auth]\nprivate_key = \"-----BEGIN\"\n").unwrap();
        let err = Settings::load(Some(&file), &|_| None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("private_key") && !err.contains("BEGIN"),
            "{err}"
        );
    }
}
