//! A patient's record read whole: the only kind of record the chart may be changed from.
//!
//! Write-back raises, updates and withdraws (Flag `inactive`, CarePlan `revoked`) a screening in
//! the patient's chart. A record that holds only part of the patient's data (an incremental
//! `_since` export holds only what changed) can turn a true MET into NOT_APPLICABLE, and a
//! write-back from it would withdraw a true alert. So write-back takes a [`WholeRecord`], and the
//! only ways to make one are reads known to be whole:
//!
//! - ScreenPatient's read (`fetch::patient_record`): the Patient and every search screening needs,
//!   each followed to its end (or the read fails);
//! - a patient's lines from an export vouched whole for that patient ([`WholeExport`]): a full
//!   export of every type screening reads, or a patient-scoped export naming the patient.
//!
//! Both constructors are visible only inside `crate::fhir`, where those reads are; nothing else in
//! the crate (the nightly job, a transport) can call a partial record whole. A record outside the
//! export's patients is refused by [`WholeExport::vouch`] itself.
//!
//! Anyone may gather a record, from anything, and name the type:
//!
//! ```
//! use trdscreen::fhir::whole::WholeRecord;
//! use trdscreen::fhir::{PatientId, PatientRecord};
//! let partial = PatientRecord::new(PatientId::parse("p1").unwrap(), None);
//! let none: Option<WholeRecord> = None;
//! # let _ = (partial, none);
//! ```
//!
//! but not call a record whole: the same lines with the one call added do not compile (stable
//! rustdoc does not check the error code, so the two blocks differ in that call alone).
//!
//! ```compile_fail,E0624
//! use trdscreen::fhir::whole::WholeRecord;
//! use trdscreen::fhir::{PatientId, PatientRecord};
//! let partial = PatientRecord::new(PatientId::parse("p1").unwrap(), None);
//! let none: Option<WholeRecord> = None;
//! # let _ = none;
//! let whole = WholeRecord::read_whole(partial); // private to crate::fhir
//! ```

use super::{PatientId, PatientRecord};
use std::collections::HashSet;

/// A record read whole (see the module): what write-back demands.
#[derive(Debug)]
pub struct WholeRecord(PatientRecord);

impl WholeRecord {
    /// ScreenPatient's read, which gathers every resource screening reads.
    pub(in crate::fhir) fn read_whole(record: PatientRecord) -> WholeRecord {
        WholeRecord(record)
    }

    pub fn record(&self) -> &PatientRecord {
        &self.0
    }

    pub fn patient_id(&self) -> &PatientId {
        &self.0.patient_id
    }
}

/// Proof that an export holds whole records: of every patient in it, or of the patients it was
/// asked for. Made only where an export's scope is read (`fhir::bulk::local`).
#[derive(Debug)]
pub struct WholeExport {
    /// `None`: every patient in the export; otherwise only these.
    patients: Option<HashSet<PatientId>>,
}

impl WholeExport {
    pub(in crate::fhir) fn of_everyone() -> WholeExport {
        WholeExport { patients: None }
    }

    pub(in crate::fhir) fn of_patients(patients: HashSet<PatientId>) -> WholeExport {
        WholeExport {
            patients: Some(patients),
        }
    }

    /// Whether the export holds this patient's record whole.
    pub fn covers(&self, patient: &PatientId) -> bool {
        self.patients.as_ref().is_none_or(|p| p.contains(patient))
    }

    /// The patient's record from this export's lines, vouched whole when the export covers them;
    /// `None` otherwise.
    pub fn vouch(&self, record: PatientRecord) -> Option<WholeRecord> {
        self.covers(&record.patient_id)
            .then_some(WholeRecord(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> PatientRecord {
        PatientRecord::new(PatientId::parse(id).unwrap(), None)
    }

    #[test]
    fn a_patient_scoped_export_vouches_only_for_its_patients() {
        let asked: HashSet<PatientId> = [PatientId::parse("p1").unwrap()].into();
        let export = WholeExport::of_patients(asked);
        assert!(export.vouch(record("p1")).is_some());
        assert!(
            export.vouch(record("p2")).is_none(),
            "a patient the export was not asked for is not whole"
        );
        assert!(WholeExport::of_everyone().vouch(record("p2")).is_some());
    }
}
