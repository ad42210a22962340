//! The job's journal: one line per patient, appended as each is finished (screened, and written
//! back when asked). It is the checkpoint (a resumed job skips everyone already in it) and the
//! source of the report, so a job killed half way and resumed reports every patient once.
//!
//! A patient is appended only after its write-back returned, so a kill can at worst lose the line
//! of a patient whose Flag was just written: the resumed job screens that patient again, and the
//! idempotent write-back finds the chart up to date (no duplicate).

use crate::fhir::PatientId;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// What identifies a job: a checkpoint of another job is refused rather than mixed in, and one of
/// the same job as of another day (last night's) is started over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobKey {
    pub source: String,
    pub as_of: String,
    pub shard: String,
    pub write_back: String,
    /// The ruleset screened by: results of two rulesets are not mixed in one report. (A
    /// checkpoint written before it was kept reads as of no ruleset.)
    #[serde(default)]
    pub ruleset: String,
}

impl JobKey {
    /// The same source, shard and write-back, screened as of another day or by another ruleset
    /// (an upgrade between two nights, or in the middle of one): started over, never mixed.
    fn another_run_of(&self, other: &JobKey) -> bool {
        self.source == other.source
            && self.shard == other.shard
            && self.write_back == other.write_back
            && (self.as_of != other.as_of || self.ruleset != other.ruleset)
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    trdscreen_checkpoint: u32,
    job: JobKey,
}

/// One patient's result, as kept for the report and the analysts' CSV: no free text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PatientSummary {
    pub patient: String,
    /// `MET`, `POSSIBLE`, `NOT_MET`, `NOT_APPLICABLE`; unset when the patient could not be screened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default)]
    pub failed_adequate_trials: u32,
    #[serde(default)]
    pub trials: u32,
    #[serde(default)]
    pub counted_trials: u32,
    /// Counted trials by outcome: failed, responded, ongoing, unknown.
    #[serde(default)]
    pub outcomes: [u32; 4],
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thase_rush_stage: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maudsley_score: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
    #[serde(default)]
    pub diagnostics: u32,
    /// `changed`, `unchanged` or `failed`; unset when nothing was to be written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_back: Option<String>,
    /// The error kind (a gRPC status name such as `UNAVAILABLE`) when screening or writing failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Time spent on this patient, in microseconds.
    #[serde(default)]
    pub micros: u64,
}

impl PatientSummary {
    /// Finished for good: screened, and written when asked. Anything else is tried again on resume.
    pub fn is_complete(&self) -> bool {
        self.error.is_none() && self.write_back.as_deref() != Some("failed")
    }
}

pub struct Journal {
    path: PathBuf,
    out: BufWriter<File>,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot use the checkpoint {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error(
        "the checkpoint {path} belongs to another job ({theirs}); use another file or delete it to start over"
    )]
    OtherJob { path: String, theirs: String },
    #[error("the checkpoint {path} is not a trdscreen checkpoint")]
    NotACheckpoint { path: String },
    #[error(
        "the checkpoint {path} holds a line that is no patient's result; it is left as it is: repair it, or delete it to start over"
    )]
    Damaged { path: String },
    #[error("the checkpoint {path} is also the report or its CSV: give them different paths")]
    SameAsReport { path: String },
}

impl Journal {
    /// Opens the journal for `job`, creating it or resuming it. Returns the patients already
    /// finished. A last line cut off by a kill is dropped.
    pub fn open(path: &Path, job: &JobKey) -> Result<(Journal, HashSet<PatientId>), JournalError> {
        let shown = path.display().to_string();
        let io_err = |source| JournalError::Io {
            path: shown.clone(),
            source,
        };
        let mut done = HashSet::new();
        let mut valid_len = 0u64;
        let exists = path.exists();
        // A FIFO would hang the open, and a device never ends: only a file is a checkpoint.
        if exists && !path.is_file() {
            return Err(JournalError::NotACheckpoint { path: shown });
        }
        if exists {
            // Checked again on the opened file: the path may have been replaced since.
            let file = crate::files::open_regular(path).map_err(io_err)?;
            let mut reader = BufReader::new(file);
            let mut line = String::new();
            let mut first = true;
            loop {
                line.clear();
                let n = (&mut reader)
                    .take(MAX_LINE)
                    .read_line(&mut line)
                    .map_err(io_err)?;
                if n == 0 || !line.ends_with('\n') {
                    // A last line without its newline is an append cut by a crash, and is cut
                    // off; but a first line that is not the start of our header means the file
                    // is someone else's, and it is refused, not emptied.
                    if first && n > 0 && !is_torn_header(&line) {
                        return Err(JournalError::NotACheckpoint {
                            path: shown.clone(),
                        });
                    }
                    break;
                }
                if first {
                    first = false;
                    let header: Header =
                        serde_json::from_str(&line).map_err(|_| JournalError::NotACheckpoint {
                            path: shown.clone(),
                        })?;
                    if header.job != *job {
                        if !header.job.another_run_of(job) {
                            return Err(JournalError::OtherJob {
                                path: shown.clone(),
                                theirs: describe(&header.job),
                            });
                        }
                        // The same job on an earlier night (a CronJob's checkpoint kept on a
                        // volume): its results were that night's, and tonight starts over.
                        tracing::info!(
                            "the checkpoint holds this job as of another day; starting it over"
                        );
                        break;
                    }
                } else if let Ok(entry) = serde_json::from_str::<PatientSummary>(&line) {
                    if let Ok(id) = PatientId::parse(&entry.patient) {
                        if entry.is_complete() {
                            done.insert(id);
                        } else {
                            done.remove(&id);
                        }
                    }
                } else {
                    // A whole line that is no patient's result: not a torn append (that has no
                    // newline) but damage, and cutting the file there would drop every result
                    // after it without a word.
                    return Err(JournalError::Damaged {
                        path: shown.clone(),
                    });
                }
                valid_len += n as u64;
            }
        }
        // Owner-only: patient ids and their results.
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(super::scratch::FILE_MODE)
            .open(path)
            .map_err(io_err)?;
        file.set_len(valid_len).map_err(io_err)?;
        let mut out = BufWriter::new(file);
        use std::io::Seek;
        out.seek(io::SeekFrom::End(0)).map_err(io_err)?;
        if valid_len == 0 {
            let header = Header {
                trdscreen_checkpoint: 1,
                job: job.clone(),
            };
            let text = serde_json::to_string(&header).unwrap_or_default();
            writeln!(out, "{text}").map_err(io_err)?;
            out.flush().map_err(io_err)?;
        }
        Ok((
            Journal {
                path: path.to_owned(),
                out,
            },
            done,
        ))
    }

    /// Appends one patient and hands the line to the operating system at once, so a killed process
    /// loses nothing it reported finished.
    pub fn append(&mut self, summary: &PatientSummary) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, summary).map_err(io::Error::from)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn finish(mut self) -> io::Result<PathBuf> {
        self.out.flush()?;
        self.out.get_ref().sync_all()?;
        Ok(self.path)
    }
}

/// The longest journal line read (a header or a patient's summary is a few hundred bytes): a file
/// with no line break, `/dev/zero` say, is not read whole.
const MAX_LINE: u64 = 1 << 20;

/// The start of a header this module wrote, cut by a crash before its newline.
fn is_torn_header(line: &str) -> bool {
    const START: &str = "{\"trdscreen_checkpoint\"";
    line.starts_with(START) || START.starts_with(line)
}

/// The job a checkpoint holds, for the operator's error: a patient search is named as one, not
/// by its query, which may name a patient (`identifier=MRN...`).
fn describe(job: &JobKey) -> String {
    let source = if job.source.starts_with("search:") {
        "a patient search"
    } else {
        job.source.as_str()
    };
    format!(
        "source {}, as of {}, shard {}, write-back {}",
        source, job.as_of, job.shard, job.write_back
    )
}

/// Calls `each` with every patient's final entry (the last one written for that patient), in
/// journal order. Two reads of the journal, holding only each patient's last line number in between,
/// so a million patients cost tens of megabytes, not their summaries.
pub fn for_each_final_entry(
    path: &Path,
    mut each: impl FnMut(&PatientSummary) -> io::Result<()>,
) -> io::Result<()> {
    let mut last: std::collections::HashMap<Box<str>, u32> = std::collections::HashMap::new();
    for (n, line) in entries(path)? {
        if let Some(id) = patient_of(&line) {
            last.insert(id.into(), n);
        }
    }
    for (n, line) in entries(path)? {
        let Some(id) = patient_of(&line) else {
            continue;
        };
        if last.get(id) == Some(&n)
            && let Ok(entry) = serde_json::from_str::<PatientSummary>(&line)
        {
            each(&entry)?;
        }
    }
    Ok(())
}

/// The journal's patient lines with their numbers, up to the first line that is not one.
fn entries(path: &Path) -> io::Result<impl Iterator<Item = (u32, String)>> {
    let reader = BufReader::new(crate::files::open_regular(path)?);
    Ok(reader
        .lines()
        .skip(1)
        .map_while(Result::ok)
        .take_while(|line| line.starts_with("{\"patient\":"))
        .enumerate()
        .map(|(n, line)| (n as u32, line)))
}

/// The patient id at the start of a journal line (`{"patient":"ID",...`; ids need no escaping).
fn patient_of(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("{\"patient\":\"")?;
    rest.split_once('"').map(|(id, _)| id)
}

/// Every patient's final entry, in journal order (for tests and small journals).
pub fn final_entries(path: &Path) -> io::Result<Vec<PatientSummary>> {
    let mut all = Vec::new();
    for_each_final_entry(path, |e| {
        all.push(e.clone());
        Ok(())
    })?;
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> JobKey {
        JobKey {
            source: "ndjson".into(),
            as_of: "2026-11-01".into(),
            shard: "0/1".into(),
            write_back: "none".into(),
            ruleset: "2026.12".into(),
        }
    }

    fn screened(id: &str) -> PatientSummary {
        PatientSummary {
            patient: id.into(),
            status: Some("MET".into()),
            ..PatientSummary::default()
        }
    }

    #[test]
    fn a_resumed_journal_knows_who_is_done_and_drops_a_torn_last_line() {
        let dir = tempdir();
        let path = dir.join("checkpoint");
        let (mut j, done) = Journal::open(&path, &job()).unwrap();
        assert!(done.is_empty());
        j.append(&screened("p1")).unwrap();
        j.append(&PatientSummary {
            error: Some("UNAVAILABLE".into()),
            ..screened("p2")
        })
        .unwrap();
        drop(j);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"patient\":\"p3\",\"sta");
        std::fs::write(&path, text).unwrap();

        let (mut j, done) = Journal::open(&path, &job()).unwrap();
        let ids: Vec<&str> = done.iter().map(PatientId::as_str).collect();
        assert_eq!(ids, ["p1"], "p2 failed and is tried again; p3 was torn");
        j.append(&screened("p2")).unwrap();
        j.finish().unwrap();
        let entries = final_entries(&path).unwrap();
        let statuses: Vec<(&str, bool)> = entries
            .iter()
            .map(|e| (e.patient.as_str(), e.is_complete()))
            .collect();
        assert_eq!(statuses, [("p1", true), ("p2", true)]);
    }

    #[test]
    fn a_checkpoint_of_another_job_is_refused_and_one_of_another_night_started_over() {
        let dir = tempdir();
        let path = dir.join("checkpoint");
        let (mut j, _) = Journal::open(&path, &job()).unwrap();
        j.append(&screened("p1")).unwrap();
        j.finish().unwrap();
        let next_night = JobKey {
            as_of: "2026-11-02".into(),
            ..job()
        };
        let (mut j, done) = Journal::open(&path, &next_night).unwrap();
        assert!(done.is_empty(), "last night's results are not tonight's");
        j.append(&screened("p1")).unwrap();
        j.finish().unwrap();
        // An upgrade of the rules in the middle of the night: started over too, not mixed.
        let upgraded = JobKey {
            ruleset: "2027.01".into(),
            ..next_night.clone()
        };
        let (j, done) = Journal::open(&path, &upgraded).unwrap();
        drop(j);
        assert!(
            done.is_empty(),
            "results by another ruleset are not resumed"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
        let other = JobKey {
            source: "ndjson:/elsewhere".into(),
            ..next_night
        };
        let err = Journal::open(&path, &other).err().unwrap();
        assert!(err.to_string().contains("another job"), "{err}");
        std::fs::write(&path, "hello\n").unwrap();
        let err = Journal::open(&path, &job()).err().unwrap();
        assert!(err.to_string().contains("not a trdscreen checkpoint"));
    }

    #[test]
    fn a_damaged_line_inside_the_checkpoint_is_refused_not_cut_off_with_what_follows() {
        let dir = tempdir();
        let path = dir.join("checkpoint");
        let (mut j, _) = Journal::open(&path, &job()).unwrap();
        j.append(&screened("p1")).unwrap();
        j.finish().unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{damaged\n");
        text.push_str(&serde_json::to_string(&screened("p2")).unwrap());
        text.push('\n');
        std::fs::write(&path, &text).unwrap();
        let err = Journal::open(&path, &job()).err().unwrap();
        assert!(matches!(err, JournalError::Damaged { .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            text,
            "left as it was"
        );
    }

    #[test]
    fn another_jobs_patient_search_is_named_without_its_query() {
        let dir = tempdir();
        let path = dir.join("checkpoint");
        let search = JobKey {
            source: "search:identifier=MRN-SECRET-123".into(),
            ..job()
        };
        drop(Journal::open(&path, &search).unwrap());
        let err = Journal::open(&path, &job()).err().unwrap().to_string();
        assert!(
            err.contains("a patient search") && !err.contains("MRN"),
            "{err}"
        );
    }

    #[test]
    fn a_file_that_is_not_a_checkpoint_is_refused_and_left_as_it_was() {
        let dir = tempdir();
        for (name, text) in [
            ("one-line", "{\"access_token\":\"kept\"}".to_owned()),
            ("no-break", "x".repeat(3 << 20)),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, &text).unwrap();
            let err = Journal::open(&path, &job()).err().unwrap();
            assert!(matches!(err, JournalError::NotACheckpoint { .. }), "{err}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "{name}");
        }
        // Neither is anything that is not a file: a FIFO (whose open would wait for a writer for
        // ever), a device, a directory.
        let fifo = dir.join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        for path in [fifo.as_path(), Path::new("/dev/zero"), dir.as_path()] {
            let err = Journal::open(path, &job()).err().unwrap();
            assert!(matches!(err, JournalError::NotACheckpoint { .. }), "{err}");
        }
        // Our own header, cut by a crash before its newline, is started again.
        let path = dir.join("torn");
        std::fs::write(&path, "{\"trdscreen_checkpoint\":1,\"jo").unwrap();
        drop(Journal::open(&path, &job()).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("{\"trdscreen_checkpoint\":1,\"job\"") && text.ends_with('\n'));
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "trdscreen-journal-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
