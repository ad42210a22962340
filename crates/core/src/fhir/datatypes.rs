//! FHIR R4 data types, only the elements screening reads. Unknown elements, `_field` primitive
//! extensions and vendor extensions are ignored by design (serde skips unknown keys).

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny};

/// `modifierExtension`: extensions that change the meaning of the element holding them. Only
/// their presence is read: the engine interprets none, and FHIR forbids ignoring one.
pub type ModifierExtensions = Vec<IgnoredAny>;

/// `meta`: what orders two versions of one resource.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub version_id: Option<String>,
    pub last_updated: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Coding {
    pub system: Option<String>,
    pub code: Option<String>,
    pub display: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct CodeableConcept {
    #[serde(default)]
    pub coding: Vec<Coding>,
    pub text: Option<String>,
}

impl CodeableConcept {
    /// Codes of this concept in one of the given systems.
    pub fn codes_in<'a>(&'a self, systems: &'a [String]) -> impl Iterator<Item = &'a str> + 'a {
        self.coding
            .iter()
            .filter_map(move |c| match (&c.system, &c.code) {
                (Some(s), Some(code)) if systems.iter().any(|x| x == s) => Some(code.as_str()),
                _ => None,
            })
    }

    /// Human-readable strings: `text` and every `coding.display`.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.text
            .iter()
            .map(String::as_str)
            .chain(self.coding.iter().filter_map(|c| c.display.as_deref()))
    }

    /// The first `code` of any coding, for status-like concepts (clinicalStatus, verificationStatus).
    pub fn first_code(&self) -> Option<&str> {
        self.coding.iter().find_map(|c| c.code.as_deref())
    }

    pub fn has_code_without_system(&self) -> bool {
        self.coding
            .iter()
            .any(|c| c.system.is_none() && c.code.is_some())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Reference {
    pub reference: Option<String>,
    pub display: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Period {
    pub start: Option<String>,
    pub end: Option<String>,
}

/// A FHIR decimal kept as the text it was written as, so that doses stay exact. Accepts a JSON
/// number (the R4 JSON form) or a string (sent by some systems); anything else is an error.
#[derive(Debug, Clone, PartialEq)]
pub struct Decimal(pub String);

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A visitor rather than a `serde_json::Value`: the number is written out as serde_json
        // writes a `Number` (the same text), without building a tree first.
        struct DecimalText;
        impl serde::de::Visitor<'_> for DecimalText {
            type Value = Decimal;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a decimal")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Decimal, E> {
                Ok(Decimal(serde_json::Number::from(v).to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Decimal, E> {
                Ok(Decimal(serde_json::Number::from(v).to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Decimal, E> {
                serde_json::Number::from_f64(v)
                    .map(|n| Decimal(n.to_string()))
                    .ok_or_else(|| {
                        E::custom("expected a decimal, found a number that is not finite")
                    })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Decimal, E> {
                Ok(Decimal(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Decimal, E> {
                Ok(Decimal(v))
            }
        }
        deserializer.deserialize_any(DecimalText)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Quantity {
    pub value: Option<Decimal>,
    pub unit: Option<String>,
    pub system: Option<String>,
    pub code: Option<String>,
}

impl Quantity {
    /// The unit as a machine would compare it: the UCUM `code` when present, else the `unit` text.
    pub fn unit_key(&self) -> Option<&str> {
        self.code.as_deref().or(self.unit.as_deref())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct FhirRatio {
    pub numerator: Option<Quantity>,
    pub denominator: Option<Quantity>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimingRepeat {
    pub bounds_period: Option<Period>,
    pub frequency: Option<u32>,
    pub period: Option<Decimal>,
    pub period_unit: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timing {
    pub repeat: Option<TimingRepeat>,
    pub code: Option<CodeableConcept>,
    #[serde(default)]
    pub modifier_extension: ModifierExtensions,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DoseAndRate {
    pub dose_quantity: Option<Quantity>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dosage {
    pub text: Option<String>,
    pub timing: Option<Timing>,
    pub as_needed_boolean: Option<bool>,
    pub as_needed_codeable_concept: Option<CodeableConcept>,
    pub route: Option<CodeableConcept>,
    #[serde(default)]
    pub dose_and_rate: Vec<DoseAndRate>,
    #[serde(default)]
    pub modifier_extension: ModifierExtensions,
}

impl Dosage {
    pub fn as_needed(&self) -> bool {
        self.as_needed_boolean == Some(true) || self.as_needed_codeable_concept.is_some()
    }

    /// Whether this dosage, or its timing, carries a modifier extension.
    pub fn is_modified(&self) -> bool {
        !self.modifier_extension.is_empty()
            || self
                .timing
                .as_ref()
                .is_some_and(|t| !t.modifier_extension.is_empty())
    }
}

/// An element that is read if it can be, and otherwise kept as "present but unreadable", so that one
/// malformed dosage makes the dose unknown instead of discarding the whole prescription.
#[derive(Debug, Clone)]
pub enum Lenient<T> {
    Read(T),
    Unreadable,
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Kept as JSON text, not a `Value` tree: cheaper, and the element is parsed only once more.
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        Ok(serde_json::from_str(raw.get()).map_or(Lenient::Unreadable, Lenient::Read))
    }
}

impl<T> Lenient<T> {
    pub fn read(&self) -> Option<&T> {
        match self {
            Lenient::Read(t) => Some(t),
            Lenient::Unreadable => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decimal(json: &str) -> Result<String, serde_json::Error> {
        serde_json::from_str::<Decimal>(json).map(|d| d.0)
    }

    #[test]
    fn a_decimal_keeps_the_text_serde_json_gives_its_number_and_a_string_as_written() {
        // The texts a `serde_json::Value` gave before the visitor: doses compare the same.
        for (json, text) in [
            ("50", "50"),
            ("-3", "-3"),
            ("2.5", "2.5"),
            ("0.1", "0.1"),
            ("1e2", "100.0"),
            ("12.50", "12.5"),
            ("\"0.10\"", "0.10"),
            ("\"a\\u0031\"", "a1"),
        ] {
            let before = match serde_json::from_str::<serde_json::Value>(json).unwrap() {
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::String(s) => s,
                other => panic!("{other}"),
            };
            assert_eq!(before, text, "{json}");
            assert_eq!(decimal(json).unwrap(), before, "{json}");
        }
    }

    #[test]
    fn a_decimal_of_another_json_kind_is_an_error() {
        for json in ["true", "null", "[1]", "{\"value\":1}"] {
            assert!(decimal(json).is_err(), "{json}");
        }
    }
}
