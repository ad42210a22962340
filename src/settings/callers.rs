//! `[callers]`: who may call the gRPC port, and how often.

use serde::{Deserialize, Serialize};

/// How callers of the gRPC port prove who they are (docs/security.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallerAuthentication {
    /// Anyone who reaches the port: only where the network admits nothing but a trusted
    /// integration engine. The service says so at start-up.
    #[default]
    None,
    /// An OAuth 2.0 bearer access token (JWT) from the identity provider in `[callers.jwt]`,
    /// whose scopes grant the permissions each method needs.
    Jwt,
    /// A client certificate verified in the TLS handshake against `grpc.client_ca_file`; the
    /// identity its URI (SPIFFE) or DNS name gives is granted the scopes `[callers.mtls.clients]`
    /// lists for it.
    Mtls,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallerSettings {
    pub authentication: CallerAuthentication,
    pub jwt: crate::auth::JwtSettings,
    /// `[callers.mtls.clients]`: certificate identity (`"spiffe://..."` or a DNS name) to the
    /// scopes it is granted, for `authentication = "mtls"`.
    pub mtls: crate::auth::MtlsSettings,
    /// Calls per second per caller and permission (`[callers.rate.limits."screening.read"]`
    /// `per_second`, `burst`); a permission without a limit is not limited.
    pub rate: crate::auth::RateSettings,
}
