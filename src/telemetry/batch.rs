//! Recording for the nightly population job: patients handled and in flight, runs finished and
//! when the last one ended (what "the nightly job failed or has not run" alerts read).
//!
//! The job calls, per patient: `in_flight(1)` when it starts screening one, then
//! `patient_done(outcome)` and `in_flight(-1)`; and at the end of a run (or of its shard)
//! `run_finished(outcome)`. [`patient_span`] gives the span a patient's FHIR calls nest under.

use super::{Instruments, instruments};
use opentelemetry::KeyValue;

/// What became of one patient of the population.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatientOutcome {
    /// Screened (and written back as configured).
    Screened,
    /// Reading, screening or writing back failed.
    Failed,
    /// Not screened: skipped by the job's own rules (e.g. unchanged since the last run).
    Skipped,
}

impl PatientOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            PatientOutcome::Screened => "screened",
            PatientOutcome::Failed => "failed",
            PatientOutcome::Skipped => "skipped",
        }
    }
}

/// How a run (or one shard of it) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every patient screened or skipped.
    Success,
    /// The run finished but some patients failed.
    Partial,
    /// The run could not finish (no population, FHIR server gone, ...).
    Failure,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Success => "success",
            RunOutcome::Partial => "partial",
            RunOutcome::Failure => "failure",
        }
    }
}

/// `trdscreen.batch.patients` by outcome.
pub fn patient_done(outcome: PatientOutcome) {
    if let Some(i) = instruments() {
        i.batch_patient_done(outcome);
    }
}

/// `trdscreen.batch.in_flight` += delta (+1 when a patient starts, -1 when it is done).
pub fn in_flight(delta: i64) {
    if let Some(i) = instruments() {
        i.batch_in_flight.add(delta, &[]);
    }
}

/// `trdscreen.batch.runs` by outcome, and `trdscreen.batch.last_run_end` = now (Unix seconds).
pub fn run_finished(outcome: RunOutcome) {
    if let Some(i) = instruments() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        i.batch_run_finished(outcome, now);
    }
}

/// The span one patient's screening (and its FHIR calls) runs in; it carries no patient id.
pub fn patient_span() -> tracing::Span {
    tracing::info_span!("batch.patient", otel.name = "trdscreen batch patient")
}

impl Instruments {
    pub fn batch_patient_done(&self, outcome: PatientOutcome) {
        self.batch_patients
            .add(1, &[KeyValue::new("outcome", outcome.as_str())]);
    }

    pub fn batch_run_finished(&self, outcome: RunOutcome, ended_unix_secs: f64) {
        self.batch_runs
            .add(1, &[KeyValue::new("outcome", outcome.as_str())]);
        let labels: [KeyValue; 1] = [KeyValue::new("outcome", outcome.as_str())];
        self.batch_last_run_end.record(ended_unix_secs, &labels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::testing::Exposition;

    #[test]
    fn the_nightly_job_s_progress_and_runs_reach_the_exposition_under_their_prometheus_names() {
        let e = Exposition::new();
        let i = &e.instruments;
        for _ in 0..3 {
            i.batch_in_flight.add(1, &[]);
        }
        i.batch_patient_done(PatientOutcome::Screened);
        i.batch_in_flight.add(-1, &[]);
        i.batch_patient_done(PatientOutcome::Screened);
        i.batch_in_flight.add(-1, &[]);
        i.batch_patient_done(PatientOutcome::Failed);
        i.batch_run_finished(RunOutcome::Partial, 1_767_225_600.0);
        let text = e.text();
        for line in [
            "trdscreen_batch_patients_total{outcome=\"screened\"} 2",
            "trdscreen_batch_patients_total{outcome=\"failed\"} 1",
            "trdscreen_batch_in_flight 1",
            "trdscreen_batch_runs_total{outcome=\"partial\"} 1",
            "trdscreen_batch_last_run_end{outcome=\"partial\"} 1767225600",
            "# TYPE trdscreen_batch_in_flight gauge",
            "# TYPE trdscreen_batch_runs_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }
}
