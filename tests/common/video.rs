//! What the tests ask ffmpeg about a video: its stream (ffprobe), its coded pictures, and how
//! close its decoded frames are to the frames the renderer draws.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};

use vidpipe_render::{Codec, Image, Motion, Mp4Encoder, decode_png, frame};

/// The frame rate of the demo.
const FPS: u64 = 12;

/// What ffprobe says of the video stream of an MP4, decoding every frame to count them.
pub fn probe(path: &Path) -> serde_json::Value {
    let entries = "stream=codec_name,profile,width,height,pix_fmt,color_space,color_range,\
                   color_primaries,color_transfer,nb_read_frames:format=duration";
    let probe: serde_json::Value = serde_json::from_str(&ffprobe(
        &[
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            entries,
            "-of",
            "json",
        ],
        path,
    ))
    .unwrap();
    let mut stream = probe["streams"][0].clone();
    stream["duration"] = probe["format"]["duration"].clone();
    stream
}

/// The SHA-256 of each coded picture of an MP4's video, in order, as ffprobe reads them.
pub fn packet_hashes(path: &Path) -> Vec<String> {
    ffprobe(
        &[
            "-select_streams",
            "v:0",
            "-show_packets",
            "-show_data_hash",
            "sha256",
            "-show_entries",
            "packet=data_hash",
            "-of",
            "csv=p=0",
        ],
        path,
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Runs `ffprobe` with `args` on `path` and returns what it printed; fails the test, saying how
/// to install it, when ffprobe is missing (`tests/setup.sh` installs it).
pub fn ffprobe(args: &[&str], path: &Path) -> String {
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

/// How many frames the clips stage draws for `scene`: its duration times the rate, rounded,
/// at least one.
pub fn scene_frames(scene: &serde_json::Value) -> u32 {
    let frames = (scene["duration_ms"].as_u64().unwrap() * FPS + 500) / 1000;
    u32::try_from(frames).unwrap().max(1)
}

/// The frames part `index` of `count` of a scene's clip holds: `[index·F/count,
/// (index+1)·F/count)` of its `F` frames, as the clips stage cuts them.
pub fn part_frames(frames: u32, (index, count): (u32, u32)) -> std::ops::Range<u32> {
    let at = |k: u32| (u64::from(k) * u64::from(frames) / u64::from(count)) as u32;
    at(index)..at(index + 1)
}

/// The part of its scene's video a clip row (as `project show --json` gives it) holds, as
/// (index, count).
pub fn clip_part(clip: &serde_json::Value) -> (u32, u32) {
    let n = |key: &str| u32::try_from(clip["part"][key].as_u64().unwrap()).unwrap();
    (n("index"), n("count"))
}

/// The frames the clips stage draws for `scene`, rendered here natively by `vidpipe-render`
/// from the project's keyframes, one at a time into `each`.
pub fn render_scene(
    dir: &Path,
    scene: &serde_json::Value,
    keyframes: &[serde_json::Value],
    each: impl FnMut(&Image),
) {
    render_scene_part(dir, scene, keyframes, (0, 1), each);
}

/// The frames of part `part` (index, count) of `scene`'s clip: see [`render_scene`].
pub fn render_scene_part(
    dir: &Path,
    scene: &serde_json::Value,
    keyframes: &[serde_json::Value],
    part: (u32, u32),
    mut each: impl FnMut(&Image),
) {
    let frames = scene_frames(scene);
    let image = |position: &str| {
        let row = keyframes
            .iter()
            .find(|k| k["scene_id"] == scene["id"] && k["position"] == position)
            .unwrap();
        let name = row["image"]["name"].as_str().unwrap();
        decode_png(&std::fs::read(dir.join("keyframes").join(name)).unwrap()).unwrap()
    };
    let (start, end) = (image("start"), image("end"));
    let text = |key: &str| scene[key].as_str().unwrap_or("").to_owned();
    let motion = Motion::for_scene(&text("title"), &text("description"));
    for i in part_frames(frames, part) {
        let t = if frames > 1 {
            i as f32 / (frames - 1) as f32
        } else {
            0.0
        };
        each(&frame(&start, &end, t, &motion).unwrap());
    }
}

/// The clip of `scene` encoded natively, as the clips stage encodes it inside the sandbox.
pub fn native_clip(
    dir: &Path,
    scene: &serde_json::Value,
    keyframes: &[serde_json::Value],
    codec: Codec,
    qp: u8,
    part: (u32, u32),
) -> Vec<u8> {
    let mut encoder = Mp4Encoder::with_codec(codec, 640, 360, FPS as u32, qp).unwrap();
    render_scene_part(dir, scene, keyframes, part, |image| {
        encoder.push(image).unwrap()
    });
    encoder.finish().unwrap()
}

/// The Y-PSNR of `video` against the frames the clips stage draws (see [`render_scene`]),
/// both converted to BT.709 limited-range 4:2:0 by ffmpeg, which reads the reference frames
/// from a pipe.
pub fn y_psnr(
    dir: &Path,
    video: &Path,
    scenes: &[serde_json::Value],
    keyframes: &[serde_json::Value],
) -> f64 {
    let mut ffmpeg = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-v", "info"])
        .args([
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "640x360", "-r", "12", "-i", "pipe:0",
        ])
        .arg("-i")
        .arg(video)
        .args([
            "-lavfi",
            "[0:v]scale=out_color_matrix=bt709:out_range=tv,format=yuv420p[ref];\
             [1:v][ref]psnr",
            "-f",
            "null",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run ffmpeg ({e})"));
    // ffmpeg's log is read on a thread of its own, so neither pipe can fill and stall it.
    let mut stderr = ffmpeg.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut log = String::new();
        stderr.read_to_string(&mut log).unwrap();
        log
    });
    {
        let mut stdin = ffmpeg.stdin.take().unwrap();
        for scene in scenes {
            render_scene(dir, scene, keyframes, |image| {
                stdin.write_all(image.pixels()).unwrap();
            });
        }
    }
    let status = ffmpeg.wait().unwrap();
    let log = log.join().unwrap();
    assert!(status.success(), "ffmpeg failed: {log}");
    let line = log
        .lines()
        .find(|l| l.contains("PSNR y:"))
        .unwrap_or_else(|| panic!("{log}"));
    let y = line
        .split("PSNR y:")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    y.parse().unwrap_or_else(|_| panic!("{line}"))
}
