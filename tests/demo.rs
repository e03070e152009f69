//! The demo pipeline through the real binary: script → scenes → keyframe PNGs → H.264 MP4 clips
//! → final video, captions, poster, contact sheet and manifest, every stage a sandboxed plugin.
//! The images are decoded by `zune-png`, a decoder independent of the `png` crate the stages
//! encode with; the videos are read and decoded by ffmpeg, and compared with frames rendered
//! natively by `vidpipe-render`.

// A failed unwrap is a failed test, with its location; that is what tests want.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::video::{
    clip_part, ffprobe, native_clip, packet_hashes, part_frames, probe, scene_frames, y_psnr,
};
use common::{TestHome, assert_consistent, normalized_state};
use sha2::Digest;
use zune_core::bytestream::ZCursor;
use zune_png::PngDecoder;

const DEMO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../guest-example/examples/demo.toml"
);
const SCRIPT: &str = include_str!("../guest-example/examples/lighthouse.txt");
const FPS: u64 = 12;

/// Decodes the still PNG at `path` with `zune-png`, checking that it is a whole 8-bit RGB
/// picture, and returns its width and height.
fn decode(path: &Path) -> (usize, usize) {
    let bytes = std::fs::read(path).unwrap();
    let mut decoder = PngDecoder::new(ZCursor::new(&bytes));
    decoder
        .decode_headers()
        .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    let (width, height) = decoder.dimensions().unwrap();
    assert!(!decoder.is_animated(), "{} is a still", path.display());
    let pixels = decoder.decode_raw().unwrap();
    assert_eq!(pixels.len(), width * height * 3, "{}", path.display());
    (width, height)
}

#[test]
fn the_demo_pipeline_turns_the_example_script_into_a_video_that_independent_decoders_read() {
    let home = TestHome::new();
    let id = home.project("Lighthouse", SCRIPT);
    let run = home
        .vidpipe(&["run", DEMO, "--project", &id])
        .expect_code(0);
    assert!(run.stdout.contains("4 stage(s) ran"), "{}", run.stdout);
    // Every artifact row names a file with its size and SHA-256.
    assert_consistent(&home);

    let detail = home.show(&id);
    let scenes = detail["scenes"].as_array().unwrap();
    assert_eq!(scenes.len(), 5);
    let keyframes = detail["keyframes"].as_array().unwrap();
    assert_eq!(keyframes.len(), 10, "a start and an end keyframe per scene");
    let clips = detail["video_clips"].as_array().unwrap();
    assert_eq!(clips.len(), 10, "a clip per part, two parts per scene");
    let dir = home.project_dir(&id);

    for k in keyframes {
        let path = dir
            .join("keyframes")
            .join(k["image"]["name"].as_str().unwrap());
        assert_eq!(decode(&path), (640, 360), "{}", path.display());
    }
    let mut expected_frames = 0;
    let mut expected_ms = 0;
    let mut clip_pictures = Vec::new();
    // Listed by scene, then part: the order assemble joins them in.
    let order: Vec<(u64, (u32, u32))> = clips
        .iter()
        .map(|c| {
            let scene = scenes.iter().find(|s| s["id"] == c["scene_id"]).unwrap();
            (scene["index"].as_u64().unwrap(), clip_part(c))
        })
        .collect();
    let want: Vec<(u64, (u32, u32))> = (0..5).flat_map(|i| [(i, (0, 2)), (i, (1, 2))]).collect();
    assert_eq!(order, want);
    for c in clips {
        let path = dir.join("clips").join(c["video"]["name"].as_str().unwrap());
        assert!(
            path.extension().is_some_and(|e| e == "mp4"),
            "{}",
            path.display()
        );
        let stream = probe(&path);
        assert_h264_640x360_bt709(&stream);
        let frames: usize = stream["nb_read_frames"].as_str().unwrap().parse().unwrap();
        let scene = scenes.iter().find(|s| s["id"] == c["scene_id"]).unwrap();
        // As the clips stage counts and cuts them: the duration times the rate, rounded, and
        // half of those in each part.
        assert_eq!(
            frames,
            part_frames(scene_frames(scene), clip_part(c)).len(),
            "{stream}"
        );
        let seconds: f64 = stream["duration"].as_str().unwrap().parse().unwrap();
        assert!(
            (seconds - frames as f64 / FPS as f64).abs() < 0.001,
            "{stream}"
        );
        assert_eq!(c["frame_rate"], FPS);
        expected_frames += frames;
        if clip_part(c).0 == 0 {
            expected_ms += scene["duration_ms"].as_u64().unwrap();
        }
        clip_pictures.extend(packet_hashes(&path));
    }
    // The clips stage's encoder gives the same bytes inside the sandbox as built natively, for
    // each part of a scene.
    let scene = &scenes[1];
    for clip in clips.iter().filter(|c| c["scene_id"] == scene["id"]) {
        let sandboxed = std::fs::read(
            dir.join("clips")
                .join(clip["video"]["name"].as_str().unwrap()),
        );
        let native = native_clip(
            &dir,
            scene,
            keyframes,
            vidpipe_render::Codec::H264,
            28,
            clip_part(clip),
        );
        assert!(
            sandboxed.unwrap() == native,
            "the sandboxed clip {} differs from the same encoder run natively",
            clip["video"]["name"]
        );
    }

    // The final video: H.264 High, BT.709 limited range, every frame decoded, the scenes'
    // total length; small; and made of the clips' very pictures (joined, not re-encoded).
    let video = dir.join("output/final.mp4");
    let stream = probe(&video);
    assert_h264_640x360_bt709(&stream);
    assert_eq!(stream["nb_read_frames"], expected_frames.to_string());
    let duration: f64 = stream["duration"].as_str().unwrap().parse().unwrap();
    assert!(
        (duration - expected_ms as f64 / 1000.0).abs() <= 1.0 / FPS as f64,
        "ffprobe says the MP4 lasts {duration} s for {expected_ms} ms of scenes"
    );
    assert_eq!(
        packet_hashes(&video),
        clip_pictures,
        "the clips' pictures, copied"
    );
    let video_bytes = std::fs::read(&video).unwrap();
    assert!(
        video_bytes.len() <= 1_000_000,
        "{} bytes",
        video_bytes.len()
    );
    // Fast start: the index (moov) comes before the pictures (mdat).
    let find = |name: &[u8]| video_bytes.windows(4).position(|w| w == name).unwrap();
    assert!(find(b"moov") < find(b"mdat"));

    // What a viewer sees is what the renderer drew: the decoded video against the frames
    // `vidpipe-render` draws natively from the same keyframes.
    let psnr = y_psnr(&dir, &video, scenes, keyframes);
    println!("Y-PSNR of the demo video against the natively rendered frames: {psnr:.2} dB");
    assert!(psnr >= 40.0, "Y-PSNR {psnr:.2} dB");

    // The captions: WebVTT that ffmpeg parses, a cue per scene, timed by the scenes.
    let vtt_path = video.with_file_name("final.vtt");
    let vtt = std::fs::read_to_string(&vtt_path).unwrap();
    assert!(vtt.starts_with("WEBVTT\n"), "{vtt}");
    let cues = ffprobe(
        &[
            "-show_entries",
            "packet=pts_time,duration_time",
            "-of",
            "csv=p=0",
        ],
        &vtt_path,
    );
    // One `start,length,` line per packet (and blank lines between them).
    let cues: Vec<(f64, f64)> = cues
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut fields = line.split(',').map(|f| f.parse::<f64>().unwrap());
            (fields.next().unwrap(), fields.next().unwrap())
        })
        .collect();
    assert_eq!(cues.len(), 5, "{vtt}");
    let mut at = 0.0;
    for (cue, scene) in cues.iter().zip(scenes) {
        assert!(
            (cue.0 - at).abs() < 0.001,
            "{cue:?} starts where the last ended"
        );
        let seconds = scene["duration_ms"].as_f64().unwrap() / 1000.0;
        assert!(
            (cue.1 - seconds).abs() <= 1.0 / FPS as f64,
            "{cue:?} for {seconds} s"
        );
        assert!(vtt.contains(scene["title"].as_str().unwrap()), "{vtt}");
        at += cue.1;
    }
    let poster = video.with_file_name("poster.png");
    assert_eq!(decode(&poster), (640, 360));

    // The contact sheet: a still PNG with a row per scene.
    let sheet = decode(&dir.join("output/contact-sheet.png"));
    assert!(sheet.0 >= 640 && sheet.1 >= 5 * 180, "{sheet:?}");

    // The manifest agrees with the files.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("output/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["video"]["artifact"], "output/final.mp4");
    assert_eq!(manifest["video"]["frames"], expected_frames);
    assert_eq!(manifest["video"]["duration_ms"], expected_ms);
    assert_eq!(manifest["video"]["bytes"], video_bytes.len());
    assert_eq!(
        manifest["video"]["sha256"],
        hex::encode(sha2::Sha256::digest(&video_bytes))
    );
    assert_eq!(manifest["captions"]["cues"], 5);
    assert_eq!(manifest["captions"]["duration_ms"], expected_ms);
    assert_eq!(manifest["captions"]["bytes"], vtt.len());
    let poster_bytes = std::fs::read(&poster).unwrap();
    assert_eq!(
        manifest["poster"]["sha256"],
        hex::encode(sha2::Sha256::digest(&poster_bytes))
    );
    assert_eq!(manifest["contact_sheet"]["width"], sheet.0);
    assert_eq!(manifest["scenes"].as_array().unwrap().len(), 5);
    // Each scene's clip is its two parts, named in the order they were joined.
    let index = scenes[1]["index"].as_u64().unwrap();
    assert_eq!(
        manifest["scenes"][1]["clip"]["artifacts"],
        serde_json::json!([
            format!("clip/scene-{index:03}-part-1-of-2.mp4"),
            format!("clip/scene-{index:03}-part-2-of-2.mp4"),
        ])
    );
    assert_eq!(
        manifest["scenes"][1]["clip"]["frames"],
        scene_frames(&scenes[1])
    );

    // Same script, same configuration: the same bytes, the video included.
    let again = home.project("Lighthouse", SCRIPT);
    home.vidpipe(&["run", DEMO, "--project", &again])
        .expect_code(0);
    assert_eq!(
        normalized_state(&home, &again),
        normalized_state(&home, &id)
    );
}

#[test]
fn the_demo_command_prints_where_the_video_is_and_reuses_its_work_the_second_time() {
    let home = TestHome::new();
    let first = home.vidpipe(&["demo"]).expect_code(0);
    let video_line = first
        .stdout
        .lines()
        .find(|line| line.trim_start().starts_with("video"))
        .unwrap_or_else(|| panic!("no video line in:\n{}", first.stdout));
    let path = video_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no path in `{video_line}`"));
    assert!(Path::new(path).is_file(), "{path} does not exist");
    assert!(
        first.stdout.contains("contact-sheet.png"),
        "{}",
        first.stdout
    );

    let second = home.vidpipe(&["demo"]).expect_code(0);
    assert!(
        second.stdout.contains("0 stage(s) ran, 4 skipped"),
        "{}",
        second.stdout
    );
}

/// H.264 High, 640×360, yuv420p, BT.709 primaries, transfer and matrix, limited range.
fn assert_h264_640x360_bt709(stream: &serde_json::Value) {
    assert_eq!(stream["codec_name"], "h264", "{stream}");
    assert_eq!(stream["profile"], "High", "{stream}");
    assert_eq!(
        (stream["width"].as_u64(), stream["height"].as_u64()),
        (Some(640), Some(360)),
        "{stream}"
    );
    assert_eq!(stream["pix_fmt"], "yuv420p", "{stream}");
    for key in ["color_space", "color_primaries", "color_transfer"] {
        assert_eq!(stream[key], "bt709", "{key}: {stream}");
    }
    assert_eq!(stream["color_range"], "tv", "{stream}");
}
