//! The stage's configuration: strict parsing of the key/value pairs the host passes in.

use std::ops::RangeInclusive;

use vidpipe_stage_kit::StageError;
use vidpipe_stage_kit::config::Pairs;

/// The configuration keys the stage understands, sorted.
pub const KNOWN_KEYS: [&str; 2] = ["height", "width"];

/// The keyframe width when `width` is not given, in pixels.
pub const DEFAULT_WIDTH: u32 = 640;
/// The keyframe height when `height` is not given, in pixels.
pub const DEFAULT_HEIGHT: u32 = 360;
/// The widths `width` accepts.
pub const WIDTHS: RangeInclusive<u32> = 64..=1920;
/// The heights `height` accepts.
pub const HEIGHTS: RangeInclusive<u32> = 64..=1080;

/// The parsed configuration of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Keyframe width in pixels.
    pub width: u32,
    /// Keyframe height in pixels.
    pub height: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            width: DEFAULT_WIDTH,
            height: DEFAULT_HEIGHT,
        }
    }
}

impl Config {
    /// Parses the stage's configuration. Unknown or repeated keys and malformed or out-of-range
    /// values are `invalid-input` errors, so a typo never silently falls back to a default.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, StageError> {
        let pairs = Pairs::parse(pairs, &KNOWN_KEYS)?;
        Ok(Self {
            width: pairs.u32_in("width", WIDTHS, DEFAULT_WIDTH, "pixels")?,
            height: pairs.u32_in("height", HEIGHTS, DEFAULT_HEIGHT, "pixels")?,
        })
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
        let error = config(pairs).expect_err("the config is refused");
        assert_eq!(error.code, ErrorCode::InvalidInput);
        error.message
    }

    #[test]
    fn an_empty_config_gives_640_by_360() {
        assert_eq!(
            config(&[]),
            Ok(Config {
                width: 640,
                height: 360
            })
        );
    }

    #[test]
    fn width_and_height_are_read_within_their_ranges() {
        assert_eq!(
            config(&[("width", "1920"), ("height", " 64 ")]),
            Ok(Config {
                width: 1920,
                height: 64
            })
        );
        assert_eq!(config(&[("height", "1080")]).map(|c| c.height), Ok(1080));
    }

    #[test]
    fn out_of_range_or_malformed_sizes_name_the_key_and_the_range() {
        for (key, value) in [
            ("width", "63"),
            ("width", "1921"),
            ("height", "1081"),
            ("height", "-5"),
            ("width", "640px"),
            ("height", ""),
        ] {
            let message = message_of(&[(key, value)]);
            assert!(message.contains(&format!("`{key}`")), "{message}");
            assert!(message.contains("from 64 to"), "{message}");
        }
    }

    #[test]
    fn unknown_keys_are_refused_with_the_known_keys() {
        let message = message_of(&[("fps", "12")]);
        assert_eq!(
            message,
            "unknown config key `fps`; known keys: height, width"
        );
    }

    #[test]
    fn a_repeated_key_is_refused() {
        assert!(message_of(&[("width", "100"), ("width", "200")]).contains("more than once"));
    }
}
