//! Who may ask (issue 17): callers authenticated by OAuth 2.0 bearer access tokens (JWT, RFC 9068)
//! from the hospital's identity provider, and authorised by the scopes the token grants.
//!
//! - [`JwtVerifier`] verifies an access token against the issuer's keys (discovered from its
//!   metadata, cached, fetched again on an unknown `kid` at most once per interval) and returns the
//!   [`Caller`]: an identity (`client_id`, else `sub`) and a [`Permissions`] set.
//! - [`Permission`] names what a method needs; [`Caller::require`] refuses a caller without it.
//!
//! Errors are the crate's [`Error`](crate::error::Error): `Unauthenticated` for a missing or bad
//! token, `PermissionDenied` for a good token without the permission, `Unavailable` when the
//! issuer's keys cannot be had. Their words are fixed: nothing of a token (claims, header, the
//! issuer's answers) is ever copied into an error or a log line.

pub mod jwks;
pub mod jwt;
pub mod mtls;
pub mod permission;
pub mod rate;

pub use jwks::{JWKS_PATH, PublishedKey, jwks_router, public_jwk, public_jwks};
pub use jwt::{JwtSettings, JwtVerifier, bearer_token, comma_list};
pub use mtls::{MtlsSettings, certificate_caller, certificate_identity};
pub use permission::{Caller, Permission, Permissions};
pub use rate::{Limited, RateLimiter, RateSettings};
