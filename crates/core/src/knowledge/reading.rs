//! How product text is read for the drugs it names ("olanzapine 6 MG / fluoxetine 25 MG Oral Capsule",
//! "Zoloft 100 mg tab"): each name or brand of `drugs.toml`, word-bounded and in any case, with the
//! strength written after it and whether the text shows the drug's required route. The texts of a
//! record and the RxNorm names of `products.toml` are read alike.

use super::text::{self, Token};
use super::{DrugId, Knowledge, NameMatch, NameTarget};
use crate::ratio::Ratio;
use crate::screening::dose::{self, Strength};

/// One drug a text names, with what the text says of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Named {
    pub drug: crate::knowledge::DrugId,
    pub strength: Option<Strength>,
    /// The text shows the drug's required route: a brand of that form (Emsam) or the route in its
    /// words ("selegiline 0.25 MG/HR Transdermal System").
    pub route_shown: bool,
    /// A combination's own minimum dose for this ingredient (Auvelity's bupropion).
    pub min_adequate_override: Option<Ratio>,
}

impl Knowledge {
    /// Every drug or combination named in one text, each with the strength written after it (up to
    /// the next name), appended to `out`; `lowered` is a buffer kept from one text to the next.
    pub fn read_text(&self, t: &str, lowered: &mut String, out: &mut Vec<Named>) {
        text::lower_into(t, lowered);
        let tokens = text::tokenize(lowered);
        let mut previous: Option<NameMatch> = None;
        let mut i = 0;
        while i < tokens.len() {
            match self.name_at(&tokens, i) {
                Some(m) => {
                    if let Some(p) = previous.replace(m) {
                        self.push_named(p, &tokens, i, out);
                    }
                    i = m.end;
                }
                None => i += 1,
            }
        }
        if let Some(last) = previous {
            self.push_named(last, &tokens, tokens.len(), out);
        }
    }

    /// The drug or combination of a name found in `tokens`, with the strength written between the
    /// name and `until`.
    fn push_named(&self, m: NameMatch, tokens: &[Token<'_>], until: usize, out: &mut Vec<Named>) {
        // The slash that separates two ingredients ("fluoxetine 25 MG / olanzapine 6 MG") is not part
        // of the first one's strength.
        let mut window = &tokens[m.end..until];
        while let [rest @ .., Token::Slash] = window {
            window = rest;
        }
        let strength = dose::strength_from_tokens(window);
        match m.target {
            NameTarget::Drug { drug, brand } => {
                let route_in_text = self
                    .drug(drug)
                    .required_route
                    .as_ref()
                    .is_some_and(|route| text::contains_phrase(tokens, route));
                out.push(Named {
                    drug,
                    strength,
                    route_shown: brand || route_in_text,
                    min_adequate_override: None,
                })
            }
            NameTarget::Combination(c) => {
                let combination = &self.combinations[c];
                for drug in &combination.ingredients {
                    out.push(Named {
                        drug: *drug,
                        strength: None,
                        route_shown: true,
                        min_adequate_override: combination.min_adequate_daily_mg.get(drug).copied(),
                    });
                }
            }
        }
    }

    /// The drugs a text names, each once, in the order first named.
    pub fn drugs_named(&self, t: &str) -> Vec<DrugId> {
        let mut named = Vec::new();
        self.read_text(t, &mut String::new(), &mut named);
        let mut drugs: Vec<DrugId> = Vec::with_capacity(named.len());
        for n in named {
            if !drugs.contains(&n.drug) {
                drugs.push(n.drug);
            }
        }
        drugs
    }
}
