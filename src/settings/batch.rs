//! `[batch]`: the nightly job.

use serde::{Deserialize, Serialize};

/// The nightly job (`trdscreen batch`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchSettings {
    /// Patients read and screened at once from the FHIR server (per-patient sources), and
    /// write-backs in flight at once.
    pub concurrency: usize,
    /// Patients started per second on per-patient sources (each costs about six FHIR requests);
    /// 0 for no limit. Protects the hospital's server.
    pub patients_per_second: u32,
    /// Write-backs started per second; 0 for no limit.
    pub writes_per_second: u32,
    /// Size of one bucket of the NDJSON reader, in KiB: what its second pass holds in memory per
    /// core (the text of one bucket and the records of one patient at a time). 16 MiB: at 100k
    /// and 1M patients faster than 64 MiB, with a third to a half of the peak memory
    /// (docs/performance.md).
    pub bucket_kilobytes: u64,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            concurrency: 8,
            patients_per_second: 50,
            writes_per_second: 10,
            bucket_kilobytes: 16 * 1024,
        }
    }
}
