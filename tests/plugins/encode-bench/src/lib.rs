//! `encode-bench`: the plugin `vidpipe-bench` times the video encoders in. It reads the demo's
//! keyframes, renders every in-between frame as the clips stage does and encodes them, as H.264
//! or AV1, into one MP4; only the encoder is on the clock (rendering a frame is not). The bench
//! runs [`encode_timed`] natively too, the very same code, so the ratio is the sandbox's price
//! for the encoder alone.
//!
//! Configuration: `codec` (`h264` or `av1`), `qp`, `fps`, `scenes` (a count), and for each
//! scene `i`: `frames-i`, `title-i`, `description-i`, and `start-i` / `end-i`, the names of its
//! keyframe artifacts. It returns `encode-ns=N frames=F bytes=B`.

use std::time::{Duration, Instant};

use vidpipe_render::{Codec, Image, Motion, Mp4Encoder, RenderError, frame};

// The export glue wit-bindgen generates is FFI and has to be unsafe; it is confined here.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "stage",
    });

    use super::EncodeBench;
    export!(EncodeBench with_types_in crate::bindings);
}

use bindings::vidpipe::plugin::{artifacts, types};
use types::{ArtifactKind, Error, ErrorCode};

/// One scene to encode: its keyframes, its frame count and its motion.
pub struct Scene {
    /// The start keyframe.
    pub start: Image,
    /// The end keyframe.
    pub end: Image,
    /// How many frames to render.
    pub frames: u32,
    /// The camera's motion.
    pub motion: Motion,
}

/// What [`encode_timed`] measured.
#[derive(Debug, Clone, Copy)]
pub struct Timed {
    /// Time spent in the encoder (pushing frames and finishing the MP4).
    pub encoding: Duration,
    /// Frames encoded.
    pub frames: u32,
    /// Bytes of the MP4.
    pub bytes: usize,
}

/// Renders every scene's frames (off the clock) and encodes them all into one MP4 in `codec`
/// (on the clock).
pub fn encode_timed(
    scenes: &[Scene],
    codec: Codec,
    fps: u32,
    qp: u8,
) -> Result<Timed, RenderError> {
    let (width, height) = scenes
        .first()
        .map_or((0, 0), |s| (s.start.width(), s.start.height()));
    let mut encoder = Mp4Encoder::with_codec(codec, width, height, fps, qp)?;
    let mut encoding = Duration::ZERO;
    for scene in scenes {
        for i in 0..scene.frames {
            let t = if scene.frames > 1 {
                i as f32 / (scene.frames - 1) as f32
            } else {
                0.0
            };
            let image = frame(&scene.start, &scene.end, t, &scene.motion)?;
            let started = Instant::now();
            encoder.push(&image)?;
            encoding += started.elapsed();
        }
    }
    let frames = encoder.frames();
    let started = Instant::now();
    let mp4 = encoder.finish()?;
    encoding += started.elapsed();
    Ok(Timed {
        encoding,
        frames,
        bytes: mp4.len(),
    })
}

struct EncodeBench;

fn invalid(message: String) -> Error {
    Error {
        code: ErrorCode::InvalidInput,
        message,
    }
}

fn value<'a>(config: &'a [(String, String)], key: &str) -> Result<&'a str, Error> {
    config
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| invalid(format!("config key `{key}` is missing")))
}

fn number(config: &[(String, String)], key: &str) -> Result<u32, Error> {
    let text = value(config, key)?;
    text.parse()
        .map_err(|_| invalid(format!("config key `{key}` must be a number, not {text:?}")))
}

fn keyframe(name: &str) -> Result<Image, Error> {
    let mut bytes = Vec::new();
    loop {
        let chunk = artifacts::read(ArtifactKind::Keyframe, name, bytes.len() as u64, 1 << 20)?;
        if chunk.is_empty() {
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    vidpipe_render::decode_png(&bytes).map_err(|e| invalid(format!("{name}: {e}")))
}

impl bindings::Guest for EncodeBench {
    fn run(config: Vec<(String, String)>) -> Result<String, Error> {
        let codec_name = value(&config, "codec")?;
        let codec = Codec::from_name(codec_name)
            .ok_or_else(|| invalid(format!("unknown codec {codec_name:?}")))?;
        let qp = u8::try_from(number(&config, "qp")?).map_err(|_| invalid("qp".into()))?;
        let fps = number(&config, "fps")?;
        let mut scenes = Vec::new();
        for i in 0..number(&config, "scenes")? {
            let text = |key: &str| value(&config, &format!("{key}-{i}"));
            scenes.push(Scene {
                start: keyframe(text("start")?)?,
                end: keyframe(text("end")?)?,
                frames: number(&config, &format!("frames-{i}"))?,
                motion: Motion::for_scene(text("title")?, text("description")?),
            });
        }
        let timed = encode_timed(&scenes, codec, fps, qp).map_err(|e| Error {
            code: ErrorCode::Io,
            message: e.to_string(),
        })?;
        Ok(format!(
            "encode-ns={} frames={} bytes={}",
            timed.encoding.as_nanos(),
            timed.frames,
            timed.bytes
        ))
    }
}
