//! Word-bounded, case-insensitive reading of product text such as "sertraline 50 MG Oral Tablet" or
//! "olanzapine 6 MG / fluoxetine 25 MG Oral Capsule".

#[derive(Debug, Clone, PartialEq)]
pub enum Token<'a> {
    /// A run of letters, lower-cased.
    Word(String),
    /// A decimal number as written.
    Number(&'a str),
    Slash,
}

pub fn tokenize(text: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_digit() || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_digit()
                    || (bytes[i] == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)))
            {
                i += 1;
            }
            tokens.push(Token::Number(&text[start..i]));
        } else if c == b'/' {
            tokens.push(Token::Slash);
            i += 1;
        } else if is_letter(text, i) {
            let start = i;
            while i < bytes.len() && is_letter(text, i) {
                i += text[i..].chars().next().map_or(1, char::len_utf8);
            }
            tokens.push(Token::Word(text[start..i].to_lowercase()));
        } else {
            i += text[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    tokens
}

fn is_letter(text: &str, at: usize) -> bool {
    text[at..].chars().next().is_some_and(char::is_alphabetic)
}

/// The lower-cased words of a name ("Methylene Blue" → ["methylene", "blue"]).
pub fn words(name: &str) -> Vec<String> {
    tokenize(name)
        .into_iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w),
            _ => None,
        })
        .collect()
}

/// Whether `phrase` (already split into words) occurs word-bounded in `text`.
pub fn contains_phrase(tokens: &[Token<'_>], phrase: &[String]) -> bool {
    if phrase.is_empty() {
        return false;
    }
    tokens.windows(phrase.len()).any(|window| {
        window
            .iter()
            .zip(phrase)
            .all(|(t, w)| matches!(t, Token::Word(x) if x == w))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_product_text_into_words_numbers_and_slashes() {
        let t = tokenize("selegiline 0.25 MG/HR Transdermal-System");
        assert_eq!(
            t,
            vec![
                Token::Word("selegiline".into()),
                Token::Number("0.25"),
                Token::Word("mg".into()),
                Token::Slash,
                Token::Word("hr".into()),
                Token::Word("transdermal".into()),
                Token::Word("system".into()),
            ]
        );
        assert_eq!(tokenize("24HR")[0], Token::Number("24"));
    }

    #[test]
    fn phrases_match_whole_words_only() {
        let t = tokenize("Lithium Carbonate 300 MG");
        assert!(contains_phrase(&t, &words("lithium carbonate")));
        assert!(!contains_phrase(&tokenize("Lithiumx"), &words("lithium")));
        assert!(!contains_phrase(
            &tokenize("nortriptyline"),
            &words("triptyline")
        ));
    }
}
