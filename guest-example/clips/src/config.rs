//! The stage's configuration: strict parsing of the key/value pairs the host passes in.

use std::ops::RangeInclusive;

use vidpipe_stage_kit::StageError;
use vidpipe_stage_kit::config::Pairs;

/// The configuration keys the stage understands, sorted.
pub const KNOWN_KEYS: [&str; 1] = ["fps"];

/// The frame rate when `fps` is not given.
pub const DEFAULT_FPS: u32 = 12;
/// The frame rates `fps` accepts.
pub const FPS_RANGE: RangeInclusive<u32> = 1..=60;

/// The parsed configuration of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Frames per second of every clip.
    pub fps: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self { fps: DEFAULT_FPS }
    }
}

impl Config {
    /// Parses the stage's configuration. Unknown or repeated keys and malformed or out-of-range
    /// values are `invalid-input` errors, so a typo never silently falls back to a default.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, StageError> {
        let pairs = Pairs::parse(pairs, &KNOWN_KEYS)?;
        Ok(Self {
            fps: pairs.u32_in("fps", FPS_RANGE, DEFAULT_FPS, "frames per second")?,
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

    #[test]
    fn an_empty_config_gives_12_fps() {
        assert_eq!(config(&[]), Ok(Config { fps: 12 }));
    }

    #[test]
    fn fps_is_read_from_1_to_60() {
        assert_eq!(config(&[("fps", "1")]), Ok(Config { fps: 1 }));
        assert_eq!(config(&[("fps", " 60 ")]), Ok(Config { fps: 60 }));
        for bad in ["0", "61", "12.5", "-1", "", "twelve"] {
            let error = config(&[("fps", bad)]).expect_err("refused");
            assert_eq!(error.code, ErrorCode::InvalidInput);
            assert!(error.message.contains("from 1 to 60"), "{}", error.message);
        }
    }

    #[test]
    fn unknown_and_repeated_keys_are_refused() {
        let error = config(&[("width", "640")]).expect_err("refused");
        assert_eq!(error.message, "unknown config key `width`; known keys: fps");
        let error = config(&[("fps", "12"), ("fps", "24")]).expect_err("refused");
        assert!(error.message.contains("more than once"));
    }
}
