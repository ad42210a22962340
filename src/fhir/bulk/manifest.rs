//! The complete-status manifest: what the export produced and where to fetch it.

use super::ResourceType;
use crate::error::{Error, Result, Summary};
use crate::summary;
use serde::Deserialize;

/// A manifest read and checked: every file URL absolute, every type a valid resource type name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub transaction_time: String,
    /// The kick-off request as the server records it (a URL; its query holds `_since`, `_type`,
    /// `_typeFilter` for a GET kick-off).
    pub request: Option<String>,
    pub requires_access_token: bool,
    pub output: Vec<FileEntry>,
    pub error: Vec<FileEntry>,
    pub deleted: Vec<FileEntry>,
    /// A `link` with relation `next`: the manifest continues on another page.
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub resource_type: ResourceType,
    pub url: String,
    pub count: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    transaction_time: Option<String>,
    request: Option<String>,
    requires_access_token: Option<bool>,
    #[serde(default)]
    output: Vec<WireFile>,
    #[serde(default)]
    error: Vec<WireFile>,
    #[serde(default)]
    deleted: Vec<WireFile>,
    #[serde(default)]
    link: Vec<WireLink>,
}

#[derive(Deserialize)]
struct WireFile {
    #[serde(rename = "type")]
    resource_type: Option<String>,
    url: Option<String>,
    count: Option<u64>,
}

#[derive(Deserialize)]
struct WireLink {
    relation: Option<String>,
    url: Option<String>,
}

impl Manifest {
    /// Reads a manifest page; relative URLs are resolved against `page_url`, where it came from.
    pub fn parse(body: &[u8], page_url: &str) -> Result<Manifest> {
        let bad = |what: Summary| Error::BadGateway(summary!("the $export manifest {}", what));
        let wire: Wire =
            serde_json::from_slice(body).map_err(|_| bad(summary!("is not the JSON expected")))?;
        let base =
            url::Url::parse(page_url).map_err(|_| bad(summary!("came from an unreadable URL")))?;
        // Files come over HTTPS, or over HTTP only from a server itself reached so: never a
        // `file:` URL or another scheme, and no downgrade to cleartext for a patient's records.
        let absolute = |u: &str| {
            let url = base
                .join(u)
                .map_err(|_| bad(summary!("has a file URL that is not a URL")))?;
            let scheme_kept =
                url.scheme() == "https" || (url.scheme() == "http" && base.scheme() == "http");
            if !scheme_kept {
                return Err(bad(summary!(
                    "has a file URL that is not https (or http from a server reached over http)"
                )));
            }
            Ok(String::from(url))
        };
        let files = |list: Vec<WireFile>, kind: &'static str| -> Result<Vec<FileEntry>> {
            list.into_iter()
                .map(|f| {
                    let resource_type = f
                        .resource_type
                        .as_deref()
                        .and_then(|t| ResourceType::parse(t).ok())
                        .ok_or_else(|| {
                            bad(summary!("has an {} file without a valid type", kind))
                        })?;
                    let url = f
                        .url
                        .as_deref()
                        .ok_or_else(|| bad(summary!("has an {} file without a url", kind)))
                        .and_then(absolute)?;
                    Ok(FileEntry {
                        resource_type,
                        url,
                        count: f.count,
                    })
                })
                .collect()
        };
        let next = wire
            .link
            .iter()
            .find(|l| l.relation.as_deref() == Some("next"))
            .and_then(|l| l.url.as_deref())
            .map(absolute)
            .transpose()?;
        Ok(Manifest {
            // Printed in summaries and kept in the checkpoint's job: an instant, not the server's text.
            transaction_time: wire
                .transaction_time
                .filter(|t| crate::date::DateTime::parse(t).is_ok())
                .ok_or_else(|| bad(summary!("has no transactionTime that is a FHIR instant")))?,
            request: wire.request,
            // Required by the IG; when a server leaves it out, the safe reading is that the files
            // need the token (which then goes to the FHIR server's origin only).
            requires_access_token: wire.requires_access_token.unwrap_or(true),
            output: files(wire.output, "output")?,
            error: files(wire.error, "error")?,
            deleted: files(wire.deleted, "deleted")?,
            next,
        })
    }

    /// Adds a further page's files (a paged manifest).
    pub fn extend(&mut self, page: Manifest) {
        self.output.extend(page.output);
        self.error.extend(page.error);
        self.deleted.extend(page.deleted);
        self.next = page.next;
    }

    pub fn file_count(&self) -> usize {
        self.output.len() + self.error.len() + self.deleted.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "https://ehr.example/fhir/bulk-status/1";

    #[test]
    fn a_file_url_of_another_scheme_or_a_downgrade_to_http_is_refused() {
        let manifest = |url: &str| {
            format!(
                r#"{{"transactionTime":"2026-11-20T01:00:00Z","output":[{{"type":"Patient","url":"{url}"}}]}}"#
            )
        };
        for (url, page) in [
            ("file:///etc/passwd", "https://ehr.example/status/1"),
            (
                "http://ehr.example/files/p.ndjson",
                "https://ehr.example/status/1",
            ),
            (
                "ftp://ehr.example/files/p.ndjson",
                "https://ehr.example/status/1",
            ),
        ] {
            assert!(
                Manifest::parse(manifest(url).as_bytes(), page).is_err(),
                "{url} from {page}"
            );
        }
        for (url, page) in [
            (
                "https://files.example/p.ndjson",
                "https://ehr.example/status/1",
            ),
            ("/files/p.ndjson", "http://127.0.0.1:8080/status/1"),
        ] {
            assert!(
                Manifest::parse(manifest(url).as_bytes(), page).is_ok(),
                "{url} from {page}"
            );
        }
    }

    #[test]
    fn a_manifest_with_relative_urls_and_several_files_per_type_is_read() {
        let body = br#"{"transactionTime":"2026-01-01T00:00:00Z","requiresAccessToken":false,
            "output":[{"type":"Patient","url":"/files/p1.ndjson","count":2},
                      {"type":"Patient","url":"https://ehr.example/files/p2.ndjson"}],
            "error":[{"type":"OperationOutcome","url":"e.ndjson"}],
            "link":[{"relation":"next","url":"?page=2"}]}"#;
        let m = Manifest::parse(body, STATUS).unwrap();
        assert!(!m.requires_access_token);
        assert_eq!(m.output.len(), 2);
        assert_eq!(m.output[0].url, "https://ehr.example/files/p1.ndjson");
        assert_eq!(m.output[0].count, Some(2));
        assert_eq!(
            m.error[0].url,
            "https://ehr.example/fhir/bulk-status/e.ndjson"
        );
        assert_eq!(
            m.next.as_deref(),
            Some("https://ehr.example/fhir/bulk-status/1?page=2")
        );
    }

    #[test]
    fn a_missing_access_token_flag_means_the_token_is_needed() {
        let m = Manifest::parse(
            br#"{"transactionTime":"2026-11-20T01:00:00Z","output":[]}"#,
            STATUS,
        )
        .unwrap();
        assert!(m.requires_access_token);
    }

    #[test]
    fn types_that_could_escape_the_directory_and_missing_parts_are_refused() {
        for body in [
            &br#"{"transactionTime":"2026-11-20T01:00:00Z","output":[{"type":"../x","url":"a"}]}"#
                [..],
            br#"{"transactionTime":"2026-11-20T01:00:00Z","output":[{"url":"a"}]}"#,
            br#"{"transactionTime":"2026-11-20T01:00:00Z","output":[{"type":"Patient"}]}"#,
            br#"{"output":[]}"#,
            br#"{"transactionTime":"\u001b[2J","output":[]}"#,
            b"not json",
        ] {
            let err = Manifest::parse(body, STATUS).unwrap_err();
            assert!(matches!(err, Error::BadGateway(_)), "{err}");
        }
    }
}
