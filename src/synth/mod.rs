//! `trdscreen synth`: a deterministic synthetic population as FHIR Bulk Data NDJSON, realistic
//! enough to exercise every screening rule (see docs/synth.md for the stories, their weights and
//! what is deliberately malformed).
//!
//! The same options give byte-identical files: each patient's record comes from its own random
//! stream (seed and index), every day is relative to `as_of`, and nothing reads the clock. Files
//! are streamed through buffered writers, one patient at a time, with buffers reused between
//! patients.

pub mod catalog;
pub mod events;
pub mod profiles;
pub mod resources;
pub mod rng;
pub mod story;

pub use profiles::{
    COVERED_HINTS, PROFILES, PatientPlan, Profile, SITUATIONS, Situation, patient_id,
};
pub use resources::{FILES, File};

use crate::date::Date;
use events::Events;
use resources::Lines;
use rng::Rng;
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// The day the committed example population and the benchmark are generated and screened as of:
/// fixed, so that their results do not drift with the calendar.
pub const DEFAULT_AS_OF: &str = "2026-11-01";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthOptions {
    pub patients: u64,
    pub seed: u64,
    pub as_of: Date,
    /// Labs and vitals per patient that screening does not read (glucose, heart rate, ...), as a
    /// hospital's export holds many of: what a `_typeFilter` keeps out. 0 by default, so a population
    /// stays byte-identical to one made without the option.
    pub unrelated_observations: u32,
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SynthSummary {
    pub patients: u64,
    /// Lines per file name (every line, the deliberately bad ones included).
    pub lines: BTreeMap<&'static str, u64>,
    pub bytes: u64,
    /// Patients per story.
    pub profiles: BTreeMap<Profile, u64>,
    /// Patients per situation.
    pub situations: BTreeMap<Situation, u64>,
    /// Lines that are not JSON (a copy of a line cut in half).
    pub malformed_lines: u64,
    /// Resources of a type other than the file's (Encounter in Observation.ndjson, Basic in
    /// Condition.ndjson).
    pub foreign_type_lines: u64,
    /// Resources whose subject is a patient missing from Patient.ndjson.
    pub orphan_resources: u64,
}

/// Which deliberately bad lines a patient's record comes with: a fixed rhythm of patient indexes
/// (about 0.2 %, 0.3 % and 0.25 % of patients), so that any population of seven or more patients
/// has each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Faults {
    pub malformed: bool,
    pub foreign_type: bool,
    pub orphan: bool,
}

impl Faults {
    pub fn of(index: u64) -> Faults {
        Faults {
            malformed: index % 499 == 3,
            foreign_type: index % 331 == 5,
            orphan: index % 401 == 7,
        }
    }
}

/// The plan of patient `index` (1-based) of a population: its story and situations. Cheap: it
/// generates nothing else.
pub fn patient_plan(seed: u64, index: u64) -> PatientPlan {
    profiles::draw(&mut Rng::for_patient(seed, index), index)
}

/// Writes the population's seven NDJSON files into `out` (created if missing; files replaced).
pub fn write_population(opts: &SynthOptions, out: &Path) -> io::Result<SynthSummary> {
    fs::create_dir_all(out)?;
    let mut writers = Vec::with_capacity(FILES.len());
    for file in FILES {
        let f = fs::File::create(out.join(file.file_name()))?;
        writers.push(BufWriter::with_capacity(1 << 20, f));
    }
    let mut summary = SynthSummary::default();
    let mut totals = [0u64; 7];

    let mut catalog = String::new();
    totals[File::Medication as usize] += resources::catalog(&mut catalog);
    writers[File::Medication as usize].write_all(catalog.as_bytes())?;
    summary.bytes += catalog.len() as u64;

    let mut events = Events::default();
    let mut lines = Lines::default();
    for index in 1..=opts.patients {
        let plan = write_patient(opts, index, &mut events, &mut lines, &mut summary);
        *summary.profiles.entry(plan.profile).or_default() += 1;
        for s in &plan.situations {
            *summary.situations.entry(*s).or_default() += 1;
        }
        for (i, text) in lines.text.iter().enumerate() {
            writers[i].write_all(text.as_bytes())?;
            summary.bytes += text.len() as u64;
            totals[i] += lines.count[i];
        }
    }
    for w in &mut writers {
        w.flush()?;
    }
    summary.patients = opts.patients;
    for file in FILES {
        summary
            .lines
            .insert(file.file_name(), totals[file as usize]);
    }
    Ok(summary)
}

/// One patient's lines into `lines` (cleared first).
fn write_patient(
    opts: &SynthOptions,
    index: u64,
    events: &mut Events,
    lines: &mut Lines,
    summary: &mut SynthSummary,
) -> PatientPlan {
    let mut rng = Rng::for_patient(opts.seed, index);
    let plan = profiles::draw(&mut rng, index);
    let who = story::build(&plan, &mut rng, opts.as_of, events);
    lines.clear();
    let pid = plan.id.as_str();
    resources::patient(lines, pid, index, &who);
    for (n, c) in events.conditions.iter().enumerate() {
        resources::condition(lines, pid, n + 1, c);
    }
    let (mut requests, mut statements) = (0, 0);
    for m in &events.medications {
        if m.shape == events::Shape::Statement {
            statements += 1;
            resources::medication_statement(lines, pid, statements, m);
        } else {
            requests += 1;
            resources::medication_request(lines, pid, requests, m);
        }
    }
    let mut n = 1;
    for s in &events.scores {
        n += resources::score(lines, pid, n, s, events.teen);
    }
    for o in &events.observations {
        resources::other_observation(lines, pid, n, o);
        n += 1;
    }
    for k in 0..opts.unrelated_observations {
        // Drawn from the index alone, never from the patient's generator: the rest of the
        // population does not change with the option.
        let day = opts
            .as_of
            .plus_days(-((index as i32 * 37 + k as i32 * 11) % 720) - 1);
        resources::unrelated_observation(lines, pid, n, k as usize + index as usize, day);
        n += 1;
    }
    for (i, p) in events.procedures.iter().enumerate() {
        resources::procedure(lines, pid, i + 1, p);
    }
    let faults = Faults::of(index);
    let day = opts.as_of.plus_days(-((index % 300) as i32) - 1);
    if faults.foreign_type {
        if (index / 331).is_multiple_of(2) {
            resources::foreign::encounter(lines, pid, day);
        } else {
            resources::foreign::basic(lines, pid, day);
        }
        summary.foreign_type_lines += 1;
    }
    if faults.orphan {
        resources::foreign::orphan(lines, index, day);
        summary.orphan_resources += 1;
    }
    if faults.malformed {
        let cut = [File::Observation, File::Condition, File::Patient]
            .into_iter()
            .any(|f| resources::foreign::truncated_copy(lines, f));
        if cut {
            summary.malformed_lines += 1;
        }
    }
    plan
}
