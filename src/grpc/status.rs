//! The one mapping from the service's errors to gRPC status codes.

use crate::error::Error;
use tonic::{Code, Status};

pub fn code(e: &Error) -> Code {
    match e {
        Error::InvalidArgument(_) => Code::InvalidArgument,
        Error::NotFound(_) => Code::NotFound,
        Error::Unavailable(_) | Error::BadGateway(_) => Code::Unavailable,
        Error::Timeout(_) => Code::DeadlineExceeded,
        Error::PermissionDenied(_) => Code::PermissionDenied,
        Error::Unauthenticated(_) => Code::Unauthenticated,
        Error::ResourceExhausted(_) => Code::ResourceExhausted,
        Error::Conflict(_) => Code::Aborted,
        Error::NotConfigured(_) => Code::FailedPrecondition,
    }
}

pub fn status(e: &Error) -> Status {
    Status::new(code(e), e.to_string())
}

/// The status code's canonical name, as the contract's `WriteBackResult.error_code` carries it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
