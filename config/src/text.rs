//! Small text helpers shared by every crate's error and event messages:
//! cutting text to a byte budget without splitting a character, and naming
//! a JSON value's type.

use serde_json::Value;

/// The longest prefix of `s` that is at most `max` bytes long and ends on a
/// character boundary (UTF-8 text is never cut inside a character).
pub fn prefix_on_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `s` itself when it fits in `max` bytes, else its longest prefix that
/// fits together with `marker` (e.g. `"..."`), followed by `marker`. The
/// result is never longer than `max` bytes unless `marker` alone is.
pub fn truncate_with_marker(s: &str, max: usize, marker: &str) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let kept = prefix_on_char_boundary(s, max.saturating_sub(marker.len()));
    format!("{kept}{marker}")
}

/// The JSON type of a value, with an article, for error messages
/// ("a string", "an object", "null").
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_prefix_never_splits_a_character() {
        assert_eq!(prefix_on_char_boundary("abc", 5), "abc");
        assert_eq!(prefix_on_char_boundary("abc", 2), "ab");
        // "é" is two bytes: a budget of 2 keeps only "a".
        assert_eq!(prefix_on_char_boundary("aéb", 2), "a");
        assert_eq!(prefix_on_char_boundary("aéb", 3), "aé");
        assert_eq!(prefix_on_char_boundary("é", 1), "");
        assert_eq!(prefix_on_char_boundary("", 0), "");
    }

    #[test]
    fn truncation_keeps_the_marker_within_the_budget() {
        assert_eq!(truncate_with_marker("short", 10, "..."), "short");
        assert_eq!(truncate_with_marker("abcdefghij", 10, "..."), "abcdefghij");
        assert_eq!(truncate_with_marker("abcdefghijk", 10, "..."), "abcdefg...");
        let cut = truncate_with_marker(&"ü".repeat(20), 10, "...");
        assert_eq!(cut, "üüü...");
        assert!(cut.len() <= 10);
    }

    #[test]
    fn names_every_json_type() {
        assert_eq!(json_type(&json!(null)), "null");
        assert_eq!(json_type(&json!(true)), "a boolean");
        assert_eq!(json_type(&json!(1.5)), "a number");
        assert_eq!(json_type(&json!("x")), "a string");
        assert_eq!(json_type(&json!([])), "an array");
        assert_eq!(json_type(&json!({})), "an object");
    }
}
