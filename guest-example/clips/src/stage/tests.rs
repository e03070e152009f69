use std::collections::BTreeMap;
use vidpipe_render::{Image, encode_png, keyframe, read_clip};

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
                let image =
                    keyframe(&scene.title, &scene.description, position, 64, 36).expect("renders");
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

    fn list_scenes(&mut self, cursor: Option<&str>, limit: u32) -> Result<Page<Scene>, StageError> {
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

/// The frame count, frame rate and size of an MP4 clip.
fn video(bytes: &[u8]) -> (u32, u32, (u32, u32)) {
    let clip = read_clip(bytes).expect("an H.264 MP4");
    assert_eq!(clip.codec(), vidpipe_render::Codec::H264);
    (clip.frames(), clip.fps(), clip.size())
}

#[test]
fn clips_are_av1_when_asked() {
    let mut host = FakeHost::with_scenes(2, 500);
    run(&mut host, &owned(&[("codec", "av1")])).expect("the stage succeeds");
    let clip = read_clip(&host.files["scene-001.mp4"]).expect("an AV1 MP4");
    assert_eq!(clip.codec(), vidpipe_render::Codec::Av1);
    assert_eq!((clip.frames(), clip.fps(), clip.size()), (6, 12, (64, 36)));
    let first = host.files.clone();
    run(&mut host, &owned(&[("codec", "av1")])).expect("again");
    assert!(host.files == first, "AV1 encoding is deterministic too");
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
fn every_scene_gets_an_mp4_clip_and_a_clip_row() {
    let mut host = FakeHost::with_scenes(3, 500);
    let summary = run(&mut host, &[]).expect("the stage succeeds");
    assert_eq!(summary, "3 clips, 18 frames at 12 fps, 1.5 s total");
    for index in 0..3 {
        let bytes = &host.files[&format!("scene-{index:03}.mp4")];
        assert_eq!(video(bytes), (6, 12, (64, 36)));
    }
    assert_eq!(host.created, 3);
    let (scene, row) = &host.clips["clip-2"];
    assert_eq!(scene, "scene-1");
    assert_eq!(
        row,
        &ClipRow {
            video: "scene-001.mp4".to_owned(),
            duration_ms: 500,
            frame_rate: 12
        }
    );
    assert_eq!(host.progress, [(1, 3), (2, 3), (3, 3)]);
}

#[test]
fn a_lower_qp_gives_a_bigger_clip_of_the_same_frames() {
    let mut host = FakeHost::with_scenes(1, 1_000);
    run(&mut host, &owned(&[("qp", "40")])).expect("the stage succeeds");
    let coarse = host.files["scene-000.mp4"].clone();
    run(&mut host, &owned(&[("qp", "10")])).expect("the stage succeeds");
    let fine = &host.files["scene-000.mp4"];
    assert!(
        fine.len() > coarse.len() * 2,
        "{} vs {}",
        fine.len(),
        coarse.len()
    );
    assert_eq!(video(fine), video(&coarse));
}

#[test]
fn keyframes_of_a_size_h264_cannot_take_are_invalid_input_naming_the_scene() {
    let mut host = FakeHost::with_scenes(2, 500);
    let odd = Image::new(65, 36).expect("an image");
    let mut bytes = Vec::new();
    encode_png(&odd, &mut bytes).expect("encodes");
    for end in ["start", "end"] {
        host.files
            .insert(format!("scene-001-{end}.png"), bytes.clone());
    }
    let error = run(&mut host, &[]).expect_err("refused");
    assert_eq!(error.code, ErrorCode::InvalidInput);
    assert!(error.message.starts_with("scene 1: "), "{}", error.message);
    assert!(
        error.message.contains("even sides, not 65x36"),
        "{}",
        error.message
    );
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
    let mut host = FakeHost::with_scenes(1, 12_000);
    // Long and at the finest quantiser, so the clip is bigger than a chunk.
    run(&mut host, &owned(&[("fps", "30"), ("qp", "0")])).expect("the stage succeeds");
    let clip = &host.files["scene-000.mp4"];
    assert!(clip.len() > MAX_CHUNK_BYTES, "{} bytes", clip.len());
    assert!(host.chunks.iter().all(|&len| len <= MAX_CHUNK_BYTES));
    assert_eq!(host.chunks.iter().sum::<usize>(), clip.len());
    assert_eq!(video(clip).0, 360);
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
        "scene 0: writing clip/scene-000.mp4: project quota reached"
    );
}
