//! The clips stage itself, written against the [`Host`] trait so it runs natively in tests as
//! well as inside the component.

use std::io::{Read, Write};

use vidpipe_render::{ApngEncoder, Image, Motion, Position, RenderError, decode_png, frame};
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

/// The artifact name of a scene's clip: `scene-007.png`. An APNG is a PNG file, and naming it
/// so lets browsers and image viewers open it (and play it).
pub fn artifact_name(index: u32) -> String {
    format!("scene-{index:03}.png")
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
/// keyframe, then for each scene reads and decodes them, renders the in-between frames, streams
/// them into an animated PNG `clip` artifact, points the scene's video clip row at it (creating
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
            "rendering {total} clip(s), {total_frames} frames at {} fps",
            config.fps
        ),
    );
    let mut total_ms = 0u64;
    for (item, done) in work.iter().zip(1u64..) {
        let scene = &item.scene;
        let name = artifact_name(scene.index);
        let row = render_clip(host, item, &name, config.fps)
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
    fps: u32,
) -> Result<ClipRow, StageError> {
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

    let mut writer = host.create_clip_artifact(name).map_err(writing)?;
    let mut sink = ChunkedWriter::new(MAX_CHUNK_BYTES, |chunk: &[u8]| {
        host.write(&mut writer, chunk)
    });
    if let Err(e) = encode_clip(&mut sink, &start, &end, frames, fps, &motion) {
        // The host's own error says more (and has the right code) than the encoder's I/O error.
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

/// Renders `frames` in-between frames from `start` to `end` into an APNG at `fps`, written to
/// `out`.
///
/// Frames are rendered and compressed one at a time: memory holds the two keyframes, one frame
/// and the encoder's buffers, however long the scene.
fn encode_clip(
    out: &mut impl Write,
    start: &Image,
    end: &Image,
    frames: u32,
    fps: u32,
    motion: &Motion,
) -> Result<(), RenderError> {
    let mut encoder = ApngEncoder::new(out, start.width(), start.height(), frames, fps)?;
    for i in 0..frames {
        let t = if frames > 1 {
            i as f32 / (frames - 1) as f32
        } else {
            0.0
        };
        encoder.write_frame(&frame(start, end, t, motion)?)?;
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
mod tests {
    use std::collections::BTreeMap;
    use std::io::Cursor;

    use vidpipe_render::{encode_png, keyframe};

    use super::*;
    use vidpipe_stage_kit::config::owned;

    /// An in-memory host that pages scenes two at a time and caps reads at `read_cap` bytes.
    struct FakeHost {
        scenes: Vec<Scene>,
        keyframes: BTreeMap<String, Vec<Keyframe>>,
        files: BTreeMap<String, Vec<u8>>,
        clips: BTreeMap<String, (String, ClipRow)>,
        next_id: u32,
        read_cap: u32,
        reads: Vec<u32>,
        chunks: Vec<usize>,
        created: usize,
        updated: usize,
        progress: Vec<(u64, u64)>,
        fail_writes_after: Option<usize>,
    }

    impl FakeHost {
        /// `count` scenes of `duration_ms`, each with PNG keyframes of 64x36.
        fn with_scenes(count: u32, duration_ms: u32) -> Self {
            let mut host = Self {
                scenes: Vec::new(),
                keyframes: BTreeMap::new(),
                files: BTreeMap::new(),
                clips: BTreeMap::new(),
                next_id: 0,
                read_cap: 4 << 20,
                reads: Vec::new(),
                chunks: Vec::new(),
                created: 0,
                updated: 0,
                progress: Vec::new(),
                fail_writes_after: None,
            };
            for index in 0..count {
                let scene = Scene {
                    id: format!("scene-{index}"),
                    index,
                    title: format!("Scene {index}"),
                    description: "Waves under a stormy sky.".to_owned(),
                    duration_ms,
                };
                let mut rows = Vec::new();
                for (position, end) in [(Position::Start, "start"), (Position::End, "end")] {
                    let name = format!("scene-{index:03}-{end}.png");
                    let image = keyframe(&scene.title, &scene.description, position, 64, 36)
                        .expect("renders");
                    let mut bytes = Vec::new();
                    encode_png(&image, &mut bytes).expect("encodes");
                    host.files.insert(name.clone(), bytes);
                    rows.push(Keyframe {
                        position,
                        kind: ArtifactKind::Keyframe,
                        name,
                    });
                }
                host.keyframes.insert(scene.id.clone(), rows);
                host.scenes.push(scene);
            }
            host
        }
    }

    impl Host for FakeHost {
        type Writer = (String, Vec<u8>);

        fn list_scenes(
            &mut self,
            cursor: Option<&str>,
            limit: u32,
        ) -> Result<Page<Scene>, StageError> {
            assert!(limit > 0);
            Ok(Page::of_slice(&self.scenes, cursor, 2))
        }

        fn list_keyframes(
            &mut self,
            scene_id: &str,
            cursor: Option<&str>,
            _limit: u32,
        ) -> Result<Page<Keyframe>, StageError> {
            // One keyframe per page, to exercise the cursor loop.
            let rows = self.keyframes.get(scene_id).cloned().unwrap_or_default();
            Ok(Page::of_slice(&rows, cursor, 1))
        }

        fn read(
            &mut self,
            kind: ArtifactKind,
            name: &str,
            offset: u64,
            length: u32,
        ) -> Result<Vec<u8>, StageError> {
            assert_eq!(kind, ArtifactKind::Keyframe);
            self.reads.push(length);
            let file = self
                .files
                .get(name)
                .ok_or_else(|| StageError::new(ErrorCode::NotFound, name))?;
            let start = (offset as usize).min(file.len());
            let end = (start + length.min(self.read_cap) as usize).min(file.len());
            Ok(file[start..end].to_vec())
        }

        fn list_video_clips(
            &mut self,
            scene_id: &str,
            _cursor: Option<&str>,
            _limit: u32,
        ) -> Result<Page<String>, StageError> {
            Ok(Page {
                items: self
                    .clips
                    .iter()
                    .filter(|(_, (scene, _))| scene == scene_id)
                    .map(|(id, _)| id.clone())
                    .collect(),
                next_cursor: None,
            })
        }

        fn create_video_clip(&mut self, scene_id: &str, clip: &ClipRow) -> Result<(), StageError> {
            assert!(
                self.files.contains_key(&clip.video),
                "the clip is published"
            );
            self.next_id += 1;
            self.clips.insert(
                format!("clip-{}", self.next_id),
                (scene_id.to_owned(), clip.clone()),
            );
            self.created += 1;
            Ok(())
        }

        fn update_video_clip(&mut self, id: &str, clip: &ClipRow) -> Result<(), StageError> {
            let row = self
                .clips
                .get_mut(id)
                .ok_or_else(|| StageError::new(ErrorCode::NotFound, id))?;
            row.1 = clip.clone();
            self.updated += 1;
            Ok(())
        }

        fn create_clip_artifact(&mut self, name: &str) -> Result<Self::Writer, StageError> {
            Ok((name.to_owned(), Vec::new()))
        }

        fn write(&mut self, writer: &mut Self::Writer, chunk: &[u8]) -> Result<(), StageError> {
            if self
                .fail_writes_after
                .is_some_and(|after| self.chunks.len() >= after)
            {
                return Err(StageError::new(
                    ErrorCode::LimitExceeded,
                    "project quota reached",
                ));
            }
            self.chunks.push(chunk.len());
            writer.1.extend_from_slice(chunk);
            Ok(())
        }

        fn finish(&mut self, writer: Self::Writer) -> Result<(), StageError> {
            self.files.insert(writer.0, writer.1);
            Ok(())
        }

        fn log(&mut self, _level: Level, _message: &str) {}

        fn progress(&mut self, done: u64, total: u64, _message: &str) {
            self.progress.push((done, total));
        }
    }

    /// The frame count and the delay of every frame of an APNG.
    fn animation(bytes: &[u8]) -> (u32, Vec<(u16, u16)>, (u32, u32)) {
        let mut reader = png::Decoder::new(Cursor::new(bytes))
            .read_info()
            .expect("a PNG");
        let frames = reader
            .info()
            .animation_control
            .expect("an animated PNG")
            .num_frames;
        let size = (reader.info().width, reader.info().height);
        let mut buffer = vec![0; reader.output_buffer_size().expect("small")];
        let mut delays = Vec::new();
        while reader.next_frame(&mut buffer).is_ok() {
            let fctl = reader.info().frame_control.expect("frame control");
            delays.push((fctl.delay_num, fctl.delay_den));
        }
        (frames, delays, size)
    }

    #[test]
    fn the_frame_count_is_the_rounded_duration_times_the_rate_and_at_least_one() {
        assert_eq!(frame_count(4_000, 12), 48);
        assert_eq!(frame_count(2_500, 24), 60);
        assert_eq!(frame_count(1_041, 12), 12);
        assert_eq!(frame_count(1_042, 12), 13);
        assert_eq!(frame_count(1, 12), 1);
        assert_eq!(frame_count(0, 60), 1);
        assert_eq!(frame_count(600_000, 60), 36_000);
        assert_eq!(frame_count(u32::MAX, 60), 257_698_038);
        assert_eq!(clip_duration_ms(48, 12), 4_000);
        assert_eq!(clip_duration_ms(1, 12), 83);
        assert_eq!(clip_duration_ms(2, 3), 667);
    }

    #[test]
    fn every_scene_gets_an_animated_png_clip_and_a_clip_row() {
        let mut host = FakeHost::with_scenes(3, 500);
        let summary = run(&mut host, &[]).expect("the stage succeeds");
        assert_eq!(summary, "3 clips, 18 frames at 12 fps, 1.5 s total");
        for index in 0..3 {
            let bytes = &host.files[&format!("scene-{index:03}.png")];
            let (frames, delays, size) = animation(bytes);
            assert_eq!(frames, 6);
            assert_eq!(delays, vec![(1, 12); 6]);
            assert_eq!(size, (64, 36));
        }
        assert_eq!(host.created, 3);
        let (scene, row) = &host.clips["clip-2"];
        assert_eq!(scene, "scene-1");
        assert_eq!(
            row,
            &ClipRow {
                video: "scene-001.png".to_owned(),
                duration_ms: 500,
                frame_rate: 12
            }
        );
        assert_eq!(host.progress, [(1, 3), (2, 3), (3, 3)]);
    }

    #[test]
    fn the_first_frame_of_a_clip_is_the_start_keyframe() {
        let mut host = FakeHost::with_scenes(1, 1_000);
        run(&mut host, &owned(&[("fps", "5")])).expect("the stage succeeds");
        let first = decode_png(&host.files["scene-000.png"]).expect("decodes");
        let start = decode_png(&host.files["scene-000-start.png"]).expect("decodes");
        assert!(first == start);
    }

    #[test]
    fn a_second_run_updates_the_clip_rows_and_rewrites_identical_files() {
        let mut host = FakeHost::with_scenes(2, 250);
        run(&mut host, &[]).expect("first run");
        let first = host.files.clone();
        let summary = run(&mut host, &owned(&[("fps", "24")])).expect("second run");
        assert_eq!(summary, "2 clips, 12 frames at 24 fps, 0.5 s total");
        assert_eq!((host.created, host.updated), (2, 2));
        assert_eq!(host.clips["clip-1"].1.frame_rate, 24);
        run(&mut host, &[]).expect("third run");
        assert!(host.files == first, "rendering is deterministic");
    }

    #[test]
    fn keyframes_are_read_in_ranges_of_at_most_1_mib_even_when_the_host_returns_less() {
        let mut host = FakeHost::with_scenes(1, 100);
        host.read_cap = 1_000;
        run(&mut host, &[]).expect("the stage succeeds");
        assert!(host.reads.iter().all(|&len| len <= MAX_READ_BYTES));
        // Each file is read in pieces of 1000 bytes, then one empty read says it has ended.
        let expected: usize = ["scene-000-start.png", "scene-000-end.png"]
            .iter()
            .map(|name| host.files[*name].len().div_ceil(1_000) + 1)
            .sum();
        assert_eq!(host.reads.len(), expected);
    }

    #[test]
    fn clips_are_written_in_chunks_of_at_most_64_kib() {
        let mut host = FakeHost::with_scenes(1, 4_000);
        run(&mut host, &owned(&[("fps", "30")])).expect("the stage succeeds");
        let clip = &host.files["scene-000.png"];
        assert!(clip.len() > MAX_CHUNK_BYTES, "{} bytes", clip.len());
        assert!(host.chunks.iter().all(|&len| len <= MAX_CHUNK_BYTES));
        assert_eq!(host.chunks.iter().sum::<usize>(), clip.len());
        assert_eq!(animation(clip).0, 120);
    }

    #[test]
    fn a_scene_without_both_keyframes_names_the_scene_and_the_keyframes_stage() {
        let mut host = FakeHost::with_scenes(3, 500);
        host.keyframes
            .get_mut("scene-2")
            .expect("scene 2")
            .retain(|k| k.position == Position::Start);
        let error = run(&mut host, &[]).expect_err("scene 2 lacks its end keyframe");
        assert_eq!(error.code, ErrorCode::InvalidInput);
        assert_eq!(
            error.message,
            "scene 2 (`Scene 2`) has no end keyframe; run the keyframes stage first"
        );
        assert!(host.chunks.is_empty(), "nothing was rendered");

        host.keyframes.insert("scene-1".to_owned(), Vec::new());
        let error = run(&mut host, &[]).expect_err("scene 1 has none");
        assert!(
            error
                .message
                .starts_with("scene 1 (`Scene 1`) has no start keyframe")
        );
    }

    #[test]
    fn a_project_without_scenes_is_told_what_to_run_first() {
        let mut host = FakeHost::with_scenes(0, 500);
        let error = run(&mut host, &[]).expect_err("nothing to animate");
        assert_eq!(error.code, ErrorCode::InvalidInput);
        assert!(
            error.message.contains("storyboard stage"),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_keyframe_that_is_not_a_png_is_invalid_input_naming_the_file() {
        let mut host = FakeHost::with_scenes(1, 500);
        host.files
            .insert("scene-000-end.png".to_owned(), b"not a png".to_vec());
        let error = run(&mut host, &[]).expect_err("garbage");
        assert_eq!(error.code, ErrorCode::InvalidInput);
        assert!(
            error.message.starts_with(
                "scene 0: keyframe image `scene-000-end.png` (9 bytes) is not a usable PNG"
            ),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_failed_write_keeps_the_host_code_and_names_the_clip() {
        let mut host = FakeHost::with_scenes(1, 4_000);
        host.fail_writes_after = Some(0);
        let error = run(&mut host, &owned(&[("fps", "30")])).expect_err("the write fails");
        assert_eq!(error.code, ErrorCode::LimitExceeded);
        assert_eq!(
            error.message,
            "scene 0: writing clip/scene-000.png: project quota reached"
        );
    }
}
