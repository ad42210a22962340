//! `TRDSCREEN_<SECTION>_<KEY>` environment variables over the settings file: each replaces its
//! key in the file's table before the table is read into [`Settings`](super::Settings).

use super::SettingsError;

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
    ("grpc.max_connections", Kind::Integer),
    ("grpc.population_concurrency", Kind::Integer),
    ("grpc.tls_cert_file", Kind::Text),
    ("grpc.tls_key_file", Kind::Text),
    ("grpc.client_ca_file", Kind::Text),
    ("grpc.shutdown_grace_secs", Kind::Integer),
    ("grpc.reflection", Kind::Boolean),
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
    ("cds.listen", Kind::Text),
    ("cds.service_url", Kind::Text),
    ("cds.fhir_servers", Kind::Text),
    ("cds.max_request_bytes", Kind::Integer),
    ("cds.max_connections", Kind::Integer),
    ("cds.call_timeout_secs", Kind::Integer),
    ("cds.leeway_secs", Kind::Integer),
    ("cds.view_link_secret_file", Kind::Text),
    ("knowledge_dir", Kind::Text),
];

pub fn env_name(path: &str) -> String {
    format!("TRDSCREEN_{}", path.replace('.', "_").to_ascii_uppercase())
}

/// Puts each variable that is set into `table` at its setting's path, as the kind of value the
/// settings file would hold there.
pub(super) fn apply_overrides(
    table: &mut toml::Table,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), SettingsError> {
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
        set_path(table, path, value);
    }
    Ok(())
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
    use crate::settings::Settings;

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
            // Addresses and URLs refuse "json": they get a value of their own type.
            let candidates = [
                (value, expected),
                ("192.0.2.1:7", serde_json::json!("192.0.2.1:7")),
                (
                    "https://override.example/x",
                    serde_json::json!("https://override.example/x"),
                ),
            ];
            let name = env_name(path);
            for (value, expected) in candidates
                .iter()
                .take(if *leaf == Kind::Text { 3 } else { 1 })
            {
                let env = |n: &str| (n == name).then(|| (*value).to_owned());
                if let Ok(settings) = Settings::from_text("", &env) {
                    let settings = serde_json::to_value(settings).unwrap();
                    let got = settings.pointer(&format!("/{}", path.replace('.', "/")));
                    assert_eq!(got, Some(expected), "{name}");
                    reached += 1;
                    break;
                }
            }
        }
        assert!(reached >= 45, "{reached}");
    }
}
