//! The stage's configuration: strict parsing of the key/value pairs the host passes in.

use std::ops::RangeInclusive;

use vidpipe_render::Codec;
use vidpipe_stage_kit::StageError;
use vidpipe_stage_kit::config::Pairs;

/// The configuration keys the stage understands, sorted.
pub const KNOWN_KEYS: [&str; 3] = ["codec", "fps", "qp"];

/// The frame rate when `fps` is not given.
pub const DEFAULT_FPS: u32 = 12;
/// The frame rates `fps` accepts.
pub const FPS_RANGE: RangeInclusive<u32> = 1..=60;

/// The parsed configuration of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The codec of every clip.
    pub codec: Codec,
    /// Frames per second of every clip.
    pub fps: u32,
    /// The constant quantiser every clip is coded at, on the codec's scale.
    pub qp: u8,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            codec: Codec::H264,
            fps: DEFAULT_FPS,
            qp: Codec::H264.default_quantizer(),
        }
    }
}

impl Config {
    /// Parses the stage's configuration. Unknown or repeated keys and malformed or out-of-range
    /// values are `invalid-input` errors, so a typo never silently falls back to a default.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, StageError> {
        let pairs = Pairs::parse(pairs, &KNOWN_KEYS)?;
        let codec = match pairs.get("codec").map(str::trim) {
            None => Codec::H264,
            Some(name) => Codec::from_name(name).ok_or_else(|| {
                StageError::invalid_input(format!(
                    "config key `codec` is `{name}`; expected `h264` (plays everywhere) or `av1` \
                     (royalty-free, smaller, much slower to encode)"
                ))
            })?,
        };
        let range = codec.quantizers();
        let qp = pairs.u32_in(
            "qp",
            u32::from(*range.start())..=u32::from(*range.end()),
            codec.default_quantizer().into(),
            &format!("{codec} quantiser steps"),
        )?;
        Ok(Self {
            codec,
            fps: pairs.u32_in("fps", FPS_RANGE, DEFAULT_FPS, "frames per second")?,
            qp: u8::try_from(qp).unwrap_or(codec.default_quantizer()),
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
    fn an_empty_config_gives_h264_at_12_fps_and_qp_28() {
        assert_eq!(config(&[]), Ok(Config::default()));
        assert_eq!(
            Config::default(),
            Config {
                codec: Codec::H264,
                fps: 12,
                qp: 28
            }
        );
    }

    #[test]
    fn fps_is_read_from_1_to_60() {
        let at = |fps| Config {
            fps,
            ..Config::default()
        };
        assert_eq!(config(&[("fps", "1")]), Ok(at(1)));
        assert_eq!(config(&[("fps", " 60 ")]), Ok(at(60)));
        for bad in ["0", "61", "12.5", "-1", "", "twelve"] {
            let error = config(&[("fps", bad)]).expect_err("refused");
            assert_eq!(error.code, ErrorCode::InvalidInput);
            assert!(error.message.contains("from 1 to 60"), "{}", error.message);
        }
    }

    #[test]
    fn qp_is_read_on_the_codecs_scale_and_a_bad_one_is_named() {
        let h264 = |qp| Config {
            qp,
            ..Config::default()
        };
        assert_eq!(config(&[("qp", "0")]), Ok(h264(0)));
        assert_eq!(config(&[("qp", "51")]), Ok(h264(51)));
        for bad in ["52", "-1", "28.5", "", "best", "256"] {
            let error = config(&[("qp", bad)]).expect_err("refused");
            assert_eq!(error.code, ErrorCode::InvalidInput);
            assert!(error.message.contains("`qp`"), "{}", error.message);
            assert!(
                error.message.contains("H.264 quantiser steps from 0 to 51"),
                "{}",
                error.message
            );
        }
        let av1 = |qp| Config {
            codec: Codec::Av1,
            fps: 12,
            qp,
        };
        assert_eq!(config(&[("codec", "av1")]), Ok(av1(100)));
        assert_eq!(config(&[("codec", "av1"), ("qp", "255")]), Ok(av1(255)));
        let error = config(&[("codec", "av1"), ("qp", "256")]).expect_err("refused");
        assert!(
            error.message.contains("AV1 quantiser steps from 0 to 255"),
            "{}",
            error.message
        );
    }

    #[test]
    fn codec_is_h264_or_av1_and_anything_else_is_named() {
        assert_eq!(
            config(&[("codec", " h264 ")]).map(|c| c.codec),
            Ok(Codec::H264)
        );
        for bad in ["H264", "h265", "vp9", "", "av1 h264"] {
            let error = config(&[("codec", bad)]).expect_err("refused");
            assert_eq!(error.code, ErrorCode::InvalidInput);
            assert!(
                error.message.starts_with("config key `codec` is "),
                "{}",
                error.message
            );
            assert!(error.message.contains("`h264`"), "{}", error.message);
        }
    }

    #[test]
    fn unknown_and_repeated_keys_are_refused() {
        let error = config(&[("width", "640")]).expect_err("refused");
        assert_eq!(
            error.message,
            "unknown config key `width`; known keys: codec, fps, qp"
        );
        let error = config(&[("fps", "12"), ("fps", "24")]).expect_err("refused");
        assert!(error.message.contains("more than once"));
    }
}
