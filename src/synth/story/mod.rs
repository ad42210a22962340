//! A patient's plan turned into dated events: the timeline of each story, relative to `as_of`, and
//! the situations layered on it. Every day is an offset from `as_of`, so a population generated
//! for another day has the same shape.

use super::catalog::{self, Class, Drug, Regimen};
use super::events::*;
use super::profiles::{PatientPlan, Profile, Situation};
use super::rng::Rng;
use crate::date::Date;
use std::cell::RefCell;

pub mod dx;
mod situations;
mod stories;

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
}
