//! Downloading the manifest's files, a bounded number at once (`fhir.bulk.download_concurrency`):
//! servers often split each type into many files (one per thousand resources is common), and one
//! small file at a time would leave the job waiting on round trips. Each file is streamed to disk
//! chunk by chunk (never whole in memory), written as `name.part` (owner-only) and renamed when
//! complete, so a file that is there is whole; a failed or cut-short download starts again from
//! scratch, a bounded number of times. Progress counts bytes as they arrive.

use super::manifest::{FileEntry, Manifest};
use super::{ExportOutcome, ExportProgress, ExportedFile, ResourceType, TypeFilterOutcome};
use crate::error::{Error, LocalPath, Result};
use crate::fhir::body::{self, ByteBudget};
use crate::fhir::client::FhirClient;
use crate::fhir::retry::{AskedWait, Attempt, Rules, Stop, with_retries};
use crate::fhir::transport::{known_type, status_error, transport_error};
use crate::settings::BulkSettings;
use crate::summary;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::UnboundedSender;

const ACCEPT: (&str, &str) = ("Accept", "application/fhir+ndjson");
/// Owner-only: the files hold whole FHIR resources.
const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

/// Creates `dest` (owner-only) if needed; refuses one that holds anything.
pub(super) async fn prepare(dest: &Path) -> Result<()> {
    create_dir(dest).await?;
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

async fn create_dir(dir: &Path) -> Result<()> {
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true).mode(DIR_MODE);
    builder.create(dir).await.map_err(|e| local(dir, &e))
}

/// One file to fetch and where it goes.
struct Job<'m> {
    entry: &'m FileEntry,
    path: PathBuf,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Output,
    Error,
    Deleted,
}

pub(super) async fn all(
    client: &FhirClient,
    settings: &BulkSettings,
    manifest: &Manifest,
    dest: &Path,
    progress: &mut impl FnMut(ExportProgress),
) -> Result<ExportOutcome> {
    let run = Run {
        client,
        settings,
        with_token: manifest.requires_access_token,
        budget: ByteBudget::new(settings.max_download_bytes),
    };
    let of = manifest.file_count();
    tracing::info!(files = of, "bulk export complete; downloading");
    progress(ExportProgress::Ready { files: of });
    let mut jobs = Vec::with_capacity(of);
    for (entries, dir, kind) in [
        (&manifest.output, dest.to_owned(), Kind::Output),
        (&manifest.error, dest.join("error"), Kind::Error),
        (&manifest.deleted, dest.join("deleted"), Kind::Deleted),
    ] {
        if entries.is_empty() {
            continue;
        }
        create_dir(&dir).await?;
        // `{Type}.{n}.ndjson`, n counting each type's files from 1: the names never come from the
        // server, only the (checked) type does.
        let mut numbers: HashMap<&ResourceType, u32> = HashMap::new();
        for entry in entries {
            let n = numbers.entry(&entry.resource_type).or_insert(0);
            *n += 1;
            let path = dir.join(format!("{}.{n}.ndjson", entry.resource_type.as_str()));
            jobs.push(Job { entry, path, kind });
        }
    }
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let run = &run;
    let mut downloads = futures_util::stream::iter(jobs.iter().enumerate().map(move |(i, job)| {
        let events = events.clone();
        async move { (i, run.file(job.entry, &job.path, &events).await) }
    }))
    .buffer_unordered(settings.download_concurrency.max(1));
    let mut sizes: Vec<Option<u64>> = vec![None; jobs.len()];
    let mut done = 0;
    loop {
        tokio::select! {
            Some(event) = received.recv() => progress(event),
            next = downloads.next() => match next {
                Some((i, Ok(bytes))) => {
                    done += 1;
                    sizes[i] = Some(bytes);
                    progress(ExportProgress::Downloaded {
                        resource_type: jobs[i].entry.resource_type.as_str().to_owned(),
                        bytes,
                        done,
                        of,
                    });
                }
                Some((_, Err(e))) => {
                    // The export has failed: the downloads still running are dropped with the
                    // stream, and their cut files removed.
                    drop(downloads);
                    for job in &jobs {
                        let _ = tokio::fs::remove_file(part_path(&job.path)).await;
                    }
                    return Err(e);
                }
                None => break,
            },
        }
    }
    while let Ok(event) = received.try_recv() {
        progress(event);
    }
    let mut outcome = ExportOutcome {
        files: Vec::new(),
        errors: Vec::new(),
        deleted: Vec::new(),
        transaction_time: manifest.transaction_time.clone(),
        request: manifest.request.clone().unwrap_or_default(),
        requires_access_token: manifest.requires_access_token,
        type_filter: TypeFilterOutcome::NotAsked,
        status_url: String::new(),
    };
    for (job, bytes) in jobs.iter().zip(sizes) {
        let file = ExportedFile {
            resource_type: job.entry.resource_type.as_str().to_owned(),
            path: job.path.clone(),
            bytes: bytes.unwrap_or(0),
            count: job.entry.count,
        };
        match job.kind {
            Kind::Output => outcome.files.push(file),
            Kind::Error => outcome.errors.push(file),
            Kind::Deleted => outcome.deleted.push(file),
        }
    }
    Ok(outcome)
}

struct Run<'a> {
    client: &'a FhirClient,
    settings: &'a BulkSettings,
    with_token: bool,
    /// What all files together may write (`fhir.bulk.max_download_bytes`), whichever downloads
    /// at once.
    budget: ByteBudget,
}

/// One try at a file: it either failed for good, or may be tried again (after the server's
/// `Retry-After`, when it sent one).
enum Failed {
    ForGood(Error),
    Retry(Error, Option<Duration>),
}

impl Run<'_> {
    /// One file, with retries from scratch; its size in bytes.
    async fn file(
        &self,
        entry: &FileEntry,
        path: &Path,
        events: &UnboundedSender<ExportProgress>,
    ) -> Result<u64> {
        let resource_type = entry.resource_type.as_str();
        if self.with_token && !self.client.same_origin(&entry.url) {
            return Err(Error::BadGateway(summary!(
                "a {} file of the export is on another server and needs the access token: refused, credentials go only to the FHIR server",
                known_type(resource_type)
            )));
        }
        let rules = Rules {
            policy: self.client.retry_policy(),
            retries: self.settings.download_retries,
            asked: AskedWait::CutTo(self.settings.poll_interval_max),
        };
        let attempt = |_| async {
            match self.fetch(entry, path, events).await {
                Ok(bytes) => Attempt::Done(bytes),
                Err(Failed::ForGood(e)) => Attempt::Failed(e),
                Err(Failed::Retry(error, asked)) => Attempt::Again {
                    error,
                    reason: None,
                    asked,
                },
            }
        };
        let retrying = |attempt: u32, e: &Error| {
            tracing::warn!(resource_type = known_type(resource_type), attempt = attempt - 1, error = %e, "bulk file download failed; starting again");
            let _ = events.send(ExportProgress::Retrying {
                resource_type: resource_type.to_owned(),
                attempt,
            });
        };
        let failure = match with_retries(rules, attempt, retrying).await {
            Ok(bytes) => return Ok(bytes),
            Err(Stop::Failed(e)) => e,
            Err(Stop::Exhausted(e, attempts)) => match e {
                Error::Unavailable(m) => {
                    Error::Unavailable(summary!("{} ({} attempts)", m, attempts))
                }
                Error::Timeout(m) => Error::Timeout(summary!("{} ({} attempts)", m, attempts)),
                other => other,
            },
        };
        let _ = tokio::fs::remove_file(part_path(path)).await;
        Err(failure)
    }

    /// One attempt: GET, then the body chunk by chunk into `name.part`.
    async fn fetch(
        &self,
        entry: &FileEntry,
        path: &Path,
        events: &UnboundedSender<ExportProgress>,
    ) -> Result<u64, Failed> {
        let label = summary!("{} export file", known_type(entry.resource_type.as_str()));
        let mut response = self.open(&entry.url).await.map_err(retry_if_transient)?;
        let status = response.status();
        if !status.is_success() {
            let asked = crate::fhir::transport::retry_after(response.headers());
            let body = body::read_head(response, body::ERROR_HEAD).await;
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
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&part)
            .await
            .map_err(|e| Failed::ForGood(local(&part, &e)))?;
        let stall = self.settings.stall_timeout;
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
            let _ = events.send(ExportProgress::Received {
                bytes: chunk.len() as u64,
            });
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
        let timeout = self.settings.download_timeout;
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
