//! `GET /view/{token}`: the clinician view a card links to. The token ([`super::link`]) names the
//! patient; the record is read from the service's FHIR server as ScreenPatient reads it, evaluated
//! as of today, nothing written, and the access recorded in the audit trail (the caller named by
//! the card the link came from). Any token that does not verify is 403 with an empty body.
//!
//! Every answer is `Cache-Control: no-store` (a patient's page must not stay in a shared cache or
//! the browser's), `Referrer-Policy: no-referrer` (the token must not leave in a `Referer`), and
//! `X-Content-Type-Options: nosniff`; the page itself comes with its strict
//! [`CONTENT_SECURITY_POLICY`](super::CONTENT_SECURITY_POLICY).

use super::link::{Claims, LinkKey};
use crate::audit::Requester;
use crate::audit::trail::{Screening, request_id};
use crate::auth::permission::{Caller, Permissions};
use crate::error::ErrorKind;
use crate::service::{Screener, today};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::SystemTime;

/// The issuer the audit trail records for a view opened through a link.
pub const LINK_ISSUER: &str = "urn:trdscreen:view-link";

#[derive(Clone)]
struct ViewState {
    screener: Arc<Screener>,
    key: Arc<LinkKey>,
}

/// The clinician view's routes: `GET /view/{token}`. The caller mounts it (merges it) into its
/// HTTP server; links issued with `key` are the ones honoured.
pub fn router(screener: Arc<Screener>, key: Arc<LinkKey>) -> axum::Router {
    axum::Router::new()
        .route("/view/{token}", axum::routing::get(view))
        .with_state(ViewState { screener, key })
}

/// The path of the view for `token`, to put after the service's public base URL in a card's link.
pub fn path(token: &str) -> String {
    format!("/view/{token}")
}

async fn view(
    State(state): State<ViewState>,
    token: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
) -> Response {
    let Ok(Path(token)) = token else {
        return refused();
    };
    let Ok(claims) = state.key.verify(&token, SystemTime::now()) else {
        return refused();
    };
    let audit = state.screener.audit();
    if audit.admits().is_err() {
        return failure(ErrorKind::Unavailable);
    }
    let read = state
        .screener
        .read_and_evaluate(&claims.patient, today())
        .await;
    let who = requester(&claims, &headers);
    let recorded = audit.patient_screened(
        &who,
        claims.patient.as_str(),
        match &read {
            Ok(_) => Screening::read_only(),
            Err(e) => Screening::failed(e),
        },
    );
    if recorded.is_err() {
        return failure(ErrorKind::Unavailable);
    }
    let (record, assessment) = match read {
        Ok(read) => read,
        Err(e) => {
            tracing::warn!(error = %e, "the clinician view could not read the record");
            return failure(e.kind());
        }
    };
    match super::page(record.record(), &assessment, state.screener.knowledge()) {
        Ok(html) => page(html),
        Err(_) => failure(ErrorKind::BadGateway),
    }
}

/// The holder of a link, as the audit trail names them: the card the link came from.
fn requester(claims: &Claims, headers: &HeaderMap) -> Requester {
    Requester {
        caller: Caller {
            id: format!("card:{}", claims.card_id),
            issuer: LINK_ISSUER.into(),
            permissions: Permissions::NONE,
        },
        address: None,
        request_id: request_id(headers.get("x-request-id").and_then(|v| v.to_str().ok())),
    }
}

fn guarded(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn page(html: String) -> Response {
    let mut response =
        guarded(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response());
    if let Ok(policy) = HeaderValue::from_str(&super::CONTENT_SECURITY_POLICY) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

/// 403 and nothing else: whether the token was altered, expired or never ours is not said.
fn refused() -> Response {
    guarded(StatusCode::FORBIDDEN.into_response())
}

/// The status and a fixed sentence for a read that failed; the FHIR server's words stay out.
fn failure(kind: ErrorKind) -> Response {
    let (status, text) = match kind {
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "The patient was not found."),
        ErrorKind::NotConfigured | ErrorKind::Unavailable | ErrorKind::Timeout => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The patient's record cannot be read now; try again shortly.",
        ),
        _ => (
            StatusCode::BAD_GATEWAY,
            "The patient's record could not be read.",
        ),
    };
    guarded(
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            text,
        )
            .into_response(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_read_failure_is_an_error_status_other_than_the_refusal() {
        for kind in ErrorKind::ALL {
            let status = failure(kind).status();
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{kind:?}"
            );
            assert_ne!(
                status,
                StatusCode::FORBIDDEN,
                "{kind:?}: 403 is the link's alone"
            );
        }
    }
}
