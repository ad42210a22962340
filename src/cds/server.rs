//! The CDS Hooks HTTP routes:
//!
//! - `GET /cds-services`: discovery (open, as CDS Hooks has it: it holds no patient data);
//! - `POST /cds-services/{id}`: a hook call, from a trusted client only;
//! - `POST /cds-services/{id}/feedback`: what the clinician did with the cards.
//!
//! Errors map to statuses here, once: a bad or missing client JWT is 401 with an empty body; a
//! malformed request 400; an unknown service 404; data that cannot be had 412; anything else 500;
//! each with a fixed message and never a client's or server's text.

use super::cards::{self, Card, OVERRIDE_REASONS};
use super::client::Clients;
use super::discovery::{self, Service};
use super::hook;
use super::prefetch::{self, Gathered};
use crate::audit::Requester;
use crate::audit::trail::Screening;
use crate::error::{Error, ErrorKind};
use crate::fhir::PatientRecord;
use crate::screening;
use crate::service::{Screener, today};
use crate::settings::Settings;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;

/// What the routes share.
pub struct Cds {
    screener: Arc<Screener>,
    clients: Clients,
    settings: Settings,
    discovery: Value,
}

impl Cds {
    pub fn new(screener: Arc<Screener>, settings: &Settings) -> crate::error::Result<Cds> {
        Ok(Cds {
            clients: Clients::new(&settings.cds)?,
            discovery: discovery::services(screener.knowledge(), &settings.writeback),
            screener,
            settings: settings.clone(),
        })
    }
}

/// The routes, with the request size limit and a bound on each request's time, reading its body
/// included (a body trickled in never reaches the handler's own deadline).
pub fn router(cds: Arc<Cds>) -> Router {
    let limit = cds.settings.cds.max_request_bytes;
    let whole_request = cds.settings.cds.call_timeout + std::time::Duration::from_secs(5);
    let view = crate::view::http::router(cds.screener.clone(), cds.screener.view_key().clone());
    Router::new()
        .route("/cds-services", get(discover))
        .route("/cds-services/{id}", post(call))
        .route("/cds-services/{id}/feedback", post(feedback))
        .with_state(cds)
        .merge(view)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| async move {
                match tokio::time::timeout(whole_request, next.run(request)).await {
                    Ok(response) => response,
                    Err(_) => json_response(
                        StatusCode::REQUEST_TIMEOUT,
                        &json!({"error": "the request was not read and answered in time"}),
                    ),
                }
            },
        ))
}

/// Serves the routes on `listener` until `stop` completes (see [`crate::http_server::serve`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    cds: Arc<Cds>,
    limits: crate::http_server::Limits,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    crate::http_server::serve(listener, router(cds), limits, stop).await;
}

async fn discover(State(cds): State<Arc<Cds>>) -> Response {
    json_response(StatusCode::OK, &cds.discovery)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// A refusal: the status, and for all but 401 a fixed message.
fn refusal(e: &Error) -> Response {
    let status = match e.kind() {
        ErrorKind::Unauthenticated | ErrorKind::PermissionDenied => StatusCode::UNAUTHORIZED,
        ErrorKind::InvalidArgument | ErrorKind::ResourceExhausted => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound
        | ErrorKind::Unavailable
        | ErrorKind::Timeout
        | ErrorKind::BadGateway
        | ErrorKind::Conflict => StatusCode::PRECONDITION_FAILED,
        ErrorKind::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status == StatusCode::UNAUTHORIZED {
        return status.into_response();
    }
    let message = match status {
        StatusCode::PRECONDITION_FAILED => {
            "the patient's data needed for this hook could not be had from the prefetch or the FHIR server".to_owned()
        }
        _ => e.summary().to_string(),
    };
    json_response(status, &json!({ "error": message }))
}

async fn authenticated(
    cds: &Cds,
    headers: &HeaderMap,
    service: &str,
) -> crate::error::Result<crate::auth::Caller> {
    let authorization =
        match headers.get(header::AUTHORIZATION) {
            Some(v) => Some(v.to_str().map_err(|_| {
                Error::Unauthenticated("the authorization header is not text".into())
            })?),
            None => None,
        };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    cds.clients.verify(authorization, Some(service), now).await
}

async fn call(
    State(cds): State<Arc<Cds>>,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = match authenticated(&cds, &headers, &id).await {
        Ok(caller) => caller,
        Err(e) => return refusal(&e),
    };
    let Some(service) = Service::by_id(&id) else {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "no such CDS service"}),
        );
    };
    let who = Requester {
        caller,
        address: Some(peer.to_string()),
        request_id: None,
    };
    // A backstop a little past the screening's own bound (inside `answer`, which audits a hook
    // that ran out of time): only what comes before and after that could reach it.
    let timeout = cds.settings.cds.call_timeout;
    let answered = tokio::time::timeout(
        timeout.saturating_add(std::time::Duration::from_secs(5)),
        answer(&cds, service, &who, &body),
    )
    .await
    .unwrap_or_else(|_| {
        Err(Error::Timeout(
            "the hook was not answered within cds.call_timeout_secs".into(),
        ))
    });
    match answered {
        Ok(cards) => {
            for card in &cards {
                crate::telemetry::record_cds_card(service.id(), card.indicator.as_str());
            }
            let cards: Vec<&Value> = cards.iter().map(|c| &c.json).collect();
            json_response(StatusCode::OK, &json!({ "cards": cards }))
        }
        Err(e) => refusal(&e),
    }
}

/// The cards of one hook call: the record gathered, screened as of today, and recorded in the
/// audit trail as a read of the patient's record.
async fn answer(
    cds: &Cds,
    service: Service,
    who: &Requester,
    body: &[u8],
) -> crate::error::Result<Vec<Card>> {
    let request = hook::parse(body)?;
    if request.hook != service.hook() {
        return Err(Error::InvalidArgument(
            "the request's hook is not this service's hook".into(),
        ));
    }
    let audit = cds.screener.audit();
    audit.admits()?;
    let k = cds.screener.knowledge();
    // Bounded here, so that a hook that ran out of time, having perhaps read the patient's record
    // from the EHR's server, is still recorded in the audit trail below.
    let result = tokio::time::timeout(cds.settings.cds.call_timeout, async {
        let gathered = prefetch::gather(
            &request,
            &cds.settings.fhir,
            &cds.settings.cds.fhir_servers,
            &cds.settings.writeback.identifier_system,
            k,
        )
        .await;
        gathered.and_then(|g| {
            crate::telemetry::record_cds_prefetch(g.prefetched as u64, g.fetched as u64);
            cards_for(cds, service, &request, g)
        })
    })
    .await
    .unwrap_or_else(|_| {
        Err(Error::Timeout(
            "the hook was not answered within cds.call_timeout_secs".into(),
        ))
    });
    let who = Requester {
        request_id: request.hook_instance.clone(),
        ..who.clone()
    };
    audit.patient_screened(
        &who,
        request.patient.as_str(),
        match &result {
            Ok(_) => Screening::read_only(),
            Err(e) => Screening::failed(e),
        },
    )?;
    result
}

fn cards_for(
    cds: &Cds,
    service: Service,
    request: &hook::HookRequest,
    gathered: Gathered,
) -> crate::error::Result<Vec<Card>> {
    let k = cds.screener.knowledge();
    let as_of = today();
    match service {
        Service::PatientView => {
            let assessment = cds
                .screener
                .evaluate_record(gathered.record.record(), as_of)?;
            let link = |card: &str| view_link(cds, &request.patient, card);
            // The view reads the service's own FHIR server: the same id on another server is
            // another person, so a card links to it only when the hook names that server.
            let same_server = request
                .named_server
                .as_deref()
                .zip(cds.settings.fhir.base_url.as_ref())
                .is_some_and(|(named, own)| {
                    named.trim_end_matches('/') == own.as_str().trim_end_matches('/')
                });
            let view = cards::PatientView {
                writeback: &cds.settings.writeback,
                flag: &gathered.flag,
                care_plan: &gathered.care_plan,
                view_link: same_server.then_some(&link as &cards::ViewLink),
            };
            Ok(cards::patient_view(&assessment, k, &view)
                .into_iter()
                .collect())
        }
        Service::OrderSelect | Service::OrderSign => {
            let mut record: PatientRecord = gathered.record.record().clone();
            let ordered = add_orders(&mut record, &request.draft_orders, as_of)?;
            let exposed = screening::exposed_drugs(&record, as_of, k);
            if names_a_medication_not_had(&record, &ordered, &exposed) {
                // No card would read as "no caution" for a drug that was never identified.
                return Err(Error::Unavailable(
                    "a draft order names a Medication that is not in the prefetch".into(),
                ));
            }
            let drugs = cards::ordered_drugs(&exposed, &ordered);
            if drugs.is_empty() {
                return Ok(Vec::new());
            }
            let assessment = cds.screener.evaluate_record(&record, as_of)?;
            Ok(cards::orders(&assessment, &drugs, k))
        }
    }
}

/// Whether a draft order's drug is unknown for want of its Medication: the order names it by
/// reference only, the record does not hold it (resolved as screening resolves it), and nothing
/// else identified the drug.
fn names_a_medication_not_had(
    record: &PatientRecord,
    ordered: &[String],
    exposed: &[(String, crate::knowledge::DrugId)],
) -> bool {
    record
        .medication_requests
        .iter()
        .filter(|e| ordered.contains(&e.citation))
        .filter(|e| !exposed.iter().any(|(citation, _)| *citation == e.citation))
        .any(|e| {
            let order = &e.resource;
            order.medication_codeable_concept.is_none()
                && order
                    .medication_reference
                    .as_ref()
                    .is_some_and(|reference| {
                        screening::recognition::resolve(reference, &order.contained, record)
                            .is_none()
                    })
        })
}

/// The clinician view's URL for a card: the service's public base (`cds.service_url` without its
/// `/cds-services`) and a short-lived link bound to the patient and the card.
fn view_link(cds: &Cds, patient: &crate::fhir::PatientId, card: &str) -> Option<String> {
    let service_url = cds.settings.cds.service_url.as_ref()?;
    let base = service_url
        .as_str()
        .trim_end_matches('/')
        .trim_end_matches("/cds-services");
    let token = cds
        .screener
        .view_key()
        .issue(
            patient,
            card,
            std::time::SystemTime::now(),
            crate::view::link::DEFAULT_TTL,
        )
        .ok()?;
    Some(format!("{base}{}", crate::view::http::path(&token)))
}

/// Adds the draft orders to the record as orders active from `as_of` (what they will be once
/// signed); their citations (`MedicationRequest/{id}`), an id made up for an order without one.
fn add_orders(
    record: &mut PatientRecord,
    orders: &[Box<serde_json::value::RawValue>],
    as_of: crate::date::Date,
) -> crate::error::Result<Vec<String>> {
    let mut citations = Vec::new();
    let subject = format!("Patient/{}", record.patient_id);
    let position = record.medication_requests.len() + record.medication_statements.len() + 10_000;
    let not_an_order = || Error::InvalidArgument("a draft order is not a MedicationRequest".into());
    for (n, order) in orders.iter().enumerate() {
        // An object, or refused: setting a key of anything else (an array passes a derived
        // struct's check) would panic.
        let Ok(Value::Object(mut order)) = serde_json::from_str::<Value>(order.get()) else {
            return Err(not_an_order());
        };
        let id = match order.get("id").and_then(Value::as_str) {
            Some(id) if crate::fhir::FhirId::parse(id).is_ok() => id.to_owned(),
            _ => format!("draft-order-{n}"),
        };
        order.insert("id".into(), json!(id));
        order.insert("status".into(), json!("active"));
        order.insert("intent".into(), json!("order"));
        order.insert("authoredOn".into(), json!(as_of.to_string()));
        order.insert("subject".into(), json!({ "reference": subject }));
        let text = Value::Object(order).to_string();
        let raw = serde_json::value::RawValue::from_string(text).map_err(|_| not_an_order())?;
        let citation = format!("MedicationRequest/{id}");
        record.add_json(&raw, None, position + n);
        citations.push(citation);
    }
    Ok(citations)
}

#[derive(Deserialize)]
struct FeedbackRequest {
    feedback: Vec<Feedback>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Feedback {
    outcome: String,
    override_reason: Option<OverrideReason>,
}

#[derive(Deserialize)]
struct OverrideReason {
    reason: Option<Coding>,
}

#[derive(Deserialize)]
struct Coding {
    code: Option<String>,
}

async fn feedback(
    State(cds): State<Arc<Cds>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = authenticated(&cds, &headers, &id).await {
        return refusal(&e);
    }
    let Some(service) = Service::by_id(&id) else {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "no such CDS service"}),
        );
    };
    let Ok(request) = serde_json::from_slice::<FeedbackRequest>(&body) else {
        return refusal(&Error::InvalidArgument(
            "the feedback is not CDS Hooks feedback (feedback: [{card, outcome}])".into(),
        ));
    };
    for f in &request.feedback {
        let outcome = match f.outcome.as_str() {
            "accepted" => "accepted",
            "overridden" => "overridden",
            _ => {
                return refusal(&Error::InvalidArgument(
                    "a feedback outcome is neither accepted nor overridden".into(),
                ));
            }
        };
        let reason = f
            .override_reason
            .as_ref()
            .and_then(|r| r.reason.as_ref())
            .and_then(|c| c.code.as_deref())
            .map_or("none", |code| {
                OVERRIDE_REASONS
                    .iter()
                    .find(|(known, _)| *known == code)
                    .map_or("other", |(known, _)| known)
            });
        crate::telemetry::record_cds_feedback(service.id(), outcome, reason);
    }
    StatusCode::OK.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_server::tests::{SHORT_LIMITS, request, trickle_a_request_head};

    /// The CDS port served as `trdscreen serve` serves it, with a short header-read timeout; no FHIR
    /// server and no trusted client (every hook call is refused 401).
    async fn start() -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let mut settings = Settings::default();
        settings.cds.service_url = Some("http://localhost/cds-services".parse().unwrap());
        let secrets = crate::settings::Secrets::default();
        let screener = Arc::new(Screener::new(&settings, &secrets).unwrap());
        let cds = Arc::new(Cds::new(screener, &settings).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, cds, SHORT_LIMITS, async {
            let _ = stopped.await;
        }));
        (address, stop)
    }

    #[tokio::test]
    async fn a_hook_request_head_trickled_in_is_cut_off_after_the_header_read_timeout() {
        let (address, _stop) = start().await;
        let answer = trickle_a_request_head(address, "/cds-services").await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn discovery_is_answered_and_a_hook_call_reaches_its_handler_with_the_peer_address() {
        let (address, _stop) = start().await;
        let discovery = request(address, "GET", "/cds-services").await;
        assert!(discovery.starts_with("HTTP/1.1 200"), "{discovery}");
        // The hook handler takes the peer's address (for the audit trail): without it axum would
        // answer 500 before the handler ran; with it the handler refuses the missing token.
        let path = format!("/cds-services/{}", Service::PatientView.id());
        let call = request(address, "POST", &path).await;
        assert!(call.starts_with("HTTP/1.1 401"), "{call}");
    }
}
