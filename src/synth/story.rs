//! A patient's plan turned into dated events: the timeline of each story, relative to `as_of`, and
//! the situations layered on it. Every day is an offset from `as_of`, so a population generated
//! for another day has the same shape.

use super::catalog::{self, Class, Drug, Regimen};
use super::events::*;
use super::profiles::{PatientPlan, Profile, Situation};
use super::rng::Rng;
use crate::date::Date;
use std::cell::RefCell;

/// Diagnoses (ICD-10-CM and SNOMED CT as in knowledge/codes.toml; the others are background).
pub mod dx {
    use super::Dx;
    const fn icd(code: &'static str, display: &'static str) -> Dx {
        Dx {
            icd10: Some((code, display)),
            snomed: None,
            text: display,
        }
    }
    pub static MDD_SINGLE: Dx = icd(
        "F32.1",
        "Major depressive disorder, single episode, moderate",
    );
    pub static MDD_RECURRENT: Dx = Dx {
        icd10: Some(("F33.1", "Major depressive disorder, recurrent, moderate")),
        snomed: Some(("370143000", "Major depressive disorder")),
        text: "Major depressive disorder, recurrent, moderate",
    };
    pub static MDD_SEVERE: Dx = icd(
        "F33.2",
        "Major depressive disorder, recurrent severe without psychotic features",
    );
    pub static DEPRESSION_UNSPECIFIED: Dx = icd("F32.A", "Depression, unspecified");
    pub static MDD_SNOMED_ONLY: Dx = Dx {
        icd10: None,
        snomed: Some(("370143000", "Major depressive disorder")),
        text: "Major depressive disorder",
    };
    pub static DEPRESSIONS: [&Dx; 5] = [
        &MDD_SINGLE,
        &MDD_RECURRENT,
        &MDD_SEVERE,
        &DEPRESSION_UNSPECIFIED,
        &MDD_SNOMED_ONLY,
    ];
    pub static GAD: Dx = icd("F41.1", "Generalized anxiety disorder");
    pub static INSOMNIA: Dx = icd("G47.00", "Insomnia, unspecified");
    pub static HYPERTENSION: Dx = icd("I10", "Essential (primary) hypertension");
    pub static HYPERLIPIDEMIA: Dx = icd("E78.5", "Hyperlipidemia, unspecified");
    pub static DIABETES: Dx = icd("E11.9", "Type 2 diabetes mellitus without complications");
    pub static BACK_PAIN: Dx = icd("M54.50", "Low back pain, unspecified");
    pub static BIPOLAR_II: Dx = Dx {
        icd10: Some(("F31.81", "Bipolar II disorder")),
        snomed: Some(("83225003", "Bipolar II disorder")),
        text: "Bipolar II disorder",
    };
    pub static BIPOLAR_UNSPECIFIED: Dx = icd("F31.9", "Bipolar disorder, unspecified");
    pub static BIPOLAR_SNOMED_ONLY: Dx = Dx {
        icd10: None,
        snomed: Some(("13746004", "Bipolar disorder")),
        text: "Bipolar disorder",
    };
    pub static HYPOMANIC_EPISODE: Dx = icd("F31.0", "Bipolar disorder, current episode hypomanic");
    pub static SUICIDAL_IDEATION: Dx = icd("R45.851", "Suicidal ideations");
    pub static SUICIDE_ATTEMPT: Dx = icd("T14.91XA", "Suicide attempt, initial encounter");
    pub static CEREBRAL_ANEURYSM: Dx = icd("I67.1", "Cerebral aneurysm, nonruptured");
    pub static CEREBRAL_AVM: Dx = icd("Q28.2", "Arteriovenous malformation of cerebral vessels");
    pub static AORTIC_ANEURYSM: Dx = icd(
        "I71.40",
        "Abdominal aortic aneurysm, without rupture, unspecified",
    );
    pub static SCHIZOPHRENIA: Dx = icd("F20.9", "Schizophrenia, unspecified");
    pub static PSYCHOTIC_DEPRESSION: Dx = icd(
        "F33.3",
        "Major depressive disorder, recurrent, severe with psychotic symptoms",
    );
    pub static ALCOHOL: Dx = icd("F10.20", "Alcohol dependence, uncomplicated");
    pub static CANNABIS: Dx = icd("F12.20", "Cannabis dependence, uncomplicated");
    pub static OPIOID: Dx = icd("F11.20", "Opioid dependence, uncomplicated");
    pub static EPILEPSY: Dx = icd(
        "G40.909",
        "Epilepsy, unspecified, not intractable, without status epilepticus",
    );
    pub static CONVULSIONS: Dx = icd("R56.9", "Unspecified convulsions");
    pub static PREGNANCY: Dx = Dx {
        icd10: Some(("Z33.1", "Pregnant state, incidental")),
        snomed: Some(("77386006", "Pregnancy")),
        text: "Pregnant state",
    };
}

/// How adequate the dose of a course is meant to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dose {
    Adequate,
    Low,
    Unknown,
}

/// A course of one drug: its first and last day (`None`: still taken).
#[derive(Debug, Clone, Copy)]
struct Course {
    start: Date,
    end: Option<Date>,
}

impl Course {
    fn end_or(&self, as_of: Date) -> Date {
        self.end.unwrap_or(as_of)
    }
}

pub struct Demographics {
    pub gender: Gender,
    pub birth: Date,
    pub given: &'static str,
    pub family: &'static str,
    pub city: (&'static str, &'static str, &'static str),
}

const FEMALE: [&str; 16] = [
    "Maria", "Aisha", "Emma", "Sofia", "Olivia", "Mei", "Fatima", "Grace", "Hannah", "Ines",
    "Julia", "Lena", "Nadia", "Priya", "Rosa", "Yara",
];
const MALE: [&str; 16] = [
    "James", "Omar", "Liam", "Noah", "Wei", "Carlos", "David", "Ethan", "Hugo", "Ivan", "Jonas",
    "Kenji", "Luca", "Mateo", "Samuel", "Tomas",
];
const FAMILY: [&str; 24] = [
    "Smith",
    "Garcia",
    "Nguyen",
    "Johnson",
    "Okafor",
    "Kim",
    "Patel",
    "Lindqvist",
    "Novak",
    "Rossi",
    "Cohen",
    "Silva",
    "Brown",
    "Martin",
    "Khan",
    "Larsen",
    "Moreau",
    "Tanaka",
    "Walker",
    "Haddad",
    "Ivanova",
    "Mensah",
    "Schmidt",
    "Alvarez",
];
const CITIES: [(&str, &str, &str); 8] = [
    ("Springfield", "IL", "62704"),
    ("Columbus", "OH", "43215"),
    ("Madison", "WI", "53703"),
    ("Albany", "NY", "12207"),
    ("Austin", "TX", "78701"),
    ("Portland", "OR", "97205"),
    ("Raleigh", "NC", "27601"),
    ("Denver", "CO", "80202"),
];

/// Builds the events of one patient into `ev` (cleared first) and returns who the patient is.
pub fn build(plan: &PatientPlan, rng: &mut Rng, as_of: Date, ev: &mut Events) -> Demographics {
    ev.clear();
    let has = |s: Situation| plan.situations.contains(&s);
    let pregnant = has(Situation::Pregnancy);
    let gender = if pregnant || rng.chance(600) {
        Gender::Female
    } else {
        Gender::Male
    };
    let teen = !pregnant && plan.profile.depressed() && rng.chance(70);
    let age = if pregnant {
        rng.range(18, 44)
    } else if teen {
        rng.range(13, 17)
    } else {
        rng.range(18, 88)
    };
    ev.teen = teen;
    let birth = as_of.plus_days(-(age * 365 + rng.range(30, 330)));
    let given = match gender {
        Gender::Female => *rng.pick(&FEMALE),
        Gender::Male => *rng.pick(&MALE),
    };
    let family = *rng.pick(&FAMILY);
    let demographics = Demographics {
        gender,
        birth,
        given,
        family,
        city: *rng.pick(&CITIES),
    };
    let level = rng.range(14, 22);
    let mut s = Story {
        rng: RefCell::new(rng),
        ev,
        as_of,
        level,
    };
    s.profile(plan.profile);
    s.background(plan.profile);
    s.situations(plan);
    s.noise(plan);
    s.item9(has(Situation::SuicideRisk));
    demographics
}

struct Story<'a> {
    /// Shared so that a random offset can be drawn while an argument to a method of `self` is
    /// being worked out.
    rng: RefCell<&'a mut Rng>,
    ev: &'a mut Events,
    as_of: Date,
    /// The patient's usual PHQ-9 while depressed and not responding.
    level: i32,
}

impl Story<'_> {
    fn day(&self, offset: i32) -> Date {
        self.as_of.plus_days(offset)
    }

    fn r(&self, lo: i32, hi: i32) -> i32 {
        self.rng.borrow_mut().range(lo, hi)
    }

    fn chance(&self, per_mille: u32) -> bool {
        self.rng.borrow_mut().chance(per_mille)
    }

    fn pick<'x, T>(&self, items: &'x [T]) -> &'x T {
        self.rng.borrow_mut().pick(items)
    }

    fn weighted<T: Copy>(&self, items: &[(T, u32)]) -> T {
        self.rng.borrow_mut().weighted(items)
    }

    // ----- scores -----

    /// A score of someone not responding: within 3 of their level and at least 11, so two such
    /// scores never differ by half.
    fn failing(&mut self) -> u8 {
        let v = self.level + self.r(-3, 3);
        v.clamp(11, 27) as u8
    }

    fn score(&mut self, day: Date, total: u8) {
        if day > self.as_of {
            return;
        }
        let minute = self.r(8 * 60, 17 * 60) as u16;
        self.ev.scores.push(ScoreEvent {
            day,
            minute,
            total,
            item9: None,
            item9_separate: false,
            status: ScoreStatus::Final,
        });
    }

    fn fail_at(&mut self, day: Date) {
        let v = self.failing();
        self.score(day, v);
    }

    /// A failing score a little before `start` (the baseline).
    fn baseline(&mut self, start: Date) {
        let d = start.plus_days(-self.r(1, 14));
        self.fail_at(d);
    }

    /// Failing scores from four weeks after `start` every six to twelve weeks up to `until`, the
    /// last within five days of it.
    fn failing_until(&mut self, start: Date, until: Date) {
        let mut t = start.plus_days(self.r(28, 35));
        let mut last = None;
        while t < until {
            self.fail_at(t);
            last = Some(t);
            t = t.plus_days(self.r(42, 84));
        }
        if last.is_none_or(|l| l.days_until(until) > 20) {
            let d = until.plus_days(-self.r(0, 5));
            if d >= start.plus_days(28) {
                self.fail_at(d);
            }
        }
    }

    /// A response: a partial improvement at four to five weeks, then scores below 5 to `until`.
    fn responding_until(&mut self, start: Date, until: Date) {
        let first = start.plus_days(self.r(28, 35));
        let partial = self.r(6, 9) as u8;
        self.score(first, partial);
        let mut t = first.plus_days(self.r(28, 42));
        while t < until {
            let v = self.r(1, 4) as u8;
            self.score(t, v);
            t = t.plus_days(self.r(42, 84));
        }
        let end = until.plus_days(-self.r(0, 3));
        let v = self.r(1, 4) as u8;
        self.score(end.max(first.plus_days(1)), v);
    }

    // ----- medications -----

    fn shape(&mut self, regimen: &Regimen) -> Shape {
        let shape = self.weighted(&[
            (Shape::RequestProduct, 30),
            (Shape::RequestIngredient, 15),
            (Shape::RequestReference, 15),
            (Shape::RequestBrandText, 10),
            (Shape::Statement, 30),
        ]);
        match (shape, regimen.product.scd) {
            // No product code on record: the product is written by its text instead.
            (Shape::RequestReference, None) => Shape::RequestIngredient,
            // Brand-only text for antidepressants and augmentation agents, whose brands the
            // screening rules name; a painkiller or blood-pressure drug by brand alone (Motrin,
            // Zestril) is not something screening is meant to recognise.
            (Shape::RequestBrandText, _) if regimen.drug.class == Class::Other => {
                Shape::RequestProduct
            }
            _ => shape,
        }
    }

    fn regimen(&mut self, drug: &'static Drug, dose: Dose) -> Regimen {
        let step = match (dose, drug.low) {
            (Dose::Low, Some(low)) => low,
            _ if drug.adequate.is_empty() => drug.low.unwrap_or((0, 1, 1)),
            _ => *self.pick(drug.adequate),
        };
        Regimen::of(drug, step)
    }

    /// A course of `drug` from `start` to `end` (`None`: still taken): refills of 30 to 120 days
    /// (30-day supplies, up to three repeats) with short gaps, which screening bridges; or one or
    /// two MedicationStatements.
    fn course(
        &mut self,
        drug: &'static Drug,
        start: Date,
        end: Option<Date>,
        dose: Dose,
    ) -> Course {
        let target = self.regimen(drug, dose);
        let dose_style = match dose {
            Dose::Unknown => self.weighted(&[
                (DoseStyle::AsNeeded, 1),
                (DoseStyle::TextOnly, 1),
                (DoseStyle::NoStrength, 1),
            ]),
            _ => DoseStyle::Structured,
        };
        let mut shape = self.shape(&target);
        if dose_style == DoseStyle::NoStrength {
            shape = Shape::RequestBrandText;
        }
        let mut t = start;
        // A titration: a month at the starting dose before the therapeutic one.
        if dose == Dose::Adequate
            && matches!(drug.class, Class::Ssri | Class::Snri | Class::Atypical)
            && self.chance(300)
            && let Some(low) = drug.low
            && end.is_none_or(|e| start.days_until(e) > 75)
        {
            let first = Regimen::of(drug, low);
            let supply = if shape == Shape::Statement {
                Supply::Until(t.plus_days(30))
            } else {
                Supply::Days {
                    days: 30,
                    repeats: 0,
                }
            };
            self.push_med(first, t, supply, shape, dose_style, MedStatus::Completed);
            t = t.plus_days(30);
        }
        if shape == Shape::Statement {
            let (supply, status) = match end {
                Some(e) => (Supply::Until(e), MedStatus::Completed),
                None => (Supply::Open, MedStatus::Active),
            };
            self.push_med(target, t, supply, shape, dose_style, status);
            return Course { start, end };
        }
        loop {
            let repeats = self.r(0, 3) as u8;
            let length = 30 * (1 + i32::from(repeats));
            match end {
                Some(e) => {
                    let remaining = t.days_until(e);
                    if length >= remaining {
                        self.push_med(
                            target,
                            t,
                            Supply::Until(e),
                            shape,
                            dose_style,
                            MedStatus::Completed,
                        );
                        break;
                    }
                    self.push_med(
                        target,
                        t,
                        Supply::Days { days: 30, repeats },
                        shape,
                        dose_style,
                        MedStatus::Completed,
                    );
                    t = t.plus_days(length);
                    let gap = if self.chance(250) { self.r(3, 20) } else { 0 };
                    if t.days_until(e) > gap + 30 {
                        t = t.plus_days(gap);
                    }
                }
                None => {
                    if t.days_until(self.as_of) <= 90 {
                        self.push_med(
                            target,
                            t,
                            Supply::Open,
                            shape,
                            dose_style,
                            MedStatus::Active,
                        );
                        break;
                    }
                    self.push_med(
                        target,
                        t,
                        Supply::Days { days: 30, repeats },
                        shape,
                        dose_style,
                        MedStatus::Completed,
                    );
                    t = t.plus_days(length);
                    if self.chance(250) && t.days_until(self.as_of) > 60 {
                        t = t.plus_days(self.r(3, 20));
                    }
                }
            }
        }
        Course { start, end }
    }

    fn push_med(
        &mut self,
        regimen: Regimen,
        start: Date,
        supply: Supply,
        shape: Shape,
        dose: DoseStyle,
        status: MedStatus,
    ) {
        self.ev.medications.push(MedicationEvent {
            regimen,
            start,
            supply,
            shape,
            dose,
            status,
        });
    }

    /// An antidepressant not among `taken`.
    fn other_antidepressant(&mut self, taken: &[&'static Drug]) -> &'static Drug {
        loop {
            let d = *self.pick(&catalog::ANTIDEPRESSANTS);
            if !taken.iter().any(|t| std::ptr::eq(*t, d)) {
                return d;
            }
        }
    }

    /// A failed course with its scores: baseline, then failing scores to its end (or to `until`).
    fn failed_course(&mut self, drug: &'static Drug, start: Date, end: Option<Date>, dose: Dose) {
        let c = self.course(drug, start, end, dose);
        self.baseline(c.start);
        let until = c.end_or(self.as_of.plus_days(-self.r(0, 10)));
        self.failing_until(c.start, until);
    }

    fn depression_dx(&mut self, onset: Date) {
        let dx = *self.pick(&dx::DEPRESSIONS);
        self.condition(dx, onset);
    }

    fn condition(&mut self, dx: &'static Dx, onset: Date) {
        self.ev.conditions.push(ConditionEvent {
            dx,
            onset: onset.min(self.as_of),
            abated: None,
            verification: Verification::Confirmed,
        });
    }

    /// An end day for a course from `start` lasting `lo..=hi` days, or `None` (still taken) with
    /// probability `ongoing` per mille; never after `as_of`.
    fn end_or_ongoing(&mut self, start: Date, lo: i32, hi: i32, ongoing: u32) -> Option<Date> {
        if self.chance(ongoing) {
            return None;
        }
        let e = start.plus_days(self.r(lo, hi));
        Some(e.min(self.day(-1)))
    }

    // ----- the stories -----

    fn profile(&mut self, profile: Profile) {
        match profile {
            Profile::NoDepression => {
                if self.chance(400) {
                    let d = self.day(-self.r(10, 600));
                    let v = self.r(0, 4) as u8;
                    self.score(d, v);
                }
            }
            Profile::SleepTrazodone => {
                let start = self.day(-self.r(60, 500));
                self.condition(&dx::INSOMNIA, start.plus_days(-self.r(0, 30)));
                let end = self.end_or_ongoing(start, 60, 200, 500);
                self.course(&catalog::TRAZODONE, start, end, Dose::Low);
            }
            Profile::UntreatedDepression => {
                let onset = self.day(-self.r(30, 400));
                self.depression_dx(onset);
                let mut t = onset;
                for _ in 0..self.r(2, 4) {
                    self.fail_at(t);
                    t = t.plus_days(self.r(20, 90));
                }
            }
            Profile::Responder => {
                let start = self.day(-self.r(100, 600));
                self.depression_dx(start.plus_days(-self.r(0, 30)));
                let drug = self.other_antidepressant(&[]);
                let end = self.end_or_ongoing(start, 84, 240, 400);
                let c = self.course(drug, start, end, Dose::Adequate);
                self.baseline(start);
                let until = c.end_or(self.as_of.plus_days(-self.r(0, 10)));
                self.responding_until(start, until);
                if let Some(e) = c.end {
                    let later = e.plus_days(self.r(30, 200));
                    let v = self.r(0, 4) as u8;
                    self.score(later, v);
                }
            }
            Profile::OngoingFirstTrial => {
                let start = self.day(-self.r(5, 35));
                self.depression_dx(start.plus_days(-self.r(0, 20)));
                let drug = self.other_antidepressant(&[]);
                self.course(drug, start, None, Dose::Adequate);
                self.baseline(start);
                if start.days_until(self.as_of) > 20 {
                    let d = start.plus_days(14);
                    self.fail_at(d);
                }
            }
            Profile::OneFailed => {
                let start = self.day(-self.r(150, 500));
                self.depression_dx(start.plus_days(-self.r(0, 30)));
                let drug = self.other_antidepressant(&[]);
                let end = self.end_or_ongoing(start, 70, 160, 500);
                self.failed_course(drug, start, end, Dose::Adequate);
            }
            Profile::InadequateDose => {
                let s1 = self.day(-self.r(350, 600));
                self.depression_dx(s1.plus_days(-self.r(0, 30)));
                let d1 = self.other_antidepressant(&[]);
                let e1 = s1.plus_days(self.r(70, 120));
                self.failed_course(d1, s1, Some(e1), Dose::Low);
                let s2 = e1.plus_days(self.r(0, 20));
                let d2 = self.other_antidepressant(&[d1]);
                let e2 = self.end_or_ongoing(s2, 70, 140, 400);
                self.failed_course(d2, s2, e2, Dose::Adequate);
            }
            Profile::InadequateDuration => {
                let s1 = self.day(-self.r(300, 550));
                self.depression_dx(s1.plus_days(-self.r(0, 30)));
                let d1 = self.other_antidepressant(&[]);
                let e1 = s1.plus_days(28);
                self.course(d1, s1, Some(e1), Dose::Adequate);
                self.baseline(s1);
                let mid = s1.plus_days(self.r(14, 25));
                self.fail_at(mid);
                let s2 = e1.plus_days(self.r(0, 14));
                let d2 = self.other_antidepressant(&[d1]);
                let e2 = self.end_or_ongoing(s2, 70, 150, 400);
                self.failed_course(d2, s2, e2, Dose::Adequate);
            }
            Profile::RestartSameDrug => {
                let s1 = self.day(-self.r(450, 650));
                self.depression_dx(s1.plus_days(-self.r(0, 30)));
                let drug = self.other_antidepressant(&[]);
                let e1 = s1.plus_days(self.r(70, 100));
                self.failed_course(drug, s1, Some(e1), Dose::Adequate);
                let s2 = e1.plus_days(self.r(45, 120));
                let e2 = self.end_or_ongoing(s2, 70, 120, 400);
                self.failed_course(drug, s2, e2, Dose::Adequate);
            }
            Profile::TwoFailed => {
                let s1 = self.day(-self.r(330, 620));
                self.depression_dx(s1.plus_days(-self.r(0, 30)));
                let d1 = self.other_antidepressant(&[]);
                let e1 = s1.plus_days(self.r(70, 130));
                let s2 = e1.plus_days(self.r(0, 20));
                let d2 = self.other_antidepressant(&[d1]);
                if self.chance(250) {
                    // No score at the end of the first trial: failure inferred from the switch.
                    self.course(d1, s1, Some(e1), Dose::Adequate);
                    self.baseline(s1);
                    let early = s1.plus_days(self.r(10, 25));
                    self.fail_at(early);
                    let e2 = self.end_or_ongoing(s2, 70, 150, 500);
                    let c2 = self.course(d2, s2, e2, Dose::Adequate);
                    let baseline = s2.plus_days(self.r(1, 6));
                    self.fail_at(baseline);
                    let until = c2.end_or(self.as_of.plus_days(-self.r(0, 10)));
                    self.failing_until(s2, until);
                } else {
                    self.failed_course(d1, s1, Some(e1), Dose::Adequate);
                    let e2 = self.end_or_ongoing(s2, 70, 150, 500);
                    self.failed_course(d2, s2, e2, Dose::Adequate);
                }
            }
            Profile::MultipleFailed => {
                let n = self.r(3, 4) as usize;
                let mut drugs: Vec<&'static Drug> = Vec::with_capacity(n);
                if self.chance(500) {
                    drugs.push(&catalog::NORTRIPTYLINE);
                }
                while drugs.len() < n {
                    let d = self.other_antidepressant(&drugs);
                    drugs.push(d);
                }
                // The tricyclic usually comes after the newer drugs.
                drugs.reverse();
                let mut start = self.day(-self.r(560, 680));
                self.depression_dx(start.plus_days(-self.r(0, 30)));
                let last = drugs.len() - 1;
                let mut last_start = start;
                for (i, drug) in drugs.iter().enumerate() {
                    let end = if i == last {
                        self.end_or_ongoing(start, 63, 100, 500)
                    } else {
                        Some(start.plus_days(self.r(63, 100)))
                    };
                    self.failed_course(drug, start, end, Dose::Adequate);
                    last_start = start;
                    if let Some(e) = end {
                        start = e.plus_days(self.r(0, 15));
                    }
                }
                if self.chance(400) {
                    let mut t = last_start.plus_days(self.r(30, 60));
                    for _ in 0..self.r(6, 12) {
                        self.therapy(t, Therapy::Ect);
                        t = t.plus_days(self.r(2, 3));
                    }
                } else if self.chance(150) {
                    let mut t = last_start.plus_days(self.r(30, 60));
                    for _ in 0..self.r(20, 30) {
                        self.therapy(t, Therapy::Rtms);
                        t = t.plus_days(if t.days_since_epoch() % 7 == 1 { 3 } else { 1 });
                    }
                }
            }
            Profile::PossibleUnknownDose => {
                let s1 = self.day(-self.r(350, 600));
                self.depression_dx(s1.plus_days(-self.r(0, 30)));
                let e1 = s1.plus_days(self.r(70, 120));
                let s2 = e1.plus_days(self.r(0, 20));
                let e2 = self.end_or_ongoing(s2, 70, 140, 400);
                let d1 = self.other_antidepressant(&[]);
                let d2 = self.other_antidepressant(&[d1]);
                let (dose1, dose2) = if self.chance(500) {
                    (Dose::Unknown, Dose::Adequate)
                } else {
                    (Dose::Adequate, Dose::Unknown)
                };
                self.failed_course(d1, s1, Some(e1), dose1);
                self.failed_course(d2, s2, e2, dose2);
            }
            Profile::PossibleUnknownOutcome => {
                let s1 = self.day(-self.r(520, 640));
                self.depression_dx(s1.plus_days(-self.r(0, 30)));
                let d1 = self.other_antidepressant(&[]);
                let e1 = s1.plus_days(self.r(70, 110));
                self.failed_course(d1, s1, Some(e1), Dose::Adequate);
                let s2 = e1.plus_days(self.r(0, 20));
                let d2 = self.other_antidepressant(&[d1]);
                let e2 = s2.plus_days(self.r(70, 110));
                self.course(d2, s2, Some(e2), Dose::Adequate);
                // A baseline, then no visit until long after the trial ended.
                let b = s2.plus_days(-self.r(1, 10));
                self.fail_at(b);
                let later = e2.plus_days(self.r(20, 80));
                self.fail_at(later);
            }
            Profile::Augmented => {
                let start = self.day(-self.r(250, 450));
                self.depression_dx(start.plus_days(-self.r(0, 30)));
                let ssris = [
                    &catalog::SERTRALINE,
                    &catalog::CITALOPRAM,
                    &catalog::ESCITALOPRAM,
                    &catalog::FLUOXETINE,
                ];
                let drug = *self.pick(&ssris);
                self.course(drug, start, None, Dose::Adequate);
                let added = start.plus_days(self.r(70, 120));
                self.course(&catalog::ARIPIPRAZOLE, added, None, Dose::Adequate);
                self.baseline(start);
                self.failing_until(start, added.plus_days(-1));
                let mut t = added.plus_days(self.r(28, 42));
                while t < self.as_of {
                    self.fail_at(t);
                    t = t.plus_days(self.r(35, 70));
                }
            }
            Profile::LithiumRenal => {
                let s1 = self.day(-self.r(450, 560));
                self.depression_dx(s1.plus_days(-self.r(0, 30)));
                let d1 = self.other_antidepressant(&[]);
                let e1 = s1.plus_days(self.r(70, 110));
                self.failed_course(d1, s1, Some(e1), Dose::Adequate);
                let s2 = e1.plus_days(self.r(0, 20));
                let d2 = self.other_antidepressant(&[d1]);
                self.course(d2, s2, None, Dose::Adequate);
                let lithium = s2.plus_days(self.r(70, 100));
                self.course(&catalog::LITHIUM, lithium, None, Dose::Adequate);
                self.baseline(s2);
                self.failing_until(s2, lithium.plus_days(-1));
                let later = lithium.plus_days(self.r(30, 60));
                self.fail_at(later);
                match self.r(0, 2) {
                    0 => {
                        let d = self.day(-self.r(10, 300));
                        let v = self.r(38, 58) as u16;
                        self.ev
                            .observations
                            .push(OtherObservation::Egfr { day: d, value: v });
                    }
                    1 => {
                        let d = self.day(-self.r(30, 400));
                        self.condition(&dx::HYPERTENSION, d.plus_days(-self.r(0, 60)));
                        self.course(&catalog::LISINOPRIL, d, None, Dose::Adequate);
                    }
                    _ => {
                        let d = self.day(-self.r(20, 120));
                        self.condition(&dx::BACK_PAIN, d);
                        self.course(&catalog::IBUPROFEN, d, None, Dose::Adequate);
                    }
                }
            }
            Profile::MaoiAfterFailures => {
                let maoi = self.day(-self.r(10, 35));
                let e2 = maoi.plus_days(-self.r(36, 50));
                let s2 = e2.plus_days(-self.r(70, 110));
                let e1 = s2.plus_days(-self.r(0, 20));
                let s1 = e1.plus_days(-self.r(70, 110));
                self.depression_dx(s1.plus_days(-self.r(0, 30)));
                let d1 = self.other_antidepressant(&[]);
                let d2 = self.other_antidepressant(&[d1]);
                self.failed_course(d1, s1, Some(e1), Dose::Adequate);
                self.failed_course(d2, s2, Some(e2), Dose::Adequate);
                self.course(&catalog::TRANYLCYPROMINE, maoi, None, Dose::Adequate);
                self.baseline(maoi);
            }
            Profile::MaoiWashoutBreach => {
                let maoi = self.day(-self.r(60, 120));
                let e1 = maoi.plus_days(-self.r(10, 25));
                let s1 = e1.plus_days(-self.r(70, 100));
                self.depression_dx(s1.plus_days(-self.r(0, 30)));
                self.failed_course(&catalog::FLUOXETINE, s1, Some(e1), Dose::Adequate);
                self.failed_course(&catalog::PHENELZINE, maoi, None, Dose::Adequate);
            }
            Profile::RemissionRelapse => {
                let s1 = self.day(-700 + self.r(0, 20));
                self.depression_dx(s1.plus_days(-self.r(0, 30)));
                let d1 = self.other_antidepressant(&[]);
                let d2 = self.other_antidepressant(&[d1]);
                let d3 = self.other_antidepressant(&[d1, d2]);
                let e1 = s1.plus_days(self.r(70, 90));
                self.failed_course(d1, s1, Some(e1), Dose::Adequate);
                let s2 = e1.plus_days(self.r(3, 10));
                let e2 = s2.plus_days(self.r(180, 230));
                self.course(d2, s2, Some(e2), Dose::Adequate);
                self.responding_until(s2, e2);
                let relapse = self.day(-self.r(190, 230));
                self.fail_at(relapse);
                let s3 = relapse.plus_days(self.r(3, 10));
                let e3 = self.end_or_ongoing(s3, 70, 120, 500);
                let c3 = self.course(d3, s3, e3, Dose::Adequate);
                let until = c3.end_or(self.as_of.plus_days(-self.r(0, 10)));
                self.failing_until(s3, until);
            }
        }
    }

    fn therapy(&mut self, day: Date, therapy: Therapy) {
        if day <= self.as_of {
            self.ev.procedures.push(ProcedureEvent { day, therapy });
        }
    }

    /// The rest of a record: other diagnoses and their drugs, blood pressures, kidney function.
    fn background(&mut self, profile: Profile) {
        if profile.depressed() && self.chance(250) {
            let d = self.day(-self.r(100, 1500));
            self.condition(&dx::GAD, d);
        }
        if self.chance(300) {
            let d = self.day(-self.r(200, 3000));
            self.condition(&dx::HYPERTENSION, d);
            if self.chance(600) {
                let start = self.day(-self.r(30, 360));
                self.course(&catalog::LISINOPRIL, start, None, Dose::Adequate);
            }
        }
        if self.chance(200) {
            let d = self.day(-self.r(200, 3000));
            self.condition(&dx::HYPERLIPIDEMIA, d);
            let start = self.day(-self.r(30, 360));
            let end = self.end_or_ongoing(start, 90, 300, 700);
            self.course(&catalog::ATORVASTATIN, start, end, Dose::Adequate);
        }
        if self.chance(100) {
            let d = self.day(-self.r(200, 3000));
            self.condition(&dx::DIABETES, d);
        }
        if self.chance(100) {
            // A finished painkiller course, long before any lithium.
            let start = self.day(-self.r(400, 700));
            self.condition(&dx::BACK_PAIN, start);
            let end = start.plus_days(self.r(7, 30));
            self.course(&catalog::IBUPROFEN, start, Some(end), Dose::Adequate);
        }
        if self.chance(200) {
            let d = self.day(-self.r(10, 700));
            let v = self.r(65, 110) as u16;
            self.ev
                .observations
                .push(OtherObservation::Egfr { day: d, value: v });
        }
        for _ in 0..self.r(0, 1) {
            let d = self.day(-self.r(200, 700));
            let systolic = self.r(108, 160) as u16;
            let diastolic = self.r(64, 98) as u16;
            self.ev.observations.push(OtherObservation::BloodPressure {
                day: d,
                systolic,
                diastolic,
            });
        }
    }

    fn situations(&mut self, plan: &PatientPlan) {
        let has = |s: Situation| plan.situations.contains(&s);
        // Blood pressure: the latest reading in the last 180 days decides.
        let recent = self.day(-self.r(3, 170));
        if has(Situation::Hypertension) {
            let systolic = self.r(142, 176) as u16;
            let diastolic = self.r(86, 104) as u16;
            self.ev.observations.push(OtherObservation::BloodPressure {
                day: recent,
                systolic,
                diastolic,
            });
        } else if self.chance(450) {
            let systolic = self.r(104, 138) as u16;
            let diastolic = self.r(62, 88) as u16;
            self.ev.observations.push(OtherObservation::BloodPressure {
                day: recent,
                systolic,
                diastolic,
            });
        }
        let treated = plan.profile.treated();
        if has(Situation::Bipolar) {
            let first_antidepressant = self
                .ev
                .medications
                .iter()
                .filter(|m| {
                    catalog::ANTIDEPRESSANTS
                        .iter()
                        .any(|d| std::ptr::eq(*d, m.drug()))
                })
                .map(|m| m.start)
                .min();
            let mut variant = self.r(0, 3);
            if variant == 2 && has(Situation::Seizure) {
                variant = 0;
            }
            if variant == 3 && (!treated || first_antidepressant.is_none()) {
                variant = 1;
            }
            match variant {
                0 => {
                    let dx = *self.pick(&[
                        &dx::BIPOLAR_II,
                        &dx::BIPOLAR_UNSPECIFIED,
                        &dx::BIPOLAR_SNOMED_ONLY,
                    ]);
                    let d = self.day(-self.r(30, 2000));
                    self.condition(dx, d);
                }
                1 => {
                    let day = self.day(-self.r(30, 500));
                    let total = self.r(7, 13) as u8;
                    self.ev
                        .observations
                        .push(OtherObservation::Mdq { day, total });
                }
                2 => {
                    let start = self.day(-self.r(60, 700));
                    let end = self.end_or_ongoing(start, 60, 300, 600);
                    self.course(&catalog::LAMOTRIGINE, start, end, Dose::Adequate);
                }
                _ => {
                    let first = first_antidepressant.unwrap_or(self.as_of);
                    let span = first.days_until(self.as_of).max(2);
                    let d = first.plus_days(self.r(1, span.min(120)));
                    self.condition(&dx::HYPOMANIC_EPISODE, d);
                }
            }
        } else if plan.profile.depressed() && self.chance(80) {
            let day = self.day(-self.r(30, 500));
            let total = self.r(0, 6) as u8;
            self.ev
                .observations
                .push(OtherObservation::Mdq { day, total });
        }
        if has(Situation::Vascular) {
            let dx = *self.pick(&[
                &dx::CEREBRAL_ANEURYSM,
                &dx::CEREBRAL_AVM,
                &dx::AORTIC_ANEURYSM,
            ]);
            let d = self.day(-self.r(30, 3000));
            self.condition(dx, d);
        }
        if has(Situation::Psychosis) {
            let dx = if plan.profile.depressed() && self.chance(500) {
                &dx::PSYCHOTIC_DEPRESSION
            } else {
                &dx::SCHIZOPHRENIA
            };
            let d = self.day(-self.r(30, 3000));
            self.condition(dx, d);
        }
        if has(Situation::SubstanceUse) {
            let dx = *self.pick(&[&dx::ALCOHOL, &dx::CANNABIS, &dx::OPIOID]);
            let d = self.day(-self.r(30, 3000));
            self.condition(dx, d);
        }
        if has(Situation::Seizure) {
            let dx = *self.pick(&[&dx::EPILEPSY, &dx::CONVULSIONS]);
            let d = self.day(-self.r(100, 5000));
            self.condition(dx, d);
            if self.chance(500) {
                let drug = *self.pick(&[&catalog::LAMOTRIGINE, &catalog::CARBAMAZEPINE]);
                let start = self.day(-self.r(60, 2000));
                self.course(drug, start, None, Dose::Adequate);
            }
        }
        if has(Situation::Pregnancy) {
            let d = self.day(-self.r(20, 250));
            self.condition(&dx::PREGNANCY, d);
        }
        if has(Situation::SuicideRisk)
            && (self.ev.teen || self.ev.scores.is_empty() || self.chance(300))
        {
            let dx = if self.chance(800) {
                &dx::SUICIDAL_IDEATION
            } else {
                &dx::SUICIDE_ATTEMPT
            };
            let d = self.day(-self.r(10, 300));
            self.condition(dx, d);
        }
    }

    /// Records screening must set aside (entered in error, cancelled, proposed, refuted), and old
    /// resolved diagnoses: none of them may change what the record shows.
    fn noise(&mut self, plan: &PatientPlan) {
        let profile = plan.profile;
        if profile.depressed() && self.chance(30) {
            let day = self.day(-self.r(10, 600));
            let total = self.r(0, 27) as u8;
            self.ev.scores.push(ScoreEvent {
                day,
                minute: 600,
                total,
                item9: None,
                item9_separate: false,
                status: ScoreStatus::EnteredInError,
            });
        }
        if profile.treated() && self.chance(20) {
            let drug = *self.pick(&catalog::ANTIDEPRESSANTS);
            let regimen = self.regimen(drug, Dose::Adequate);
            let start = self.day(-self.r(10, 400));
            let status = if self.chance(500) {
                MedStatus::Cancelled
            } else {
                MedStatus::Proposal
            };
            let supply = Supply::Days {
                days: 30,
                repeats: 1,
            };
            self.push_med(
                regimen,
                start,
                supply,
                Shape::RequestProduct,
                DoseStyle::Structured,
                status,
            );
        }
        if !plan.situations.contains(&Situation::Bipolar) && self.chance(10) {
            let onset = self.day(-self.r(30, 900));
            self.ev.conditions.push(ConditionEvent {
                dx: &dx::BIPOLAR_UNSPECIFIED,
                onset,
                abated: None,
                verification: Verification::Refuted,
            });
        }
        if profile.depressed() && self.chance(100) {
            let onset = self.day(-self.r(1500, 4000));
            let abated = onset.plus_days(self.r(120, 400));
            self.ev.conditions.push(ConditionEvent {
                dx: &dx::MDD_SINGLE,
                onset,
                abated: Some(abated),
                verification: Verification::Confirmed,
            });
        }
    }

    /// PHQ-9 item 9 on about half the questionnaires: 0 at the latest answer, occasionally 1 on an
    /// earlier one; above 0 at the latest answer for a patient at risk (or as a standalone item when
    /// the latest questionnaire is older than a year).
    fn item9(&mut self, at_risk: bool) {
        if self.ev.teen {
            return;
        }
        self.ev.scores.sort_by_key(|s| (s.day, s.minute));
        let as_of = self.as_of;
        for i in 0..self.ev.scores.len() {
            if self.ev.scores[i].status != ScoreStatus::Final || !self.chance(550) {
                continue;
            }
            let value = u8::from(self.chance(80));
            let separate = self.chance(300);
            let s = &mut self.ev.scores[i];
            s.item9 = Some(value);
            s.item9_separate = separate;
        }
        let latest = self
            .ev
            .scores
            .iter()
            .rposition(|s| s.status == ScoreStatus::Final);
        let has_risk_condition = self.ev.conditions.iter().any(|c| {
            std::ptr::eq(c.dx, &dx::SUICIDAL_IDEATION) || std::ptr::eq(c.dx, &dx::SUICIDE_ATTEMPT)
        });
        let risk_value = self.r(1, 3) as u8;
        let latest_answered = self
            .ev
            .scores
            .iter()
            .rposition(|s| s.status == ScoreStatus::Final && s.item9.is_some());
        match (at_risk && !has_risk_condition, latest) {
            (true, Some(i)) if self.ev.scores[i].day.days_until(as_of) <= 300 => {
                self.ev.scores[i].item9 = Some(risk_value);
            }
            (true, _) => {
                let day = self.day(-self.r(3, 60));
                let after_all = self.ev.scores.last().is_none_or(|s| s.day < day);
                let day = if after_all { day } else { self.as_of };
                self.ev.observations.push(OtherObservation::Item9 {
                    day,
                    value: risk_value,
                });
            }
            (false, _) => {
                if let Some(i) = latest_answered {
                    self.ev.scores[i].item9 = Some(0);
                }
            }
        }
    }
}
