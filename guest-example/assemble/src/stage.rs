//! The assemble stage itself, written against the [`Host`] trait so it runs natively in tests
//! as well as inside the component.

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::json;

use vidpipe_render::{
    Codec, Image, Position, RenderError, SheetRow, contact_sheet, decode_png, encode_png, shrink,
};

use crate::media;
pub use crate::media::MP4_NAME as VIDEO_NAME;
use vidpipe_stage_kit::config::Pairs;
use vidpipe_stage_kit::io::{ChunkedWriter, RangedReader, stage_error};
use vidpipe_stage_kit::{ArtifactKind, ErrorCode, Level, Page, Part, StageError, collect_pages};

/// The configuration keys the stage understands, sorted.
pub const KNOWN_KEYS: [&str; 1] = ["thumbnail-width"];
/// The width of a contact-sheet thumbnail when `thumbnail-width` is not given.
pub const DEFAULT_THUMBNAIL_WIDTH: u32 = 320;

/// The `output` artifact holding the contact sheet.
pub const SHEET_NAME: &str = "contact-sheet.png";
/// The `output` artifact holding the manifest.
pub const MANIFEST_NAME: &str = "manifest.json";

/// The size of each `writer.write` call.
pub const WRITE_CHUNK_BYTES: usize = 256 * 1024;
/// The most bytes asked for in one `artifacts.read` call (the host may cap it lower).
pub const READ_BYTES: u32 = 1024 * 1024;
/// The largest keyframe image the stage reads into memory.
pub const MAX_KEYFRAME_BYTES: u64 = 64 * 1024 * 1024;
/// How many rows to ask for per page of a listing; the host may return fewer.
pub const PAGE_LIMIT: u32 = 100;

/// A scene of the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scene {
    /// Its id.
    pub id: String,
    /// Its index in the project.
    pub index: u32,
    /// Its title.
    pub title: String,
    /// How long it lasts, in milliseconds.
    pub duration_ms: u32,
}

/// A keyframe row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyframe {
    /// The scene it belongs to.
    pub scene_id: String,
    /// Which end of the scene it shows.
    pub position: Position,
    /// The folder of its image.
    pub kind: ArtifactKind,
    /// The name of its image.
    pub name: String,
}

/// A video clip row: the whole of its scene's video, or one part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clip {
    /// The scene it belongs to.
    pub scene_id: String,
    /// Which part of its scene's video it holds ([`Part::WHOLE`] for all of it).
    pub part: Part,
    /// The folder of its video.
    pub kind: ArtifactKind,
    /// The name of its video.
    pub name: String,
    /// Its frames per second.
    pub frame_rate: u32,
}

/// What the host says about a published artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its bytes, in lowercase hex.
    pub sha256: String,
}

/// The host calls the stage makes, in plain Rust types.
pub trait Host {
    /// An artifact being written.
    type Writer;

    /// The name of the project the stage is bound to.
    fn project_name(&mut self) -> Result<String, StageError>;
    /// Lists scenes in index order.
    fn list_scenes(&mut self, cursor: Option<&str>, limit: u32) -> Result<Page<Scene>, StageError>;
    /// Lists every keyframe row of the project.
    fn list_keyframes(
        &mut self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Keyframe>, StageError>;
    /// Lists every video clip row of the project with its part, ordered by scene index, then
    /// part.
    fn list_clip_parts(
        &mut self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Clip>, StageError>;
    /// Reads at most `length` bytes of an artifact from `offset`; none past its end.
    fn read(
        &mut self,
        kind: ArtifactKind,
        name: &str,
        offset: u64,
        length: u32,
    ) -> Result<Vec<u8>, StageError>;
    /// Starts writing the `output` artifact `name`.
    fn create_output(&mut self, name: &str) -> Result<Self::Writer, StageError>;
    /// Appends `chunk` to the artifact.
    fn write(&mut self, writer: &mut Self::Writer, chunk: &[u8]) -> Result<(), StageError>;
    /// Publishes the artifact.
    fn finish(&mut self, writer: Self::Writer) -> Result<Published, StageError>;
    /// Logs `message`.
    fn log(&mut self, level: Level, message: &str);
    /// Reports progress.
    fn progress(&mut self, done: u64, total: u64, message: &str);
}

/// A scene with its two keyframes and its clip: one, or its parts in order.
pub(crate) struct Work {
    pub(crate) scene: Scene,
    pub(crate) start: Keyframe,
    end: Keyframe,
    /// Its clip's parts, in part order (one part of 1 for a clip made whole).
    pub(crate) clips: Vec<Clip>,
    /// The frame count of its whole clip, every part's from its MP4.
    pub(crate) frames: u32,
    /// The frame rate of its clip, from its MP4 once read.
    pub(crate) frame_rate: u32,
}

/// Runs the assemble stage: joins every scene's clip (its parts in order), in scene order,
/// into the `output` artifact [`VIDEO_NAME`] (an MP4 joined without re-encoding), writes its
/// captions and poster, draws the contact sheet [`SHEET_NAME`] from the keyframes and writes
/// [`MANIFEST_NAME`], a JSON description of all of them and of what they were made from.
/// Returns a one-line summary.
pub fn run<H: Host>(host: &mut H, config: &[(String, String)]) -> Result<String, StageError> {
    let config = Pairs::parse(config, &KNOWN_KEYS)?;
    let thumb_width = config.u32_in(
        "thumbnail-width",
        32..=1024,
        DEFAULT_THUMBNAIL_WIDTH,
        "pixels",
    )?;
    let project = host
        .project_name()
        .map_err(|e| e.context("reading the project"))?;
    let mut work = gather(host)?;
    let steps = work.len() as u64 + 2;

    // Read every clip first: one that cannot be joined fails the stage before anything is
    // written.
    let clips = media::read_clips(host, &mut work, steps)?;
    let (width, height) = clips.first().map_or((0, 0), |c| c.size());
    let fps = clips.first().map_or(12, |c| c.fps());
    let codec = clips.first().map_or(Codec::H264, |c| c.codec());
    let total_frames: u64 = work.iter().map(|w| u64::from(w.frames)).sum();
    let total_frames = u32::try_from(total_frames)
        .map_err(|_| StageError::new(ErrorCode::LimitExceeded, "the clips hold too many frames"))?;
    let duration_ms = exact_duration_ms(&work);
    host.log(
        Level::Info,
        &format!(
            "joining {} {codec} clip(s) of {} scene(s), {total_frames} frames of \
             {width}x{height} at {fps} fps",
            clips.len(),
            work.len()
        ),
    );

    let video = media::write_video(host, &clips)?;
    drop(clips);
    let captions = media::captions(&work, fps);
    let vtt = write_output(host, media::CAPTIONS_NAME, |out| {
        out.write_all(captions.as_bytes())
            .map_err(|e| RenderError::Encode(e.to_string()))
    })?;
    let poster = match work.first() {
        Some(first) => Some(media::write_poster(host, &first.start)?),
        None => None,
    };
    host.progress(steps - 1, steps, "video, captions and poster written");
    let sheet_size;
    let sheet = {
        let sheet = draw_sheet(host, &project, &work, thumb_width, duration_ms)?;
        sheet_size = (sheet.width(), sheet.height());
        write_output(host, SHEET_NAME, |out| encode_png(&sheet, out))?
    };

    let mut manifest = manifest(
        &project,
        &work,
        media::describe_video(
            &video,
            codec,
            (width, height, total_frames, duration_ms),
            fps,
        ),
        &sheet,
        sheet_size,
    );
    media::describe_extras(
        &mut manifest,
        (&vtt, work.len(), duration_ms),
        poster.as_ref(),
    );
    let mut text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| StageError::new(ErrorCode::Io, format!("cannot write the manifest: {e}")))?;
    text.push('\n');
    write_output(host, MANIFEST_NAME, |out| {
        std::io::Write::write_all(out, text.as_bytes())
            .map_err(|e| RenderError::Encode(e.to_string()))
    })?;
    host.progress(steps, steps, "contact sheet and manifest written");

    Ok(format!(
        "output/{VIDEO_NAME} ({total_frames} frames of {width}x{height}, {}.{} s, {} bytes), \
         output/{}, output/{}, output/{SHEET_NAME}, output/{MANIFEST_NAME}",
        duration_ms / 1000,
        duration_ms % 1000 / 100,
        video.size,
        media::CAPTIONS_NAME,
        media::POSTER_NAME,
    ))
}

/// The scenes with their keyframes and clips, in scene order; fails naming the first scene
/// that lacks one, or whose clip parts are not every part of one cut.
fn gather<H: Host>(host: &mut H) -> Result<Vec<Work>, StageError> {
    let scenes = collect_pages(|cursor| host.list_scenes(cursor, PAGE_LIMIT))
        .map_err(|e| e.context("listing the project's scenes"))?;
    if scenes.is_empty() {
        return Err(StageError::invalid_input(
            "the project has no scenes; run the storyboard, keyframes and clips stages first",
        ));
    }
    let keyframes = collect_pages(|cursor| host.list_keyframes(cursor, PAGE_LIMIT))
        .map_err(|e| e.context("listing the project's keyframes"))?;
    let clips = collect_pages(|cursor| host.list_clip_parts(cursor, PAGE_LIMIT))
        .map_err(|e| e.context("listing the project's video clips"))?;
    let mut by_scene: BTreeMap<&str, Vec<&Clip>> = BTreeMap::new();
    for clip in &clips {
        by_scene
            .entry(clip.scene_id.as_str())
            .or_default()
            .push(clip);
    }
    let mut work = Vec::with_capacity(scenes.len());
    for scene in scenes {
        let find = |position: Position| {
            keyframes
                .iter()
                .find(|k| k.scene_id == scene.id && k.position == position)
                .cloned()
        };
        let (Some(start), Some(end)) = (find(Position::Start), find(Position::End)) else {
            return Err(StageError::invalid_input(format!(
                "scene {} (`{}`) lacks a start or end keyframe; run the keyframes stage first",
                scene.index, scene.title
            )));
        };
        let clips = scene_clips(
            &scene,
            by_scene.remove(scene.id.as_str()).unwrap_or_default(),
        )?;
        work.push(Work {
            frame_rate: clips.first().map_or(0, |c| c.frame_rate),
            scene,
            start,
            end,
            clips,
            frames: 0,
        });
    }
    Ok(work)
}

/// A scene's clip parts in part order, if they are every part of one cut of its video: all of
/// the same count `n`, numbered 0 to `n - 1` (a clip made whole is part 0 of 1). Fails naming
/// the scene and the parts it has otherwise, or if it has none.
fn scene_clips(scene: &Scene, mut parts: Vec<&Clip>) -> Result<Vec<Clip>, StageError> {
    if parts.is_empty() {
        return Err(StageError::invalid_input(format!(
            "scene {} (`{}`) has no video clip; run the clips stage first",
            scene.index, scene.title
        )));
    }
    parts.sort_by_key(|clip| (clip.part.index, clip.part.count));
    let count = parts[0].part.count;
    let whole = parts.len() == count as usize
        && (0u32..)
            .zip(&parts)
            .all(|(index, clip)| clip.part == Part { index, count });
    if !whole {
        let found: Vec<String> = parts
            .iter()
            .map(|clip| format!("{}/{}", clip.part.index + 1, clip.part.count))
            .collect();
        return Err(StageError::invalid_input(format!(
            "scene {} (`{}`) has the video clip parts {}, not one clip or every part of one cut \
             of its video (parts 1/N to N/N); run the clips stage again",
            scene.index,
            scene.title,
            found.join(", ")
        )));
    }
    Ok(parts.into_iter().cloned().collect())
}

/// The length of the video in milliseconds: every clip's frames at its rate, summed exactly
/// and rounded once; if the rates are so many and so odd that the exact sum would overflow,
/// each clip is rounded on its own instead.
fn exact_duration_ms(work: &[Work]) -> u64 {
    let rate = |w: &Work| u128::from(w.frame_rate.max(1));
    // Sum frames / fps as a fraction over the least common multiple of the rates.
    let exact = work
        .iter()
        .try_fold(1u128, |lcm, w| {
            (lcm / gcd(lcm, rate(w))).checked_mul(rate(w))
        })
        .and_then(|lcm| {
            let numerator = work.iter().try_fold(0u128, |sum, w| {
                u128::from(w.frames)
                    .checked_mul(lcm / rate(w))
                    .and_then(|n| sum.checked_add(n))
            })?;
            Some((numerator.checked_mul(1000)? + lcm / 2) / lcm)
        });
    let ms = exact.unwrap_or_else(|| {
        work.iter()
            .map(|w| (u128::from(w.frames) * 1000 + rate(w) / 2) / rate(w))
            .sum()
    });
    u64::try_from(ms).unwrap_or(u64::MAX)
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Writes the `output` artifact `name` with `encode`, in chunks.
pub(crate) fn write_output<H: Host>(
    host: &mut H,
    name: &str,
    encode: impl FnOnce(&mut dyn std::io::Write) -> Result<(), RenderError>,
) -> Result<Published, StageError> {
    let writing = |e: StageError| e.context(&format!("writing output/{name}"));
    let mut writer = host.create_output(name).map_err(writing)?;
    let mut sink = ChunkedWriter::new(WRITE_CHUNK_BYTES, |chunk: &[u8]| {
        host.write(&mut writer, chunk)
    });
    if let Err(e) = encode(&mut sink) {
        return Err(writing(stage_error(sink.take_failure(), e)));
    }
    sink.finish().map_err(writing)?;
    host.finish(writer).map_err(writing)
}

/// Reads a keyframe image, decodes it and shrinks it to a `width`-pixel-wide thumbnail of the
/// aspect ratio `aspect` (height / width, as a fraction).
fn thumbnail<H: Host>(
    host: &mut H,
    keyframe: &Keyframe,
    width: u32,
    aspect: (u32, u32),
) -> Result<Image, StageError> {
    let name = format!("{}/{}", keyframe.kind.as_str(), keyframe.name);
    let mut bytes = Vec::new();
    let mut reader = RangedReader::new(READ_BYTES, |offset, length| {
        host.read(keyframe.kind, &keyframe.name, offset, length)
    })
    .take(MAX_KEYFRAME_BYTES + 1);
    if let Err(e) = reader.read_to_end(&mut bytes) {
        return Err(
            stage_error(reader.into_inner().take_failure(), e).context(&format!("reading {name}"))
        );
    }
    if bytes.len() as u64 > MAX_KEYFRAME_BYTES {
        return Err(StageError::new(
            ErrorCode::LimitExceeded,
            format!("{name} is larger than {} MiB", MAX_KEYFRAME_BYTES >> 20),
        ));
    }
    let image = decode_png(&bytes).map_err(|e| {
        StageError::invalid_input(format!(
            "{name} is not a usable PNG: {e}; run the keyframes stage again"
        ))
    })?;
    let height = (u64::from(width) * u64::from(aspect.1) / u64::from(aspect.0.max(1))).max(1);
    let height = u32::try_from(height).unwrap_or(u32::MAX);
    shrink(&image, width, height).map_err(|e| StageError::invalid_input(e.to_string()))
}

/// Draws the contact sheet of every scene's keyframes.
fn draw_sheet<H: Host>(
    host: &mut H,
    project: &str,
    work: &[Work],
    thumb_width: u32,
    duration_ms: u64,
) -> Result<Image, StageError> {
    // Thumbnails keep the video's aspect ratio, which the keyframes share.
    let mut thumbs = Vec::with_capacity(work.len());
    let mut aspect = None;
    for item in work {
        let first = match aspect {
            Some(aspect) => aspect,
            None => keyframe_aspect(host, &item.start)?,
        };
        aspect = Some(first);
        let start = thumbnail(host, &item.start, thumb_width, first)?;
        let end = thumbnail(host, &item.end, thumb_width, first)?;
        let label = format!("{}  {}", item.scene.index + 1, item.scene.title);
        thumbs.push((label, start, end));
    }
    let rows: Vec<SheetRow<'_>> = thumbs
        .iter()
        .map(|(label, start, end)| SheetRow { label, start, end })
        .collect();
    let heading = format!(
        "{project}  ·  {} scene{}  ·  {}.{} s",
        work.len(),
        if work.len() == 1 { "" } else { "s" },
        duration_ms / 1000,
        duration_ms % 1000 / 100
    );
    contact_sheet(&heading, &rows, thumb_width)
        .map_err(|e| StageError::invalid_input(format!("cannot draw the contact sheet: {e}")))
}

/// The (width, height) of a keyframe image, from its PNG header.
fn keyframe_aspect<H: Host>(host: &mut H, keyframe: &Keyframe) -> Result<(u32, u32), StageError> {
    let header = host.read(keyframe.kind, &keyframe.name, 0, 24)?;
    // The signature (8 bytes), IHDR's length and type (8), then width and height.
    if header.len() < 24 || header[..8] != vidpipe_render::PNG_SIGNATURE {
        return Err(StageError::invalid_input(format!(
            "{}/{} is not a PNG; run the keyframes stage again",
            keyframe.kind.as_str(),
            keyframe.name
        )));
    }
    let word = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    Ok((word(16).max(1), word(20).max(1)))
}

/// The manifest: what was produced, and from what.
fn manifest(
    project: &str,
    work: &[Work],
    video: serde_json::Value,
    sheet: &Published,
    (sheet_width, sheet_height): (u32, u32),
) -> serde_json::Value {
    let scenes: Vec<serde_json::Value> = work
        .iter()
        .map(|w| {
            json!({
                "index": w.scene.index,
                "title": w.scene.title,
                "duration_ms": w.scene.duration_ms,
                "keyframes": {
                    "start": format!("{}/{}", w.start.kind.as_str(), w.start.name),
                    "end": format!("{}/{}", w.end.kind.as_str(), w.end.name),
                },
                "clip": {
                    "artifacts": w
                        .clips
                        .iter()
                        .map(|clip| format!("{}/{}", clip.kind.as_str(), clip.name))
                        .collect::<Vec<_>>(),
                    "frames": w.frames,
                    "frame_rate": w.frame_rate,
                },
            })
        })
        .collect();
    json!({
        "project": project,
        "video": video,
        "contact_sheet": {
            "artifact": format!("output/{SHEET_NAME}"),
            "width": sheet_width,
            "height": sheet_height,
            "bytes": sheet.size,
            "sha256": sheet.sha256,
        },
        "scenes": scenes,
    })
}

#[cfg(test)]
mod tests;
