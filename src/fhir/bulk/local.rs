//! An export on local disk, and what it says about its own completeness: the directory that
//! `trdscreen export` (or `batch --bulk`) writes, or one a hospital hands over.
//!
//! The directory's `manifest.json` is a Bulk Data complete-status manifest (`transactionTime`,
//! `request`, `output`, ...) with the file URLs relative to the directory. Written last and
//! atomically (a temporary file renamed into place), it is also the export's completion marker: a
//! directory without it is an export that has not finished (or a hospital's files with no manifest,
//! taken as a whole export on the operator's word). `trdscreen export` adds its own account under
//! `extension["urn:trdscreen:export"]` ([`Marker`]): the scope, the `_typeFilter` it sent and what
//! became of it, the changed patients of an incremental run, and each file's size, so that a copy
//! cut short is refused.
//!
//! The scope decides what the records in the directory may be used for ([`Scope`]): only a scope
//! that is whole for a patient yields the [`WholeExport`] proof that write-back needs.

use super::super::PatientId;
use super::super::whole::WholeExport;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "manifest.json";
pub const EXTENSION: &str = "urn:trdscreen:export";
/// One patient id a line: the patients an incremental export found changed.
pub const CHANGED_PATIENTS: &str = "changed-patients.txt";
const MARKER_VERSION: u32 = 1;

/// The resource types a record must hold all of to be whole: the Patient and `Typed::NAMES`,
/// Medications aside (a Patient or Group export leaves them out, and they are read by id); a test
/// holds the two lists together.
pub const WHOLE_TYPES: [&str; 6] = [
    "Patient",
    "Condition",
    "MedicationRequest",
    "MedicationStatement",
    "Observation",
    "Procedure",
];

/// What an export holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScopeKind {
    /// Every patient's record, whole.
    Whole,
    /// The whole records of the patients listed in `changed-patients.txt` (a patient-scoped export
    /// of an incremental run's changed patients).
    Patients,
    /// Only what changed since `since`: each patient in `changed-patients.txt` is to be read whole
    /// from the FHIR server.
    Changes,
}

/// `trdscreen export`'s own account of the export, in the manifest's `extension`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Marker {
    pub version: u32,
    pub scope: ScopeKind,
    /// `system`, `patient` or `group/ID`.
    pub level: String,
    pub types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The `_typeFilter` queries the files were filtered by (empty: none, or refused).
    #[serde(default)]
    pub type_filter: Vec<String>,
    /// `not-asked`, `applied`, `refused` (the export was asked again with `_type` alone) or
    /// `ignored` (accepted, but the files hold resources outside it).
    pub type_filter_outcome: String,
    #[serde(default)]
    pub resources_outside_filter: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_patients: Option<u64>,
    /// How an incremental run's changed patients are read whole: `patient-export` or `per-patient`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_read: Option<String>,
    /// Resources the server reported deleted since `since`, and how many of them could not be
    /// traced to a patient (their patients' records are then screened at the next full run).
    #[serde(default)]
    pub deleted_resources: u64,
    #[serde(default)]
    pub deleted_unattributed: u64,
    /// Lines of an incremental export that could not be read (not JSON, not a FHIR resource, or
    /// over the line bound): a changed patient may be among them, and is then screened at the next
    /// full run.
    #[serde(default)]
    pub unreadable_lines: u64,
    /// Medications the export left out, read by id and written beside the files.
    #[serde(default)]
    pub medications_read: u64,
    /// Every file's path (relative to the directory) and size in bytes.
    pub files: BTreeMap<String, u64>,
}

impl Marker {
    pub fn new(scope: ScopeKind, level: String, types: Vec<String>) -> Marker {
        Marker {
            version: MARKER_VERSION,
            scope,
            level,
            types,
            since: None,
            type_filter: Vec::new(),
            type_filter_outcome: "not-asked".into(),
            resources_outside_filter: 0,
            changed_patients: None,
            full_read: None,
            deleted_resources: 0,
            deleted_unattributed: 0,
            unreadable_lines: 0,
            medications_read: 0,
            files: BTreeMap::new(),
        }
    }
}

/// The manifest as written to disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalManifest {
    pub transaction_time: String,
    #[serde(default)]
    pub request: String,
    #[serde(default)]
    pub requires_access_token: bool,
    #[serde(default)]
    pub output: Vec<LocalFile>,
    #[serde(default)]
    pub error: Vec<LocalFile>,
    #[serde(default)]
    pub deleted: Vec<LocalFile>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extension: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalFile {
    #[serde(rename = "type")]
    pub resource_type: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

/// What the records of a directory may be used for.
#[derive(Debug)]
pub enum Scope {
    /// Whole records (of everyone in it, or of the patients it names).
    Whole(WholeExport),
    /// Changes only, since the instant: the listed patients (or, from a manifest without our
    /// account, the patients its lines name) are each to be read whole elsewhere.
    Changes {
        since: String,
        patients: Option<Vec<PatientId>>,
    },
}

/// A directory of NDJSON, opened.
#[derive(Debug)]
pub struct LocalExport {
    pub dir: PathBuf,
    /// From the manifest; `None` without one.
    pub transaction_time: Option<String>,
    /// The NDJSON files to read (`.ndjson`, `.jsonl`, either gzipped), in name order.
    pub files: Vec<PathBuf>,
    pub scope: Scope,
    pub marker: Option<Marker>,
    /// The export's patient list, for a patient-scoped export (screened even if absent from the
    /// files: such a patient is read whole from the server).
    pub listed: Option<Vec<PatientId>>,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path} is not a Bulk Data manifest trdscreen can read: {why}")]
    BadManifest { path: String, why: String },
    #[error(
        "the export in {dir} is not whole ({why}): its records would be partial, and nothing is concluded from a partial record"
    )]
    NotWhole { dir: String, why: String },
    #[error("the export in {dir} is incomplete: {why}")]
    Incomplete { dir: String, why: String },
}

/// Opens a directory: reads its manifest (if any) and decides its scope. `observation_codes` are
/// the codes screening reads (a `_typeFilter` that leaves any of them out makes records partial).
pub fn open(dir: &Path, observation_codes: &BTreeSet<String>) -> Result<LocalExport, LocalError> {
    let io_err = |path: &Path, source| LocalError::Io {
        path: path.display().to_string(),
        source,
    };
    let manifest_path = dir.join(MANIFEST);
    let text = match crate::files::read_bounded(&manifest_path, MANIFEST_CAP) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(&manifest_path, e)),
    };
    let Some(text) = text else {
        // No manifest: the operator hands over a whole export.
        return Ok(LocalExport {
            dir: dir.to_owned(),
            transaction_time: None,
            files: ndjson_files(dir).map_err(|e| io_err(dir, e))?,
            scope: Scope::Whole(WholeExport::of_everyone()),
            marker: None,
            listed: None,
        });
    };
    let bad = |why: &str| LocalError::BadManifest {
        path: manifest_path.display().to_string(),
        why: why.to_owned(),
    };
    let manifest: LocalManifest = serde_json::from_slice(&text)
        .map_err(|_| bad("not the JSON of a complete-status manifest"))?;
    // Printed in summaries and kept in the checkpoint's job: an instant, never the server's text.
    if crate::date::DateTime::parse(&manifest.transaction_time).is_err() {
        return Err(bad("its transactionTime is not a FHIR instant"));
    }
    let marker = match manifest.extension.get(EXTENSION) {
        Some(value) => Some(
            serde_json::from_value::<Marker>(value.clone())
                .map_err(|_| bad("its trdscreen account cannot be read"))?,
        ),
        None => None,
    };
    // Our own account's _since is printed and kept in the checkpoint's job as the manifest's is.
    if marker
        .as_ref()
        .and_then(|m| m.since.as_deref())
        .is_some_and(|since| crate::date::DateTime::parse(since).is_err())
    {
        return Err(bad("its trdscreen account's _since is not a FHIR instant"));
    }
    let not_whole = |why: String| LocalError::NotWhole {
        dir: dir.display().to_string(),
        why,
    };
    check_error_files(dir, &manifest.error).map_err(not_whole)?;
    match &marker {
        Some(m) => {
            let files = checked_files(dir, m)?;
            check_types(&m.types).map_err(not_whole)?;
            check_type_filter(&m.type_filter, observation_codes).map_err(not_whole)?;
            let listed = || read_patient_list(dir);
            let (scope, listed) = match m.scope {
                ScopeKind::Whole => (Scope::Whole(WholeExport::of_everyone()), None),
                ScopeKind::Patients => {
                    let patients = listed()?;
                    let set: HashSet<PatientId> = patients.iter().cloned().collect();
                    (Scope::Whole(WholeExport::of_patients(set)), Some(patients))
                }
                ScopeKind::Changes => (
                    Scope::Changes {
                        since: m.since.clone().unwrap_or_default(),
                        patients: Some(listed()?),
                    },
                    None,
                ),
            };
            Ok(LocalExport {
                dir: dir.to_owned(),
                transaction_time: Some(manifest.transaction_time.clone()),
                files,
                scope,
                marker,
                listed,
            })
        }
        None => {
            // A manifest of someone else's export: its request says what it holds.
            let request = Request::parse(&manifest.request);
            if let Some(types) = &request.types {
                check_types(types).map_err(not_whole)?;
            }
            check_type_filter(&request.type_filter, observation_codes).map_err(not_whole)?;
            if request
                .since
                .as_deref()
                .is_some_and(|since| crate::date::DateTime::parse(since).is_err())
            {
                return Err(bad("its request's _since is not a FHIR instant"));
            }
            let scope = match request.since {
                Some(since) => Scope::Changes {
                    since,
                    patients: None,
                },
                None => Scope::Whole(WholeExport::of_everyone()),
            };
            Ok(LocalExport {
                dir: dir.to_owned(),
                transaction_time: Some(manifest.transaction_time.clone()),
                files: ndjson_files(dir).map_err(|e| io_err(dir, e))?,
                scope,
                marker: None,
                listed: None,
            })
        }
    }
}

/// Longest line of an export's error file read: an OperationOutcome takes a few kilobytes.
const ERROR_LINE_CAP: u64 = 1024 * 1024;

/// The export's error files (Bulk Data's `error` array: OperationOutcomes for what the server
/// could not export) say nothing was left out: every issue in them is a warning or information.
/// An issue of severity error or fatal, a line that is no such OperationOutcome, and an error file
/// that is not in the directory or cannot be read each make the export not whole, since a
/// patient's record may lack what failed. The reason is in fixed words: the files' own text is
/// the server's.
fn check_error_files(dir: &Path, errors: &[LocalFile]) -> Result<(), String> {
    use std::io::{BufRead, Read};
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Outcome {
        resource_type: String,
        #[serde(default)]
        issue: Vec<Issue>,
    }
    #[derive(Deserialize)]
    struct Issue {
        severity: String,
    }
    let failed = || "its error files report resources the server could not export".to_owned();
    for file in errors {
        let relative = Path::new(&file.url);
        let inside = !file.url.contains(':')
            && relative
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !inside {
            return Err("it lists error files that are not in the directory, so what failed cannot be known".into());
        }
        let opened = crate::files::open_regular(&dir.join(relative))
            .map_err(|_| "an error file it lists cannot be read".to_owned())?;
        let mut reader = io::BufReader::new(opened);
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = (&mut reader)
                .take(ERROR_LINE_CAP + 1)
                .read_until(b'\n', &mut line)
                .map_err(|_| "an error file it lists cannot be read".to_owned())?;
            if read == 0 {
                break;
            }
            if line.len() as u64 > ERROR_LINE_CAP {
                return Err(failed());
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let only_notes = serde_json::from_slice::<Outcome>(&line).is_ok_and(|o| {
                o.resource_type == "OperationOutcome"
                    && o.issue
                        .iter()
                        .all(|i| i.severity == "warning" || i.severity == "information")
            });
            if !only_notes {
                return Err(failed());
            }
        }
    }
    Ok(())
}

/// Longest manifest (or changed-patient list) read: tens of thousands of file entries, or about a
/// million patient ids, fit.
const MANIFEST_CAP: u64 = 64 * 1024 * 1024;

/// The files the account lists, each there and of the size written: a copy cut short is refused.
fn checked_files(dir: &Path, marker: &Marker) -> Result<Vec<PathBuf>, LocalError> {
    let incomplete = |why: String| LocalError::Incomplete {
        dir: dir.display().to_string(),
        why,
    };
    let mut files = Vec::new();
    for (name, size) in &marker.files {
        let relative = Path::new(name);
        let safe = relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !safe {
            return Err(incomplete(format!(
                "the manifest names a file outside it ({name})"
            )));
        }
        let path = dir.join(relative);
        match std::fs::metadata(&path) {
            Ok(m) if m.len() == *size => {}
            Ok(m) => {
                return Err(incomplete(format!(
                    "{name} has {} bytes, the manifest says {size}",
                    m.len()
                )));
            }
            Err(_) => return Err(incomplete(format!("{name} is missing"))),
        }
        if is_ndjson(&path) && !name.starts_with("error/") && !name.starts_with("deleted/") {
            files.push(path);
        }
    }
    Ok(files)
}

fn check_types(types: &[String]) -> Result<(), String> {
    if types.is_empty() {
        return Ok(());
    }
    let missing: Vec<&str> = WHOLE_TYPES
        .iter()
        .filter(|t| !types.iter().any(|have| have == *t))
        .copied()
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("_type leaves out {}", missing.join(", ")))
    }
}

/// A `_typeFilter` keeps records whole only when it filters Observations by code and keeps every
/// code screening reads; a filter on anything else cannot be checked, and is taken as partial.
fn check_type_filter(queries: &[String], needed: &BTreeSet<String>) -> Result<(), String> {
    for query in queries {
        let kind = query.split('?').next().unwrap_or(query);
        if kind != "Observation" {
            // Named only when it is a type screening reads: the rest is another party's text.
            let named = WHOLE_TYPES
                .iter()
                .find(|t| **t == kind)
                .unwrap_or(&"another type");
            return Err(format!("_typeFilter narrows {named}"));
        }
        let kept = observation_filter_codes(query)
            .ok_or_else(|| "_typeFilter narrows Observation by more than code".to_owned())?;
        if let Some(missing) = needed.iter().find(|c| !kept.contains(c.as_str())) {
            return Err(format!(
                "_typeFilter leaves out Observation code {missing}, which screening reads"
            ));
        }
    }
    Ok(())
}

/// The codes (systems dropped) an `Observation?code=...` query keeps; `None` for any other query.
/// The codes are comma-separated, the commas written `%2C` inside the query (see `observation_filter`).
pub fn observation_filter_codes(query: &str) -> Option<BTreeSet<String>> {
    let params = query.strip_prefix("Observation?")?;
    let mut codes = BTreeSet::new();
    for (name, value) in url::form_urlencoded::parse(params.as_bytes()) {
        if name != "code" {
            return None;
        }
        for code in value.split(',') {
            codes.insert(code.rsplit('|').next().unwrap_or(code).to_owned());
        }
    }
    (!codes.is_empty()).then_some(codes)
}

/// The `_typeFilter` query keeping Observations with any of these codes. The codes are OR-ed with
/// commas inside one query, written `%2C`: the `_typeFilter` value is itself a comma-separated list
/// of queries, and the IG has each query URL-encoded, so a server splits the list at the bare
/// commas and reads each query's own commas when it decodes it.
pub fn observation_filter<'a>(codes: impl IntoIterator<Item = &'a str>) -> String {
    let codes: Vec<&str> = codes.into_iter().collect();
    format!("Observation?code={}", codes.join("%2C"))
}

/// The parts of a kick-off URL that tell what an export holds.
#[derive(Debug, Default, PartialEq, Eq)]
struct Request {
    since: Option<String>,
    types: Option<Vec<String>>,
    type_filter: Vec<String>,
}

impl Request {
    fn parse(request: &str) -> Request {
        let mut r = Request::default();
        let Ok(url) = url::Url::parse(request) else {
            return r;
        };
        for (name, value) in url.query_pairs() {
            match name.as_ref() {
                "_since" => r.since = Some(value.into_owned()),
                "_type" => r
                    .types
                    .get_or_insert_with(Vec::new)
                    .extend(value.split(',').map(str::to_owned)),
                "_typeFilter" => r.type_filter.extend(value.split(',').map(str::to_owned)),
                _ => {}
            }
        }
        r
    }
}

fn read_patient_list(dir: &Path) -> Result<Vec<PatientId>, LocalError> {
    let path = dir.join(CHANGED_PATIENTS);
    let io = |source| LocalError::Io {
        path: path.display().to_string(),
        source,
    };
    // Bounded as the manifest is: about a million ids, more changed patients than a night has.
    let bytes = crate::files::read_bounded(&path, MANIFEST_CAP).map_err(io)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| io(io::Error::new(io::ErrorKind::InvalidData, "not UTF-8")))?;
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            PatientId::parse(l).map_err(|_| LocalError::BadManifest {
                path: path.display().to_string(),
                why: "a line is not a patient id".into(),
            })
        })
        .collect()
}

/// Writes the patient list (owner-only: ids of patients).
pub fn write_patient_list(dir: &Path, patients: &[PatientId]) -> io::Result<u64> {
    let mut text = String::new();
    for p in patients {
        text.push_str(p.as_str());
        text.push('\n');
    }
    write_private(&dir.join(CHANGED_PATIENTS), text.as_bytes())?;
    Ok(text.len() as u64)
}

/// Writes the manifest atomically (a temporary file, synced, renamed into place, the directory
/// synced): it is there whole or not at all, and only once everything it lists is on disk.
pub fn write_manifest(dir: &Path, manifest: &LocalManifest) -> io::Result<()> {
    let text = serde_json::to_vec_pretty(manifest).map_err(io::Error::other)?;
    let temporary = dir.join(format!(".{MANIFEST}.tmp"));
    write_private(&temporary, &text)?;
    std::fs::rename(&temporary, dir.join(MANIFEST))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Removes the manifest (and syncs the directory), so that an export being replaced is never taken
/// for a finished one.
pub fn remove_manifest(dir: &Path) -> io::Result<()> {
    match std::fs::remove_file(dir.join(MANIFEST)) {
        Ok(()) => std::fs::File::open(dir)?.sync_all(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = crate::output::create_private(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Whether a file is NDJSON by its name: `.ndjson` or `.jsonl`, either gzipped (`.gz`).
pub fn is_ndjson(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let name = name.strip_suffix(".gz").unwrap_or(name);
    name.ends_with(".ndjson") || name.ends_with(".jsonl")
}

/// The NDJSON files of a directory, in name order.
pub fn ndjson_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !is_ndjson(&path) {
            continue;
        }
        // Skipped, it would be part of the export left unread without a word; a FIFO would hang
        // the job and a device never end.
        if !path.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is not a regular file (or a link to one)",
                    path.file_name().unwrap_or_default().to_string_lossy()
                ),
            ));
        }
        files.push(path);
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_patient_list_over_64_mib_is_refused_before_it_is_read_whole() {
        let dir = std::env::temp_dir().join(format!("trdscreen-changed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A sparse file: 65 MiB that take no disk.
        std::fs::File::create(dir.join(CHANGED_PATIENTS))
            .unwrap()
            .set_len(65 * 1024 * 1024)
            .unwrap();
        let refused = read_patient_list(&dir).map(|ids| ids.len());
        std::fs::remove_dir_all(&dir).unwrap();
        let message = refused.expect_err("refused").to_string();
        assert!(message.contains("larger than 64 MiB"), "{message}");
    }

    #[test]
    fn a_whole_record_holds_the_patient_and_every_type_screening_reads_but_medications() {
        let mut expected = vec!["Patient"];
        expected.extend(
            crate::fhir::resources::Typed::NAMES
                .iter()
                .filter(|t| **t != "Medication"),
        );
        expected.sort_unstable();
        let mut whole = WHOLE_TYPES.to_vec();
        whole.sort_unstable();
        assert_eq!(whole, expected);
    }

    fn codes() -> BTreeSet<String> {
        ["44261-6", "8480-6"].map(str::to_owned).into()
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("trdscreen-local-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn foreign(dir: &Path, request: &str) {
        let manifest = serde_json::json!({"transactionTime": "2026-11-20T01:00:00Z",
            "request": request, "requiresAccessToken": true, "output": []});
        std::fs::write(dir.join(MANIFEST), manifest.to_string()).unwrap();
        std::fs::write(dir.join("Patient.ndjson"), "{}\n").unwrap();
    }

    /// A whole foreign export whose manifest lists one error file holding `lines`, named `url`.
    fn with_error_file(dir: &Path, url: &str, lines: &str) {
        let manifest = serde_json::json!({"transactionTime": "2026-11-20T01:00:00Z",
            "request": "https://ehr/fhir/$export", "requiresAccessToken": true, "output": [],
            "error": [{"type": "OperationOutcome", "url": url}]});
        std::fs::write(dir.join(MANIFEST), manifest.to_string()).unwrap();
        std::fs::write(dir.join("Patient.ndjson"), "{}\n").unwrap();
        std::fs::create_dir_all(dir.join("error")).unwrap();
        std::fs::write(dir.join("error/OperationOutcome.ndjson"), lines).unwrap();
    }

    #[test]
    fn an_export_whose_error_files_report_a_failure_is_not_whole() {
        let failed = r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"MedicationRequest/7 could not be exported"}]}"#;
        let note = r#"{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational"}]}"#;
        for (url, lines, whole) in [
            (
                "error/OperationOutcome.ndjson",
                format!("{note}\n\n{note}\n"),
                true,
            ),
            (
                "error/OperationOutcome.ndjson",
                format!("{note}\n{failed}\n"),
                false,
            ),
            (
                "error/OperationOutcome.ndjson",
                "not json\n".to_owned(),
                false,
            ),
            ("error/absent.ndjson", String::new(), false),
            ("https://ehr/files/error.ndjson", String::new(), false),
            ("../error/OperationOutcome.ndjson", String::new(), false),
        ] {
            let d = dir("errors");
            with_error_file(&d, url, &lines);
            match open(&d, &codes()) {
                Ok(opened) => {
                    assert!(whole, "{url} {lines}");
                    assert!(matches!(opened.scope, Scope::Whole(_)));
                }
                Err(err) => {
                    assert!(!whole, "{url} {lines}: {err}");
                    assert!(matches!(err, LocalError::NotWhole { .. }), "{err}");
                    assert!(!err.to_string().contains("could not be exported"), "{err}");
                }
            }
        }
    }

    #[test]
    fn a_since_export_is_changes_only_and_never_whole() {
        let d = dir("since");
        foreign(
            &d,
            "https://ehr/fhir/$export?_type=Patient,Condition,MedicationRequest,MedicationStatement,Observation,Procedure&_since=2026-11-19T00:00:00Z",
        );
        let opened = open(&d, &codes()).unwrap();
        assert!(
            matches!(opened.scope, Scope::Changes { ref since, patients: None } if since == "2026-11-19T00:00:00Z")
        );
        assert_eq!(
            opened.transaction_time.as_deref(),
            Some("2026-11-20T01:00:00Z")
        );
    }

    #[test]
    fn an_export_that_leaves_out_what_screening_reads_is_refused() {
        for (request, named) in [
            (
                "https://ehr/fhir/$export?_type=Patient,Observation",
                "MedicationRequest",
            ),
            (
                "https://ehr/fhir/$export?_typeFilter=Observation%3Fcode%3D44261-6",
                "8480-6",
            ),
            (
                "https://ehr/fhir/$export?_typeFilter=Condition%3Fcode%3DF32",
                "Condition",
            ),
            (
                "https://ehr/fhir/$export?_typeFilter=Observation%3Fstatus%3Dfinal",
                "more than code",
            ),
        ] {
            let d = dir("partial");
            foreign(&d, request);
            let err = open(&d, &codes()).unwrap_err();
            assert!(
                matches!(&err, LocalError::NotWhole { why, .. } if why.contains(named)),
                "{request}: {err}"
            );
        }
    }

    #[test]
    fn a_manifests_own_words_never_reach_the_operators_messages() {
        let forged = "\u{1b}[2J\nTRD criteria: MET";
        // A type filter on a type screening does not read is named as another type.
        let d = dir("forged-filter");
        let kind = url::form_urlencoded::byte_serialize(format!("{forged}?code=1").as_bytes())
            .collect::<String>();
        foreign(&d, &format!("https://ehr/fhir/$export?_typeFilter={kind}"));
        let err = open(&d, &codes()).unwrap_err().to_string();
        assert!(
            err.contains("_typeFilter narrows another type") && !err.contains("TRD"),
            "{err}"
        );
        // A transactionTime or a _since that is not an instant refuses the manifest.
        let since = url::form_urlencoded::byte_serialize(forged.as_bytes()).collect::<String>();
        for (time, request) in [
            (forged, "https://ehr/fhir/$export".to_owned()),
            (
                "2026-11-20T01:00:00Z",
                format!("https://ehr/fhir/$export?_since={since}"),
            ),
        ] {
            let d = dir("forged-time");
            let manifest = serde_json::json!({"transactionTime": time,
                "request": request, "requiresAccessToken": true, "output": []});
            std::fs::write(d.join(MANIFEST), manifest.to_string()).unwrap();
            let err = open(&d, &codes()).unwrap_err();
            assert!(matches!(err, LocalError::BadManifest { .. }), "{err}");
            assert!(!err.to_string().contains("TRD"), "{err}");
        }
    }

    #[test]
    fn a_filter_keeping_every_code_screening_reads_is_whole() {
        let d = dir("filtered");
        foreign(
            &d,
            "https://ehr/fhir/$export?_typeFilter=Observation%3Fcode%3Dhttp%3A%2F%2Floinc.org%7C44261-6%252C8480-6%252C2345-7",
        );
        let opened = open(&d, &codes()).unwrap();
        assert!(matches!(opened.scope, Scope::Whole(_)));
        assert_eq!(opened.files, vec![d.join("Patient.ndjson")]);
    }

    #[test]
    fn a_copy_cut_short_is_refused() {
        let d = dir("cut");
        std::fs::write(
            d.join("Patient.1.ndjson"),
            "{\"resourceType\":\"Patient\"}\n",
        )
        .unwrap();
        let mut marker = Marker::new(ScopeKind::Whole, "system".into(), vec![]);
        marker.files.insert("Patient.1.ndjson".into(), 1000);
        write_marked(&d, &marker);
        let err = open(&d, &codes()).unwrap_err();
        assert!(matches!(err, LocalError::Incomplete { .. }), "{err}");
    }

    /// A manifest of ours in `d`, with `marker` as its account.
    fn write_marked(d: &Path, marker: &Marker) {
        let manifest = LocalManifest {
            transaction_time: "2026-11-20T01:00:00Z".into(),
            request: String::new(),
            requires_access_token: false,
            output: vec![],
            error: vec![],
            deleted: vec![],
            extension: [(EXTENSION.to_owned(), serde_json::to_value(marker).unwrap())].into(),
        };
        write_manifest(d, &manifest).unwrap();
    }

    #[test]
    fn an_account_whose_since_is_not_an_instant_is_refused_unprinted() {
        let d = dir("forged-account-since");
        let mut marker = Marker::new(ScopeKind::Changes, "system".into(), vec![]);
        marker.since = Some("\u{1b}[2J\nTRD criteria: MET".into());
        write_marked(&d, &marker);
        let err = open(&d, &codes()).unwrap_err();
        assert!(matches!(err, LocalError::BadManifest { .. }), "{err}");
        assert!(!err.to_string().contains("TRD"), "{err}");
    }

    #[test]
    fn an_ndjson_entry_that_is_not_a_file_is_refused_not_skipped() {
        let d = dir("not-a-file");
        std::fs::write(d.join("Patient.ndjson"), "").unwrap();
        assert_eq!(ndjson_files(&d).unwrap(), [d.join("Patient.ndjson")]);
        for (name, make) in [
            ("Condition.ndjson", "dangling"),
            ("Observation.ndjson", "directory"),
        ] {
            let path = d.join(name);
            match make {
                "dangling" => std::os::unix::fs::symlink(d.join("gone"), &path).unwrap(),
                _ => std::fs::create_dir(&path).unwrap(),
            }
            let err = ndjson_files(&d).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
            match make {
                "dangling" => std::fs::remove_file(&path).unwrap(),
                _ => std::fs::remove_dir(&path).unwrap(),
            }
        }
    }

    #[test]
    fn ndjson_files_include_gzipped_ones() {
        assert!(is_ndjson(Path::new("x/Observation.3.ndjson.gz")));
        assert!(is_ndjson(Path::new("Patient.jsonl")));
        assert!(!is_ndjson(Path::new("manifest.json")));
        assert!(!is_ndjson(Path::new("changed-patients.txt")));
    }
}
