//! The events of one patient written as FHIR R4 resources, one JSON object per line, in the shapes
//! EHR Bulk exports use. Every string written is generated here (codes, displays, digits, ids), none
//! needs JSON escaping; a debug assertion keeps it so.

use super::catalog::{self, Drug, Form, Mg, Product};
use super::events::*;
use super::story::Demographics;
use crate::date::Date;
use std::fmt::Write;

const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";

/// Appends formatted text to a String (which cannot fail).
macro_rules! put {
    ($out:expr, $($arg:tt)*) => {
        $out.write_fmt(format_args!($($arg)*)).expect("a String accepts any text")
    };
}

/// The NDJSON files of a population, in the order their buffers are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum File {
    Patient,
    Condition,
    MedicationRequest,
    MedicationStatement,
    Medication,
    Observation,
    Procedure,
}

pub const FILES: [File; 7] = [
    File::Patient,
    File::Condition,
    File::MedicationRequest,
    File::MedicationStatement,
    File::Medication,
    File::Observation,
    File::Procedure,
];

impl File {
    pub fn resource_type(self) -> &'static str {
        match self {
            File::Patient => "Patient",
            File::Condition => "Condition",
            File::MedicationRequest => "MedicationRequest",
            File::MedicationStatement => "MedicationStatement",
            File::Medication => "Medication",
            File::Observation => "Observation",
            File::Procedure => "Procedure",
        }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            File::Patient => "Patient.ndjson",
            File::Condition => "Condition.ndjson",
            File::MedicationRequest => "MedicationRequest.ndjson",
            File::MedicationStatement => "MedicationStatement.ndjson",
            File::Medication => "Medication.ndjson",
            File::Observation => "Observation.ndjson",
            File::Procedure => "Procedure.ndjson",
        }
    }
}

/// One patient's lines for each file, and how many lines each holds.
#[derive(Debug, Default)]
pub struct Lines {
    pub text: [String; 7],
    pub count: [u64; 7],
}

impl Lines {
    pub fn clear(&mut self) {
        for t in &mut self.text {
            t.clear();
        }
        self.count = [0; 7];
    }

    pub fn buf(&mut self, file: File) -> &mut String {
        &mut self.text[file as usize]
    }

    /// Ends the line just written to `file`.
    pub fn end(&mut self, file: File) {
        debug_assert!(!self.text[file as usize].contains('\\'));
        self.text[file as usize].push('\n');
        self.count[file as usize] += 1;
    }
}

/// `2024-05-30T10:15:00Z`.
struct Instant(Date, u16);

impl std::fmt::Display for Instant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}T{:02}:{:02}:00Z",
            self.0,
            self.1 / 60 % 24,
            self.1 % 60
        )
    }
}

pub fn patient(out: &mut Lines, id: &str, index: u64, p: &Demographics) {
    let b = out.buf(File::Patient);
    let gender = match p.gender {
        Gender::Female => "female",
        Gender::Male => "male",
    };
    put!(
        b,
        r#"{{"resourceType":"Patient","id":"{id}","identifier":[{{"system":"https://ehr.example.org/mrn","value":"MRN{index:08}"}}],"active":true,"name":[{{"use":"official","family":"{}","given":["{}"]}}],"gender":"{gender}","birthDate":"{}","address":[{{"use":"home","city":"{}","state":"{}","postalCode":"{}","country":"US"}}]}}"#,
        p.family,
        p.given,
        p.birth,
        p.city.0,
        p.city.1,
        p.city.2
    );
    out.end(File::Patient);
}

pub fn condition(out: &mut Lines, pid: &str, n: usize, c: &ConditionEvent) {
    let b = out.buf(File::Condition);
    let clinical = if c.abated.is_some() {
        "resolved"
    } else {
        "active"
    };
    let verification = match c.verification {
        Verification::Confirmed => "confirmed",
        Verification::Refuted => "refuted",
    };
    put!(
        b,
        r#"{{"resourceType":"Condition","id":"{pid}-c{n}","clinicalStatus":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"{clinical}"}}]}},"verificationStatus":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/condition-ver-status","code":"{verification}"}}]}},"category":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/condition-category","code":"problem-list-item"}}]}}],"code":{{"coding":["#
    );
    let mut first = true;
    if let Some((code, display)) = c.dx.icd10 {
        put!(
            b,
            r#"{{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"{code}","display":"{display}"}}"#
        );
        first = false;
    }
    if let Some((code, display)) = c.dx.snomed {
        if !first {
            b.push(',');
        }
        put!(
            b,
            r#"{{"system":"http://snomed.info/sct","code":"{code}","display":"{display}"}}"#
        );
    }
    put!(
        b,
        r#"],"text":"{}"}},"subject":{{"reference":"Patient/{pid}"}},"onsetDateTime":"{}","recordedDate":"{}""#,
        c.dx.text,
        c.onset,
        c.onset
    );
    if let Some(end) = c.abated {
        put!(b, r#","abatementDateTime":"{end}""#);
    }
    b.push('}');
    out.end(File::Condition);
}

fn form_unit(form: Form) -> (&'static str, &'static str, &'static str) {
    match form {
        Form::Tablet => ("tablet", "{tbl}", "Tablet"),
        Form::Capsule => ("capsule", "{capsule}", "Capsule"),
    }
}

fn product_concept(b: &mut String, product: &Product) {
    match product.scd {
        Some(scd) => put!(
            b,
            r#""medicationCodeableConcept":{{"coding":[{{"system":"{RXNORM}","code":"{scd}","display":"{}"}}],"text":"{}"}}"#,
            product.display,
            product.display
        ),
        None => put!(
            b,
            r#""medicationCodeableConcept":{{"text":"{}"}}"#,
            product.display
        ),
    }
}

fn medication_element(b: &mut String, m: &MedicationEvent) {
    let drug = m.drug();
    let product = m.regimen.product;
    match m.shape {
        Shape::RequestProduct | Shape::Statement => product_concept(b, product),
        Shape::RequestIngredient => put!(
            b,
            r#""medicationCodeableConcept":{{"coding":[{{"system":"{RXNORM}","code":"{}","display":"{}"}}],"text":"{}"}}"#,
            drug.rxcui,
            drug.name,
            drug.name
        ),
        Shape::RequestReference => match product.scd {
            Some(scd) => put!(
                b,
                r#""medicationReference":{{"reference":"Medication/rx-{scd}","display":"{}"}}"#,
                product.display
            ),
            None => product_concept(b, product),
        },
        Shape::RequestBrandText => {
            if m.dose == DoseStyle::NoStrength {
                let (form, _, _) = form_unit(product.form);
                put!(
                    b,
                    r#""medicationCodeableConcept":{{"text":"{} {form}"}}"#,
                    drug.brand
                );
            } else {
                put!(
                    b,
                    r#""medicationCodeableConcept":{{"text":"{}"}}"#,
                    catalog::brand_text(drug, product)
                );
            }
        }
    }
}

/// Whether the dose is written in units of the product (tablets, capsules) rather than in mg.
fn dosed_in_units(m: &MedicationEvent) -> bool {
    matches!(
        m.shape,
        Shape::RequestProduct | Shape::RequestReference | Shape::RequestBrandText
    )
}

fn dosage(b: &mut String, m: &MedicationEvent, bounds: Option<(Date, Date)>) {
    let r = &m.regimen;
    let (unit, unit_code, _) = form_unit(r.product.form);
    let how_often = match r.per_day {
        1 => "once daily",
        2 => "twice daily",
        3 => "three times daily",
        _ => "as prescribed",
    };
    b.push('{');
    if m.dose == DoseStyle::TextOnly {
        b.push_str(r#""text":"Take as directed""#);
        if let Some((start, end)) = bounds {
            put!(
                b,
                r#","timing":{{"repeat":{{"boundsPeriod":{{"start":"{start}","end":"{end}"}}}}}}"#
            );
        }
        b.push('}');
        return;
    }
    if dosed_in_units(m) {
        let plural = if r.units > 1 { "s" } else { "" };
        put!(
            b,
            r#""text":"Take {} {unit}{plural} by mouth {how_often}","#,
            r.units
        );
    } else {
        put!(
            b,
            r#""text":"{} mg by mouth {how_often}","#,
            Mg(r.tenth_mg_per_dose())
        );
    }
    b.push_str(r#""timing":{"repeat":{"#);
    if let Some((start, end)) = bounds {
        put!(b, r#""boundsPeriod":{{"start":"{start}","end":"{end}"}},"#);
    }
    put!(
        b,
        r#""frequency":{},"period":1,"periodUnit":"d"}}}},"#,
        r.per_day
    );
    if m.dose == DoseStyle::AsNeeded {
        b.push_str(r#""asNeededBoolean":true,"#);
    }
    b.push_str(r#""route":{"coding":[{"system":"http://snomed.info/sct","code":"26643006","display":"Oral route"}]},"#);
    if dosed_in_units(m) {
        put!(
            b,
            r#""doseAndRate":[{{"doseQuantity":{{"value":{},"unit":"{unit}","system":"{UCUM}","code":"{unit_code}"}}}}]}}"#,
            r.units
        );
    } else {
        put!(
            b,
            r#""doseAndRate":[{{"doseQuantity":{{"value":{},"unit":"mg","system":"{UCUM}","code":"mg"}}}}]}}"#,
            Mg(r.tenth_mg_per_dose())
        );
    }
}

fn supply_end(m: &MedicationEvent) -> Option<Date> {
    match m.supply {
        Supply::Days { days, repeats } => Some(
            m.start
                .plus_days(i32::from(days) * (1 + i32::from(repeats))),
        ),
        Supply::Until(end) => Some(end),
        Supply::Open => None,
    }
}

pub fn medication_request(out: &mut Lines, pid: &str, n: usize, m: &MedicationEvent) {
    let b = out.buf(File::MedicationRequest);
    let (status, intent) = match m.status {
        MedStatus::Completed => ("completed", "order"),
        MedStatus::Active => ("active", "order"),
        MedStatus::Cancelled => ("cancelled", "order"),
        MedStatus::Proposal => ("active", "proposal"),
    };
    put!(
        b,
        r#"{{"resourceType":"MedicationRequest","id":"{pid}-mr{n}","status":"{status}","intent":"{intent}","#
    );
    medication_element(b, m);
    put!(
        b,
        r#","subject":{{"reference":"Patient/{pid}"}},"authoredOn":"{}","dosageInstruction":["#,
        m.start
    );
    let bounds = match m.supply {
        Supply::Until(end) => Some((m.start, end)),
        _ => None,
    };
    dosage(b, m, bounds);
    b.push(']');
    match m.supply {
        Supply::Days { days, repeats } => {
            let units = u32::from(days) * u32::from(m.regimen.units) * u32::from(m.regimen.per_day);
            let (unit, _, _) = form_unit(m.regimen.product.form);
            put!(
                b,
                r#","dispenseRequest":{{"numberOfRepeatsAllowed":{repeats},"quantity":{{"value":{units},"unit":"{unit}"}},"expectedSupplyDuration":{{"value":{days},"unit":"days","system":"{UCUM}","code":"d"}}}}"#
            );
        }
        Supply::Open => b.push_str(r#","dispenseRequest":{"numberOfRepeatsAllowed":5}"#),
        Supply::Until(_) => {}
    }
    b.push('}');
    out.end(File::MedicationRequest);
}

pub fn medication_statement(out: &mut Lines, pid: &str, n: usize, m: &MedicationEvent) {
    let b = out.buf(File::MedicationStatement);
    let status = match m.status {
        MedStatus::Active => "active",
        _ => "completed",
    };
    put!(
        b,
        r#"{{"resourceType":"MedicationStatement","id":"{pid}-ms{n}","status":"{status}","#
    );
    medication_element(b, m);
    put!(
        b,
        r#","subject":{{"reference":"Patient/{pid}"}},"effectivePeriod":{{"start":"{}""#,
        m.start
    );
    if let Some(end) = supply_end(m) {
        put!(b, r#","end":"{end}""#);
    }
    put!(b, r#"}},"dateAsserted":"{}","dosage":["#, m.start);
    dosage(b, m, None);
    b.push_str("]}");
    out.end(File::MedicationStatement);
}

fn observation_head(b: &mut String, pid: &str, n: usize, status: &str, category: &str) {
    put!(
        b,
        r#"{{"resourceType":"Observation","id":"{pid}-o{n}","status":"{status}","category":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"{category}"}}]}}],"#
    );
}

const ITEM9: &str = r#"{"system":"http://loinc.org","code":"44260-8","display":"Thoughts that you would be better off dead, or of hurting yourself in some way"}"#;

/// One questionnaire: the total (with item 9 as a component, or as its own Observation).
/// Returns the number of Observations written.
pub fn score(out: &mut Lines, pid: &str, n: usize, s: &ScoreEvent, teen: bool) -> usize {
    let b = out.buf(File::Observation);
    let status = match s.status {
        ScoreStatus::Final => "final",
        ScoreStatus::EnteredInError => "entered-in-error",
    };
    observation_head(b, pid, n, status, "survey");
    let (code, display) = if teen {
        (
            "89204-2",
            "Patient Health Questionnaire-9: Modified for Teens total score [Reported.PHQ.Teen]",
        )
    } else {
        (
            "44261-6",
            "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]",
        )
    };
    let at = Instant(s.day, s.minute);
    put!(
        b,
        r#""code":{{"coding":[{{"system":"{LOINC}","code":"{code}","display":"{display}"}}]}},"subject":{{"reference":"Patient/{pid}"}},"effectiveDateTime":"{at}","valueInteger":{}"#,
        s.total
    );
    match (s.item9, s.item9_separate) {
        (Some(v), false) => put!(
            b,
            r#","component":[{{"code":{{"coding":[{ITEM9}]}},"valueInteger":{v}}}]}}"#
        ),
        _ => b.push('}'),
    }
    out.end(File::Observation);
    if let (Some(v), true) = (s.item9, s.item9_separate) {
        item9(out, pid, n + 1, s.day, s.minute, v);
        return 2;
    }
    1
}

fn item9(out: &mut Lines, pid: &str, n: usize, day: Date, minute: u16, value: u8) {
    let b = out.buf(File::Observation);
    observation_head(b, pid, n, "final", "survey");
    let at = Instant(day, minute);
    put!(
        b,
        r#""code":{{"coding":[{ITEM9}]}},"subject":{{"reference":"Patient/{pid}"}},"effectiveDateTime":"{at}","valueInteger":{value}}}"#
    );
    out.end(File::Observation);
}

pub fn other_observation(out: &mut Lines, pid: &str, n: usize, o: &OtherObservation) {
    let at_minute = 9 * 60 + (n as u16 * 7) % 480;
    match *o {
        OtherObservation::BloodPressure {
            day,
            systolic,
            diastolic,
        } => {
            let b = out.buf(File::Observation);
            observation_head(b, pid, n, "final", "vital-signs");
            let at = Instant(day, at_minute);
            put!(
                b,
                r#""code":{{"coding":[{{"system":"{LOINC}","code":"85354-9","display":"Blood pressure panel with all children optional"}}]}},"subject":{{"reference":"Patient/{pid}"}},"effectiveDateTime":"{at}","component":[{{"code":{{"coding":[{{"system":"{LOINC}","code":"8480-6","display":"Systolic blood pressure"}}]}},"valueQuantity":{{"value":{systolic},"unit":"mmHg","system":"{UCUM}","code":"mm[Hg]"}}}},{{"code":{{"coding":[{{"system":"{LOINC}","code":"8462-4","display":"Diastolic blood pressure"}}]}},"valueQuantity":{{"value":{diastolic},"unit":"mmHg","system":"{UCUM}","code":"mm[Hg]"}}}}]}}"#
            );
            out.end(File::Observation);
        }
        OtherObservation::Egfr { day, value } => {
            let b = out.buf(File::Observation);
            observation_head(b, pid, n, "final", "laboratory");
            let at = Instant(day, at_minute);
            put!(
                b,
                r#""code":{{"coding":[{{"system":"{LOINC}","code":"62238-1","display":"Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or Blood by Creatinine-based formula (CKD-EPI)"}}]}},"subject":{{"reference":"Patient/{pid}"}},"effectiveDateTime":"{at}","valueQuantity":{{"value":{value},"unit":"mL/min/1.73m2","system":"{UCUM}","code":"mL/min/{{1.73_m2}}"}}}}"#
            );
            out.end(File::Observation);
        }
        OtherObservation::Mdq { day, total } => {
            let b = out.buf(File::Observation);
            observation_head(b, pid, n, "final", "survey");
            let at = Instant(day, at_minute);
            put!(
                b,
                r#""code":{{"coding":[{{"system":"{LOINC}","code":"84773-1","display":"Mood Disorder Questionnaire total score"}}]}},"subject":{{"reference":"Patient/{pid}"}},"effectiveDateTime":"{at}","valueInteger":{total}}}"#
            );
            out.end(File::Observation);
        }
        OtherObservation::Item9 { day, value } => item9(out, pid, n, day, at_minute, value),
    }
}

/// Labs and vitals screening does not read: (LOINC code, display, unit, UCUM code, lowest value,
/// spread).
const UNRELATED: [(&str, &str, &str, &str, u32, u32); 10] = [
    (
        "2345-7",
        "Glucose [Mass/volume] in Serum or Plasma",
        "mg/dL",
        "mg/dL",
        70,
        60,
    ),
    ("8867-4", "Heart rate", "/min", "/min", 55, 50),
    (
        "2951-2",
        "Sodium [Moles/volume] in Serum or Plasma",
        "mmol/L",
        "mmol/L",
        134,
        10,
    ),
    (
        "2823-3",
        "Potassium [Moles/volume] in Serum or Plasma",
        "mmol/L",
        "mmol/L",
        3,
        2,
    ),
    (
        "718-7",
        "Hemoglobin [Mass/volume] in Blood",
        "g/dL",
        "g/dL",
        11,
        6,
    ),
    (
        "4548-4",
        "Hemoglobin A1c/Hemoglobin.total in Blood",
        "%",
        "%",
        5,
        4,
    ),
    (
        "39156-5",
        "Body mass index (BMI) [Ratio]",
        "kg/m2",
        "kg/m2",
        19,
        16,
    ),
    ("8310-5", "Body temperature", "Cel", "Cel", 36, 2),
    ("29463-7", "Body weight", "kg", "kg", 50, 60),
    (
        "2160-0",
        "Creatinine [Mass/volume] in Serum or Plasma",
        "mg/dL",
        "mg/dL",
        1,
        1,
    ),
];

/// The `k`-th unrelated lab or vital (codes taken in turn).
pub fn unrelated_observation(out: &mut Lines, pid: &str, n: usize, k: usize, day: Date) {
    let (code, display, unit, ucum, low, spread) = UNRELATED[k % UNRELATED.len()];
    let value = low + (k as u32 * 7919) % spread.max(1);
    let category = if matches!(code, "8867-4" | "39156-5" | "8310-5" | "29463-7") {
        "vital-signs"
    } else {
        "laboratory"
    };
    let b = out.buf(File::Observation);
    observation_head(b, pid, n, "final", category);
    let at = Instant(day, 8 * 60 + (k as u16 * 13) % 600);
    put!(
        b,
        r#""code":{{"coding":[{{"system":"{LOINC}","code":"{code}","display":"{display}"}}]}},"subject":{{"reference":"Patient/{pid}"}},"effectiveDateTime":"{at}","valueQuantity":{{"value":{value},"unit":"{unit}","system":"{UCUM}","code":"{ucum}"}}}}"#
    );
    out.end(File::Observation);
}

pub fn procedure(out: &mut Lines, pid: &str, n: usize, p: &ProcedureEvent) {
    let b = out.buf(File::Procedure);
    let code = match p.therapy {
        Therapy::Ect => {
            r#"{"coding":[{"system":"http://snomed.info/sct","code":"23835007","display":"Electroconvulsive therapy"},{"system":"http://www.ama-assn.org/go/cpt","code":"90870","display":"Electroconvulsive therapy (includes necessary monitoring)"}],"text":"Electroconvulsive therapy"}"#
        }
        Therapy::Rtms => {
            r#"{"coding":[{"system":"http://www.ama-assn.org/go/cpt","code":"90868","display":"Therapeutic repetitive transcranial magnetic stimulation (TMS) treatment; subsequent delivery and management, per session"}],"text":"Repetitive transcranial magnetic stimulation"}"#
        }
    };
    put!(
        b,
        r#"{{"resourceType":"Procedure","id":"{pid}-p{n}","status":"completed","code":{code},"subject":{{"reference":"Patient/{pid}"}},"performedDateTime":"{}"}}"#,
        p.day
    );
    out.end(File::Procedure);
}

/// The product catalog: one Medication per product with a product code, with its ingredient and
/// strength, for requests that name a Medication by reference.
pub fn catalog(out: &mut String) -> u64 {
    let mut count = 0;
    for drug in catalog::ALL {
        for product in drug.products {
            if let Some(scd) = product.scd {
                medication(out, drug, product, scd);
                count += 1;
            }
        }
    }
    count
}

fn medication(b: &mut String, drug: &Drug, product: &Product, scd: &str) {
    let (_, _, form) = form_unit(product.form);
    let form_code = match product.form {
        Form::Tablet => "TAB",
        Form::Capsule => "CAP",
    };
    put!(
        b,
        r#"{{"resourceType":"Medication","id":"rx-{scd}","code":{{"coding":[{{"system":"{RXNORM}","code":"{scd}","display":"{}"}}],"text":"{}"}},"form":{{"text":"{form}"}},"ingredient":[{{"itemCodeableConcept":{{"coding":[{{"system":"{RXNORM}","code":"{}","display":"{}"}}]}},"isActive":true,"strength":{{"numerator":{{"value":{},"unit":"mg","system":"{UCUM}","code":"mg"}},"denominator":{{"value":1,"unit":"{}","system":"http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm","code":"{form_code}"}}}}}}]}}"#,
        product.display,
        product.display,
        drug.rxcui,
        drug.name,
        Mg(product.tenth_mg),
        form.to_ascii_lowercase()
    );
    b.push('\n');
}

/// Lines that do not belong: another resource type in a file, a resource of a patient missing
/// from Patient.ndjson, a line cut short.
pub mod foreign {
    use super::*;

    pub fn encounter(out: &mut Lines, pid: &str, day: Date) {
        let b = out.buf(File::Observation);
        put!(
            b,
            r#"{{"resourceType":"Encounter","id":"{pid}-enc1","status":"finished","class":{{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB","display":"ambulatory"}},"subject":{{"reference":"Patient/{pid}"}},"period":{{"start":"{day}","end":"{day}"}}}}"#
        );
        out.end(File::Observation);
    }

    pub fn basic(out: &mut Lines, pid: &str, day: Date) {
        let b = out.buf(File::Condition);
        put!(
            b,
            r#"{{"resourceType":"Basic","id":"{pid}-basic1","code":{{"text":"Patient education note"}},"subject":{{"reference":"Patient/{pid}"}},"created":"{day}"}}"#
        );
        out.end(File::Condition);
    }

    /// A Condition of a patient who is not in Patient.ndjson (merged away, or outside the export).
    pub fn orphan(out: &mut Lines, index: u64, day: Date) {
        let b = out.buf(File::Condition);
        put!(
            b,
            r#"{{"resourceType":"Condition","id":"syn-gone-{index:08}-c1","clinicalStatus":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}}]}},"code":{{"coding":[{{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"F33.1","display":"Major depressive disorder, recurrent, moderate"}}]}},"subject":{{"reference":"Patient/syn-gone-{index:08}"}},"onsetDateTime":"{day}"}}"#
        );
        out.end(File::Condition);
    }

    /// The first line of `file` again, cut in half: not JSON. `false` when the file has no line.
    pub fn truncated_copy(out: &mut Lines, file: File) -> bool {
        let text = &mut out.text[file as usize];
        let Some(first_end) = text.find('\n') else {
            return false;
        };
        let cut = first_end / 2;
        let copy: String = text[..cut].to_owned();
        text.push_str(&copy);
        out.end(file);
        true
    }
}
