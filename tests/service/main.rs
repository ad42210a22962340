//! The service's tests, in one binary (one link, not thirteen): the gRPC service, the command line,
//! the nightly job and the FHIR client, against stub servers made to fail on demand (`stub`, the
//! `faults` stories) and against the real FHIR servers scripts/test starts (`service`; those tests
//! skip with a line under a plain `cargo test` and must run under `TRDSCREEN_REQUIRE_FHIR=1`).
//! The clinical core's tests are the core's (crates/core/tests).

// Helpers shared by the stories.
mod child;
mod service;
mod stub;

// The stories.
mod audit;
mod auth;
mod batch;
mod bulk;
mod callers;
mod cds;
mod cli;
mod contract;
mod deploy_settings;
mod faults;
mod fhir_service;
mod health_probe;
mod jwks;
mod mtls;
mod population;
mod smart;
mod synth;
mod telemetry;
mod tls;
mod view;
