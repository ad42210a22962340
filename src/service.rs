//! The service's one path for screening, shared by every transport (gRPC, `trdscreen screen`, the
//! nightly job): read the record, evaluate it with the pure core, write the result back.

use crate::audit::{AuditTrail, WrittenResource};
use crate::date::Date;
use crate::error::{Error, Result};
use crate::fhir::client::FhirClient;
use crate::fhir::whole::WholeRecord;
use crate::fhir::{PatientId, PatientRecord, read_patient_bundle};
use crate::knowledge::Knowledge;
use crate::screening::{self, Assessment};
use crate::settings::{BulkSettings, DefaultWriteBack, Secrets, Settings, WriteBackSettings};
use crate::summary;
use crate::writeback::{self, Scope};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use tokio::sync::Mutex;

/// What a caller asks to have written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteBackRequest {
    /// The server's configured default.
    Default,
    None,
    Flag,
    FlagAndCarePlan,
}

/// The result of one screening. A write-back that failed does not take the assessment with it.
#[derive(Debug)]
pub struct Screened {
    pub assessment: Assessment,
    pub write_back: Option<std::result::Result<writeback::Outcome, Error>>,
}

pub struct Screener {
    knowledge: Arc<Knowledge>,
    fhir: Option<FhirClient>,
    writeback: WriteBackSettings,
    bulk: BulkSettings,
    /// The audit trail every transport records its accesses in.
    audit: AuditTrail,
    /// Signs and checks the clinician view's links (`cds.view_link_secret_file`, else generated).
    view_key: Arc<crate::view::link::LinkKey>,
    /// Write-backs of one patient run one at a time (striped by patient), so two concurrent
    /// screenings of the same patient cannot both create a Flag.
    write_locks: Vec<Mutex<()>>,
}

const WRITE_LOCK_STRIPES: usize = 64;

impl Screener {
    /// Loads the knowledge base and, when a FHIR base URL is configured, builds the FHIR client.
    pub fn new(settings: &Settings, secrets: &Secrets) -> Result<Screener> {
        let knowledge = match &settings.knowledge_dir {
            Some(dir) => crate::knowledge::load_with_overrides(dir)
                .map_err(|e| Error::NotConfigured(summary!("{}", e)))?,
            None => Knowledge::embedded(),
        };
        let fhir = match &settings.fhir.base_url {
            None => None,
            Some(_) => Some(FhirClient::new(&settings.fhir, secrets)?),
        };
        Ok(Screener {
            knowledge: Arc::new(knowledge),
            fhir,
            writeback: settings.writeback.clone(),
            bulk: settings.fhir.bulk.clone(),
            audit: AuditTrail::open(settings, secrets)?,
            view_key: Arc::new(
                crate::view::link::LinkKey::from_secrets(secrets).map_err(|_| {
                    Error::NotConfigured(
                        "the clinician view's link key cannot be made (cds.view_link_secret_file: 32 bytes or more)"
                            .into(),
                    )
                })?,
            ),
            write_locks: (0..WRITE_LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
        })
    }

    pub fn audit(&self) -> &AuditTrail {
        &self.audit
    }

    /// The key of the clinician view's links.
    pub fn view_key(&self) -> &Arc<crate::view::link::LinkKey> {
        &self.view_key
    }

    pub fn knowledge(&self) -> &Knowledge {
        &self.knowledge
    }

    /// Evaluates a Bundle the caller sent; no FHIR server is read or written.
    pub fn evaluate_bundle(&self, json: &str, as_of: Date) -> Result<Assessment> {
        let record =
            read_patient_bundle(json).map_err(|e| Error::InvalidArgument(summary!("{}", e)))?;
        self.evaluate_record(&record, as_of)
    }

    /// Reads one patient from the FHIR server, evaluates, and writes back as asked. What the
    /// write-back writes (or finds as wanted) is pushed on `written` as it goes, outside the
    /// future: a call cut off by its deadline half-way through still names, in the audit trail,
    /// the Flag it wrote.
    pub async fn screen_patient(
        &self,
        patient_id: &str,
        as_of: Date,
        write_back: WriteBackRequest,
        written: &mut Vec<WrittenResource>,
    ) -> Result<Screened> {
        let id = PatientId::parse(patient_id)
            .map_err(|e| Error::InvalidArgument(summary!("patient_id: {}", e)))?;
        let fhir = self.client()?;
        let record = crate::fhir::fetch::patient_record(fhir, &id, &self.knowledge).await?;
        let assessment = self.evaluate_record(record.record(), as_of)?;
        let write_back = self
            .write_back(&record, &assessment, write_back, written)
            .await;
        Ok(Screened {
            assessment,
            write_back,
        })
    }

    /// Reads one patient from the FHIR server and evaluates it, writing nothing: the clinician
    /// view's read (the record is kept for the PHQ-9 totals the view draws).
    pub async fn read_and_evaluate(
        &self,
        id: &PatientId,
        as_of: Date,
    ) -> Result<(WholeRecord, Assessment)> {
        let record =
            crate::fhir::fetch::patient_record(self.client()?, id, &self.knowledge).await?;
        let assessment = self.evaluate_record(record.record(), as_of)?;
        Ok((record, assessment))
    }

    /// Evaluates a record gathered by a caller (the nightly job's NDJSON reader); a record over
    /// the per-patient resource limit (`record.max_resources`) is `ResourceExhausted`.
    pub fn evaluate_record(&self, record: &PatientRecord, as_of: Date) -> Result<Assessment> {
        record
            .check_size(self.knowledge.policy.record.max_resources)
            .map_err(|e| Error::ResourceExhausted(summary!("{}", e)))?;
        let assessment = screening::evaluate(record, as_of, &self.knowledge);
        crate::telemetry::record_assessment(&assessment);
        Ok(assessment)
    }

    /// The configured FHIR server's base URL: the server records read by the nightly job come from.
    pub fn fhir_base(&self) -> Option<&str> {
        self.fhir.as_ref().map(FhirClient::base)
    }

    /// Writes the assessment back as asked (`None`: nothing was to be written). Only from a record
    /// read whole (see [`WholeRecord`]): a partial one could withdraw a true Flag.
    pub async fn write_back(
        &self,
        record: &WholeRecord,
        assessment: &Assessment,
        request: WriteBackRequest,
        written: &mut Vec<WrittenResource>,
    ) -> Option<Result<writeback::Outcome>> {
        let scope = self.scope(request)?;
        if let Err(e) = complete_as_of(assessment, today()) {
            return Some(Err(e));
        }
        let Some(fhir) = self.fhir.as_ref() else {
            return Some(Err(Error::NotConfigured(
                "no FHIR server is configured (fhir.base_url) to write back to".into(),
            )));
        };
        let _turn = self.write_lock(record.patient_id()).lock().await;
        let result = writeback::write_back(
            fhir,
            &self.writeback,
            record,
            assessment,
            &self.knowledge,
            scope,
            written,
        )
        .await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, "write-back failed");
        }
        Some(result)
    }

    /// Whether a FHIR server is configured (to read patients from and write back to).
    pub fn has_fhir_server(&self) -> bool {
        self.fhir.is_some()
    }

    /// What a request asks to have written, the configured default filled in.
    pub fn scope(&self, request: WriteBackRequest) -> Option<Scope> {
        match (request, self.writeback.default_mode) {
            (WriteBackRequest::None, _) | (WriteBackRequest::Default, DefaultWriteBack::None) => {
                None
            }
            (WriteBackRequest::Flag, _) | (WriteBackRequest::Default, DefaultWriteBack::Flag) => {
                Some(Scope::Flag)
            }
            (WriteBackRequest::FlagAndCarePlan, _)
            | (WriteBackRequest::Default, DefaultWriteBack::FlagAndCarePlan) => {
                Some(Scope::FlagAndCarePlan)
            }
        }
    }

    /// The members of a FHIR Group: the cohort of a ScreenPopulation call or a nightly job.
    pub async fn group_members(&self, group_id: &str) -> Result<Vec<PatientId>> {
        let id = crate::fhir::GroupId::parse(group_id)
            .map_err(|e| Error::InvalidArgument(summary!("group_id: {}", e)))?;
        crate::fhir::fetch::group_members(self.client()?, &id).await
    }

    /// The Patients a FHIR search finds (`Patient?{query}`), by id.
    pub async fn search_patients(&self, query: &str) -> Result<Vec<PatientId>> {
        crate::fhir::fetch::patient_ids(self.client()?, query).await
    }

    /// A Bulk Data `$export` from the FHIR server into `dest` (the nightly job's `--bulk`).
    pub async fn export(
        &self,
        request: &crate::fhir::bulk::ExportRequest,
        dest: &std::path::Path,
        progress: impl FnMut(crate::fhir::bulk::ExportProgress),
    ) -> Result<crate::fhir::bulk::ExportOutcome> {
        crate::fhir::bulk::export(self.client()?, &self.bulk, request, dest, progress).await
    }

    /// [`export`](Self::export), or `None` when the server refuses the request as such (a
    /// patient-scoped export on a server without the `patient` parameter).
    pub async fn export_unless_refused(
        &self,
        request: &crate::fhir::bulk::ExportRequest,
        dest: &std::path::Path,
        progress: impl FnMut(crate::fhir::bulk::ExportProgress),
    ) -> Result<Option<crate::fhir::bulk::ExportOutcome>> {
        crate::fhir::bulk::export_unless_refused(
            self.client()?,
            &self.bulk,
            request,
            dest,
            progress,
        )
        .await
    }

    pub fn bulk_settings(&self) -> &BulkSettings {
        &self.bulk
    }

    /// The patients whose medication requests or statements reference any of these Medications
    /// (a changed Medication changes their records). Each resource found is checked to reference
    /// the Medication: a server that ignores the search parameter must not make everyone changed.
    pub async fn patients_using_medications(
        &self,
        medication_ids: &[String],
    ) -> Result<std::collections::BTreeSet<PatientId>> {
        use crate::batch::line::{Line, classify};
        let client = self.client()?;
        let mut patients = std::collections::BTreeSet::new();
        for id in medication_ids {
            if PatientId::parse(id).is_err() {
                continue;
            }
            let reference = format!("Medication/{id}");
            for resource_type in ["MedicationRequest", "MedicationStatement"] {
                let entries = client
                    .search_pages(
                        resource_type,
                        &[("medication", &reference)],
                        (
                            crate::fhir::fetch::POPULATION_PAGE_CAP,
                            "population page cap",
                        ),
                    )
                    .await?;
                for raw in entries.iter().filter_map(|e| e.resource.as_ref()) {
                    if let Line::Clinical {
                        patient,
                        medication: Some(medication),
                    } = classify(raw.get())
                        && medication == *id
                        && let Ok(p) = PatientId::parse(&patient)
                    {
                        patients.insert(p);
                    }
                }
            }
        }
        Ok(patients)
    }

    /// Medications read one by one by id, as JSON text; ids the server does not have are left out.
    /// For exports that leave out the Medications their requests reference.
    pub async fn read_medications(&self, ids: &[String]) -> Result<Vec<String>> {
        let client = self.client()?;
        let mut found = Vec::new();
        for id in ids {
            if PatientId::parse(id).is_err() {
                continue;
            }
            if let Some(reply) = client.read("Medication", id).await? {
                match String::from_utf8(reply.body.to_vec()) {
                    Ok(text) => found.push(text.replace('\n', " ")),
                    Err(_) => {
                        return Err(Error::BadGateway(
                            "a Medication read did not return UTF-8 JSON".into(),
                        ));
                    }
                }
            }
        }
        Ok(found)
    }

    fn client(&self) -> Result<&FhirClient> {
        self.fhir.as_ref().ok_or_else(|| {
            Error::NotConfigured("no FHIR server is configured (fhir.base_url)".into())
        })
    }

    fn write_lock(&self, id: &PatientId) -> &Mutex<()> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut hasher);
        &self.write_locks[(hasher.finish() as usize) % self.write_locks.len()]
    }
}

/// Refuses a write-back from a screening as of a day before yesterday (UTC; a day's leeway for
/// the caller's time zone) of a record holding resources after that day: the screening left them
/// out, and the chart would be changed today from a partial view of the record. A screening of the
/// past on a record that holds nothing later sees all there is.
fn complete_as_of(assessment: &Assessment, today: Date) -> Result<()> {
    let leeway = Date::from_days_since_epoch(today.days_since_epoch() - 1);
    let left_out = assessment
        .diagnostics
        .iter()
        .any(|d| d.kind == crate::fhir::DiagnosticKind::AfterAsOf);
    if assessment.as_of < leeway && left_out {
        return Err(Error::InvalidArgument(
            "as_of is in the past and the record holds resources after it, which the screening left out; nothing is written back from it (screen as of today to write back)".into(),
        ));
    }
    Ok(())
}

/// Today (UTC): the default `as_of` when a request gives none.
pub fn today() -> Date {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Date::from_days_since_epoch((seconds / 86_400) as i32)
}
