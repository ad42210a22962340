//! Screening patient by patient from the FHIR server (a Group's members, a search's Patients, an
//! incremental run's changed patients), through the same path as ScreenPatient, with bounded
//! concurrency and a rate limit that protects the hospital's server.

use super::rate::RateLimit;
use super::{Job, JobError, Shared, Source, failed, summarise};
use crate::audit::trail::Screening;
use crate::fhir::PatientId;
use crate::service::{Screener, WriteBackRequest};
use crate::settings::BatchSettings;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use tracing::Instrument;

pub(super) fn screen(
    screener: &Arc<Screener>,
    settings: &BatchSettings,
    job: &Job,
    request: WriteBackRequest,
    done: &HashSet<PatientId>,
    shared: &Arc<Shared>,
    rt: &tokio::runtime::Runtime,
) -> Result<(), JobError> {
    let cohort = rt.block_on(async {
        match &job.source {
            Source::Group(id) => screener.group_members(id).await,
            Source::Search(query) => screener.search_patients(query).await,
            Source::Ndjson(_) | Source::Bulk(_) => Ok(Vec::new()),
        }
    })?;
    screen_ids(screener, settings, job, request, cohort, done, shared, rt);
    Ok(())
}

/// Screens these patients (those of the job's shard not yet done), each read whole as
/// ScreenPatient reads them: a Group's members, a search's Patients, or the changed patients of an
/// incremental run.
#[allow(clippy::too_many_arguments)]
pub(super) fn screen_ids(
    screener: &Arc<Screener>,
    settings: &BatchSettings,
    job: &Job,
    request: WriteBackRequest,
    cohort: Vec<PatientId>,
    done: &HashSet<PatientId>,
    shared: &Arc<Shared>,
    rt: &tokio::runtime::Runtime,
) {
    rt.block_on(async {
        let todo: Vec<PatientId> = cohort
            .into_iter()
            .filter(|id| job.shard.contains(id) && !done.contains(id))
            .collect();
        shared
            .progress
            .start_phase("screening", Some(todo.len() as u64));
        shared.set_population(todo.len() as u64);
        let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        let limit = RateLimit::new(f64::from(settings.patients_per_second));
        let mut tasks = tokio::task::JoinSet::new();
        for id in todo {
            if shared.stopping() {
                break;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            limit.acquire().await;
            let (screener, shared, as_of) = (screener.clone(), shared.clone(), job.as_of);
            shared.start();
            let span = crate::telemetry::batch::patient_span();
            tasks.spawn(async move {
                let started = Instant::now();
                let mut written = Vec::new();
                let screened = screener
                    .screen_patient(id.as_str(), as_of, request, &mut written)
                    .instrument(span)
                    .await;
                let audited =
                    shared.audit(&screener, id.as_str(), Screening::of(&screened, &written));
                let summary = match (screened, audited) {
                    (Ok(s), Ok(())) => {
                        summarise(&s.assessment, s.write_back.as_ref(), started.elapsed())
                    }
                    (Err(e), _) | (Ok(_), Err(e)) => failed(id.as_str(), &e, started.elapsed()),
                };
                shared.finish(&summary);
                drop(permit);
            });
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
        shared.progress.finish_phase();
    })
}
