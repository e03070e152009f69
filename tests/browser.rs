//! A real browser plays what the demo makes: Debian's Chromium, headless, driven by
//! `playwright-core` (tests/browser/play.mjs), loads the final video and a clip from a loopback
//! HTTP server into a `<video>`, and plays each to the end, in H.264 and in AV1. Set-up:
//! `tests/setup.sh` installs Chromium; this test installs `playwright-core` itself (`npm ci`)
//! when it is missing.

// A failed unwrap is a failed test, with its location; that is what tests want.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::TestHome;
use common::video::{clip_part, native_clip, probe, y_psnr};

const DEMO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../guest-example/examples/demo.toml"
);
const SCRIPT: &str = include_str!("../guest-example/examples/lighthouse.txt");

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser")
}

/// Installs `playwright-core` from tests/browser/package-lock.json if it is not there yet;
/// once per process, as `npm ci` starts by deleting what another test may be using.
fn install_playwright() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(install_playwright_now);
}

fn install_playwright_now() {
    let dir = browser_dir();
    if dir
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .unwrap_or_else(|e| panic!("cannot run npm ({e}); run tests/setup.sh"));
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

/// Plays each file in Chromium; what the page saw of each, in order.
fn play(files: &[&Path]) -> Vec<serde_json::Value> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).is_file(),
        "{chromium} is missing; run tests/setup.sh, which installs Debian's chromium"
    );
    install_playwright();
    let output = Command::new("node")
        .arg(browser_dir().join("play.mjs"))
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node ({e}); run tests/setup.sh"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "play.mjs failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(results.len(), files.len(), "{stdout}");
    results
}

/// Asserts that the page loaded the video at 640×360 and `seconds` long, played it to the end
/// and decoded at least `frames` frames without an error.
fn assert_played(seen: &serde_json::Value, seconds: f64, frames: u64) {
    println!("{seen}");
    assert_eq!(seen["error"], serde_json::Value::Null, "{seen}");
    assert_eq!(
        (seen["width"].as_u64(), seen["height"].as_u64()),
        (Some(640), Some(360)),
        "{seen}"
    );
    let duration = seen["duration"].as_f64().unwrap();
    assert!(
        (duration - seconds).abs() < 0.01,
        "{duration} s, not {seconds}: {seen}"
    );
    assert_eq!(seen["ended"], true, "{seen}");
    assert!(seen["decoded_frames"].as_u64().unwrap() >= frames, "{seen}");
    assert_eq!(seen["corrupted_frames"], 0, "{seen}");
    assert_eq!(seen["console_errors"], serde_json::json!([]), "{seen}");
}

/// Runs the demo pipeline on a new project, with the clips stage's `codec` and `qp` set; the
/// project's id.
fn demo_in(home: &TestHome, codec: &str, qp: u32) -> String {
    let manifest = std::fs::read_to_string(DEMO)
        .unwrap()
        .replace("codec = \"h264\"", &format!("codec = \"{codec}\""))
        .replace("qp = 28", &format!("qp = {qp}"));
    assert!(
        manifest.contains(&format!("codec = \"{codec}\"")),
        "{manifest}"
    );
    let path = home.path().join(format!("demo-{codec}.toml"));
    std::fs::write(&path, manifest).unwrap();
    let id = home.project("Lighthouse", SCRIPT);
    home.vidpipe(&["run", path.to_str().unwrap(), "--project", &id])
        .expect_code(0);
    id
}

#[test]
fn chromium_plays_the_demo_video_and_its_clips_to_the_end() {
    let home = TestHome::new();
    let id = demo_in(&home, "h264", 28);
    let dir = home.project_dir(&id);
    let detail = home.show(&id);
    let clip = &detail["video_clips"][1];
    let clip_path = dir
        .join("clips")
        .join(clip["video"]["name"].as_str().unwrap());
    let clip_ms = clip["duration_ms"].as_u64().unwrap();
    let results = play(&[&dir.join("output/final.mp4"), &clip_path]);
    assert_played(&results[0], 20.0, 240);
    assert_played(&results[1], clip_ms as f64 / 1000.0, clip_ms * 12 / 1000);
}

#[test]
fn the_av1_variant_is_smaller_as_faithful_and_plays_in_chromium_to_the_end() {
    let home = TestHome::new();
    let id = demo_in(&home, "av1", 100);
    let dir = home.project_dir(&id);
    let detail = home.show(&id);
    let video = dir.join("output/final.mp4");
    let stream = probe(&video);
    assert_eq!(stream["codec_name"], "av1", "{stream}");
    assert_eq!(stream["profile"], "Main", "{stream}");
    assert_eq!(stream["pix_fmt"], "yuv420p", "{stream}");
    for key in ["color_space", "color_primaries", "color_transfer"] {
        assert_eq!(stream[key], "bt709", "{key}: {stream}");
    }
    assert_eq!(stream["color_range"], "tv", "{stream}");
    assert_eq!(stream["nb_read_frames"], "240", "{stream}");
    let bytes = std::fs::metadata(&video).unwrap().len();
    assert!(bytes <= 1_000_000, "{bytes} bytes");
    let scenes = detail["scenes"].as_array().unwrap();
    let keyframes = detail["keyframes"].as_array().unwrap();
    let psnr = y_psnr(&dir, &video, scenes, keyframes);
    println!("AV1: {bytes} bytes, Y-PSNR {psnr:.2} dB against the natively rendered frames");
    assert!(psnr >= 40.0, "Y-PSNR {psnr:.2} dB");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("output/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["video"]["codec"], "av1");

    let clip = &detail["video_clips"][2];
    let clip_path = dir
        .join("clips")
        .join(clip["video"]["name"].as_str().unwrap());
    let clip_ms = clip["duration_ms"].as_u64().unwrap();
    let stream = probe(&clip_path);
    assert_eq!(
        (
            &stream["codec_name"],
            &stream["profile"],
            &stream["color_space"]
        ),
        (&"av1".into(), &"Main".into(), &"bt709".into()),
        "{stream}"
    );
    // rav1e gives the same bytes inside the sandbox as built natively.
    let scene = scenes.iter().find(|s| s["id"] == clip["scene_id"]).unwrap();
    let native = native_clip(
        &dir,
        scene,
        keyframes,
        vidpipe_render::Codec::Av1,
        100,
        clip_part(clip),
    );
    assert!(
        std::fs::read(&clip_path).unwrap() == native,
        "the sandboxed AV1 clip differs from the same encoder run natively"
    );
    let results = play(&[&video, &clip_path]);
    assert_played(&results[0], 20.0, 240);
    assert_played(&results[1], clip_ms as f64 / 1000.0, clip_ms * 12 / 1000);
}
