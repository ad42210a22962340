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

/// [`lower`] into a buffer kept from one text to the next, to spare an allocation per text.
pub fn lower_into(text: &str, out: &mut String) {
    out.clear();
    if text.is_ascii() {
        out.push_str(text);
        out.make_ascii_lowercase();
    } else {
        out.push_str(&lower(text));
    }
}

/// `text` in ASCII lower case, written into `buf` rather than a new `String`, for matching short keys
/// (units, codes) on every record; `None` when it does not fit, which callers read as no match.
pub fn ascii_lower<'b>(text: &str, buf: &'b mut [u8]) -> Option<&'b str> {
    let lowered = buf.get_mut(..text.len())?;
    lowered.copy_from_slice(text.as_bytes());
    lowered.make_ascii_lowercase();
    std::str::from_utf8(lowered).ok()
}

/// Splits an already lower-cased text (see [`lower`]) into words, numbers and slashes.
pub fn tokenize(text: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::with_capacity(16);
    let bytes = text.as_bytes();
    let digit_at = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_digit);
    let number_at = |i: usize| digit_at(i) || (bytes[i] == b'.' && digit_at(i + 1));
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        if number_at(i) {
            while i < bytes.len() && number_at(i) {
                i += 1;
            }
            tokens.push(Token::Number(&text[start..i]));
        } else if bytes[i] == b'/' {
            tokens.push(Token::Slash);
            i += 1;
        } else if let Some(len) = letter_len(text, i) {
            i += len;
            while let Some(len) = letter_len(text, i) {
                i += len;
            }
            tokens.push(Token::Word(&text[start..i]));
        } else {
            i += text[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    tokens
}

/// The length in bytes of the letter at `at`; `None` for anything else or at the end. ASCII, nearly
/// all product text, is told apart without decoding.
fn letter_len(text: &str, at: usize) -> Option<usize> {
    match *text.as_bytes().get(at)? {
        b if b.is_ascii() => b.is_ascii_alphabetic().then_some(1),
        _ => text[at..]
            .chars()
            .next()
            .filter(|c| c.is_alphabetic())
            .map(char::len_utf8),
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
