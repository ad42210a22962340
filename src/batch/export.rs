//! The export step: one Bulk Data export of the FHIR server into a directory that every shard of the
//! nightly job then reads (`trdscreen export --out DIR`, then `trdscreen batch --ndjson DIR
//! --shard I/N`), so that N pods never ask the EHR for the same export N times. `batch --bulk` runs
//! the same step into its scratch directory.
//!
//! - The export carries only what screening reads: `_type` and a `_typeFilter` on the Observation
//!   codes of the knowledge base (the same codes ScreenPatient searches for). A server that refuses
//!   the filter gets `_type` alone; one that accepts it but sends other Observations anyway is
//!   noticed in the files. Either way the directory says so.
//! - With `_since` (an incremental run), the export only finds the patients whose data changed. Each
//!   of them is then read whole: by a second, patient-scoped export (`patient` parameter) where the
//!   server takes one, else by the shards, patient by patient, through ScreenPatient's read. Nothing
//!   is screened on the changes alone.
//! - Medications the export leaves out are read by id once, here, and written beside the files.
//! - The directory's manifest is written last and atomically, and removed first when an export
//!   replaces an earlier one: it is the mark of a finished export (see `fhir::bulk::local`).

use super::JobError;
use super::progress::Progress;
use super::scan::{Scan, scan};
use super::scratch;
use crate::error::{Error, LocalPath};
use crate::fhir::PatientId;
use crate::fhir::bulk::local::{
    self, CHANGED_PATIENTS, EXTENSION, LocalFile, LocalManifest, Marker, ScopeKind,
};
use crate::fhir::bulk::{
    ExportLevel, ExportOutcome, ExportProgress, ExportRequest, TypeFilterOutcome,
};
use crate::service::Screener;
use crate::summary;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Marks a directory as one `trdscreen export` owns, so that a later export may empty it.
const OWNED: &str = ".trdscreen-export";
const RESOLVED_MEDICATIONS: &str = "Medication.resolved.ndjson";

/// What the export step did, for its summary line and the job's report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportSummary {
    pub transaction_time: String,
    pub scope: ScopeKind,
    pub files: usize,
    pub bytes: u64,
    pub type_filter: String,
    pub resources_outside_filter: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_patients: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_read: Option<String>,
    pub medications_read: u64,
    pub deleted_resources: u64,
    pub deleted_unattributed: u64,
    pub unreadable_lines: u64,
}

/// The `_typeFilter` built from the knowledge base: Observations by the codes screening reads (the
/// codes ScreenPatient searches for). Conditions and Procedures are not filtered: the rules match
/// ICD-10 codes by prefix and procedures by their text too, which no token search can express.
pub fn type_filter(screener: &Screener) -> Vec<String> {
    let codes = observation_codes(screener);
    vec![local::observation_filter(codes.iter().map(String::as_str))]
}

/// The Observation codes screening reads, one by one.
pub fn observation_codes(screener: &Screener) -> BTreeSet<String> {
    crate::fhir::fetch::observation_codes(screener.knowledge())
        .split(',')
        .map(str::to_owned)
        .collect()
}

/// Runs the export step into `out` (created owner-only if missing; an earlier export of ours in it
/// is replaced, anything else refused).
pub fn run(
    screener: &Screener,
    request: &ExportRequest,
    out: &Path,
    progress: &Progress,
    rt: &tokio::runtime::Runtime,
) -> Result<ExportSummary, JobError> {
    let local = |source: std::io::Error| JobError::Output {
        path: out.display().to_string(),
        source,
    };
    take_over(out)?;
    let incremental = request.since.is_some();
    let first = out.join(if incremental { "changes" } else { "export" });
    progress.start_phase("exporting", None);
    let exported = download(screener, request, &first, progress, rt)?;
    progress.finish_phase();
    let filter_codes = filter_codes(request, &exported);
    let mut marker = Marker::new(
        ScopeKind::Whole,
        level_name(&request.level),
        request
            .types
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect(),
    );
    marker.since = request.since.as_ref().map(|s| s.as_str().to_owned());
    let found = scan(&output_paths(&exported), filter_codes.as_ref()).map_err(local)?;
    let mut kept = vec![exported.clone()];
    if incremental {
        let deleted: Vec<PathBuf> = exported.deleted.iter().map(|f| f.path.clone()).collect();
        // A file the export wrote that cannot be read fails the run (its deletions would go
        // uncounted); the next run asks again.
        marker.deleted_resources = count_deleted(&deleted).map_err(local)?;
        // Deletion entries name `Type/id` only; whose they were is not in them. The patients' next
        // full run screens their records as they now stand.
        marker.deleted_unattributed = marker.deleted_resources;
        if marker.deleted_resources > 0 {
            tracing::warn!(
                deleted = marker.deleted_resources,
                "the export lists deleted resources, which name no patient; they are counted, and screened at the next full run"
            );
        }
        marker.unreadable_lines = found.unreadable;
        if found.unreadable > 0 {
            tracing::warn!(
                lines = found.unreadable,
                "the changes export holds lines that cannot be read; a changed patient among them is screened at the next full run"
            );
        }
        let mut changed = found.patients.clone();
        let changed_medications: Vec<String> = found.medications_held.iter().cloned().collect();
        if !changed_medications.is_empty() {
            changed.extend(rt.block_on(screener.patients_using_medications(&changed_medications))?);
        }
        let changed: Vec<PatientId> = changed.into_iter().collect();
        marker.changed_patients = Some(changed.len() as u64);
        tracing::info!(patients = changed.len(), "changed patients found");
        record_filter(&mut marker, &exported, &found, request);
        std::fs::remove_dir_all(&first).map_err(local)?;
        kept.clear();
        match read_whole(screener, request, &changed, out, progress, rt)? {
            Some(exports) => {
                marker.scope = ScopeKind::Patients;
                marker.full_read = Some("patient-export".into());
                kept = exports;
            }
            None => {
                marker.scope = ScopeKind::Changes;
                marker.full_read = Some("per-patient".into());
            }
        }
        local::write_patient_list(out, &changed).map_err(local)?;
        marker.files.insert(
            CHANGED_PATIENTS.into(),
            file_len(&out.join(CHANGED_PATIENTS)),
        );
    } else {
        record_filter(&mut marker, &exported, &found, request);
    }
    if marker.scope != ScopeKind::Changes {
        marker.medications_read = resolve_medications(screener, &kept, out, rt)?;
    }
    let manifest = manifest(out, &exported, &kept, marker)?;
    local::write_manifest(out, &manifest).map_err(local)?;
    let marker: Marker = serde_json::from_value(manifest.extension[EXTENSION].clone())
        .map_err(|e| local(std::io::Error::other(e)))?;
    Ok(ExportSummary {
        transaction_time: manifest.transaction_time.clone(),
        scope: marker.scope,
        files: manifest.output.len(),
        bytes: marker.files.values().sum(),
        type_filter: marker.type_filter_outcome.clone(),
        resources_outside_filter: marker.resources_outside_filter,
        changed_patients: marker.changed_patients,
        full_read: marker.full_read.clone(),
        medications_read: marker.medications_read,
        deleted_resources: marker.deleted_resources,
        deleted_unattributed: marker.deleted_unattributed,
        unreadable_lines: marker.unreadable_lines,
    })
}

/// Makes `out` ours and empty: created owner-only when missing; when it holds an earlier export of
/// ours, its manifest goes first (so no reader takes the half-replaced directory for a finished
/// export), then everything else; any other non-empty directory is refused.
fn take_over(out: &Path) -> Result<(), JobError> {
    let err = |source: std::io::Error| JobError::Output {
        path: out.display().to_string(),
        source,
    };
    scratch::create_dir(out).map_err(err)?;
    let owned = out.join(OWNED);
    if owned.exists() {
        local::remove_manifest(out).map_err(err)?;
        for entry in std::fs::read_dir(out).map_err(err)? {
            let path = entry.map_err(err)?.path();
            if path == owned {
                continue;
            }
            let kind = std::fs::symlink_metadata(&path).map_err(err)?;
            if kind.is_dir() {
                std::fs::remove_dir_all(&path).map_err(err)?;
            } else {
                std::fs::remove_file(&path).map_err(err)?;
            }
        }
        return Ok(());
    }
    if std::fs::read_dir(out).map_err(err)?.next().is_some() {
        return Err(JobError::Service(Error::InvalidArgument(summary!(
            "{} is neither empty nor an earlier export of trdscreen: refused, so that nothing else there is deleted",
            LocalPath(out)
        ))));
    }
    scratch::create_file(&owned).map_err(err)?;
    Ok(())
}

fn download(
    screener: &Screener,
    request: &ExportRequest,
    dest: &Path,
    progress: &Progress,
    rt: &tokio::runtime::Runtime,
) -> Result<ExportOutcome, JobError> {
    Ok(rt.block_on(screener.export(request, dest, |event| {
        if let ExportProgress::Received { bytes } = event {
            progress.advance(bytes);
        }
    }))?)
}

/// The changed patients' whole records by patient-scoped exports, chunk by chunk; `None` when the
/// server does not take them (each patient is then read by the shards through ScreenPatient's read).
fn read_whole(
    screener: &Screener,
    request: &ExportRequest,
    changed: &[PatientId],
    out: &Path,
    progress: &Progress,
    rt: &tokio::runtime::Runtime,
) -> Result<Option<Vec<ExportOutcome>>, JobError> {
    let mut exports = Vec::new();
    if changed.is_empty() {
        return Ok(Some(exports));
    }
    progress.start_phase("exporting", None);
    for (k, chunk) in changed
        .chunks(screener.bulk_settings().patients_per_export.max(1))
        .enumerate()
    {
        let scoped = request.of_patients(chunk.to_vec());
        let dest = out.join(format!("patients-{}", k + 1));
        let exported = rt.block_on(screener.export_unless_refused(&scoped, &dest, |event| {
            if let ExportProgress::Received { bytes } = event {
                progress.advance(bytes);
            }
        }))?;
        match exported {
            Some(outcome) => exports.push(outcome),
            None => {
                // Refused: the changed patients are read one by one instead; nothing of the
                // patient-scoped exports is kept.
                for k in 0..=k {
                    let _ = std::fs::remove_dir_all(out.join(format!("patients-{}", k + 1)));
                }
                progress.finish_phase();
                tracing::warn!(
                    "the FHIR server does not take a patient-scoped export: the changed patients are read one by one, as ScreenPatient reads them"
                );
                return Ok(None);
            }
        }
    }
    progress.finish_phase();
    Ok(Some(exports))
}

/// The codes a sent `_typeFilter` kept, to check the files against.
fn filter_codes(request: &ExportRequest, exported: &ExportOutcome) -> Option<BTreeSet<String>> {
    if exported.type_filter != TypeFilterOutcome::Sent {
        return None;
    }
    let mut codes = BTreeSet::new();
    for query in &request.type_filter {
        codes.extend(local::observation_filter_codes(query).unwrap_or_default());
    }
    Some(codes)
}

fn record_filter(
    marker: &mut Marker,
    exported: &ExportOutcome,
    found: &Scan,
    request: &ExportRequest,
) {
    marker.resources_outside_filter = found.outside_filter;
    marker.type_filter_outcome = match exported.type_filter {
        TypeFilterOutcome::NotAsked => "not-asked",
        TypeFilterOutcome::Refused => "refused",
        TypeFilterOutcome::Sent if found.outside_filter > 0 => "ignored",
        TypeFilterOutcome::Sent => "applied",
    }
    .into();
    match marker.type_filter_outcome.as_str() {
        "applied" => marker.type_filter = request.type_filter.clone(),
        "refused" => tracing::warn!(
            "the FHIR server refused _typeFilter: the export was made with _type alone (larger, same screening)"
        ),
        "ignored" => tracing::warn!(
            outside = found.outside_filter,
            "the FHIR server accepted _typeFilter but did not apply it (Observations outside it are in the files); screening is unaffected"
        ),
        _ => {}
    }
}

fn output_paths(exported: &ExportOutcome) -> Vec<PathBuf> {
    exported.files.iter().map(|f| f.path.clone()).collect()
}

/// Resources in the export's `deleted` Bundles (a line at a time, each at most
/// [`MAX_LINE`](super::partition::MAX_LINE): the files may be large). A line that is not such a
/// Bundle counts as one; a file that cannot be read is an error.
fn count_deleted(files: &[PathBuf]) -> std::io::Result<u64> {
    use super::partition::{MAX_LINE, append_line};
    #[derive(serde::Deserialize)]
    struct Bundle {
        #[serde(default)]
        entry: Vec<serde::de::IgnoredAny>,
    }
    let mut n = 0;
    let mut line = Vec::new();
    for file in files {
        let mut reader = std::io::BufReader::new(crate::files::open_regular(file)?);
        loop {
            line.clear();
            let fits = append_line(&mut reader, &mut line, MAX_LINE)?;
            if !fits {
                n += 1;
            } else if line.is_empty() {
                break;
            } else if !line.iter().all(u8::is_ascii_whitespace) {
                n += serde_json::from_slice::<Bundle>(&line).map_or(1, |b| b.entry.len() as u64);
            }
        }
    }
    Ok(n)
}

/// Reads the Medications the exports reference but leave out, once, into `Medication.resolved.ndjson`.
fn resolve_medications(
    screener: &Screener,
    exports: &[ExportOutcome],
    out: &Path,
    rt: &tokio::runtime::Runtime,
) -> Result<u64, JobError> {
    let paths: Vec<PathBuf> = exports.iter().flat_map(output_paths).collect();
    let found = scan(&paths, None).map_err(|source| JobError::Input {
        path: out.display().to_string(),
        source,
    })?;
    let missing = found.medications_missing();
    if missing.is_empty() {
        return Ok(0);
    }
    let read = rt.block_on(screener.read_medications(&missing))?;
    let path = out.join(RESOLVED_MEDICATIONS);
    let write = || -> std::io::Result<()> {
        let mut file = std::io::BufWriter::new(scratch::create_file(&path)?);
        for text in &read {
            writeln!(file, "{text}")?;
        }
        file.into_inner().map_err(|e| e.into_error())?.sync_all()
    };
    write().map_err(|source| JobError::Output {
        path: path.display().to_string(),
        source,
    })?;
    Ok(read.len() as u64)
}

/// The directory's manifest: the first export's transaction time and request, the files kept (with
/// paths relative to `out`), and our account with every file's size.
fn manifest(
    out: &Path,
    first: &ExportOutcome,
    kept: &[ExportOutcome],
    mut marker: Marker,
) -> Result<LocalManifest, JobError> {
    let relative = |path: &Path| -> String {
        path.strip_prefix(out)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    };
    let mut manifest = LocalManifest {
        transaction_time: first.transaction_time.clone(),
        request: first.request.clone(),
        requires_access_token: false,
        output: Vec::new(),
        error: Vec::new(),
        deleted: Vec::new(),
        extension: Default::default(),
    };
    for export in kept {
        for (list, files) in [
            (&mut manifest.output, &export.files),
            (&mut manifest.error, &export.errors),
            (&mut manifest.deleted, &export.deleted),
        ] {
            for f in files {
                let name = relative(&f.path);
                marker.files.insert(name.clone(), f.bytes);
                list.push(LocalFile {
                    resource_type: f.resource_type.clone(),
                    url: name,
                    count: f.count,
                });
            }
        }
    }
    let resolved = out.join(RESOLVED_MEDICATIONS);
    if resolved.exists() {
        marker
            .files
            .insert(RESOLVED_MEDICATIONS.into(), file_len(&resolved));
        manifest.output.push(LocalFile {
            resource_type: "Medication".into(),
            url: RESOLVED_MEDICATIONS.into(),
            count: Some(marker.medications_read),
        });
    }
    let value = serde_json::to_value(&marker).map_err(|e| JobError::Output {
        path: out.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    manifest.extension.insert(EXTENSION.into(), value);
    Ok(manifest)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn level_name(level: &ExportLevel) -> String {
    match level {
        ExportLevel::System => "system".into(),
        ExportLevel::Patient => "patient".into(),
        ExportLevel::Group(id) => format!("group/{}", id.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_resources_are_counted_by_entry_and_a_file_that_cannot_be_read_is_an_error() {
        let dir = std::env::temp_dir().join(format!("trdscreen-deleted-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("Bundle.deleted.ndjson");
        let entry = r#"{"request":{"method":"DELETE","url":"Observation/o1"}}"#;
        std::fs::write(
            &file,
            format!(
                "{{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{entry},{entry}]}}\n\nnot json\n"
            ),
        )
        .unwrap();
        assert_eq!(count_deleted(std::slice::from_ref(&file)).unwrap(), 3);
        let absent = dir.join("absent.ndjson");
        assert!(count_deleted(&[file, absent]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
