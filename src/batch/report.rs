//! The job's summary for operators (JSON) and its per-patient results for analysts (CSV), both
//! built from the journal so that a resumed job reports everyone exactly once.

use super::journal::PatientSummary;
use super::partition::InputStats;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Write};

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub job: super::journal::JobKey,
    pub patients: PatientCounts,
    /// Screened patients by TRD status.
    pub status: BTreeMap<String, u64>,
    /// Patients with each hint code.
    pub hints: BTreeMap<String, u64>,
    pub trials: TrialCounts,
    /// Write-backs by outcome (changed, unchanged, failed).
    pub write_back: BTreeMap<String, u64>,
    /// Patients who could not be screened or written, by error kind.
    pub errors: BTreeMap<String, u64>,
    /// What the NDJSON reader saw (absent for per-patient sources).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<InputStats>,
    /// The export read (for `--ndjson` and `--bulk`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportInfo>,
    /// An incremental run: the changed patients found and how they were read whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incremental: Option<Incremental>,
    pub durations: Durations,
}

#[derive(Debug, Default, Serialize)]
pub struct PatientCounts {
    /// Patients in the journal (this run and any run it resumed).
    pub total: u64,
    pub screened: u64,
    pub failed: u64,
    /// Finished by an earlier run of this job and skipped by this one.
    pub resumed_from_checkpoint: u64,
    /// Patient ids that had resources but no Patient resource in the input (not screened).
    pub not_in_population: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct TrialCounts {
    pub total: u64,
    pub counted: u64,
    pub failed_adequate: u64,
    pub by_outcome: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Serialize)]
pub struct Durations {
    pub reading_secs: f64,
    pub screening_secs: f64,
    pub total_secs: f64,
    /// Per-patient time (screening and write-back) of this run's patients, in milliseconds.
    pub patient_p50_ms: f64,
    pub patient_p99_ms: f64,
}

/// The export a job read, as its directory says.
#[derive(Debug, Default, Serialize)]
pub struct ExportInfo {
    /// The export's `transactionTime` (absent without a manifest): the `_since` of the next
    /// incremental run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_time: Option<String>,
    /// `whole`, `patients` or `changes`; `whole (no manifest)` for a directory without one.
    pub scope: String,
    /// `not-asked`, `applied`, `refused` or `ignored`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub type_filter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub medications_read: Option<u64>,
}

impl ExportInfo {
    pub fn of(
        dir: &crate::fhir::bulk::local::LocalExport,
        exported: Option<&super::export::ExportSummary>,
    ) -> ExportInfo {
        let marker = dir.marker.as_ref();
        let scope = match (marker, &dir.scope) {
            (Some(m), _) => serde_json::to_value(m.scope)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            (None, crate::fhir::bulk::local::Scope::Changes { .. }) => "changes".into(),
            (None, _) if dir.transaction_time.is_some() => "whole".into(),
            (None, _) => "whole (no manifest)".into(),
        };
        ExportInfo {
            transaction_time: dir.transaction_time.clone(),
            scope,
            type_filter: marker
                .map(|m| m.type_filter_outcome.clone())
                .or_else(|| exported.map(|e| e.type_filter.clone())),
            medications_read: marker.map(|m| m.medications_read),
        }
    }
}

/// An incremental run (`_since`): how many patients of this shard changed, and how many were
/// screened on their whole record.
#[derive(Debug, Default, Serialize)]
pub struct Incremental {
    pub since: String,
    pub changed_patients: u64,
    pub screened_in_full: u64,
    /// `patient-export` (a patient-scoped export) or `per-patient` (ScreenPatient's read).
    pub full_read: String,
    /// Deleted resources the export listed that name no patient: their patients are screened at
    /// the next full run.
    pub deleted_unattributed: u64,
    /// Lines of the changes that could not be read: a changed patient among them is not found,
    /// and is screened at the next full run.
    pub unreadable_lines: u64,
    /// Patients a patient-scoped export held although they were not asked for (a server that
    /// ignored the `patient` parameter): not screened, their records are not vouched whole.
    pub not_asked_for: u64,
}

impl Incremental {
    pub fn new(
        marker: Option<&crate::fhir::bulk::local::Marker>,
        changed_patients: u64,
    ) -> Incremental {
        Incremental {
            since: marker.and_then(|m| m.since.clone()).unwrap_or_default(),
            changed_patients,
            screened_in_full: 0,
            full_read: marker
                .and_then(|m| m.full_read.clone())
                .unwrap_or_else(|| "per-patient".into()),
            deleted_unattributed: marker.map_or(0, |m| m.deleted_unattributed),
            unreadable_lines: marker.map_or(0, |m| m.unreadable_lines),
            not_asked_for: 0,
        }
    }
}

const OUTCOMES: [&str; 4] = ["failed", "responded", "ongoing", "unknown"];

impl Report {
    pub fn add(&mut self, s: &PatientSummary) {
        self.patients.total += 1;
        match &s.status {
            Some(status) => {
                self.patients.screened += 1;
                *self.status.entry(status.clone()).or_default() += 1;
            }
            None => self.patients.failed += 1,
        }
        if let Some(error) = &s.error {
            *self.errors.entry(error.clone()).or_default() += 1;
        }
        if let Some(wb) = &s.write_back {
            *self.write_back.entry(wb.clone()).or_default() += 1;
            if wb == "failed" && s.status.is_some() {
                self.patients.failed += 1;
            }
        }
        for hint in &s.hints {
            *self.hints.entry(hint.clone()).or_default() += 1;
        }
        self.trials.total += u64::from(s.trials);
        self.trials.counted += u64::from(s.counted_trials);
        self.trials.failed_adequate += u64::from(s.failed_adequate_trials);
        for (name, n) in OUTCOMES.iter().zip(s.outcomes) {
            if n > 0 {
                *self
                    .trials
                    .by_outcome
                    .entry((*name).to_owned())
                    .or_default() += u64::from(n);
            }
        }
    }

    /// Whether any patient ended failed (screening or write-back).
    pub fn any_failed(&self) -> bool {
        self.patients.failed > 0
    }

    /// Whether write-back was asked and failed for every patient it was tried for: the FHIR
    /// server (or its credentials) was down, which a retry of the job may find back.
    pub fn every_write_back_failed(&self) -> bool {
        let failed = self.write_back.get("failed").copied().unwrap_or(0);
        failed > 0 && self.write_back.values().sum::<u64>() == failed
    }
}

/// Nearest-rank percentile of unsorted samples (microseconds) in milliseconds.
pub fn percentile_ms(samples: &mut [u64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil().max(1.0) as usize;
    samples[rank.min(samples.len()) - 1] as f64 / 1000.0
}

pub const CSV_HEADER: &str = "patient_id,status,failed_adequate_trials,trials,counted_trials,thase_rush_stage,maudsley_score,hints,write_back,error\n";

/// One CSV row. Every field is an id, a code, a number or a fixed word: nothing needs quoting
/// except the hint list, which is joined with `;`.
pub fn write_csv_row(out: &mut impl Write, s: &PatientSummary) -> io::Result<()> {
    let opt = |v: Option<u32>| v.map(|n| n.to_string()).unwrap_or_default();
    writeln!(
        out,
        "{},{},{},{},{},{},{},{},{},{}",
        s.patient,
        s.status.as_deref().unwrap_or(""),
        s.failed_adequate_trials,
        s.trials,
        s.counted_trials,
        opt(s.thase_rush_stage),
        opt(s.maudsley_score),
        s.hints.join(";"),
        s.write_back.as_deref().unwrap_or(""),
        s.error.as_deref().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_back_counts_the_patient_as_failed_but_screened() {
        let mut r = Report::default();
        r.add(&PatientSummary {
            patient: "p1".into(),
            status: Some("MET".into()),
            trials: 2,
            counted_trials: 2,
            failed_adequate_trials: 2,
            outcomes: [2, 0, 0, 0],
            hints: vec!["SUICIDE_RISK".into()],
            write_back: Some("failed".into()),
            error: Some("PERMISSION_DENIED".into()),
            ..PatientSummary::default()
        });
        r.add(&PatientSummary {
            patient: "p2".into(),
            error: Some("UNAVAILABLE".into()),
            ..PatientSummary::default()
        });
        assert_eq!((r.patients.screened, r.patients.failed), (1, 2));
        assert_eq!(r.status["MET"], 1);
        assert_eq!(r.errors["UNAVAILABLE"], 1);
        assert_eq!(r.trials.by_outcome["failed"], 2);
        assert!(r.any_failed());
    }

    #[test]
    fn write_back_failed_for_everyone_only_when_none_of_it_went_through() {
        let written = |outcome: &str| PatientSummary {
            patient: "p".into(),
            status: Some("MET".into()),
            write_back: Some(outcome.into()),
            ..PatientSummary::default()
        };
        let mut r = Report::default();
        assert!(!r.every_write_back_failed(), "nothing asked");
        r.add(&written("failed"));
        r.add(&written("failed"));
        assert!(r.every_write_back_failed());
        r.add(&written("unchanged"));
        assert!(!r.every_write_back_failed());
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut samples: Vec<u64> = (1..=100).map(|n| n * 1000).collect();
        assert_eq!(percentile_ms(&mut samples, 50.0), 50.0);
        assert_eq!(percentile_ms(&mut samples, 99.0), 99.0);
        assert_eq!(percentile_ms(&mut [], 99.0), 0.0);
    }

    #[test]
    fn csv_rows_keep_their_columns() {
        let mut out = Vec::new();
        write_csv_row(
            &mut out,
            &PatientSummary {
                patient: "p1".into(),
                status: Some("POSSIBLE".into()),
                hints: vec!["A".into(), "B".into()],
                thase_rush_stage: Some(2),
                ..PatientSummary::default()
            },
        )
        .unwrap();
        let row = String::from_utf8(out).unwrap();
        assert_eq!(row, "p1,POSSIBLE,0,0,0,2,,A;B,,\n");
        assert_eq!(
            row.split(',').count(),
            CSV_HEADER.split(',').count(),
            "same column count as the header"
        );
    }
}
