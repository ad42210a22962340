//! The timeline of each story: its depression, courses, scores and therapies.

use super::*;

impl Story<'_> {
    pub(super) fn profile(&mut self, profile: Profile) {
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
            Profile::CombinationFailed => {
                let s1 = self.day(-self.r(200, 500));
                self.depression_dx(s1.plus_days(-self.r(0, 30)));
                let (d1, d2) = self.combination();
                let s2 = s1.plus_days(self.r(0, 10));
                let end = self.end_or_ongoing(s1, 84, 160, 400);
                let c = self.course(d1, s1, end, Dose::Adequate);
                self.course(d2, s2, end, Dose::Adequate);
                self.baseline(s1);
                let until = c.end_or(self.as_of.plus_days(-self.r(0, 10)));
                self.failing_until(s1, until);
            }
            Profile::CombinationRestarted => {
                let s1 = self.day(-self.r(400, 600));
                self.depression_dx(s1.plus_days(-self.r(0, 30)));
                let (d1, d2) = self.combination();
                let e1 = s1.plus_days(self.r(56, 90));
                let s2 = e1.plus_days(self.r(45, 120));
                let e2 = self.end_or_ongoing(s2, 56, 120, 300);
                let apart = self.r(0, 7);
                self.course(d1, s1, Some(e1), Dose::Adequate);
                self.course(d2, s1.plus_days(apart), Some(e1), Dose::Adequate);
                let c2 = self.course(d1, s2, e2, Dose::Adequate);
                self.course(d2, s2.plus_days(apart), e2, Dose::Adequate);
                self.baseline(s1);
                if self.chance(500) {
                    self.failing_until(s1, e1);
                    self.baseline(s2);
                    let until = c2.end_or(self.as_of.plus_days(-self.r(0, 10)));
                    self.failing_until(s2, until);
                }
            }
        }
    }

    /// Two antidepressants prescribed together: an SSRI or SNRI with mirtazapine or bupropion.
    fn combination(&mut self) -> (&'static Drug, &'static Drug) {
        let bases = [
            &catalog::SERTRALINE,
            &catalog::CITALOPRAM,
            &catalog::ESCITALOPRAM,
            &catalog::FLUOXETINE,
            &catalog::VENLAFAXINE,
            &catalog::DULOXETINE,
        ];
        let partners = [&catalog::MIRTAZAPINE, &catalog::BUPROPION];
        (*self.pick(&bases), *self.pick(&partners))
    }

    pub(super) fn therapy(&mut self, day: Date, therapy: Therapy) {
        if day <= self.as_of {
            self.ev.procedures.push(ProcedureEvent { day, therapy });
        }
    }
}
