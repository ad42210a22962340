//! Creating a Flag or CarePlan the chart does not hold yet, so that two service replicas screening
//! the same patient at the same instant still leave one.
//!
//! The create is a conditional create (`POST Type` with `ifNoneExist: identifier=system|value`)
//! sent as the single entry of a `transaction` Bundle. A bare conditional create or conditional
//! update is a search followed by a write, and servers need not make the pair atomic (the FHIR test
//! server does not: two at once both create). A transaction must be processed as one unit, and
//! servers serialise or isolate it, which closes that gap on every server that runs transactions
//! atomically. On a server that does not, the remaining risk is a duplicate, which the next
//! write-back reports as a conflict naming it (docs/decisions.md).
//!
//! A server that refuses the transaction itself (`403`: some check a transaction's scopes as a
//! create on every type, more than the service's least-privilege token grants; `404`: no
//! transaction endpoint) gets the plain conditional update `PUT Type?identifier=system|value`
//! instead, which such servers may not make atomic.

use crate::error::{Error, Result};
use crate::fhir::client::{FhirClient, Idempotent};
use crate::summary;
use reqwest::Method;
use serde_json::{Value, json};

/// What the conditional create found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// This request wrote the resource with this id (created it; after a fallback to a conditional
    /// update, possibly over one that had just appeared).
    New(String),
    /// A resource with the identifier was already there (written by another replica, or by an
    /// earlier attempt of this request whose answer was lost); nothing was written.
    AlreadyThere(String),
}

/// `POST [base]` with a one-entry transaction creating `resource` unless a `resource_type` carrying
/// `identifier` (`system|value`) exists. Retried like an idempotent request: a replay creates nothing
/// more, it finds what the first attempt made.
pub async fn create_unless_present(
    client: &FhirClient,
    resource_type: &'static str,
    identifier: &str,
    resource: &Value,
) -> Result<Created> {
    let if_none_exist = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("identifier", identifier)
        .finish();
    let transaction = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{
            "resource": resource,
            "request": {"method": "POST", "url": resource_type, "ifNoneExist": if_none_exist}
        }]
    });
    let bytes = serde_json::to_vec(&transaction)
        .map_err(|_| Error::BadGateway(summary!("cannot encode the {}", resource_type)))?;
    let sent = client
        .send(
            Method::POST,
            client.base(),
            Some(&bytes),
            &[],
            Idempotent::Yes,
            resource_type,
        )
        .await;
    match sent {
        Ok(reply) => read_response(&reply.body, resource_type),
        Err(Error::PermissionDenied(_) | Error::NotFound(_)) => {
            tracing::warn!(
                resource_type,
                "the FHIR server refused a transaction; creating by conditional update, which it may not make atomic"
            );
            let url = client.url(&format!("{resource_type}?{if_none_exist}"));
            super::put(client, &url, resource, &[], resource_type)
                .await
                .map(Created::New)
        }
        Err(e) => Err(e),
    }
}

/// The entry of a `transaction-response` Bundle: its status says whether the resource was created
/// (`201`) or found (`200`), its resource or `location` names the resource.
fn read_response(body: &[u8], resource_type: &'static str) -> Result<Created> {
    let unreadable = || {
        Error::BadGateway(summary!(
            "the {} transaction's answer is not a transaction-response Bundle",
            resource_type
        ))
    };
    let bundle: Value = serde_json::from_slice(body).map_err(|_| unreadable())?;
    if bundle["resourceType"] != "Bundle" {
        return Err(unreadable());
    }
    let entry = bundle["entry"]
        .as_array()
        .and_then(|entries| entries.first())
        .ok_or_else(unreadable)?;
    let status = entry["response"]["status"]
        .as_str()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(unreadable)?;
    let from_resource = super::fhir_id(entry["resource"]["id"].as_str());
    let from_location = entry["response"]["location"]
        .as_str()
        .and_then(|l| super::id_from_location(l, resource_type));
    let id = || {
        from_resource
            .clone()
            .or(from_location.clone())
            .ok_or_else(|| {
                Error::BadGateway(summary!(
                    "the {} create did not say which resource it wrote",
                    resource_type
                ))
            })
    };
    match status {
        201 => Ok(Created::New(id()?)),
        200 => Ok(Created::AlreadyThere(id()?)),
        409 | 412 => Err(Error::Conflict(summary!(
            "the {} create conflicted ({})",
            resource_type,
            status
        ))),
        other => Err(Error::BadGateway(summary!(
            "the {} create inside the transaction answered {}",
            resource_type,
            other
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: &str, location: Option<&str>, id: Option<&str>) -> Vec<u8> {
        let mut entry = json!({"response": {"status": status}});
        if let Some(l) = location {
            entry["response"]["location"] = json!(l);
        }
        if let Some(id) = id {
            entry["resource"] = json!({"resourceType": "Flag", "id": id});
        }
        json!({"resourceType": "Bundle", "type": "transaction-response", "entry": [entry]})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn a_created_entry_is_new_and_a_found_one_is_already_there() {
        assert_eq!(
            read_response(&response("201 Created", None, Some("f1")), "Flag"),
            Ok(Created::New("f1".into()))
        );
        assert_eq!(
            read_response(
                &response("200", Some("https://x/fhir/Flag/f2/_history/3"), None),
                "Flag"
            ),
            Ok(Created::AlreadyThere("f2".into()))
        );
    }

    #[test]
    fn answers_that_name_no_resource_or_no_status_are_bad_gateway() {
        for body in [
            response("201 Created", None, None),
            response("Created", None, Some("f1")),
            b"{\"resourceType\":\"Bundle\"}".to_vec(),
            b"{\"resourceType\":\"OperationOutcome\"}".to_vec(),
            b"not json".to_vec(),
        ] {
            assert!(
                matches!(read_response(&body, "Flag"), Err(Error::BadGateway(_))),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
        assert!(matches!(
            read_response(&response("412 Precondition Failed", None, None), "Flag"),
            Err(Error::Conflict(_))
        ));
    }
}
