//! Bulk Data `$export` against the real FHIR server (sekmet-fhir, started by scripts/test): a Group
//! export and a Patient export with `_type` (and `_since`) bring back exactly the resources loaded,
//! every file is downloaded, and the status URL is gone afterwards; the same in SMART Backend
//! Services mode, where the files need the access token. Each test loads its own patients under a
//! unique id prefix. Skipped, with a message, when the servers' URLs are not set.

use crate::service;

use reqwest::Method;
use serde_json::{Value, json};
use service::{Fhir, unique_prefix};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;
use trdscreen::error::Error;
use trdscreen::fhir::bulk::{ExportLevel, ExportOutcome, ExportRequest, GroupId, export};
use trdscreen::fhir::client::{FhirClient, Idempotent};
use trdscreen::settings::{AuthMode, BulkSettings, Settings, SigningAlgorithm};

fn env_url(name: &str) -> Option<String> {
    service::fhir_env(name)
}

/// Polls as often as sekmet asks (Retry-After: 1).
fn bulk_settings() -> BulkSettings {
    BulkSettings {
        poll_interval: Duration::from_secs(1),
        poll_interval_max: Duration::from_secs(2),
        max_wait: Duration::from_secs(120),
        ..BulkSettings::default()
    }
}

/// Two group members and one outsider, each with a Condition; the members also with a
/// MedicationRequest naming a Medication.
fn population(prefix: &str) -> (Vec<Value>, Value) {
    let mut resources = vec![
        json!({"resourceType": "Medication", "id": format!("{prefix}-med"),
        "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "36437"}]}}),
    ];
    for (n, member) in [(1, true), (2, true), (3, false)] {
        let patient = format!("{prefix}-p{n}");
        resources.push(json!({"resourceType": "Patient", "id": patient}));
        resources.push(
            json!({"resourceType": "Condition", "id": format!("{prefix}-c{n}"),
            "subject": {"reference": format!("Patient/{patient}")},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "35489007"}]}}),
        );
        if member {
            resources.push(
                json!({"resourceType": "MedicationRequest", "id": format!("{prefix}-mr{n}"),
                "status": "active", "intent": "order",
                "subject": {"reference": format!("Patient/{patient}")},
                "medicationReference": {"reference": format!("Medication/{prefix}-med")}}),
            );
        }
    }
    let group = json!({"resourceType": "Group", "id": format!("{prefix}-g"), "type": "person",
        "actual": true, "member": [
            {"entity": {"reference": format!("Patient/{prefix}-p1")}},
            {"entity": {"reference": format!("Patient/{prefix}-p2")}}]});
    (resources, group)
}

fn keys(resources: &[Value], types: &[&str], pick: impl Fn(&str) -> bool) -> BTreeSet<String> {
    resources
        .iter()
        .filter(|r| types.contains(&r["resourceType"].as_str().unwrap_or("")))
        .map(|r| {
            format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            )
        })
        .filter(|k| pick(k))
        .collect()
}

/// `Type/id` of every line of every output file; each line must be a resource of the file's type.
fn exported(outcome: &ExportOutcome) -> Vec<String> {
    let mut found = Vec::new();
    for file in &outcome.files {
        let text = std::fs::read_to_string(&file.path).expect("the file is on disk");
        assert_eq!(text.len() as u64, file.bytes);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let r: Value = serde_json::from_str(line).expect("each line is JSON");
            assert_eq!(r["resourceType"], file.resource_type.as_str(), "{line}");
            found.push(format!(
                "{}/{}",
                file.resource_type,
                r["id"].as_str().unwrap()
            ));
        }
    }
    found
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(unique_prefix(&format!("trdscreen-bulk-{name}")))
}

async fn run(client: &FhirClient, request: &ExportRequest, name: &str) -> ExportOutcome {
    let dest = scratch(name);
    let outcome = export(client, &bulk_settings(), request, &dest, |_| {})
        .await
        .unwrap_or_else(|e| panic!("the export failed: {e}"));
    assert!(outcome.files.iter().all(|f| f.path.starts_with(&dest)));
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    outcome
}

/// The status URL answers 404 or 410 (read with `client`'s credentials).
async fn assert_gone(client: &FhirClient, status_url: &str) {
    let answer = client
        .send(
            Method::GET,
            status_url,
            None,
            &[],
            Idempotent::Yes,
            "status",
        )
        .await;
    assert!(
        matches!(answer, Err(Error::NotFound(_))),
        "the status URL still answers: {answer:?}"
    );
}

const TYPES: [&str; 3] = ["Patient", "Condition", "MedicationRequest"];

#[tokio::test]
async fn group_and_patient_exports_bring_back_exactly_the_loaded_resources() {
    let Some(base) = env_url("TRDSCREEN_TEST_FHIR_URL") else {
        return;
    };
    let fhir = Fhir::new(&base, None);
    let prefix = unique_prefix("bulk");
    let (resources, group) = population(&prefix);
    let mut since = None;
    for r in resources.iter().chain([&group]) {
        let stored = fhir.put(r).await;
        since.get_or_insert_with(|| stored["meta"]["lastUpdated"].as_str().unwrap().to_owned());
    }
    let mut settings = Settings::default();
    settings.fhir.base_url = Some(base.parse().unwrap());
    let client = FhirClient::new(&settings.fhir, &Default::default()).unwrap();

    // Group: the members' resources of the types asked for, and nothing else.
    let request = ExportRequest::parse(
        ExportLevel::Group(GroupId::parse(&format!("{prefix}-g")).unwrap()),
        &TYPES,
        None,
    )
    .unwrap();
    let outcome = run(&client, &request, "group").await;
    let mut found = exported(&outcome);
    found.sort();
    let members = keys(&resources, &TYPES, |k| !k.ends_with("3"));
    assert_eq!(
        found,
        members.iter().cloned().collect::<Vec<_>>(),
        "no duplicates, nothing else"
    );
    assert_gone(&client, &outcome.status_url).await;

    // Patient, since the first write: every patient's resources, ours among them exactly once.
    let request = ExportRequest::parse(
        ExportLevel::Patient,
        &["Patient", "Condition"],
        since.as_deref(),
    )
    .unwrap();
    let outcome = run(&client, &request, "patient").await;
    let found = exported(&outcome);
    let ours: Vec<String> = found
        .iter()
        .filter(|k| k.contains(&format!("/{prefix}-")))
        .cloned()
        .collect();
    let expected = keys(&resources, &["Patient", "Condition"], |_| true);
    assert_eq!(ours, expected.iter().cloned().collect::<Vec<_>>());
    assert_gone(&client, &outcome.status_url).await;
}

#[tokio::test]
async fn a_smart_export_downloads_files_that_need_the_access_token() {
    let (Some(base), Some(key)) = (
        env_url("TRDSCREEN_TEST_SMART_URL"),
        env_url("TRDSCREEN_TEST_SMART_KEY"),
    ) else {
        return;
    };
    let mut settings = Settings::default();
    settings.fhir.base_url = Some(base.parse().unwrap());
    settings.fhir.auth.mode = AuthMode::Smart;
    settings.fhir.auth.client_id = "trdscreen".into();
    settings.fhir.auth.algorithm = SigningAlgorithm::RS384;
    settings.fhir.auth.private_key_file = Some(key.into());
    settings.fhir.auth.scope = "system/*.*".into();
    let secrets = settings.secrets(&|_| None).expect("the key is readable");
    let client = FhirClient::new(&settings.fhir, &secrets).unwrap();

    let prefix = unique_prefix("bulk-smart");
    let (resources, group) = population(&prefix);
    for r in resources.iter().chain([&group]) {
        let url = format!(
            "{base}/{}/{}",
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        );
        client
            .send(
                Method::PUT,
                &url,
                Some(r.to_string().as_bytes()),
                &[],
                Idempotent::Yes,
                "load",
            )
            .await
            .unwrap_or_else(|e| panic!("loading failed: {e}"));
    }
    // Without a token the export is refused: the files below were fetched with it.
    let refused = reqwest::Client::new()
        .get(format!("{base}/Group/{prefix}-g/$export"))
        .header("Prefer", "respond-async")
        .send()
        .await
        .expect("the server answers");
    assert_eq!(refused.status().as_u16(), 401);

    let request = ExportRequest::parse(
        ExportLevel::Group(GroupId::parse(&format!("{prefix}-g")).unwrap()),
        &TYPES,
        None,
    )
    .unwrap();
    let outcome = run(&client, &request, "smart").await;
    let mut found = exported(&outcome);
    found.sort();
    let members = keys(&resources, &TYPES, |k| !k.ends_with("3"));
    assert_eq!(found, members.iter().cloned().collect::<Vec<_>>());
    assert_gone(&client, &outcome.status_url).await;
}

#[tokio::test]
async fn an_export_of_an_unknown_group_fails_with_the_servers_words_and_writes_nothing() {
    let Some(base) = env_url("TRDSCREEN_TEST_FHIR_URL") else {
        return;
    };
    let mut settings = Settings::default();
    settings.fhir.base_url = Some(base.parse().unwrap());
    let client = FhirClient::new(&settings.fhir, &Default::default()).unwrap();
    let group = GroupId::parse(&unique_prefix("no-such-group")).unwrap();
    let request = ExportRequest::parse(ExportLevel::Group(group), &TYPES, None).unwrap();
    let dest = scratch("unknown-group");

    let err = export(&client, &bulk_settings(), &request, &dest, |_| {})
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, Error::NotFound(m) if m.contains("$export") && m.contains("not found")),
        "{err}"
    );
    let left = std::fs::read_dir(&dest).map_or(0, |d| d.count());
    assert_eq!(left, 0, "no file is written");
}
