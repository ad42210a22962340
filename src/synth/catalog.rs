//! The products the synthetic EHR prescribes: ingredient RxNorm codes (as in knowledge/drugs.toml),
//! product-level (SCD) codes and displays as the project's test fixtures use them, brands, and the
//! regimens a prescriber would choose at a therapeutic and at a sub-therapeutic dose.
//!
//! The doses here are the generator's own clinical intent (e.g. "sertraline 25 mg is a starting
//! dose, not a trial dose"); the tests check that the screening core reaches the same judgement
//! from its knowledge base, so the two are deliberately written independently.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Tablet,
    Capsule,
}

#[derive(Debug)]
pub struct Product {
    /// RxNorm SCD code; `None` where the project has no product code on record for the strength
    /// (such products are written with their text, or their ingredient code, only).
    pub scd: Option<&'static str>,
    pub display: &'static str,
    /// Strength per unit in tenths of a mg (37.5 mg = 375).
    pub tenth_mg: u32,
    pub form: Form,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Ssri,
    Snri,
    Atypical,
    Modulator,
    Tca,
    Maoi,
    Augmentation,
    Other,
}

#[derive(Debug)]
pub struct Drug {
    pub name: &'static str,
    pub rxcui: &'static str,
    pub brand: &'static str,
    pub class: Class,
    pub products: &'static [Product],
    /// (product index, units per administration, administrations per day) at a therapeutic dose,
    /// the first being the usual starting step of a titration.
    pub adequate: &'static [(usize, u8, u8)],
    /// A regimen below a trial dose (a starting dose left unchanged).
    pub low: Option<(usize, u8, u8)>,
}

/// What is prescribed: a product, how many units per administration, how often a day.
#[derive(Debug, Clone, Copy)]
pub struct Regimen {
    pub drug: &'static Drug,
    pub product: &'static Product,
    pub units: u8,
    pub per_day: u8,
}

impl Regimen {
    pub fn of(drug: &'static Drug, (product, units, per_day): (usize, u8, u8)) -> Regimen {
        Regimen {
            drug,
            product: &drug.products[product],
            units,
            per_day,
        }
    }

    /// mg per administration, in tenths.
    pub fn tenth_mg_per_dose(&self) -> u32 {
        self.product.tenth_mg * u32::from(self.units)
    }
}

const fn tab(scd: Option<&'static str>, display: &'static str, tenth_mg: u32) -> Product {
    Product {
        scd,
        display,
        tenth_mg,
        form: Form::Tablet,
    }
}

const fn cap(scd: Option<&'static str>, display: &'static str, tenth_mg: u32) -> Product {
    Product {
        scd,
        display,
        tenth_mg,
        form: Form::Capsule,
    }
}

pub static SERTRALINE: Drug = Drug {
    name: "sertraline",
    rxcui: "36437",
    brand: "Zoloft",
    class: Class::Ssri,
    products: &[
        tab(Some("312940"), "sertraline 25 MG Oral Tablet", 250),
        tab(Some("312941"), "sertraline 50 MG Oral Tablet", 500),
        tab(Some("312938"), "sertraline 100 MG Oral Tablet", 1000),
    ],
    adequate: &[(1, 1, 1), (2, 1, 1), (1, 3, 1)],
    low: Some((0, 1, 1)),
};

pub static CITALOPRAM: Drug = Drug {
    name: "citalopram",
    rxcui: "2556",
    brand: "Celexa",
    class: Class::Ssri,
    products: &[
        tab(None, "citalopram 10 MG Oral Tablet", 100),
        tab(Some("200371"), "citalopram 20 MG Oral Tablet", 200),
        tab(Some("309314"), "citalopram 40 MG Oral Tablet", 400),
    ],
    adequate: &[(1, 1, 1), (2, 1, 1)],
    low: Some((0, 1, 1)),
};

pub static ESCITALOPRAM: Drug = Drug {
    name: "escitalopram",
    rxcui: "321988",
    brand: "Lexapro",
    class: Class::Ssri,
    products: &[
        tab(None, "escitalopram 5 MG Oral Tablet", 50),
        tab(Some("349332"), "escitalopram 10 MG Oral Tablet", 100),
        tab(Some("351250"), "escitalopram 20 MG Oral Tablet", 200),
    ],
    adequate: &[(1, 1, 1), (2, 1, 1)],
    low: Some((0, 1, 1)),
};

pub static FLUOXETINE: Drug = Drug {
    name: "fluoxetine",
    rxcui: "4493",
    brand: "Prozac",
    class: Class::Ssri,
    products: &[
        cap(None, "fluoxetine 10 MG Oral Capsule", 100),
        cap(None, "fluoxetine 20 MG Oral Capsule", 200),
        cap(Some("313989"), "fluoxetine 40 MG Oral Capsule", 400),
    ],
    adequate: &[(1, 1, 1), (2, 1, 1)],
    low: Some((0, 1, 1)),
};

pub static VENLAFAXINE: Drug = Drug {
    name: "venlafaxine",
    rxcui: "39786",
    brand: "Effexor XR",
    class: Class::Snri,
    products: &[
        cap(
            None,
            "24 HR venlafaxine 37.5 MG Extended Release Oral Capsule",
            375,
        ),
        cap(
            Some("313585"),
            "24 HR venlafaxine 75 MG Extended Release Oral Capsule",
            750,
        ),
        cap(
            Some("313581"),
            "24 HR venlafaxine 150 MG Extended Release Oral Capsule",
            1500,
        ),
    ],
    adequate: &[(1, 1, 1), (2, 1, 1)],
    low: Some((0, 1, 1)),
};

pub static DULOXETINE: Drug = Drug {
    name: "duloxetine",
    rxcui: "72625",
    brand: "Cymbalta",
    class: Class::Snri,
    products: &[
        cap(None, "duloxetine 30 MG Delayed Release Oral Capsule", 300),
        cap(
            Some("596934"),
            "duloxetine 60 MG Delayed Release Oral Capsule",
            600,
        ),
    ],
    adequate: &[(1, 1, 1)],
    low: Some((0, 1, 1)),
};

pub static BUPROPION: Drug = Drug {
    name: "bupropion",
    rxcui: "42347",
    brand: "Wellbutrin XL",
    class: Class::Atypical,
    products: &[
        tab(
            None,
            "24 HR bupropion hydrochloride 150 MG Extended Release Oral Tablet",
            1500,
        ),
        tab(
            Some("993557"),
            "24 HR bupropion hydrochloride 300 MG Extended Release Oral Tablet",
            3000,
        ),
    ],
    adequate: &[(1, 1, 1)],
    low: Some((0, 1, 1)),
};

pub static MIRTAZAPINE: Drug = Drug {
    name: "mirtazapine",
    rxcui: "15996",
    brand: "Remeron",
    class: Class::Atypical,
    products: &[
        tab(None, "mirtazapine 7.5 MG Oral Tablet", 75),
        tab(Some("311725"), "mirtazapine 15 MG Oral Tablet", 150),
        tab(Some("314111"), "mirtazapine 30 MG Oral Tablet", 300),
    ],
    adequate: &[(1, 1, 1), (2, 1, 1)],
    low: Some((0, 1, 1)),
};

pub static VORTIOXETINE: Drug = Drug {
    name: "vortioxetine",
    rxcui: "1455099",
    brand: "Trintellix",
    class: Class::Modulator,
    products: &[
        tab(None, "vortioxetine 5 MG Oral Tablet", 50),
        tab(None, "vortioxetine 10 MG Oral Tablet", 100),
        tab(None, "vortioxetine 20 MG Oral Tablet", 200),
    ],
    adequate: &[(1, 1, 1), (2, 1, 1)],
    low: Some((0, 1, 1)),
};

pub static NORTRIPTYLINE: Drug = Drug {
    name: "nortriptyline",
    rxcui: "7531",
    brand: "Pamelor",
    class: Class::Tca,
    products: &[
        cap(None, "nortriptyline 25 MG Oral Capsule", 250),
        cap(Some("198046"), "nortriptyline 50 MG Oral Capsule", 500),
        cap(Some("198047"), "nortriptyline 75 MG Oral Capsule", 750),
    ],
    adequate: &[(1, 1, 1), (2, 1, 1)],
    low: Some((0, 1, 1)),
};

pub static PHENELZINE: Drug = Drug {
    name: "phenelzine",
    rxcui: "8123",
    brand: "Nardil",
    class: Class::Maoi,
    products: &[tab(Some("312347"), "phenelzine 15 MG Oral Tablet", 150)],
    adequate: &[(0, 1, 3)],
    low: None,
};

pub static TRANYLCYPROMINE: Drug = Drug {
    name: "tranylcypromine",
    rxcui: "10734",
    brand: "Parnate",
    class: Class::Maoi,
    products: &[tab(
        Some("313447"),
        "tranylcypromine 10 MG Oral Tablet",
        100,
    )],
    adequate: &[(0, 1, 3)],
    low: None,
};

pub static ARIPIPRAZOLE: Drug = Drug {
    name: "aripiprazole",
    rxcui: "89013",
    brand: "Abilify",
    class: Class::Augmentation,
    products: &[tab(Some("402131"), "aripiprazole 5 MG Oral Tablet", 50)],
    adequate: &[(0, 1, 1)],
    low: None,
};

pub static LITHIUM: Drug = Drug {
    name: "lithium",
    rxcui: "6448",
    brand: "Lithobid",
    class: Class::Augmentation,
    products: &[cap(None, "lithium carbonate 300 MG Oral Capsule", 3000)],
    adequate: &[(0, 1, 2)],
    low: None,
};

pub static TRAZODONE: Drug = Drug {
    name: "trazodone",
    rxcui: "10737",
    brand: "Desyrel",
    class: Class::Modulator,
    products: &[tab(
        Some("856377"),
        "trazodone hydrochloride 50 MG Oral Tablet",
        500,
    )],
    adequate: &[],
    low: Some((0, 1, 1)),
};

pub static LAMOTRIGINE: Drug = Drug {
    name: "lamotrigine",
    rxcui: "28439",
    brand: "Lamictal",
    class: Class::Other,
    products: &[tab(Some("198427"), "lamotrigine 100 MG Oral Tablet", 1000)],
    adequate: &[(0, 1, 1), (0, 1, 2)],
    low: None,
};

pub static IBUPROFEN: Drug = Drug {
    name: "ibuprofen",
    rxcui: "5640",
    brand: "Motrin",
    class: Class::Other,
    products: &[tab(Some("197806"), "ibuprofen 600 MG Oral Tablet", 6000)],
    adequate: &[(0, 1, 3)],
    low: None,
};

pub static LISINOPRIL: Drug = Drug {
    name: "lisinopril",
    rxcui: "29046",
    brand: "Zestril",
    class: Class::Other,
    products: &[
        tab(Some("314076"), "lisinopril 10 MG Oral Tablet", 100),
        tab(Some("314077"), "lisinopril 20 MG Oral Tablet", 200),
    ],
    adequate: &[(0, 1, 1), (1, 1, 1)],
    low: None,
};

pub static ATORVASTATIN: Drug = Drug {
    name: "atorvastatin",
    rxcui: "83367",
    brand: "Lipitor",
    class: Class::Other,
    products: &[tab(Some("617310"), "atorvastatin 20 MG Oral Tablet", 200)],
    adequate: &[(0, 1, 1)],
    low: None,
};

/// Antidepressants a trial is drawn from (MAOIs only where a story needs one).
pub static ANTIDEPRESSANTS: [&Drug; 10] = [
    &SERTRALINE,
    &CITALOPRAM,
    &ESCITALOPRAM,
    &FLUOXETINE,
    &VENLAFAXINE,
    &DULOXETINE,
    &BUPROPION,
    &MIRTAZAPINE,
    &VORTIOXETINE,
    &NORTRIPTYLINE,
];

/// Every drug the generator prescribes, for the Medication catalog.
pub static ALL: [&Drug; 20] = [
    &SERTRALINE,
    &CITALOPRAM,
    &ESCITALOPRAM,
    &FLUOXETINE,
    &VENLAFAXINE,
    &DULOXETINE,
    &BUPROPION,
    &MIRTAZAPINE,
    &VORTIOXETINE,
    &NORTRIPTYLINE,
    &PHENELZINE,
    &TRANYLCYPROMINE,
    &ARIPIPRAZOLE,
    &LITHIUM,
    &TRAZODONE,
    &LAMOTRIGINE,
    &IBUPROFEN,
    &LISINOPRIL,
    &ATORVASTATIN,
    &CARBAMAZEPINE,
];

pub static CARBAMAZEPINE: Drug = Drug {
    name: "carbamazepine",
    rxcui: "2002",
    brand: "Tegretol",
    class: Class::Other,
    products: &[tab(None, "carbamazepine 200 MG Oral Tablet", 2000)],
    adequate: &[(0, 1, 2)],
    low: None,
};

/// A common-strength, "1 unit of the product" phrasing of a brand, as a clinician types it.
pub fn brand_text(drug: &Drug, product: &Product) -> String {
    let form = match product.form {
        Form::Tablet => "tablet",
        Form::Capsule => "capsule",
    };
    format!("{} {} mg {form}", drug.brand, Mg(product.tenth_mg))
}

/// Tenths of a mg written as FHIR decimals are: "37.5", "100".
#[derive(Debug, Clone, Copy)]
pub struct Mg(pub u32);

impl std::fmt::Display for Mg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_multiple_of(10) {
            write!(f, "{}", self.0 / 10)
        } else {
            write!(f, "{}.{}", self.0 / 10, self.0 % 10)
        }
    }
}
