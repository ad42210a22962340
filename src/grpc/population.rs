//! ScreenPopulation's work: each patient through ScreenPatient's path, a bounded number at a time,
//! each answer sent as it finishes. When the caller goes away the stream's receiver is dropped; the
//! next send fails, and dropping the task set aborts the patients in progress.

use super::{convert, status};
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
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            () = tx.closed() => return,
        };
        let (screener, tx) = (screener.clone(), tx.clone());
        let (as_of, mode, deadline) = (options.as_of, options.mode, options.per_patient);
        tasks.spawn(async move {
            let response = one(&screener, id, as_of, mode, deadline).await;
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
    id: String,
    as_of: Date,
    mode: WriteBackRequest,
    deadline: Duration,
) -> proto::ScreenPatientResponse {
    let result = tokio::time::timeout(deadline, screener.screen_patient(&id, as_of, mode))
        .await
        .unwrap_or_else(|_| {
            Err(Error::Timeout(
                "this patient was not screened within the call timeout".into(),
            ))
        });
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
