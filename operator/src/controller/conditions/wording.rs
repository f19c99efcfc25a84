//! How condition messages list names and quote text: bounded lists,
//! plurals, shortened quotes.

use multus_config::text::prefix_on_char_boundary;

/// How many names a message lists before "and N more".
pub const NAMES_SHOWN: usize = 5;

/// `a, b, c and 2 more`.
pub fn name_list<S: AsRef<str>>(names: &[S], shown: usize) -> String {
    let mut out = names
        .iter()
        .take(shown)
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > shown {
        out.push_str(&format!(" and {} more", names.len() - shown));
    }
    out
}

/// `1 node`, `2 nodes`.
pub(super) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `text` trimmed, cut to `max` bytes (on a char boundary) and marked with
/// "…" when it was longer.
pub(super) fn shorten(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.len() <= max {
        return text.to_owned();
    }
    format!("{}…", prefix_on_char_boundary(text, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_lists_are_bounded() {
        let names: Vec<String> = (1..=8).map(|i| format!("n{i}")).collect();
        assert_eq!(name_list(&names, 5), "n1, n2, n3, n4, n5 and 3 more");
        assert_eq!(name_list(&names[..2], 5), "n1, n2");
        assert_eq!(shorten("abcdef", 3), "abc…");
    }
}
