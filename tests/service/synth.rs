//! The synthetic population (`trdscreen synth`): deterministic, mostly well-formed NDJSON with a
//! counted handful of bad lines, and every patient's record telling the story its plan intends when
//! the real screening core reads it.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use trdscreen::date::Date;
use trdscreen::fhir::{PatientId, read_patient_bundle};
use trdscreen::knowledge::Knowledge;
use trdscreen::screening::{Assessment, TrdStatus, TreatmentTrial, TrialOutcome, evaluate};
use trdscreen::synth::{
    COVERED_HINTS, DEFAULT_AS_OF, FILES, PatientPlan, Profile, SynthOptions, SynthSummary,
    patient_plan, write_population,
};

fn as_of() -> Date {
    Date::parse(DEFAULT_AS_OF).unwrap()
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("trdscreen-synth-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn generate(name: &str, patients: u64, seed: u64) -> (TempDir, SynthSummary) {
    let dir = TempDir::new(name);
    let options = SynthOptions {
        patients,
        seed,
        as_of: as_of(),
        unrelated_observations: 0,
    };
    let summary = write_population(&options, &dir.0).expect("the population is written");
    (dir, summary)
}

fn files_of(dir: &Path) -> BTreeMap<&'static str, Vec<u8>> {
    FILES
        .iter()
        .map(|f| (f.file_name(), fs::read(dir.join(f.file_name())).unwrap()))
        .collect()
}

#[test]
fn the_same_options_give_the_same_bytes_and_another_seed_another_population() {
    let (a, summary_a) = generate("same-a", 250, 5);
    let (b, summary_b) = generate("same-b", 250, 5);
    let (c, _) = generate("other-seed", 250, 6);
    assert_eq!(files_of(&a.0), files_of(&b.0));
    assert_eq!(summary_a, summary_b);
    let (first, other) = (files_of(&a.0), files_of(&c.0));
    for name in ["Patient.ndjson", "Condition.ndjson", "Observation.ndjson"] {
        assert_ne!(
            first[name], other[name],
            "{name} should differ with the seed"
        );
    }
}

#[test]
fn the_committed_example_population_is_what_the_generator_writes() {
    let (dir, _) = generate("example", 300, 1);
    let committed = Path::new("examples/population");
    for file in FILES {
        let want = fs::read(dir.0.join(file.file_name())).unwrap();
        let have = fs::read(committed.join(file.file_name())).unwrap_or_else(|_| {
            panic!(
                "examples/population/{} is missing; regenerate it with \
                 `trdscreen synth --patients 300 --seed 1 --out examples/population`",
                file.file_name()
            )
        });
        assert!(
            want == have,
            "examples/population/{} differs from the generator's output; regenerate it with \
             `trdscreen synth --patients 300 --seed 1 --out examples/population`",
            file.file_name()
        );
    }
}

/// Every line of a population, read as a Bulk Data client reads it.
struct Read {
    /// Patient id -> the JSON of the Patient and every resource whose subject is that patient.
    records: BTreeMap<String, Vec<String>>,
    medications: Vec<String>,
    not_json: u64,
    foreign_type: u64,
    orphans: u64,
    ids: BTreeMap<String, BTreeSet<String>>,
    duplicate_ids: Vec<String>,
}

fn read_population(dir: &Path) -> Read {
    let mut read = Read {
        records: BTreeMap::new(),
        medications: Vec::new(),
        not_json: 0,
        foreign_type: 0,
        orphans: 0,
        ids: BTreeMap::new(),
        duplicate_ids: Vec::new(),
    };
    let text_of = |f: &str| fs::read_to_string(dir.join(f)).unwrap();
    for line in text_of("Patient.ndjson").lines() {
        if let Ok(v) = serde_json::from_str::<Value>(line) {
            let id = v["id"].as_str().unwrap().to_owned();
            read.records.insert(id, vec![line.to_owned()]);
        }
    }
    for file in FILES {
        for line in text_of(file.file_name()).lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                read.not_json += 1;
                continue;
            };
            let kind = v["resourceType"].as_str().unwrap_or("").to_owned();
            if kind != file.resource_type() {
                read.foreign_type += 1;
            }
            let id = v["id"].as_str().unwrap_or("").to_owned();
            if !read.ids.entry(kind.clone()).or_default().insert(id.clone()) {
                read.duplicate_ids.push(format!("{kind}/{id}"));
            }
            match kind.as_str() {
                "Patient" => {}
                "Medication" => read.medications.push(line.to_owned()),
                _ => {
                    let subject = v["subject"]["reference"].as_str().unwrap_or("");
                    let patient = subject.strip_prefix("Patient/").unwrap_or("");
                    match read.records.get_mut(patient) {
                        Some(lines) => lines.push(line.to_owned()),
                        None => read.orphans += 1,
                    }
                }
            }
        }
    }
    read
}

#[test]
fn every_line_is_a_resource_except_the_counted_bad_ones() {
    let (dir, summary) = generate("lines", 1200, 3);
    let read = read_population(&dir.0);
    assert!(summary.malformed_lines > 0 && summary.foreign_type_lines > 0);
    assert!(summary.orphan_resources > 0);
    assert_eq!(read.not_json, summary.malformed_lines);
    assert_eq!(read.foreign_type, summary.foreign_type_lines);
    assert_eq!(read.orphans, summary.orphan_resources);
    assert_eq!(read.records.len() as u64, summary.patients);
    assert!(read.duplicate_ids.is_empty(), "{:?}", read.duplicate_ids);
    for ids in read.ids.values() {
        for id in ids {
            assert!(PatientId::parse(id).is_ok(), "{id} is not a valid FHIR id");
        }
    }
    let lines: u64 = FILES
        .iter()
        .map(|f| {
            fs::read_to_string(dir.0.join(f.file_name()))
                .unwrap()
                .lines()
                .count() as u64
        })
        .sum();
    assert_eq!(lines, summary.lines.values().sum::<u64>());
    let per_patient = summary.bytes / summary.patients;
    assert!(per_patient > 1_000, "{per_patient} bytes per patient");
}

#[test]
fn the_summary_counts_the_plans_the_api_reports() {
    let (_dir, summary) = generate("plans", 400, 9);
    let mut profiles = BTreeMap::new();
    for index in 1..=400 {
        *profiles
            .entry(patient_plan(9, index).profile)
            .or_insert(0u64) += 1;
    }
    assert_eq!(summary.profiles, profiles);
}

fn bundle(lines: &[String], medications: &[String]) -> String {
    let entries: Vec<String> = lines
        .iter()
        .chain(medications)
        .map(|r| format!("{{\"resource\":{r}}}"))
        .collect();
    format!(
        "{{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[{}]}}",
        entries.join(",")
    )
}

fn antidepressant_trials(a: &Assessment) -> Vec<&TreatmentTrial> {
    a.trials.iter().filter(|t| !t.augmentation).collect()
}

/// What the core must conclude for each story (written from the stories, not from the core).
fn story_holds(plan: &PatientPlan, a: &Assessment) -> Result<(), String> {
    use TrdStatus::*;
    use TrialOutcome::*;
    let trials = antidepressant_trials(a);
    let failed = a.failed_adequate_trials;
    let adequate = |t: &TreatmentTrial| t.adequate_dose && t.adequate_duration;
    let status = |want: TrdStatus| {
        (a.status == want)
            .then_some(())
            .ok_or(format!("status {:?}, want {want:?}", a.status))
    };
    let check = |ok: bool, what: &str| ok.then_some(()).ok_or(what.to_owned());
    match plan.profile {
        Profile::NoDepression | Profile::UntreatedDepression => {
            status(NotApplicable)?;
            check(a.trials.is_empty(), "no trial")
        }
        Profile::SleepTrazodone => {
            status(NotApplicable)?;
            check(a.trials.is_empty(), "no trial")?;
            check(
                a.diagnostics
                    .iter()
                    .any(|d| d.kind.as_str() == "hypnotic-dose"),
                "trazodone 50 mg reported as hypnotic use",
            )
        }
        Profile::Responder => {
            status(NotMet)?;
            check(trials.len() == 1, "one trial")?;
            check(trials[0].outcome == Responded, "the trial responded")?;
            check(adequate(trials[0]), "the trial is adequate")
        }
        Profile::OngoingFirstTrial => {
            status(NotMet)?;
            check(
                trials.len() == 1 && trials[0].outcome == Ongoing,
                "one ongoing trial",
            )
        }
        Profile::OneFailed => {
            status(NotMet)?;
            check(
                failed == 1 && trials.len() == 1,
                "one failed adequate trial",
            )?;
            check(
                trials[0].outcome == Failed && adequate(trials[0]),
                "it failed",
            )
        }
        Profile::InadequateDose => {
            status(NotMet)?;
            check(failed == 1 && trials.len() == 2, "two trials, one counted")?;
            check(
                !trials[0].adequate_dose && trials[0].adequate_duration,
                "the first trial's dose is not adequate, its duration is",
            )?;
            check(trials[0].outcome == Failed, "the low-dose trial failed too")
        }
        Profile::InadequateDuration => {
            status(NotMet)?;
            check(failed == 1 && trials.len() == 2, "two trials, one counted")?;
            check(
                !trials[0].adequate_duration,
                "the four-week trial is not adequate in duration",
            )
        }
        Profile::RestartSameDrug => {
            status(NotMet)?;
            check(trials.len() == 2, "two trials")?;
            check(
                trials[0].ingredient == trials[1].ingredient,
                "of the same ingredient",
            )?;
            check(
                trials.iter().all(|t| t.outcome == Failed && adequate(t)),
                "both adequate and failed",
            )?;
            check(failed == 1, "a restart never adds to F")
        }
        Profile::TwoFailed => {
            status(Met)?;
            check(
                failed == 2 && trials.len() == 2,
                "two failed adequate trials",
            )
        }
        Profile::MultipleFailed => {
            status(Met)?;
            check(
                failed >= 3 && failed as usize == trials.len(),
                "every one of three or four trials failed",
            )
        }
        Profile::PossibleUnknownDose => {
            status(Possible)?;
            check(
                failed == 1 && trials.len() == 2,
                "one of two trials counted",
            )?;
            check(
                trials
                    .iter()
                    .any(|t| t.daily_dose_mg.is_none() && t.outcome == Failed),
                "a failed trial of unknown dose",
            )
        }
        Profile::PossibleUnknownOutcome => {
            status(Possible)?;
            check(
                failed == 1 && trials.len() == 2,
                "one of two trials counted",
            )?;
            check(
                trials[1].outcome == Unknown && adequate(trials[1]),
                "the second trial's outcome is unknown",
            )
        }
        Profile::Augmented => {
            status(NotMet)?;
            check(failed == 1, "the SSRI failed")?;
            check(
                a.trials
                    .iter()
                    .any(|t| t.augmentation && t.ingredient == "aripiprazole"),
                "aripiprazole marks augmentation",
            )
        }
        Profile::LithiumRenal => {
            status(Met)?;
            check(
                a.trials
                    .iter()
                    .any(|t| t.augmentation && t.ingredient == "lithium"),
                "lithium marks augmentation",
            )
        }
        Profile::MaoiAfterFailures => {
            status(Met)?;
            check(failed == 2, "two failed before the MAOI")?;
            let last = trials.last().ok_or("no trial")?;
            check(
                last.ingredient == "tranylcypromine" && last.outcome == Ongoing,
                "tranylcypromine is the ongoing last trial",
            )
        }
        Profile::MaoiWashoutBreach => {
            status(Possible)?;
            check(failed == 1, "fluoxetine failed")?;
            check(
                trials.iter().any(|t| {
                    t.ingredient == "phenelzine" && t.outcome == Failed && !t.adequate_dose
                }),
                "phenelzine failed, its adequate dose unconfirmed",
            )
        }
        Profile::RemissionRelapse => {
            status(NotMet)?;
            check(failed == 1, "one failed trial in the current episode")?;
            check(
                trials.iter().filter(|t| !t.counted).count() == 2,
                "the two trials before the remission are not counted",
            )?;
            check(
                trials.iter().any(|t| !t.counted && t.outcome == Responded),
                "the earlier episode ended in a response",
            )
        }
        Profile::CombinationFailed => {
            status(NotMet)?;
            check(trials.len() == 2, "two trials")?;
            check(
                trials.iter().all(|t| t.outcome == Failed && adequate(t)),
                "both adequate and failed",
            )?;
            check(
                trials
                    .iter()
                    .all(|t| t.course == Some(1) && !t.outcome_inferred),
                "one course, neither failure inferred from the other's start",
            )?;
            check(failed == 1, "a combination that fails is one failed course")
        }
        Profile::CombinationRestarted => {
            status(NotMet)?;
            let courses: Vec<Option<u32>> = trials.iter().map(|t| t.course).collect();
            check(
                courses == [Some(1), Some(1), Some(2), Some(2)],
                "two courses of two trials",
            )?;
            check(
                trials.iter().all(|t| !t.outcome_inferred),
                "a pair restarted together is not a switch",
            )?;
            let outcomes: BTreeSet<_> = trials.iter().map(|t| format!("{:?}", t.outcome)).collect();
            if outcomes.contains("Failed") {
                check(
                    outcomes.len() == 1 && failed == 1,
                    "both courses failed, the restart adds nothing to F",
                )
            } else {
                check(
                    outcomes.len() == 1 && outcomes.contains("Unknown") && failed == 0,
                    "without scores every outcome is unknown",
                )
            }
        }
    }
}

#[test]
fn each_patient_screens_as_its_story_intends_and_every_status_and_hint_occurs() {
    // TRDSCREEN_SYNTH_STORIES="PATIENTS SEED" sweeps a larger or other population by hand.
    let (patients, seed) = std::env::var("TRDSCREEN_SYNTH_STORIES")
        .ok()
        .and_then(|v| {
            let mut it = v.split_whitespace().map(|x| x.parse::<u64>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((3000, 1));
    let (dir, summary) = generate("stories", patients, seed);
    let read = read_population(&dir.0);
    let k = Knowledge::embedded();
    let mut failures = Vec::new();
    let mut statuses = BTreeSet::new();
    let mut hints = BTreeSet::new();
    let mut per_profile: BTreeMap<Profile, u64> = BTreeMap::new();
    for index in 1..=summary.patients {
        let plan = patient_plan(seed, index);
        let lines = &read.records[&plan.id];
        let record = read_patient_bundle(&bundle(lines, &read.medications))
            .unwrap_or_else(|e| panic!("{}: {e}", plan.id));
        let assessment = evaluate(&record, as_of(), &k);
        *per_profile.entry(plan.profile).or_default() += 1;
        statuses.insert(format!("{:?}", assessment.status));
        let fired: Vec<&str> = {
            let mut v: Vec<&str> = assessment.hints.iter().map(|h| h.code.as_str()).collect();
            v.sort_unstable();
            v
        };
        hints.extend(fired.iter().map(|h| h.to_string()));
        if let Err(why) = story_holds(&plan, &assessment) {
            failures.push(format!("{} {:?}: {why}", plan.id, plan.profile));
        }
        if fired != plan.expected_hints() {
            failures.push(format!(
                "{} {:?} {:?}: hints {fired:?}, want {:?}",
                plan.id,
                plan.profile,
                plan.situations,
                plan.expected_hints()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} patients do not screen as intended:\n{}",
        failures.len(),
        summary.patients,
        failures[..failures.len().min(25)].join("\n")
    );
    assert_eq!(per_profile, summary.profiles);
    assert_eq!(per_profile.len(), trdscreen::synth::PROFILES.len());
    assert_eq!(
        statuses,
        ["Met", "NotApplicable", "NotMet", "Possible"]
            .map(String::from)
            .into()
    );
    let known: BTreeSet<String> = k.hints.iter().map(|h| h.code.clone()).collect();
    let covered: BTreeSet<String> = COVERED_HINTS.iter().map(|h| h.to_string()).collect();
    assert_eq!(
        covered, known,
        "the generator covers every hint the knowledge base defines"
    );
    assert_eq!(hints, known, "every hint fires somewhere in the population");
}
