//! FHIR logical ids and the literal references that carry them, parsed once at the edge, so that
//! nothing further in is handed a path fragment, a query string or a terminal escape.

use serde::Serialize;
use std::fmt;

/// A FHIR logical id as R4 allows it: `[A-Za-z0-9\-.]{1,64}`, and not made of dots alone (`.` and
/// `..` match the grammar but are path segments to every URL, so no server can hold them as ids).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct FhirId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a FHIR id must be 1 to 64 characters of A-Z, a-z, 0-9, '-' and '.', not only dots")]
pub struct InvalidId;

/// Whether `text` is a FHIR id ([`FhirId`]).
pub fn is_fhir_id(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && text.bytes().any(|b| b != b'.')
}

impl FhirId {
    pub fn parse(text: &str) -> Result<FhirId, InvalidId> {
        if is_fhir_id(text) {
            Ok(FhirId(text.to_owned()))
        } else {
            Err(InvalidId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FhirId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id types of the resources the service names by id: one grammar ([`FhirId`]), one type
/// per resource type, so that a Group's id is never passed where a Patient's is expected.
macro_rules! logical_ids {
    ($($(#[$doc:meta])* $name:ident: $resource:literal;)+) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(FhirId);

        impl $name {
            /// The resource type whose id this is.
            pub const RESOURCE_TYPE: &'static str = $resource;

            pub fn parse(text: &str) -> Result<$name, InvalidId> {
                FhirId::parse(text).map($name)
            }

            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )+};
}

logical_ids! {
    /// The id of the Patient whose record is screened.
    PatientId: "Patient";
    /// A Group's id: a cohort to screen, a Group-level Bulk Data export.
    GroupId: "Group";
    /// A Medication's id, read by id when an order references one that was not sent.
    MedicationId: "Medication";
}

impl PatientId {
    /// Whether a `subject`/`patient` reference points at this patient: the Patient entry's own
    /// `fullUrl`, `Patient/{id}` (optionally `/_history/n`), or an absolute URL of it on
    /// `server_base`, the server this record comes from. An absolute URL on any other server, or
    /// on any server when the record's server is not known, names someone else: the same id on
    /// another server is another person.
    pub fn is_referenced_by(
        &self,
        reference: &str,
        patient_full_url: Option<&str>,
        server_base: Option<&str>,
    ) -> bool {
        if patient_full_url == Some(reference)
            || reference.strip_prefix("Patient/") == Some(self.as_str())
        {
            return true;
        }
        match Literal::parse(reference) {
            Some(Literal::Relative { kind, id }) => kind == "Patient" && id == self.as_str(),
            Some(Literal::Absolute { base, kind, id }) => {
                kind == "Patient"
                    && id == self.as_str()
                    && server_base.is_some_and(|own| same_base(own, base))
            }
            _ => false,
        }
    }
}

/// A literal reference, as FHIR R4 writes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Literal<'a> {
    /// `#id`: a resource contained in the referring one.
    Contained { id: &'a str },
    /// `Type/id`, with or without `/_history/n`: on the server the referring resource comes from.
    Relative { kind: &'a str, id: &'a str },
    /// `{base}/Type/id`, with or without `/_history/n`, where `base` is an `http(s)` URL.
    Absolute {
        base: &'a str,
        kind: &'a str,
        id: &'a str,
    },
}

impl<'a> Literal<'a> {
    /// Parses a reference; `None` for anything else (a `urn:uuid:` or `urn:oid:`, which only a
    /// Bundle's `fullUrl` resolves, or text that is no reference). Every id in the result is a
    /// [`FhirId`] and every type a resource type name.
    pub fn parse(reference: &'a str) -> Option<Literal<'a>> {
        if let Some(id) = reference.strip_prefix('#') {
            return is_fhir_id(id).then_some(Literal::Contained { id });
        }
        let path = match reference.split_once("/_history/") {
            Some((path, version)) => {
                if !is_fhir_id(version) {
                    return None;
                }
                path
            }
            None => reference,
        };
        let (rest, id) = path.rsplit_once('/')?;
        if !is_fhir_id(id) {
            return None;
        }
        let (base, kind) = match rest.rsplit_once('/') {
            Some((base, kind)) => (Some(base), kind),
            None => (None, rest),
        };
        if !is_resource_type(kind) {
            return None;
        }
        match base {
            None => Some(Literal::Relative { kind, id }),
            Some(base) if is_http_base(base) => Some(Literal::Absolute { base, kind, id }),
            Some(_) => None,
        }
    }
}

/// The base of an absolute `{base}/Type/id` URL (a Patient's `fullUrl`), if it is one.
pub fn base_of(url: &str) -> Option<&str> {
    match Literal::parse(url)? {
        Literal::Absolute { base, .. } => Some(base),
        _ => None,
    }
}

/// Two service base URLs name the same server: equal but for the case of the scheme and host and
/// a trailing slash.
pub fn same_base(a: &str, b: &str) -> bool {
    let split = |url: &'_ str| -> (String, String) {
        let url = url.trim_end_matches('/');
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        (
            format!(
                "{}://{}",
                scheme.to_ascii_lowercase(),
                host.to_ascii_lowercase()
            ),
            path.to_owned(),
        )
    };
    split(a) == split(b)
}

fn is_http_base(base: &str) -> bool {
    let lower = base
        .get(..8)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    (lower.starts_with("http://") || lower.starts_with("https://"))
        && base.bytes().all(|b| b.is_ascii_graphic())
}

/// A resource type name: an upper-case letter, then letters.
fn is_resource_type(kind: &str) -> bool {
    let mut bytes = kind.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_uppercase()) && bytes.all(|b| b.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_fhir_id_grammar() {
        for good in ["123", "a-b.c", ".5", "a..b", &"x".repeat(64)] {
            assert!(FhirId::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "../Patient",
            "a/b",
            "x?y=1",
            "a b",
            "a\u{1b}[2J",
            "a\nb",
            &"x".repeat(65),
            "é",
        ] {
            assert!(FhirId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn patient_ids_of_dots_alone_are_refused_because_they_are_path_segments() {
        for dots in [".", "..", "...", &".".repeat(64)] {
            assert_eq!(PatientId::parse(dots), Err(InvalidId), "{dots}");
            assert!(FhirId::parse(dots).is_err(), "{dots}");
        }
    }

    #[test]
    fn subject_references_match_relative_and_full_url_forms() {
        let id = PatientId::parse("p1").unwrap();
        assert!(id.is_referenced_by("Patient/p1", None, None));
        assert!(id.is_referenced_by("Patient/p1/_history/3", None, None));
        assert!(id.is_referenced_by("urn:uuid:abc", Some("urn:uuid:abc"), None));
        assert!(!id.is_referenced_by("Patient/xp1", None, None));
        assert!(!id.is_referenced_by("Patient/p12", None, None));
        assert!(!id.is_referenced_by("Group/p1", None, None));
        assert!(!id.is_referenced_by("Patient/p1/_history/../x", None, None));
    }

    #[test]
    fn an_absolute_subject_is_this_patient_only_on_this_records_server() {
        let id = PatientId::parse("p1").unwrap();
        let base = Some("https://ehr.example/fhir");
        assert!(id.is_referenced_by("https://ehr.example/fhir/Patient/p1", None, base));
        assert!(id.is_referenced_by("HTTPS://EHR.example/fhir/Patient/p1/_history/2", None, base));
        assert!(id.is_referenced_by(
            "https://ehr.example/fhir/Patient/p1",
            None,
            Some("https://ehr.example/fhir/")
        ));
        assert!(!id.is_referenced_by("https://other.example/fhir/Patient/p1", None, base));
        assert!(!id.is_referenced_by("https://ehr.example/other/Patient/p1", None, base));
        assert!(
            !id.is_referenced_by("https://ehr.example/fhir/Patient/p1", None, None),
            "no known server: an absolute reference cannot be shown to be this patient's"
        );
    }

    #[test]
    fn literal_references_parse_into_typed_parts() {
        assert_eq!(
            Literal::parse("Medication/m1"),
            Some(Literal::Relative {
                kind: "Medication",
                id: "m1"
            })
        );
        assert_eq!(
            Literal::parse("http://x.org/fhir/Medication/m1/_history/2"),
            Some(Literal::Absolute {
                base: "http://x.org/fhir",
                kind: "Medication",
                id: "m1"
            })
        );
        assert_eq!(
            Literal::parse("#med"),
            Some(Literal::Contained { id: "med" })
        );
        for not_one in [
            "urn:uuid:1",
            "Medication/..",
            "medication/m1",
            "ftp://x/Medication/m1",
            "#",
            "m1",
        ] {
            assert_eq!(Literal::parse(not_one), None, "{not_one}");
        }
        assert_eq!(
            base_of("https://ehr.example.org/fhir/Patient/p"),
            Some("https://ehr.example.org/fhir")
        );
    }
}
