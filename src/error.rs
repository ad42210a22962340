//! The service's error: what went wrong, in words safe to show a caller or write to a log (never
//! clinical data, never a token). Transports map it to their status codes in one place each
//! (`grpc::status`).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong: a bad patient id, a malformed Bundle.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// The FHIR server could not be reached, or kept failing after retries.
    #[error("FHIR server unavailable: {0}")]
    Unavailable(String),
    /// The FHIR server (or the token endpoint) did not answer in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The FHIR server refused the credentials or the scope.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// Over a size or concurrency limit.
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
    /// The FHIR server answered with something that is not what FHIR promises (not JSON, not a
    /// Bundle, a 4xx we did not expect).
    #[error("bad response from the FHIR server: {0}")]
    BadGateway(String),
    /// A write conflicted with a concurrent change or matched more than one resource.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not configured: {0}")]
    NotConfigured(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
