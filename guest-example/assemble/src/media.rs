//! The browser-playable outputs: the MP4 (H.264 or AV1) joined from the clips' MP4s without
//! re-encoding, its WebVTT captions (a cue per scene, with its title), and its poster (the
//! first keyframe).

use std::io::Read;

use serde_json::json;
use vidpipe_render::{Codec, Mp4Clip, RenderError, join_clips, read_clip};
use vidpipe_stage_kit::io::RangedReader;
use vidpipe_stage_kit::{ErrorCode, StageError};

use crate::stage::{Clip, Host, Keyframe, Published, READ_BYTES, Work, write_output};

/// The `output` artifact holding the MP4.
pub const MP4_NAME: &str = "final.mp4";
/// The `output` artifact holding the captions.
pub const CAPTIONS_NAME: &str = "final.vtt";
/// The `output` artifact holding the poster.
pub const POSTER_NAME: &str = "poster.png";
/// The largest clip the stage reads into memory to join it.
pub const MAX_CLIP_BYTES: u64 = 256 * 1024 * 1024;

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

/// Reads every scene's clip, part by part, checking that each can follow the very first
/// without re-encoding; records each scene's frame count (the sum of its parts') and rate
/// (from the MP4s themselves) in `work`. Returns every clip in scene order, then part order.
/// Fails, naming the scene, before anything is written.
pub fn read_clips<H: Host>(
    host: &mut H,
    work: &mut [Work],
    steps: u64,
) -> Result<Vec<Mp4Clip>, StageError> {
    let mut clips: Vec<Mp4Clip> = Vec::with_capacity(work.len());
    for (item, done) in work.iter_mut().zip(1u64..) {
        let scene = item.scene.index;
        let mut frames = 0u32;
        for part in &item.clips {
            let clip = read_part(host, scene, part, clips.first())?;
            frames = frames.checked_add(clip.frames()).ok_or_else(|| {
                StageError::new(
                    ErrorCode::LimitExceeded,
                    format!("scene {scene}: its clip holds too many frames"),
                )
            })?;
            item.frame_rate = clip.fps();
            clips.push(clip);
        }
        item.frames = frames;
        host.progress(
            done,
            steps,
            &format!("scene {scene}: {} frames read", item.frames),
        );
    }
    Ok(clips)
}

/// Reads and parses one clip (a part of the clip of scene `scene`), checking that it can
/// follow `first`, the very first clip, without re-encoding.
fn read_part<H: Host>(
    host: &mut H,
    scene: u32,
    part: &Clip,
    first: Option<&Mp4Clip>,
) -> Result<Mp4Clip, StageError> {
    let name = format!("{}/{}", part.kind.as_str(), part.name);
    let bytes = read_all(host, part.kind, &part.name, MAX_CLIP_BYTES)
        .map_err(|e| e.context(&format!("scene {scene}: reading {name}")))?;
    let clip = read_clip(&bytes).map_err(|e| {
        StageError::invalid_input(format!(
            "scene {scene}: {name} is not an H.264 or AV1 MP4 the stage can join ({e}); run the \
             clips stage again"
        ))
    })?;
    if let Some(differs) = first.and_then(|first| clip.mismatch(first)) {
        let what = if part.part.is_whole() {
            format!("the clip of scene {scene}")
        } else {
            format!("{} of the clip of scene {scene}", part.part)
        };
        return Err(StageError::invalid_input(format!(
            "{what} {differs}; run the clips stage again"
        )));
    }
    Ok(clip)
}

/// Joins the clips, in the order given (scene, then part), into [`MP4_NAME`], copying their
/// coded pictures.
pub fn write_video<H: Host>(host: &mut H, clips: &[Mp4Clip]) -> Result<Published, StageError> {
    let mp4 = join_clips(clips)
        .map_err(|e| StageError::invalid_input(format!("cannot join the clips: {e}")))?;
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

/// The manifest's entry for the video.
pub fn describe_video(
    video: &Published,
    codec: Codec,
    (width, height, frames, duration_ms): (u32, u32, u32, u64),
    fps: u32,
) -> serde_json::Value {
    json!({
        "artifact": format!("output/{}", MP4_NAME),
        "format": "mp4",
        "codec": codec.name(),
        "profile": match codec {
            Codec::H264 => "high",
            Codec::Av1 => "main",
        },
        "colour": "bt709 limited range",
        "width": width,
        "height": height,
        "frames": frames,
        "frame_rate": fps,
        "duration_ms": duration_ms,
        "bytes": video.size,
        "sha256": video.sha256,
    })
}

/// Adds the captions (which span the video's `duration_ms`) and the poster to the manifest.
pub fn describe_extras(
    manifest: &mut serde_json::Value,
    (vtt, cues, duration_ms): (&Published, usize, u64),
    poster: Option<&Published>,
) {
    manifest["captions"] = json!({
        "artifact": format!("output/{}", CAPTIONS_NAME),
        "format": "webvtt",
        "cues": cues,
        "duration_ms": duration_ms,
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
