//! Next-step suggestions (screening-rules.md section 10), each with the hints that caution it. A
//! contraindicated suggestion stays in the list, marked, so nothing is silently dropped.

use super::assessment::{Hint, Suggestion};
use crate::knowledge::Knowledge;

pub fn suggest(failed_adequate_trials: u32, hints: &[Hint], k: &Knowledge) -> Vec<Suggestion> {
    k.suggestions
        .iter()
        .filter(|s| failed_adequate_trials >= s.min_failed_adequate_trials)
        .map(|s| {
            let cautions = hints
                .iter()
                .filter(|h| {
                    h.affects
                        .iter()
                        .any(|a| a == "all" || s.treatments.contains(a))
                })
                .map(|h| h.code.clone())
                .collect();
            let contraindicated = hints
                .iter()
                .any(|h| k.hint(&h.code).contraindicates.contains(&s.code));
            Suggestion {
                code: s.code.clone(),
                title: s.title.clone(),
                cautions,
                contraindicated,
            }
        })
        .collect()
}
