//! The nightly population job (`trdscreen batch`): screens a whole population from Bulk-style
//! NDJSON, or patient by patient from a FHIR Group or search, with sharding, a checkpoint to resume
//! from, a rate limit on the hospital's server, progress, and a report.
//!
//! Every patient goes through the service's own path: the same evaluation as `EvaluateBundle`, the
//! same fetch as `ScreenPatient` for per-patient sources, the same idempotent write-back.

pub mod bucket;
pub mod cohort;
pub mod export;
pub mod journal;
pub mod line;
pub mod ndjson;
pub mod partition;
pub mod progress;
pub mod rate;
pub mod report;
pub mod scan;
pub mod scratch;
pub mod shard;

use crate::audit::Requester;
use crate::audit::trail::Screening;
use crate::date::Date;
use crate::error::{Error, ErrorKind};
use crate::fhir::PatientId;
use crate::fhir::bulk::ExportRequest;
use crate::fhir::bulk::local;
use crate::screening::{Assessment, TrdStatus, TrialOutcome};
use crate::service::{Screener, WriteBackRequest};
use crate::settings::BatchSettings;
use crate::telemetry::batch as telemetry;
use crate::writeback::{Outcome, Scope};
use journal::{JobKey, Journal, JournalError, PatientSummary};
use progress::Progress;
use report::Report;
use scratch::Scratch;
use shard::Shard;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the population comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A directory of Bulk-style NDJSON files.
    Ndjson(PathBuf),
    /// The members of a FHIR Group, each read as ScreenPatient reads them.
    Group(String),
    /// The Patients a FHIR search finds (`name=value&...`), each read as ScreenPatient reads them.
    Search(String),
    /// A Bulk Data `$export` from the FHIR server, downloaded into the work directory and read as
    /// NDJSON; Medications the export leaves out are read by id.
    Bulk(ExportRequest),
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::Ndjson(dir) => format!("ndjson:{}", dir.display()),
            Source::Group(id) => format!("group:{id}"),
            Source::Search(query) => format!("search:{query}"),
            Source::Bulk(request) => format!("bulk:{}", request.describe()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Job {
    pub source: Source,
    pub as_of: Date,
    pub write_back: WriteBackRequest,
    pub shard: Shard,
    /// The journal kept across runs; without it the job keeps one in its work directory.
    pub checkpoint: Option<PathBuf>,
    /// The JSON summary; the per-patient CSV goes beside it (same name, `.csv`).
    pub report: Option<PathBuf>,
    /// Scratch space for the NDJSON reader's buckets (about the size of the input).
    pub work_dir: Option<PathBuf>,
    /// Draw a progress bar (a terminal) rather than log progress lines.
    pub terminal: bool,
    /// For `--ndjson`: read only a finished, recent export, waiting for one.
    pub export_gate: Option<ExportGate>,
}

/// What a shard demands of the shared export directory it reads: a manifest (the export step's mark
/// of a finished export) whose `transactionTime` is at most `max_age` old, waited for up to `wait`.
#[derive(Debug, Clone, Copy)]
pub struct ExportGate {
    pub max_age: Duration,
    pub wait: Duration,
}

/// How the job ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every patient screened (and written back when asked).
    Success,
    /// Some patients could not be screened or written; the report says which and why.
    Partial,
    /// No patient could be screened.
    Failure,
}

/// Why the job could not run (or stopped) as a whole.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Checkpoint(#[from] JournalError),
    #[error("cannot read the input {path}: {source}")]
    Input {
        path: String,
        source: std::io::Error,
    },
    #[error("no .ndjson files in {0}")]
    NoInput(String),
    #[error(transparent)]
    Export(#[from] local::LocalError),
    #[error("no finished export to read in {dir}: {why}")]
    ExportNotReady { dir: String, why: String },
    #[error("cannot use the work directory {path}: {source}")]
    WorkDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Output {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Service(#[from] Error),
    #[error("stopped by a signal; run again with the same --checkpoint to resume")]
    Interrupted,
}

/// What the running job shares between its workers.
pub(crate) struct Shared {
    journal: Mutex<Option<Journal>>,
    failure: Mutex<Option<std::io::Error>>,
    pub(crate) stop: AtomicBool,
    pub(crate) progress: Progress,
    micros: Mutex<Vec<u64>>,
    /// The audit trail's view of the run: this service asked, for this source.
    audit_who: Requester,
    audit_cohort: String,
    population: AtomicU64,
}

impl Shared {
    /// Records one finished patient. A journal that cannot be written stops the job: carrying on
    /// would screen people the checkpoint does not know about.
    pub(crate) fn finish(&self, summary: &PatientSummary) {
        let written = match self.journal.lock() {
            Ok(mut guard) => match guard.as_mut() {
                Some(journal) => journal.append(summary),
                None => Ok(()),
            },
            Err(_) => Err(std::io::Error::other("the journal lock was poisoned")),
        };
        if let Err(e) = written {
            if let Ok(mut failure) = self.failure.lock() {
                failure.get_or_insert(e);
            }
            self.stop.store(true, Ordering::Relaxed);
        }
        self.progress.advance(1);
        telemetry::in_flight(-1);
        telemetry::patient_done(if summary.is_complete() {
            telemetry::PatientOutcome::Screened
        } else {
            telemetry::PatientOutcome::Failed
        });
        if let Ok(mut m) = self.micros.lock() {
            m.push(summary.micros);
        }
    }

    /// Records one patient's screening in the audit trail (an error when the record cannot be kept
    /// and `audit.when_unrecorded = "refuse"`: the patient then counts as failed).
    pub(crate) fn audit(
        &self,
        screener: &Screener,
        patient: &str,
        screening: Screening,
    ) -> Result<(), Error> {
        screener.audit().population_patient_screened(
            &self.audit_who,
            &self.audit_cohort,
            self.population.load(Ordering::Relaxed),
            patient,
            screening,
        )
    }

    /// The number of patients the run screens, for the audit records.
    pub(crate) fn set_population(&self, patients: u64) {
        self.population.store(patients, Ordering::Relaxed);
    }

    /// A patient starts: counted in flight until [`finish`](Self::finish).
    pub(crate) fn start(&self) {
        telemetry::in_flight(1);
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Runs the job on `rt`. Stops early, resumably, on SIGTERM/SIGINT.
pub fn run(
    screener: Arc<Screener>,
    settings: &BatchSettings,
    job: &Job,
    rt: &tokio::runtime::Runtime,
) -> Result<(Report, Ending), JobError> {
    let started = Instant::now();
    // With no FHIR server there is nowhere to write: the configured default then means none,
    // while an explicit request is an error before anything runs.
    let scope = match (screener.has_fhir_server(), job.write_back) {
        (true, asked) => screener.scope(asked),
        (false, WriteBackRequest::Default | WriteBackRequest::None) => None,
        (false, _) => {
            return Err(JobError::Service(Error::NotConfigured(
                "--write-back needs a FHIR server (fhir.base_url)".into(),
            )));
        }
    };
    screener.audit().admits()?;
    let work = Scratch::create(job.work_dir.as_deref()).map_err(|source| JobError::WorkDir {
        path: job.work_dir.as_deref().map_or_else(
            || std::env::temp_dir().display().to_string(),
            |p| p.display().to_string(),
        ),
        source,
    })?;
    let shared = Arc::new(Shared {
        journal: Mutex::new(None),
        failure: Mutex::new(None),
        stop: AtomicBool::new(false),
        progress: Progress::new(job.terminal),
        micros: Mutex::new(Vec::new()),
        audit_who: Requester::this_service("batch", crate::audit::new_event_id().ok()),
        audit_cohort: job.source.describe(),
        population: AtomicU64::new(0),
    });
    let signals = rt.spawn(stop_on_signal(shared.clone()));
    let reporter = {
        let shared = shared.clone();
        std::thread::spawn(move || shared.progress.report_until_stopped())
    };
    let ran = run_source(&screener, settings, job, scope, work.path(), &shared, rt);
    rt.block_on(screener.audit().finish());
    signals.abort();
    shared.progress.stop();
    let _ = reporter.join();
    let reading = shared.progress.phase_seconds("reading");
    let journal = shared.journal.lock().ok().and_then(|mut j| j.take());
    let finished = journal.map(|j| {
        let path = j.path().to_owned();
        j.finish().map_err(|source| JobError::Output {
            path: path.display().to_string(),
            source,
        })
    });
    let ran = ran?;
    let journal_path = match finished {
        Some(done) => done?,
        None => return Err(JobError::Interrupted),
    };
    if let Some(e) = shared.failure.lock().ok().and_then(|mut f| f.take()) {
        return Err(JobError::Output {
            path: journal_path.display().to_string(),
            source: e,
        });
    }
    let interrupted = shared.stopping();
    let mut report = Report {
        job: ran.key,
        ..Report::default()
    };
    write_results(&journal_path, job.report.as_deref(), &mut report)?;
    if let Some(counts) = ran.ndjson {
        report.patients.not_in_population = counts.not_in_population;
        report.input = Some(counts.input);
    }
    report.export = ran.export;
    if let Some(mut incremental) = ran.incremental {
        incremental.screened_in_full = report.patients.screened;
        report.incremental = Some(incremental);
    }
    report.patients.resumed_from_checkpoint = ran.resumed;
    let mut micros = shared.micros.lock().map(|m| m.clone()).unwrap_or_default();
    report.durations.patient_p50_ms = report::percentile_ms(&mut micros, 50.0);
    report.durations.patient_p99_ms = report::percentile_ms(&mut micros, 99.0);
    report.durations.reading_secs = reading;
    report.durations.total_secs = started.elapsed().as_secs_f64();
    report.durations.screening_secs = (report.durations.total_secs - reading).max(0.0);
    if let Some(path) = &job.report {
        let text = serde_json::to_string_pretty(&report).map_err(std::io::Error::other);
        text.and_then(|t| crate::output::write_private(path, (t + "\n").as_bytes()))
            .map_err(|source| JobError::Output {
                path: path.display().to_string(),
                source,
            })?;
    }
    if interrupted {
        return Err(JobError::Interrupted);
    }
    // A job whose every write-back failed is a failure, not a partial one: the chart retries a
    // failure (a FHIR server down for the night's first minutes), and reports a partial one.
    let ending = if !report.any_failed() {
        Ending::Success
    } else if report.patients.screened > 0 && !report.every_write_back_failed() {
        Ending::Partial
    } else {
        Ending::Failure
    };
    drop(work);
    Ok((report, ending))
}

/// What running a source left for the report.
struct Ran {
    key: JobKey,
    resumed: u64,
    ndjson: Option<ndjson::Counts>,
    export: Option<report::ExportInfo>,
    incremental: Option<report::Incremental>,
}

/// Prepares the source (the export step for `--bulk`, the directory's manifest for `--ndjson`),
/// opens the journal under the job's identity, and screens.
fn run_source(
    screener: &Arc<Screener>,
    settings: &BatchSettings,
    job: &Job,
    scope: Option<Scope>,
    work: &Path,
    shared: &Arc<Shared>,
    rt: &tokio::runtime::Runtime,
) -> Result<Ran, JobError> {
    let codes = export::observation_codes(screener);
    let (directory, exported) = match &job.source {
        Source::Ndjson(dir) => (
            Some(open_directory(dir, job.export_gate, &codes, shared)?),
            None,
        ),
        Source::Bulk(request) => {
            let dir = work.join("export");
            let summary = export::run(screener, request, &dir, &shared.progress, rt)?;
            (Some(local::open(&dir, &codes)?), Some(summary))
        }
        Source::Group(_) | Source::Search(_) => (None, None),
    };
    let mut source = job.source.describe();
    if let (Source::Ndjson(_), Some(time)) = (
        &job.source,
        directory.as_ref().and_then(|d| d.transaction_time.as_ref()),
    ) {
        // A checkpoint belongs to one export: the same directory refilled is another job.
        source.push_str(&format!("@{time}"));
    }
    let key = JobKey {
        source,
        as_of: job.as_of.to_string(),
        shard: job.shard.to_string(),
        write_back: scope_name(scope).into(),
        ruleset: screener.knowledge().ruleset_version.clone(),
    };
    let journal_path = job
        .checkpoint
        .clone()
        .unwrap_or_else(|| work.join("journal"));
    // The checkpoint and the report may go to a directory of their own (beside a shared export, made
    // only once the export is there to be read).
    for file in [Some(&journal_path), job.report.as_ref()]
        .into_iter()
        .flatten()
    {
        if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
            scratch::create_dir(parent).map_err(|source| JobError::Output {
                path: parent.display().to_string(),
                source,
            })?;
        }
    }
    // The report and its CSV are written over at the end, from the journal: one of them being the
    // journal would empty it before it is read, and the report with it.
    if let Some(report) = &job.report
        && [report.clone(), report.with_extension("csv")].contains(&journal_path)
    {
        return Err(JournalError::SameAsReport {
            path: journal_path.display().to_string(),
        }
        .into());
    }
    let (journal, done) = Journal::open(&journal_path, &key)?;
    if let Ok(mut slot) = shared.journal.lock() {
        *slot = Some(journal);
    }
    let request = match scope {
        None => WriteBackRequest::None,
        Some(Scope::Flag) => WriteBackRequest::Flag,
        Some(Scope::FlagAndCarePlan) => WriteBackRequest::FlagAndCarePlan,
    };
    let mut ran = Ran {
        key,
        resumed: done.len() as u64,
        ndjson: None,
        export: None,
        incremental: None,
    };
    let Some(directory) = directory else {
        cohort::screen(screener, settings, job, request, &done, shared, rt)?;
        return Ok(ran);
    };
    ran.export = Some(report::ExportInfo::of(&directory, exported.as_ref()));
    let marker = directory.marker.as_ref();
    match directory.scope {
        local::Scope::Whole(whole) => {
            if directory.files.is_empty() && directory.listed.is_none() {
                return Err(JobError::NoInput(directory.dir.display().to_string()));
            }
            let input = ndjson::Input {
                files: &directory.files,
                whole: &whole,
                resolve_medications: screener.has_fhir_server(),
                collect_seen: directory.listed.is_some(),
            };
            let counts = ndjson::screen(
                screener, settings, job, request, &input, work, &done, shared, rt,
            )?;
            if let Some(listed) = &directory.listed {
                // Asked for, but not in the files (a Patient deleted since, an export that left
                // someone out): read whole from the server.
                let seen: HashSet<&PatientId> = counts.seen.iter().collect();
                let absent: Vec<PatientId> = listed
                    .iter()
                    .filter(|p| !seen.contains(p))
                    .cloned()
                    .collect();
                let mut incremental = report::Incremental::new(
                    marker,
                    listed.iter().filter(|p| job.shard.contains(p)).count() as u64,
                );
                incremental.not_asked_for = counts.not_vouched;
                ran.incremental = Some(incremental);
                if !absent.is_empty() && !shared.stopping() {
                    cohort::screen_ids(screener, settings, job, request, absent, &done, shared, rt);
                }
            }
            ran.ndjson = Some(counts);
        }
        local::Scope::Changes { since, patients } => {
            if !screener.has_fhir_server() {
                return Err(JobError::Service(Error::NotConfigured(
                    "the export holds changes only: each changed patient is read whole from the FHIR server (fhir.base_url), and none is configured".into(),
                )));
            }
            // Our own export wrote the changed patients down (and counted its unreadable lines in
            // the marker); another's directory is scanned for them here.
            let (patients, unreadable): (Vec<PatientId>, Option<u64>) = match patients {
                Some(p) => (p, None),
                None => {
                    let found =
                        scan::scan(&directory.files, None).map_err(|source| JobError::Input {
                            path: directory.dir.display().to_string(),
                            source,
                        })?;
                    (found.patients.into_iter().collect(), Some(found.unreadable))
                }
            };
            let mut incremental = report::Incremental::new(
                marker,
                patients.iter().filter(|p| job.shard.contains(p)).count() as u64,
            );
            if let Some(lines) = unreadable {
                incremental.unreadable_lines = lines;
                if lines > 0 {
                    tracing::warn!(
                        lines,
                        "the changes hold lines that cannot be read; a changed patient among them is screened at the next full run"
                    );
                }
            }
            incremental.since = since;
            incremental.full_read = "per-patient".into();
            ran.incremental = Some(incremental);
            cohort::screen_ids(
                screener, settings, job, request, patients, &done, shared, rt,
            );
        }
    }
    Ok(ran)
}

/// Opens an NDJSON directory; with a gate, only a finished export (manifest present) whose
/// `transactionTime` is recent enough, waiting for it as long as the gate allows.
fn open_directory(
    dir: &Path,
    gate: Option<ExportGate>,
    codes: &std::collections::BTreeSet<String>,
    shared: &Shared,
) -> Result<local::LocalExport, JobError> {
    let Some(gate) = gate else {
        return Ok(local::open(dir, codes)?);
    };
    // `--export-wait-secs` is at most ten years (`settings::values::LONGEST`): the clock holds that.
    let deadline = Instant::now() + gate.wait;
    let mut told = false;
    loop {
        let why = match local::open(dir, codes) {
            Ok(export) => match export.transaction_time.as_deref() {
                Some(time) => match fresh_enough(time, now_secs(), gate.max_age) {
                    Ok(()) => return Ok(export),
                    Err(why) => why,
                },
                None => "it has no manifest.json (the export step has not finished)".to_owned(),
            },
            Err(
                e @ (local::LocalError::NotWhole { .. } | local::LocalError::BadManifest { .. }),
            ) => {
                return Err(e.into());
            }
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline || shared.stopping() {
            return Err(JobError::ExportNotReady {
                dir: dir.display().to_string(),
                why,
            });
        }
        if !told {
            told = true;
            tracing::info!(reason = %why, "waiting for a finished export");
        }
        std::thread::sleep(
            Duration::from_secs(5).min(deadline.saturating_duration_since(Instant::now())),
        );
    }
}

/// How far in the future a transactionTime may be: clocks a little apart.
const CLOCK_SKEW_SECS: i64 = 300;

/// Whether an export of `transaction_time` is recent enough at `now` (seconds since the epoch);
/// why not, otherwise. A time well in the future is not taken as new: a clock is wrong, and the
/// export may be of any age.
fn fresh_enough(transaction_time: &str, now: i64, max_age: Duration) -> Result<(), String> {
    let Ok(then) = crate::date::DateTime::parse(transaction_time).map(|t| t.instant) else {
        return Err("its manifest's transactionTime is not an instant".to_owned());
    };
    let age = now.saturating_sub(then);
    if age < -CLOCK_SKEW_SECS {
        return Err(format!(
            "its manifest's transactionTime is {} s in the future: a clock is wrong",
            -age
        ));
    }
    let age = age.max(0) as u64;
    if age > max_age.as_secs() {
        return Err(format!(
            "its manifest's transactionTime is {age} s old, more than --export-max-age-secs {}",
            max_age.as_secs()
        ));
    }
    Ok(())
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Builds the report's counts from the journal and writes the per-patient CSV beside the report.
fn write_results(
    journal: &Path,
    report_path: Option<&Path>,
    report: &mut Report,
) -> Result<(), JobError> {
    let mut csv = match report_path {
        Some(path) => {
            let csv_path = path.with_extension("csv");
            let file =
                crate::output::create_private(&csv_path).map_err(|source| JobError::Output {
                    path: csv_path.display().to_string(),
                    source,
                })?;
            Some((csv_path, std::io::BufWriter::new(file)))
        }
        None => None,
    };
    if let Some((path, out)) = &mut csv {
        use std::io::Write;
        out.write_all(report::CSV_HEADER.as_bytes())
            .map_err(|source| JobError::Output {
                path: path.display().to_string(),
                source,
            })?;
    }
    journal::for_each_final_entry(journal, |entry| {
        report.add(entry);
        match &mut csv {
            Some((_, out)) => report::write_csv_row(out, entry),
            None => Ok(()),
        }
    })
    .map_err(|source| JobError::Output {
        path: journal.display().to_string(),
        source,
    })?;
    if let Some((path, mut out)) = csv {
        use std::io::Write;
        out.flush().map_err(|source| JobError::Output {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(())
}

/// One patient's line in the journal (and the CSV): counts and codes, no free text.
pub fn summarise(
    a: &Assessment,
    write_back: Option<&Result<Outcome, Error>>,
    elapsed: Duration,
) -> PatientSummary {
    let mut outcomes = [0u32; 4];
    let counted: Vec<_> = a.trials.iter().filter(|t| t.counted).collect();
    for t in &counted {
        let slot = match t.outcome {
            TrialOutcome::Failed => 0,
            TrialOutcome::Responded => 1,
            TrialOutcome::Ongoing => 2,
            TrialOutcome::Unknown => 3,
        };
        outcomes[slot] += 1;
    }
    let mut hints: Vec<String> = a.hints.iter().map(|h| h.code.clone()).collect();
    hints.sort();
    hints.dedup();
    let (write_back, error) = match write_back {
        None => (None, None),
        Some(Ok(o)) => (
            Some(if o.changed { "changed" } else { "unchanged" }.to_owned()),
            None,
        ),
        Some(Err(e)) => (Some("failed".to_owned()), Some(error_kind(e).to_owned())),
    };
    PatientSummary {
        patient: a.patient_id.to_string(),
        status: Some(status_name(a.status).to_owned()),
        failed_adequate_trials: a.failed_adequate_trials,
        trials: a.trials.len() as u32,
        counted_trials: counted.len() as u32,
        outcomes,
        thase_rush_stage: Some(a.staging.thase_rush_stage),
        maudsley_score: a.staging.maudsley_score,
        hints,
        diagnostics: a.diagnostics.len() as u32,
        write_back,
        error,
        micros: elapsed.as_micros() as u64,
    }
}

/// A patient who could not be screened at all.
pub(crate) fn failed(patient: &str, e: &Error, elapsed: Duration) -> PatientSummary {
    PatientSummary {
        patient: patient.to_owned(),
        error: Some(error_kind(e).to_owned()),
        micros: elapsed.as_micros() as u64,
        ..PatientSummary::default()
    }
}

/// The error's kind as the report and the journal name it: the name of its gRPC status, as the
/// service names errors everywhere (a test in `grpc::status` holds the two together).
pub fn error_kind(e: &Error) -> &'static str {
    error_kind_name(e.kind())
}

pub fn error_kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidArgument => "INVALID_ARGUMENT",
        ErrorKind::NotFound => "NOT_FOUND",
        ErrorKind::Unavailable | ErrorKind::BadGateway => "UNAVAILABLE",
        ErrorKind::Timeout => "DEADLINE_EXCEEDED",
        ErrorKind::PermissionDenied => "PERMISSION_DENIED",
        ErrorKind::Unauthenticated => "UNAUTHENTICATED",
        ErrorKind::ResourceExhausted => "RESOURCE_EXHAUSTED",
        ErrorKind::Conflict => "ABORTED",
        ErrorKind::NotConfigured => "FAILED_PRECONDITION",
    }
}

pub fn status_name(status: TrdStatus) -> &'static str {
    match status {
        TrdStatus::Met => "MET",
        TrdStatus::Possible => "POSSIBLE",
        TrdStatus::NotMet => "NOT_MET",
        TrdStatus::NotApplicable => "NOT_APPLICABLE",
    }
}

fn scope_name(scope: Option<Scope>) -> &'static str {
    match scope {
        None => "none",
        Some(Scope::Flag) => "flag",
        Some(Scope::FlagAndCarePlan) => "flag-and-careplan",
    }
}

async fn stop_on_signal(shared: Arc<Shared>) {
    crate::signal::termination().await;
    tracing::warn!("stopping: finishing the patients in progress, then saving the checkpoint");
    shared.stop.store(true, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_is_fresh_within_its_age_and_never_when_it_claims_a_time_well_ahead() {
        // 2026-11-20T01:00:00Z
        let then = 1795136400;
        let time = "2026-11-20T01:00:00Z";
        let hour = Duration::from_secs(3600);
        assert_eq!(fresh_enough(time, then + 60, hour), Ok(()));
        assert_eq!(
            fresh_enough(time, then - 60, hour),
            Ok(()),
            "clocks a minute apart"
        );
        let old = fresh_enough(time, then + 7200, hour).unwrap_err();
        assert!(old.contains("7200 s old"), "{old}");
        let ahead = fresh_enough(time, then - 86_400, hour).unwrap_err();
        assert!(ahead.contains("in the future"), "{ahead}");
        assert!(fresh_enough("yesterday", then, hour).is_err());
    }
}
