//! The stage's configuration: strict parsing of the key/value pairs the host passes in.

use vidpipe_stage_kit::StageError;
use vidpipe_stage_kit::config::Pairs;

/// The configuration keys the stage understands, sorted.
pub const KNOWN_KEYS: [&str; 4] = ["format", "max-scenes", "output", "seconds-per-scene"];

/// How long a scene lasts when `seconds-per-scene` is not given, in milliseconds.
pub const DEFAULT_SCENE_DURATION_MS: u32 = 4_000;
/// The longest allowed scene, in milliseconds (`seconds-per-scene` = 600).
pub const MAX_SCENE_DURATION_MS: u32 = 600_000;
/// How many scenes a script may yield when `max-scenes` is not given.
pub const DEFAULT_MAX_SCENES: u32 = 200;
/// The highest value `max-scenes` accepts.
pub const MAX_SCENES_LIMIT: u32 = 1_000;

/// The format of the published storyboard document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A Markdown document (the default).
    Markdown,
    /// A JSON document.
    Json,
}

impl Format {
    /// The artifact name used when `output` is not given.
    pub fn default_output(self) -> &'static str {
        match self {
            Self::Markdown => "storyboard.md",
            Self::Json => "storyboard.json",
        }
    }
}

/// The parsed configuration of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How long every scene lasts, in milliseconds (1 to 600 000).
    pub scene_duration_ms: u32,
    /// The most scenes the script may yield (1 to 1000).
    pub max_scenes: u32,
    /// The format of the storyboard document.
    pub format: Format,
    /// The name of the `output` artifact the document is published as.
    pub output: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            scene_duration_ms: DEFAULT_SCENE_DURATION_MS,
            max_scenes: DEFAULT_MAX_SCENES,
            format: Format::Markdown,
            output: Format::Markdown.default_output().to_owned(),
        }
    }
}

impl Config {
    /// Parses the stage's configuration. Unknown or repeated keys and malformed values are
    /// `invalid-input` errors, so a typo never silently falls back to a default.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, StageError> {
        let pairs = Pairs::parse(pairs, &KNOWN_KEYS)?;
        let format = pairs
            .get("format")
            .map_or(Ok(Format::Markdown), parse_format)?;
        let output = match pairs.get("output") {
            Some("") => {
                return Err(StageError::invalid_input(
                    "config key `output` must not be empty",
                ));
            }
            Some(name) => name.to_owned(),
            None => format.default_output().to_owned(),
        };
        Ok(Self {
            scene_duration_ms: pairs
                .get("seconds-per-scene")
                .map_or(Ok(DEFAULT_SCENE_DURATION_MS), parse_seconds_ms)?,
            max_scenes: pairs
                .get("max-scenes")
                .map_or(Ok(DEFAULT_MAX_SCENES), parse_max_scenes)?,
            format,
            output,
        })
    }
}

fn parse_format(value: &str) -> Result<Format, StageError> {
    match value.trim() {
        "markdown" => Ok(Format::Markdown),
        "json" => Ok(Format::Json),
        _ => Err(StageError::invalid_input(format!(
            "config key `format` is `{value}`; expected `markdown` or `json`"
        ))),
    }
}

/// Parses a plain decimal number of seconds into milliseconds with integer arithmetic, so the
/// result never depends on float rounding.
fn parse_seconds_ms(value: &str) -> Result<u32, StageError> {
    let malformed = || {
        StageError::invalid_input(format!(
            "config key `seconds-per-scene` is `{value}`; expected a decimal number of seconds \
             such as `4` or `2.5`, more than 0 and at most 600"
        ))
    };
    let text = value.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
        return Err(malformed());
    }
    if fraction.len() > 3 {
        return Err(StageError::invalid_input(format!(
            "config key `seconds-per-scene` is `{value}`; at most 3 decimal places are supported \
             (durations are whole milliseconds)"
        )));
    }
    // Leading zeros are harmless but must not make a small value look too long to parse.
    let whole = whole.trim_start_matches('0');
    if whole.len() > 3 {
        return Err(malformed());
    }
    let whole_ms = whole
        .bytes()
        .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'))
        * 1_000;
    let fraction_ms = fraction
        .bytes()
        .zip([100u32, 10, 1])
        .map(|(b, scale)| u32::from(b - b'0') * scale)
        .sum::<u32>();
    let ms = whole_ms + fraction_ms;
    if ms == 0 || ms > MAX_SCENE_DURATION_MS {
        return Err(malformed());
    }
    Ok(ms)
}

/// Parses `max-scenes`: plain digits only, so unlike [`Pairs::u32_in`] it refuses a sign (`+5`).
fn parse_max_scenes(value: &str) -> Result<u32, StageError> {
    let text = value.trim();
    let significant = text.trim_start_matches('0');
    let parsed = if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        None
    } else if significant.is_empty() {
        Some(0)
    } else if significant.len() > 4 {
        // Too long to be in range, and possibly too long for a u32.
        None
    } else {
        significant.parse::<u32>().ok()
    };
    match parsed {
        Some(n) if (1..=MAX_SCENES_LIMIT).contains(&n) => Ok(n),
        _ => Err(StageError::invalid_input(format!(
            "config key `max-scenes` is `{value}`; expected a whole number from 1 to {MAX_SCENES_LIMIT}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vidpipe_stage_kit::ErrorCode;
    use vidpipe_stage_kit::config::owned;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, StageError> {
        Config::parse(&owned(pairs))
    }

    fn message_of(pairs: &[(&str, &str)]) -> String {
        let error = config(pairs).expect_err("the config should be rejected");
        assert_eq!(error.code, ErrorCode::InvalidInput);
        error.message
    }

    #[test]
    fn an_empty_config_gives_the_defaults() {
        let parsed = config(&[]).expect("empty config is valid");
        assert_eq!(parsed, Config::default());
        assert_eq!(parsed.scene_duration_ms, 4_000);
        assert_eq!(parsed.max_scenes, 200);
        assert_eq!(parsed.output, "storyboard.md");
    }

    #[test]
    fn json_format_changes_the_default_output_name() {
        let parsed = config(&[("format", "json")]).expect("valid");
        assert_eq!(parsed.format, Format::Json);
        assert_eq!(parsed.output, "storyboard.json");
    }

    #[test]
    fn an_explicit_output_name_wins_over_the_format_default() {
        let parsed = config(&[("format", "json"), ("output", "board.txt")]).expect("valid");
        assert_eq!(parsed.output, "board.txt");
    }

    #[test]
    fn an_unknown_key_is_named_along_with_the_known_ones() {
        let message = message_of(&[("seconds", "3")]);
        assert!(message.contains("`seconds`"), "{message}");
        for key in KNOWN_KEYS {
            assert!(message.contains(key), "{message} lacks {key}");
        }
    }

    #[test]
    fn a_repeated_key_is_rejected() {
        let message = message_of(&[("format", "json"), ("format", "markdown")]);
        assert!(message.contains("more than once"), "{message}");
    }

    #[test]
    fn decimal_seconds_become_exact_milliseconds() {
        for (text, ms) in [
            ("4", 4_000),
            ("2.5", 2_500),
            ("0.001", 1),
            (".25", 250),
            ("7.", 7_000),
            ("600", 600_000),
            ("0600.000", 600_000),
            (" 1.5 ", 1_500),
        ] {
            let parsed = config(&[("seconds-per-scene", text)]).expect(text);
            assert_eq!(parsed.scene_duration_ms, ms, "{text}");
        }
    }

    #[test]
    fn seconds_out_of_range_or_malformed_are_rejected() {
        for text in [
            "0",
            "0.0",
            "600.001",
            "601",
            "-1",
            "+1",
            "1e2",
            "inf",
            "NaN",
            "",
            ".",
            "1.2.3",
            "abc",
            "99999999999",
        ] {
            let message = message_of(&[("seconds-per-scene", text)]);
            assert!(message.contains("seconds-per-scene"), "{text}: {message}");
        }
    }

    #[test]
    fn sub_millisecond_precision_is_rejected_rather_than_rounded() {
        let message = message_of(&[("seconds-per-scene", "1.0005")]);
        assert!(message.contains("3 decimal places"), "{message}");
    }

    #[test]
    fn max_scenes_accepts_one_to_a_thousand() {
        for (text, n) in [("1", 1), ("1000", 1_000), ("0042", 42)] {
            assert_eq!(config(&[("max-scenes", text)]).expect(text).max_scenes, n);
        }
        for text in ["0", "1001", "-3", "+5", "2.5", "", "100000000000"] {
            let message = message_of(&[("max-scenes", text)]);
            assert!(message.contains("max-scenes"), "{text}: {message}");
        }
    }

    #[test]
    fn an_unknown_format_is_rejected() {
        let message = message_of(&[("format", "html")]);
        assert!(message.contains("`html`"), "{message}");
    }

    #[test]
    fn an_empty_output_name_is_rejected() {
        let message = message_of(&[("output", "")]);
        assert!(message.contains("output"), "{message}");
    }
}
