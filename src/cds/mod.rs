//! CDS Hooks 2.0 (issue 13): how an EHR puts the screening in front of a clinician when a chart
//! opens (`patient-view`) and while a drug is being ordered (`order-select`, `order-sign`), on the
//! same screening path as gRPC. On a port of its own (`[cds]`), docs/decisions.md says why.
//!
//! - [`discovery`]: the services and the prefetch templates of what screening reads.
//! - [`client`]: the CDS client's signed JWT (allow-listed issuers, their key sets, `aud`, `exp`,
//!   `iat`, a `jti` used once).
//! - [`hook`]: a hook request read into types; malformed is a 400 in fixed words.
//! - [`prefetch`]: the patient's record from the prefetch, the rest from `fhirServer` with
//!   `fhirAuthorization` (allow-listed servers only); what cannot be had is a 412.
//! - [`cards`]: the cards: a patient-view card when the patient screens MET or POSSIBLE, an order
//!   card for each hint that affects the drug ordered (the knowledge base's `affects`).
//! - [`server`]: the HTTP routes, one mapping from errors to statuses, metrics and the audit trail.

pub mod cards;
pub mod client;
pub mod discovery;
pub mod hook;
pub mod prefetch;
pub mod server;

pub use server::{Cds, router};
