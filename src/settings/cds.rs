//! `[cds]`: the CDS Hooks 2.0 service for EHRs, on a port of its own.

use super::values::{HttpUrl, empty_is_off, seconds};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The CDS Hooks service: discovery, patient-view, order-select and order-sign, and feedback.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CdsSettings {
    /// Address of the CDS Hooks port; empty (default): no CDS Hooks service.
    #[serde(with = "empty_is_off")]
    pub listen: Option<SocketAddr>,
    /// The service's public URL, `.../cds-services`, as the EHR calls it: the `aud` its JWTs
    /// carry (with the service id), and the base of the clinician view's links.
    #[serde(with = "empty_is_off")]
    pub service_url: Option<HttpUrl>,
    /// The FHIR servers (base URLs, comma-separated) whose data a hook may fetch when the prefetch
    /// lacks it (`fhirServer` with `fhirAuthorization`); any other is not asked (412).
    #[serde(with = "crate::auth::comma_list")]
    pub fhir_servers: Vec<String>,
    /// Largest hook request read, in bytes (prefetch included).
    pub max_request_bytes: usize,
    /// Connections the CDS Hooks port holds at once; more wait until one closes.
    pub max_connections: usize,
    /// Upper bound on one hook call.
    #[serde(rename = "call_timeout_secs", with = "seconds")]
    pub call_timeout: Duration,
    /// The CDS clients trusted, by their JWT `iss`: `[cds.clients."https://ehr.example/cds"]`
    /// `jwks_url = "..."` (where the client publishes its keys; a token's `jku` must be this URL).
    pub clients: BTreeMap<String, CdsClient>,
    /// Clock skew allowed on `exp` and `iat`, in seconds.
    pub leeway_secs: u64,
    /// The secret the clinician view's links are signed with (32 bytes or more, the same on every
    /// replica), or the secret itself in `TRDSCREEN_CDS_VIEW_LINK_SECRET`. Neither: a key made at
    /// start-up, so links die with the process and only the replica that issued one honours it.
    pub view_link_secret_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CdsClient {
    pub jwks_url: HttpUrl,
}

impl Default for CdsSettings {
    fn default() -> Self {
        CdsSettings {
            listen: None,
            service_url: None,
            fhir_servers: Vec::new(),
            max_request_bytes: 4 * 1024 * 1024,
            max_connections: 512,
            call_timeout: Duration::from_secs(10),
            clients: BTreeMap::new(),
            leeway_secs: 30,
            view_link_secret_file: None,
        }
    }
}
