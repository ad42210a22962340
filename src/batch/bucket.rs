//! One bucket's text for the second pass, never more than a worker may hold.
//!
//! The first pass sizes its buckets from the input's size on disk, which is not what the second
//! pass reads: a gzipped export unpacks to many times its size (a gzip bomb to any size), and
//! more input than 1,024 buckets of the configured size makes bigger buckets. A bucket that grew
//! past the bound is split by patient into smaller files before it is read, and a patient whose
//! own lines are over the bound on their own is named and not read, so that no bucket, however it
//! came, is held whole in memory.

use super::line::{Line, classify};
use super::partition::{MAX_LINE, MEDICATION, PATIENT, RESOURCE, append_line};
use super::scratch;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// How much of a bucket one worker holds at once, and how a larger one is split.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// The most text held at once: patients' lines with the Medications they reference.
    pub hold: u64,
    /// The size a split aims its pieces at.
    pub piece: u64,
    /// The most ways one split goes (each an open file).
    pub ways: usize,
}

impl Bound {
    /// From the configured bucket size: a bucket may grow to eight times it (one patient's lines
    /// and Medications too) before it is split, at most `ways` ways at a time.
    pub fn of_bucket(bucket_bytes: u64, ways: usize) -> Bound {
        let piece = bucket_bytes.max(1);
        Bound {
            hold: piece.saturating_mul(8),
            piece,
            ways: ways.clamp(2, MAX_WAYS),
        }
    }
}

/// What the second pass gets from a bucket.
pub enum Piece<'t> {
    /// Whole patients' lines, tagged as the first pass wrote them, with the Medications they
    /// reference.
    Text(&'t str),
    /// A patient whose lines and Medications are over [`Bound::hold`]: not read, so not screened.
    TooLarge { patient: &'t str, listed: bool },
}

/// Most ways a bucket is split at once.
const MAX_WAYS: usize = 256;

/// Splits deep: a bucket over as many pieces as one split makes is split once more before its
/// patients are weighed.
const MAX_DEPTH: u32 = 2;

/// The most patients weighed one by one in a piece that splitting could not bring under the bound.
const MAX_WEIGHED: usize = 100_000;

/// Longest line of a bucket file: an input line (or a Medication read from the server, held to
/// the same length), its tag and its key.
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
        mix: RandomState::new(),
    };
    splitter.split(&present, size, 0, text, each)
}

struct Splitter<'a> {
    base: &'a Path,
    bound: Bound,
    /// Keyed anew for every bucket split: patient ids chosen to share a bucket (the bucket's hash
    /// is fixed and public, so that shards agree) still spread over the pieces.
    mix: RandomState,
}

impl Splitter<'_> {
    /// Splits `inputs` (`size` bytes) by patient, each piece with the Medications its resources
    /// reference, then reads each piece, splitting again or weighing its patients where it is
    /// still over the bound.
    fn split(
        &self,
        inputs: &[PathBuf],
        size: u64,
        depth: u32,
        text: &mut String,
        each: &mut dyn FnMut(Piece) -> io::Result<()>,
    ) -> io::Result<()> {
        let ways = (size.div_ceil(self.bound.piece) as usize).clamp(2, self.bound.ways);
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
        // Which pieces reference each Medication.
        let mut wanted: HashMap<String, Vec<usize>> = HashMap::new();
        for_each_line(inputs, |line| {
            match tagged(line) {
                Some(Tagged {
                    tag: MEDICATION, ..
                }) => {
                    let w = match &mut set_apart_writer {
                        Some(w) => w,
                        None => set_apart_writer
                            .insert(BufWriter::new(scratch::create_file(&set_apart)?)),
                    };
                    w.write_all(line)?;
                }
                Some(Tagged { tag, key, json }) => {
                    let way = way_of(&self.mix, key, depth, ways);
                    writers[way].write_all(line)?;
                    if tag == RESOURCE
                        && let Some(medication) = json.and_then(referenced_medication)
                    {
                        let ways = wanted.entry(medication).or_default();
                        if !ways.contains(&way) {
                            ways.push(way);
                        }
                    }
                }
                None => {}
            }
            Ok(())
        })?;
        remove_all(inputs)?;
        if let Some(mut w) = set_apart_writer {
            w.flush()?;
            drop(w);
            for_each_line(std::slice::from_ref(&set_apart), |line| {
                if let Some(Tagged { key, .. }) = tagged(line)
                    && let Some(ways) = std::str::from_utf8(key).ok().and_then(|k| wanted.get(k))
                {
                    for &way in ways {
                        writers[way].write_all(line)?;
                    }
                }
                Ok(())
            })?;
            std::fs::remove_file(&set_apart)?;
        }
        drop(wanted);
        for w in &mut writers {
            w.flush()?;
        }
        drop(writers);
        for piece in &pieces {
            let piece_size = size_of(std::slice::from_ref(piece))?;
            if piece_size == 0 {
                std::fs::remove_file(piece)?;
            } else if piece_size <= self.bound.hold {
                read_into(std::slice::from_ref(piece), text)?;
                std::fs::remove_file(piece)?;
                each(Piece::Text(text))?;
            } else if depth + 1 < MAX_DEPTH && piece_size > self.bound.piece {
                self.split(
                    std::slice::from_ref(piece),
                    piece_size,
                    depth + 1,
                    text,
                    each,
                )?;
            } else {
                self.weigh(piece, text, each)?;
            }
        }
        Ok(())
    }

    /// A piece still over the bound: its patients are weighed with the Medications they
    /// reference. Those over the bound are named; the others are read in groups under it.
    fn weigh(
        &self,
        piece: &Path,
        text: &mut String,
        each: &mut dyn FnMut(Piece) -> io::Result<()>,
    ) -> io::Result<()> {
        let inputs = [piece.to_path_buf()];
        let mut patients: HashMap<Vec<u8>, Weight> = HashMap::new();
        let mut medications: HashMap<String, u64> = HashMap::new();
        for_each_line(&inputs, |line| {
            match tagged(line) {
                Some(Tagged {
                    tag: MEDICATION,
                    key,
                    ..
                }) => {
                    let key = std::str::from_utf8(key).map_err(|_| damaged())?;
                    medications
                        .entry(key.to_owned())
                        .or_insert(line.len() as u64);
                }
                Some(Tagged { tag, key, json }) => {
                    if !patients.contains_key(key) && patients.len() >= MAX_WEIGHED {
                        return Err(unsplittable());
                    }
                    let weight = patients.entry(key.to_vec()).or_default();
                    weight.bytes += line.len() as u64;
                    weight.listed |= tag == PATIENT;
                    if weight.bytes > self.bound.hold {
                        // Too large on their own lines: their Medications no longer matter, and
                        // a patient with a Medication per order would make the set as large as
                        // the piece.
                        weight.medications = HashSet::new();
                    } else if let Some(medication) = json.and_then(referenced_medication) {
                        weight.medications.insert(medication);
                    }
                }
                None => {}
            }
            Ok(())
        })?;
        let mut patients: Vec<(Vec<u8>, Weight)> = patients.into_iter().collect();
        patients.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut too_large = Vec::new();
        // Groups of patients read together, each under the bound with their Medications (each
        // Medication counted once in a group, as it is read once).
        let mut groups: Vec<Group> = Vec::new();
        for (patient, weight) in patients {
            let bytes_of = |wanted: &HashSet<String>| {
                weight.bytes
                    + weight
                        .medications
                        .iter()
                        .filter(|m| !wanted.contains(*m))
                        .filter_map(|m| medications.get(m))
                        .sum::<u64>()
            };
            let alone = bytes_of(&HashSet::new());
            if alone > self.bound.hold {
                too_large.push((patient, weight.listed));
                continue;
            }
            let fits = groups
                .last()
                .is_some_and(|g| g.bytes + bytes_of(&g.wanted) <= self.bound.hold);
            if !fits {
                groups.push(Group::default());
            }
            if let Some(group) = groups.last_mut() {
                group.bytes += bytes_of(&group.wanted);
                group.members.insert(patient);
                group.wanted.extend(weight.medications);
            }
        }
        for Group {
            members,
            wanted,
            bytes,
        } in &groups
        {
            text.clear();
            text.reserve_exact(usize::try_from(*bytes).unwrap_or(usize::MAX));
            let mut added: HashSet<&str> = HashSet::new();
            for_each_line(&inputs, |line| {
                let keep = match tagged(line) {
                    Some(Tagged {
                        tag: MEDICATION,
                        key,
                        ..
                    }) => std::str::from_utf8(key)
                        .ok()
                        .and_then(|k| wanted.get(k))
                        .is_some_and(|k| added.insert(k.as_str())),
                    Some(Tagged { key, .. }) => members.contains(key),
                    None => false,
                };
                if keep {
                    text.push_str(std::str::from_utf8(line).map_err(|_| damaged())?);
                }
                Ok(())
            })?;
            each(Piece::Text(text))?;
        }
        std::fs::remove_file(piece)?;
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

/// Patients read together from a piece that is over the bound, and the Medications they reference.
#[derive(Default)]
struct Group {
    members: HashSet<Vec<u8>>,
    wanted: HashSet<String>,
    /// Their lines and Medications together.
    bytes: u64,
}

/// A patient's share of a piece: their lines' bytes, whether the input lists them, and the
/// Medications their resources reference.
#[derive(Default)]
struct Weight {
    bytes: u64,
    listed: bool,
    medications: HashSet<String>,
}

/// A bucket line read back: its tag, its key (a patient, or a Medication's id) and its JSON.
struct Tagged<'l> {
    tag: u8,
    key: &'l [u8],
    json: Option<&'l [u8]>,
}

/// `None` for a line of no known form, which the grouping skips too.
fn tagged(line: &[u8]) -> Option<Tagged<'_>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let (&tag, rest) = line.split_first()?;
    match tag {
        PATIENT => Some(Tagged {
            tag,
            key: rest,
            json: None,
        }),
        _ => {
            let tab = rest.iter().position(|&b| b == b'\t')?;
            Some(Tagged {
                tag,
                key: &rest[..tab],
                json: Some(&rest[tab + 1..]),
            })
        }
    }
}

/// The Medication a resource line references, read as the first pass read it.
fn referenced_medication(json: &[u8]) -> Option<String> {
    match classify(std::str::from_utf8(json).ok()?) {
        Line::Clinical { medication, .. } => medication,
        _ => None,
    }
}

/// The piece of a split at `depth` a patient's lines go to: a keyed hash (SipHash) of the id and
/// the depth, so that a second split does not follow the first along, and nobody who chooses ids
/// can choose them to fall together.
fn way_of(mix: &RandomState, patient: &[u8], depth: u32, ways: usize) -> usize {
    (mix.hash_one((depth, patient)) % ways as u64) as usize
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

/// The files' text, in a buffer grown to exactly their size (a `String` grown as it is read may
/// double past it, and the buffer is kept for the next piece).
fn read_into(files: &[PathBuf], text: &mut String) -> io::Result<()> {
    text.clear();
    text.reserve_exact(usize::try_from(size_of(files)?).unwrap_or(usize::MAX));
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
    io::Error::other(format!(
        "a bucket could not be split under the memory bound (eight times batch.bucket_kilobytes): over {MAX_WEIGHED} patients fell in one piece"
    ))
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

    /// A small bound: pieces of 1 KiB, 8 KiB held at once.
    const SMALL: Bound = Bound {
        hold: 8 * 1024,
        piece: 1024,
        ways: 256,
    };

    /// [`SMALL`] split two ways at a time: two levels cannot separate 40 patients, whose pieces are
    /// then weighed.
    const TWO_WAYS: Bound = Bound { ways: 2, ..SMALL };

    /// A resource line of `patient`, padded to about `bytes`, referencing `medication` if any.
    fn resource(patient: &str, n: usize, bytes: usize, medication: Option<&str>) -> String {
        let pad = "x".repeat(bytes.saturating_sub(150));
        let reference = medication
            .map(|m| format!(",\"medicationReference\":{{\"reference\":\"Medication/{m}\"}}"))
            .unwrap_or_default();
        format!(
            "R{patient}\t{{\"resourceType\":\"MedicationRequest\",\"id\":\"{patient}-{n}\",\"subject\":{{\"reference\":\"Patient/{patient}\"}}{reference},\"note\":[{{\"text\":\"{pad}\"}}]}}\n"
        )
    }

    fn medication(id: &str, bytes: usize) -> String {
        let pad = "x".repeat(bytes.saturating_sub(60));
        format!("M{id}\t{{\"resourceType\":\"Medication\",\"id\":\"{id}\",\"pad\":\"{pad}\"}}\n")
    }

    /// What `take` gives: each piece's patients (with their line counts) and Medications, and the
    /// patients named too large.
    struct Taken {
        pieces: Vec<(HashMap<String, usize>, HashSet<String>)>,
        too_large: Vec<(String, bool)>,
    }

    fn take_all(files: &[PathBuf], dir: &Path, bound: Bound) -> Taken {
        let mut taken = Taken {
            pieces: Vec::new(),
            too_large: Vec::new(),
        };
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
                        let mut patients = HashMap::new();
                        let mut medications = HashSet::new();
                        for line in t.lines() {
                            let line = tagged(line.as_bytes()).unwrap();
                            let key = String::from_utf8(line.key.to_vec()).unwrap();
                            if line.tag == MEDICATION {
                                assert!(medications.insert(key), "a Medication twice in a piece");
                            } else {
                                *patients.entry(key).or_default() += 1;
                            }
                        }
                        taken.pieces.push((patients, medications));
                    }
                    Piece::TooLarge { patient, listed } => {
                        taken.too_large.push((patient.to_owned(), listed))
                    }
                }
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0, "nothing left");
        taken.too_large.sort();
        taken
    }

    /// Every patient is in exactly one piece, with every one of their lines.
    fn assert_whole(taken: &Taken, lines_of: impl Fn(&str) -> usize, patients: usize) {
        let mut seen = HashSet::new();
        for (piece, _) in &taken.pieces {
            for (patient, lines) in piece {
                assert_eq!(*lines, lines_of(patient), "{patient}'s lines");
                assert!(seen.insert(patient.clone()), "{patient} in two pieces");
            }
        }
        assert_eq!(seen.len(), patients);
    }

    #[test]
    fn a_bucket_within_the_bound_is_read_whole_and_its_files_removed() {
        let dir = scratch_dir("whole");
        let files = [dir.join("a"), dir.join("b"), dir.join("absent")];
        std::fs::write(&files[0], "Pp1\n").unwrap();
        std::fs::write(&files[1], resource("p1", 1, 200, None)).unwrap();
        let taken = take_all(&files, &dir, Bound::of_bucket(1024, 256));
        assert_eq!(taken.pieces.len(), 1);
        assert_whole(&taken, |_| 2, 1);
        assert!(taken.too_large.is_empty());
    }

    #[test]
    fn a_bucket_grown_past_the_bound_is_split_and_each_piece_has_its_patients_medications() {
        let dir = scratch_dir("split");
        // 200 patients of 3 lines of 200 bytes: 120 KB, fifteen times the bound. Every tenth
        // patient takes m1; every patient p takes their own mp.
        let (mut worker_0, mut worker_1, mut medications) =
            (String::new(), String::new(), String::new());
        for p in 0..200 {
            worker_0.push_str(&format!("Pp{p}\n"));
            worker_1.push_str(&resource(&format!("p{p}"), 0, 200, None));
            worker_1.push_str(&resource(
                &format!("p{p}"),
                1,
                200,
                Some(&format!("m-p{p}")),
            ));
            let shared = (p % 10 == 0).then_some("m1");
            worker_1.push_str(&resource(&format!("p{p}"), 2, 200, shared));
            medications.push_str(&medication(&format!("m-p{p}"), 100));
        }
        medications.push_str(&medication("m1", 100));
        medications.push_str(&medication("m-nobody", 100));
        let files = [dir.join("w0"), dir.join("w1"), dir.join("meds")];
        std::fs::write(&files[0], &worker_0).unwrap();
        std::fs::write(&files[1], &worker_1).unwrap();
        std::fs::write(&files[2], &medications).unwrap();

        let taken = take_all(&files, &dir, SMALL);

        assert!(taken.too_large.is_empty());
        assert!(taken.pieces.len() > 15, "{} pieces", taken.pieces.len());
        assert_whole(&taken, |_| 4, 200);
        for (patients, medications) in &taken.pieces {
            let mut wanted: HashSet<String> = patients.keys().map(|p| format!("m-{p}")).collect();
            let shared = patients
                .keys()
                .any(|p| p[1..].parse::<u32>().unwrap() % 10 == 0);
            if shared {
                wanted.insert("m1".into());
            }
            assert_eq!(
                medications, &wanted,
                "a piece's Medications are its patients'"
            );
        }
    }

    #[test]
    fn a_patient_over_the_bound_with_their_medications_is_named_and_the_others_are_read() {
        let dir = scratch_dir("alone");
        let mut text = String::from("Pbig\n");
        for n in 0..50 {
            text.push_str(&resource("big", n, 200, None));
        }
        // Under the bound on their own lines, over it with their Medication.
        text.push_str("Pheavy\n");
        text.push_str(&resource("heavy", 0, 4 * 1024, Some("m-heavy")));
        text.push_str(&medication("m-heavy", 5 * 1024));
        for p in 0..20 {
            text.push_str(&format!(
                "Pp{p}\n{}",
                resource(&format!("p{p}"), 0, 200, None)
            ));
        }
        // Resources of someone the input does not list, over the bound too.
        for n in 0..50 {
            text.push_str(&resource("stranger", n, 200, None));
        }
        let files = [dir.join("w0")];
        std::fs::write(&files[0], &text).unwrap();

        let taken = take_all(&files, &dir, SMALL);

        assert_eq!(
            taken.too_large,
            [
                ("big".to_owned(), true),
                ("heavy".to_owned(), true),
                ("stranger".to_owned(), false)
            ]
        );
        assert_whole(&taken, |_| 2, 20);
    }

    #[test]
    fn patients_that_fit_one_by_one_but_not_together_are_read_in_groups() {
        // Two levels of two ways cannot separate these: every patient lands in a piece over the
        // bound, which is then weighed and read in groups.
        let dir = scratch_dir("groups");
        let mut text = String::new();
        for p in 0..40 {
            text.push_str(&format!("Pp{p}\n"));
            for n in 0..3 {
                text.push_str(&resource(&format!("p{p}"), n, 1000, Some("m-shared")));
            }
        }
        text.push_str(&medication("m-shared", 500));
        std::fs::write(dir.join("w0"), &text).unwrap();

        let taken = take_all(&[dir.join("w0")], &dir, TWO_WAYS);

        assert!(taken.too_large.is_empty());
        assert!(taken.pieces.len() > 4, "{} pieces", taken.pieces.len());
        assert_whole(&taken, |_| 4, 40);
        for (_, medications) in &taken.pieces {
            assert!(medications.contains("m-shared"));
        }
    }

    #[test]
    fn a_medication_shared_by_a_group_counts_once_against_the_bound() {
        // Each patient is 1 KB of lines and shares one 3 KB Medication: counted once per group,
        // five fit in 8 KiB; counted per patient, two would.
        let dir = scratch_dir("shared");
        let mut text = String::new();
        for p in 0..40 {
            text.push_str(&format!("Pp{p}\n"));
            text.push_str(&resource(&format!("p{p}"), 0, 1000, Some("m-shared")));
        }
        text.push_str(&medication("m-shared", 3000));
        std::fs::write(dir.join("w0"), &text).unwrap();

        let taken = take_all(&[dir.join("w0")], &dir, TWO_WAYS);

        assert_whole(&taken, |_| 2, 40);
        assert!(
            taken.pieces.len() * 2 < 40,
            "{} pieces for 40 patients",
            taken.pieces.len()
        );
    }

    #[test]
    fn a_patient_with_a_medication_per_order_is_weighed_and_named_too_large() {
        let dir = scratch_dir("per-order");
        let mut text = String::from("Pmany\n");
        for n in 0..20_000 {
            text.push_str(&resource("many", n, 160, Some(&format!("m{n}"))));
            text.push_str(&medication(&format!("m{n}"), 80));
        }
        text.push_str(&format!("Pp0\n{}", resource("p0", 0, 200, None)));
        std::fs::write(dir.join("w0"), &text).unwrap();

        let taken = take_all(&[dir.join("w0")], &dir, SMALL);

        assert_eq!(taken.too_large, [("many".to_owned(), true)]);
        assert_whole(&taken, |_| 2, 1);
    }

    #[test]
    fn the_workers_buffer_grows_to_what_it_reads_not_past_the_bound() {
        let dir = scratch_dir("capacity");
        let files = [dir.join("a"), dir.join("b")];
        std::fs::write(&files[0], resource("p1", 0, 7000, None)).unwrap();
        std::fs::write(&files[1], resource("p1", 1, 1000, None)).unwrap();
        let mut text = String::new();
        take(
            &files,
            &dir.join("split"),
            SMALL,
            &mut text,
            &mut |_| Ok(()),
        )
        .unwrap();
        assert!(
            text.capacity() as u64 <= SMALL.hold,
            "{} bytes held for a bound of {}",
            text.capacity(),
            SMALL.hold
        );
    }

    #[test]
    fn a_split_does_not_follow_the_buckets_nor_a_second_split_the_first() {
        let mix = RandomState::new();
        let spread = |together: &[String], depth: u32| {
            let mut counts = [0u32; 16];
            for p in together {
                counts[way_of(&mix, p.as_bytes(), depth, 16)] += 1;
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
            .filter(|p| way_of(&mix, p.as_bytes(), 0, 4) == 1)
            .collect();
        spread(&one_way, 1);
    }

    #[test]
    fn where_a_split_puts_a_patient_depends_on_a_key_of_the_splits_own() {
        // Ids that fall together under one key (as ids chosen against a public hash would) are
        // spread by the next split's key.
        let ids: Vec<String> = (0..4_000).map(|p| format!("id-{p}")).collect();
        let first = RandomState::new();
        let together: Vec<&String> = ids
            .iter()
            .filter(|p| way_of(&first, p.as_bytes(), 0, 8) == 0)
            .collect();
        assert!(together.len() > 300, "{}", together.len());
        let second = RandomState::new();
        let mut counts = [0usize; 8];
        for p in &together {
            counts[way_of(&second, p.as_bytes(), 0, 8)] += 1;
        }
        let mean = together.len() / 8;
        assert!(
            counts.iter().all(|&c| c > mean / 2 && c < mean * 2),
            "{counts:?}"
        );
    }
}
