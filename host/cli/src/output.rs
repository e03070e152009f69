//! Everything `vidpipe` prints goes through here.
//!
//! Human output is written line by line, and every line passes through
//! [`vidpipe_host::text::printable`] on its way out: whatever a guest put into a title, a
//! summary, an error or a name, it is shown, not obeyed (no escape sequence, no forged line, no
//! reordering bidi control reaches the terminal). `--json` output is exact: JSON's own escaping,
//! with the characters a terminal would obey written as `\uXXXX`, keeps it both faithful and
//! safe to print.

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context as _;
use vidpipe_host::text;

/// Longest human line printed, in characters; a longer one is cut with `…`.
const MAX_LINE_CHARS: usize = 8192;

/// Prints one line of human output on stdout, made safe (see the module docs).
macro_rules! say {
    ($($arg:tt)*) => { $crate::output::line(&format!($($arg)*)) };
}
pub(crate) use say;

/// Prints one line of status on stderr, made safe (see the module docs).
macro_rules! note {
    ($($arg:tt)*) => { $crate::output::note_line(&format!($($arg)*)) };
}
pub(crate) use note;

/// Writes `text` as one safe line on stdout.
pub fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (`vidpipe … | head`) is not the command's failure.
    let _ = writeln!(out, "{}", safe_line(text));
}

/// `text` made safe to print as one line (see the module docs).
pub fn safe_line(text: &str) -> String {
    text::printable(text, MAX_LINE_CHARS)
}

/// Writes `text` as one safe line on stderr, above any progress bar.
pub fn note_line(text: &str) {
    crate::progress::above_bars(&text::printable(text, MAX_LINE_CHARS));
}

/// Writes the error line of a failed command on stderr (already one safe line).
pub fn error_line(text: &str) {
    crate::progress::above_bars(&format!("vidpipe: error: {text}"));
}

/// Prints `value` as pretty JSON on stdout.
pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut bytes = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, Safe::default());
    value.serialize(&mut serializer).context("encoding JSON")?;
    bytes.push(b'\n');
    let _ = std::io::stdout().lock().write_all(&bytes);
    Ok(())
}

/// A time stored as milliseconds since the epoch, as RFC 3339 to the second.
pub fn time(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// How `tracing` writes an event's fields: like its default, with every value made safe
/// ([`text::printable`]), so that no log line, whatever a guest or a file name put into it,
/// steers the terminal. Guest text is escaped where the host receives it too; this is the one
/// place every log line passes.
pub struct SafeFields;

impl<'w> tracing_subscriber::fmt::FormatFields<'w> for SafeFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: tracing_subscriber::fmt::format::Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = SafeVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct SafeVisitor<'w> {
    writer: tracing_subscriber::fmt::format::Writer<'w>,
    first: bool,
    result: std::fmt::Result,
}

impl SafeVisitor<'_> {
    fn put(&mut self, field: &tracing::field::Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        let value = text::printable(value, MAX_LINE_CHARS);
        let space = if self.first { "" } else { " " };
        self.first = false;
        self.result = if field.name() == "message" {
            write!(self.writer, "{space}{value}")
        } else {
            write!(self.writer, "{space}{}={value}", field.name())
        };
    }
}

impl tracing::field::Visit for SafeVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.put(field, value);
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.put(field, &format!("{value:?}"));
    }
}

/// serde_json's pretty formatter, writing the characters a terminal would obey (the ones
/// [`text::is_unsafe`] names; serde_json already escapes those below U+0020) as `\uXXXX`.
#[derive(Default)]
struct Safe(serde_json::ser::PrettyFormatter<'static>);

impl serde_json::ser::Formatter for Safe {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (at, c) in fragment.char_indices() {
            if !text::is_unsafe(c) {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..at])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            start = at + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(value: &serde_json::Value) -> String {
        let mut bytes = Vec::new();
        let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, Safe::default());
        serde::Serialize::serialize(value, &mut serializer).expect("encodes");
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn json_output_is_exact_and_holds_nothing_a_terminal_would_obey() {
        let hostile = "t\u{1b}]0;x\u{7}\n\u{9b}\u{2028}a\u{202e}b\u{e0041}é日";
        let value = serde_json::json!({ "title": hostile, "list": [hostile] });
        let text = encode(&value);
        assert!(
            !text.chars().any(|c| c != '\n' && text::is_unsafe(c)),
            "{text:?}"
        );
        assert!(
            text.contains("\\u202e") && text.contains("\\udb40\\udc41"),
            "{text}"
        );
        assert!(text.contains("é日"), "ordinary text stays as it is: {text}");
        let back: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(back, value, "the values are exactly the originals");
    }
}
