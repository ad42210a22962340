//! One cheap pass over an export's files, reading each line's head only: which patients the files
//! hold data of (an incremental export's changed patients), which Medications they reference and
//! hold, which Medications changed, and how many resources lie outside a `_typeFilter` (a server
//! that accepted the filter but did not apply it).

use super::line::{Line, classify};
use super::partition::{MAX_LINE, append_line, open_ndjson};
use crate::fhir::PatientId;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

#[derive(Debug, Default)]
pub struct Scan {
    /// Patients with a Patient line or a resource naming them (valid FHIR ids only).
    pub patients: BTreeSet<PatientId>,
    /// Patients with a Patient line.
    pub listed: BTreeSet<PatientId>,
    /// Medications referenced by requests and statements, and those the files hold.
    pub medications_wanted: BTreeSet<String>,
    pub medications_held: HashSet<String>,
    /// Observations none of whose codes is in the filter (when a filter was given).
    pub outside_filter: u64,
    pub lines: u64,
    /// Lines that could not be read (not UTF-8, not JSON, not a FHIR resource, or over
    /// [`MAX_LINE`]): whose they are is unknown, so in a changes export a changed patient may be
    /// among them.
    pub unreadable: u64,
}

impl Scan {
    /// Medications referenced but not in the files (a Patient or Group export leaves them out).
    pub fn medications_missing(&self) -> Vec<String> {
        self.medications_wanted
            .iter()
            .filter(|id| !self.medications_held.contains(*id))
            .cloned()
            .collect()
    }
}

/// Reads every line of `files` once. `filter_codes`: the Observation codes a `_typeFilter` kept.
pub fn scan(files: &[PathBuf], filter_codes: Option<&BTreeSet<String>>) -> io::Result<Scan> {
    let mut scan = Scan::default();
    let consumed = Arc::new(AtomicU64::new(0));
    let mut line = Vec::new();
    for file in files {
        let mut reader = open_ndjson(file, consumed.clone())?;
        loop {
            line.clear();
            // A line over the bound is skipped and counted, as the first pass does.
            if !append_line(&mut reader, &mut line, MAX_LINE)? {
                scan.lines += 1;
                scan.unreadable += 1;
                continue;
            }
            if line.is_empty() {
                break;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let Ok(text) = std::str::from_utf8(&line) else {
                scan.lines += 1;
                scan.unreadable += 1;
                continue;
            };
            // As in the first pass: a byte order mark (at the start of a file, or of one
            // concatenated into it) is no part of the JSON.
            let text = text.trim_end_matches(['\n', '\r']);
            let text = text.strip_prefix('\u{feff}').unwrap_or(text);
            if text.trim().is_empty() {
                continue;
            }
            scan.lines += 1;
            scan.take(text, filter_codes);
        }
    }
    Ok(scan)
}

impl Scan {
    fn take(&mut self, text: &str, filter_codes: Option<&BTreeSet<String>>) {
        match classify(text) {
            Line::Patient { id } => {
                if let Ok(id) = PatientId::parse(&id) {
                    self.patients.insert(id.clone());
                    self.listed.insert(id);
                }
            }
            Line::Medication { id } => {
                self.medications_held.insert(id.into_owned());
            }
            Line::Clinical {
                patient,
                medication,
            } => {
                if let Ok(id) = PatientId::parse(&patient) {
                    self.patients.insert(id);
                }
                if let Some(m) = medication {
                    self.medications_wanted.insert(m);
                }
                if let Some(codes) = filter_codes
                    && is_observation(text)
                    && !has_code_in(text, codes)
                {
                    self.outside_filter += 1;
                }
            }
            Line::Malformed => self.unreadable += 1,
            Line::NoPatient | Line::BadId | Line::OtherType => {}
        }
    }
}

fn is_observation(text: &str) -> bool {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Kind<'a> {
        #[serde(borrow)]
        resource_type: Option<Cow<'a, str>>,
    }
    serde_json::from_str::<Kind>(text)
        .is_ok_and(|k| k.resource_type.as_deref() == Some("Observation"))
}

/// Whether any coding of the Observation's `code` is one of `codes` (whatever its system, as the
/// filter's bare codes match).
fn has_code_in(text: &str, codes: &BTreeSet<String>) -> bool {
    #[derive(Deserialize)]
    struct Coded<'a> {
        #[serde(borrow)]
        code: Option<Concept<'a>>,
    }
    #[derive(Deserialize)]
    struct Concept<'a> {
        #[serde(default, borrow)]
        coding: Vec<Coding<'a>>,
    }
    #[derive(Deserialize)]
    struct Coding<'a> {
        #[serde(borrow)]
        code: Option<Cow<'a, str>>,
    }
    serde_json::from_str::<Coded>(text).is_ok_and(|c| {
        c.code.is_some_and(|concept| {
            concept.coding.iter().any(|coding| {
                coding
                    .code
                    .as_deref()
                    .is_some_and(|code| codes.contains(code))
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_over_the_bound_is_skipped_and_the_lines_after_it_are_read() {
        let dir = std::env::temp_dir().join(format!("trdscreen-scan-long-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("all.ndjson");
        let photo = "A".repeat(MAX_LINE);
        std::fs::write(
            &file,
            format!(
                "{{\"resourceType\":\"Patient\",\"id\":\"p1\",\"photo\":[{{\"data\":\"{photo}\"}}]}}\n\
                 {{\"resourceType\":\"Patient\",\"id\":\"p2\"}}"
            ),
        )
        .unwrap();
        let scan = scan(&[file], None).unwrap();
        let ids: Vec<&str> = scan.listed.iter().map(PatientId::as_str).collect();
        assert_eq!((ids, scan.lines, scan.unreadable), (vec!["p2"], 2, 1));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_scan_finds_patients_medications_and_resources_outside_the_filter() {
        let dir = std::env::temp_dir().join(format!("trdscreen-scan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("all.ndjson");
        std::fs::write(
            &file,
            [
                r#"{"resourceType":"Patient","id":"p1"}"#,
                r#"{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p2"},"code":{"coding":[{"system":"http://loinc.org","code":"44261-6"}]}}"#,
                r#"{"resourceType":"Observation","id":"o2","subject":{"reference":"Patient/p2"},"code":{"coding":[{"code":"2345-7"}]}}"#,
                r#"{"resourceType":"MedicationRequest","id":"m1","subject":{"reference":"Patient/p3"},"medicationReference":{"reference":"Medication/med1"}}"#,
                r#"{"resourceType":"Medication","id":"med2"}"#,
            ]
            .join("\n"),
        )
        .unwrap();
        let codes: BTreeSet<String> = ["44261-6".to_owned()].into();
        let scan = scan(&[file], Some(&codes)).unwrap();
        let ids: Vec<&str> = scan.patients.iter().map(PatientId::as_str).collect();
        assert_eq!(ids, ["p1", "p2", "p3"]);
        assert_eq!(scan.listed.len(), 1);
        assert_eq!(scan.outside_filter, 1);
        assert_eq!(scan.medications_missing(), ["med1"]);
        assert_eq!(scan.lines, 5);
        assert_eq!(scan.unreadable, 0);
    }

    /// In a changes export, a line that cannot be read may be a changed patient's: the scan counts
    /// it, so that the run can say so, and still finds the patients of the lines around it (one
    /// after a byte order mark included, which the first pass reads too).
    #[test]
    fn a_scan_counts_the_lines_it_cannot_read_and_reads_the_rest() {
        let dir = std::env::temp_dir().join(format!("trdscreen-scan-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("all.ndjson");
        let mut text = "\u{feff}{\"resourceType\":\"Patient\",\"id\":\"p1\"}\r\n"
            .as_bytes()
            .to_vec();
        text.extend_from_slice(b"{\"resourceType\":\"Observation\",\"subject\":{\"refer\n");
        text.extend_from_slice(b"{\"id\":\"no-type\"}\n");
        text.extend_from_slice(b"\xff\xfe not UTF-8\n");
        text.extend_from_slice(b"   \n");
        text.extend_from_slice(
            br#"{"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/p2"}}"#,
        );
        std::fs::write(&file, text).unwrap();
        let scan = scan(&[file], None).unwrap();
        let ids: Vec<&str> = scan.patients.iter().map(PatientId::as_str).collect();
        assert_eq!(ids, ["p1", "p2"]);
        assert_eq!((scan.lines, scan.unreadable), (5, 3));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
