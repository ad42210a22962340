//! The audit queue: records wait here until the audit endpoint has taken them.
//!
//! While the endpoint answers, a record waits in memory (at most `memory_capacity`) and is sent by
//! [`AuditQueue::flush`]. When a send fails, the records in memory are appended, in order, to an
//! append-only spill file (`audit-spill.ndjson` in `dir`, one compact JSON AuditEvent a line) and the
//! file is fsync'd; from then on every new record is appended there too, and acknowledged
//! ([`Recorded::Spilled`]) only once fsync'd. A full memory queue spills the same way. Flushing
//! replays the file from the start, in order, and records its progress in `audit-spill.offset`
//! (written to a temporary file, fsync'd and renamed) after each record the endpoint took; when the
//! whole file is replayed both files are removed and records wait in memory again.
//!
//! Each record is sent as `PUT AuditEvent/{id}` with the id it was built with, so one sent again
//! after a crash between the send and the offset's update overwrites itself: the endpoint holds it
//! once. A spill file that would grow past `max_spill_bytes` refuses the record
//! (`RESOURCE_EXHAUSTED`): the caller decides whether the call goes on (the setting of issue 17);
//! it is never dropped silently. A torn last line (a crash during an append, never acknowledged) is
//! cut off when the queue is opened.

use super::event::AuditEvent;
use crate::error::{Error, Result};
use crate::fhir::client::{FhirClient, Idempotent};
use crate::summary;
use reqwest::Method;
use serde::Deserialize;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const SPILL: &str = "audit-spill.ndjson";
const OFFSET: &str = "audit-spill.offset";
/// Held (an advisory lock) by the process that owns the directory: two queues appending to one
/// spill file would interleave their offsets.
const LOCK: &str = "audit.lock";
/// Longest line read back from the spill file (an AuditEvent is a few KB).
const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Where audit records go: `put` stores one record under its id, idempotently.
pub trait AuditSink: Send + Sync {
    fn put(&self, id: &str, body: &[u8]) -> impl Future<Output = Result<()>> + Send;
}

/// The audit endpoint as a FHIR server: `PUT {base}/AuditEvent/{id}` through the FHIR client
/// (its authentication, timeouts, retries and bounded reads).
pub struct FhirAuditSink {
    client: FhirClient,
}

impl FhirAuditSink {
    pub fn new(client: FhirClient) -> FhirAuditSink {
        FhirAuditSink { client }
    }
}

impl AuditSink for FhirAuditSink {
    async fn put(&self, id: &str, body: &[u8]) -> Result<()> {
        let url = self.client.url(&format!("AuditEvent/{id}"));
        self.client
            .send(
                Method::PUT,
                &url,
                Some(body),
                &[],
                Idempotent::Yes,
                "AuditEvent",
            )
            .await
            .map(|_| ())
    }
}

/// The queue's limits (the `[audit]` settings once wired).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditQueueSettings {
    /// Records held in memory while the endpoint answers; more spill to disk.
    pub memory_capacity: usize,
    /// The spill file's largest size; a record that would pass it is refused.
    pub max_spill_bytes: u64,
}

impl Default for AuditQueueSettings {
    fn default() -> Self {
        AuditQueueSettings {
            memory_capacity: 10_000,
            max_spill_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// How a record was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// In memory, to be sent at the next flush; lost if the process dies before.
    Queued,
    /// On disk, fsync'd: survives a crash.
    Spilled,
}

/// What one flush did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flushed {
    /// Records the endpoint took.
    pub sent: usize,
    /// Whether records are still waiting (the endpoint failed).
    pub waiting: bool,
}

/// The queue's state, for metrics and alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLevel {
    pub in_memory: usize,
    pub spilling: bool,
    pub spill_bytes: u64,
}

pub struct AuditQueue<S> {
    sink: S,
    settings: AuditQueueSettings,
    spill_path: PathBuf,
    offset_path: PathBuf,
    state: Mutex<State>,
    /// One flush at a time.
    flushing: tokio::sync::Mutex<()>,
    /// Wakes the sender when a record arrives.
    arrived: tokio::sync::Notify,
    /// The directory's lock, held while the queue lives.
    _owner: File,
}

struct State {
    memory: VecDeque<Line>,
    /// Records go to the spill file (it holds records not yet replayed).
    spilling: bool,
    spill_bytes: u64,
}

#[derive(Clone)]
struct Line {
    id: String,
    json: Vec<u8>,
}

impl<S: AuditSink> AuditQueue<S> {
    /// Opens the queue over `dir` (created owner-only), taking up a spill file left by an earlier
    /// process: its records are replayed by the next flush, before any new one.
    pub fn open(dir: &Path, settings: AuditQueueSettings, sink: S) -> Result<AuditQueue<S>> {
        create_private_dir(dir)?;
        let owner = private_file(OpenOptions::new().write(true).create(true))
            .open(dir.join(LOCK))
            .map_err(|e| io_error("cannot open the audit directory's lock", &e))?;
        if owner.try_lock().is_err() {
            return Err(Error::NotConfigured(
                "the audit spill directory is in use by another process; give each process its own audit.spill_dir".into(),
            ));
        }
        let spill_path = dir.join(SPILL);
        let offset_path = dir.join(OFFSET);
        let spill_bytes = match std::fs::metadata(&spill_path) {
            Ok(m) => cut_torn_line(&spill_path, m.len())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_error("cannot read the audit spill file", &e)),
        };
        let offset = read_offset(&offset_path)?;
        let spilling = spill_bytes > offset;
        if !spilling && spill_bytes > 0 {
            remove_spill(&spill_path, &offset_path)?;
        }
        Ok(AuditQueue {
            sink,
            settings,
            spill_path,
            offset_path,
            state: Mutex::new(State {
                memory: VecDeque::new(),
                spilling,
                spill_bytes: if spilling { spill_bytes } else { 0 },
            }),
            flushing: tokio::sync::Mutex::new(()),
            arrived: tokio::sync::Notify::new(),
            _owner: owner,
        })
    }

    /// Takes a record: in memory while the endpoint answers and there is room, else appended to
    /// the spill file and fsync'd before this returns.
    pub fn record(&self, event: &AuditEvent) -> Result<Recorded> {
        let json = serde_json::to_vec(&event.resource)
            .map_err(|_| Error::NotConfigured("cannot encode an AuditEvent".into()))?;
        let line = Line {
            id: event.id.clone(),
            json,
        };
        let mut state = self.lock();
        if !state.spilling && state.memory.len() < self.settings.memory_capacity {
            state.memory.push_back(line);
            drop(state);
            self.arrived.notify_one();
            return Ok(Recorded::Queued);
        }
        // Memory full, or the endpoint down: everything in memory goes first, in order.
        let mut lines: Vec<Line> = state.memory.drain(..).collect();
        lines.push(line);
        match self.append(&mut state, &lines) {
            Ok(()) => Ok(Recorded::Spilled),
            Err(e) => {
                // Put back what was in memory; the new record is refused.
                lines.pop();
                for l in lines.into_iter().rev() {
                    state.memory.push_front(l);
                }
                Err(e)
            }
        }
    }

    /// Moves the records waiting in memory to the spill file (fsync'd): at shutdown, so that no
    /// record waits only in memory when the process ends.
    pub fn persist(&self) -> Result<()> {
        let mut state = self.lock();
        if state.memory.is_empty() {
            return Ok(());
        }
        let lines: Vec<Line> = state.memory.drain(..).collect();
        if let Err(e) = self.append(&mut state, &lines) {
            for l in lines.into_iter().rev() {
                state.memory.push_front(l);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Sends what waits whenever a record arrives and every `interval` (to retry a down endpoint),
    /// until `stop` completes; then flushes once more and persists what is left to disk.
    pub async fn run_sender(&self, interval: std::time::Duration, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                () = self.arrived.notified() => {}
                () = tokio::time::sleep(interval) => {}
            }
            if let Err(e) = self.flush().await {
                tracing::error!(error = %e, "audit records cannot be sent or spilled");
            }
        }
        if let Err(e) = self.flush().await {
            tracing::error!(error = %e, "audit records cannot be sent or spilled");
        }
        if let Err(e) = self.persist() {
            tracing::error!(error = %e, "audit records in memory cannot be written to disk at shutdown");
        }
    }

    /// The spill file's largest size (`audit.max_spill_bytes`).
    pub fn max_spill_bytes(&self) -> u64 {
        self.settings.max_spill_bytes
    }

    pub fn level(&self) -> QueueLevel {
        let state = self.lock();
        QueueLevel {
            in_memory: state.memory.len(),
            spilling: state.spilling,
            spill_bytes: state.spill_bytes,
        }
    }

    /// Sends what waits, oldest first: the spill file's records, then memory's. Stops at the
    /// first failure (memory's records then spill to disk).
    pub async fn flush(&self) -> Result<Flushed> {
        let _one = self.flushing.lock().await;
        let mut flushed = Flushed::default();
        if self.lock().spilling && !self.replay(&mut flushed).await? {
            flushed.waiting = true;
            return Ok(flushed);
        }
        loop {
            let next = {
                let state = self.lock();
                if state.spilling {
                    // Spilled meanwhile (memory filled up): the next flush replays.
                    flushed.waiting = true;
                    return Ok(flushed);
                }
                match state.memory.front() {
                    Some(line) => line.clone(),
                    None => return Ok(flushed),
                }
            };
            match self.sink.put(&next.id, &next.json).await {
                Ok(()) => {
                    let mut state = self.lock();
                    if state.memory.front().is_some_and(|l| l.id == next.id) {
                        state.memory.pop_front();
                    }
                    flushed.sent += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the audit endpoint did not take a record; the queue spills to disk");
                    let mut state = self.lock();
                    let lines: Vec<Line> = state.memory.drain(..).collect();
                    if let Err(spill_error) = self.append(&mut state, &lines) {
                        for l in lines.into_iter().rev() {
                            state.memory.push_front(l);
                        }
                        return Err(spill_error);
                    }
                    flushed.waiting = true;
                    return Ok(flushed);
                }
            }
        }
    }

    /// Replays the spill file from its offset. `Ok(true)` when all of it went and the files are
    /// removed; `Ok(false)` when the endpoint failed.
    async fn replay(&self, flushed: &mut Flushed) -> Result<bool> {
        let mut offset = read_offset(&self.offset_path)?;
        loop {
            let end = self.lock().spill_bytes;
            if offset >= end {
                let mut state = self.lock();
                if offset >= state.spill_bytes {
                    remove_spill(&self.spill_path, &self.offset_path)?;
                    state.spilling = false;
                    state.spill_bytes = 0;
                    return Ok(true);
                }
                continue; // appended meanwhile
            }
            let (line, next) = read_line_at(&self.spill_path, offset)?;
            let id = serde_json::from_slice::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned))
                .ok_or(Error::NotConfigured(
                    "the audit spill file holds a line that is not an AuditEvent".into(),
                ))?;
            if let Err(e) = self.sink.put(&id, &line).await {
                tracing::warn!(error = %e, "the audit endpoint did not take a spilled record; replay stops");
                return Ok(false);
            }
            flushed.sent += 1;
            offset = next;
            write_offset(&self.offset_path, offset)?;
        }
    }

    /// Appends lines to the spill file and fsyncs it; `spilling` from then on.
    fn append(&self, state: &mut State, lines: &[Line]) -> Result<()> {
        let size: u64 = lines.iter().map(|l| l.json.len() as u64 + 1).sum();
        if state.spill_bytes + size > self.settings.max_spill_bytes {
            return Err(Error::ResourceExhausted(summary!(
                "the audit spill file would pass {} bytes (audit.max_spill_bytes)",
                self.settings.max_spill_bytes
            )));
        }
        if lines.is_empty() {
            state.spilling = true;
            return Ok(());
        }
        let mut buffer = Vec::with_capacity(size as usize);
        for l in lines {
            buffer.extend_from_slice(&l.json);
            buffer.push(b'\n');
        }
        let mut file = private_file(OpenOptions::new().create(true).append(true))
            .open(&self.spill_path)
            .map_err(|e| io_error("cannot open the audit spill file", &e))?;
        file.write_all(&buffer)
            .and_then(|()| file.sync_data())
            .map_err(|e| io_error("cannot write the audit spill file", &e))?;
        state.spill_bytes += size;
        state.spilling = true;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn io_error(what: &'static str, e: &std::io::Error) -> Error {
    Error::Unavailable(summary!("{}: {}", what, e.kind()))
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| io_error("cannot create the audit directory", &e))
}

/// The spill file holds audit records (who looked at which patient): owner-only when created,
/// whatever the umask, and even in a directory made by someone else with a wider mode (a volume
/// mounted there keeps its own, and `create_private_dir` leaves an existing directory as it is).
fn private_file(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(options, 0o600);
    options
}

/// Cuts a last line without its newline (an append cut by a crash, never acknowledged); the
/// file's new length. Reads only the file's tail (at most one line's worth).
fn cut_torn_line(path: &Path, len: u64) -> Result<u64> {
    if len == 0 {
        return Ok(0);
    }
    let repair = |e: std::io::Error| io_error("cannot repair the audit spill file", &e);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(repair)?;
    let window = len.min(MAX_LINE_BYTES as u64 + 1);
    file.seek(SeekFrom::Start(len - window)).map_err(repair)?;
    let mut tail = Vec::with_capacity(window as usize);
    (&mut file)
        .take(window)
        .read_to_end(&mut tail)
        .map_err(repair)?;
    let keep = match tail.iter().rposition(|b| *b == b'\n') {
        Some(i) => len - window + i as u64 + 1,
        None if window == len => 0,
        None => {
            return Err(Error::NotConfigured(
                "the audit spill file ends in a line that is too long".into(),
            ));
        }
    };
    if keep != len {
        file.set_len(keep)
            .and_then(|()| file.sync_data())
            .map_err(repair)?;
    }
    Ok(keep)
}

/// The line starting at `offset` (without its newline) and the offset after it.
fn read_line_at(path: &Path, offset: u64) -> Result<(Vec<u8>, u64)> {
    let mut file =
        File::open(path).map_err(|e| io_error("cannot read the audit spill file", &e))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| io_error("cannot read the audit spill file", &e))?;
    let mut reader = BufReader::new(file).take(MAX_LINE_BYTES as u64 + 1);
    let mut line = Vec::new();
    let n = reader
        .read_until(b'\n', &mut line)
        .map_err(|e| io_error("cannot read the audit spill file", &e))?;
    if line.last() != Some(&b'\n') {
        return Err(Error::NotConfigured(
            "the audit spill file holds a line that is too long or cut".into(),
        ));
    }
    line.pop();
    Ok((line, offset + n as u64))
}

/// Largest offset file read: it holds one number.
const OFFSET_FILE_CAP: u64 = 4096;

fn read_offset(path: &Path) -> Result<u64> {
    match crate::files::read_bounded(path, OFFSET_FILE_CAP) {
        Ok(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .ok_or_else(|| {
                Error::NotConfigured("the audit spill offset file is not a number".into())
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io_error("cannot read the audit spill offset", &e)),
    }
}

fn write_offset(path: &Path, offset: u64) -> Result<()> {
    let tmp = path.with_extension("offset.tmp");
    let write = || -> std::io::Result<()> {
        let mut file =
            private_file(OpenOptions::new().write(true).create(true).truncate(true)).open(&tmp)?;
        file.write_all(offset.to_string().as_bytes())?;
        file.sync_data()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| io_error("cannot write the audit spill offset", &e))
}

fn remove_spill(spill: &Path, offset: &Path) -> Result<()> {
    for path in [offset, spill] {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("cannot remove the audit spill file", &e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex as StdMutex};

    /// An endpoint in memory: what it took, in order; down while `down` is set.
    #[derive(Clone, Default)]
    struct Memory {
        taken: Arc<StdMutex<Vec<String>>>,
        down: Arc<AtomicBool>,
    }

    impl AuditSink for Memory {
        async fn put(&self, id: &str, body: &[u8]) -> Result<()> {
            if self.down.load(Ordering::SeqCst) {
                return Err(Error::Unavailable("down".into()));
            }
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert_eq!(v["id"], id, "the body is the record of that id");
            self.taken.lock().unwrap().push(id.to_owned());
            Ok(())
        }
    }

    impl Memory {
        fn taken(&self) -> Vec<String> {
            self.taken.lock().unwrap().clone()
        }
    }

    fn event(n: usize) -> AuditEvent {
        let id = format!("e{n}");
        AuditEvent {
            resource: json!({"resourceType": "AuditEvent", "id": id}),
            id,
        }
    }

    fn ids(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|n| format!("e{n}")).collect()
    }

    /// Opens the queue over a directory a queue of this test has just left. Another test of this
    /// process that starts a program (`openssl`, in auth::jwks) forks with every open file, this
    /// lock's included, until its exec closes them: the lock can outlive `drop` by that moment.
    fn reopen(d: &Path, sink: &Memory) -> AuditQueue<Memory> {
        for _ in 0..500 {
            match AuditQueue::open(d, settings(10), sink.clone()) {
                Err(Error::NotConfigured(_)) => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                opened => return opened.unwrap(),
            }
        }
        panic!("the spill directory stayed locked for 5 s after its queue was dropped")
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("trdscreen-audit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn settings(memory: usize) -> AuditQueueSettings {
        AuditQueueSettings {
            memory_capacity: memory,
            max_spill_bytes: 1 << 20,
        }
    }

    #[test]
    fn the_offset_file_is_read_as_a_number_and_a_huge_one_is_refused_unread() {
        let d = dir("offset-file");
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join(OFFSET);
        assert_eq!(
            read_offset(&path).unwrap(),
            0,
            "no offset file: from the start"
        );
        std::fs::write(&path, "42").unwrap();
        assert_eq!(read_offset(&path).unwrap(), 42);
        File::create(&path).unwrap().set_len(1 << 40).unwrap();
        let err = read_offset(&path).unwrap_err().to_string();
        assert!(
            err.contains("cannot read the audit spill offset: file too large"),
            "{err}"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn one_process_owns_a_spill_directory_at_a_time() {
        let d = dir("owner");
        let first = AuditQueue::open(&d, settings(10), Memory::default()).unwrap();
        let second = AuditQueue::open(&d, settings(10), Memory::default());
        assert!(matches!(second, Err(Error::NotConfigured(_))));
        drop(first);
        reopen(&d, &Memory::default());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test]
    async fn records_go_from_memory_to_the_endpoint_in_order() {
        let d = dir("memory");
        let sink = Memory::default();
        let q = AuditQueue::open(&d, settings(10), sink.clone()).unwrap();
        for n in 0..5 {
            assert_eq!(q.record(&event(n)).unwrap(), Recorded::Queued);
        }
        let f = q.flush().await.unwrap();
        assert_eq!(
            f,
            Flushed {
                sent: 5,
                waiting: false
            }
        );
        assert_eq!(sink.taken(), ids(0..5));
        assert!(!d.join(SPILL).exists());
        assert_eq!(q.flush().await.unwrap().sent, 0);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test]
    async fn a_down_endpoint_spills_everything_in_order_and_replays_each_record_once() {
        let d = dir("down");
        let sink = Memory::default();
        let q = AuditQueue::open(&d, settings(10), sink.clone()).unwrap();
        for n in 0..3 {
            q.record(&event(n)).unwrap();
        }
        sink.down.store(true, Ordering::SeqCst);
        let f = q.flush().await.unwrap();
        assert_eq!(
            f,
            Flushed {
                sent: 0,
                waiting: true
            }
        );
        assert!(q.level().spilling);
        assert_eq!(q.level().in_memory, 0);
        // While spilling, new records are on disk when acknowledged.
        for n in 3..6 {
            assert_eq!(q.record(&event(n)).unwrap(), Recorded::Spilled);
        }
        let on_disk = std::fs::read_to_string(d.join(SPILL)).unwrap();
        assert_eq!(on_disk.lines().count(), 6);
        assert!(q.flush().await.unwrap().waiting);
        assert!(sink.taken().is_empty());

        sink.down.store(false, Ordering::SeqCst);
        let f = q.flush().await.unwrap();
        assert_eq!(
            f,
            Flushed {
                sent: 6,
                waiting: false
            }
        );
        assert_eq!(sink.taken(), ids(0..6));
        assert!(!d.join(SPILL).exists() && !d.join(OFFSET).exists());
        assert!(!q.level().spilling);
        // Back to memory.
        assert_eq!(q.record(&event(6)).unwrap(), Recorded::Queued);
        q.flush().await.unwrap();
        assert_eq!(sink.taken(), ids(0..7));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test]
    async fn spilled_records_are_readable_by_their_owner_only_even_in_a_wider_directory() {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let d = dir("modes");
        std::fs::DirBuilder::new().mode(0o755).create(&d).unwrap();
        let sink = Memory::default();
        let q = AuditQueue::open(&d, settings(10), sink.clone()).unwrap();
        sink.down.store(true, Ordering::SeqCst);
        q.record(&event(0)).unwrap();
        assert!(q.flush().await.unwrap().waiting);
        let mode = |name: &str| {
            std::fs::metadata(d.join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(
            mode(SPILL),
            0o600,
            "the spill file names who saw which patient"
        );
        assert_eq!(mode(LOCK), 0o600);
        drop(q);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test]
    async fn a_full_memory_queue_spills_before_it_refuses_and_a_full_spill_file_refuses() {
        let d = dir("full");
        let sink = Memory::default();
        let q = AuditQueue::open(
            &d,
            AuditQueueSettings {
                memory_capacity: 2,
                max_spill_bytes: 200,
            },
            sink.clone(),
        )
        .unwrap();
        assert_eq!(q.record(&event(0)).unwrap(), Recorded::Queued);
        assert_eq!(q.record(&event(1)).unwrap(), Recorded::Queued);
        assert_eq!(q.record(&event(2)).unwrap(), Recorded::Spilled);
        // Each line is 40 bytes with its newline: 5 fit in 200.
        assert_eq!(q.record(&event(3)).unwrap(), Recorded::Spilled);
        assert_eq!(q.record(&event(4)).unwrap(), Recorded::Spilled);
        assert!(matches!(
            q.record(&event(5)),
            Err(Error::ResourceExhausted(_))
        ));
        q.flush().await.unwrap();
        assert_eq!(sink.taken(), ids(0..5), "what was refused was never taken");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test]
    async fn the_sender_delivers_what_arrives_and_persists_what_it_cannot_send_at_shutdown() {
        let d = dir("sender");
        let sink = Memory::default();
        let q = Arc::new(AuditQueue::open(&d, settings(10), sink.clone()).unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sender = {
            let q = q.clone();
            tokio::spawn(async move {
                q.run_sender(std::time::Duration::from_secs(3600), async {
                    let _ = stopped.await;
                })
                .await
            })
        };
        for n in 0..3 {
            q.record(&event(n)).unwrap();
        }
        stop.send(()).unwrap();
        sender.await.unwrap();
        assert_eq!(
            sink.taken(),
            ids(0..3),
            "sent, at the latest by the last flush"
        );

        // The endpoint down at shutdown: what waits in memory is on disk when the sender ends.
        sink.down.store(true, Ordering::SeqCst);
        drop(q);
        let q = reopen(&d, &sink);
        for n in 3..5 {
            assert_eq!(q.record(&event(n)).unwrap(), Recorded::Queued);
        }
        q.run_sender(std::time::Duration::from_secs(3600), async {})
            .await;
        drop(q);
        sink.down.store(false, Ordering::SeqCst);
        let q = reopen(&d, &sink);
        assert!(q.level().spilling);
        q.flush().await.unwrap();
        assert_eq!(sink.taken(), ids(0..5));

        // persist() alone: queued records survive the process.
        drop(q);
        let q = reopen(&d, &sink);
        q.record(&event(5)).unwrap();
        q.persist().unwrap();
        drop(q);
        let q = reopen(&d, &sink);
        q.flush().await.unwrap();
        assert_eq!(sink.taken(), ids(0..6));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test]
    async fn a_crash_mid_replay_loses_no_spilled_record_and_sends_none_twice_after_the_offset() {
        let d = dir("crash");
        let sink = Memory::default();
        {
            let q = AuditQueue::open(&d, settings(0), sink.clone()).unwrap();
            for n in 0..4 {
                assert_eq!(q.record(&event(n)).unwrap(), Recorded::Spilled);
            }
            // The process dies here, with every record on disk and none sent.
        }
        // A torn append of a record never acknowledged.
        let mut f = OpenOptions::new().append(true).open(d.join(SPILL)).unwrap();
        f.write_all(br#"{"resourceType":"AuditEvent","id":"torn"#)
            .unwrap();
        drop(f);
        // Half the file was replayed before the next crash.
        write_offset(
            &d.join(OFFSET),
            std::fs::read_to_string(d.join(SPILL))
                .unwrap()
                .lines()
                .take(2)
                .map(|l| l.len() as u64 + 1)
                .sum(),
        )
        .unwrap();

        let q = reopen(&d, &sink);
        assert!(q.level().spilling);
        assert_eq!(
            q.record(&event(4)).unwrap(),
            Recorded::Spilled,
            "behind the spilled records"
        );
        let f = q.flush().await.unwrap();
        assert_eq!(
            f,
            Flushed {
                sent: 3,
                waiting: false
            }
        );
        assert_eq!(
            sink.taken(),
            ids(2..5),
            "from the offset on, in order, the torn line cut"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
