//! The service's error: a kind and a [`Summary`] in our own words. Whatever a FHIR server, a token
//! endpoint or a caller sent (an OperationOutcome's diagnostics, an `error_description`, a bad
//! Bundle's contents) never becomes part of an error, so it can reach no other caller, no log line
//! and no terminal. The type system holds the line: a `Summary` is a string literal, or a
//! [`summary!`](crate::summary) whose arguments are all [`Ours`] (numbers, literals, other
//! summaries, errors of our own whose text is fixed); a `String` does not compile.
//!
//! Each edge maps the [`ErrorKind`] once: gRPC status codes in `grpc::status` (also the code names of
//! `PatientError` and `write_back.error_code`), the command line's exit codes in `cli` (one table of
//! them), the nightly job's report and journal names in `batch` (`batch::error_kind`).

use std::borrow::Cow;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong: a bad patient id, a malformed Bundle.
    #[error("invalid argument: {0}")]
    InvalidArgument(Summary),
    #[error("not found: {0}")]
    NotFound(Summary),
    /// The FHIR server could not be reached, or kept failing after retries.
    #[error("FHIR server unavailable: {0}")]
    Unavailable(Summary),
    /// The FHIR server (or the token endpoint) did not answer in time.
    #[error("timed out: {0}")]
    Timeout(Summary),
    /// The FHIR server refused the credentials or the scope.
    #[error("permission denied: {0}")]
    PermissionDenied(Summary),
    #[error("unauthenticated: {0}")]
    Unauthenticated(Summary),
    /// Over a size or concurrency limit: a request, or an answer of the FHIR server larger than
    /// `fhir.max_response_bytes`.
    #[error("resource exhausted: {0}")]
    ResourceExhausted(Summary),
    /// The FHIR server answered with something that is not what FHIR promises (not JSON, not a
    /// Bundle, a 4xx we did not expect).
    #[error("bad response from the FHIR server: {0}")]
    BadGateway(Summary),
    /// A write conflicted with a concurrent change or matched more than one resource.
    #[error("conflict: {0}")]
    Conflict(Summary),
    #[error("not configured: {0}")]
    NotConfigured(Summary),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, without the words: what every edge maps, each in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    InvalidArgument,
    NotFound,
    Unavailable,
    Timeout,
    PermissionDenied,
    Unauthenticated,
    ResourceExhausted,
    BadGateway,
    Conflict,
    NotConfigured,
}

impl ErrorKind {
    /// Every kind, for the edges' tests that each maps them all.
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::InvalidArgument,
        ErrorKind::NotFound,
        ErrorKind::Unavailable,
        ErrorKind::Timeout,
        ErrorKind::PermissionDenied,
        ErrorKind::Unauthenticated,
        ErrorKind::ResourceExhausted,
        ErrorKind::BadGateway,
        ErrorKind::Conflict,
        ErrorKind::NotConfigured,
    ];
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::Timeout(_) => ErrorKind::Timeout,
            Error::PermissionDenied(_) => ErrorKind::PermissionDenied,
            Error::Unauthenticated(_) => ErrorKind::Unauthenticated,
            Error::ResourceExhausted(_) => ErrorKind::ResourceExhausted,
            Error::BadGateway(_) => ErrorKind::BadGateway,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::NotConfigured(_) => ErrorKind::NotConfigured,
        }
    }

    /// The summary, without the kind's words.
    pub fn summary(&self) -> &Summary {
        match self {
            Error::InvalidArgument(s)
            | Error::NotFound(s)
            | Error::Unavailable(s)
            | Error::Timeout(s)
            | Error::PermissionDenied(s)
            | Error::Unauthenticated(s)
            | Error::ResourceExhausted(s)
            | Error::BadGateway(s)
            | Error::Conflict(s)
            | Error::NotConfigured(s) => s,
        }
    }
}

/// A message written by this program: a literal, or a [`summary!`](crate::summary) of [`Ours`]
/// values. Reads as a `str`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary(Cow<'static, str>);

impl Summary {
    pub const fn new(text: &'static str) -> Summary {
        Summary(Cow::Borrowed(text))
    }

    /// Only for [`summary!`](crate::summary), which checks every argument is [`Ours`].
    #[doc(hidden)]
    pub fn __composed(text: String) -> Summary {
        Summary(Cow::Owned(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&'static str> for Summary {
    fn from(text: &'static str) -> Summary {
        Summary::new(text)
    }
}

impl std::ops::Deref for Summary {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A value whose text this program wrote, or the operator configured (a setting, a knowledge file,
/// a local path): never text from a FHIR server, a token endpoint or a caller. Implemented for
/// numbers, string literals (`&'static str`), summaries, and errors whose `Display` is fixed words
/// (each such implementation is a claim checked by a test beside the type).
pub trait Ours: fmt::Display {}

impl Ours for &'static str {}
impl Ours for Summary {}
impl Ours for Error {}
impl Ours for u8 {}
impl Ours for u16 {}
impl Ours for u32 {}
impl Ours for u64 {}
impl Ours for usize {}
impl Ours for i32 {}
impl Ours for i64 {}
impl Ours for f64 {}
/// The operating system's words for a kind of I/O failure ("no storage space"), never a path or
/// a message an I/O error may carry.
impl Ours for std::io::ErrorKind {}

// Errors whose `Display` is fixed words, counts and places (`not JSON: malformed JSON at line 3
// column 7`), or the operator's own files (knowledge overrides): tested in `tests` below and beside
// each type.
impl Ours for crate::fhir::record::InvalidId {}
impl Ours for crate::fhir::bulk::InvalidResourceType {}
impl Ours for crate::fhir::bulk::InvalidInstant {}
impl Ours for crate::fhir::BundleError {}
impl Ours for crate::fhir::TooManyResources {}
impl Ours for crate::knowledge::KnowledgeError {}

/// A path on this machine that the operator chose (a command-line argument, a setting), shown in
/// a message to that operator.
pub struct LocalPath<'a>(pub &'a std::path::Path);

impl fmt::Display for LocalPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.display().fmt(f)
    }
}

impl Ours for LocalPath<'_> {}

/// Passes an [`Ours`] value through; a compile error for anything else (a `String`, a `&str`
/// borrowed from a body).
#[doc(hidden)]
pub fn __ours<T: Ours + ?Sized>(value: &T) -> &T {
    value
}

/// Whether a format string uses only `{}` (or `{:spec}`) placeholders, so that every value comes
/// from the argument list (checked) and none is captured by name from the surrounding code.
#[doc(hidden)]
pub const fn __only_positional(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'{' {
            if i + 1 < bytes.len() && bytes[i + 1] == b'{' {
                i += 2;
                continue;
            }
            if i + 1 >= bytes.len() || !(bytes[i + 1] == b'}' || bytes[i + 1] == b':') {
                return false;
            }
        }
        i += 1;
    }
    true
}

/// A [`Summary`] from a format string and [`Ours`] arguments:
/// `summary!("the {} search has more than {} pages", "Condition", cap)`.
#[macro_export]
macro_rules! summary {
    ($text:literal $(,)?) => {
        $crate::error::Summary::new($text)
    };
    ($text:literal, $($arg:expr),+ $(,)?) => {{
        const _: () = assert!(
            $crate::error::__only_positional($text),
            "summary!: use {{}} placeholders; every value goes in the argument list"
        );
        $crate::error::Summary::__composed(format!($text, $($crate::error::__ours(&$arg)),+))
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_takes_its_values_from_the_argument_list_only() {
        assert!(__only_positional(
            "the {} search ({}), {:.1} s, {{literal}}"
        ));
        assert!(!__only_positional("the {resource_type} search"));
        assert!(!__only_positional("the {0} search"));
        assert_eq!(
            summary!("the {} search failed ({})", "Condition", 503u16).as_str(),
            "the Condition search failed (503)"
        );
        let inner = summary!("cut short");
        assert_eq!(
            summary!("{} ({} attempts)", inner, 4u32).as_str(),
            "cut short (4 attempts)"
        );
    }

    #[test]
    fn an_error_reads_as_its_kind_and_summary() {
        let e = Error::Unavailable(summary!(
            "the FHIR server failed the {} read ({})",
            "Patient",
            500u16
        ));
        assert_eq!(
            e.to_string(),
            "FHIR server unavailable: the FHIR server failed the Patient read (500)"
        );
        assert_eq!(e.kind(), ErrorKind::Unavailable);
    }
}
