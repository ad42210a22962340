//! Limits per caller (issue 17): a token bucket for each caller and permission, so that one
//! runaway client cannot exhaust the FHIR server while the others go on. Settings per scope:
//!
//! ```toml
//! [auth.rate.limits."screening.read"]
//! per_second = 20.0
//! burst = 40
//! ```
//!
//! A permission without a limit is not limited. A call over the limit is refused with how long
//! until a token is back ([`Limited::retry_after`]), which the transport sends as a retry hint with
//! `RESOURCE_EXHAUSTED`. The number of buckets is bounded (`max_callers`): a full bucket is the
//! same as none, so idle callers' buckets are dropped first; if every bucket is in use, a new
//! caller is refused for a second rather than let in unlimited.

use super::permission::Permission;
use crate::error::{Error, Result};
use crate::summary;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BucketSettings {
    /// Tokens added per second.
    pub per_second: f64,
    /// The most tokens a bucket holds (the burst a caller may send at once).
    pub burst: u32,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateSettings {
    /// Per scope name (`screening.read`, ...).
    pub limits: BTreeMap<String, BucketSettings>,
    pub max_callers: usize,
}

impl Default for RateSettings {
    fn default() -> Self {
        RateSettings {
            limits: BTreeMap::new(),
            max_callers: 10_000,
        }
    }
}

/// A call over its caller's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub permission: Permission,
    /// When a token is back.
    pub retry_after: Duration,
}

impl From<Limited> for Error {
    fn from(l: Limited) -> Error {
        Error::ResourceExhausted(summary!(
            "the caller's rate limit for {} is reached; retry in {} ms",
            l.permission,
            u64::try_from(l.retry_after.as_millis()).unwrap_or(u64::MAX)
        ))
    }
}

pub struct RateLimiter {
    limits: HashMap<Permission, BucketSettings>,
    max_callers: usize,
    buckets: Mutex<HashMap<(String, Permission), Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub fn new(settings: &RateSettings) -> Result<RateLimiter> {
        let mut limits = HashMap::new();
        for (scope, bucket) in &settings.limits {
            let permission = Permission::from_scope(scope).ok_or(Error::NotConfigured(
                "auth.rate.limits names a scope that is not a permission of trdscreen".into(),
            ))?;
            if !(bucket.per_second.is_finite() && bucket.per_second > 0.0) || bucket.burst == 0 {
                return Err(Error::NotConfigured(summary!(
                    "auth.rate.limits.{}: per_second must be above 0 and burst at least 1",
                    permission
                )));
            }
            limits.insert(permission, *bucket);
        }
        Ok(RateLimiter {
            limits,
            max_callers: settings.max_callers.max(1),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes `cost` tokens from the caller's bucket for `permission`, now.
    pub fn check(&self, caller: &str, permission: Permission, cost: u32) -> Result<(), Limited> {
        self.check_at(Instant::now(), caller, permission, cost)
    }

    /// [`check`](Self::check) at a given instant (tests).
    pub fn check_at(
        &self,
        now: Instant,
        caller: &str,
        permission: Permission,
        cost: u32,
    ) -> Result<(), Limited> {
        let Some(limit) = self.limits.get(&permission) else {
            return Ok(());
        };
        let burst = f64::from(limit.burst);
        let refill = |b: &Bucket| {
            (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * limit.per_second)
                .min(burst)
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let key = (caller.to_owned(), permission);
        if !buckets.contains_key(&key) && buckets.len() >= self.max_callers {
            buckets.retain(|(_, p), b| {
                let full = self.limits.get(p).is_none_or(|l| {
                    b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * l.per_second
                        >= f64::from(l.burst)
                });
                !full
            });
            if buckets.len() >= self.max_callers {
                return Err(Limited {
                    permission,
                    retry_after: Duration::from_secs(1),
                });
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let tokens = refill(bucket);
        let cost = f64::from(cost);
        if tokens >= cost {
            *bucket = Bucket {
                tokens: tokens - cost,
                at: now,
            };
            Ok(())
        } else {
            *bucket = Bucket { tokens, at: now };
            let wait = if cost > burst {
                f64::MAX
            } else {
                (cost - tokens) / limit.per_second
            };
            Err(Limited {
                permission,
                retry_after: Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: f64, burst: u32, max_callers: usize) -> RateLimiter {
        RateLimiter::new(&RateSettings {
            limits: BTreeMap::from([(
                "screening.read".to_owned(),
                BucketSettings { per_second, burst },
            )]),
            max_callers,
        })
        .unwrap()
    }

    #[test]
    fn two_callers_at_once_each_have_their_own_bucket() {
        let l = limiter(1.0, 3, 100);
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(
                l.check_at(t, "runaway", Permission::ScreeningRead, 1),
                Ok(())
            );
        }
        let refused = l
            .check_at(t, "runaway", Permission::ScreeningRead, 1)
            .unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        assert!(Error::from(refused).to_string().starts_with(
            "resource exhausted: the caller's rate limit for screening.read is reached; retry in 1000 ms"
        ));
        // The other caller is not held back by the runaway one.
        for _ in 0..3 {
            assert_eq!(
                l.check_at(t, "clinic", Permission::ScreeningRead, 1),
                Ok(())
            );
        }
        // A permission without a limit is not limited.
        for _ in 0..100 {
            assert_eq!(
                l.check_at(t, "runaway", Permission::BundleEvaluate, 1),
                Ok(())
            );
        }
    }

    #[test]
    fn tokens_come_back_at_the_configured_rate_up_to_the_burst() {
        let l = limiter(2.0, 2, 100);
        let t = Instant::now();
        assert!(l.check_at(t, "a", Permission::ScreeningRead, 2).is_ok());
        let refused = l
            .check_at(t, "a", Permission::ScreeningRead, 1)
            .unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_millis(500));
        let later = t + Duration::from_millis(500);
        assert!(l.check_at(later, "a", Permission::ScreeningRead, 1).is_ok());
        assert!(
            l.check_at(later, "a", Permission::ScreeningRead, 1)
                .is_err()
        );
        // A long pause fills the bucket to its burst, no more.
        let much_later = t + Duration::from_secs(3600);
        assert!(
            l.check_at(much_later, "a", Permission::ScreeningRead, 2)
                .is_ok()
        );
        assert!(
            l.check_at(much_later, "a", Permission::ScreeningRead, 1)
                .is_err()
        );
        // A cost above the burst never fits.
        assert_eq!(
            l.check_at(much_later, "b", Permission::ScreeningRead, 3)
                .unwrap_err()
                .retry_after,
            Duration::MAX
        );
    }

    #[test]
    fn idle_callers_make_room_and_a_full_table_refuses_newcomers() {
        let l = limiter(1.0, 1, 2);
        let t = Instant::now();
        assert!(l.check_at(t, "a", Permission::ScreeningRead, 1).is_ok());
        assert!(l.check_at(t, "b", Permission::ScreeningRead, 1).is_ok());
        // Both buckets are in use (empty): a third caller waits.
        assert!(l.check_at(t, "c", Permission::ScreeningRead, 1).is_err());
        // Once they have refilled, they are dropped and c gets in.
        let later = t + Duration::from_secs(5);
        assert!(l.check_at(later, "c", Permission::ScreeningRead, 1).is_ok());
    }

    #[test]
    fn limits_must_name_a_permission_and_be_positive() {
        let bad = |scope: &str, per_second: f64, burst: u32| {
            RateLimiter::new(&RateSettings {
                limits: BTreeMap::from([(scope.to_owned(), BucketSettings { per_second, burst })]),
                max_callers: 10,
            })
            .is_err()
        };
        assert!(bad("system/*.read", 1.0, 1));
        assert!(bad("screening.read", 0.0, 1));
        assert!(bad("screening.read", f64::NAN, 1));
        assert!(bad("screening.read", 1.0, 0));
        assert!(!bad("population.screen", 0.5, 1));
    }
}
