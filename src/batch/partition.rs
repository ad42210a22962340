//! The first pass over Bulk-style NDJSON: every line is read once, cheaply, and appended to the
//! bucket file of the patient it belongs to, so that the second pass can screen one bucket at a time
//! with all of each patient's resources together. Memory stays bounded by the size of a bucket, not
//! of the population; the files may come in any order, one per type or split into many.
//!
//! Medications are shared between patients: they are set aside in the first pass and then copied
//! into every bucket whose requests or statements reference them.

use super::bucket::{self, Bound, Piece};
use super::line::{Line, classify};
use super::progress::Progress;
use super::scratch;
use super::shard::{Shard, stable_hash};
use crate::fhir::PatientId;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What the first pass saw, for the report.
#[derive(Debug, Default, Clone, Serialize)]
pub struct InputStats {
    pub files: u64,
    pub bytes: u64,
    pub lines: u64,
    pub patients: u64,
    pub clinical_resources: u64,
    pub medications: u64,
    /// Lines that are not JSON or not a FHIR resource, or longer than [`MAX_LINE`].
    pub malformed_lines: u64,
    /// Resources of types screening does not read (counted, then skipped).
    pub other_type: u64,
    /// Resources screening reads that name no patient.
    pub no_patient: u64,
    /// Patients and resources whose patient id is not a valid FHIR id.
    pub bad_patient_id: u64,
    /// Medications whose own id is not a valid FHIR id.
    pub bad_medication_id: u64,
    /// Lines of patients in other shards.
    pub other_shard: u64,
}

pub struct Partition {
    /// Each bucket's files (one per worker of the first pass, and one of joined Medications).
    pub buckets: Vec<Vec<PathBuf>>,
    pub stats: InputStats,
    /// How much of a bucket a worker of the second pass holds at once.
    pub bound: Bound,
    work: PathBuf,
}

impl Partition {
    /// Gives `each` a bucket's text: its files one after the other, or, when they are over the
    /// bound, the pieces they split into (see [`bucket`](super::bucket)). The files are removed once
    /// read, so the scratch space shrinks as the second pass goes (and a killed job's resume
    /// rebuilds them).
    ///
    /// The text goes into `text`: a worker reuses one buffer for every bucket it takes, rather
    /// than fault in a fresh bucket's worth of memory each time.
    pub fn take(
        &self,
        i: usize,
        text: &mut String,
        each: &mut dyn FnMut(Piece) -> io::Result<()>,
    ) -> io::Result<()> {
        let split_base = self.work.join(format!("bucket-{i:04}-split"));
        bucket::take(&self.buckets[i], &split_base, self.bound, text, each)
    }
}

/// Line tags in bucket files.
pub const PATIENT: u8 = b'P';
pub const RESOURCE: u8 = b'R';
pub const MEDICATION: u8 = b'M';

/// The NDJSON files of a directory (`*.ndjson`, `*.jsonl`, either gzipped), in name order.
pub fn ndjson_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    crate::fhir::bulk::local::ndjson_files(dir)
}

/// A file's lines as they are on disk, or unpacked when its name ends in `.gz` (gzip, several
/// members allowed, as `cat a.gz b.gz` makes). `consumed` counts the bytes read from the file
/// itself, for progress in file bytes.
///
/// Only a regular file is opened: a manifest may name a FIFO (whose open would wait for a writer
/// for ever) or a device (read without end), and a listed file may be replaced after the listing.
/// The error names the file, as the listing's does, since the job's names only the directory.
pub fn open_ndjson(path: &Path, consumed: Arc<AtomicU64>) -> io::Result<Box<dyn BufRead + Send>> {
    let opened = crate::files::open_regular(path).map_err(|e| {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        io::Error::new(e.kind(), format!("{name}: {e}"))
    })?;
    let file = Counted {
        inner: opened,
        consumed,
    };
    let gzipped = path.extension().is_some_and(|e| e == "gz");
    Ok(if gzipped {
        Box::new(BufReader::with_capacity(
            BLOCK,
            flate2::read::MultiGzDecoder::new(BufReader::with_capacity(256 * 1024, file)),
        ))
    } else {
        Box::new(BufReader::with_capacity(BLOCK, file))
    })
}

/// A reader that counts what it reads.
struct Counted<R> {
    inner: R,
    consumed: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// How many buckets: the input over the bucket size, from 1 to 1,024, and never more than
/// `open_files` allows when each of `workers` holds every bucket file open at once (bigger buckets
/// then, rather than a job that fails half way with too many open files).
pub fn bucket_count(input_bytes: u64, bucket_bytes: u64, open_files: u64, workers: usize) -> usize {
    let within_limit = files_per_worker(open_files, workers) as u64;
    input_bytes
        .div_ceil(bucket_bytes.max(1))
        .min(within_limit)
        .clamp(1, 1024) as usize
}

/// The files each of `workers` may hold open at once, within `open_files` and what is kept for
/// everything else.
fn files_per_worker(open_files: u64, workers: usize) -> usize {
    usize::try_from(open_files.saturating_sub(RESERVED_FILES) / workers.max(1) as u64)
        .unwrap_or(usize::MAX)
}

/// Files kept for everything else while the first pass holds its bucket files open: the input, the
/// journal, each worker's Medications, the audit trail, sockets.
const RESERVED_FILES: u64 = 128;

/// The open-file limit of this process, raised to the hard limit first (the soft limit is often
/// 1,024, which a large input's bucket files can exceed); 1,024 when it cannot be read.
fn open_file_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024)
}

/// The bucket of a patient. The shard takes the hash modulo N; the bucket takes the high bits of
/// a multiplicative mix, so buckets fill evenly inside any one shard.
pub fn bucket_of(patient: &str, buckets: usize) -> usize {
    let mixed = stable_hash(patient).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    (mixed % buckets as u64) as usize
}

/// Blocks of whole lines handed from the reader to the workers.
const BLOCK: usize = 4 * 1024 * 1024;

/// The longest line read, its break included. A resource screening reads takes kilobytes; a line
/// over this (a photo or a document inline, or a gzip member that unpacks to gigabytes with no line
/// break) is not held whole but skipped to its end and counted as malformed, so that memory stays
/// bounded whatever the input.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// One worker's share of the first pass: its own bucket files, Medications and counts, so workers
/// never wait for each other.
struct Worker {
    writers: Vec<BufWriter<File>>,
    medications: BufWriter<File>,
    wanted: HashMap<String, Vec<u16>>,
    /// Ids of the Medications in the input.
    seen: HashSet<String>,
    stats: InputStats,
}

/// Reads Medications that resources reference but the input does not hold (a Bulk export at
/// Patient or Group level leaves them out): ids in, JSON texts out.
pub type MedicationSource<'a> = &'a (dyn Fn(Vec<String>) -> io::Result<Vec<String>> + Sync);

pub fn partition(
    files: &[PathBuf],
    shard: Shard,
    work: &Path,
    bucket_bytes: u64,
    progress: &Progress,
    missing_medications: Option<MedicationSource>,
) -> io::Result<Partition> {
    let mut total = 0;
    for file in files {
        total += std::fs::metadata(file)?.len();
    }
    progress.start_phase("reading", Some(total));
    let threads = std::thread::available_parallelism().map_or(2, |t| t.get());
    let open_files = open_file_limit();
    let n = bucket_count(total, bucket_bytes, open_files, threads);
    let bucket_file = |i: usize, part: &str| work.join(format!("bucket-{i:04}-{part}"));
    let medications_file = |w: usize| work.join(format!("medications-{w}.ndjson"));
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(threads * 2);
    let rx = std::sync::Mutex::new(rx);
    // Blocks go back to the reader to be filled again, rather than freed and faulted in anew.
    let (spent_tx, spent_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(threads * 2 + 2);
    let workers: (Vec<io::Result<Worker>>, u64) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|w| {
                let rx = &rx;
                let spent = spent_tx.clone();
                scope.spawn(move || -> io::Result<Worker> {
                    let mut worker = Worker {
                        writers: (0..n)
                            .map(|i| {
                                scratch::create_file(&bucket_file(i, &w.to_string()))
                                    .map(|f| BufWriter::with_capacity(32 * 1024, f))
                            })
                            .collect::<io::Result<_>>()?,
                        medications: BufWriter::new(scratch::create_file(&medications_file(w))?),
                        wanted: HashMap::new(),
                        seen: HashSet::new(),
                        stats: InputStats::default(),
                    };
                    loop {
                        let block = match rx.lock().map(|r| r.recv()) {
                            Ok(Ok(block)) => block,
                            _ => break,
                        };
                        for line in block.split(|&b| b == b'\n') {
                            worker.take_line(line, shard)?;
                        }
                        let mut block = block;
                        block.clear();
                        let _ = spent.try_send(block);
                    }
                    for w in &mut worker.writers {
                        w.flush()?;
                    }
                    worker.medications.flush()?;
                    Ok(worker)
                })
            })
            .collect();
        drop(spent_tx);
        let read = read_blocks(files, &tx, &spent_rx, progress, BLOCK, MAX_LINE);
        drop(tx);
        let mut done: Vec<io::Result<Worker>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("a reader thread panicked")))
            })
            .collect();
        let too_long = match read {
            Ok(too_long) => too_long,
            Err(e) => {
                done.push(Err(e));
                0
            }
        };
        (done, too_long)
    });
    let (workers, too_long) = workers;
    let mut stats = InputStats {
        files: files.len() as u64,
        bytes: total,
        lines: too_long,
        malformed_lines: too_long,
        ..InputStats::default()
    };
    let mut wanted: HashMap<String, Vec<u16>> = HashMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    for worker in workers {
        let worker = worker?;
        stats.add(&worker.stats);
        seen.extend(worker.seen);
        for (medication, buckets) in worker.wanted {
            let all = wanted.entry(medication).or_default();
            for b in buckets {
                if !all.contains(&b) {
                    all.push(b);
                }
            }
        }
    }
    let mut joined: Vec<BufWriter<File>> = (0..n)
        .map(|i| scratch::create_file(&bucket_file(i, "medications")).map(BufWriter::new))
        .collect::<io::Result<_>>()?;
    for w in 0..threads {
        join_medications(&medications_file(w), &wanted, &mut joined)?;
        std::fs::remove_file(medications_file(w))?;
    }
    if let Some(read) = missing_medications {
        let mut missing: Vec<String> = wanted
            .keys()
            .filter(|id| !seen.contains(*id))
            .cloned()
            .collect();
        if !missing.is_empty() {
            missing.sort();
            let fetched = work.join("medications-fetched.ndjson");
            let mut out = BufWriter::new(scratch::create_file(&fetched)?);
            for text in read(missing)? {
                // Held to an input line's length, so that the bucket files' lines stay bounded
                // (a server's answer may be longer); counted as such a line is.
                if text.len() >= MAX_LINE {
                    stats.malformed_lines += 1;
                    continue;
                }
                stats.medications += 1;
                writeln!(out, "{text}")?;
            }
            out.flush()?;
            drop(out);
            join_medications(&fetched, &wanted, &mut joined)?;
            std::fs::remove_file(&fetched)?;
        }
    }
    for j in &mut joined {
        j.flush()?;
    }
    progress.finish_phase();
    let buckets = (0..n)
        .map(|i| {
            (0..threads)
                .map(|w| bucket_file(i, &w.to_string()))
                .chain([bucket_file(i, "medications")])
                .collect()
        })
        .collect();
    Ok(Partition {
        buckets,
        stats,
        // A split holds its pieces open in each worker of the second pass at once, with the file
        // it reads and the Medications it sets apart.
        bound: Bound::of_bucket(
            bucket_bytes,
            files_per_worker(open_files, threads).saturating_sub(2),
        ),
        work: work.to_path_buf(),
    })
}

/// Reads the files in blocks of whole lines (of about `block` bytes) and hands them on; progress
/// counts file bytes (of a gzipped file, the packed bytes). Lines over `max_line` (at least `block`)
/// are left out of the blocks, read to their end but never held: their count is returned.
fn read_blocks(
    files: &[PathBuf],
    tx: &std::sync::mpsc::SyncSender<Vec<u8>>,
    spent: &std::sync::mpsc::Receiver<Vec<u8>>,
    progress: &Progress,
    block_size: usize,
    max_line: usize,
) -> io::Result<u64> {
    let consumed = Arc::new(AtomicU64::new(0));
    let mut reported = 0;
    let mut too_long = 0;
    for file in files {
        let mut reader = open_ndjson(file, consumed.clone())?;
        loop {
            let mut block = spent
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(block_size + 64 * 1024));
            let n = (&mut reader)
                .take(block_size as u64)
                .read_to_end(&mut block)?;
            if n == 0 {
                break;
            }
            // The block's last line, cut where the block ends, is read to its end.
            if block.last() != Some(&b'\n') {
                let start = block.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                let room = max_line.saturating_sub(block.len() - start);
                if !append_line(&mut reader, &mut block, room)? {
                    block.truncate(start);
                    too_long += 1;
                }
            }
            let now = consumed.load(Ordering::Relaxed);
            progress.advance(now - reported);
            reported = now;
            if tx.send(block).is_err() {
                return Err(io::Error::other("the first pass's workers stopped"));
            }
        }
    }
    Ok(too_long)
}

/// Reads the rest of a line (through its break, or to the end of the input) and appends it to
/// `buf` when it is at most `room` bytes; a longer one is read to its end without being held, and
/// `false` says so (what was appended of it is the caller's to drop).
pub fn append_line(reader: &mut impl BufRead, buf: &mut Vec<u8>, room: usize) -> io::Result<bool> {
    let mut appended = 0;
    let mut fits = true;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(fits);
        }
        let (len, ended) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if fits && appended + len <= room {
            buf.extend_from_slice(&available[..len]);
            appended += len;
        } else {
            fits = false;
        }
        reader.consume(len);
        if ended {
            return Ok(fits);
        }
    }
}

impl InputStats {
    fn add(&mut self, o: &InputStats) {
        self.lines += o.lines;
        self.patients += o.patients;
        self.clinical_resources += o.clinical_resources;
        self.medications += o.medications;
        self.malformed_lines += o.malformed_lines;
        self.other_type += o.other_type;
        self.no_patient += o.no_patient;
        self.bad_patient_id += o.bad_patient_id;
        self.bad_medication_id += o.bad_medication_id;
        self.other_shard += o.other_shard;
    }
}

impl Worker {
    fn take_line(&mut self, line: &[u8], shard: Shard) -> io::Result<()> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // A UTF-8 byte order mark (at the start of a file, or of one concatenated into it) is no
        // part of the JSON.
        let line = line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        self.stats.lines += 1;
        let Ok(text) = std::str::from_utf8(line) else {
            self.stats.malformed_lines += 1;
            return Ok(());
        };
        route(
            text,
            shard,
            &mut self.writers,
            &mut self.medications,
            &mut self.wanted,
            &mut self.seen,
            &mut self.stats,
        )
    }
}

fn route(
    text: &str,
    shard: Shard,
    writers: &mut [BufWriter<File>],
    medications: &mut BufWriter<File>,
    wanted: &mut HashMap<String, Vec<u16>>,
    seen: &mut HashSet<String>,
    stats: &mut InputStats,
) -> io::Result<()> {
    let n = writers.len();
    match classify(text) {
        Line::Patient { id } => {
            if PatientId::parse(&id).is_err() {
                stats.bad_patient_id += 1;
            } else if !shard.contains_id(&id) {
                stats.other_shard += 1;
            } else {
                stats.patients += 1;
                let w = &mut writers[bucket_of(&id, n)];
                w.write_all(&[PATIENT])?;
                w.write_all(id.as_bytes())?;
                w.write_all(b"\n")?;
            }
        }
        Line::Clinical {
            patient,
            medication,
        } => {
            if PatientId::parse(&patient).is_err() {
                stats.bad_patient_id += 1;
            } else if !shard.contains_id(&patient) {
                stats.other_shard += 1;
            } else {
                stats.clinical_resources += 1;
                let bucket = bucket_of(&patient, n);
                write_tagged(&mut writers[bucket], RESOURCE, &patient, text)?;
                if let Some(medication) = medication {
                    let buckets = wanted.entry(medication).or_default();
                    if !buckets.contains(&(bucket as u16)) {
                        buckets.push(bucket as u16);
                    }
                }
            }
        }
        Line::Medication { id } => {
            stats.medications += 1;
            seen.insert(id.into_owned());
            medications.write_all(text.as_bytes())?;
            medications.write_all(b"\n")?;
        }
        Line::BadId => stats.bad_medication_id += 1,
        Line::NoPatient => stats.no_patient += 1,
        Line::OtherType => stats.other_type += 1,
        Line::Malformed => stats.malformed_lines += 1,
    }
    Ok(())
}

fn write_tagged(w: &mut BufWriter<File>, tag: u8, key: &str, json: &str) -> io::Result<()> {
    w.write_all(&[tag])?;
    w.write_all(key.as_bytes())?;
    w.write_all(b"\t")?;
    w.write_all(json.as_bytes())?;
    w.write_all(b"\n")
}

/// Copies each Medication into the buckets whose resources reference it.
fn join_medications(
    path: &Path,
    wanted: &HashMap<String, Vec<u16>>,
    writers: &mut [BufWriter<File>],
) -> io::Result<()> {
    if wanted.is_empty() {
        return Ok(());
    }
    let reader = BufReader::with_capacity(256 * 1024, File::open(path)?);
    for line in reader.lines() {
        let line = line?;
        if let Line::Medication { id } = classify(&line)
            && let Some(buckets) = wanted.get(id.as_ref())
        {
            for &b in buckets {
                write_tagged(&mut writers[usize::from(b)], MEDICATION, &id, &line)?;
            }
        }
    }
    Ok(())
}

/// One patient's lines in a bucket.
pub struct Group<'a> {
    pub patient: &'a str,
    /// Whether the patient's own Patient resource was among the input (resources of a patient who
    /// is not are not screened: no one by that id is in the population).
    pub listed: bool,
    /// Whether the patient's lines are over what a worker may hold (then `resources` is empty:
    /// they were not read).
    pub too_large: bool,
    pub resources: Vec<&'a str>,
}

/// A bucket's text, grouped by patient (in id order, so runs are reproducible), and its
/// Medications by id.
pub fn group_bucket(text: &str) -> (Vec<Group<'_>>, HashMap<&str, &str>) {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut medications = HashMap::new();
    for line in text.lines() {
        let (Some(&tag), Some(rest)) = (line.as_bytes().first(), line.get(1..)) else {
            continue;
        };
        let (key, json) = match tag {
            PATIENT => (rest, None),
            _ => match rest.split_once('\t') {
                Some((key, json)) => (key, Some(json)),
                None => continue,
            },
        };
        if tag == MEDICATION {
            if let Some(json) = json {
                medications.entry(key).or_insert(json);
            }
            continue;
        }
        let slot = *index.entry(key).or_insert_with(|| {
            groups.push(Group {
                patient: key,
                listed: false,
                too_large: false,
                resources: Vec::new(),
            });
            groups.len() - 1
        });
        match json {
            None => groups[slot].listed = true,
            Some(json) => groups[slot].resources.push(json),
        }
    }
    groups.sort_unstable_by(|a, b| a.patient.cmp(b.patient));
    (groups, medications)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `read_blocks` hands on for `files`, with blocks of `block` bytes and lines up to
    /// `max_line`: the blocks joined, and how many lines were too long.
    fn blocks_of(files: &[PathBuf], block: usize, max_line: usize) -> (Vec<u8>, u64) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1 << 16);
        let (_spent_tx, spent) = std::sync::mpsc::sync_channel(1);
        let too_long =
            read_blocks(files, &tx, &spent, &Progress::new(false), block, max_line).expect("reads");
        drop(tx);
        let blocks: Vec<Vec<u8>> = rx.iter().collect();
        if let Some((_, all_but_last)) = blocks.split_last() {
            assert!(
                all_but_last
                    .iter()
                    .all(|b| b.is_empty() || b.ends_with(b"\n")),
                "every block but the last ends with a whole line"
            );
        }
        for file in files {
            std::fs::remove_file(file).unwrap();
        }
        (blocks.concat(), too_long)
    }

    fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("trdscreen-blocks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn gzip(members: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for member in members {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(member).unwrap();
            out.extend(gz.finish().unwrap());
        }
        out
    }

    #[test]
    fn lines_longer_than_a_block_and_a_last_line_without_a_break_are_read_whole() {
        let text = format!(
            "{}\n{}\nshort\n\n{}",
            "a".repeat(10),
            "b".repeat(40),
            "c".repeat(30)
        );
        let file = temp_file("plain.ndjson", text.as_bytes());
        assert_eq!(blocks_of(&[file], 16, 64), (text.into_bytes(), 0));
    }

    #[test]
    fn a_line_over_the_bound_is_read_to_its_end_but_not_held_and_is_counted() {
        let long = "x".repeat(100);
        let text = format!("first\n{long}\nmiddle\n{long}{long}\nlast\n{long}");
        let file = temp_file("long.ndjson", text.as_bytes());
        let (read, too_long) = blocks_of(&[file], 16, 64);
        assert_eq!(String::from_utf8(read).unwrap(), "first\nmiddle\nlast\n");
        assert_eq!(too_long, 3);
    }

    #[test]
    fn gzipped_lines_read_as_the_plain_ones_even_across_members_and_a_bomb_is_bounded() {
        // A line split over two gzip members (as `cat a.gz b.gz` makes) is one line.
        let members: [&[u8]; 2] = [b"{\"a\":1}\n{\"b\":", b"2}\nlast"];
        let file = temp_file("two.ndjson.gz", &gzip(&members));
        assert_eq!(
            blocks_of(&[file], 4, 64),
            (b"{\"a\":1}\n{\"b\":2}\nlast".to_vec(), 0)
        );
        // Ten megabytes of spaces with no line break pack into a few kilobytes: never held whole.
        let bomb = vec![b' '; 10 * 1024 * 1024];
        let file = temp_file("bomb.ndjson.gz", &gzip(&[b"before\n", &bomb, b"\nafter\n"]));
        let (read, too_long) = blocks_of(&[file], 64 * 1024, 1024 * 1024);
        assert_eq!(String::from_utf8(read).unwrap(), "before\nafter\n");
        assert_eq!(too_long, 1);
    }

    #[test]
    fn the_first_pass_counts_a_line_over_the_bound_as_malformed_and_routes_the_rest() {
        let dir = std::env::temp_dir().join(format!("trdscreen-over-{}", std::process::id()));
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let photo = "A".repeat(MAX_LINE);
        let input = dir.join("Patient.ndjson");
        std::fs::write(
            &input,
            format!(
                "{{\"resourceType\":\"Patient\",\"id\":\"p1\"}}\n\
                 {{\"resourceType\":\"Patient\",\"id\":\"p2\",\"photo\":[{{\"data\":\"{photo}\"}}]}}\n\
                 {{\"resourceType\":\"Condition\",\"subject\":{{\"reference\":\"Patient/p1\"}}}}\n"
            ),
        )
        .unwrap();
        let shard = Shard::new(0, 1).unwrap();
        let parts =
            partition(&[input], shard, &work, 1 << 20, &Progress::new(false), None).unwrap();
        assert_eq!(
            (
                parts.stats.lines,
                parts.stats.malformed_lines,
                parts.stats.patients,
                parts.stats.clinical_resources
            ),
            (3, 1, 1, 1)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bucket_groups_lines_by_patient_and_keeps_medications_apart() {
        let text =
            "Rp2\t{\"a\":1}\nPp1\nMm1\t{\"m\":1}\nRp1\t{\"b\":2}\nPp2\nRp1\t{\"c\":3}\nRp3\t{}\n";
        let (groups, meds) = group_bucket(text);
        let summary: Vec<(&str, bool, usize)> = groups
            .iter()
            .map(|g| (g.patient, g.listed, g.resources.len()))
            .collect();
        assert_eq!(
            summary,
            [("p1", true, 2), ("p2", true, 1), ("p3", false, 1)]
        );
        assert_eq!(meds.get("m1"), Some(&"{\"m\":1}"));
    }

    #[test]
    fn buckets_fill_evenly_inside_one_shard() {
        let shard = Shard::new(1, 4).unwrap();
        let mut counts = [0u32; 8];
        for i in 0..40_000 {
            let id = format!("syn-{i:08}");
            if shard.contains_id(&id) {
                counts[bucket_of(&id, 8)] += 1;
            }
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 1_000 && *max < 1_500, "{counts:?}");
    }

    #[test]
    fn a_large_input_gets_bigger_buckets_rather_than_more_files_than_it_may_open() {
        let mib = 1024 * 1024;
        // 8 GB (a million synthetic patients) in 16 MiB buckets: 513 of them.
        assert_eq!(bucket_count(8_200 * mib, 16 * mib, 20_000, 2), 513);
        // With the common soft limit of 1,024 and two workers, each holding every bucket open.
        assert_eq!(bucket_count(8_200 * mib, 16 * mib, 1_024, 2), 448);
        assert_eq!(bucket_count(8_200 * mib, 16 * mib, 1_024, 16), 56);
        // Never none, never more than 1,024.
        assert_eq!(bucket_count(0, 16 * mib, 20_000, 2), 1);
        assert_eq!(bucket_count(8_200 * mib, 16 * mib, 10, 2), 1);
        assert_eq!(bucket_count(u64::MAX / 2, mib, u64::MAX, 1), 1024);
    }
}
