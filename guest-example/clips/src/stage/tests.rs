use std::collections::BTreeMap;
use vidpipe_render::{Image, Mp4Clip, encode_png, join_clips, keyframe, read_clip};

use super::*;
use vidpipe_stage_kit::config::owned;

/// An in-memory host that pages scenes two at a time and caps reads at `read_cap` bytes. It
/// keeps clip parts as the real host does: a row per (scene, part index) with its count,
/// artifacts deleted when no row names them any more, and a shard with a part refused
/// (`out-of-scope`) any other part and any deletion below its count.
struct FakeHost {
    scenes: Vec<Scene>,
    keyframes: BTreeMap<String, Vec<Keyframe>>,
    files: BTreeMap<String, Vec<u8>>,
    /// Clip rows by (scene id, part index): the part count and the row.
    clips: BTreeMap<(String, u32), (u32, ClipRow)>,
    part: Option<Part>,
    read_cap: u32,
    reads: Vec<u32>,
    /// The artifacts read, in order.
    read_names: Vec<String>,
    chunks: Vec<usize>,
    puts: Vec<(String, Part)>,
    deletes: Vec<(String, u32)>,
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
            part: None,
            read_cap: 4 << 20,
            reads: Vec::new(),
            read_names: Vec::new(),
            chunks: Vec::new(),
            puts: Vec::new(),
            deletes: Vec::new(),
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

    /// The same host as a shard doing part `index` of `count`.
    fn doing(mut self, index: u32, count: u32) -> Self {
        self.part = Some(Part { index, count });
        self
    }

    /// Deletes the file `name` unless a clip row names it, as the host does.
    fn drop_unnamed(&mut self, name: &str) {
        if !self.clips.values().any(|(_, row)| row.video == name) {
            self.files.remove(name);
        }
    }

    /// Each clip row of `scene_id` in part order: (index, count, artifact, duration).
    fn rows(&self, scene_id: &str) -> Vec<(u32, u32, String, u32)> {
        self.clips
            .iter()
            .filter(|((scene, _), _)| scene == scene_id)
            .map(|((_, index), (count, row))| (*index, *count, row.video.clone(), row.duration_ms))
            .collect()
    }

    /// The clip artifacts, by name.
    fn clip_files(&self) -> Vec<&str> {
        self.files
            .keys()
            .map(String::as_str)
            .filter(|name| name.ends_with(".mp4"))
            .collect()
    }
}

impl Host for FakeHost {
    type Writer = (String, Vec<u8>);

    fn part(&mut self) -> Option<Part> {
        self.part
    }

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
        self.read_names.push(name.to_owned());
        let file = self
            .files
            .get(name)
            .ok_or_else(|| StageError::new(ErrorCode::NotFound, name))?;
        let start = (offset as usize).min(file.len());
        let end = (start + length.min(self.read_cap) as usize).min(file.len());
        Ok(file[start..end].to_vec())
    }

    fn put_clip_part(
        &mut self,
        scene_id: &str,
        clip: &ClipRow,
        part: Part,
    ) -> Result<(), StageError> {
        assert!(
            self.files.contains_key(&clip.video),
            "the clip is published"
        );
        assert!(Part::new(part.index, part.count).is_some(), "{part:?}");
        if let Some(own) = self.part
            && own.index != part.index
        {
            return Err(StageError::new(
                ErrorCode::OutOfScope,
                "not this shard's part",
            ));
        }
        self.puts.push((scene_id.to_owned(), part));
        let old = self.clips.insert(
            (scene_id.to_owned(), part.index),
            (part.count, clip.clone()),
        );
        if let Some((_, old)) = old {
            self.drop_unnamed(&old.video);
        }
        Ok(())
    }

    fn delete_clip_parts(&mut self, scene_id: &str, first: u32) -> Result<(), StageError> {
        if let Some(own) = self.part
            && first <= own.index
        {
            return Err(StageError::new(
                ErrorCode::OutOfScope,
                "its own or an earlier sibling shard's part",
            ));
        }
        self.deletes.push((scene_id.to_owned(), first));
        let doomed: Vec<(String, u32)> = self
            .clips
            .keys()
            .filter(|(scene, index)| scene == scene_id && *index >= first)
            .cloned()
            .collect();
        for key in doomed {
            if let Some((_, row)) = self.clips.remove(&key) {
                self.drop_unnamed(&row.video);
            }
        }
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
    assert_eq!(host.puts.len(), 3);
    assert!(host.puts.iter().all(|(_, part)| *part == Part::WHOLE));
    let (count, row) = &host.clips[&("scene-1".to_owned(), 0)];
    assert_eq!(*count, 1);
    assert_eq!(
        row,
        &ClipRow {
            video: "scene-001.mp4".to_owned(),
            duration_ms: 500,
            frame_rate: 12
        }
    );
    // Each scene's parts after the first (none) are deleted, as a whole clip replaces them.
    let deletes: Vec<(&str, u32)> = host.deletes.iter().map(|(s, f)| (s.as_str(), *f)).collect();
    assert_eq!(deletes, [("scene-0", 1), ("scene-1", 1), ("scene-2", 1)]);
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
    assert_eq!(host.clips.len(), 2);
    assert_eq!(host.clips[&("scene-0".to_owned(), 0)].1.frame_rate, 24);
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

/// The clip in the file `name`.
fn clip_of(host: &FakeHost, name: &str) -> Mp4Clip {
    read_clip(&host.files[name]).expect("an MP4")
}

/// A row as [`FakeHost::rows`] gives it.
fn row(index: u32, count: u32, name: &str, duration_ms: u32) -> (u32, u32, String, u32) {
    (index, count, name.to_owned(), duration_ms)
}

#[test]
fn the_parts_of_a_scene_hold_each_of_its_frames_once_in_order() {
    for frames in 1..=40 {
        for count in 1..=vidpipe_stage_kit::MAX_PARTS {
            let mut next = 0;
            for index in 0..count {
                let Some(cut) = clip_part(frames, Part { index, count }) else {
                    assert!(
                        index >= frames,
                        "part {index} of {count} of {frames} frames"
                    );
                    continue;
                };
                assert_eq!((cut.index, cut.count), (index, count.min(frames)));
                let range = part_frames(frames, cut);
                assert_eq!(range.start, next, "no frame skipped or held twice");
                assert!(
                    !range.is_empty(),
                    "part {index} of {count} of {frames} frames"
                );
                next = range.end;
            }
            assert_eq!(next, frames, "{count} parts of {frames} frames");
        }
    }
    assert_eq!(part_frames(24, Part { index: 1, count: 2 }), 12..24);
    assert_eq!(part_frames(10, Part { index: 2, count: 3 }), 6..10);
    assert_eq!(part_frames(48, Part::WHOLE), 0..48);
}

#[test]
fn every_frame_of_a_part_is_rendered_where_it_is_in_the_whole_scene() {
    let frames = 25;
    let times = |part: Part| {
        part_frames(frames, part)
            .map(|i| frame_time(i, frames).to_bits())
            .collect::<Vec<_>>()
    };
    let whole = times(Part::WHOLE);
    for count in 2..=5 {
        let joined: Vec<u32> = (0..count)
            .flat_map(|index| times(Part { index, count }))
            .collect();
        assert_eq!(joined, whole, "{count} parts");
    }
    assert_eq!((frame_time(0, 25), frame_time(24, 25)), (0.0, 1.0));
    assert_eq!(frame_time(0, 1), 0.0);
}

#[test]
fn two_parts_hold_the_frames_of_the_whole_clip_and_join_as_it_does() {
    for codec in ["h264", "av1"] {
        let config = owned(&[("codec", codec)]);
        // 2 s at 12 fps: 24 frames.
        let mut whole = FakeHost::with_scenes(1, 2_000);
        run(&mut whole, &config).expect("the whole clip");
        let whole = clip_of(&whole, "scene-000.mp4");

        let mut host = FakeHost::with_scenes(1, 2_000);
        for index in 0..2 {
            host.part = Some(Part { index, count: 2 });
            let summary = run(&mut host, &config).expect("a part");
            assert_eq!(summary, "1 clip, 12 frames at 12 fps, 1.0 s total");
        }
        let names = ["scene-000-part-1-of-2.mp4", "scene-000-part-2-of-2.mp4"];
        assert_eq!(
            host.rows("scene-0"),
            [row(0, 2, names[0], 1_000), row(1, 2, names[1], 1_000)]
        );
        let parts: Vec<Mp4Clip> = names.iter().map(|name| clip_of(&host, name)).collect();
        for part in &parts {
            assert_eq!(part.frames(), 12, "{codec}");
            assert_eq!(
                part.pictures().next().map(|(_, sync)| sync),
                Some(true),
                "a part starts with a sync picture ({codec})"
            );
            assert_eq!(
                part.mismatch(&whole),
                None,
                "the whole clip's parameter sets"
            );
        }
        let joined = read_clip(&join_clips(&parts).expect("the parts join")).expect("an MP4");
        assert_eq!(
            (joined.codec(), joined.frames(), joined.fps(), joined.size()),
            (whole.codec(), whole.frames(), whole.fps(), whole.size())
        );
    }
}

#[test]
fn a_part_is_named_by_its_number_from_1_and_its_count_and_a_whole_clip_as_before() {
    assert_eq!(artifact_name(2, Part::WHOLE), "scene-002.mp4");
    assert_eq!(
        artifact_name(2, Part { index: 0, count: 2 }),
        "scene-002-part-1-of-2.mp4"
    );
    assert_eq!(
        artifact_name(
            12,
            Part {
                index: 15,
                count: 16
            }
        ),
        "scene-012-part-16-of-16.mp4"
    );
}

#[test]
fn a_scene_of_fewer_frames_than_parts_gets_a_frame_a_part_and_the_shards_past_them_write_nothing() {
    // 250 ms at 12 fps: 3 frames, for 5 parts.
    let mut host = FakeHost::with_scenes(1, 250);
    for index in 0..5 {
        host.part = Some(Part { index, count: 5 });
        let summary = run(&mut host, &[]).expect("the shard succeeds");
        let expected = if index < 3 {
            "1 clip, 1 frame at 12 fps, 0.0 s total"
        } else {
            "no clip, the scene's 3 frames are all in its first 3 parts"
        };
        assert_eq!(summary, expected);
    }
    let rows: Vec<_> = (0..3)
        .map(|i| row(i, 3, &format!("scene-000-part-{}-of-3.mp4", i + 1), 83))
        .collect();
    assert_eq!(host.rows("scene-0"), rows);
    for (_, _, name, _) in &rows {
        assert_eq!(video(&host.files[name]).0, 1);
    }
    assert_eq!(host.clip_files().len(), 3);
    assert_eq!(host.puts.len(), 3, "parts 4/5 and 5/5 put nothing");
    // Only the first part deletes, from the scene's count: the parts of an earlier, longer
    // cut past its frames go.
    assert_eq!(host.deletes, [("scene-0".to_owned(), 3)]);
}

#[test]
fn the_first_part_deletes_the_parts_left_over_from_a_cut_into_more_and_the_others_do_not() {
    // 2 s at 12 fps: 24 frames, cut into 3 parts first.
    let mut host = FakeHost::with_scenes(1, 2_000);
    for index in 0..3 {
        host.part = Some(Part { index, count: 3 });
        run(&mut host, &[]).expect("a part of 3");
    }
    assert_eq!(host.rows("scene-0").len(), 3);
    host.deletes.clear();

    // Then into 2: the second part leaves the leftovers alone.
    host.part = Some(Part { index: 1, count: 2 });
    run(&mut host, &[]).expect("part 2/2");
    assert!(host.deletes.is_empty(), "{:?}", host.deletes);
    assert_eq!(host.rows("scene-0").len(), 3);
    host.part = Some(Part { index: 0, count: 2 });
    run(&mut host, &[]).expect("part 1/2");
    assert_eq!(host.deletes, [("scene-0".to_owned(), 2)]);
    let names = ["scene-000-part-1-of-2.mp4", "scene-000-part-2-of-2.mp4"];
    assert_eq!(
        host.rows("scene-0"),
        [row(0, 2, names[0], 1_000), row(1, 2, names[1], 1_000)]
    );
    assert_eq!(
        host.clip_files(),
        names,
        "the files of the cut into 3 are gone"
    );

    // A run not cut into parts makes the clip whole again.
    host.part = None;
    host.deletes.clear();
    run(&mut host, &[]).expect("the whole clip");
    assert_eq!(host.deletes, [("scene-0".to_owned(), 1)]);
    assert_eq!(host.rows("scene-0"), [row(0, 1, "scene-000.mp4", 2_000)]);
    assert_eq!(host.clip_files(), ["scene-000.mp4"]);
}

#[test]
fn a_part_reads_no_clip_row_so_what_its_siblings_write_does_not_change_it() {
    let mut alone = FakeHost::with_scenes(1, 2_000).doing(1, 2);
    run(&mut alone, &[]).expect("part 2/2 alone");

    // The same shard, with its siblings' parts (of this cut and of an earlier one) written.
    let mut beside = FakeHost::with_scenes(1, 2_000);
    for (index, count) in [(0, 2), (1, 3), (2, 3)] {
        let name = artifact_name(0, Part { index, count });
        beside
            .files
            .insert(name.clone(), b"a sibling's clip".to_vec());
        let clip = ClipRow {
            video: name,
            duration_ms: 500,
            frame_rate: 12,
        };
        beside
            .clips
            .insert(("scene-0".to_owned(), index), (count, clip));
    }
    beside.part = Some(Part { index: 1, count: 2 });
    let summary = run(&mut beside, &[]).expect("part 2/2 beside its siblings");
    assert_eq!(summary, "1 clip, 12 frames at 12 fps, 1.0 s total");
    assert_eq!(beside.puts, alone.puts);
    let name = "scene-000-part-2-of-2.mp4";
    assert_eq!(beside.files[name], alone.files[name]);
    assert!(beside.deletes.is_empty());
    // It read its keyframes, and nothing else.
    assert!(
        beside.read_names.iter().all(|name| name.ends_with(".png")),
        "{:?}",
        beside.read_names
    );
    // Its siblings' rows are theirs.
    assert_eq!(beside.rows("scene-0")[0].2, "scene-000-part-1-of-2.mp4");
    assert_eq!(beside.rows("scene-0")[2].2, "scene-000-part-3-of-3.mp4");
}

#[test]
fn a_part_that_is_no_part_is_refused_before_anything_is_rendered() {
    for (index, count) in [(2, 2), (0, 0), (0, 17)] {
        let mut host = FakeHost::with_scenes(1, 500).doing(index, count);
        let error = run(&mut host, &[]).expect_err("no such part");
        assert_eq!(error.code, ErrorCode::InvalidInput);
        assert!(
            error.message.contains(&format!("part {index} of {count}")),
            "{}",
            error.message
        );
        assert!(host.chunks.is_empty() && host.puts.is_empty());
    }
}

#[test]
fn the_summary_of_a_part_of_several_scenes_counts_those_too_short_to_have_it() {
    // 24 frames, then 1 frame: the second scene has no part 2/2.
    let mut host = FakeHost::with_scenes(2, 2_000);
    host.scenes[1].duration_ms = 50;
    host.part = Some(Part { index: 1, count: 2 });
    let summary = run(&mut host, &[]).expect("the run succeeds");
    assert_eq!(
        summary,
        "1 clip, 12 frames at 12 fps, 1.0 s total; 1 scene too short to have \
         this part"
    );
    host.scenes[0].duration_ms = 50;
    let summary = run(&mut host, &[]).expect("the run succeeds");
    assert_eq!(summary, "no clips; 2 scenes too short to have this part");
}
