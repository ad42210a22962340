//! Daily dose in mg from a FHIR Dosage (screening-rules.md section 3): dose quantity in mg, g or mcg,
//! or in tablets/capsules/patches times the product strength, times the administrations per day.
//! Anything that cannot be read exactly leaves the dose unknown, with the reason; nothing is guessed.

use crate::fhir::datatypes::{Dosage, FhirRatio, Quantity};
use crate::knowledge::text::{Token, ascii_lower};
use crate::ratio::Ratio;

/// How much drug one unit of the product holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strength {
    /// mg per tablet, capsule or other countable unit.
    PerUnit(Ratio),
    /// mg per mL.
    PerMl(Ratio),
    /// mg delivered per 24 hours (transdermal systems).
    PerDay(Ratio),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DoseProblem {
    Unknown(String),
}

impl DoseProblem {
    fn unknown(reason: impl Into<String>) -> DoseProblem {
        DoseProblem::Unknown(reason.into())
    }
    pub fn reason(&self) -> &str {
        let DoseProblem::Unknown(r) = self;
        r
    }
}

enum Unit {
    Mass(Ratio),
    MassPerDay(Ratio),
    Count,
    Millilitre,
}

/// Longer than any unit or timing code [`unit`] and [`administrations_per_day`] know: a longer key
/// is not recognised without being lower-cased.
const UNIT_KEY_MAX: usize = 32;

/// mg in one of the unit, for mass units; or the kind of unit.
fn unit(key: &str) -> Option<Unit> {
    let mut buf = [0; UNIT_KEY_MAX];
    let lower = ascii_lower(key.trim(), &mut buf)?;
    let mass = |mg: Ratio| Some(Unit::Mass(mg));
    match lower {
        "mg" | "milligram" | "milligrams" => mass(Ratio::ONE),
        "g" | "gram" | "grams" => mass(Ratio::integer(1000)),
        "mcg" | "ug" | "µg" | "microgram" | "micrograms" => mass(Ratio::new(1, 1000)?),
        "mg/d" | "mg/day" | "mg/(24.h)" | "mg/24h" | "mg/24 h" | "mg/24.h" | "mg/24hr"
        | "mg/24 hr" => Some(Unit::MassPerDay(Ratio::ONE)),
        "ml" | "milliliter" | "millilitre" | "milliliters" | "millilitres" => {
            Some(Unit::Millilitre)
        }
        "1"
        | "{each}"
        | "each"
        | "ea"
        | "tab"
        | "tabs"
        | "tablet"
        | "tablets"
        | "{tbl}"
        | "{tablet}"
        | "{tablets}"
        | "{tab}"
        | "cap"
        | "caps"
        | "capsule"
        | "capsules"
        | "{cap}"
        | "{capsule}"
        | "{capsules}"
        | "patch"
        | "patches"
        | "{patch}"
        | "system"
        | "{system}"
        | "{transdermal system}" => Some(Unit::Count),
        _ => None,
    }
}

fn quantity(q: &Quantity) -> Result<Ratio, DoseProblem> {
    let text = &q
        .value
        .as_ref()
        .ok_or_else(|| DoseProblem::unknown("the dose quantity has no value"))?
        .0;
    let value = Ratio::parse_decimal(text).map_err(|e| {
        DoseProblem::unknown(format!("the dose value is not a usable number ({e})"))
    })?;
    if value.is_zero() {
        return Err(DoseProblem::unknown("the dose value is zero"));
    }
    Ok(value)
}

/// The daily dose in mg for one dosage, with the product's strength when the dose is in units.
pub fn daily_dose(dosage: &Dosage, strength: Option<Strength>) -> Result<Ratio, DoseProblem> {
    if dosage.as_needed() {
        return Err(DoseProblem::unknown("taken as needed"));
    }
    let q = dosage
        .dose_and_rate
        .iter()
        .find_map(|d| d.dose_quantity.as_ref())
        .ok_or_else(|| DoseProblem::unknown("no structured dose quantity"))?;
    let value = quantity(q)?;
    let key = q.unit_key().unwrap_or("");
    let overflow = || DoseProblem::unknown("the dose is too large to compute");
    let per_administration = match unit(key) {
        Some(Unit::Mass(mg)) => value.checked_mul(mg).ok_or_else(overflow)?,
        Some(Unit::MassPerDay(mg)) => return value.checked_mul(mg).ok_or_else(overflow),
        Some(Unit::Count) => match strength {
            Some(Strength::PerUnit(mg)) => value.checked_mul(mg).ok_or_else(overflow)?,
            // A patch delivers its rate for as long as it is worn: the frequency of changes does not
            // multiply it.
            Some(Strength::PerDay(mg)) => return value.checked_mul(mg).ok_or_else(overflow),
            _ => {
                return Err(DoseProblem::unknown(
                    "dose in tablets or capsules but the product strength is unknown",
                ));
            }
        },
        Some(Unit::Millilitre) => match strength {
            Some(Strength::PerMl(mg)) => value.checked_mul(mg).ok_or_else(overflow)?,
            _ => {
                return Err(DoseProblem::unknown(
                    "dose in mL but the concentration is unknown",
                ));
            }
        },
        None if key.is_empty() => {
            return Err(DoseProblem::unknown("the dose quantity has no unit"));
        }
        None => {
            return Err(DoseProblem::unknown(format!(
                "dose unit {key:?} is not recognised"
            )));
        }
    };
    let per_day = administrations_per_day(dosage)?;
    per_administration.checked_mul(per_day).ok_or_else(overflow)
}

/// `timing.repeat` frequency / period (h, d, wk, mo), else a `timing.code` such as BID.
pub fn administrations_per_day(dosage: &Dosage) -> Result<Ratio, DoseProblem> {
    let timing = dosage
        .timing
        .as_ref()
        .ok_or_else(|| DoseProblem::unknown("no dosing frequency"))?;
    if let Some(repeat) = &timing.repeat
        && (repeat.frequency.is_some() || repeat.period.is_some())
    {
        let frequency = repeat.frequency.unwrap_or(1);
        if frequency == 0 {
            return Err(DoseProblem::unknown("dosing frequency is zero"));
        }
        let period = match &repeat.period {
            Some(p) => Ratio::parse_decimal(&p.0)
                .ok()
                .filter(|r| !r.is_zero())
                .ok_or_else(|| {
                    DoseProblem::unknown("the dosing period is not a positive number")
                })?,
            None => Ratio::ONE,
        };
        let unit_days = match repeat.period_unit.as_deref().unwrap_or("d") {
            "h" => Ratio::new(1, 24),
            "d" => Some(Ratio::ONE),
            "wk" => Some(Ratio::integer(7)),
            // A calendar month has no fixed length; 30 days is the pharmacy convention for supply.
            "mo" => Some(Ratio::integer(30)),
            other => {
                return Err(DoseProblem::unknown(format!(
                    "dosing period unit {other:?} is not used for daily doses"
                )));
            }
        }
        .expect("non-zero constants");
        let period_days = period
            .checked_mul(unit_days)
            .ok_or_else(|| DoseProblem::unknown("the dosing period is too large"))?;
        return Ratio::integer(u64::from(frequency))
            .checked_div(period_days)
            .ok_or_else(|| DoseProblem::unknown("the dosing period is not usable"));
    }
    let code = timing
        .code
        .as_ref()
        .and_then(|c| c.coding.iter().find_map(|c| c.code.as_deref()))
        .ok_or_else(|| DoseProblem::unknown("no dosing frequency"))?;
    let mut buf = [0; UNIT_KEY_MAX];
    let per_day = match ascii_lower(code, &mut buf).unwrap_or_default() {
        "qd" | "am" | "pm" | "qhs" | "hs" | "daily" => Ratio::ONE,
        "bid" | "q12h" => Ratio::integer(2),
        "tid" | "q8h" => Ratio::integer(3),
        "qid" | "q6h" => Ratio::integer(4),
        "q4h" => Ratio::integer(6),
        "qod" => Ratio::new(1, 2).expect("constant"),
        "wk" => Ratio::new(1, 7).expect("constant"),
        _ => {
            return Err(DoseProblem::unknown(format!(
                "timing code {:?} is not recognised",
                code.to_ascii_uppercase()
            )));
        }
    };
    Ok(per_day)
}

/// Strength from `Medication.ingredient.strength` (e.g. 50 mg / 1 tablet, 4 mg / 1 mL).
pub fn strength_from_ratio(r: &FhirRatio) -> Option<Strength> {
    let num = r.numerator.as_ref()?;
    let Some(Unit::Mass(mg)) = unit(num.unit_key()?) else {
        return None;
    };
    let amount = quantity(num).ok()?.checked_mul(mg)?;
    let (den_value, den_unit) = match &r.denominator {
        Some(den) => (quantity(den).ok()?, den.unit_key().unwrap_or("1")),
        None => (Ratio::ONE, "1"),
    };
    let per = amount.checked_div(den_value)?;
    let mut buf = [0; UNIT_KEY_MAX];
    match ascii_lower(den_unit.trim(), &mut buf)? {
        "h" | "hr" | "hour" => Some(Strength::PerDay(per.checked_mul(Ratio::integer(24))?)),
        "d" | "day" | "24.h" | "24 h" => Some(Strength::PerDay(per)),
        key => match unit(key) {
            Some(Unit::Count) => Some(Strength::PerUnit(per)),
            Some(Unit::Millilitre) => Some(Strength::PerMl(per)),
            _ => None,
        },
    }
}

/// Strength from product text after a drug's name: "50 MG", "4 MG/ML", "0.25 MG/HR", "6 MG/24HR".
pub fn strength_from_tokens(tokens: &[Token<'_>]) -> Option<Strength> {
    let at = tokens.windows(2).position(|w| {
        matches!((&w[0], &w[1]), (Token::Number(_), Token::Word(u)) if matches!(unit(u), Some(Unit::Mass(_))))
    })?;
    let (Token::Number(n), Token::Word(u)) = (&tokens[at], &tokens[at + 1]) else {
        return None;
    };
    let Some(Unit::Mass(mg)) = unit(u) else {
        return None;
    };
    let amount = Ratio::parse_decimal(n).ok()?.checked_mul(mg)?;
    let rest = &tokens[at + 2..];
    let word = |i: usize| match rest.get(i) {
        Some(Token::Word(w)) => Some(*w),
        _ => None,
    };
    if !matches!(rest.first(), Some(Token::Slash)) {
        return Some(Strength::PerUnit(amount));
    }
    match (rest.get(1), word(1), word(2)) {
        (_, Some("ml"), _) => Some(Strength::PerMl(amount)),
        (_, Some("hr" | "h"), _) => Some(Strength::PerDay(amount.checked_mul(Ratio::integer(24))?)),
        (_, Some("d" | "day"), _) => Some(Strength::PerDay(amount)),
        (Some(Token::Number("24")), _, Some("hr" | "h")) => Some(Strength::PerDay(amount)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::text::tokenize;
    use serde_json::json;

    fn dosage(v: serde_json::Value) -> Dosage {
        serde_json::from_value(v).unwrap()
    }

    fn mg(text: &str) -> Ratio {
        Ratio::parse_decimal(text).unwrap()
    }

    fn daily(d: serde_json::Value, strength: Option<Strength>) -> Result<Ratio, DoseProblem> {
        daily_dose(&dosage(d), strength)
    }

    fn once_daily(value: serde_json::Value, unit: &str) -> serde_json::Value {
        json!({"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
               "doseAndRate": [{"doseQuantity": {"value": value, "unit": unit}}]})
    }

    #[test]
    fn converts_grams_and_micrograms_exactly() {
        assert_eq!(daily(once_daily(json!(100), "mg"), None), Ok(mg("100")));
        assert_eq!(daily(once_daily(json!(0.1), "g"), None), Ok(mg("100")));
        assert_eq!(daily(once_daily(json!(25), "mcg"), None), Ok(mg("0.025")));
        assert_eq!(daily(once_daily(json!("50"), "MG"), None), Ok(mg("50")));
    }

    #[test]
    fn multiplies_tablets_by_strength_and_frequency() {
        let two_tabs_bid = json!({"timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": 2, "unit": "tablet", "code": "{tbl}"}}]});
        assert_eq!(
            daily(two_tabs_bid, Some(Strength::PerUnit(mg("50")))),
            Ok(mg("200"))
        );
        let tid_by_code = json!({"timing": {"code": {"coding": [{"code": "TID"}]}},
            "doseAndRate": [{"doseQuantity": {"value": 25, "unit": "mg"}}]});
        assert_eq!(daily(tid_by_code, None), Ok(mg("75")));
        let every_8h = json!({"timing": {"repeat": {"frequency": 1, "period": 8, "periodUnit": "h"}},
            "doseAndRate": [{"doseQuantity": {"value": 37.5, "unit": "mg"}}]});
        assert_eq!(daily(every_8h, None), Ok(mg("112.5")));
    }

    #[test]
    fn weekly_doses_are_divided_by_seven() {
        let weekly = json!({"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}},
            "doseAndRate": [{"doseQuantity": {"value": 90, "unit": "mg"}}]});
        let d = daily(weekly, None).unwrap();
        assert_eq!(d, mg("90").checked_div(Ratio::integer(7)).unwrap());
        assert!(d < mg("20"));
    }

    #[test]
    fn patches_deliver_their_rate_per_day() {
        let patch = json!({"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "patch"}}]});
        let strength = strength_from_tokens(&tokenize("selegiline 0.375 mg/hr transdermal system"));
        assert_eq!(daily(patch, strength), Ok(mg("9")));
        assert_eq!(daily(once_daily(json!(6), "mg/(24.h)"), None), Ok(mg("6")));
    }

    #[test]
    fn unknown_rather_than_guessed() {
        let cases = [
            (
                json!({"asNeededBoolean": true, "doseAndRate": [{"doseQuantity": {"value": 50, "unit": "mg"}}]}),
                "as needed",
            ),
            (
                json!({"doseAndRate": [{"doseQuantity": {"value": 50, "unit": "mg"}}]}),
                "frequency",
            ),
            (json!({"text": "50 mg daily"}), "dose quantity"),
            (once_daily(json!(1), "tablet"), "strength is unknown"),
            (once_daily(json!(5), "puffs"), "not recognised"),
            (once_daily(json!(-5), "mg"), "negative"),
            (once_daily(json!(0), "mg"), "zero"),
            (once_daily(json!("fifty"), "mg"), "not a decimal"),
        ];
        for (d, why) in cases {
            let err = daily(d.clone(), None).expect_err(&d.to_string());
            assert!(
                err.reason().contains(why),
                "{d}: {:?} should mention {why}",
                err.reason()
            );
        }
    }

    #[test]
    fn reads_strengths_from_product_text_and_ratios() {
        let s = |t: &str| strength_from_tokens(&tokenize(&crate::knowledge::text::lower(t)));
        assert_eq!(
            s("sertraline 50 MG Oral Tablet"),
            Some(Strength::PerUnit(mg("50")))
        );
        assert_eq!(
            s("fluoxetine 4 MG/ML Oral Solution"),
            Some(Strength::PerMl(mg("4")))
        );
        assert_eq!(s("Emsam 6 mg/24 hr patch"), Some(Strength::PerDay(mg("6"))));
        assert_eq!(
            s("24 HR selegiline 0.25 MG/HR"),
            Some(Strength::PerDay(mg("6")))
        );
        assert_eq!(s("Zoloft tablets"), None);
        let ratio: FhirRatio = serde_json::from_value(json!({
            "numerator": {"value": 100, "unit": "mg"}, "denominator": {"value": 1, "unit": "TAB"}}))
        .unwrap();
        assert_eq!(
            strength_from_ratio(&ratio),
            Some(Strength::PerUnit(mg("100")))
        );
    }
}
