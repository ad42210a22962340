//! The one mapping from the service's errors to gRPC status codes.

use crate::error::{Error, ErrorKind};
use tonic::{Code, Status};

pub fn code(e: &Error) -> Code {
    code_of(e.kind())
}

fn code_of(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::Unavailable | ErrorKind::BadGateway => Code::Unavailable,
        ErrorKind::Timeout => Code::DeadlineExceeded,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::Conflict => Code::Aborted,
        ErrorKind::NotConfigured => Code::FailedPrecondition,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nightly_job_names_every_error_kind_as_its_grpc_status() {
        for kind in ErrorKind::ALL {
            assert_eq!(
                crate::batch::error_kind_name(kind),
                code_name(code_of(kind)),
                "{kind:?}"
            );
        }
    }
}
