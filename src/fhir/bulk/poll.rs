//! Polling the status URL until the manifest: `202` is "still running" (with `Retry-After` and
//! `X-Progress`), `429` is "too soon", `5xx` and lost connections are retried a bounded number of
//! times in a row, any other answer is the export's failure, and the deadline ends the wait.

use super::ExportProgress;
use super::manifest::Manifest;
use crate::error::{Error, Result};
use crate::fhir::body::{self, BodyError};
use crate::fhir::client::FhirClient;
use crate::fhir::transport::{backoff, status_error, too_large};
use crate::settings::BulkSettings;
use crate::summary;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use std::time::Duration;
use tokio::time::Instant;

const LABEL: &str = "$export status";
const ACCEPT: (&str, &str) = ("Accept", "application/json");
/// Manifest pages followed before a `next` chain is taken for a loop.
const MANIFEST_PAGE_CAP: usize = 10_000;
/// Shortest wait between polls, whatever the server says: never a busy loop.
const SHORTEST_WAIT: Duration = Duration::from_millis(100);
/// Longest `X-Progress` text passed on (it is free text from the server).
const PROGRESS_TEXT_CAP: usize = 200;

pub(super) async fn wait_for_manifest(
    client: &FhirClient,
    settings: &BulkSettings,
    status_url: &str,
    deadline: Instant,
    progress: &mut impl FnMut(ExportProgress),
) -> Result<Manifest> {
    let longest = settings.poll_interval_max;
    let mut interval = settings.poll_interval;
    let retry = client.retry_policy();
    let mut failures = 0;
    let mut polls = 0;
    loop {
        if Instant::now() >= deadline {
            return Err(Error::Timeout(summary!(
                "the $export did not complete within {} s (fhir.bulk.max_wait_secs)",
                settings.max_wait.as_secs()
            )));
        }
        polls += 1;
        let answer = client
            .send_raw(Method::GET, status_url, &[ACCEPT], true, None, LABEL)
            .await;
        let wait = match answer {
            Err(e @ (Error::Unavailable(_) | Error::Timeout(_))) => {
                failures += 1;
                if failures > retry.max_retries {
                    return Err(e);
                }
                tracing::warn!(failures, error = %e, "bulk export status poll failed; retrying");
                backoff(retry, failures - 1)
            }
            Err(e) => return Err(e),
            Ok(response) => {
                let status = response.status();
                let asked = crate::fhir::transport::retry_after(response.headers());
                match status {
                    StatusCode::OK => {
                        let body = body(client, response).await?;
                        let first = Manifest::parse(&body, status_url)?;
                        return rest_of_manifest(client, first).await;
                    }
                    StatusCode::ACCEPTED => {
                        failures = 0;
                        progress(ExportProgress::InProgress {
                            polls,
                            x_progress: x_progress(response.headers()),
                        });
                        let wait = asked.unwrap_or(interval);
                        interval = interval.saturating_mul(2).min(longest);
                        wait
                    }
                    StatusCode::TOO_MANY_REQUESTS => asked.unwrap_or(interval),
                    s if s.is_server_error() => {
                        failures += 1;
                        if failures > retry.max_retries {
                            let body = body::read_head(response, body::ERROR_HEAD).await;
                            return Err(export_failed(s, &body));
                        }
                        tracing::warn!(
                            failures,
                            status = s.as_u16(),
                            "bulk export status poll failed; retrying"
                        );
                        asked.unwrap_or_else(|| backoff(retry, failures - 1))
                    }
                    s => {
                        let body = body::read_head(response, body::ERROR_HEAD).await;
                        return Err(export_failed(s, &body));
                    }
                }
            }
        };
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(wait.max(SHORTEST_WAIT).min(longest).min(left)).await;
    }
}

/// Follows a paged manifest's `next` links (on the FHIR server only, as everything with the token).
async fn rest_of_manifest(client: &FhirClient, mut manifest: Manifest) -> Result<Manifest> {
    let mut seen = std::collections::HashSet::new();
    while let Some(next) = manifest.next.clone() {
        if !seen.insert(next.clone()) || seen.len() > MANIFEST_PAGE_CAP {
            return Err(Error::BadGateway(
                "the $export manifest's next links loop".into(),
            ));
        }
        let response = client
            .send_raw(
                Method::GET,
                &next,
                &[ACCEPT],
                true,
                None,
                "$export manifest",
            )
            .await?;
        let status = response.status();
        if status != StatusCode::OK {
            let body = body::read_head(response, body::ERROR_HEAD).await;
            return Err(export_failed(status, &body));
        }
        let body = body(client, response).await?;
        manifest.extend(Manifest::parse(&body, &next)?);
    }
    Ok(manifest)
}

/// A manifest page, within `fhir.max_response_bytes`.
async fn body(client: &FhirClient, response: reqwest::Response) -> Result<bytes::Bytes> {
    body::read_bounded(response, client.max_response_bytes())
        .await
        .map_err(|e| match e {
            BodyError::TooLarge { limit } => too_large("$export manifest", limit),
            BodyError::Transport(_) => {
                Error::Unavailable("the FHIR server's $export manifest was cut short".into())
            }
        })
}

/// A status answer that ends the export, with the server's OperationOutcome text.
fn export_failed(status: StatusCode, body: &[u8]) -> Error {
    match status_error(status, body, LABEL) {
        // Not an unknown patient: the export the server was running is gone.
        Error::NotFound(m) => Error::BadGateway(summary!("the $export is no longer known: {}", m)),
        other => other,
    }
}

fn x_progress(head: &HeaderMap) -> Option<String> {
    let text = head.get("x-progress")?.to_str().ok()?.trim();
    let mut cut = text.len().min(PROGRESS_TEXT_CAP);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    (!text.is_empty()).then(|| text[..cut].to_owned())
}
