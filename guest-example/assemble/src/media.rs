//! The browser-playable outputs: the H.264 MP4 encoded from the clips' frames, its WebVTT
//! captions (a cue per scene, with its title), and its poster (the first keyframe).

use std::io::Read;

use serde_json::json;
use vidpipe_render::{Mp4Encoder, RenderError, decode_apng_frames};
use vidpipe_stage_kit::io::RangedReader;
use vidpipe_stage_kit::{ErrorCode, StageError};

use crate::stage::{Host, Keyframe, Published, READ_BYTES, Work, write_output};

/// The `output` artifact holding the MP4.
pub const MP4_NAME: &str = "final.mp4";
/// The `output` artifact holding the captions.
pub const CAPTIONS_NAME: &str = "final.vtt";
/// The `output` artifact holding the poster.
pub const POSTER_NAME: &str = "poster.png";
/// The largest clip the stage reads into memory to decode its frames.
pub const MAX_CLIP_BYTES: u64 = 256 * 1024 * 1024;

fn io(error: RenderError) -> StageError {
    StageError::new(ErrorCode::Io, error.to_string())
}

/// Reads an artifact whole, up to `max` bytes.
fn read_all<H: Host>(
    host: &mut H,
    kind: vidpipe_stage_kit::ArtifactKind,
    name: &str,
    max: u64,
) -> Result<Vec<u8>, StageError> {
    let mut bytes = Vec::new();
    let mut reader = RangedReader::new(READ_BYTES, |offset, length| {
        host.read(kind, name, offset, length)
    });
    let read = (&mut reader).take(max + 1).read_to_end(&mut bytes);
    if let Some(failure) = reader.take_failure() {
        return Err(failure);
    }
    read.map_err(|e| StageError::new(ErrorCode::Io, format!("reading {name}: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(StageError::new(
            ErrorCode::LimitExceeded,
            format!("{name} is larger than {max} bytes"),
        ));
    }
    Ok(bytes)
}

/// Encodes every clip's frames, in scene order, into [`MP4_NAME`] at `fps` and `qp`.
pub fn write_mp4<H: Host>(
    host: &mut H,
    work: &[Work],
    (width, height, fps): (u32, u32, u32),
    qp: u8,
) -> Result<Published, StageError> {
    let mut encoder = Mp4Encoder::new(width, height, fps, qp).map_err(io)?;
    for item in work {
        let clip = &item.clip;
        let bytes = read_all(host, clip.kind, &clip.name, MAX_CLIP_BYTES)?;
        let (_, (num, den)) =
            decode_apng_frames(&bytes, |frame| encoder.push(frame)).map_err(|e| {
                StageError::invalid_input(format!(
                    "the clip of scene {} cannot be encoded: {e}",
                    item.scene.index
                ))
            })?;
        if u32::from(num) * fps != u32::from(den) {
            return Err(StageError::invalid_input(format!(
                "the clip of scene {} shows a frame for {num}/{den} s, not 1/{fps} s like the first",
                item.scene.index
            )));
        }
    }
    let mp4 = encoder.finish().map_err(io)?;
    write_output(host, MP4_NAME, |out| {
        out.write_all(&mp4)
            .map_err(|e| RenderError::Encode(e.to_string()))
    })
}

/// A WebVTT time stamp.
fn timestamp(ms: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// The captions: a cue per scene with its title, from the start of its first frame in the
/// video to the end of its last.
pub fn captions(work: &[Work], fps: u32) -> String {
    let mut text = String::from("WEBVTT\n");
    let mut frames = 0u64;
    for item in work {
        let start = frames * 1000 / u64::from(fps);
        frames += u64::from(item.frames);
        let end = frames * 1000 / u64::from(fps);
        // A cue's text ends at a blank line and may not hold "-->": keep the title on one line.
        let title = item
            .scene
            .title
            .replace(['\r', '\n'], " ")
            .replace("-->", "->");
        text.push_str(&format!(
            "\nscene-{}\n{} --> {}\n{}\n",
            item.scene.index,
            timestamp(start),
            timestamp(end),
            title.trim()
        ));
    }
    text
}

/// Copies the first scene's start keyframe to [`POSTER_NAME`].
pub fn write_poster<H: Host>(host: &mut H, first: &Keyframe) -> Result<Published, StageError> {
    let bytes = read_all(
        host,
        first.kind,
        &first.name,
        crate::stage::MAX_KEYFRAME_BYTES,
    )?;
    write_output(host, POSTER_NAME, |out| {
        out.write_all(&bytes)
            .map_err(|e| RenderError::Encode(e.to_string()))
    })
}

/// Adds the MP4, its captions and its poster to the manifest.
pub fn describe(
    manifest: &mut serde_json::Value,
    (mp4, vtt, poster): (&Published, &Published, Option<&Published>),
    (width, height, total_frames, duration_ms): (u32, u32, u32, u64),
    (fps, qp, cues): (u32, u8, usize),
) {
    manifest["mp4"] = json!({
        "artifact": format!("output/{}", MP4_NAME),
        "codec": "h264",
        "profile": "high",
        "colour": "bt709 limited range",
        "qp": qp,
        "width": width,
        "height": height,
        "frames": total_frames,
        "frame_rate": fps,
        "duration_ms": duration_ms,
        "bytes": mp4.size,
        "sha256": mp4.sha256,
    });
    manifest["captions"] = json!({
        "artifact": format!("output/{}", CAPTIONS_NAME),
        "format": "webvtt",
        "cues": cues,
        "bytes": vtt.size,
        "sha256": vtt.sha256,
    });
    if let Some(poster) = poster {
        manifest["poster"] = json!({
            "artifact": format!("output/{}", POSTER_NAME),
            "bytes": poster.size,
            "sha256": poster.sha256,
        });
    }
}
