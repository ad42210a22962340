//! A small, fast, seedable generator (xoshiro256**, seeded through splitmix64), written here so the
//! synthetic population depends on no crate's stream staying the same between versions: the same
//! seed gives the same population forever.

#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// The stream of one patient: independent of every other patient's, so a patient's record can
    /// be regenerated (or its plan read) without generating those before it.
    pub fn for_patient(seed: u64, index: u64) -> Rng {
        let mut state = seed;
        let mixed = splitmix64(&mut state) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let mut state = mixed;
        let s = [
            splitmix64(&mut state),
            splitmix64(&mut state),
            splitmix64(&mut state),
            splitmix64(&mut state),
        ];
        Rng { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A number in `0..n` (n > 0); the multiply-shift bias is below 2^-32 for the small n used here.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: i32, hi: i32) -> i32 {
        debug_assert!(lo <= hi);
        lo + self.below((hi - lo) as u64 + 1) as i32
    }

    /// True with probability `per_mille` / 1000.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1000) < u64::from(per_mille)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// One of `items`, each as likely as its weight.
    pub fn weighted<T: Copy>(&mut self, items: &[(T, u32)]) -> T {
        let total: u64 = items.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut at = self.below(total);
        for (item, weight) in items {
            if at < u64::from(*weight) {
                return *item;
            }
            at -= u64::from(*weight);
        }
        items[items.len() - 1].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let take = |mut r: Rng| (0..4).map(|_| r.next_u64()).collect::<Vec<_>>();
        assert_eq!(take(Rng::for_patient(1, 7)), take(Rng::for_patient(1, 7)));
        assert_ne!(take(Rng::for_patient(1, 7)), take(Rng::for_patient(1, 8)));
        assert_ne!(take(Rng::for_patient(1, 7)), take(Rng::for_patient(2, 7)));
    }

    #[test]
    fn ranges_stay_in_bounds_and_reach_both_ends() {
        let mut r = Rng::for_patient(3, 3);
        let seen: Vec<i32> = (0..2000).map(|_| r.range(-2, 2)).collect();
        assert!(seen.iter().all(|v| (-2..=2).contains(v)));
        assert!(seen.contains(&-2) && seen.contains(&2));
    }
}
