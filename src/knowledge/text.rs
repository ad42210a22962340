//! Word-bounded, case-insensitive reading of product text such as "sertraline 50 MG Oral Tablet" or
//! "olanzapine 6 MG / fluoxetine 25 MG Oral Capsule".

#[derive(Debug, Clone, PartialEq)]
pub enum Token<'a> {
    /// A run of letters (of the lower-cased text).
    Word(&'a str),
    /// A decimal number as written.
    Number(&'a str),
    Slash,
}

/// The text lower-cased, borrowed when it has no upper-case letters (the usual case for codes'
/// displays is mixed, so this allocates once per text rather than once per word).
pub fn lower(text: &str) -> std::borrow::Cow<'_, str> {
    if text.is_ascii() {
        return if text.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(text.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(text)
        };
    }
    if text.chars().any(char::is_uppercase) {
        std::borrow::Cow::Owned(text.to_lowercase())
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Splits an already lower-cased text (see [`lower`]) into words, numbers and slashes.
pub fn tokenize(text: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::with_capacity(16);
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
            tokens.push(Token::Word(&text[start..i]));
        } else {
            i += text[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    tokens
}

fn is_letter(text: &str, at: usize) -> bool {
    match text.as_bytes()[at] {
        b if b.is_ascii() => b.is_ascii_alphabetic(),
        _ => text[at..].chars().next().is_some_and(char::is_alphabetic),
    }
}

/// The lower-cased words of a name ("Methylene Blue" → ["methylene", "blue"]).
pub fn words(name: &str) -> Vec<String> {
    tokenize(&lower(name))
        .into_iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w.to_owned()),
            _ => None,
        })
        .collect()
}

/// Whether `phrase` occurs word-bounded in `text` (any case).
pub fn text_contains_phrase(text: &str, phrase: &[String]) -> bool {
    contains_phrase(&tokenize(&lower(text)), phrase)
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
        let lowered = lower("selegiline 0.25 MG/HR Transdermal-System");
        let t = tokenize(&lowered);
        assert_eq!(
            t,
            vec![
                Token::Word("selegiline"),
                Token::Number("0.25"),
                Token::Word("mg"),
                Token::Slash,
                Token::Word("hr"),
                Token::Word("transdermal"),
                Token::Word("system"),
            ]
        );
        assert_eq!(tokenize("24HR")[0], Token::Number("24"));
    }

    #[test]
    fn phrases_match_whole_words_only() {
        assert!(text_contains_phrase(
            "Lithium Carbonate 300 MG",
            &words("lithium carbonate")
        ));
        assert!(!text_contains_phrase("Lithiumx", &words("lithium")));
        assert!(!text_contains_phrase("nortriptyline", &words("triptyline")));
    }
}
