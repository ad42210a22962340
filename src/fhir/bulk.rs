//! FHIR Bulk Data Access (IG v2) `$export`, client side: kick-off with `Prefer: respond-async`, poll
//! the status URL until the manifest arrives, download every file it lists into a directory,
//! then delete the status URL so the server can drop the export.
//!
//! Credentials go only to the FHIR server's origin: a status URL elsewhere is refused, and so is a
//! file elsewhere that needs the access token. Logs and errors name resource types and counts, never
//! a URL (export URLs carry group ids) nor the server's `X-Progress` text.

mod download;
mod manifest;
mod poll;

use super::client::{FhirClient, Idempotent};
use super::record::InvalidId;
use crate::date::DateTime;
use crate::error::{Error, Result};
use crate::settings::BulkSettings;
use crate::summary;
use reqwest::{Method, StatusCode};
use std::path::{Path, PathBuf};
use tokio::time::Instant;

/// Which resources the server exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportLevel {
    /// `{base}/$export`: everything on the server.
    System,
    /// `{base}/Patient/$export`: every patient's compartment.
    Patient,
    /// `{base}/Group/{id}/$export`: the compartments of a group's members.
    Group(GroupId),
}

/// A `Group` resource id (FHIR id rules: 1 to 64 of `A-Z a-z 0-9 - .`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupId(String);

impl GroupId {
    pub fn parse(text: &str) -> Result<GroupId, InvalidId> {
        if is_fhir_id(text) {
            Ok(GroupId(text.to_owned()))
        } else {
            Err(InvalidId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One grammar for every id: the FHIR id's (which refuses `.` and `..`).
fn is_fhir_id(text: &str) -> bool {
    super::id::is_fhir_id(text)
}

/// A FHIR resource type name (`Patient`, `MedicationRequest`): an upper-case letter, then letters.
/// Also what output files are named after, so nothing else may reach a file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceType(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a FHIR resource type is an upper-case letter followed by letters (e.g. MedicationRequest)"
)]
pub struct InvalidResourceType;

impl ResourceType {
    pub fn parse(text: &str) -> Result<ResourceType, InvalidResourceType> {
        let mut bytes = text.bytes();
        let ok = text.len() <= 64
            && bytes.next().is_some_and(|b| b.is_ascii_uppercase())
            && bytes.all(|b| b.is_ascii_alphabetic());
        if ok {
            Ok(ResourceType(text.to_owned()))
        } else {
            Err(InvalidResourceType)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A FHIR `instant`: a date and time to the second with a zone (`2025-01-01T00:00:00Z`), as `_since`
/// wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhirInstant(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a FHIR instant is YYYY-MM-DDThh:mm:ss[.fff] with Z or +hh:mm (e.g. 2025-01-01T00:00:00Z)")]
pub struct InvalidInstant;

impl FhirInstant {
    pub fn parse(text: &str) -> Result<FhirInstant, InvalidInstant> {
        let zoned = text.ends_with('Z')
            || text
                .len()
                .checked_sub(6)
                .and_then(|i| text.as_bytes().get(i))
                .is_some_and(|b| *b == b'+' || *b == b'-');
        let full = text.len() >= 20 && text.as_bytes().get(10) == Some(&b'T');
        if zoned && full && DateTime::parse(text).is_ok() {
            Ok(FhirInstant(text.to_owned()))
        } else {
            Err(InvalidInstant)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What to export: the level, `_type` (empty: every type the server offers) and `_since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    pub level: ExportLevel,
    pub types: Vec<ResourceType>,
    pub since: Option<FhirInstant>,
}

impl ExportRequest {
    /// The request in words, for a job's identity in its checkpoint: level, `_type`, `_since`.
    pub fn describe(&self) -> String {
        let level = match &self.level {
            ExportLevel::System => "system".to_owned(),
            ExportLevel::Patient => "patient".to_owned(),
            ExportLevel::Group(id) => format!("group/{}", id.as_str()),
        };
        let types: Vec<&str> = self.types.iter().map(ResourceType::as_str).collect();
        let since = self.since.as_ref().map_or("", |s| s.as_str());
        format!("{level};_type={};_since={since}", types.join(","))
    }

    /// A request from words (command-line options); each bad part is an `InvalidArgument` naming it.
    pub fn parse(level: ExportLevel, types: &[&str], since: Option<&str>) -> Result<ExportRequest> {
        let types = types
            .iter()
            .map(|t| {
                ResourceType::parse(t).map_err(|e| Error::InvalidArgument(summary!("_type: {}", e)))
            })
            .collect::<Result<Vec<_>>>()?;
        let since = since
            .map(|s| {
                FhirInstant::parse(s).map_err(|e| Error::InvalidArgument(summary!("_since: {}", e)))
            })
            .transpose()?;
        Ok(ExportRequest {
            level,
            types,
            since,
        })
    }
}

/// How an export is getting on, for a progress display. Never logged by this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportProgress {
    /// The server accepted the export (202).
    Accepted,
    /// Still running after `polls` status requests; `x_progress` is the server's own words.
    InProgress {
        polls: u32,
        x_progress: Option<String>,
    },
    /// The manifest arrived: so many files to download (output, error and deleted files).
    Ready { files: usize },
    /// A download failed and starts again from scratch (`attempt` counts from 2).
    Retrying { resource_type: String, attempt: u32 },
    /// A file is complete on disk.
    Downloaded {
        resource_type: String,
        bytes: u64,
        done: usize,
        of: usize,
    },
}

/// One downloaded NDJSON file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedFile {
    pub resource_type: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// The resource count the manifest announced, when it did.
    pub count: Option<u64>,
}

/// What an export produced: in `dest`, the output files as `{Type}.{n}.ndjson`; in `dest/error`,
/// the server's OperationOutcome files; in `dest/deleted`, Bundles of deletions (only with `_since`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOutcome {
    pub files: Vec<ExportedFile>,
    pub errors: Vec<ExportedFile>,
    pub deleted: Vec<ExportedFile>,
    /// The server's `transactionTime`: the `_since` of the next incremental export.
    pub transaction_time: String,
    /// The status URL, already deleted when `export` returns (kept so a check can see it is gone).
    pub status_url: String,
}

/// Runs one export into `dest` (created if missing; it must hold no files, so that a file from an
/// earlier export is never taken for part of this one). The status URL is deleted at the end,
/// also when the export failed or ran out of time.
pub async fn export(
    client: &FhirClient,
    settings: &BulkSettings,
    request: &ExportRequest,
    dest: &Path,
    mut progress: impl FnMut(ExportProgress),
) -> Result<ExportOutcome> {
    download::prepare(dest).await?;
    let deadline = Instant::now() + std::time::Duration::from_secs(settings.max_wait_secs);
    let status_url = kick_off(client, request).await?;
    progress(ExportProgress::Accepted);
    let result = async {
        let manifest =
            poll::wait_for_manifest(client, settings, &status_url, deadline, &mut progress).await?;
        download::all(client, settings, &manifest, dest, &mut progress).await
    }
    .await;
    delete_status(client, &status_url).await;
    result.map(|outcome| ExportOutcome {
        status_url,
        ..outcome
    })
}

/// The kick-off request; the status URL (absolute, on the FHIR server's origin) when accepted.
async fn kick_off(client: &FhirClient, request: &ExportRequest) -> Result<String> {
    let path = match &request.level {
        ExportLevel::System => "$export".to_owned(),
        ExportLevel::Patient => "Patient/$export".to_owned(),
        ExportLevel::Group(id) => format!("Group/{}/$export", id.as_str()),
    };
    let mut url = url::Url::parse(&client.url(&path))
        .map_err(|_| Error::NotConfigured("fhir.base_url is not a URL".into()))?;
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("_outputFormat", "application/fhir+ndjson");
        if !request.types.is_empty() {
            let types: Vec<&str> = request.types.iter().map(ResourceType::as_str).collect();
            query.append_pair("_type", &types.join(","));
        }
        if let Some(since) = &request.since {
            query.append_pair("_since", since.as_str());
        }
    }
    let reply = client
        .send(
            Method::GET,
            url.as_str(),
            None,
            &[("Prefer", "respond-async")],
            Idempotent::Yes,
            "$export",
        )
        .await?;
    if reply.status != StatusCode::ACCEPTED {
        return Err(Error::BadGateway(summary!(
            "the FHIR server answered the $export kick-off with {}, not 202 Accepted",
            reply.status.as_u16()
        )));
    }
    let location = reply.location.ok_or_else(|| {
        Error::BadGateway("the $export kick-off answer has no Content-Location".into())
    })?;
    let status_url = url
        .join(&location)
        .map_err(|_| Error::BadGateway("the $export Content-Location is not a URL".into()))?;
    if !client.same_origin(status_url.as_str()) {
        return Err(Error::BadGateway(
            "the $export status URL (Content-Location) leaves the FHIR server: refused, credentials go only to the FHIR server"
                .into(),
        ));
    }
    tracing::info!("bulk export accepted");
    Ok(status_url.into())
}

/// Best effort: the export is over for us either way, so a failure is only logged.
async fn delete_status(client: &FhirClient, status_url: &str) {
    match client
        .send_raw(
            Method::DELETE,
            status_url,
            &[],
            true,
            None,
            "$export status",
        )
        .await
    {
        Ok(response) if response.status().is_success() => {
            tracing::debug!("bulk export status deleted");
        }
        Ok(response) => tracing::warn!(
            status = response.status().as_u16(),
            "the FHIR server refused to delete the bulk export status"
        ),
        Err(e) => tracing::warn!(error = %e, "could not delete the bulk export status"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_parts_are_parsed_and_bad_ones_named() {
        let ok = ExportRequest::parse(
            ExportLevel::Patient,
            &["Patient", "MedicationRequest"],
            Some("2025-01-01T00:00:00.123+02:00"),
        )
        .unwrap();
        assert_eq!(ok.types.len(), 2);
        for (types, since, named) in [
            (&["patient"][..], None, "_type"),
            (&["Patient/x"][..], None, "_type"),
            (&["../etc"][..], None, "_type"),
            (&[][..], Some("2025-01-01"), "_since"),
            (&[][..], Some("2025-01-01T00:00:00"), "_since"),
            (&[][..], Some("2025-13-01T00:00:00Z"), "_since"),
        ] {
            let err = ExportRequest::parse(ExportLevel::System, types, since).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidArgument(m) if m.contains(named)),
                "{err}"
            );
        }
    }

    #[test]
    fn group_ids_follow_the_fhir_id_rules() {
        assert!(GroupId::parse("g-1.a").is_ok());
        for bad in ["", "a/b", "a b", &"x".repeat(65), "é"] {
            assert!(GroupId::parse(bad).is_err(), "{bad}");
        }
    }
}
