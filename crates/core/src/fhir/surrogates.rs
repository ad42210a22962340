//! Lone UTF-16 surrogate escapes (`"\ud800"` with no low half after it, or a low half alone).
//!
//! They are valid JSON syntax but no Unicode text, so serde refuses the whole string, and with it
//! the resource that holds it, even when the string is a display text the engine never reads.
//! Each one is rewritten in place as `\ufffd` (the replacement character, an escape of the same
//! length, so line and column numbers stay true), and the elements that held one are named.

/// A JSON text with its lone surrogate escapes replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repaired {
    pub text: String,
    /// The element of each replaced escape, as a path from the root (`entry[3].resource.subject.display`).
    pub places: Vec<String>,
}

/// The text with every lone surrogate escape replaced; `None` when it holds none.
pub fn repair(json: &str) -> Option<Repaired> {
    let lone = lone_surrogate_escapes(json.as_bytes());
    if lone.is_empty() {
        return None;
    }
    let mut bytes = json.as_bytes().to_vec();
    for &at in &lone {
        bytes[at + 2..at + 6].copy_from_slice(b"fffd");
    }
    // Four ASCII hex digits replaced by four others: still UTF-8.
    let text = String::from_utf8(bytes).ok()?;
    let places = places_of(json.as_bytes(), &lone);
    Some(Repaired { text, places })
}

/// The offsets of the backslashes of lone surrogate escapes.
fn lone_surrogate_escapes(b: &[u8]) -> Vec<usize> {
    let mut lone = Vec::new();
    let mut i = 0;
    // `i` may step past the end after a backslash that ends the text.
    while let Some(found) = b
        .get(i..)
        .and_then(|rest| rest.iter().position(|&c| c == b'\\'))
    {
        i += found;
        if b.get(i + 1) != Some(&b'u') {
            i += 2;
            continue;
        }
        match hex4(b, i + 2) {
            Some(0xD800..=0xDBFF) => {
                let paired = b.get(i + 6) == Some(&b'\\')
                    && b.get(i + 7) == Some(&b'u')
                    && hex4(b, i + 8).is_some_and(|low| (0xDC00..=0xDFFF).contains(&low));
                if paired {
                    i += 12;
                } else {
                    lone.push(i);
                    i += 6;
                }
            }
            Some(0xDC00..=0xDFFF) => {
                lone.push(i);
                i += 6;
            }
            _ => i += 2,
        }
    }
    lone
}

fn hex4(b: &[u8], at: usize) -> Option<u32> {
    let digits = b.get(at..at + 4)?;
    digits.iter().try_fold(0u32, |value, &d| {
        let digit = (d as char).to_digit(16)?;
        Some(value * 16 + digit)
    })
}

enum Frame {
    Object { key: String, expecting_key: bool },
    Array { index: usize },
}

/// The element paths of the strings holding the given offsets (in order), found by one walk of
/// the JSON's structure. Keys are shown only as far as they are plain names.
fn places_of(b: &[u8], offsets: &[usize]) -> Vec<String> {
    let mut places = Vec::new();
    let mut next = offsets.iter().copied().peekable();
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < b.len() && next.peek().is_some() {
        match b[i] {
            b'{' => stack.push(Frame::Object {
                key: String::new(),
                expecting_key: true,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array { index }) => *index += 1,
                Some(Frame::Object { expecting_key, .. }) => *expecting_key = true,
                None => {}
            },
            b':' => {
                if let Some(Frame::Object { expecting_key, .. }) = stack.last_mut() {
                    *expecting_key = false;
                }
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                let is_key = matches!(
                    stack.last(),
                    Some(Frame::Object {
                        expecting_key: true,
                        ..
                    })
                );
                let mut here = false;
                while let Some(at) = next.next_if(|&at| at < i) {
                    here |= at > start;
                }
                if here {
                    places.push(if is_key {
                        // A key of the object on top: the path is the object's own.
                        let object = path(&stack[..stack.len() - 1]);
                        if object.is_empty() {
                            "(a key)".to_owned()
                        } else {
                            format!("{object}.(a key)")
                        }
                    } else {
                        path(&stack)
                    });
                }
                if is_key && let Some(Frame::Object { key, .. }) = stack.last_mut() {
                    *key = plain_name(&b[start + 1..i.min(b.len())]);
                }
            }
            _ => {}
        }
        i += 1;
    }
    places
}

fn path(stack: &[Frame]) -> String {
    let mut out = String::new();
    for frame in stack {
        match frame {
            Frame::Object { key, .. } if !key.is_empty() => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Frame::Object { .. } => {}
            Frame::Array { index } => out.push_str(&format!("[{index}]")),
        }
        if out.len() > 200 {
            out.truncate(200);
            out.push_str("...");
            break;
        }
    }
    out
}

/// A key as shown in a path: letters, digits and `_` only (an element name), else `?`.
fn plain_name(raw: &[u8]) -> String {
    if !raw.is_empty()
        && raw.len() <= 64
        && raw.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
    {
        String::from_utf8_lossy(raw).into_owned()
    } else {
        "?".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_that_ends_in_a_backslash_is_no_panic() {
        // Found by fuzzing (fuzz/regressions/bundle/): the scan stepped past the end.
        assert_eq!(repair("{\"a\": 1}\n\\"), None);
        assert_eq!(repair("\\"), None);
        assert_eq!(repair("\\u12"), None);
    }

    #[test]
    fn a_lone_surrogate_becomes_the_replacement_character_and_its_element_is_named() {
        let json = r#"{"resourceType":"Bundle","entry":[{"resource":{"id":"a"}},{"resource":{"subject":{"reference":"Patient/p","display":"Ann \ud800 B"}}}]}"#;
        let repaired = repair(json).unwrap();
        assert_eq!(repaired.text, json.replace(r"\ud800", r"\ufffd"));
        assert_eq!(repaired.text.len(), json.len());
        assert_eq!(repaired.places, vec!["entry[1].resource.subject.display"]);
        let value: serde_json::Value = serde_json::from_str(&repaired.text).unwrap();
        assert_eq!(
            value["entry"][1]["resource"]["subject"]["display"],
            "Ann \u{fffd} B"
        );
    }

    #[test]
    fn pairs_escaped_backslashes_and_other_escapes_are_left_alone() {
        for fine in [
            r#"{"a":"\ud83d\ude00"}"#,
            r#"{"a":"\\ud800"}"#,
            r#"{"a":"\"\u0041\n"}"#,
            r#"{"a":"plain"}"#,
        ] {
            assert_eq!(repair(fine), None, "{fine}");
        }
    }

    #[test]
    fn low_halves_alone_and_high_halves_at_the_end_are_repaired() {
        let repaired = repair(r#"{"a":["x\udc00",{"b":"\ud800"}],"c\udfff":1}"#).unwrap();
        assert_eq!(repaired.places, vec!["a[0]", "a[1].b", "(a key)"]);
        assert!(serde_json::from_str::<serde_json::Value>(&repaired.text).is_ok());
    }
}
