//! Guest text on its way to a terminal or a run record: cut to a length, with control
//! characters made visible, so a plugin can neither flood the host's output nor steer the
//! user's terminal with escape sequences.

/// `text` cut to at most `max_chars` characters (with `…` when cut), every control character
/// except tab shown as its escape (`\u{1b}`), so the result is one printable line.
pub fn printable(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    for (n, c) in text.chars().enumerate() {
        if n == max_chars {
            out.push('…');
            break;
        }
        if c.is_control() && c != '\t' {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_newlines_are_shown_not_obeyed() {
        assert_eq!(
            printable("red\u{1b}[31m\nline", 100),
            "red\\u{1b}[31m\\u{a}line"
        );
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_with_an_ellipsis() {
        assert_eq!(printable("héllo wörld", 5), "héllo…");
        assert_eq!(printable("short", 5), "short");
    }
}
