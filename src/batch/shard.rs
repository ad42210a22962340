//! `--shard I/N`: which part of the population one pod of an Indexed Job screens. The split is a
//! stable hash of the patient id, so N pods with the same N split any population exactly, whatever
//! order they read it in, and a rerun puts every patient in the same shard again.

use crate::fhir::PatientId;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// The whole population.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 {
            return Err("the shard count must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "the shard index must be below the count (0 to {})",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    pub fn contains(&self, patient: &PatientId) -> bool {
        self.contains_id(patient.as_str())
    }

    pub fn contains_id(&self, id: &str) -> bool {
        self.count == 1 || stable_hash(id) % u64::from(self.count) == u64::from(self.index)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| "expected a shard as I/N, e.g. 0/4".to_string())?;
        let index = index
            .trim()
            .parse()
            .map_err(|_| "the shard index is not a number".to_string())?;
        let count = count
            .trim()
            .parse()
            .map_err(|_| "the shard count is not a number".to_string())?;
        Shard::new(index, count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// 64-bit FNV-1a of the id ([`trdscreen_core::fnv`]): fixed by its definition, the same on
/// every machine and in every release.
pub use trdscreen_core::fnv::hash as stable_hash;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_refuse_nonsense() {
        assert_eq!("2/4".parse::<Shard>().unwrap(), Shard::new(2, 4).unwrap());
        for bad in ["4/4", "1/0", "x/2", "1", "-1/2", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_id_falls_in_exactly_one_shard() {
        for n in 1..=7 {
            for i in 0..500 {
                let id = format!("p{i}");
                let owners = (0..n)
                    .filter(|&s| Shard::new(s, n).unwrap().contains_id(&id))
                    .count();
                assert_eq!(owners, 1, "{id} in {n} shards");
            }
        }
    }
}
