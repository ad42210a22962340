//! Reading what a server sends within a size limit: an answer read into memory is refused as soon
//! as it would pass its limit (before reading it, when `Content-Length` already says so), and a
//! download streamed to disk draws on a [`ByteBudget`] shared by all its files. Nothing from outside
//! is buffered without a bound. Time is bounded by the HTTP client's timeouts.

use bytes::{Bytes, BytesMut};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// The body is (or would become) larger than the limit.
    TooLarge { limit: u64 },
    /// The connection failed or timed out while reading.
    Transport(reqwest::Error),
}

/// The whole body of `response`, at most `limit` bytes. Held once: in one buffer of the declared
/// length, or (with no Content-Length) as the chunks received, joined at the end; a body refused
/// for its size has cost at most `limit` bytes.
pub async fn read_bounded(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let too_large = BodyError::TooLarge {
        limit: limit as u64,
    };
    match response.content_length() {
        Some(declared) if declared > limit as u64 => Err(too_large),
        Some(declared) => {
            let mut body = BytesMut::with_capacity(declared as usize);
            while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
                if body.len() + chunk.len() > limit {
                    return Err(too_large);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body.freeze())
        }
        None => {
            let mut chunks = Vec::new();
            let mut total = 0;
            while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
                total += chunk.len();
                if total > limit {
                    return Err(too_large);
                }
                chunks.push(chunk);
            }
            Ok(match chunks.len() {
                0 => Bytes::new(),
                1 => chunks.swap_remove(0),
                _ => {
                    let mut body = BytesMut::with_capacity(total);
                    for chunk in chunks {
                        body.extend_from_slice(&chunk);
                    }
                    body.freeze()
                }
            })
        }
    }
}

/// What is read of an error answer: enough for an OperationOutcome's issue codes.
pub const ERROR_HEAD: usize = 64 * 1024;

/// The first `limit` bytes of `response`'s body, the rest left unread: for error answers, of
/// which only the head (an OperationOutcome's issue codes) is wanted. A failure while reading is an
/// empty body.
pub async fn read_head(mut response: reqwest::Response, limit: usize) -> Bytes {
    let mut body = BytesMut::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    body.freeze()
}

/// Bytes a download may still write, shared by every file of it (and every attempt at a file).
#[derive(Debug)]
pub struct ByteBudget {
    limit: u64,
    used: AtomicU64,
}

/// A [`ByteBudget`] is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSpent {
    pub limit: u64,
}

impl ByteBudget {
    pub fn new(limit: u64) -> ByteBudget {
        ByteBudget {
            limit,
            used: AtomicU64::new(0),
        }
    }

    /// Spends `n` bytes, or refuses (spending nothing) when that would pass the limit.
    pub fn take(&self, n: u64) -> Result<(), BudgetSpent> {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(n).filter(|total| *total <= self.limit)
            })
            .map(|_| ())
            .map_err(|_| BudgetSpent { limit: self.limit })
    }

    /// Gives back `n` bytes of a file that was removed (a failed attempt).
    pub fn give_back(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(n))
            });
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_refuses_what_would_pass_its_limit_and_takes_back_a_removed_file() {
        let budget = ByteBudget::new(100);
        assert_eq!(budget.take(60), Ok(()));
        assert_eq!(budget.take(41), Err(BudgetSpent { limit: 100 }));
        assert_eq!(budget.used(), 60, "a refused take spends nothing");
        assert_eq!(budget.take(40), Ok(()));
        budget.give_back(60);
        assert_eq!(budget.used(), 40);
        assert_eq!(budget.take(u64::MAX), Err(BudgetSpent { limit: 100 }));
    }
}
