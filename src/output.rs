//! The command line's output. A write that fails (a full disk, a closed descriptor) is an error the
//! command reports, never a panic as `println!` makes it; a reader that went away (`| head`) ends
//! the output quietly, as command-line tools do.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Creates a file only its owner can read or write, or empties an existing one (which keeps the
/// mode it has: an operator may have chosen it). Reports, CSVs, pages and scratch files hold
/// patients' results or records, which others on the machine have no business reading, whatever
/// the umask.
pub fn create_private(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Writes `bytes` to a file made by [`create_private`].
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    create_private(path)?.write_all(bytes)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputError {
    /// The reader closed the pipe.
    Closed,
    /// The write failed: the system's words for why.
    Failed(io::ErrorKind),
}

impl From<io::Error> for OutputError {
    fn from(e: io::Error) -> OutputError {
        match e.kind() {
            io::ErrorKind::BrokenPipe => OutputError::Closed,
            kind => OutputError::Failed(kind),
        }
    }
}

/// Writes `text` to standard output and flushes it.
pub fn stdout(text: &str) -> Result<(), OutputError> {
    write_all(&mut io::stdout().lock(), text)
}

/// Writes `text` to `out` and flushes it.
pub fn write_all(out: &mut impl Write, text: &str) -> Result<(), OutputError> {
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// One line on standard error, its control characters escaped (a line may name a file the person
/// typed). When standard error itself cannot be written there is no one left to tell.
pub fn stderr_line(text: &str) {
    let mut line = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line.push('\n');
    let _ = write_all(&mut io::stderr().lock(), &line);
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Refusing(io::ErrorKind);

    impl Write for Refusing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(self.0.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_is_told_apart_from_a_failed_write() {
        assert_eq!(
            write_all(&mut Refusing(io::ErrorKind::BrokenPipe), "x"),
            Err(OutputError::Closed)
        );
        assert_eq!(
            write_all(&mut Refusing(io::ErrorKind::StorageFull), "x"),
            Err(OutputError::Failed(io::ErrorKind::StorageFull))
        );
    }
}
