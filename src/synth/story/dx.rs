//! Diagnoses (ICD-10-CM and SNOMED CT as in knowledge/codes.toml; the others are background).

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
