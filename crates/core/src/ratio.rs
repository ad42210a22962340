//! Exact, non-negative rational numbers for doses.
//!
//! Doses are compared against thresholds ("sertraline >= 50 mg/day"), so they must not pass through
//! binary floating point: `0.1 g` must be exactly `100 mg`, and `90 mg weekly` exactly `90/7 mg/day`.

use std::cmp::Ordering;
use std::fmt;

#[derive(Debug, Clone, Copy)]
pub struct Ratio {
    num: u128,
    den: u128,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RatioError {
    #[error("not a decimal number")]
    NotADecimal,
    #[error("negative")]
    Negative,
    #[error("too large")]
    Overflow,
}

impl Ratio {
    pub const ZERO: Ratio = Ratio { num: 0, den: 1 };
    pub const ONE: Ratio = Ratio { num: 1, den: 1 };

    pub fn new(num: u128, den: u128) -> Option<Ratio> {
        if den == 0 {
            return None;
        }
        if den == 1 {
            return Some(Ratio { num, den });
        }
        if let (Ok(n), Ok(d)) = (u64::try_from(num), u64::try_from(den)) {
            let g = gcd64(n, d);
            return Some(Ratio {
                num: u128::from(n / g),
                den: u128::from(d / g),
            });
        }
        let g = gcd(num, den);
        Some(Ratio {
            num: num / g,
            den: den / g,
        })
    }

    pub fn integer(n: u64) -> Ratio {
        Ratio {
            num: u128::from(n),
            den: 1,
        }
    }

    /// Parses a decimal as JSON writes it (`37.5`, `100`, `1e-3`), exactly.
    pub fn parse_decimal(text: &str) -> Result<Ratio, RatioError> {
        if let Some(plain) = Ratio::parse_plain(text) {
            return Ok(plain);
        }
        let text = text.trim();
        if text.starts_with('-') {
            return Err(RatioError::Negative);
        }
        let text = text.strip_prefix('+').unwrap_or(text);
        let (mantissa, exponent) = match text.find(['e', 'E']) {
            Some(i) => (
                &text[..i],
                text[i + 1..]
                    .parse::<i32>()
                    .map_err(|_| RatioError::NotADecimal)?,
            ),
            None => (text, 0),
        };
        let (whole, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && frac.is_empty()) || !digits_ok(whole) || !digits_ok(frac) {
            return Err(RatioError::NotADecimal);
        }
        // The significant digits, whole then fraction, without building a string.
        let mut num: u128 = 0;
        let mut significant = 0;
        for b in whole.bytes().chain(frac.bytes()) {
            if significant == 0 && b == b'0' {
                continue;
            }
            significant += 1;
            if significant > 30 {
                return Err(RatioError::Overflow);
            }
            num = num * 10 + u128::from(b - b'0');
        }
        let scale = exponent - frac.len() as i32;
        if scale.unsigned_abs() > 30 {
            return Err(RatioError::Overflow);
        }
        let pow = 10u128.pow(scale.unsigned_abs());
        let r = if scale >= 0 {
            Ratio::new(num.checked_mul(pow).ok_or(RatioError::Overflow)?, 1)
        } else {
            Ratio::new(num, pow)
        };
        r.ok_or(RatioError::Overflow)
    }

    /// The common shape of a FHIR decimal, digits with at most one point (`37.5`, `100`), short
    /// enough for 64 bits; `None` for anything else, which [`Ratio::parse_decimal`] reads in full.
    fn parse_plain(text: &str) -> Option<Ratio> {
        const MAX_DIGITS: usize = 18;
        let bytes = text.as_bytes();
        if bytes.len() > MAX_DIGITS {
            return None;
        }
        let (mut num, mut digits, mut point) = (0u64, 0usize, None);
        for (i, b) in bytes.iter().enumerate() {
            match b {
                b'0'..=b'9' => {
                    num = num * 10 + u64::from(b - b'0');
                    digits += 1;
                }
                b'.' if point.is_none() => point = Some(i),
                _ => return None,
            }
        }
        if digits == 0 {
            return None;
        }
        let decimals = point.map_or(0, |p| bytes.len() - p - 1) as u32;
        Ratio::new(u128::from(num), u128::from(10u64.pow(decimals)))
    }

    pub fn is_zero(self) -> bool {
        self.num == 0
    }

    pub fn checked_mul(self, other: Ratio) -> Option<Ratio> {
        if let Some([a, b, c, d]) = self.small_terms(other) {
            // Products of 64-bit terms cannot overflow 128 bits.
            if b == 1 && d == 1 {
                return Some(Ratio {
                    num: u128::from(a) * u128::from(c),
                    den: 1,
                });
            }
            let (g1, g2) = (gcd64(a, d), gcd64(c, b));
            return Ratio::new(
                u128::from(a / g1) * u128::from(c / g2),
                u128::from(b / g2) * u128::from(d / g1),
            );
        }
        // Cross-reduce first so realistic doses never come near overflow.
        let g1 = gcd(self.num, other.den).max(1);
        let g2 = gcd(other.num, self.den).max(1);
        let num = (self.num / g1).checked_mul(other.num / g2)?;
        let den = (self.den / g2).checked_mul(other.den / g1)?;
        Ratio::new(num, den)
    }

    pub fn checked_div(self, other: Ratio) -> Option<Ratio> {
        if other.num == 0 {
            return None;
        }
        self.checked_mul(Ratio {
            num: other.den,
            den: other.num,
        })
    }

    /// For display and JSON only; comparisons stay exact.
    pub fn to_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// Both terms of both ratios when all four fit in 64 bits (the usual case for doses), so that the
    /// arithmetic avoids 128-bit division, which is a slow library call.
    fn small_terms(self, other: Ratio) -> Option<[u64; 4]> {
        Some([
            u64::try_from(self.num).ok()?,
            u64::try_from(self.den).ok()?,
            u64::try_from(other.num).ok()?,
            u64::try_from(other.den).ok()?,
        ])
    }

    /// Rounded to `places` decimals, for display.
    pub fn rounded(self, places: u32) -> f64 {
        let scale = 10f64.powi(places as i32);
        (self.to_f64() * scale).round() / scale
    }
}

impl PartialEq for Ratio {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ratio {}
impl PartialOrd for Ratio {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ratio {
    fn cmp(&self, other: &Self) -> Ordering {
        if let Some([a, b, c, d]) = self.small_terms(*other) {
            return (u128::from(a) * u128::from(d)).cmp(&(u128::from(c) * u128::from(b)));
        }
        match (
            self.num.checked_mul(other.den),
            other.num.checked_mul(self.den),
        ) {
            (Some(a), Some(b)) => a.cmp(&b),
            // Only reachable with absurd magnitudes; fall back to an approximate order.
            _ => self.to_f64().total_cmp(&other.to_f64()),
        }
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Exact to three places, half away from zero, without going through a float.
        if let (Ok(num), Ok(den)) = (u64::try_from(self.num), u64::try_from(self.den))
            && let Some(twice) = num.checked_mul(2000)
        {
            return write_thousandths(f, (twice / den).div_ceil(2));
        }
        let Some(thousandths) = self
            .num
            .checked_mul(2000)
            .map(|twice| (twice / self.den).div_ceil(2))
        else {
            return write!(f, "{}", self.rounded(3));
        };
        let (whole, frac) = (thousandths / 1000, (thousandths % 1000) as u64);
        if frac == 0 {
            return write!(f, "{whole}");
        }
        write!(f, "{whole}")?;
        write_fraction(f, frac)
    }
}

fn write_thousandths(f: &mut fmt::Formatter<'_>, thousandths: u64) -> fmt::Result {
    let (whole, frac) = (thousandths / 1000, thousandths % 1000);
    write!(f, "{whole}")?;
    if frac == 0 {
        return Ok(());
    }
    write_fraction(f, frac)
}

/// `.5`, `.25`, `.125`: thousandths (1 to 999) without trailing zeros.
fn write_fraction(f: &mut fmt::Formatter<'_>, mut frac: u64) -> fmt::Result {
    let mut places = 3;
    while frac % 10 == 0 {
        frac /= 10;
        places -= 1;
    }
    write!(f, ".{frac:0places$}")
}

/// Euclid's GCD, in 64-bit arithmetic whenever both fit: 128-bit division is a slow library call,
/// and doses and their denominators almost always fit.
fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        if let (Ok(x), Ok(y)) = (u64::try_from(a), u64::try_from(b)) {
            return u128::from(gcd64(x, y));
        }
        (a, b) = (b, a % b);
    }
    if a == 0 { 1 } else { a }
}

fn gcd64(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    if a == 0 { 1 } else { a }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> Ratio {
        Ratio::parse_decimal(text).unwrap()
    }

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(r("37.5"), Ratio::new(75, 2).unwrap());
        assert_eq!(
            r("0.1").checked_mul(Ratio::integer(1000)).unwrap(),
            Ratio::integer(100)
        );
        assert_eq!(
            r("1e-3").checked_mul(Ratio::integer(1000)).unwrap(),
            Ratio::ONE
        );
        assert_eq!(r("2.50E1"), Ratio::integer(25));
        assert_eq!(r("007"), Ratio::integer(7));
    }

    #[test]
    fn weekly_dose_divides_exactly() {
        let daily = r("90").checked_div(Ratio::integer(7)).unwrap();
        assert!(daily < Ratio::integer(13) && daily > r("12.857"));
        assert_eq!(daily.to_string(), "12.857");
    }

    #[test]
    fn shows_up_to_three_places_rounding_half_up() {
        for (text, shown) in [
            ("100", "100"),
            ("37.5", "37.5"),
            ("0.001", "0.001"),
            ("0.0005", "0.001"),
            ("0.0004", "0"),
            ("1.10", "1.1"),
            ("0", "0"),
        ] {
            assert_eq!(r(text).to_string(), shown, "{text}");
        }
        assert_eq!(Ratio::new(2, 3).unwrap().to_string(), "0.667");
    }

    #[test]
    fn reduces_to_lowest_terms() {
        let cases = [
            (12, 18, 2, 3),
            (0, 5, 0, 1),
            (7, 7, 1, 1),
            (1 << 100, 1 << 98, 4, 1),
        ];
        for (n, d, num, den) in cases {
            let q = Ratio::new(n, d).unwrap();
            assert_eq!((q.num, q.den), (num, den), "{n}/{d}");
        }
    }

    #[test]
    fn plain_decimals_read_as_the_general_parser_reads_them() {
        for text in [
            "5",
            "5.",
            ".5",
            "007",
            "37.50",
            "0",
            "0.000",
            "123456789012345678",
        ] {
            let plain = Ratio::parse_plain(text).expect(text);
            let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
            let digits = format!("{whole}{frac}");
            let general = Ratio::new(
                digits.parse::<u128>().unwrap(),
                10u128.pow(frac.len() as u32),
            );
            assert_eq!(
                (plain.num, plain.den),
                general.map(|g| (g.num, g.den)).unwrap()
            );
        }
        for other in [
            ".",
            "",
            "1e3",
            " 5",
            "-5",
            "+5",
            "1.2.3",
            "1234567890123456789",
        ] {
            assert!(Ratio::parse_plain(other).is_none(), "{other:?}");
        }
    }

    #[test]
    fn rejects_non_decimals_and_negatives() {
        assert_eq!(Ratio::parse_decimal("-5"), Err(RatioError::Negative));
        for bad in ["", ".", "abc", "1.2.3", "1e", "5 mg", "1e999"] {
            assert!(Ratio::parse_decimal(bad).is_err(), "{bad}");
        }
    }
}
