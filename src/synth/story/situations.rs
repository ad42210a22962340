//! What is layered on a story: background diagnoses and readings, situations, noise, and
//! PHQ-9 item 9.

use super::*;

impl Story<'_> {
    /// The rest of a record: other diagnoses and their drugs, blood pressures, kidney function.
    pub(super) fn background(&mut self, profile: Profile) {
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

    pub(super) fn situations(&mut self, plan: &PatientPlan) {
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
    pub(super) fn noise(&mut self, plan: &PatientPlan) {
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
    pub(super) fn item9(&mut self, at_risk: bool) {
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
