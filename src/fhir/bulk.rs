//! FHIR Bulk Data Access (IG v2) `$export`, client side: kick-off with `Prefer: respond-async`, poll
//! the status URL until the manifest arrives, download every file it lists into a directory (a
//! bounded number at once), then delete the status URL so the server can drop the export.
//!
//! The kick-off asks `Prefer: handling=strict`, so that a server which cannot apply a parameter
//! says so instead of quietly ignoring it. A `_typeFilter` the server refuses is dropped and the
//! export asked again with `_type` alone (the outcome says so); a patient-scoped export (`patient`,
//! POST) the server refuses is reported as refused, for the caller to read those patients another
//! way.
//!
//! Credentials go only to the FHIR server's origin: a status URL elsewhere is refused, and so is a
//! file elsewhere that needs the access token. Logs and errors name resource types and counts, never
//! a URL (export URLs carry group ids) nor the server's `X-Progress` text.

mod download;
pub mod local;
mod manifest;
mod poll;

use super::PatientId;
use super::client::FhirClient;
use super::transport::{backoff, status_error};
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

pub use super::GroupId;

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

/// What to export: the level, `_type` (empty: every type the server offers), `_since`,
/// `_typeFilter` (FHIR queries such as `Observation?code=44261-6,...`; empty: none) and, for a
/// patient-scoped export, the patients (the `patient` parameter, sent in a POST kick-off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    pub level: ExportLevel,
    pub types: Vec<ResourceType>,
    pub since: Option<FhirInstant>,
    pub type_filter: Vec<String>,
    pub patients: Vec<PatientId>,
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
        let mut text = format!("{level};_type={};_since={since}", types.join(","));
        if !self.type_filter.is_empty() {
            // The filtered types only: the queries themselves follow the knowledge base.
            let filtered: Vec<&str> = self
                .type_filter
                .iter()
                .map(|q| q.split('?').next().unwrap_or(q))
                .collect();
            text.push_str(&format!(";_typeFilter={}", filtered.join(",")));
        }
        text
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
            type_filter: Vec::new(),
            patients: Vec::new(),
        })
    }

    /// The same export narrowed by `_typeFilter` queries.
    pub fn with_type_filter(mut self, queries: Vec<String>) -> ExportRequest {
        self.type_filter = queries;
        self
    }

    /// The same export of these patients only, at Patient level (a system-level export takes no
    /// `patient` parameter) or in the same Group; `_since` is dropped: their records are wanted
    /// whole.
    pub fn of_patients(&self, patients: Vec<PatientId>) -> ExportRequest {
        let level = match &self.level {
            ExportLevel::Group(id) => ExportLevel::Group(id.clone()),
            ExportLevel::System | ExportLevel::Patient => ExportLevel::Patient,
        };
        ExportRequest {
            level,
            types: self.types.clone(),
            since: None,
            type_filter: self.type_filter.clone(),
            patients,
        }
    }
}

/// What became of a `_typeFilter` the request carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeFilterOutcome {
    /// The request carried none.
    NotAsked,
    /// The server accepted it (whether it applied it, only the files can tell).
    Sent,
    /// The server refused it; the export was asked again with `_type` alone.
    Refused,
}

impl TypeFilterOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            TypeFilterOutcome::NotAsked => "not-asked",
            TypeFilterOutcome::Sent => "sent",
            TypeFilterOutcome::Refused => "refused",
        }
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
    /// So many more bytes arrived (of any file being downloaded).
    Received { bytes: u64 },
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
    /// The kick-off request as the server recorded it (the manifest's `request`), else as sent.
    pub request: String,
    pub requires_access_token: bool,
    pub type_filter: TypeFilterOutcome,
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
    progress: impl FnMut(ExportProgress),
) -> Result<ExportOutcome> {
    match export_unless_refused(client, settings, request, dest, progress).await? {
        Some(outcome) => Ok(outcome),
        None => Err(Error::BadGateway(
            "the FHIR server refused the $export request".into(),
        )),
    }
}

/// [`export`], or `None` when the server refuses the request as such (400, 405, 422 or 501 at
/// kick-off: for a patient-scoped export, a server without the `patient` parameter or without
/// POST). A refused `_typeFilter` alone is not a refusal: the export is asked again without it.
pub async fn export_unless_refused(
    client: &FhirClient,
    settings: &BulkSettings,
    request: &ExportRequest,
    dest: &Path,
    mut progress: impl FnMut(ExportProgress),
) -> Result<Option<ExportOutcome>> {
    download::prepare(dest).await?;
    // The setting is at most ten years (`settings::values::LONGEST`): the clock holds that.
    let deadline = Instant::now() + settings.max_wait;
    let mut type_filter = if request.type_filter.is_empty() {
        TypeFilterOutcome::NotAsked
    } else {
        TypeFilterOutcome::Sent
    };
    let (status_url, sent) = match kick_off(client, request, true).await? {
        KickOff::Accepted { status_url, sent } => (status_url, sent),
        KickOff::Refused(_) if type_filter == TypeFilterOutcome::Sent => {
            tracing::warn!(
                "the FHIR server refused _typeFilter; exporting with _type alone (larger files, same screening)"
            );
            type_filter = TypeFilterOutcome::Refused;
            match kick_off(client, request, false).await? {
                KickOff::Accepted { status_url, sent } => (status_url, sent),
                KickOff::Refused(e) => return refused(request, e),
            }
        }
        KickOff::Refused(e) => return refused(request, e),
    };
    progress(ExportProgress::Accepted);
    let result = async {
        let manifest =
            poll::wait_for_manifest(client, settings, &status_url, deadline, &mut progress).await?;
        download::all(client, settings, &manifest, dest, &mut progress).await
    }
    .await;
    delete_status(client, &status_url).await;
    result.map(|outcome| {
        Some(ExportOutcome {
            request: if outcome.request.is_empty() {
                sent
            } else {
                outcome.request
            },
            type_filter,
            status_url,
            ..outcome
        })
    })
}

/// A refused kick-off: `None` for a patient-scoped export (the caller reads those patients another
/// way), the server's error otherwise.
fn refused(request: &ExportRequest, e: Error) -> Result<Option<ExportOutcome>> {
    if request.patients.is_empty() {
        Err(e)
    } else {
        tracing::warn!("the FHIR server does not take a patient-scoped $export");
        Ok(None)
    }
}

enum KickOff {
    /// 202: the status URL (absolute, on the FHIR server's origin) and the request as sent.
    Accepted { status_url: String, sent: String },
    /// The server will not run this request (400, 405, 422, 501), with its error.
    Refused(Error),
}

/// Kick-off statuses that mean "not this request" rather than "not now" or "not at all".
fn is_refusal(status: StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 405 | 422 | 501)
}

/// The kick-off request, retried on connection errors, 429 and 5xx (other than 501) as any
/// idempotent request is: a GET with the parameters in the query, or, for a patient-scoped export,
/// a POST of a `Parameters` resource (the IG allows `patient` only there).
async fn kick_off(
    client: &FhirClient,
    request: &ExportRequest,
    with_type_filter: bool,
) -> Result<KickOff> {
    let path = match &request.level {
        ExportLevel::System => "$export".to_owned(),
        ExportLevel::Patient => "Patient/$export".to_owned(),
        ExportLevel::Group(id) => format!("Group/{}/$export", id.as_str()),
    };
    let mut url = client.endpoint(&path);
    let mut params: Vec<(&str, String)> =
        vec![("_outputFormat", "application/fhir+ndjson".to_owned())];
    if !request.types.is_empty() {
        let types: Vec<&str> = request.types.iter().map(ResourceType::as_str).collect();
        params.push(("_type", types.join(",")));
    }
    if let Some(since) = &request.since {
        params.push(("_since", since.as_str().to_owned()));
    }
    if with_type_filter {
        for query in &request.type_filter {
            params.push(("_typeFilter", query.clone()));
        }
    }
    let post = !request.patients.is_empty();
    let body = if post {
        let mut parameters: Vec<serde_json::Value> = params
            .iter()
            .map(|(name, value)| serde_json::json!({"name": name, "valueString": value}))
            .collect();
        parameters.extend(request.patients.iter().map(|p| {
            serde_json::json!({"name": "patient", "valueReference": {"reference": format!("Patient/{p}")}})
        }));
        Some(
            serde_json::to_vec(
                &serde_json::json!({"resourceType": "Parameters", "parameter": parameters}),
            )
            .map_err(|_| Error::BadGateway("cannot encode the $export Parameters".into()))?,
        )
    } else {
        let mut query = url.query_pairs_mut();
        for (name, value) in &params {
            query.append_pair(name, value);
        }
        drop(query);
        None
    };
    let method = if post { Method::POST } else { Method::GET };
    let mut headers = vec![
        ("Prefer", "respond-async, handling=strict"),
        ("Accept", "application/fhir+json"),
    ];
    if post {
        headers.push(("Content-Type", "application/fhir+json"));
    }
    let retry = client.retry_policy();
    let mut attempt = 0;
    let response = loop {
        let answer = client
            .send_raw_with_body(
                method.clone(),
                url.as_str(),
                &headers,
                body.as_deref(),
                "$export",
            )
            .await;
        let wait = match answer {
            Err(e @ (Error::Unavailable(_) | Error::Timeout(_))) if attempt < retry.max_retries => {
                tracing::warn!(error = %e, "the $export kick-off failed; retrying");
                backoff(retry, attempt)
            }
            Err(e) => return Err(e),
            Ok(r) => {
                let status = r.status();
                let transient = status == StatusCode::TOO_MANY_REQUESTS
                    || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED);
                if !transient || attempt >= retry.max_retries {
                    break r;
                }
                crate::fhir::transport::retry_after(r.headers())
                    .unwrap_or_else(|| backoff(retry, attempt))
                    .min(retry.retry_after_cap)
            }
        };
        attempt += 1;
        tokio::time::sleep(wait).await;
    };
    let status = response.status();
    if status != StatusCode::ACCEPTED {
        // Only the head of an error's body is read: its OperationOutcome's codes are what is used,
        // and a server may answer with any amount.
        let body = super::body::read_head(response, super::body::ERROR_HEAD).await;
        let error = status_error(status, &body, "$export");
        if is_refusal(status) {
            return Ok(KickOff::Refused(error));
        }
        return Err(match error {
            e @ (Error::NotFound(_)
            | Error::Unauthenticated(_)
            | Error::PermissionDenied(_)
            | Error::Unavailable(_)) => e,
            _ => Error::BadGateway(summary!(
                "the FHIR server answered the $export kick-off with {}, not 202 Accepted",
                status.as_u16()
            )),
        });
    }
    let location = response
        .headers()
        .get(reqwest::header::CONTENT_LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| {
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
    Ok(KickOff::Accepted {
        status_url: status_url.into(),
        sent: url.into(),
    })
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
