//! ScreenPopulation's work: each patient through ScreenPatient's path, a bounded number at a time,
//! each answer sent as it finishes. When the caller goes away the stream's receiver is dropped; the
//! next send fails, and dropping the task set aborts the patients in progress.

use super::{convert, status};
use crate::audit::Requester;
use crate::audit::trail::Screening;
use crate::date::Date;
use crate::error::Error;
use crate::proto;
use crate::service::{Screener, WriteBackRequest};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tonic::Status;

pub struct Options {
    pub as_of: Date,
    pub mode: WriteBackRequest,
    pub concurrency: usize,
    /// Each patient's own deadline, as a ScreenPatient call would have.
    pub per_patient: Duration,
    pub audit: Audit,
}

/// What each patient's audit record says of the call: who asked, for which cohort, of what size.
pub struct Audit {
    pub who: Requester,
    /// `Group/{id}`, or `patient_ids` for a list in the request.
    pub cohort: String,
    pub size: u64,
}

type Sender = mpsc::Sender<Result<proto::ScreenPatientResponse, Status>>;

/// Screens `ids`, sending one response per patient. `_call` is the call's concurrency permit, held
/// until the last patient is done.
pub async fn screen(
    screener: Arc<Screener>,
    ids: Vec<String>,
    options: Options,
    tx: Sender,
    _call: OwnedSemaphorePermit,
) {
    let permits = Arc::new(Semaphore::new(options.concurrency));
    let audit = Arc::new(options.audit);
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            () = tx.closed() => return,
        };
        let (screener, tx, audit) = (screener.clone(), tx.clone(), audit.clone());
        let (as_of, mode, deadline) = (options.as_of, options.mode, options.per_patient);
        tasks.spawn(async move {
            let response = one(&screener, &audit, id, as_of, mode, deadline).await;
            let _ = tx.send(Ok(response)).await;
            drop::<OwnedSemaphorePermit>(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    tokio::select! {
        () = async { while tasks.join_next().await.is_some() {} } => {}
        () = tx.closed() => {}
    }
}

async fn one(
    screener: &Screener,
    audit: &Audit,
    id: String,
    as_of: Date,
    mode: WriteBackRequest,
    deadline: Duration,
) -> proto::ScreenPatientResponse {
    let mut written = Vec::new();
    let result = tokio::time::timeout(
        deadline,
        screener.screen_patient(&id, as_of, mode, &mut written),
    )
    .await
    .unwrap_or_else(|_| {
        Err(Error::Timeout(
            "this patient was not screened within the call timeout".into(),
        ))
    });
    let result = match screener.audit().population_patient_screened(
        &audit.who,
        &audit.cohort,
        audit.size,
        &id,
        Screening::of(&result, &written),
    ) {
        Ok(()) => result,
        Err(unrecorded) => Err(unrecorded),
    };
    match result {
        Ok(screened) => proto::ScreenPatientResponse {
            assessment: Some(convert::assessment(screened.assessment)),
            write_back: screened.write_back.map(convert::write_back),
            error: None,
        },
        Err(e) => proto::ScreenPatientResponse {
            assessment: None,
            write_back: None,
            error: Some(proto::PatientError {
                patient_id: id,
                code: status::code_name(status::code(&e)).to_owned(),
                message: e.to_string(),
            }),
        },
    }
}
