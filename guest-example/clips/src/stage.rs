//! The clips stage itself, written against the [`Host`] trait so it runs natively in tests as
//! well as inside the component.

use std::io::Read;
use std::ops::Range;

use vidpipe_render::{Image, Motion, Mp4Encoder, Position, RenderError, decode_png, frame};
use vidpipe_stage_kit::io::{ChunkedWriter, RangedReader, stage_error};
use vidpipe_stage_kit::{ArtifactKind, ErrorCode, Level, Page, Part, StageError, collect_pages};

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

/// How many rows to ask for per `list-keyframes` page of one scene.
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
///
/// There is no call that reads clip rows: a shard doing one part of a scene must not read its
/// scene's clip, which its sibling shards write at the same time (the host would see the read
/// and run the shard again whenever a sibling changed its part).
pub trait Host {
    /// An artifact being written.
    type Writer;

    /// Which part of each scene's work this run does; `None` for all of it.
    fn part(&mut self) -> Option<Part>;
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
    /// Sets part `part` of the clip of the scene `scene_id`: creates the row of that part, or
    /// points the one it has at `clip` (the host deletes the artifact it named before if no
    /// row names it any more).
    fn put_clip_part(
        &mut self,
        scene_id: &str,
        clip: &ClipRow,
        part: Part,
    ) -> Result<(), StageError>;
    /// Deletes the clip parts of the scene `scene_id` numbered `first` and up, with the
    /// artifacts no other row names; reads nothing.
    fn delete_clip_parts(&mut self, scene_id: &str, first: u32) -> Result<(), StageError>;
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

/// The artifact name of part `part` of a scene's clip: `scene-007.mp4` for a whole clip,
/// `scene-007-part-2-of-3.mp4` for a part (numbered from 1).
pub fn artifact_name(index: u32, part: Part) -> String {
    if part.is_whole() {
        format!("scene-{index:03}.mp4")
    } else {
        format!(
            "scene-{index:03}-part-{}-of-{}.mp4",
            part.index + 1,
            part.count
        )
    }
}

/// The part of a scene of `frames` frames that the shard doing `part` encodes, if any: a
/// scene has at most one part per frame, so with fewer frames than parts it is cut into as
/// many parts as it has frames, and the shards past them have nothing to do.
pub fn clip_part(frames: u32, part: Part) -> Option<Part> {
    Part::new(part.index, part.count.min(frames.max(1)))
}

/// The frames of a scene of `frames` frames (numbered from 0) that its part `part` holds:
/// `index × frames / count` up to `(index + 1) × frames / count`, so the parts hold every
/// frame once, in order, and differ in length by at most one frame.
pub fn part_frames(frames: u32, part: Part) -> Range<u32> {
    let bound = |index: u32| {
        let at = u64::from(index) * u64::from(frames) / u64::from(part.count.max(1));
        u32::try_from(at).unwrap_or(frames)
    };
    bound(part.index)..bound(part.index + 1)
}

/// Where frame `i` of a scene of `frames` frames is in the cross-fade, from 0 (the start
/// keyframe) to 1 (the end one): the same for a frame whichever part encodes it.
pub fn frame_time(i: u32, frames: u32) -> f32 {
    if frames > 1 {
        i as f32 / (frames - 1) as f32
    } else {
        0.0
    }
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

/// A scene with the images of its two keyframes and the part of its clip to encode.
struct Work {
    scene: Scene,
    start: Keyframe,
    end: Keyframe,
    /// All of the scene's frames.
    frames: u32,
    /// The part of its clip this run encodes, cut as the scene's frames allow; `None` if the
    /// scene has too few frames to have this run's part.
    part: Option<Part>,
}

impl Work {
    /// The frames of the scene this run encodes: none if it has no part of them.
    fn part_frames(&self) -> Range<u32> {
        self.part
            .map_or(0..0, |part| part_frames(self.frames, part))
    }
}

/// What a run wrote, for its summary.
#[derive(Default)]
struct Written {
    clips: u64,
    frames: u64,
    ms: u64,
    /// The frame counts of the scenes too short to have the run's part.
    too_short: Vec<u32>,
}

/// Runs the clips stage: parses `config`, checks that every scene has a start and an end
/// keyframe, then for each scene reads and decodes them, renders the frames of this run's part
/// of it (all of them when the stage is not cut into parts), encodes them into an MP4 `clip`
/// artifact (H.264 or AV1), sets that part of the scene's clip to it and returns a one-line
/// summary. The run doing the first part also deletes the parts left over from a cut into
/// more.
pub fn run<H: Host>(host: &mut H, config: &[(String, String)]) -> Result<String, StageError> {
    let config = Config::parse(config)?;
    let part = shard_part(host)?;
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
            (Some(start), Some(end)) => {
                let frames = frame_count(scene.duration_ms, config.fps);
                work.push(Work {
                    scene,
                    start,
                    end,
                    frames,
                    part: clip_part(frames, part),
                });
            }
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
    let clips = work.iter().filter(|w| w.part.is_some()).count();
    let frames: u64 = work.iter().map(|w| w.part_frames().len() as u64).sum();
    host.log(
        Level::Info,
        &format!(
            "rendering {clips} clip(s){}, {frames} frames at {} fps, {} at quantiser {}",
            if part.is_whole() {
                String::new()
            } else {
                format!(" ({part} of each scene)")
            },
            config.fps,
            config.codec,
            config.qp
        ),
    );
    let mut written = Written::default();
    for (item, done) in work.iter().zip(1u64..) {
        let scene = &item.scene;
        match item.part {
            Some(cut) => {
                let row = write_part(host, item, cut, part, config)?;
                written.clips += 1;
                written.frames += item.part_frames().len() as u64;
                written.ms += u64::from(row.duration_ms);
            }
            None => {
                host.log(
                    Level::Info,
                    &format!(
                        "scene {}: its {} frame(s) are all in its first part(s), so {part} has \
                         none to encode",
                        scene.index, item.frames
                    ),
                );
                written.too_short.push(item.frames);
            }
        }
        host.progress(
            done,
            total,
            &format!("scene {}: {}", scene.index, scene.title),
        );
    }
    Ok(summary(config.fps, &written))
}

/// The part of each scene's work the host gives this run: all of it if none, or a part the
/// host cannot mean.
fn shard_part<H: Host>(host: &mut H) -> Result<Part, StageError> {
    match host.part() {
        None => Ok(Part::WHOLE),
        Some(given) => Part::new(given.index, given.count).ok_or_else(|| {
            StageError::invalid_input(format!(
                "the host gave this run part {} of {}, which is no part: a scene's work is cut \
                 into 1 to {} parts, numbered from 0",
                given.index,
                given.count,
                vidpipe_stage_kit::MAX_PARTS
            ))
        }),
    }
}

/// Renders and publishes the part `cut` of one scene's clip, sets that part of the scene's
/// clip to it and, for the run doing the first part of each scene (`part`), deletes the parts
/// left over from a cut into more. Returns the part's row.
fn write_part<H: Host>(
    host: &mut H,
    item: &Work,
    cut: Part,
    part: Part,
    config: Config,
) -> Result<ClipRow, StageError> {
    let scene = &item.scene;
    let label = if part.is_whole() {
        format!("scene {}", scene.index)
    } else {
        format!("scene {} {part}", scene.index)
    };
    let name = artifact_name(scene.index, cut);
    let row = render_clip(host, item, &name, config).map_err(|e| e.context(&label))?;
    host.put_clip_part(&scene.id, &row, cut)
        .map_err(|e| e.context(&format!("{label}: recording its clip")))?;
    if part.index == 0 {
        // From the scene's own count up: no sibling shard writes those (a scene of fewer
        // frames than parts has fewer parts, and the shards past them write nothing).
        host.delete_clip_parts(&scene.id, cut.count)
            .map_err(|e| e.context(&format!("{label}: deleting the parts left over")))?;
    }
    Ok(row)
}

/// The run's one-line summary: `1 clip, 16 frames at 12 fps, 1.3 s total` (the host records
/// which part of its scene a shard did, and shows it beside this).
fn summary(fps: u32, written: &Written) -> String {
    let plural = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let mut text = String::new();
    if written.clips > 0 {
        text.push_str(&format!(
            "{}, {} at {fps} fps, {}.{} s total",
            plural(written.clips, "clip"),
            plural(written.frames, "frame"),
            written.ms / 1000,
            written.ms % 1000 / 100
        ));
    }
    match written.too_short.as_slice() {
        [] => {}
        [frames] if written.clips == 0 => text.push_str(&format!(
            "no clip, the scene's {} are all in its first {}",
            plural(u64::from(*frames), "frame"),
            plural(u64::from(*frames), "part")
        )),
        short => {
            if written.clips == 0 {
                text.push_str("no clips");
            }
            text.push_str(&format!(
                "; {} too short to have this part",
                plural(short.len() as u64, "scene")
            ));
        }
    }
    text
}

/// Reads one scene's keyframes, renders the frames of its part into the `clip` artifact `name`
/// and returns the row describing it.
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
    let frames = item.part_frames();
    let motion = Motion::for_scene(&item.scene.title, &item.scene.description);
    let writing = |e: StageError| e.context(&format!("writing clip/{name}"));

    let encoding = |e: RenderError| match e {
        // Keyframes the codec cannot take (odd sides, say) are the input's fault.
        RenderError::InvalidSize(_) => StageError::invalid_input(format!(
            "its keyframes cannot be encoded as {} ({e}); run the keyframes stage with an \
             even width and height",
            config.codec
        )),
        e => StageError::new(ErrorCode::Io, format!("encoding clip/{name}: {e}")),
    };
    let mp4 = encode_clip(&start, &end, (frames.clone(), item.frames), config, &motion)
        .map_err(encoding)?;
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
            "scene {}: clip/{name}, frames {} to {} of {}, {width}x{height}, {bytes} bytes",
            item.scene.index,
            frames.start,
            frames.end.saturating_sub(1),
            item.frames
        ),
    );
    Ok(ClipRow {
        video: name.to_owned(),
        duration_ms: clip_duration_ms(frames.len() as u32, fps),
        frame_rate: fps,
    })
}

/// Renders the in-between frames `frames` of a scene of `total` frames, from `start` to
/// `end`, and encodes them into an MP4 in the configured codec, at the configured rate and
/// quantiser. The MP4 starts with a sync picture, and every part of a scene is coded with the
/// same parameter sets, so the parts join by copying their pictures.
///
/// Frames are rendered and encoded one at a time: memory holds the two keyframes, one frame,
/// the encoder's lookahead and the coded pictures (a few kilobytes each), however long the
/// scene.
fn encode_clip(
    start: &Image,
    end: &Image,
    (frames, total): (Range<u32>, u32),
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
    for i in frames {
        encoder.push(&frame(start, end, frame_time(i, total), motion)?)?;
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

#[cfg(test)]
mod tests;
