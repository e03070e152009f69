//! The stage's configuration: strict parsing of the key/value pairs the host passes in.

use std::ops::RangeInclusive;

use crate::error::StageError;

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
        let mut fps = None;
        for (key, value) in pairs {
            let slot = match key.as_str() {
                "fps" => &mut fps,
                _ => {
                    return Err(StageError::invalid_input(format!(
                        "unknown config key `{key}`; known keys: {}",
                        KNOWN_KEYS.join(", ")
                    )));
                }
            };
            if slot.replace(value.as_str()).is_some() {
                return Err(StageError::invalid_input(format!(
                    "config key `{key}` is given more than once"
                )));
            }
        }
        let fps = match fps {
            None => DEFAULT_FPS,
            Some(value) => value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|fps| FPS_RANGE.contains(fps))
                .ok_or_else(|| {
                    StageError::invalid_input(format!(
                        "config key `fps` is `{value}`; expected a whole number of frames per \
                         second from {} to {}",
                        FPS_RANGE.start(),
                        FPS_RANGE.end()
                    ))
                })?,
        };
        Ok(Self { fps })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, StageError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::parse(&pairs)
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
