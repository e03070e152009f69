//! The clips stage itself, written against the [`Host`] trait so it runs natively in tests as
//! well as inside the component.

use std::io::Read;

use vidpipe_render::{Image, Motion, Mp4Encoder, Position, RenderError, decode_png, frame};
use vidpipe_stage_kit::io::{ChunkedWriter, RangedReader, stage_error};
use vidpipe_stage_kit::{ArtifactKind, ErrorCode, Level, Page, StageError, collect_pages};

use crate::config::Config;

/// The largest chunk handed to one `writer.write` call, so no single host call carries a huge
/// list.
pub const MAX_CHUNK_BYTES: usize = 64 * 1024;

/// The most bytes asked for in one `artifacts.read` call (the host may cap it lower).
pub const MAX_READ_BYTES: u32 = 1024 * 1024;

/// The largest keyframe image the stage reads; a larger file is refused rather than filling
/// the sandbox's memory.
pub const MAX_KEYFRAME_BYTES: u64 = 64 * 1024 * 1024;

/// How many scenes to ask for per `list-scenes` page; the host may return fewer.
pub const SCENE_PAGE_LIMIT: u32 = 100;

/// How many rows to ask for per `list-keyframes` or `list-video-clips` page of one scene.
pub const ROW_PAGE_LIMIT: u32 = 10;

/// A scene of the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scene {
    /// Its id.
    pub id: String,
    /// Its index in the project.
    pub index: u32,
    /// Its title.
    pub title: String,
    /// What happens in it.
    pub description: String,
    /// How long it lasts, in milliseconds.
    pub duration_ms: u32,
}

/// A keyframe row of a scene.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyframe {
    /// Which end of its scene it shows.
    pub position: Position,
    /// The folder of its image.
    pub kind: ArtifactKind,
    /// The name of its image.
    pub name: String,
}

/// What a clip row says about its clip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipRow {
    /// The name of the `clip` artifact.
    pub video: String,
    /// Its length in milliseconds.
    pub duration_ms: u32,
    /// Its frames per second.
    pub frame_rate: u32,
}

/// The host calls the stage makes, in plain Rust types.
pub trait Host {
    /// An artifact being written.
    type Writer;

    /// Lists scenes in index order, at most `limit` per page.
    fn list_scenes(&mut self, cursor: Option<&str>, limit: u32) -> Result<Page<Scene>, StageError>;
    /// Lists the keyframes of the scene `scene_id`, at most `limit` per page.
    fn list_keyframes(
        &mut self,
        scene_id: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Keyframe>, StageError>;
    /// Reads at most `length` bytes of an artifact from `offset`; none past its end.
    fn read(
        &mut self,
        kind: ArtifactKind,
        name: &str,
        offset: u64,
        length: u32,
    ) -> Result<Vec<u8>, StageError>;
    /// Lists the ids of the video clip rows of the scene `scene_id`, at most `limit` per page.
    fn list_video_clips(
        &mut self,
        scene_id: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<String>, StageError>;
    /// Creates the video clip row of the scene `scene_id`.
    fn create_video_clip(&mut self, scene_id: &str, clip: &ClipRow) -> Result<(), StageError>;
    /// Points the video clip row `id` at a new clip.
    fn update_video_clip(&mut self, id: &str, clip: &ClipRow) -> Result<(), StageError>;
    /// Starts writing the `clip` artifact `name`.
    fn create_clip_artifact(&mut self, name: &str) -> Result<Self::Writer, StageError>;
    /// Appends `chunk` to the artifact.
    fn write(&mut self, writer: &mut Self::Writer, chunk: &[u8]) -> Result<(), StageError>;
    /// Publishes the artifact.
    fn finish(&mut self, writer: Self::Writer) -> Result<(), StageError>;
    /// Logs `message`.
    fn log(&mut self, level: Level, message: &str);
    /// Reports progress.
    fn progress(&mut self, done: u64, total: u64, message: &str);
}

/// The artifact name of a scene's clip: `scene-007.mp4`.
pub fn artifact_name(index: u32) -> String {
    format!("scene-{index:03}.mp4")
}

/// How many frames a scene of `duration_ms` gets at `fps`: the duration times the rate,
/// rounded to the nearest frame, and at least one.
pub fn frame_count(duration_ms: u32, fps: u32) -> u32 {
    let frames = (u64::from(duration_ms) * u64::from(fps) + 500) / 1000;
    u32::try_from(frames).unwrap_or(u32::MAX).max(1)
}

/// How long `frames` frames at `fps` last, in whole milliseconds, rounded.
pub fn clip_duration_ms(frames: u32, fps: u32) -> u32 {
    let fps = u64::from(fps.max(1));
    let ms = (u64::from(frames) * 1000 + fps / 2) / fps;
    u32::try_from(ms).unwrap_or(u32::MAX)
}

/// A scene with the images of its two keyframes.
struct Work {
    scene: Scene,
    start: Keyframe,
    end: Keyframe,
}

/// Runs the clips stage: parses `config`, checks that every scene has a start and an end
/// keyframe, then for each scene reads and decodes them, renders the in-between frames, encodes
/// them into an MP4 `clip` artifact (H.264 or AV1), points the scene's video clip row at it (creating
/// the row if needed) and returns a one-line summary.
pub fn run<H: Host>(host: &mut H, config: &[(String, String)]) -> Result<String, StageError> {
    let config = Config::parse(config)?;
    let scenes = collect_pages(|cursor| host.list_scenes(cursor, SCENE_PAGE_LIMIT))
        .map_err(|e| e.context("listing the project's scenes"))?;
    if scenes.is_empty() {
        return Err(StageError::invalid_input(
            "the project has no scenes; run the storyboard stage and then the keyframes stage \
             first",
        ));
    }

    // Check every scene before rendering anything: a missing keyframe in the last scene should
    // not cost the time of rendering all the others first.
    let mut work = Vec::with_capacity(scenes.len());
    for scene in scenes {
        let keyframes =
            collect_pages(|cursor| host.list_keyframes(&scene.id, cursor, ROW_PAGE_LIMIT))
                .map_err(|e| e.context(&format!("scene {}: listing its keyframes", scene.index)))?;
        let find = |position: Position| keyframes.iter().find(|k| k.position == position).cloned();
        match (find(Position::Start), find(Position::End)) {
            (Some(start), Some(end)) => work.push(Work { scene, start, end }),
            (start, _) => {
                let missing = if start.is_none() { "start" } else { "end" };
                return Err(StageError::invalid_input(format!(
                    "scene {} (`{}`) has no {missing} keyframe; run the keyframes stage first",
                    scene.index, scene.title
                )));
            }
        }
    }

    let total = work.len() as u64;
    let total_frames: u64 = work
        .iter()
        .map(|w| u64::from(frame_count(w.scene.duration_ms, config.fps)))
        .sum();
    host.log(
        Level::Info,
        &format!(
            "rendering {total} clip(s), {total_frames} frames at {} fps, {} at quantiser {}",
            config.fps, config.codec, config.qp
        ),
    );
    let mut total_ms = 0u64;
    for (item, done) in work.iter().zip(1u64..) {
        let scene = &item.scene;
        let name = artifact_name(scene.index);
        let row = render_clip(host, item, &name, config)
            .map_err(|e| e.context(&format!("scene {}", scene.index)))?;
        total_ms += u64::from(row.duration_ms);
        upsert_clip(host, &scene.id, &row)
            .map_err(|e| e.context(&format!("scene {}: recording its clip", scene.index)))?;
        host.progress(
            done,
            total,
            &format!("scene {} of {total}: {}", scene.index, scene.title),
        );
    }

    Ok(format!(
        "{total} clip{}, {total_frames} frames at {} fps, {}.{} s total",
        if total == 1 { "" } else { "s" },
        config.fps,
        total_ms / 1000,
        total_ms % 1000 / 100
    ))
}

/// Reads one scene's keyframes, renders its clip into the `clip` artifact `name` and returns
/// the row describing it.
fn render_clip<H: Host>(
    host: &mut H,
    item: &Work,
    name: &str,
    config: Config,
) -> Result<ClipRow, StageError> {
    let fps = config.fps;
    let start = read_image(host, &item.start)?;
    let end = read_image(host, &item.end)?;
    let (width, height) = (start.width(), start.height());
    if (end.width(), end.height()) != (width, height) {
        host.log(
            Level::Warn,
            &format!(
                "scene {}: the end keyframe is {}x{} but the start one {width}x{height}; \
                 stretching it",
                item.scene.index,
                end.width(),
                end.height()
            ),
        );
    }
    let frames = frame_count(item.scene.duration_ms, fps);
    let motion = Motion::for_scene(&item.scene.title, &item.scene.description);
    let writing = |e: StageError| e.context(&format!("writing clip/{name}"));

    let mp4 = encode_clip(&start, &end, frames, config, &motion).map_err(|e| match e {
        // Keyframes the codec cannot take (odd sides, say) are the input's fault.
        RenderError::InvalidSize(_) => StageError::invalid_input(format!(
            "its keyframes cannot be encoded as {} ({e}); run the keyframes stage with an \
             even width and height",
            config.codec
        )),
        e => StageError::new(ErrorCode::Io, format!("encoding clip/{name}: {e}")),
    })?;
    let mut writer = host.create_clip_artifact(name).map_err(writing)?;
    let mut sink = ChunkedWriter::new(MAX_CHUNK_BYTES, |chunk: &[u8]| {
        host.write(&mut writer, chunk)
    });
    if let Err(e) = std::io::Write::write_all(&mut sink, &mp4) {
        // The host's own error says more (and has the right code) than the writer's I/O error.
        return Err(writing(stage_error(sink.take_failure(), e)));
    }
    let bytes = sink.finish().map_err(writing)?;
    host.finish(writer).map_err(writing)?;
    host.log(
        Level::Debug,
        &format!(
            "scene {}: clip/{name}, {frames} frames of {width}x{height}, {bytes} bytes",
            item.scene.index
        ),
    );
    Ok(ClipRow {
        video: name.to_owned(),
        duration_ms: clip_duration_ms(frames, fps),
        frame_rate: fps,
    })
}

/// Renders `frames` in-between frames from `start` to `end` and encodes them into an MP4 in
/// the configured codec, at the configured rate and quantiser.
///
/// Frames are rendered and encoded one at a time: memory holds the two keyframes, one frame,
/// the encoder's lookahead and the coded pictures (a few kilobytes each), however long the
/// scene.
fn encode_clip(
    start: &Image,
    end: &Image,
    frames: u32,
    config: Config,
    motion: &Motion,
) -> Result<Vec<u8>, RenderError> {
    let mut encoder = Mp4Encoder::with_codec(
        config.codec,
        start.width(),
        start.height(),
        config.fps,
        config.qp,
    )?;
    for i in 0..frames {
        let t = if frames > 1 {
            i as f32 / (frames - 1) as f32
        } else {
            0.0
        };
        encoder.push(&frame(start, end, t, motion)?)?;
    }
    encoder.finish()
}

/// Reads a keyframe's image fully, in ranged reads of at most [`MAX_READ_BYTES`], and decodes
/// it.
fn read_image<H: Host>(host: &mut H, keyframe: &Keyframe) -> Result<Image, StageError> {
    let name = &keyframe.name;
    let mut bytes = Vec::new();
    // The host may return less than asked before the end, so only an empty read ends the file.
    let mut reader = RangedReader::new(MAX_READ_BYTES, |offset, length| {
        host.read(keyframe.kind, name, offset, length)
    })
    .take(MAX_KEYFRAME_BYTES + 1);
    if let Err(e) = reader.read_to_end(&mut bytes) {
        return Err(stage_error(reader.into_inner().take_failure(), e)
            .context(&format!("reading keyframe image `{name}`")));
    }
    if bytes.len() as u64 > MAX_KEYFRAME_BYTES {
        return Err(StageError::new(
            ErrorCode::LimitExceeded,
            format!(
                "keyframe image `{name}` is larger than {} MiB",
                MAX_KEYFRAME_BYTES >> 20
            ),
        ));
    }
    decode_png(&bytes).map_err(|e| {
        StageError::invalid_input(format!(
            "keyframe image `{name}` ({} bytes) is not a usable PNG: {e}; run the keyframes stage \
             again",
            bytes.len()
        ))
    })
}

/// Creates the scene's clip row, or updates the one it has.
fn upsert_clip<H: Host>(host: &mut H, scene_id: &str, row: &ClipRow) -> Result<(), StageError> {
    let page = host.list_video_clips(scene_id, None, ROW_PAGE_LIMIT)?;
    // A scene has at most one clip, so the first page tells whether it exists.
    match page.items.first() {
        Some(id) => host.update_video_clip(id, row),
        None => host.create_video_clip(scene_id, row),
    }
}

#[cfg(test)]
mod tests;
