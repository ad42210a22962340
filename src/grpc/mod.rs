//! The gRPC transport: thin. It checks limits, turns requests into calls of [`Screener`] and
//! results into the contract's messages; errors become statuses in one place ([`status`]).

pub mod callers;
pub mod codec;
pub mod convert;
pub mod health_probe;
mod incoming;
mod population;
pub mod server;
pub mod status;
pub mod telemetry;
mod tls;

pub use incoming::PREFACE_TIMEOUT;

use crate::audit::trail::Screening;
use crate::auth::Permission;
use crate::date::Date;
use crate::error::Error;
use crate::proto;
use crate::proto::trd_screening_server::TrdScreening;
use crate::service::{Screener, WriteBackRequest, today};
use crate::settings::GrpcSettings;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

pub struct Service {
    screener: Arc<Screener>,
    gate: callers::Gate,
    /// Calls handled at once; one more is refused rather than queued without bound.
    permits: Arc<Semaphore>,
    call_timeout: Duration,
    max_request_bytes: usize,
    /// Patients screened at once by one ScreenPopulation call.
    population_concurrency: usize,
}

impl Service {
    pub fn new(screener: Arc<Screener>, gate: callers::Gate, g: &GrpcSettings) -> Service {
        Service {
            screener,
            gate,
            permits: Arc::new(Semaphore::new(g.max_concurrent_calls)),
            call_timeout: g.call_timeout,
            max_request_bytes: g.max_request_bytes,
            population_concurrency: g.population_concurrency.max(1),
        }
    }

    /// The permissions a screening asks for: reading, and writing when the write-back it asks for
    /// (the configured default filled in) writes.
    fn screening_needs(&self, mode: WriteBackRequest, read: Permission) -> Vec<Permission> {
        let mut needs = vec![read];
        if self.screener.scope(mode).is_some() {
            needs.push(Permission::ScreeningWrite);
        }
        needs
    }

    fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        self.permits.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted("the service is at its concurrent call limit; retry later")
        })
    }

    /// The configured call timeout, or the caller's deadline when that is sooner.
    fn deadline<T>(&self, request: &Request<T>) -> Duration {
        let asked = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        asked.map_or(self.call_timeout, |d| d.min(self.call_timeout))
    }
}

/// `grpc-timeout` as the gRPC HTTP/2 protocol writes it: up to 8 digits and a unit.
fn parse_grpc_timeout(text: &str) -> Option<Duration> {
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn as_of(timestamp: Option<&prost_types::Timestamp>) -> Result<Date, Status> {
    match timestamp {
        None => Ok(today()),
        Some(t) if !(0..1_000_000_000).contains(&t.nanos) => Err(Status::invalid_argument(
            "as_of is not a valid Timestamp: nanos must be 0 to 999,999,999",
        )),
        Some(t) if (-2_208_988_800..=32_503_680_000).contains(&t.seconds) => Ok(
            Date::from_days_since_epoch(t.seconds.div_euclid(86_400) as i32),
        ),
        Some(_) => Err(Status::invalid_argument(
            "as_of is outside the years 1900 to 3000",
        )),
    }
}

fn write_back_request(mode: i32) -> Result<WriteBackRequest, Status> {
    match proto::WriteBackMode::try_from(mode) {
        Ok(proto::WriteBackMode::Unspecified) => Ok(WriteBackRequest::Default),
        Ok(proto::WriteBackMode::None) => Ok(WriteBackRequest::None),
        Ok(proto::WriteBackMode::Flag) => Ok(WriteBackRequest::Flag),
        Ok(proto::WriteBackMode::FlagAndCarePlan) => Ok(WriteBackRequest::FlagAndCarePlan),
        Err(_) => Err(Status::invalid_argument(
            "write_back is not a known WriteBackMode",
        )),
    }
}

async fn within<T>(
    deadline: Duration,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(deadline, work)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Timeout(
                "the call did not finish within its deadline".into(),
            ))
        })
}

pub type ResponseStream =
    Pin<Box<dyn Stream<Item = Result<proto::ScreenPatientResponse, Status>> + Send>>;

#[tonic::async_trait]
impl TrdScreening for Service {
    async fn screen_patient(
        &self,
        request: Request<proto::ScreenPatientRequest>,
    ) -> Result<Response<proto::ScreenPatientResponse>, Status> {
        let mode = write_back_request(request.get_ref().write_back)?;
        let needs = self.screening_needs(mode, Permission::ScreeningRead);
        let who = callers::requester(self.gate.admit(&request, &needs).await?, &request);
        let audit = self.screener.audit();
        audit.admits().map_err(|e| status::status(&e))?;
        let _permit = self.admit()?;
        let deadline = self.deadline(&request);
        let r = request.into_inner();
        let as_of = as_of(r.as_of.as_ref())?;
        let mut written = Vec::new();
        let screened = within(
            deadline,
            self.screener
                .screen_patient(&r.patient_id, as_of, mode, &mut written),
        )
        .await;
        audit
            .patient_screened(&who, &r.patient_id, Screening::of(&screened, &written))
            .map_err(|e| status::status(&e))?;
        let screened = screened.map_err(|e| status::status(&e))?;
        Ok(Response::new(proto::ScreenPatientResponse {
            assessment: Some(convert::assessment(screened.assessment)),
            write_back: screened.write_back.map(convert::write_back),
            error: None,
        }))
    }

    async fn evaluate_bundle(
        &self,
        request: Request<proto::EvaluateBundleRequest>,
    ) -> Result<Response<proto::ScreenPatientResponse>, Status> {
        let caller = self
            .gate
            .admit(&request, &[Permission::BundleEvaluate])
            .await?;
        let who = callers::requester(caller, &request);
        let audit = self.screener.audit();
        audit.admits().map_err(|e| status::status(&e))?;
        let _permit = self.admit()?;
        let r = request.into_inner();
        if r.bundle_json.len() > self.max_request_bytes {
            return Err(Status::resource_exhausted(format!(
                "the Bundle is {} bytes, over the {} byte limit (grpc.max_request_bytes)",
                r.bundle_json.len(),
                self.max_request_bytes
            )));
        }
        let as_of = as_of(r.as_of.as_ref())?;
        let evaluated = self.screener.evaluate_bundle(&r.bundle_json, as_of);
        let (patient, error) = match &evaluated {
            Ok(a) => (Some(a.patient_id.as_str()), None),
            Err(e) => (None, Some(e)),
        };
        audit
            .bundle_evaluated(&who, patient, error)
            .map_err(|e| status::status(&e))?;
        let assessment = evaluated.map_err(|e| status::status(&e))?;
        Ok(Response::new(proto::ScreenPatientResponse {
            assessment: Some(convert::assessment(assessment)),
            write_back: None,
            error: None,
        }))
    }

    type ScreenPopulationStream = ResponseStream;

    async fn screen_population(
        &self,
        request: Request<proto::ScreenPopulationRequest>,
    ) -> Result<Response<Self::ScreenPopulationStream>, Status> {
        let mode = write_back_request(request.get_ref().write_back)?;
        let needs = self.screening_needs(mode, Permission::PopulationScreen);
        let who = callers::requester(self.gate.admit(&request, &needs).await?, &request);
        self.screener
            .audit()
            .admits()
            .map_err(|e| status::status(&e))?;
        let permit = self.admit()?;
        let r = request.into_inner();
        let as_of = as_of(r.as_of.as_ref())?;
        let (cohort, ids): (String, Vec<String>) = match r.cohort {
            None => {
                return Err(Status::invalid_argument(
                    "name a cohort: group_id or patient_ids",
                ));
            }
            Some(proto::screen_population_request::Cohort::PatientIds(list)) => {
                if list.ids.len() > MAX_POPULATION_IDS {
                    return Err(Status::invalid_argument(format!(
                        "{} patient ids is over the limit of {MAX_POPULATION_IDS}; use a Group",
                        list.ids.len()
                    )));
                }
                ("patient_ids".to_owned(), list.ids)
            }
            Some(proto::screen_population_request::Cohort::GroupId(group)) => {
                let members = within(self.call_timeout, self.screener.group_members(&group))
                    .await
                    .map_err(|e| status::status(&e))?;
                (
                    format!("Group/{group}"),
                    members
                        .into_iter()
                        .map(|id| id.as_str().to_owned())
                        .collect(),
                )
            }
        };
        let size = ids.len() as u64;
        let (tx, rx) = tokio::sync::mpsc::channel(self.population_concurrency);
        tokio::spawn(population::screen(
            self.screener.clone(),
            ids,
            population::Options {
                as_of,
                mode,
                concurrency: self.population_concurrency,
                per_patient: self.call_timeout,
                audit: population::Audit { who, size, cohort },
            },
            tx,
            permit,
        ));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// Ids accepted in one ScreenPopulation request; larger cohorts come as a Group.
const MAX_POPULATION_IDS: usize = 10_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_grpc_timeouts_in_every_unit() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("7"), None);
        assert_eq!(parse_grpc_timeout(""), None);
    }
}
