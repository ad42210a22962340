//! The clinician view (issue 13): one patient's screening as one self-contained HTML page, the
//! page a CDS Hooks card links to and `trdscreen evaluate FILE --html` writes. It shows the status
//! with its reasons, the antidepressant trials by course as bars on a timeline with the PHQ-9 totals
//! as a line over the same axis, the cautions with their evidence (`Type/id`), the ruleset version
//! and the as-of day. No script, no external resource: inline CSS (named by hash in the
//! [`CONTENT_SECURITY_POLICY`]), plain SVG, a print style sheet.
//!
//! The page is an askama template (`templates/view/page.html`), compiled with the crate and
//! escaping every value it writes: record text (drug names from the knowledge base, references,
//! the reasons' text) is treated as untrusted. The only unescaped value is the style sheet, a
//! constant of this crate. The patient is named by id alone: no name, birth date or other
//! demographic is read.
//!
//! [`link`] makes and checks the short-lived signed token a card's link carries; [`http`] serves
//! the page for such a link.

pub mod chart;
pub mod http;
pub mod link;

use crate::fhir::PatientRecord;
use crate::knowledge::Knowledge;
use crate::screening::facts;
use crate::screening::{Assessment, Diagnostics, Hint, Reason, Severity, Suggestion, TrdStatus};
use askama::Template;
use base64::Engine as _;
use std::sync::LazyLock;

/// The page's one style sheet, written inline.
const CSS: &str = include_str!("../../templates/view/page.css");

/// The Content-Security-Policy the page is served with: nothing may load or run, the one inline
/// style sheet is allowed by its SHA-256, no form, no base URL.
pub static CONTENT_SECURITY_POLICY: LazyLock<String> = LazyLock::new(|| {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, CSS.as_bytes());
    let hash = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; img-src 'none'; script-src 'none'; \
         base-uri 'none'; form-action 'none'"
    )
});

/// The page could not be written (a template error; never expected).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the clinician view could not be rendered")]
pub struct RenderError;

#[derive(Template)]
#[template(path = "view/page.html")]
struct Page<'a> {
    css: &'static str,
    patient_id: &'a str,
    status_label: &'static str,
    status_class: &'static str,
    as_of: String,
    failed_courses: u32,
    thase_rush: u32,
    maudsley: Option<u32>,
    reasons: &'a [Reason],
    chart: chart::Chart,
    courses: Vec<CourseRow<'a>>,
    hints: Vec<HintView<'a>>,
    suggestions: &'a [Suggestion],
    ruleset_version: &'a str,
    set_aside: usize,
}

struct CourseRow<'a> {
    course: String,
    drug: &'a str,
    class: &'a str,
    start: &'a str,
    end: &'a str,
    /// Before the current episode: not counted.
    earlier: bool,
    weeks: String,
    dose: String,
    adequacy: &'static str,
    outcome: &'static str,
    outcome_class: &'static str,
    evidence: &'a [String],
}

struct HintView<'a> {
    severity: &'static str,
    severity_class: &'static str,
    code: &'a str,
    message: &'a str,
    affects: String,
    evidence: &'a [String],
}

/// The status as the page names it, and its CSS class.
pub fn status_label(status: TrdStatus) -> (&'static str, &'static str) {
    match status {
        TrdStatus::Met => ("MET", "met"),
        TrdStatus::Possible => ("POSSIBLE", "possible"),
        TrdStatus::NotMet => ("NOT MET", "not-met"),
        TrdStatus::NotApplicable => ("NOT APPLICABLE", "not-applicable"),
    }
}

/// The PHQ-9 (and PHQ-A) totals of the record as screening read them (same codes, same status
/// filters, nothing after the as-of day), oldest first.
pub fn depression_scores(
    record: &PatientRecord,
    assessment: &Assessment,
    k: &Knowledge,
) -> Vec<chart::ScorePoint> {
    let mut ignored = Diagnostics::default();
    facts::gather(record, assessment.as_of, k, &mut ignored)
        .depression_scores
        .iter()
        .map(|s| chart::ScorePoint {
            day: s.at.day,
            value: s.value,
            citation: s.citation.to_owned(),
        })
        .collect()
}

/// The clinician view of `assessment`, evaluated from `record` with `knowledge`: a whole HTML
/// document.
pub fn page(
    record: &PatientRecord,
    assessment: &Assessment,
    knowledge: &Knowledge,
) -> Result<String, RenderError> {
    let scores = depression_scores(record, assessment, knowledge);
    let (status_label, status_class) = status_label(assessment.status);
    let courses = assessment
        .trials
        .iter()
        .map(|t| CourseRow {
            course: t
                .course
                .map_or_else(|| "augmentation".to_owned(), |c| c.to_string()),
            drug: &t.ingredient,
            class: &t.drug_class,
            start: &t.start,
            end: t.end.as_deref().unwrap_or("now"),
            earlier: !t.counted,
            weeks: format!("{:.1}", t.weeks),
            dose: chart::dose_text(t),
            adequacy: chart::adequacy_text(t),
            outcome: chart::outcome_text(t),
            outcome_class: chart::outcome_class(t.outcome),
            evidence: &t.evidence,
        })
        .collect();
    let mut hints: Vec<&Hint> = assessment.hints.iter().collect();
    hints.sort_by_key(|h| std::cmp::Reverse(h.severity));
    let hints = hints
        .into_iter()
        .map(|h| {
            let (severity, severity_class) = match h.severity {
                Severity::Critical => ("CRITICAL", "critical"),
                Severity::Warning => ("WARNING", "warning"),
                Severity::Info => ("INFO", "info"),
            };
            HintView {
                severity,
                severity_class,
                code: &h.code,
                message: &h.message,
                affects: h.affects.join(", "),
                evidence: &h.evidence,
            }
        })
        .collect();
    Page {
        css: CSS,
        patient_id: assessment.patient_id.as_str(),
        status_label,
        status_class,
        as_of: assessment.as_of.to_string(),
        failed_courses: assessment.failed_adequate_trials,
        thase_rush: assessment.staging.thase_rush_stage,
        maudsley: assessment.staging.maudsley_score,
        reasons: &assessment.reasons,
        chart: chart::chart(&assessment.trials, &scores, assessment.as_of),
        courses,
        hints,
        suggestions: &assessment.suggestions,
        ruleset_version: &assessment.ruleset_version,
        set_aside: assessment.diagnostics.len(),
    }
    .render()
    .map_err(|_| RenderError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::date::Date;
    use crate::fhir::read_patient_bundle;

    fn fixture(name: &str) -> (PatientRecord, Assessment, Knowledge) {
        let path = format!(
            "{}/tests/fixtures/scenarios/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).unwrap();
        let record = read_patient_bundle(&text).unwrap();
        let k = Knowledge::embedded();
        let a = crate::screening::evaluate(&record, Date::parse("2025-06-01").unwrap(), &k);
        (record, a, k)
    }

    #[test]
    fn the_page_shows_status_courses_scores_and_hints_of_a_met_patient() {
        let (record, a, k) = fixture("met-two-failed-ssri-snri.json");
        let html = page(&record, &a, &k).unwrap();
        assert!(html.contains(r#"<span id="status" class="status met">MET</span>"#));
        for drug in ["sertraline", "venlafaxine"] {
            assert!(html.contains(&format!(">{drug}</text>")), "{drug}");
        }
        assert_eq!(html.matches("<rect class=\"bar failed").count(), 2);
        let scores = depression_scores(&record, &a, &k);
        assert!(scores.len() >= 4);
        assert_eq!(html.matches("<circle class=\"phq9\"").count(), scores.len());
        assert!(html.contains(r#"<span class="code">suicide-risk</span>"#));
        assert!(html.contains(&a.ruleset_version));
    }

    #[test]
    fn a_patient_without_antidepressants_or_scores_gets_a_page_that_says_so() {
        let record = read_patient_bundle(
            r#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","id":"p1"}}]}"#,
        )
        .unwrap();
        let k = Knowledge::embedded();
        let a = crate::screening::evaluate(&record, Date::parse("2025-06-01").unwrap(), &k);
        let html = page(&record, &a, &k).unwrap();
        assert!(html.contains(">NOT APPLICABLE</span>"));
        assert!(html.contains("No antidepressant trials on record."));
        assert!(html.contains("No PHQ-9 scores on record."));
        assert!(!html.contains("<polyline"));
    }

    #[test]
    fn record_text_is_escaped_and_nothing_runs() {
        let (record, mut a, k) = fixture("met-two-failed-ssri-snri.json");
        a.trials[0].ingredient = "<script>alert(1)</script>".into();
        a.reasons[0]
            .evidence
            .push("Observation/\"><img src=x>".into());
        a.hints[0].message = "</style><script>x</script>".into();
        let html = page(&record, &a, &k).unwrap();
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"));
        assert!(html.contains(">&#60;script&#62;alert(1)&#60;/script&#62;</text>"));
        assert_eq!(html.matches("</style>").count(), 1);
    }

    #[test]
    fn the_style_sheet_is_the_one_the_policy_allows() {
        let (record, a, k) = fixture("possible-failed-plus-unknown-dose.json");
        let html = page(&record, &a, &k).unwrap();
        let style = html
            .split_once("<style>")
            .and_then(|(_, rest)| rest.split_once("</style>"))
            .map(|(css, _)| css)
            .unwrap();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, style.as_bytes());
        let hash = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
        assert!(CONTENT_SECURITY_POLICY.contains(&format!("style-src 'sha256-{hash}'")));
        assert!(CONTENT_SECURITY_POLICY.contains("script-src 'none'"));
        assert!(
            !html.contains(" style=\""),
            "inline style attributes would be blocked"
        );
    }
}
