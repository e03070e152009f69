//! The demo pipeline through the real binary: script → scenes → keyframe PNGs → APNG clips →
//! final video, contact sheet and manifest, every stage a sandboxed plugin. The results are
//! decoded by `zune-png`, a decoder independent of the `png` crate the stages encode with, and
//! the final video is read by `ffprobe`.

// A failed unwrap is a failed test, with its location; that is what tests want.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

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

/// What an independent decoder finds in a PNG or APNG.
#[derive(Debug, PartialEq)]
struct Decoded {
    width: usize,
    height: usize,
    frames: usize,
    /// The sum of the frame delays, in seconds (0 for a still image).
    seconds: f64,
}

/// Decodes every frame of `path` with `zune-png`, checking that each is a whole 8-bit RGB
/// picture.
fn decode(path: &Path) -> Decoded {
    let bytes = std::fs::read(path).unwrap();
    let mut decoder = PngDecoder::new(ZCursor::new(&bytes));
    decoder
        .decode_headers()
        .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    let (width, height) = decoder.dimensions().unwrap();
    let mut decoded = Decoded {
        width,
        height,
        frames: 0,
        seconds: 0.0,
    };
    let expected_len = width * height * 3;
    if !decoder.is_animated() {
        let pixels = decoder.decode_raw().unwrap();
        assert_eq!(pixels.len(), expected_len, "{}", path.display());
        decoded.frames = 1;
        return decoded;
    }
    while decoder.more_frames() {
        decoder.decode_headers().unwrap();
        let info = decoder.frame_info().unwrap();
        assert_eq!((info.width, info.height), (width, height), "full frames");
        let pixels = decoder
            .decode_raw()
            .unwrap_or_else(|e| panic!("{} frame {}: {e:?}", path.display(), decoded.frames));
        assert_eq!(pixels.len(), expected_len, "{}", path.display());
        let denominator = if info.delay_denom == 0 {
            100.0
        } else {
            f64::from(info.delay_denom)
        };
        decoded.seconds += f64::from(info.delay_num) / denominator;
        decoded.frames += 1;
    }
    decoded
}

/// Runs `ffprobe` with `args` on `path` and returns what it printed; fails the test, saying how
/// to install it, when ffprobe is missing (`.ci/run` installs it).
fn ffprobe(args: &[&str], path: &Path) -> String {
    let output = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run ffprobe ({e}); install ffmpeg, e.g. `apt-get install ffmpeg`")
        });
    assert!(
        output.status.success(),
        "ffprobe failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
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
    assert_eq!(clips.len(), 5, "one clip per scene");
    let dir = home.project_dir(&id);

    for k in keyframes {
        let path = dir
            .join("keyframes")
            .join(k["image"]["name"].as_str().unwrap());
        let decoded = decode(&path);
        assert_eq!(
            (decoded.width, decoded.height, decoded.frames),
            (640, 360, 1),
            "{}",
            path.display()
        );
    }
    let mut expected_frames = 0;
    let mut expected_ms = 0;
    for c in clips {
        let path = dir.join("clips").join(c["video"]["name"].as_str().unwrap());
        let decoded = decode(&path);
        assert_eq!((decoded.width, decoded.height), (640, 360));
        let scene = scenes.iter().find(|s| s["id"] == c["scene_id"]).unwrap();
        let duration_ms = scene["duration_ms"].as_u64().unwrap();
        let expected = (duration_ms * FPS).div_ceil(1000) as usize;
        assert!(
            decoded.frames.abs_diff(expected) <= 1,
            "{} frames for {expected} expected",
            decoded.frames
        );
        assert_eq!(c["frame_rate"], FPS);
        expected_frames += decoded.frames;
        expected_ms += duration_ms;
    }

    // The final video: every clip's frames, in one animation of the scenes' total length.
    let video = dir.join("output/final.png");
    let decoded = decode(&video);
    assert_eq!((decoded.width, decoded.height), (640, 360));
    assert_eq!(decoded.frames, expected_frames);
    let scene_frames = expected_ms as f64 * FPS as f64 / 1000.0;
    assert!(
        (decoded.frames as f64 - scene_frames).abs() <= 1.0,
        "{} frames for {scene_frames} from the scene durations",
        decoded.frames
    );
    assert!(
        (decoded.seconds - expected_ms as f64 / 1000.0).abs() <= 1.0 / FPS as f64,
        "{} s of frame delays for {expected_ms} ms of scenes",
        decoded.seconds
    );

    // The contact sheet: a still PNG with a row per scene.
    let sheet = decode(&dir.join("output/contact-sheet.png"));
    assert_eq!(sheet.frames, 1);
    assert!(sheet.width >= 640 && sheet.height >= 5 * 180, "{sheet:?}");

    // The manifest agrees with the files.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("output/manifest.json")).unwrap()).unwrap();
    let video_bytes = std::fs::read(&video).unwrap();
    assert_eq!(manifest["video"]["frames"], expected_frames);
    assert_eq!(manifest["video"]["duration_ms"], expected_ms);
    assert_eq!(manifest["video"]["bytes"], video_bytes.len());
    assert_eq!(
        manifest["video"]["sha256"],
        hex::encode(sha2::Sha256::digest(&video_bytes))
    );
    assert_eq!(manifest["contact_sheet"]["width"], sheet.width);
    assert_eq!(manifest["scenes"].as_array().unwrap().len(), 5);

    // ffprobe reads the video: its codec, size, frame count (by decoding every frame) and,
    // from the packet durations, its length.
    let stream: serde_json::Value = serde_json::from_str(&ffprobe(
        &[
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "json",
        ],
        &video,
    ))
    .unwrap();
    let stream = &stream["streams"][0];
    assert_eq!(stream["codec_name"], "apng");
    assert_eq!(
        (stream["width"].clone(), stream["height"].clone()),
        (640.into(), 360.into())
    );
    assert_eq!(stream["nb_read_frames"], expected_frames.to_string());
    let packets = ffprobe(
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=duration_time",
            "-of",
            "csv=p=0",
        ],
        &video,
    );
    let seconds: f64 = packets
        .lines()
        .map(|line| line.trim().parse::<f64>().unwrap())
        .sum();
    assert!(
        (seconds - expected_ms as f64 / 1000.0).abs() <= 1.0 / FPS as f64,
        "ffprobe says {seconds} s for {expected_ms} ms of scenes"
    );

    // ffprobe reads the MP4 encoded inside the sandbox: H.264 High, BT.709 limited range,
    // every frame decoded, 20 s long; and the captions hold a cue per scene.
    let mp4 = video.with_file_name("final.mp4");
    let probe: serde_json::Value = serde_json::from_str(&ffprobe(
        &[
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,profile,width,height,pix_fmt,color_space,color_range,nb_read_frames:format=duration",
            "-of",
            "json",
        ],
        &mp4,
    ))
    .unwrap();
    let stream = &probe["streams"][0];
    assert_eq!(stream["codec_name"], "h264", "{probe}");
    assert_eq!(stream["profile"], "High", "{probe}");
    assert_eq!(
        (stream["width"].clone(), stream["height"].clone()),
        (640.into(), 360.into())
    );
    assert_eq!(stream["pix_fmt"], "yuv420p", "{probe}");
    assert_eq!(
        (stream["color_space"].clone(), stream["color_range"].clone()),
        ("bt709".into(), "tv".into())
    );
    assert_eq!(stream["nb_read_frames"], expected_frames.to_string());
    let duration: f64 = probe["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (duration - expected_ms as f64 / 1000.0).abs() <= 1.0 / FPS as f64,
        "ffprobe says the MP4 lasts {duration} s for {expected_ms} ms of scenes"
    );
    let vtt = std::fs::read_to_string(video.with_file_name("final.vtt")).unwrap();
    assert!(vtt.starts_with("WEBVTT\n"), "{vtt}");
    assert_eq!(vtt.matches(" --> ").count(), 5, "{vtt}");
    assert!(video.with_file_name("poster.png").is_file());

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
