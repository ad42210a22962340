//! Reading a file that a setting names (the settings file, secrets, TLS files, knowledge
//! overrides, a local export's manifest) or that the service keeps for itself: whole, but only a
//! regular file and only up to a cap, so that a path to `/dev/zero` is not read until memory runs
//! out and a FIFO does not hang start-up. The batch job's input files, read as streams, are opened
//! with the same check.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

pub const MIB: u64 = 1024 * 1024;

/// The regular file at `path` (a symbolic link to one, as Kubernetes mounts secrets, included),
/// opened for reading. Anything else (a FIFO, a device, a directory, a socket) is refused with an
/// error that says which, never the content; the caller adds the path and what it is for.
pub fn open_regular(path: &Path) -> io::Result<File> {
    // Without O_NONBLOCK, opening a FIFO waits for a writer: for ever. The type is checked on the
    // opened file, so the path cannot be swapped between the check and the read.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a regular file ({what})"),
        ));
    }
    // On a regular file O_NONBLOCK changes nothing today, but it stays with the file: cleared, the
    // caller holds a file opened as plainly as `File::open` would.
    let fd = file.as_raw_fd();
    // SAFETY: `fd` is open and owned by `file` for both calls; F_GETFL and F_SETFL read and set
    // its status flags only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags == -1 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

/// The bytes of the regular file at `path` (see [`open_regular`]), at most `cap` of them. A larger
/// file is refused with an error that names the cap, never the content; the caller adds the path
/// and what it is for.
pub fn read_bounded(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let file = open_regular(path)?;
    let metadata = file.metadata()?;
    let too_large = || {
        io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("larger than {}", size(cap)),
        )
    };
    if metadata.len() > cap {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    // The file may grow after its size was read: the cap holds whatever the metadata said.
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(too_large());
    }
    Ok(bytes)
}

/// `cap` for a person: whole MiB or KiB where it is one, bytes otherwise.
fn size(cap: u64) -> String {
    if cap >= MIB && cap.is_multiple_of(MIB) {
        format!("{} MiB", cap / MIB)
    } else if cap >= 1024 && cap.is_multiple_of(1024) {
        format!("{} KiB", cap / 1024)
    } else {
        format!("{cap} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fresh directory of this test's own.
    fn dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("trdscreen-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `f`'s answer, or a failure after ten seconds: a regression that blocks fails, not hangs.
    fn within_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("answered within ten seconds, not blocked")
    }

    #[test]
    fn open_regular_refuses_a_fifo_at_once_and_opens_a_regular_file_for_plain_reads() {
        let dir = dir("open-regular");
        let fifo = dir.join("Patient.ndjson");
        let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `name` is a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        // No writer ever opens it: a blocking open would never return.
        let e = within_seconds(move || open_regular(&fifo).unwrap_err());
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(e.to_string(), "not a regular file (a FIFO)");
        let e = open_regular(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(e.to_string(), "not a regular file (a device)");

        let path = dir.join("Condition.ndjson");
        std::fs::write(&path, "{\"resourceType\":\"Condition\"}\n").unwrap();
        let mut file = open_regular(&path).unwrap();
        // SAFETY: reads the status flags of a descriptor `file` holds open.
        let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(
            flags & libc::O_NONBLOCK,
            0,
            "reads behave as on a plain open"
        );
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "{\"resourceType\":\"Condition\"}\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_regular_file_is_read_whole() {
        let dir = dir("regular");
        let path = dir.join("settings.toml");
        std::fs::write(&path, "[grpc]\nlisten = \"127.0.0.1:1\"\n").unwrap();
        assert_eq!(
            read_bounded(&path, MIB).unwrap(),
            b"[grpc]\nlisten = \"127.0.0.1:1\"\n"
        );
        std::fs::write(&path, "").unwrap();
        assert!(read_bounded(&path, MIB).unwrap().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_of_exactly_the_cap_is_read_and_one_byte_more_is_refused_naming_the_cap() {
        let dir = dir("cap");
        let path = dir.join("offset");
        std::fs::write(&path, vec![b'7'; 4096]).unwrap();
        assert_eq!(read_bounded(&path, 4096).unwrap().len(), 4096);
        std::fs::write(&path, vec![b'7'; 4097]).unwrap();
        let e = read_bounded(&path, 4096).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(e.to_string(), "larger than 4 KiB");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_huge_sparse_file_is_refused_without_being_read() {
        let dir = dir("sparse");
        let path = dir.join("key.pem");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(1 << 40).unwrap();
        let e = read_bounded(&path, MIB).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(e.to_string(), "larger than 1 MiB");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_symbolic_link_to_a_regular_file_is_read_as_kubernetes_mounts_secrets() {
        // A secret volume: key -> ..data/key, ..data -> ..2025_01_01/ (a directory link too).
        let dir = dir("symlink");
        let version = dir.join("..2025_01_01");
        std::fs::create_dir(&version).unwrap();
        std::fs::write(version.join("token"), "s3cret\n").unwrap();
        std::os::unix::fs::symlink("..2025_01_01", dir.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/token", dir.join("token")).unwrap();
        assert_eq!(read_bounded(&dir.join("token"), MIB).unwrap(), b"s3cret\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_fifo_is_refused_at_once_rather_than_waited_on() {
        let dir = dir("fifo");
        let path = dir.join("settings.toml");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        // No writer ever opens it: a blocking open would never return, and the test would hang.
        let e = read_bounded(&path, MIB).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(e.to_string(), "not a regular file (a FIFO)");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_device_and_a_directory_are_refused() {
        let e = read_bounded(Path::new("/dev/zero"), MIB).unwrap_err();
        assert_eq!(e.to_string(), "not a regular file (a device)");
        let dir = dir("directory");
        let e = read_bounded(&dir, MIB).unwrap_err();
        assert_eq!(e.to_string(), "not a regular file (a directory)");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_file_keeps_its_not_found_kind() {
        let e = read_bounded(Path::new("/nonexistent/trdscreen/settings.toml"), MIB).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
