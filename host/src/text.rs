//! Text that came from a guest (or from a database a guest wrote to) on its way to a person.
//!
//! A terminal obeys some characters instead of showing them: C0 and C1 controls start escape
//! sequences (set the window title, clear the screen, move the cursor) and newlines start
//! lines a guest could forge; Unicode's bidirectional controls reorder what follows them
//! (`invoice\u{202E}gpj.exe` displays as `invoiceexe.jpg`); line and paragraph separators
//! break lines; other format characters are invisible. [`printable`] shows each of them as
//! an escape (`\u{1b}`), so a line stays one line and reads as what it holds.
//!
//! Two rules follow from it, each applied in one place:
//! - fields that are one line by nature (scene titles, artifact names, project names) refuse
//!   such characters when written ([`check_plain`]), so they never hold them;
//! - everything else (descriptions, prompts, summaries, errors, log lines, settings) is stored
//!   as given and escaped when shown: the CLI writes every human line through [`printable`].
//!   JSON output stays exact: its string escaping (with these characters as `\uXXXX`) is
//!   enough there.

/// Whether a terminal would obey `c` rather than show it: a control character (C0, DEL, C1,
/// tab and newline included), a bidirectional embedding, override, isolate or mark, a line or
/// paragraph separator, or another invisible format character (Unicode category Cf).
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}' || is_format(c)
}

/// Unicode general category Cf (format characters), as of Unicode 16: invisible characters
/// that change how text around them is shown. The bidi controls (U+061C, U+200E–U+200F,
/// U+202A–U+202E, U+2066–U+2069) are among them.
fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// `text` with every character [`is_unsafe`] shown as its escape (`\u{1b}`), so the result is
/// one line that shows exactly what it holds; cut (with `…`) so that it has at most
/// `max_chars` characters besides the `…`, escapes counted as what they print.
pub fn printable(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_mul(4)));
    let mut shown = 0usize;
    for c in text.chars() {
        let escape = is_unsafe(c).then(|| c.escape_unicode());
        let width = escape.as_ref().map_or(1, |e| e.len());
        if shown + width > max_chars {
            out.push('…');
            break;
        }
        shown += width;
        match escape {
            Some(escape) => out.extend(escape),
            None => out.push(c),
        }
    }
    out
}

/// `text` cut to at most `max_chars` characters, with `…` when cut; nothing escaped. For text
/// that is stored (a run's summary or error) and escaped when shown.
pub fn cut(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Refuses text meant to be one plain line (a title, a name) if it holds a character a terminal
/// would obey; the error names the first such character and where it is.
pub fn check_plain(what: &str, text: &str) -> Result<(), String> {
    match text.chars().enumerate().find(|&(_, c)| is_unsafe(c)) {
        None => Ok(()),
        Some((at, c)) => Err(format!(
            "{what} must not contain control or invisible format characters, but character {at} is {}",
            c.escape_unicode()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_newlines_are_shown_not_obeyed() {
        assert_eq!(
            printable("red\u{1b}[31m\nline\tx", 100),
            "red\\u{1b}[31m\\u{a}line\\u{9}x"
        );
        assert_eq!(printable("osc\u{1b}]0;t\u{7}", 100), "osc\\u{1b}]0;t\\u{7}");
        assert_eq!(printable("c1\u{9b}2J", 100), "c1\\u{9b}2J");
    }

    #[test]
    fn bidi_controls_separators_and_invisible_characters_are_shown_as_escapes() {
        assert_eq!(
            printable("invoice\u{202e}gpj.exe", 100),
            "invoice\\u{202e}gpj.exe"
        );
        for c in [
            '\u{202a}',
            '\u{202b}',
            '\u{202c}',
            '\u{202d}',
            '\u{202e}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{200e}',
            '\u{200f}',
            '\u{061c}',
            '\u{2028}',
            '\u{2029}',
            '\u{200b}',
            '\u{feff}',
            '\u{00ad}',
            '\u{e0041}',
        ] {
            assert!(is_unsafe(c), "{}", c.escape_unicode());
            assert!(!printable(&format!("a{c}b"), 10).contains(c));
        }
    }

    #[test]
    fn ordinary_text_of_any_script_is_shown_as_it_is() {
        for text in [
            "héllo wörld",
            "日本語のタイトル",
            "עברית",
            "العربية",
            "emoji 🎬",
            "a\\u{1b}",
        ] {
            assert_eq!(printable(text, 100), text);
            assert!(check_plain("a title", text).is_ok(), "{text}");
        }
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_with_an_ellipsis() {
        assert_eq!(printable("héllo wörld", 5), "héllo…");
        assert_eq!(printable("short", 5), "short");
        assert_eq!(
            printable("ab\u{1b}cd", 6),
            "ab…",
            "an escape counts as what it prints"
        );
        assert_eq!(printable("ab\u{1b}cd", 8), "ab\\u{1b}…");
        assert_eq!(cut("héllo wörld", 5), "héllo…");
        assert_eq!(cut("a\u{1b}b", 5), "a\u{1b}b", "cut escapes nothing");
    }

    #[test]
    fn plain_text_refuses_the_first_character_a_terminal_would_obey() {
        let err = check_plain("a scene title", "ok\u{202e}no").expect_err("refused");
        assert!(err.contains("character 2 is \\u{202e}"), "{err}");
        assert!(check_plain("a scene title", "a\nb").is_err());
    }
}
