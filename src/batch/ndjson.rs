//! Screening from a directory of Bulk-style NDJSON: partition by patient (first pass), then screen
//! bucket by bucket on every core (second pass), writing back through the async runtime when asked.
//!
//! Only records the export vouches whole ([`WholeExport`]) are screened: write-back demands it, and
//! a patient outside a patient-scoped export's list is not one of the patients it was asked for.

use super::bucket::{Bound, Piece};
use super::journal::PatientSummary;
use super::line::referenced_id;
use super::partition::{self, Group, InputStats, group_bucket};
use super::rate::RateLimit;
use super::{Job, JobError, Shared, summarise};
use crate::audit::trail::Screening;
use crate::fhir::bulk::local::LocalError;
use crate::fhir::whole::{WholeExport, WholeRecord};
use crate::fhir::{PatientId, PatientRecord};
use crate::screening::Assessment;
use crate::service::{Screener, WriteBackRequest};
use crate::settings::BatchSettings;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;
use tokio::sync::{Semaphore, mpsc};

pub struct Counts {
    pub input: InputStats,
    pub not_in_population: u64,
    /// Patients in the files whose records the export does not vouch whole (outside a
    /// patient-scoped export's list): not screened.
    pub not_vouched: u64,
    /// The patients found in the files (listed by a Patient line), when asked for.
    pub seen: Vec<PatientId>,
}

/// What the screening reads: the files, and the proof of which records in them are whole.
pub(super) struct Input<'a> {
    pub files: &'a [PathBuf],
    pub whole: &'a WholeExport,
    /// Read Medications the files reference but do not hold from the FHIR server.
    pub resolve_medications: bool,
    /// Return the patients found (to find a list's patients that the files lack).
    pub collect_seen: bool,
}

/// A screened patient waiting for its write-back.
struct Pending {
    record: WholeRecord,
    assessment: Assessment,
    started: Instant,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn screen(
    screener: &Arc<Screener>,
    settings: &BatchSettings,
    job: &Job,
    request: WriteBackRequest,
    input: &Input,
    work: &Path,
    done: &HashSet<PatientId>,
    shared: &Arc<Shared>,
    rt: &tokio::runtime::Runtime,
) -> Result<Counts, JobError> {
    let files = input.files;
    let input_error = |source| JobError::Input {
        path: directory_of(files),
        source,
    };
    let read_from_server = |ids: Vec<String>| {
        rt.block_on(screener.read_medications(&ids))
            .map_err(std::io::Error::other)
    };
    let parts = partition::partition(
        files,
        job.shard,
        work,
        settings.bucket_kilobytes * 1024,
        &shared.progress,
        input
            .resolve_medications
            .then_some(&read_from_server as partition::MedicationSource),
    )
    .map_err(input_error)?;
    if request != WriteBackRequest::None && parts.stats.malformed_lines > 0 {
        // Whose records those lines complete is unknown: any patient's may be partial.
        return Err(JobError::Export(LocalError::NotWhole {
            dir: directory_of(files),
            why: format!(
                "{} of its lines could not be read (not JSON, not a FHIR resource, or over {} MiB), and whose records they belong to is unknown; nothing is written back from it: repair the export, or screen it with --write-back none",
                parts.stats.malformed_lines,
                partition::MAX_LINE >> 20
            ),
        }));
    }
    shared.progress.start_phase(
        "screening",
        Some(parts.stats.patients.saturating_sub(done.len() as u64)),
    );
    shared.set_population(parts.stats.patients);
    let next = AtomicUsize::new(0);
    let not_in_population = AtomicU64::new(0);
    let not_vouched = AtomicU64::new(0);
    let seen = std::sync::Mutex::new(Vec::new());
    let bucket_error = std::sync::Mutex::new(None);
    let writing = request != WriteBackRequest::None;
    let (tx, rx) = mpsc::channel::<Pending>(256);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, parts, not_in_population, not_vouched, seen, bucket_error) = (
                &next,
                &parts,
                &not_in_population,
                &not_vouched,
                &seen,
                &bucket_error,
            );
            scope.spawn(move || {
                let mut text = String::new();
                let screen_group = |group: &Group,
                                    medications: &HashMap<&str, &str>|
                 -> Result<(), Stopped> {
                    if shared.stopping() {
                        return Err(Stopped);
                    }
                    if !group.listed {
                        not_in_population.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                    let Ok(id) = PatientId::parse(group.patient) else {
                        return Ok(());
                    };
                    if input.collect_seen
                        && let Ok(mut seen) = seen.lock()
                    {
                        seen.push(id.clone());
                    }
                    if done.contains(&id) {
                        return Ok(());
                    }
                    if !input.whole.covers(&id) {
                        not_vouched.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                    if group.too_large {
                        shared.start();
                        let started = Instant::now();
                        let e = too_large(parts.bound);
                        let _ = shared.audit(screener, id.as_str(), Screening::failed(&e));
                        shared.finish(&super::failed(id.as_str(), &e, started.elapsed()));
                        return Ok(());
                    }
                    let record =
                        record_of(id, group, medications).with_server_base(screener.fhir_base());
                    let Some(record) = input.whole.vouch(record) else {
                        not_vouched.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    };
                    shared.start();
                    let started = Instant::now();
                    let assessment = match screener.evaluate_record(record.record(), job.as_of) {
                        Ok(assessment) => assessment,
                        Err(e) => {
                            let id = record.patient_id().as_str();
                            // Refused or not, the patient has failed already.
                            let _ = shared.audit(screener, id, Screening::failed(&e));
                            shared.finish(&super::failed(id, &e, started.elapsed()));
                            return Ok(());
                        }
                    };
                    if writing {
                        let pending = Pending {
                            record,
                            assessment,
                            started,
                        };
                        tx.blocking_send(pending).map_err(|_| Stopped)?;
                    } else {
                        let id = record.patient_id().as_str();
                        let summary = match shared.audit(screener, id, Screening::read_only()) {
                            Ok(()) => summarise(&assessment, None, started.elapsed()),
                            Err(e) => super::failed(id, &e, started.elapsed()),
                        };
                        shared.finish(&summary);
                    }
                    Ok(())
                };
                while !shared.stopping() {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= parts.buckets.len() {
                        break;
                    }
                    let taken = parts.take(i, &mut text, &mut |piece| {
                        let stopped = match piece {
                            Piece::Text(text) => {
                                let (groups, medications) = group_bucket(text);
                                groups
                                    .iter()
                                    .try_for_each(|group| screen_group(group, &medications))
                            }
                            Piece::TooLarge { patient, listed } => screen_group(
                                &Group {
                                    patient,
                                    listed,
                                    too_large: true,
                                    resources: Vec::new(),
                                },
                                &HashMap::new(),
                            ),
                        };
                        stopped.map_err(|Stopped| std::io::Error::other(Stopped))
                    });
                    match taken {
                        Ok(()) => {}
                        Err(e) if e.get_ref().is_some_and(|e| e.is::<Stopped>()) => return,
                        Err(e) => {
                            if let Ok(mut slot) = bucket_error.lock() {
                                slot.get_or_insert(e);
                            }
                            shared.stop.store(true, Ordering::Relaxed);
                            break;
                        }
                    }
                }
            });
        }
        drop(tx);
        rt.block_on(write_backs(rx, screener, settings, request, shared));
    });
    if let Some(e) = bucket_error.into_inner().ok().flatten() {
        return Err(JobError::WorkDir {
            path: work.display().to_string(),
            source: e,
        });
    }
    shared.progress.finish_phase();
    Ok(Counts {
        input: parts.stats,
        not_in_population: not_in_population.into_inner(),
        not_vouched: not_vouched.into_inner(),
        seen: seen.into_inner().unwrap_or_default(),
    })
}

/// Why a worker stopped short of its buckets: the job is stopping, or the write-backs ended.
#[derive(Debug)]
struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped")
    }
}

impl std::error::Error for Stopped {}

/// A patient whose lines are over what a worker may hold: refused as a record over the
/// per-patient limit is.
fn too_large(bound: Bound) -> crate::error::Error {
    crate::error::Error::ResourceExhausted(crate::summary!(
        "the patient's lines in the export are over {} KiB, more than one worker holds at once (eight times batch.bucket_kilobytes); not screened",
        bound.hold >> 10
    ))
}

/// The directory of the input files, to name in errors.
fn directory_of(files: &[PathBuf]) -> String {
    files
        .first()
        .and_then(|f| f.parent())
        .map_or_else(String::new, |d| d.display().to_string())
}

/// Writes back screened patients at the configured rate and concurrency, journaling each when its
/// write returned.
async fn write_backs(
    mut rx: mpsc::Receiver<Pending>,
    screener: &Arc<Screener>,
    settings: &BatchSettings,
    request: WriteBackRequest,
    shared: &Arc<Shared>,
) {
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let limit = RateLimit::new(f64::from(settings.writes_per_second));
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(p) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        limit.acquire().await;
        let (screener, shared) = (screener.clone(), shared.clone());
        tasks.spawn(async move {
            let mut written = Vec::new();
            let result = screener
                .write_back(&p.record, &p.assessment, request, &mut written)
                .await;
            let id = p.record.patient_id().as_str();
            let audited = shared.audit(
                &screener,
                id,
                Screening {
                    error: None,
                    write_back: result.as_ref(),
                    written: &written,
                },
            );
            let summary: PatientSummary = match audited {
                Ok(()) => summarise(&p.assessment, result.as_ref(), p.started.elapsed()),
                Err(e) => super::failed(id, &e, p.started.elapsed()),
            };
            shared.finish(&summary);
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// One patient's record from their lines (each one JSON value, as the first pass read it), with the
/// Medications their requests and statements reference.
pub fn record_of(id: PatientId, group: &Group, medications: &HashMap<&str, &str>) -> PatientRecord {
    let mut record = PatientRecord::new(id, None);
    let mut position = 0;
    // Every line in a bucket was read whole as one JSON value by the first pass (`classify`): it
    // is not checked again here.
    for line in &group.resources {
        record.add_json_text(line, None, position);
        position += 1;
    }
    let referenced: Vec<&str> = record
        .medication_references()
        .filter_map(|r| referenced_id(r, "Medication"))
        .collect();
    let mut added = HashSet::new();
    let found: Vec<&str> = referenced
        .into_iter()
        .filter(|id| added.insert(*id))
        .filter_map(|id| medications.get(id).copied())
        .collect();
    for json in found {
        record.add_json_text(json, None, position);
        position += 1;
    }
    record
}
