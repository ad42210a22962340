//! Downloading the manifest's files: each streamed to disk chunk by chunk (never whole in memory),
//! written as `name.part` and renamed when complete, so a file that is there is whole; a failed or
//! cut-short download starts again from scratch, a bounded number of times.

use super::manifest::{FileEntry, Manifest};
use super::{ExportOutcome, ExportProgress, ExportedFile, ResourceType, poll};
use crate::error::{Error, LocalPath, Result};
use crate::fhir::body::{self, ByteBudget};
use crate::fhir::client::{FhirClient, backoff, known_type, status_error, transport_error};
use crate::settings::BulkSettings;
use crate::summary;
use reqwest::{Method, StatusCode};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;

const ACCEPT: (&str, &str) = ("Accept", "application/fhir+ndjson");

/// Creates `dest` if needed; refuses one that holds anything.
pub(super) async fn prepare(dest: &Path) -> Result<()> {
    tokio::fs::create_dir_all(dest)
        .await
        .map_err(|e| local(dest, &e))?;
    let mut entries = tokio::fs::read_dir(dest)
        .await
        .map_err(|e| local(dest, &e))?;
    match entries.next_entry().await {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err(Error::InvalidArgument(summary!(
            "the export directory {} is not empty",
            LocalPath(dest)
        ))),
        Err(e) => Err(local(dest, &e)),
    }
}

pub(super) async fn all(
    client: &FhirClient,
    settings: &BulkSettings,
    manifest: &Manifest,
    dest: &Path,
    progress: &mut impl FnMut(ExportProgress),
) -> Result<ExportOutcome> {
    let mut run = Run {
        client,
        settings,
        with_token: manifest.requires_access_token,
        done: 0,
        of: manifest.file_count(),
        budget: ByteBudget::new(settings.max_download_bytes),
    };
    tracing::info!(files = run.of, "bulk export complete; downloading");
    progress(ExportProgress::Ready { files: run.of });
    let files = run.files(&manifest.output, dest, progress).await?;
    let errors = run
        .files(&manifest.error, &dest.join("error"), progress)
        .await?;
    let deleted = run
        .files(&manifest.deleted, &dest.join("deleted"), progress)
        .await?;
    Ok(ExportOutcome {
        files,
        errors,
        deleted,
        transaction_time: manifest.transaction_time.clone(),
        status_url: String::new(),
    })
}

struct Run<'a> {
    client: &'a FhirClient,
    settings: &'a BulkSettings,
    with_token: bool,
    done: usize,
    of: usize,
    /// What all files together may write (`fhir.bulk.max_download_bytes`).
    budget: ByteBudget,
}

/// One try at a file: it either failed for good, or may be tried again (after the server's
/// `Retry-After`, when it sent one).
enum Failed {
    ForGood(Error),
    Retry(Error, Option<Duration>),
}

impl Run<'_> {
    /// Downloads `entries` into `dir` as `{Type}.{n}.ndjson`, n counting each type's files from 1.
    async fn files(
        &mut self,
        entries: &[FileEntry],
        dir: &Path,
        progress: &mut impl FnMut(ExportProgress),
    ) -> Result<Vec<ExportedFile>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| local(dir, &e))?;
        let mut numbers: HashMap<&ResourceType, u32> = HashMap::new();
        let mut files = Vec::with_capacity(entries.len());
        for entry in entries {
            let n = numbers.entry(&entry.resource_type).or_insert(0);
            *n += 1;
            let path = dir.join(format!("{}.{n}.ndjson", entry.resource_type.as_str()));
            let bytes = self.file(entry, &path, progress).await?;
            self.done += 1;
            progress(ExportProgress::Downloaded {
                resource_type: entry.resource_type.as_str().to_owned(),
                bytes,
                done: self.done,
                of: self.of,
            });
            files.push(ExportedFile {
                resource_type: entry.resource_type.as_str().to_owned(),
                path,
                bytes,
                count: entry.count,
            });
        }
        Ok(files)
    }

    /// One file, with retries from scratch; its size in bytes.
    async fn file(
        &self,
        entry: &FileEntry,
        path: &Path,
        progress: &mut impl FnMut(ExportProgress),
    ) -> Result<u64> {
        let resource_type = entry.resource_type.as_str();
        if self.with_token && !self.client.same_origin(&entry.url) {
            return Err(Error::BadGateway(summary!(
                "a {} file of the export is on another server and needs the access token: refused, credentials go only to the FHIR server",
                known_type(resource_type)
            )));
        }
        let mut attempt = 1;
        loop {
            let failure = match self.fetch(entry, path).await {
                Ok(bytes) => return Ok(bytes),
                Err(Failed::ForGood(e)) => e,
                Err(Failed::Retry(e, asked)) if attempt <= self.settings.download_retries => {
                    tracing::warn!(resource_type = known_type(resource_type), attempt, error = %e, "bulk file download failed; starting again");
                    let wait =
                        asked.unwrap_or_else(|| backoff(self.client.retry_policy(), attempt - 1));
                    tokio::time::sleep(
                        wait.min(Duration::from_secs(self.settings.poll_interval_max_secs)),
                    )
                    .await;
                    attempt += 1;
                    progress(ExportProgress::Retrying {
                        resource_type: resource_type.to_owned(),
                        attempt,
                    });
                    continue;
                }
                Err(Failed::Retry(e, _)) => match e {
                    Error::Unavailable(m) => {
                        Error::Unavailable(summary!("{} ({} attempts)", m, attempt))
                    }
                    Error::Timeout(m) => Error::Timeout(summary!("{} ({} attempts)", m, attempt)),
                    other => other,
                },
            };
            let _ = tokio::fs::remove_file(part_path(path)).await;
            return Err(failure);
        }
    }

    /// One attempt: GET, then the body chunk by chunk into `name.part`.
    async fn fetch(&self, entry: &FileEntry, path: &Path) -> Result<u64, Failed> {
        let label = summary!("{} export file", known_type(entry.resource_type.as_str()));
        let mut response = self.open(&entry.url).await.map_err(retry_if_transient)?;
        let status = response.status();
        if !status.is_success() {
            let asked = poll::retry_after(response.headers(), SystemTime::now());
            let body = body::read_head(response, 64 * 1024).await;
            let error = match status_error(status, &body, label) {
                Error::NotFound(m) => Error::BadGateway(summary!("the export lost a file: {}", m)),
                other => other,
            };
            let transient = status.is_server_error()
                || matches!(
                    status,
                    StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT
                );
            return Err(if transient {
                Failed::Retry(error, asked)
            } else {
                Failed::ForGood(error)
            });
        }
        let part = part_path(path);
        let mut file = tokio::fs::File::create(&part)
            .await
            .map_err(|e| Failed::ForGood(local(&part, &e)))?;
        let stall = Duration::from_secs(self.settings.stall_timeout_secs);
        // Given back to the budget unless the file is kept.
        let mut spent = Spent {
            budget: &self.budget,
            bytes: 0,
        };
        loop {
            let chunk = match tokio::time::timeout(stall, response.chunk()).await {
                Err(_) => {
                    return Err(Failed::Retry(
                        Error::Timeout(summary!(
                            "the {} download stalled for {} s (fhir.bulk.stall_timeout_secs)",
                            label,
                            stall.as_secs()
                        )),
                        None,
                    ));
                }
                Ok(Err(e)) => return Err(Failed::Retry(transport_error(&e, label), None)),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => chunk,
            };
            self.budget.take(chunk.len() as u64).map_err(|spent| {
                Failed::ForGood(Error::ResourceExhausted(summary!(
                    "the export is larger than {} bytes (fhir.bulk.max_download_bytes)",
                    spent.limit
                )))
            })?;
            spent.bytes += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(|e| Failed::ForGood(local(&part, &e)))?;
        }
        file.flush()
            .await
            .map_err(|e| Failed::ForGood(local(&part, &e)))?;
        drop(file);
        tokio::fs::rename(&part, path)
            .await
            .map_err(|e| Failed::ForGood(local(path, &e)))?;
        Ok(std::mem::take(&mut spent.bytes))
    }

    /// The GET of a file, with the token when the manifest asks for it (the URL is then on the FHIR
    /// server's origin, checked before). Redirects are not followed, as everywhere in the client.
    async fn open(&self, url: &str) -> Result<reqwest::Response> {
        let timeout = Duration::from_secs(self.settings.download_timeout_secs);
        self.client
            .send_raw(
                Method::GET,
                url,
                &[ACCEPT],
                self.with_token,
                Some(timeout),
                "export file",
            )
            .await
    }
}

/// The bytes one attempt at a file wrote: given back to the budget when the attempt fails (its
/// `.part` file is replaced by the next attempt or removed).
struct Spent<'a> {
    budget: &'a ByteBudget,
    bytes: u64,
}

impl Drop for Spent<'_> {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

fn retry_if_transient(e: Error) -> Failed {
    match e {
        Error::Unavailable(_) | Error::Timeout(_) => Failed::Retry(e, None),
        other => Failed::ForGood(other),
    }
}

fn part_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// A local file problem (the export directory, the disk): the job's environment, not the server.
fn local(path: &Path, e: &std::io::Error) -> Error {
    Error::NotConfigured(summary!(
        "cannot write the export into {}: {}",
        LocalPath(path),
        e.kind()
    ))
}
