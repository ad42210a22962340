//! One bucket's text for the second pass, never more than a worker may hold.
//!
//! The first pass sizes its buckets from the input's size on disk, which is not what the second
//! pass reads: a gzipped export unpacks to many times its size (a gzip bomb to any size), and
//! more input than 1,024 buckets of the configured size makes bigger buckets. A bucket that grew
//! past the bound is split by patient into smaller files before it is read, and a patient whose
//! own lines are over the bound on their own is named and not read, so that no bucket, however it
//! came, is held whole in memory.

use super::partition::{MAX_LINE, MEDICATION, PATIENT, append_line};
use super::scratch;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use trdscreen_core::fnv::Fnv1a;

/// How much of a bucket one worker holds at once, and the size of the pieces a larger one is
/// split into.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// The most text held at once: a piece, with the Medications its patients reference.
    pub hold: u64,
    /// The size a split aims its pieces at.
    pub piece: u64,
}

impl Bound {
    /// From the configured bucket size: a bucket may grow to eight times it (a patient's own
    /// lines too) before it is split.
    pub fn of_bucket(bucket_bytes: u64) -> Bound {
        let piece = bucket_bytes.max(1);
        Bound {
            hold: piece.saturating_mul(8),
            piece,
        }
    }
}

/// What the second pass gets from a bucket.
pub enum Piece<'t> {
    /// Whole patients' lines, tagged as the first pass wrote them, with the Medications they
    /// reference.
    Text(&'t str),
    /// A patient whose own lines are over [`Bound::hold`]: not read, so not screened.
    TooLarge { patient: &'t str, listed: bool },
}

/// Most ways a bucket is split at once (each an open file).
const MAX_WAYS: u64 = 256;

/// Splits deep: a bucket over 256 pieces is split once more before its patients are weighed.
const MAX_DEPTH: u32 = 2;

/// The most patients weighed one by one in a piece that splitting could not bring under the bound.
const MAX_WEIGHED: usize = 100_000;

/// Longest line of a bucket file: an input line, its tag and its patient's id.
const MAX_BUCKET_LINE: usize = MAX_LINE + 1024;

/// Reads the bucket made of `files` (those present), giving `each` its pieces. The files are
/// removed once read; split files are named from `split_base` and removed once read too.
///
/// `text` is the worker's buffer, reused for every piece.
pub fn take(
    files: &[PathBuf],
    split_base: &Path,
    bound: Bound,
    text: &mut String,
    each: &mut dyn FnMut(Piece) -> io::Result<()>,
) -> io::Result<()> {
    let present: Vec<PathBuf> = files.iter().filter(|p| p.exists()).cloned().collect();
    let size = size_of(&present)?;
    if size <= bound.hold {
        read_into(&present, text)?;
        remove_all(&present)?;
        return each(Piece::Text(text));
    }
    let splitter = Splitter {
        base: split_base,
        bound,
    };
    splitter.split(&present, None, size, 0, text, each)
}

struct Splitter<'a> {
    base: &'a Path,
    bound: Bound,
}

impl Splitter<'_> {
    /// Splits `inputs` (`size` bytes; Medications among them, or in `medications` already set
    /// apart) by patient, then reads each piece, splitting again or weighing its patients where
    /// it is still over the bound.
    fn split(
        &self,
        inputs: &[PathBuf],
        medications: Option<&Path>,
        size: u64,
        depth: u32,
        text: &mut String,
        each: &mut dyn FnMut(Piece) -> io::Result<()>,
    ) -> io::Result<()> {
        let ways = size.div_ceil(self.bound.piece).clamp(2, MAX_WAYS) as usize;
        let name = |part: &str| {
            let mut name = self.base.as_os_str().to_owned();
            name.push(format!("-{depth}-{part}"));
            PathBuf::from(name)
        };
        let pieces: Vec<PathBuf> = (0..ways).map(|j| name(&j.to_string())).collect();
        let set_apart = name("medications");
        let mut writers = pieces
            .iter()
            .map(|p| scratch::create_file(p).map(|f| BufWriter::with_capacity(32 * 1024, f)))
            .collect::<io::Result<Vec<_>>>()?;
        let mut set_apart_writer: Option<BufWriter<File>> = None;
        for_each_line(inputs, |line| {
            match tagged_key(line) {
                Some((MEDICATION, _)) => {
                    let w = match &mut set_apart_writer {
                        Some(w) => w,
                        None => set_apart_writer
                            .insert(BufWriter::new(scratch::create_file(&set_apart)?)),
                    };
                    w.write_all(line)?;
                }
                Some((_, key)) => writers[way_of(key, depth, ways)].write_all(line)?,
                None => {}
            }
            Ok(())
        })?;
        remove_all(inputs)?;
        for w in &mut writers {
            w.flush()?;
        }
        drop(writers);
        let medications = match set_apart_writer {
            Some(mut w) => {
                w.flush()?;
                Some(set_apart.as_path())
            }
            None => medications,
        };
        let medications_size = medications.map_or(Ok(0), |m| size_of(&[m.to_path_buf()]))?;
        let read = (|| {
            for piece in &pieces {
                let piece_size = size_of(std::slice::from_ref(piece))?;
                if piece_size == 0 {
                    std::fs::remove_file(piece)?;
                } else if piece_size + medications_size <= self.bound.hold {
                    let mut files = vec![piece.clone()];
                    files.extend(medications.map(Path::to_path_buf));
                    read_into(&files, text)?;
                    std::fs::remove_file(piece)?;
                    each(Piece::Text(text))?;
                } else if depth + 1 < MAX_DEPTH && piece_size > self.bound.piece {
                    self.split(
                        std::slice::from_ref(piece),
                        medications,
                        piece_size,
                        depth + 1,
                        text,
                        each,
                    )?;
                } else {
                    self.weigh(piece, medications, medications_size, text, each)?;
                }
            }
            Ok(())
        })();
        // A piece not read (an error, or a worker told to stop) goes with the scratch directory.
        if set_apart.exists() {
            std::fs::remove_file(&set_apart)?;
        }
        read
    }

    /// A piece still over the bound: its patients are weighed, and those whose own lines (with
    /// the Medications) are over it are named; the others are read together.
    fn weigh(
        &self,
        piece: &Path,
        medications: Option<&Path>,
        medications_size: u64,
        text: &mut String,
        each: &mut dyn FnMut(Piece) -> io::Result<()>,
    ) -> io::Result<()> {
        let inputs = [piece.to_path_buf()];
        let mut weights: HashMap<Vec<u8>, (u64, bool)> = HashMap::new();
        for_each_line(&inputs, |line| {
            if let Some((tag, key)) = tagged_key(line) {
                if !weights.contains_key(key) && weights.len() >= MAX_WEIGHED {
                    return Err(unsplittable());
                }
                let weight = weights.entry(key.to_vec()).or_default();
                weight.0 += line.len() as u64;
                weight.1 |= tag == PATIENT;
            }
            Ok(())
        })?;
        let mut too_large: Vec<(Vec<u8>, bool)> = weights
            .into_iter()
            .filter(|(_, (bytes, _))| bytes + medications_size > self.bound.hold)
            .map(|(patient, (_, listed))| (patient, listed))
            .collect();
        too_large.sort_unstable();
        let skipped: HashSet<&[u8]> = too_large.iter().map(|(p, _)| p.as_slice()).collect();
        text.clear();
        let mut kept_size = medications_size;
        for_each_line(&inputs, |line| {
            if let Some((_, key)) = tagged_key(line)
                && !skipped.contains(key)
            {
                kept_size += line.len() as u64;
                if kept_size > self.bound.hold {
                    return Err(unsplittable());
                }
                text.push_str(std::str::from_utf8(line).map_err(|_| damaged())?);
            }
            Ok(())
        })?;
        std::fs::remove_file(piece)?;
        if !text.is_empty() {
            if let Some(m) = medications {
                File::open(m)?.read_to_string(text)?;
            }
            each(Piece::Text(text))?;
        }
        for (patient, listed) in &too_large {
            let patient = std::str::from_utf8(patient).map_err(|_| damaged())?;
            each(Piece::TooLarge {
                patient,
                listed: *listed,
            })?;
        }
        Ok(())
    }
}

/// The piece of a split at `depth` a patient's lines go to: a mix of their id's hash seeded by
/// the depth, so that a second split does not follow the first (nor the buckets) along.
fn way_of(patient: &[u8], depth: u32, ways: usize) -> usize {
    let seed = 0x2545_f491_4f6c_dd1d_u64.wrapping_mul(u64::from(depth) + 1);
    (splitmix(stable_hash_bytes(patient) ^ seed) % ways as u64) as usize
}

fn stable_hash_bytes(patient: &[u8]) -> u64 {
    let mut h = Fnv1a::default();
    h.update(patient);
    h.value()
}

/// The finaliser of SplitMix64: every bit of the input moves every bit of the output.
fn splitmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A bucket line's tag and key (its patient, or a Medication's id); `None` for a line of no known
/// form, which the grouping would skip too.
fn tagged_key(line: &[u8]) -> Option<(u8, &[u8])> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let (&tag, rest) = line.split_first()?;
    match tag {
        PATIENT => Some((tag, rest)),
        _ => {
            let tab = rest.iter().position(|&b| b == b'\t')?;
            Some((tag, &rest[..tab]))
        }
    }
}

/// Each line of the files (its break included), read one at a time.
fn for_each_line(
    files: &[PathBuf],
    mut each: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut line = Vec::new();
    for file in files {
        let mut reader = BufReader::with_capacity(256 * 1024, File::open(file)?);
        loop {
            line.clear();
            if !append_line(&mut reader, &mut line, MAX_BUCKET_LINE)? {
                return Err(damaged());
            }
            if line.is_empty() {
                break;
            }
            each(&line)?;
        }
    }
    Ok(())
}

fn read_into(files: &[PathBuf], text: &mut String) -> io::Result<()> {
    text.clear();
    for file in files {
        File::open(file)?.read_to_string(text)?;
    }
    Ok(())
}

fn size_of(files: &[PathBuf]) -> io::Result<u64> {
    let mut size = 0;
    for file in files {
        size += std::fs::metadata(file)?.len();
    }
    Ok(size)
}

fn remove_all(files: &[PathBuf]) -> io::Result<()> {
    for file in files {
        std::fs::remove_file(file)?;
    }
    Ok(())
}

fn damaged() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "a bucket file in the work directory is damaged",
    )
}

fn unsplittable() -> io::Error {
    io::Error::other(
        "a bucket could not be split under the memory bound (batch.bucket_kilobytes times eight)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("trdscreen-bucket-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A resource line of `patient`, padded to about `bytes`.
    fn resource(patient: &str, n: usize, bytes: usize) -> String {
        let pad = "x".repeat(bytes.saturating_sub(40));
        format!("R{patient}\t{{\"n\":{n},\"pad\":\"{pad}\"}}\n")
    }

    /// What `take` gives, as each piece's lines (sorted) and the patients named too large.
    fn pieces(
        files: &[PathBuf],
        dir: &Path,
        bound: Bound,
    ) -> (Vec<Vec<String>>, Vec<(String, bool)>) {
        let mut texts = Vec::new();
        let mut too_large = Vec::new();
        let mut text = String::new();
        take(
            files,
            &dir.join("bucket-0000-split"),
            bound,
            &mut text,
            &mut |piece| {
                match piece {
                    Piece::Text(t) => {
                        assert!(t.len() as u64 <= bound.hold, "a piece over the bound");
                        let mut lines: Vec<String> = t.lines().map(str::to_owned).collect();
                        lines.sort();
                        texts.push(lines);
                    }
                    Piece::TooLarge { patient, listed } => {
                        too_large.push((patient.to_owned(), listed))
                    }
                }
                Ok(())
            },
        )
        .unwrap();
        (texts, too_large)
    }

    /// The patient of each line in a piece (Medications left out).
    fn patients_of(piece: &[String]) -> HashSet<String> {
        piece
            .iter()
            .filter_map(|l| tagged_key(l.as_bytes()))
            .filter(|(tag, _)| *tag != MEDICATION)
            .map(|(_, key)| String::from_utf8(key.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn a_bucket_within_the_bound_is_read_whole_and_its_files_removed() {
        let dir = scratch_dir("whole");
        let files = [dir.join("a"), dir.join("b"), dir.join("absent")];
        std::fs::write(&files[0], "Pp1\n").unwrap();
        std::fs::write(&files[1], resource("p1", 1, 100)).unwrap();
        let (texts, too_large) = pieces(&files, &dir, Bound::of_bucket(1024));
        assert_eq!(texts.len(), 1);
        assert_eq!(texts[0].len(), 2);
        assert!(too_large.is_empty());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "nothing left");
    }

    #[test]
    fn a_bucket_grown_past_the_bound_is_split_and_every_patient_stays_whole_with_the_medications() {
        let dir = scratch_dir("split");
        let bound = Bound {
            hold: 8 * 1024,
            piece: 1024,
        };
        // 200 patients of 3 lines of 100 bytes: 60 KB, seven and a half times the bound.
        let mut worker_0 = String::new();
        let mut worker_1 = String::new();
        for p in 0..200 {
            worker_0.push_str(&format!("Pp{p}\n"));
            for n in 0..3 {
                worker_1.push_str(&resource(&format!("p{p}"), n, 100));
            }
        }
        let files = [dir.join("w0"), dir.join("w1"), dir.join("meds")];
        std::fs::write(&files[0], &worker_0).unwrap();
        std::fs::write(&files[1], &worker_1).unwrap();
        std::fs::write(&files[2], "Mm1\t{\"resourceType\":\"Medication\"}\n").unwrap();

        let (texts, too_large) = pieces(&files, &dir, bound);

        assert!(too_large.is_empty());
        assert!(texts.len() > 7, "split in {} pieces", texts.len());
        let mut seen = HashSet::new();
        for piece in &texts {
            assert!(piece.contains(&"Mm1\t{\"resourceType\":\"Medication\"}".to_owned()));
            for patient in patients_of(piece) {
                let lines = piece.iter().filter(|l| {
                    tagged_key(l.as_bytes()).is_some_and(|(_, k)| k == patient.as_bytes())
                });
                assert_eq!(lines.count(), 4, "{patient}: listed, and 3 resources");
                assert!(seen.insert(patient), "a patient in two pieces");
            }
        }
        assert_eq!(seen.len(), 200);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "nothing left");
    }

    #[test]
    fn a_patient_over_the_bound_on_their_own_is_named_and_the_others_are_read() {
        let dir = scratch_dir("alone");
        let bound = Bound {
            hold: 8 * 1024,
            piece: 1024,
        };
        let mut text = String::from("Pbig\n");
        for n in 0..100 {
            text.push_str(&resource("big", n, 100));
        }
        for p in 0..20 {
            text.push_str(&format!("Pp{p}\n{}", resource(&format!("p{p}"), 0, 100)));
        }
        // Resources of someone the input does not list, over the bound too.
        for n in 0..100 {
            text.push_str(&resource("stranger", n, 100));
        }
        let files = [dir.join("w0")];
        std::fs::write(&files[0], &text).unwrap();

        let (texts, mut too_large) = pieces(&files, &dir, bound);

        too_large.sort();
        assert_eq!(
            too_large,
            [("big".to_owned(), true), ("stranger".to_owned(), false)]
        );
        let read: HashSet<String> = texts.iter().flat_map(|t| patients_of(t)).collect();
        assert_eq!(read.len(), 20, "every other patient is read");
        assert!(!read.contains("big") && !read.contains("stranger"));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "nothing left");
    }

    #[test]
    fn a_split_does_not_follow_the_buckets_nor_a_second_split_the_first() {
        let spread = |together: &[String], depth: u32| {
            let mut counts = [0u32; 16];
            for p in together {
                counts[way_of(p.as_bytes(), depth, 16)] += 1;
            }
            let mean = together.len() as u32 / 16;
            assert!(
                counts.iter().all(|&c| c > mean / 2 && c < mean * 2),
                "depth {depth}: {counts:?}"
            );
        };
        let ids: Vec<String> = (0..40_000).map(|p| format!("syn-{p:08}")).collect();
        let one_bucket: Vec<String> = ids
            .iter()
            .filter(|p| super::super::partition::bucket_of(p, 8) == 3)
            .cloned()
            .collect();
        spread(&one_bucket, 0);
        let one_way: Vec<String> = one_bucket
            .into_iter()
            .filter(|p| way_of(p.as_bytes(), 0, 4) == 1)
            .collect();
        spread(&one_way, 1);
    }
}
