//! A prototype, for one question only: how much of a typed read is serde's machinery (visitors,
//! `Option<T>` and struct moves, field dispatch) rather than the work every reader must do
//! (scanning strings, checking the JSON, building the values)? A hand-written recursive-descent
//! reader over the same elements as `borrowed.rs` (borrowed strings, decimals as their JSON text),
//! its values written in place. Not a reader for the service: it does not refuse duplicate keys,
//! and it was checked only by agreeing with serde_json on the lines measured.
#![allow(dead_code)]

use std::borrow::Cow;

type Text<'a> = Option<Cow<'a, str>>;
type R<T> = Result<T, ()>;

#[derive(Default)]
pub struct Coding<'a> {
    pub system: Text<'a>,
    pub code: Text<'a>,
    pub display: Text<'a>,
}

#[derive(Default)]
pub struct CodeableConcept<'a> {
    pub coding: Vec<Coding<'a>>,
    pub text: Text<'a>,
}

#[derive(Default)]
pub struct Reference<'a> {
    pub reference: Text<'a>,
    pub display: Text<'a>,
}

#[derive(Default)]
pub struct Period<'a> {
    pub start: Text<'a>,
    pub end: Text<'a>,
}

#[derive(Default)]
pub struct Quantity<'a> {
    pub value: Option<&'a str>,
    pub unit: Text<'a>,
    pub system: Text<'a>,
    pub code: Text<'a>,
}

#[derive(Default)]
pub struct FhirRatio<'a> {
    pub numerator: Option<Quantity<'a>>,
    pub denominator: Option<Quantity<'a>>,
}

#[derive(Default)]
pub struct TimingRepeat<'a> {
    pub bounds_period: Option<Period<'a>>,
    pub frequency: Option<u32>,
    pub period: Option<&'a str>,
    pub period_unit: Text<'a>,
}

#[derive(Default)]
pub struct Timing<'a> {
    pub repeat: Option<TimingRepeat<'a>>,
    pub code: Option<CodeableConcept<'a>>,
    pub modifier_extension: usize,
}

#[derive(Default)]
pub struct Dosage<'a> {
    pub text: Text<'a>,
    pub timing: Option<Timing<'a>>,
    pub as_needed_boolean: Option<bool>,
    pub as_needed_codeable_concept: Option<CodeableConcept<'a>>,
    pub route: Option<CodeableConcept<'a>>,
    pub dose_quantities: Vec<Option<Quantity<'a>>>,
    pub modifier_extension: usize,
}

#[derive(Default)]
pub struct DispenseRequest<'a> {
    pub validity_period: Option<Period<'a>>,
    pub number_of_repeats_allowed: Option<u32>,
    pub expected_supply_duration: Option<Quantity<'a>>,
    pub modifier_extension: usize,
}

#[derive(Default)]
pub struct MedicationIngredient<'a> {
    pub item_codeable_concept: Option<CodeableConcept<'a>>,
    pub strength: Option<FhirRatio<'a>>,
    pub modifier_extension: usize,
}

#[derive(Default)]
pub struct Medication<'a> {
    pub resource_type: Text<'a>,
    pub id: Text<'a>,
    pub code: Option<CodeableConcept<'a>>,
    pub ingredient: Vec<MedicationIngredient<'a>>,
    pub modifier_extension: usize,
}

#[derive(Default)]
pub struct ObservationComponent<'a> {
    pub code: Option<CodeableConcept<'a>>,
    pub value_quantity: Option<Quantity<'a>>,
    pub value_integer: Option<i64>,
    pub value_string: Text<'a>,
    pub modifier_extension: usize,
}

#[derive(Default)]
pub struct AnyResource<'a> {
    pub resource_type: Text<'a>,
    pub id: Text<'a>,
    pub subject: Option<Reference<'a>>,
    pub patient: Option<Reference<'a>>,
    pub meta: Option<Period<'a>>,
    pub modifier_extension: usize,
    pub deceased_boolean: Option<bool>,
    pub deceased_date_time: Text<'a>,
    pub do_not_perform: Option<bool>,
    pub value_string: Text<'a>,
    pub status: Text<'a>,
    pub code: Option<CodeableConcept<'a>>,
    pub clinical_status: Option<CodeableConcept<'a>>,
    pub verification_status: Option<CodeableConcept<'a>>,
    pub onset_date_time: Text<'a>,
    pub onset_period: Option<Period<'a>>,
    pub recorded_date: Text<'a>,
    pub abatement_date_time: Text<'a>,
    pub abatement_period: Option<Period<'a>>,
    pub intent: Text<'a>,
    pub medication_codeable_concept: Option<CodeableConcept<'a>>,
    pub medication_reference: Option<Reference<'a>>,
    pub authored_on: Text<'a>,
    pub dosage_instruction: Vec<Dosage<'a>>,
    pub dispense_request: Option<DispenseRequest<'a>>,
    pub contained: Vec<Medication<'a>>,
    pub effective_date_time: Text<'a>,
    pub effective_period: Option<Period<'a>>,
    pub date_asserted: Text<'a>,
    pub dosage: Vec<Dosage<'a>>,
    pub ingredient: Vec<MedicationIngredient<'a>>,
    pub effective_instant: Text<'a>,
    pub issued: Text<'a>,
    pub value_quantity: Option<Quantity<'a>>,
    pub value_integer: Option<i64>,
    pub component: Vec<ObservationComponent<'a>>,
    pub performed_date_time: Text<'a>,
    pub performed_period: Option<Period<'a>>,
}

impl AnyResource<'_> {
    pub fn key(&self) -> (Option<String>, Option<String>, Option<String>) {
        let patient = self
            .subject
            .as_ref()
            .or(self.patient.as_ref())
            .and_then(|r| r.reference.as_deref().map(str::to_owned));
        (
            self.resource_type.as_deref().map(str::to_owned),
            self.id.as_deref().map(str::to_owned),
            patient,
        )
    }
}

/// Reads one resource; `Err` where serde_json would refuse the line (or where this prototype
/// does not follow it).
pub fn read(line: &str) -> R<AnyResource<'_>> {
    let mut p = P {
        b: line.as_bytes(),
        s: line,
        i: 0,
    };
    let mut r = AnyResource::default();
    p.object(|p, key| {
        match key {
            "resourceType" => r.resource_type = p.text()?,
            "id" => r.id = p.text()?,
            "subject" => r.subject = p.opt(P::reference)?,
            "patient" => r.patient = p.opt(P::reference)?,
            "meta" => r.meta = p.opt(P::meta)?,
            "modifierExtension" => r.modifier_extension = p.skipped_list()?,
            "deceasedBoolean" => r.deceased_boolean = p.opt(P::boolean)?,
            "deceasedDateTime" => r.deceased_date_time = p.text()?,
            "doNotPerform" => r.do_not_perform = p.opt(P::boolean)?,
            "valueString" => r.value_string = p.text()?,
            "status" => r.status = p.text()?,
            "code" => r.code = p.opt(P::concept)?,
            "clinicalStatus" => r.clinical_status = p.opt(P::concept)?,
            "verificationStatus" => r.verification_status = p.opt(P::concept)?,
            "onsetDateTime" => r.onset_date_time = p.text()?,
            "onsetPeriod" => r.onset_period = p.opt(P::period)?,
            "recordedDate" => r.recorded_date = p.text()?,
            "abatementDateTime" => r.abatement_date_time = p.text()?,
            "abatementPeriod" => r.abatement_period = p.opt(P::period)?,
            "intent" => r.intent = p.text()?,
            "medicationCodeableConcept" => r.medication_codeable_concept = p.opt(P::concept)?,
            "medicationReference" => r.medication_reference = p.opt(P::reference)?,
            "authoredOn" => r.authored_on = p.text()?,
            "dosageInstruction" => r.dosage_instruction = p.list(P::dosage)?,
            "dispenseRequest" => r.dispense_request = p.opt(P::dispense)?,
            "contained" => r.contained = p.list(P::medication)?,
            "effectiveDateTime" => r.effective_date_time = p.text()?,
            "effectivePeriod" => r.effective_period = p.opt(P::period)?,
            "dateAsserted" => r.date_asserted = p.text()?,
            "dosage" => r.dosage = p.list(P::dosage)?,
            "ingredient" => r.ingredient = p.list(P::ingredient)?,
            "effectiveInstant" => r.effective_instant = p.text()?,
            "issued" => r.issued = p.text()?,
            "valueQuantity" => r.value_quantity = p.opt(P::quantity)?,
            "valueInteger" => r.value_integer = p.opt(P::integer)?,
            "component" => r.component = p.list(P::component)?,
            "performedDateTime" => r.performed_date_time = p.text()?,
            "performedPeriod" => r.performed_period = p.opt(P::period)?,
            _ => p.skip()?,
        }
        Ok(())
    })?;
    p.ws();
    if p.i == p.b.len() { Ok(r) } else { Err(()) }
}

struct P<'a> {
    b: &'a [u8],
    s: &'a str,
    i: usize,
}

impl<'a> P<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if c == b' ' || c == b'\n' || c == b'\r' || c == b'\t' {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    #[inline]
    fn eat(&mut self, c: u8) -> R<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(())
        }
    }

    fn literal(&mut self, word: &[u8]) -> R<()> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(())
        }
    }

    /// `null` (serde's `Option` reads it as `None`) or a value.
    #[inline]
    fn opt<T>(&mut self, read: impl FnOnce(&mut Self) -> R<T>) -> R<Option<T>> {
        if self.peek() == Some(b'n') {
            self.literal(b"null")?;
            Ok(None)
        } else {
            read(self).map(Some)
        }
    }

    fn text(&mut self) -> R<Text<'a>> {
        self.opt(P::string)
    }

    /// A string: borrowed when it has no escape.
    fn string(&mut self) -> R<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            let c = *self.b.get(self.i).ok_or(())?;
            if c == b'"' {
                let text = &self.s[start..self.i];
                self.i += 1;
                return Ok(Cow::Borrowed(text));
            }
            if c == b'\\' {
                return self.escaped(start).map(Cow::Owned);
            }
            if c < 0x20 {
                return Err(());
            }
            self.i += 1;
        }
    }

    fn escaped(&mut self, start: usize) -> R<String> {
        let mut out = String::from(&self.s[start..self.i]);
        loop {
            let c = *self.b.get(self.i).ok_or(())?;
            match c {
                b'"' => {
                    self.i += 1;
                    return Ok(out);
                }
                b'\\' => {
                    let e = *self.b.get(self.i + 1).ok_or(())?;
                    self.i += 2;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let unit = self.hex4()?;
                            let ch = if (0xD800..0xDC00).contains(&unit) {
                                self.literal(b"\\u")?;
                                let low = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return Err(());
                                }
                                0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                unit
                            };
                            out.push(char::from_u32(ch).ok_or(())?);
                        }
                        _ => return Err(()),
                    }
                }
                c if c < 0x20 => return Err(()),
                _ => {
                    let from = self.i;
                    while self
                        .b
                        .get(self.i)
                        .is_some_and(|&c| c != b'"' && c != b'\\' && c >= 0x20)
                    {
                        self.i += 1;
                    }
                    out.push_str(&self.s[from..self.i]);
                }
            }
        }
    }

    fn hex4(&mut self) -> R<u32> {
        let digits = self.s.get(self.i..self.i + 4).ok_or(())?;
        let v = u32::from_str_radix(digits, 16).map_err(|_| ())?;
        self.i += 4;
        Ok(v)
    }

    /// A JSON number's text.
    fn number(&mut self) -> R<&'a str> {
        self.ws();
        let start = self.i;
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(()),
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if !self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                return Err(());
            }
            self.digits();
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                return Err(());
            }
            self.digits();
        }
        Ok(&self.s[start..self.i])
    }

    fn digits(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
    }

    fn integer(&mut self) -> R<i64> {
        self.number()?.parse().map_err(|_| ())
    }

    fn unsigned(&mut self) -> R<u32> {
        self.number()?.parse().map_err(|_| ())
    }

    fn boolean(&mut self) -> R<bool> {
        match self.peek() {
            Some(b't') => self.literal(b"true").map(|()| true),
            Some(b'f') => self.literal(b"false").map(|()| false),
            _ => Err(()),
        }
    }

    /// An object, each key handed to `each` with the reader at its value.
    #[inline]
    fn object(&mut self, mut each: impl FnMut(&mut Self, &str) -> R<()>) -> R<()> {
        self.eat(b'{')?;
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            each(self, &key)?;
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(()),
            }
        }
    }

    #[inline]
    fn array(&mut self, mut each: impl FnMut(&mut Self) -> R<()>) -> R<()> {
        self.eat(b'[')?;
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            each(self)?;
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(()),
            }
        }
    }

    /// A list element (`#[serde(default)] Vec<T>`: absent is empty, `null` is refused).
    fn list<T>(&mut self, read: impl Fn(&mut Self) -> R<T>) -> R<Vec<T>> {
        let mut out = Vec::new();
        self.array(|p| {
            out.push(read(p)?);
            Ok(())
        })?;
        Ok(out)
    }

    fn skipped_list(&mut self) -> R<usize> {
        let mut n = 0;
        self.array(|p| {
            n += 1;
            p.skip()
        })?;
        Ok(n)
    }

    /// Any value, checked and dropped.
    fn skip(&mut self) -> R<()> {
        match self.peek().ok_or(())? {
            b'{' => self.object(|p, _| p.skip()),
            b'[' => self.array(P::skip),
            b'"' => self.string().map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number().map(drop),
        }
    }

    fn coding(&mut self) -> R<Coding<'a>> {
        let mut c = Coding::default();
        self.object(|p, key| {
            match key {
                "system" => c.system = p.text()?,
                "code" => c.code = p.text()?,
                "display" => c.display = p.text()?,
                _ => p.skip()?,
            }
            Ok(())
        })?;
        Ok(c)
    }

    fn concept(&mut self) -> R<CodeableConcept<'a>> {
        let mut c = CodeableConcept::default();
        self.object(|p, key| {
            match key {
                "coding" => c.coding = p.list(P::coding)?,
                "text" => c.text = p.text()?,
                _ => p.skip()?,
            }
            Ok(())
        })?;
        Ok(c)
    }

    fn reference(&mut self) -> R<Reference<'a>> {
        let mut r = Reference::default();
        self.object(|p, key| {
            match key {
                "reference" => r.reference = p.text()?,
                "display" => r.display = p.text()?,
                _ => p.skip()?,
            }
            Ok(())
        })?;
        Ok(r)
    }

    fn period(&mut self) -> R<Period<'a>> {
        let mut r = Period::default();
        self.object(|p, key| {
            match key {
                "start" => r.start = p.text()?,
                "end" => r.end = p.text()?,
                _ => p.skip()?,
            }
            Ok(())
        })?;
        Ok(r)
    }

    fn meta(&mut self) -> R<Period<'a>> {
        let mut r = Period::default();
        self.object(|p, key| {
            match key {
                "versionId" => r.start = p.text()?,
                "lastUpdated" => r.end = p.text()?,
                _ => p.skip()?,
            }
            Ok(())
        })?;
        Ok(r)
    }

    fn quantity(&mut self) -> R<Quantity<'a>> {
        let mut q = Quantity::default();
        self.object(|p, key| {
            match key {
                "value" => {
                    q.value = if p.peek() == Some(b'n') {
                        p.literal(b"null")?;
                        None
                    } else {
                        // A RawValue: any JSON value's text.
                        p.ws();
                        let start = p.i;
                        p.skip()?;
                        Some(&p.s[start..p.i])
                    }
                }
                "unit" => q.unit = p.text()?,
                "system" => q.system = p.text()?,
                "code" => q.code = p.text()?,
                _ => p.skip()?,
            }
            Ok(())
        })?;
        Ok(q)
    }

    fn ratio(&mut self) -> R<FhirRatio<'a>> {
        let mut r = FhirRatio::default();
        self.object(|p, key| {
            match key {
                "numerator" => r.numerator = p.opt(P::quantity)?,
                "denominator" => r.denominator = p.opt(P::quantity)?,
                _ => p.skip()?,
            }
            Ok(())
        })?;
        Ok(r)
    }

    fn repeat(&mut self) -> R<TimingRepeat<'a>> {
        let mut r = TimingRepeat::default();
        self.object(|p, key| {
            match key {
                "boundsPeriod" => r.bounds_period = p.opt(P::period)?,
                "frequency" => r.frequency = p.opt(P::unsigned)?,
                "period" => {
                    r.period = if p.peek() == Some(b'n') {
                        p.literal(b"null")?;
                        None
                    } else {
                        p.ws();
                        let start = p.i;
                        p.skip()?;
                        Some(&p.s[start..p.i])
                    }
                }
                "periodUnit" => r.period_unit = p.text()?,
                _ => p.skip()?,
            }
            Ok(())
        })?;
        Ok(r)
    }

    fn timing(&mut self) -> R<Timing<'a>> {
        let mut t = Timing::default();
        self.object(|p, key| {
            match key {
                "repeat" => t.repeat = p.opt(P::repeat)?,
                "code" => t.code = p.opt(P::concept)?,
                "modifierExtension" => t.modifier_extension = p.skipped_list()?,
                _ => p.skip()?,
            }
            Ok(())
        })?;
        Ok(t)
    }

    fn dose_and_rate(&mut self) -> R<Option<Quantity<'a>>> {
        let mut q = None;
        self.object(|p, key| {
            match key {
                "doseQuantity" => q = p.opt(P::quantity)?,
                _ => p.skip()?,
            }
            Ok(())
        })?;
        Ok(q)
    }

    fn dosage(&mut self) -> R<Dosage<'a>> {
        let mut d = Dosage::default();
        self.object(|p, key| {
            match key {
                "text" => d.text = p.text()?,
                "timing" => d.timing = p.opt(P::timing)?,
                "asNeededBoolean" => d.as_needed_boolean = p.opt(P::boolean)?,
                "asNeededCodeableConcept" => d.as_needed_codeable_concept = p.opt(P::concept)?,
                "route" => d.route = p.opt(P::concept)?,
                "doseAndRate" => d.dose_quantities = p.list(P::dose_and_rate)?,
                "modifierExtension" => d.modifier_extension = p.skipped_list()?,
                _ => p.skip()?,
            }
            Ok(())
        })?;
        Ok(d)
    }

    fn dispense(&mut self) -> R<DispenseRequest<'a>> {
        let mut d = DispenseRequest::default();
        self.object(|p, key| {
            match key {
                "validityPeriod" => d.validity_period = p.opt(P::period)?,
                "numberOfRepeatsAllowed" => d.number_of_repeats_allowed = p.opt(P::unsigned)?,
                "expectedSupplyDuration" => d.expected_supply_duration = p.opt(P::quantity)?,
                "modifierExtension" => d.modifier_extension = p.skipped_list()?,
                _ => p.skip()?,
            }
            Ok(())
        })?;
        Ok(d)
    }

    fn ingredient(&mut self) -> R<MedicationIngredient<'a>> {
        let mut m = MedicationIngredient::default();
        self.object(|p, key| {
            match key {
                "itemCodeableConcept" => m.item_codeable_concept = p.opt(P::concept)?,
                "strength" => m.strength = p.opt(P::ratio)?,
                "modifierExtension" => m.modifier_extension = p.skipped_list()?,
                _ => p.skip()?,
            }
            Ok(())
        })?;
        Ok(m)
    }

    fn medication(&mut self) -> R<Medication<'a>> {
        let mut m = Medication::default();
        self.object(|p, key| {
            match key {
                "resourceType" => m.resource_type = p.text()?,
                "id" => m.id = p.text()?,
                "code" => m.code = p.opt(P::concept)?,
                "ingredient" => m.ingredient = p.list(P::ingredient)?,
                "modifierExtension" => m.modifier_extension = p.skipped_list()?,
                _ => p.skip()?,
            }
            Ok(())
        })?;
        Ok(m)
    }

    fn component(&mut self) -> R<ObservationComponent<'a>> {
        let mut c = ObservationComponent::default();
        self.object(|p, key| {
            match key {
                "code" => c.code = p.opt(P::concept)?,
                "valueQuantity" => c.value_quantity = p.opt(P::quantity)?,
                "valueInteger" => c.value_integer = p.opt(P::integer)?,
                "valueString" => c.value_string = p.text()?,
                "modifierExtension" => c.modifier_extension = p.skipped_list()?,
                _ => p.skip()?,
            }
            Ok(())
        })?;
        Ok(c)
    }
}
