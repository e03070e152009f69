use std::collections::BTreeMap;

use vidpipe_render::{Codec, Motion, Mp4Encoder, frame, keyframe, read_clip};

use super::*;

/// An in-memory host holding a project of rendered keyframes and clips.
#[derive(Default)]
struct FakeHost {
    scenes: Vec<Scene>,
    keyframes: Vec<Keyframe>,
    clips: Vec<Clip>,
    files: BTreeMap<(&'static str, String), Vec<u8>>,
    published: BTreeMap<String, Vec<u8>>,
    chunks: Vec<usize>,
    fail_writes: bool,
    progress: Vec<(u64, u64)>,
}

/// Writers are the name and the bytes so far.
type FakeWriter = (String, Vec<u8>);

impl FakeHost {
    /// `count` scenes of 64x36 keyframes, each with a clip of `frames[i]` frames at 12 fps.
    fn with_scenes(frames: &[u32]) -> Self {
        let parts: Vec<Vec<u32>> = frames.iter().map(|&count| vec![count]).collect();
        Self::with_parts(&parts)
    }

    /// Scenes of 64x36 keyframes, scene `i` with a clip cut into `parts[i].len()` parts, part
    /// `k` of `parts[i][k]` frames at 12 fps (one part is a whole clip, `scene-NNN.mp4`).
    fn with_parts(parts: &[Vec<u32>]) -> Self {
        let mut host = Self::default();
        for (index, frames) in (0u32..).zip(parts) {
            let scene = Scene {
                id: format!("s{index}"),
                index,
                title: format!("Scene {index}"),
                duration_ms: frames.iter().sum::<u32>() * 1000 / 12,
            };
            let mut images = Vec::new();
            for (position, label) in [(Position::Start, "start"), (Position::End, "end")] {
                let image = keyframe(&scene.title, "sea", position, 64, 36).expect("kf");
                let mut bytes = Vec::new();
                encode_png(&image, &mut bytes).expect("png");
                let name = format!("scene-{index:03}-{label}.png");
                host.files.insert(("keyframe", name.clone()), bytes);
                host.keyframes.push(Keyframe {
                    scene_id: scene.id.clone(),
                    position,
                    kind: ArtifactKind::Keyframe,
                    name,
                });
                images.push(image);
            }
            let count = u32::try_from(frames.len()).expect("a few parts");
            for (part, &length) in (0u32..).zip(frames) {
                let name = part_name(index, part, count);
                host.files
                    .insert(("clip", name.clone()), clip(&images[0], &images[1], length));
                host.clips.push(Clip {
                    scene_id: scene.id.clone(),
                    part: Part { index: part, count },
                    kind: ArtifactKind::Clip,
                    name,
                    frame_rate: 12,
                });
            }
            host.scenes.push(scene);
        }
        host
    }

    fn output(&self, name: &str) -> &[u8] {
        self.published.get(name).map_or(&[], Vec::as_slice)
    }
}

/// The clips stage's name for part `part` of `count` of scene `scene`'s clip.
fn part_name(scene: u32, part: u32, count: u32) -> String {
    if count == 1 {
        format!("scene-{scene:03}.mp4")
    } else {
        format!("scene-{scene:03}-part-{}-of-{count}.mp4", part + 1)
    }
}

fn clip(start: &Image, end: &Image, frames: u32) -> Vec<u8> {
    clip_at(start, end, frames, 12, 28)
}

fn clip_at(start: &Image, end: &Image, frames: u32, fps: u32, qp: u8) -> Vec<u8> {
    clip_in(Codec::H264, start, end, frames, (fps, qp))
}

fn clip_in(codec: Codec, start: &Image, end: &Image, frames: u32, (fps, qp): (u32, u8)) -> Vec<u8> {
    let (w, h) = (start.width(), start.height());
    let mut encoder = Mp4Encoder::with_codec(codec, w, h, fps, qp).expect("valid");
    for i in 0..frames {
        let t = i as f32 / frames.max(2) as f32;
        let image = frame(start, end, t, &Motion::default()).expect("frame");
        encoder.push(&image).expect("fits");
    }
    encoder.finish().expect("complete")
}

fn page<T: Clone>(items: &[T], cursor: Option<&str>, limit: u32) -> Page<T> {
    Page::of_slice(items, cursor, limit.min(2) as usize)
}

fn folder(kind: ArtifactKind) -> &'static str {
    kind.as_str()
}

impl Host for FakeHost {
    type Writer = FakeWriter;

    fn project_name(&mut self) -> Result<String, StageError> {
        Ok("Test project".to_owned())
    }

    fn list_scenes(&mut self, cursor: Option<&str>, limit: u32) -> Result<Page<Scene>, StageError> {
        Ok(page(&self.scenes, cursor, limit))
    }

    fn list_keyframes(
        &mut self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Keyframe>, StageError> {
        Ok(page(&self.keyframes, cursor, limit))
    }

    fn list_clip_parts(
        &mut self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Clip>, StageError> {
        Ok(page(&self.clips, cursor, limit))
    }

    fn read(
        &mut self,
        kind: ArtifactKind,
        name: &str,
        offset: u64,
        length: u32,
    ) -> Result<Vec<u8>, StageError> {
        let bytes = self
            .files
            .get(&(folder(kind), name.to_owned()))
            .ok_or_else(|| StageError::new(ErrorCode::NotFound, format!("no {name}")))?;
        let start = (offset as usize).min(bytes.len());
        // Short reads, as a host may give.
        let end = (start + (length as usize).min(1000)).min(bytes.len());
        Ok(bytes[start..end].to_vec())
    }

    fn create_output(&mut self, name: &str) -> Result<FakeWriter, StageError> {
        Ok((name.to_owned(), Vec::new()))
    }

    fn write(&mut self, writer: &mut FakeWriter, chunk: &[u8]) -> Result<(), StageError> {
        if self.fail_writes {
            return Err(StageError::new(ErrorCode::LimitExceeded, "quota reached"));
        }
        self.chunks.push(chunk.len());
        writer.1.extend_from_slice(chunk);
        Ok(())
    }

    fn finish(&mut self, (name, bytes): FakeWriter) -> Result<Published, StageError> {
        let published = Published {
            size: bytes.len() as u64,
            sha256: format!("sha-of-{}-bytes", bytes.len()),
        };
        self.published.insert(name, bytes);
        Ok(published)
    }

    fn log(&mut self, _level: Level, _message: &str) {}

    fn progress(&mut self, done: u64, total: u64, _message: &str) {
        self.progress.push((done, total));
    }
}

/// Every coded picture of an MP4, in order.
fn pictures_of(bytes: &[u8]) -> Vec<(Vec<u8>, bool)> {
    read_clip(bytes)
        .expect("an H.264 MP4")
        .pictures()
        .map(|(data, sync)| (data.to_vec(), sync))
        .collect()
}

fn run_on(host: &mut FakeHost, config: &[(&str, &str)]) -> Result<String, StageError> {
    run(host, &vidpipe_stage_kit::config::owned(config))
}

#[test]
fn the_video_holds_every_clip_picture_in_scene_order_without_re_encoding() {
    let mut host = FakeHost::with_scenes(&[5, 1, 7]);
    let summary = run_on(&mut host, &[]).expect("assembles");
    let mut expected = Vec::new();
    for index in 0..3 {
        expected.extend(pictures_of(
            &host.files[&("clip", format!("scene-{index:03}.mp4"))],
        ));
    }
    assert_eq!(pictures_of(host.output(VIDEO_NAME)), expected);
    assert!(
        summary.starts_with("output/final.mp4 (13 frames of 64x36, 1.0 s,")
            && summary.ends_with(
                "output/final.vtt, output/poster.png, output/contact-sheet.png, \
                 output/manifest.json"
            ),
        "{summary}"
    );
    assert_eq!(host.progress.last(), Some(&(5, 5)));
    // No write is empty or larger than a chunk.
    assert!(host.chunks.iter().all(|&n| n > 0 && n <= WRITE_CHUNK_BYTES));
}

#[test]
fn the_contact_sheet_and_manifest_describe_the_video() {
    let mut host = FakeHost::with_scenes(&[3, 3]);
    run_on(&mut host, &[("thumbnail-width", "64")]).expect("assembles");
    let sheet = decode_png(host.output(SHEET_NAME)).expect("a PNG");
    assert!(sheet.width() > 128 && sheet.height() > 2 * 36, "{sheet:?}");
    let manifest: serde_json::Value =
        serde_json::from_slice(host.output(MANIFEST_NAME)).expect("JSON");
    assert_eq!(manifest["project"], "Test project");
    assert_eq!(manifest["video"]["frames"], 6);
    assert_eq!(manifest["video"]["duration_ms"], 500);
    assert_eq!(manifest["video"]["width"], 64);
    assert_eq!(manifest["video"]["artifact"], "output/final.mp4");
    assert_eq!(manifest["video"]["codec"], "h264");
    assert_eq!(manifest["video"]["frame_rate"], 12);
    assert_eq!(
        manifest["video"]["bytes"],
        host.output(VIDEO_NAME).len() as u64
    );
    assert_eq!(manifest["contact_sheet"]["width"], sheet.width());
    assert_eq!(
        manifest["scenes"][1]["clip"]["artifacts"],
        serde_json::json!(["clip/scene-001.mp4"])
    );
    assert_eq!(manifest["scenes"][1]["clip"]["frames"], 3);
    assert_eq!(manifest["scenes"][1]["clip"]["frame_rate"], 12);
    assert_eq!(
        manifest["scenes"][0]["keyframes"]["end"],
        "keyframe/scene-000-end.png"
    );
}

#[test]
fn the_same_project_assembles_to_the_same_bytes() {
    let mut a = FakeHost::with_scenes(&[4, 2]);
    let mut b = FakeHost::with_scenes(&[4, 2]);
    run_on(&mut a, &[]).expect("assembles");
    run_on(&mut b, &[]).expect("assembles");
    assert_eq!(a.published, b.published);
}

#[test]
fn a_scene_without_a_clip_fails_before_anything_is_written() {
    let mut host = FakeHost::with_scenes(&[2, 2]);
    host.clips.pop();
    let error = run_on(&mut host, &[]).expect_err("no clip");
    assert_eq!(error.code, ErrorCode::InvalidInput);
    assert!(error.message.contains("scene 1"), "{error}");
    assert!(error.message.contains("clips stage"), "{error}");
    assert!(host.published.is_empty());

    let mut host = FakeHost::with_scenes(&[2]);
    host.keyframes.pop();
    let error = run_on(&mut host, &[]).expect_err("no end keyframe");
    assert!(error.message.contains("keyframes stage"), "{error}");

    let mut host = FakeHost::default();
    let error = run_on(&mut host, &[]).expect_err("no scenes");
    assert!(error.message.contains("no scenes"), "{error}");
}

#[test]
fn clips_that_cannot_be_joined_or_are_corrupt_are_refused_naming_the_scene() {
    let small = Image::new(32, 18).expect("valid");
    let start = keyframe("Scene 1", "sea", Position::Start, 64, 36).expect("kf");
    for (bytes, says) in [
        (
            clip(&small, &small, 1),
            "is 32x18, not 64x36 like the first clip",
        ),
        (
            clip_at(&start, &start, 2, 24, 28),
            "is 24 fps, not 12 like the first clip",
        ),
        (
            clip_at(&start, &start, 2, 12, 20),
            "encoded with other settings",
        ),
        (
            clip_in(Codec::Av1, &start, &start, 2, (12, 100)),
            "is AV1, not H.264",
        ),
        (
            b"not an mp4".to_vec(),
            "clip/scene-001.mp4 is not an H.264 or AV1 MP4",
        ),
    ] {
        let mut host = FakeHost::with_scenes(&[2, 2]);
        host.files
            .insert(("clip", "scene-001.mp4".to_owned()), bytes);
        let error = run_on(&mut host, &[]).expect_err("refused");
        assert_eq!(error.code, ErrorCode::InvalidInput);
        assert!(error.message.contains("scene 1"), "{error}");
        assert!(error.message.contains(says), "{error}");
        assert!(
            error.message.contains("run the clips stage again"),
            "{error}"
        );
        assert!(host.published.is_empty(), "nothing is written");
    }

    // A clip cut short: its pictures run past the end of the file.
    let mut host = FakeHost::with_scenes(&[3, 2]);
    let key = ("clip", "scene-000.mp4".to_owned());
    let clip = host.files.get_mut(&key).expect("exists");
    clip.truncate(clip.len() - 40);
    let error = run_on(&mut host, &[]).expect_err("corrupt");
    assert_eq!(error.code, ErrorCode::InvalidInput);
    assert!(error.message.contains("clip/scene-000.mp4"), "{error}");
    assert!(host.published.is_empty());
}

#[test]
fn a_failing_write_fails_the_stage_with_the_hosts_error() {
    let mut host = FakeHost::with_scenes(&[2]);
    host.fail_writes = true;
    let error = run_on(&mut host, &[]).expect_err("quota");
    assert_eq!(error.code, ErrorCode::LimitExceeded);
    assert!(error.message.contains("output/final.mp4"), "{error}");
    assert!(error.message.contains("quota reached"), "{error}");
}

#[test]
fn a_missing_clip_file_reports_the_hosts_not_found() {
    let mut host = FakeHost::with_scenes(&[2]);
    host.files.remove(&("clip", "scene-000.mp4".to_owned()));
    let error = run_on(&mut host, &[]).expect_err("missing");
    assert_eq!(error.code, ErrorCode::NotFound);
    assert!(
        error
            .message
            .starts_with("scene 0: reading clip/scene-000.mp4"),
        "{error}"
    );
}

#[test]
fn unknown_or_out_of_range_config_is_refused() {
    let mut host = FakeHost::with_scenes(&[1]);
    assert!(run_on(&mut host, &[("fps", "12")]).is_err());
    // The quantiser is the clips stage's: assembling copies the clips' pictures.
    assert!(run_on(&mut host, &[("qp", "28")]).is_err());
    assert!(run_on(&mut host, &[("thumbnail-width", "8")]).is_err());
    assert!(host.published.is_empty());
}

#[test]
fn the_duration_sums_each_clip_at_its_own_rate() {
    let work = |frames: u32, frame_rate: u32| Work {
        scene: Scene {
            id: String::new(),
            index: 0,
            title: String::new(),
            duration_ms: 0,
        },
        start: Keyframe {
            scene_id: String::new(),
            position: Position::Start,
            kind: ArtifactKind::Keyframe,
            name: String::new(),
        },
        end: Keyframe {
            scene_id: String::new(),
            position: Position::End,
            kind: ArtifactKind::Keyframe,
            name: String::new(),
        },
        clips: Vec::new(),
        frames,
        frame_rate,
    };
    // 1/3 s three times is exactly 1 s, not 999 ms.
    assert_eq!(
        exact_duration_ms(&[work(1, 3), work(1, 3), work(1, 3)]),
        1000
    );
    assert_eq!(exact_duration_ms(&[work(48, 12), work(25, 25)]), 5000);
    // Many distinct rates near the host's limit: no overflow, a sensible answer.
    let odd: Vec<Work> = (950..1000).map(|fps| work(fps, fps)).collect();
    assert_eq!(exact_duration_ms(&odd), 50_000);
}

/// The top-level boxes of an MP4, in order.
fn boxes(mp4: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= mp4.len() {
        let size = u32::from_be_bytes([mp4[at], mp4[at + 1], mp4[at + 2], mp4[at + 3]]) as usize;
        out.push(String::from_utf8_lossy(&mp4[at + 4..at + 8]).into_owned());
        if size < 8 {
            break;
        }
        at += size;
    }
    out
}

#[test]
fn the_mp4_captions_and_poster_are_written_beside_the_video() {
    let mut host = FakeHost::with_scenes(&[5, 1, 7]);
    run_on(&mut host, &[]).expect("assembles");
    let mp4 = host.output(crate::MP4_NAME).to_vec();
    let order = boxes(&mp4);
    let moov = order.iter().position(|b| b == "moov").expect("a moov box");
    let mdat = order.iter().position(|b| b == "mdat").expect("an mdat box");
    assert_eq!(order[0], "ftyp");
    assert!(moov < mdat, "fast start: {order:?}");
    let vtt = String::from_utf8(host.output(crate::CAPTIONS_NAME).to_vec()).expect("text");
    assert!(vtt.starts_with("WEBVTT\n"), "{vtt}");
    assert_eq!(vtt.matches(" --> ").count(), 3, "{vtt}");
    let first = &host.files[&("keyframe", "scene-000-start.png".to_owned())];
    assert_eq!(host.output(crate::POSTER_NAME), &first[..]);
    let manifest: serde_json::Value =
        serde_json::from_slice(host.output(MANIFEST_NAME)).expect("json");
    assert_eq!(manifest["video"]["frames"], 13);
    assert_eq!(manifest["video"]["bytes"], mp4.len());
    assert_eq!(manifest["captions"]["cues"], 3);
    assert_eq!(manifest["captions"]["duration_ms"], 1083);
}

#[test]
fn av1_clips_join_into_an_av1_video() {
    let mut host = FakeHost::with_scenes(&[3, 2]);
    for (index, frames) in [(0u32, 3u32), (1, 2)] {
        let start =
            keyframe(&format!("Scene {index}"), "sea", Position::Start, 64, 36).expect("kf");
        let bytes = clip_in(Codec::Av1, &start, &start, frames, (12, 100));
        host.files
            .insert(("clip", format!("scene-{index:03}.mp4")), bytes);
    }
    run_on(&mut host, &[]).expect("assembles");
    let video = read_clip(host.output(VIDEO_NAME)).expect("an MP4");
    assert_eq!((video.codec(), video.frames()), (Codec::Av1, 5));
    let manifest: serde_json::Value =
        serde_json::from_slice(host.output(MANIFEST_NAME)).expect("json");
    assert_eq!(manifest["video"]["codec"], "av1");
    assert_eq!(manifest["video"]["profile"], "main");
}

/// The clip artifacts of the project's clip rows, in the order the host lists them.
fn clip_names(host: &FakeHost) -> Vec<String> {
    host.clips.iter().map(|clip| clip.name.clone()).collect()
}

#[test]
fn a_scene_cut_into_parts_joins_them_in_order_into_the_video_of_one_clip() {
    let mut whole = FakeHost::with_parts(&[vec![2], vec![6]]);
    let mut parted = FakeHost::with_parts(&[vec![2], vec![3, 1, 2]]);
    for host in [&mut whole, &mut parted] {
        let summary = run_on(host, &[]).expect("assembles");
        // The same frames and length (the parts are coded apart, so the bytes differ).
        assert!(
            summary.starts_with("output/final.mp4 (8 frames of 64x36, 0.6 s, "),
            "{summary}"
        );
    }
    let expected: Vec<_> = clip_names(&parted)
        .iter()
        .flat_map(|name| pictures_of(&parted.files[&("clip", name.clone())]))
        .collect();
    assert_eq!(expected.len(), 8);
    assert_eq!(pictures_of(parted.output(VIDEO_NAME)), expected);
    assert_eq!(
        parted.output(crate::CAPTIONS_NAME),
        whole.output(crate::CAPTIONS_NAME),
        "a cue per scene, timed by all of its parts"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(parted.output(MANIFEST_NAME)).expect("JSON");
    assert_eq!(manifest["video"]["frames"], 8);
    assert_eq!(manifest["captions"]["cues"], 2);
    assert_eq!(
        manifest["scenes"][1]["clip"],
        serde_json::json!({
            "artifacts": [
                "clip/scene-001-part-1-of-3.mp4",
                "clip/scene-001-part-2-of-3.mp4",
                "clip/scene-001-part-3-of-3.mp4",
            ],
            "frames": 6,
            "frame_rate": 12,
        })
    );
}

#[test]
fn the_parts_of_a_scene_are_joined_in_part_order_whatever_order_they_are_listed_in() {
    let mut host = FakeHost::with_parts(&[vec![1, 2, 3]]);
    let in_order: Vec<_> = clip_names(&host)
        .iter()
        .flat_map(|name| pictures_of(&host.files[&("clip", name.clone())]))
        .collect();
    host.clips.reverse();
    run_on(&mut host, &[]).expect("assembles");
    assert_eq!(pictures_of(host.output(VIDEO_NAME)), in_order);
    let manifest: serde_json::Value =
        serde_json::from_slice(host.output(MANIFEST_NAME)).expect("JSON");
    assert_eq!(
        manifest["scenes"][0]["clip"]["artifacts"][0],
        "clip/scene-000-part-1-of-3.mp4"
    );
}

#[test]
fn a_scene_missing_a_part_or_mixing_two_cuts_fails_naming_the_scene_and_its_parts() {
    let refused = |host: &mut FakeHost, says: &str| {
        let error = run_on(host, &[]).expect_err("refused");
        assert_eq!(error.code, ErrorCode::InvalidInput);
        assert!(
            error
                .message
                .starts_with("scene 1 (`Scene 1`) has the video clip parts "),
            "{error}"
        );
        assert!(error.message.contains(says), "{error}");
        assert!(
            error.message.ends_with("run the clips stage again"),
            "{error}"
        );
        assert!(host.published.is_empty(), "nothing is written");
    };

    // Its second part is missing.
    let mut host = FakeHost::with_parts(&[vec![2], vec![2, 2, 2]]);
    host.clips.remove(2);
    refused(&mut host, "parts 1/3, 3/3, not one clip");

    // Its last part is missing.
    let mut host = FakeHost::with_parts(&[vec![2], vec![2, 2, 2]]);
    host.clips.pop();
    refused(&mut host, "parts 1/3, 2/3, not");

    // A part of a cut into 2 beside the parts of a cut into 3.
    let mut host = FakeHost::with_parts(&[vec![2], vec![2, 2, 2]]);
    host.clips[2].part = Part { index: 1, count: 2 };
    refused(&mut host, "parts 1/3, 2/2, 3/3, not");

    // A part of 2 alone, and a whole clip beside a part.
    let mut host = FakeHost::with_parts(&[vec![2], vec![2, 2]]);
    host.clips.pop();
    refused(&mut host, "parts 1/2, not");
    let mut host = FakeHost::with_parts(&[vec![2], vec![2]]);
    let mut extra = host.clips[1].clone();
    extra.part = Part { index: 1, count: 2 };
    host.clips.push(extra);
    refused(&mut host, "parts 1/1, 2/2, not");

    // Two whole clips.
    let mut host = FakeHost::with_parts(&[vec![2], vec![2]]);
    host.clips.push(host.clips[1].clone());
    refused(&mut host, "parts 1/1, 1/1, not");
}

#[test]
fn a_part_that_cannot_follow_the_first_clip_is_refused_naming_its_part_and_scene() {
    let start = keyframe("Scene 1", "sea", Position::Start, 64, 36).expect("kf");
    let mut host = FakeHost::with_parts(&[vec![2], vec![2, 2]]);
    host.files.insert(
        ("clip", "scene-001-part-2-of-2.mp4".to_owned()),
        clip_at(&start, &start, 2, 24, 28),
    );
    let error = run_on(&mut host, &[]).expect_err("refused");
    assert_eq!(error.code, ErrorCode::InvalidInput);
    assert!(
        error
            .message
            .starts_with("part 2/2 of the clip of scene 1 is 24 fps, not 12 like the first clip"),
        "{error}"
    );
    assert!(host.published.is_empty());
}
