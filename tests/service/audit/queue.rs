//! The audit queue against the real FHIR server: records spilled while the endpoint was down
//! arrive once each, field by field, and a replay after a crash writes nothing twice.

use serde_json::Value;
use trdscreen::audit::event::new_event_id;
use trdscreen::audit::{
    Access, AuditEvent, AuditOutcome, AuditQueue, AuditQueueSettings, FhirAuditSink, Flushed,
    Recorded, WrittenResource, bundle_evaluated, patient_screened, population_patient_screened,
    written_back,
};
use trdscreen::auth::{Caller, Permissions};
use trdscreen::fhir::client::FhirClient;
use trdscreen::settings::{FhirSettings, Secrets};

fn client(base: &str) -> FhirClient {
    let settings = FhirSettings {
        base_url: Some(base.parse().unwrap()),
        max_retries: 0,
        ..FhirSettings::default()
    };
    FhirClient::new(&settings, &Secrets::default()).unwrap()
}

/// The four kinds of access, for patients of this run only.
fn events(run: &str) -> Vec<AuditEvent> {
    let caller = Caller {
        id: "batch-runner".into(),
        issuer: "http://127.0.0.1:9".into(),
        permissions: Permissions::NONE,
    };
    let access = Access {
        caller: &caller,
        client_address: Some("127.0.0.1:40000"),
        service: "trdscreen",
        request_id: Some(run),
        recorded: "2026-12-05T08:00:00Z",
    };
    let id = || new_event_id().unwrap();
    vec![
        patient_screened(id(), &access, &format!("{run}-a"), AuditOutcome::Success),
        written_back(
            id(),
            &access,
            &format!("{run}-a"),
            &[WrittenResource {
                reference: format!("Flag/{run}-f"),
                created: true,
                changed: true,
            }],
            AuditOutcome::Success,
        ),
        population_patient_screened(
            id(),
            &access,
            &format!("Group/{run}-g"),
            2,
            &format!("{run}-b"),
            AuditOutcome::Failure("UNAVAILABLE"),
        ),
        bundle_evaluated(
            id(),
            &access,
            Some(&format!("{run}-c")),
            AuditOutcome::Success,
        ),
    ]
}

async fn get(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The stored resource without what the server adds (`meta.versionId`, `meta.lastUpdated`,
/// a narrative).
fn as_sent(mut stored: Value) -> Value {
    let object = stored.as_object_mut().unwrap();
    object.remove("text");
    if let Some(meta) = object.get_mut("meta").and_then(Value::as_object_mut) {
        meta.remove("versionId");
        meta.remove("lastUpdated");
    }
    stored
}

#[tokio::test]
async fn audit_events_spilled_while_the_endpoint_was_down_arrive_once_each_field_by_field() {
    let Some(fhir) = crate::service::fhir_env("TRDSCREEN_TEST_FHIR_URL") else {
        return;
    };
    let run = new_event_id().unwrap();
    let dir = std::env::temp_dir().join(format!("trdscreen-audit-it-{run}"));
    let events = events(&run);
    // An endpoint that is down: a loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    {
        let down = FhirAuditSink::new(client(&format!("http://127.0.0.1:{port}/fhir")));
        let queue = AuditQueue::open(&dir, AuditQueueSettings::default(), down).unwrap();
        assert_eq!(queue.record(&events[0]).unwrap(), Recorded::Queued);
        assert_eq!(queue.record(&events[1]).unwrap(), Recorded::Queued);
        assert_eq!(
            queue.flush().await.unwrap(),
            Flushed {
                sent: 0,
                waiting: true
            }
        );
        assert_eq!(queue.record(&events[2]).unwrap(), Recorded::Spilled);
        assert_eq!(queue.record(&events[3]).unwrap(), Recorded::Spilled);
        // The service is killed here: every record is on disk.
    }
    let up = FhirAuditSink::new(client(&fhir));
    let queue = AuditQueue::open(&dir, AuditQueueSettings::default(), up).unwrap();
    assert_eq!(
        queue.flush().await.unwrap(),
        Flushed {
            sent: 4,
            waiting: false
        }
    );
    assert_eq!(
        queue.flush().await.unwrap().sent,
        0,
        "nothing is sent twice"
    );

    for event in &events {
        let (status, stored) = get(&format!("{fhir}/AuditEvent/{}", event.id)).await;
        assert_eq!(status, 200, "AuditEvent {} is on the server", event.id);
        assert_eq!(
            stored["meta"]["profile"], event.resource["meta"]["profile"],
            "the BALP profile"
        );
        assert_eq!(as_sent(stored), event.resource, "field by field");
    }
    // Found by searching, once each: by the patient each names.
    for (patient, expected) in [("a", 2), ("b", 1), ("c", 1)] {
        let (status, found) = get(&format!(
            "{fhir}/AuditEvent?entity=Patient/{run}-{patient}&_count=50"
        ))
        .await;
        assert_eq!(status, 200, "{found}");
        let ids: Vec<&str> = found["entry"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(|e| e["resource"]["id"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(ids.len(), expected, "patient {patient}: {ids:?}");
    }

    // A replay after a crash between a send and its offset sends the record again: the
    // server still holds it once, under its id.
    drop(queue); // one process owns the directory at a time
    let again = FhirAuditSink::new(client(&fhir));
    let queue = AuditQueue::open(&dir, AuditQueueSettings::default(), again).unwrap();
    queue.record(&events[0]).unwrap();
    queue.flush().await.unwrap();
    let (_, found) = get(&format!(
        "{fhir}/AuditEvent?entity=Patient/{run}-a&_count=50"
    ))
    .await;
    assert_eq!(found["entry"].as_array().map_or(0, Vec::len), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}
