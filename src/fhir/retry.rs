//! The retry loop that FHIR searches and writes, the SMART token request and bulk file downloads
//! share. Each caller says what one attempt came to and brings its own rules (how many retries,
//! what to do with a server's `Retry-After`); the waits, the retry metric and the count of
//! attempts are kept here, once. (Polling a bulk export's status is not a retry: it waits for the
//! server's work, not past a failure, and keeps its own loop in `bulk/poll.rs`.)

use super::transport::{RetryPolicy, backoff};
use crate::error::Error;
use crate::summary;
use crate::telemetry::{self, RetryReason};
use std::time::Duration;

/// What one attempt came to.
pub(crate) enum Attempt<T> {
    Done(T),
    /// No other attempt can mend it.
    Failed(Error),
    /// Another attempt may succeed: why (for the retry metric, when it is one of its reasons) and
    /// the wait the server asked for, if it did.
    Again {
        error: Error,
        reason: Option<RetryReason>,
        asked: Option<Duration>,
    },
}

/// What a caller does with a wait the server asked for (`Retry-After`).
#[derive(Clone, Copy)]
pub(crate) enum AskedWait {
    /// A wait up to the cap is kept; a longer one ends the retries (a server that asks for an
    /// hour will not be ready in a request's lifetime).
    UpTo(Duration),
    /// Every wait, asked or not, is cut to this (a download restarts from scratch anyway).
    CutTo(Duration),
}

/// A caller's own rules over the FHIR server's retry policy.
pub(crate) struct Rules<'a> {
    pub policy: &'a RetryPolicy,
    /// Attempts after the first.
    pub retries: u32,
    pub asked: AskedWait,
}

/// Why the attempts ended without a result.
pub(crate) enum Stop {
    /// An attempt failed for good, or the server asked for a longer wait than the rules allow.
    Failed(Error),
    /// Every attempt the rules allow failed; the last one's error and how many there were.
    Exhausted(Error, u32),
}

impl Stop {
    pub fn into_error(self) -> Error {
        match self {
            Stop::Failed(e) | Stop::Exhausted(e, _) => e,
        }
    }
}

/// Runs `attempt` (given the number of attempts made before it) until it is done, fails for good,
/// or the rules allow no more; between attempts it waits (the server's `Retry-After` per the
/// rules, else jittered exponential backoff), records the retry, then tells `retrying` the number
/// of the attempt about to start (from 2) and the error that made it necessary.
pub(crate) async fn with_retries<T, F: Future<Output = Attempt<T>>>(
    rules: Rules<'_>,
    mut attempt: impl FnMut(u32) -> F,
    mut retrying: impl FnMut(u32, &Error),
) -> Result<T, Stop> {
    let mut made = 0;
    loop {
        let (error, reason, asked) = match attempt(made).await {
            Attempt::Done(value) => return Ok(value),
            Attempt::Failed(error) => return Err(Stop::Failed(error)),
            Attempt::Again {
                error,
                reason,
                asked,
            } => (error, reason, asked),
        };
        made += 1;
        if made > rules.retries {
            return Err(Stop::Exhausted(error, made));
        }
        let wait = match (rules.asked, asked) {
            (AskedWait::UpTo(cap), Some(asked)) if asked > cap => {
                return Err(Stop::Failed(Error::Unavailable(summary!(
                    "the FHIR server asked to wait {} s before retrying, more than the {} s allowed",
                    asked.as_secs(),
                    cap.as_secs()
                ))));
            }
            (AskedWait::UpTo(_), Some(asked)) => asked,
            (AskedWait::CutTo(cap), asked) => asked
                .unwrap_or_else(|| backoff(rules.policy, made - 1))
                .min(cap),
            (AskedWait::UpTo(_), None) => backoff(rules.policy, made - 1),
        };
        if let Some(reason) = reason {
            telemetry::record_retry(reason);
        }
        tokio::time::sleep(wait).await;
        retrying(made + 1, &error);
    }
}
