//! Service settings: one TOML file plus `TRDSCREEN_...` environment overrides ([`env`]), read at
//! start-up into the types they are used as ([`values`]: addresses, URLs, durations, `None` for
//! off) and checked once. One file per section. Secrets (private key, bearer token, TLS key) come
//! from files or the environment only, never from the settings file itself or the command line.

mod audit;
mod batch;
mod callers;
mod cds;
mod env;
mod fhir;
mod grpc;
mod telemetry;
pub mod values;
mod writeback;

pub use audit::{AuditSettings, WhenUnrecorded};
pub use batch::BatchSettings;
pub use callers::{CallerAuthentication, CallerSettings};
pub use cds::{CdsClient, CdsSettings};
pub use env::env_name;
pub use fhir::{AuthMode, AuthSettings, BulkSettings, FhirSettings, SigningAlgorithm};
pub use grpc::GrpcSettings;
pub use telemetry::{LogFormat, TelemetrySettings};
pub use values::HttpUrl;
pub use writeback::{DefaultWriteBack, WriteBackSettings};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
    /// The CDS Hooks service for EHRs (README "Inside the EHR"): its own HTTP port.
    pub cds: CdsSettings,
    /// A directory of knowledge files (drugs.toml, codes.toml, policy.toml, hints.toml) replacing the
    /// built-in ones, file by file.
    pub knowledge_dir: Option<PathBuf>,
}

/// Secrets, read from files named in the settings or from the environment.
#[derive(Clone, Default)]
pub struct Secrets {
    pub bearer_token: Option<String>,
    pub private_key_pem: Option<Vec<u8>>,
    /// The next SMART key, published but not used to sign.
    pub next_private_key_pem: Option<Vec<u8>>,
    /// The clinician view's link secret (`cds.view_link_secret_file`), surrounding whitespace cut.
    pub view_link_secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(redacted)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("settings: {0}")]
pub struct SettingsError(pub String);

/// Largest settings file read: a few kilobytes are typical.
const SETTINGS_FILE_CAP: u64 = crate::files::MIB;

/// Most a token leeway (`cds.leeway_secs`, `callers.jwt.leeway_secs`) may be: clocks a few
/// minutes apart.
const MAX_LEEWAY_SECS: u64 = 600;

/// Largest secret file read (a token, a PEM key, a link secret): a few kilobytes are typical.
const SECRET_FILE_CAP: u64 = crate::files::MIB;

impl Settings {
    /// Reads the file (if any), applies the environment, and checks the result.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, SettingsError> {
        let text = match file {
            Some(path) => {
                let cannot = |why: &dyn std::fmt::Display| {
                    SettingsError(format!("cannot read {}: {why}", path.display()))
                };
                let bytes =
                    crate::files::read_bounded(path, SETTINGS_FILE_CAP).map_err(|e| cannot(&e))?;
                String::from_utf8(bytes).map_err(|_| cannot(&"not UTF-8 text"))?
            }
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
        env::apply_overrides(&mut table, env)?;
        let settings =
            Settings::deserialize(toml::Value::Table(table)).map_err(naming_the_setting)?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), SettingsError> {
        let fail = |m: &str| Err(SettingsError(m.to_owned()));
        if self.callers.authentication == CallerAuthentication::Jwt
            && (self.callers.jwt.issuer.is_none() || self.callers.jwt.audiences.is_empty())
        {
            return fail(
                "callers.authentication = \"jwt\" needs callers.jwt.issuer and callers.jwt.audiences",
            );
        }
        // Clocks a few minutes apart, no more: a leeway of hours would let an expired token in.
        if self.callers.jwt.leeway.as_secs() > MAX_LEEWAY_SECS {
            return fail("callers.jwt.leeway_secs must be at most 600 seconds");
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
        if self.grpc.max_connections == 0 || self.cds.max_connections == 0 {
            return fail("grpc.max_connections and cds.max_connections must be at least 1");
        }
        if self.grpc.max_concurrent_calls == 0 || self.grpc.population_concurrency == 0 {
            return fail(
                "grpc.max_concurrent_calls and grpc.population_concurrency must be at least 1",
            );
        }
        if self.grpc.max_request_bytes < 1024 {
            return fail("grpc.max_request_bytes must be at least 1024");
        }
        if self.fhir.page_size == 0 || self.fhir.page_cap == 0 || self.fhir.timeout.is_zero() {
            return fail("fhir.page_size, fhir.page_cap and fhir.timeout_secs must be at least 1");
        }
        if self.fhir.max_response_bytes < 1024 || self.fhir.bulk.max_download_bytes < 1024 {
            return fail(
                "fhir.max_response_bytes and fhir.bulk.max_download_bytes must be at least 1024",
            );
        }
        let bulk = &self.fhir.bulk;
        if bulk.poll_interval.is_zero()
            || bulk.poll_interval_max < bulk.poll_interval
            || bulk.max_wait.is_zero()
            || bulk.download_timeout.is_zero()
            || bulk.stall_timeout.is_zero()
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
            }
        }
        let audit = &self.audit;
        if audit.base_url.is_some() {
            if audit.spill_dir.is_none() {
                return fail(
                    "audit.base_url needs audit.spill_dir (where records wait while the endpoint is down)",
                );
            }
            if audit.retry_interval.is_zero() || audit.max_spill_bytes < 64 * 1024 {
                return fail(
                    "audit.retry_interval_ms must be at least 1 and audit.max_spill_bytes at least 65536",
                );
            }
        }
        if audit.service_name.trim().is_empty() || audit.service_name.len() > 128 {
            return fail("audit.service_name must be 1 to 128 characters");
        }
        let cds = &self.cds;
        if cds.listen.is_some() {
            if !cds
                .service_url
                .as_ref()
                .is_some_and(|u| u.url().path().ends_with("/cds-services"))
            {
                return fail(
                    "cds.listen needs cds.service_url, the service's public URL ending in /cds-services, such as https://trdscreen.hospital.example/cds-services",
                );
            }
            if cds.clients.is_empty() {
                return fail("cds.listen needs at least one trusted client in [cds.clients]");
            }
            if cds.fhir_servers.iter().any(|u| url::Url::parse(u).is_err()) {
                return fail("cds.fhir_servers must be FHIR base URLs, comma-separated");
            }
            // Clocks a few minutes apart, no more: a leeway of hours would let an expired token in.
            if cds.leeway_secs > MAX_LEEWAY_SECS {
                return fail("cds.leeway_secs must be at most 600 seconds");
            }
            if cds.call_timeout.is_zero() || cds.max_request_bytes < 1024 {
                return fail(
                    "cds.call_timeout_secs must be at least 1 and cds.max_request_bytes at least 1024",
                );
            }
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
            crate::files::read_bounded(path, SECRET_FILE_CAP).map_err(|e| {
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
        secrets.view_link_secret = match (
            &self.cds.view_link_secret_file,
            env("TRDSCREEN_CDS_VIEW_LINK_SECRET"),
        ) {
            (Some(path), _) => Some(read(path, "view link secret")?),
            (None, secret) => secret.map(String::into_bytes),
        }
        .map(|secret| secret.trim_ascii().to_vec());
        if secrets
            .view_link_secret
            .as_ref()
            .is_some_and(|s| s.len() < crate::view::link::MIN_SECRET_BYTES)
        {
            return Err(SettingsError(format!(
                "the view link secret (cds.view_link_secret_file or TRDSCREEN_CDS_VIEW_LINK_SECRET) must be at least {} bytes",
                crate::view::link::MIN_SECRET_BYTES
            )));
        }
        Ok(secrets)
    }
}

/// The TOML reader's error with the setting's path first: `fhir.base_url: must be ...`.
fn naming_the_setting(e: toml::de::Error) -> SettingsError {
    let text = e.to_string();
    let text = text.trim();
    SettingsError(match text.rsplit_once("\nin `") {
        Some((message, path)) => format!(
            "{}: {}",
            path.trim_end_matches('`'),
            message.trim().replace('\n', " ")
        ),
        None => text.replace('\n', " "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        assert_eq!(
            s.fhir.base_url.as_ref().map(HttpUrl::as_str),
            Some("https://b.example/fhir")
        );
        assert_eq!(s.fhir.page_cap, 3);
        assert_eq!(s.grpc.max_concurrent_calls, 7);
        assert_eq!(s.fhir.timeout, Duration::from_secs(15));
        assert_eq!(s.fhir.bulk.max_wait, Duration::from_secs(600));
        assert_eq!(s.fhir.bulk.download_retries, 3);
    }

    #[test]
    fn bad_settings_are_refused_with_the_name_of_the_setting() {
        let cases: [&'static [(&'static str, &'static str)]; 11] = [
            &[("TRDSCREEN_GRPC_LISTEN", "not an address")],
            &[("TRDSCREEN_FHIR_BULK_POLL_INTERVAL_SECS", "0")],
            &[("TRDSCREEN_FHIR_BASE_URL", "ftp://x")],
            &[("TRDSCREEN_FHIR_PAGE_CAP", "many")],
            &[("TRDSCREEN_FHIR_AUTH_MODE", "smart")],
            &[("TRDSCREEN_TELEMETRY_METRICS_LISTEN", "9464")],
            &[("TRDSCREEN_TELEMETRY_OTLP_ENDPOINT", "collector:4317")],
            &[("TRDSCREEN_TELEMETRY_LOG_FORMAT", "xml")],
            &[("TRDSCREEN_FHIR_AUTH_TOKEN_URL", "ftp://x")],
            &[("TRDSCREEN_GRPC_CALL_TIMEOUT_SECS", "-1")],
            &[("TRDSCREEN_FHIR_RETRY_BASE_MS", "-5")],
        ];
        let names = [
            "grpc.listen",
            "fhir.bulk",
            "fhir.base_url",
            "TRDSCREEN_FHIR_PAGE_CAP",
            "client_id",
            "telemetry.metrics_listen",
            "telemetry.otlp_endpoint",
            "telemetry.log_format",
            "fhir.auth.token_url",
            "grpc.call_timeout_secs",
            "fhir.retry_base_ms",
        ];
        for (env, name) in cases.into_iter().zip(names) {
            let err = Settings::load(None, &env_of(env)).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn a_token_leeway_is_held_to_ten_minutes_so_that_an_expired_token_stays_expired() {
        let text = |leeway: u64| {
            format!(
                "[cds]\nlisten = \"127.0.0.1:0\"\nservice_url = \"https://t.example/cds-services\"\nleeway_secs = {leeway}\n[cds.clients.\"https://ehr.example\"]\njwks_url = \"https://ehr.example/jwks\"\n"
            )
        };
        assert!(Settings::from_text(&text(30), &|_| None).is_ok());
        assert!(Settings::from_text(&text(600), &|_| None).is_ok());
        for too_long in [601, 86_400, i64::MAX as u64] {
            let err = Settings::from_text(&text(too_long), &|_| None)
                .unwrap_err()
                .to_string();
            assert!(err.contains("cds.leeway_secs must be at most 600"), "{err}");
        }
        let jwt = |leeway: u64| {
            format!("[callers]\nauthentication = \"none\"\n[callers.jwt]\nleeway_secs = {leeway}\n")
        };
        assert!(Settings::from_text(&jwt(600), &|_| None).is_ok());
        let err = Settings::from_text(&jwt(3600), &|_| None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("callers.jwt.leeway_secs must be at most 600"),
            "{err}"
        );
    }

    #[test]
    fn telemetry_defaults_to_local_metrics_and_can_be_turned_off_or_pointed_at_a_collector() {
        let s = Settings::load(None, &|_| None).unwrap();
        assert_eq!(
            s.telemetry.metrics_listen,
            Some("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(s.telemetry.otlp_endpoint, None);
        assert_eq!(s.telemetry.log_format, LogFormat::Text);
        let env = env_of(&[
            ("TRDSCREEN_TELEMETRY_METRICS_LISTEN", ""),
            ("TRDSCREEN_TELEMETRY_OTLP_ENDPOINT", "http://collector:4317"),
            ("TRDSCREEN_TELEMETRY_LOG_FORMAT", "json"),
        ]);
        let s = Settings::load(None, &env).unwrap();
        assert_eq!(s.telemetry.metrics_listen, None);
        assert_eq!(
            s.telemetry.otlp_endpoint.as_ref().map(HttpUrl::as_str),
            Some("http://collector:4317")
        );
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
    fn the_view_link_secret_is_read_from_its_file_or_the_environment_and_must_be_long_enough() {
        let s = Settings::default();
        assert_eq!(s.secrets(&|_| None).unwrap().view_link_secret, None);
        let long = "k".repeat(32);
        let env = |name: &str| (name == "TRDSCREEN_CDS_VIEW_LINK_SECRET").then(|| long.clone());
        assert_eq!(
            s.secrets(&env).unwrap().view_link_secret.as_deref(),
            Some(long.as_bytes())
        );
        let dir = std::env::temp_dir().join(format!("trdscreen-settings-v-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("view-link-secret");
        std::fs::write(&file, format!("{}\n", "f".repeat(40))).unwrap();
        let mut s = Settings::default();
        s.cds.view_link_secret_file = Some(file.clone());
        assert_eq!(
            s.secrets(&env).unwrap().view_link_secret,
            Some(b"f".repeat(40)),
            "the file wins, its newline cut"
        );
        std::fs::write(&file, "short\n").unwrap();
        let err = s.secrets(&env).unwrap_err().to_string();
        assert!(
            err.contains("at least 32 bytes") && !err.contains("short"),
            "{err}"
        );
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

    #[test]
    fn a_settings_file_that_is_a_device_or_too_large_is_refused_naming_it_and_not_read() {
        let err = Settings::load(Some(Path::new("/dev/zero")), &|_| None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "settings: cannot read /dev/zero: not a regular file (a device)"
        );
        let dir = std::env::temp_dir().join(format!("trdscreen-settings-z-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("settings.toml");
        // Sparse: no disk is used, and a reader without a cap would try to hold a terabyte.
        std::fs::File::create(&file)
            .unwrap()
            .set_len(1 << 40)
            .unwrap();
        let err = Settings::load(Some(&file), &|_| None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "settings: cannot read {}: larger than 1 MiB",
                file.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_secret_file_that_is_too_large_is_refused_naming_what_it_is_and_the_cap() {
        let dir = std::env::temp_dir().join(format!("trdscreen-settings-s-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("view-link-secret");
        std::fs::write(&file, "s".repeat(2 * 1024 * 1024)).unwrap();
        let mut s = Settings::default();
        s.cds.view_link_secret_file = Some(file.clone());
        let err = s.secrets(&|_| None).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "settings: cannot read the view link secret file {}: larger than 1 MiB",
                file.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
