//! The demo pipeline through the real binary: script → scenes → keyframe PNGs → APNG clips,
//! every stage a sandboxed plugin, the results decoded and checked against their rows.

// A failed unwrap is a failed test, with its location; that is what tests want.
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestHome, assert_consistent, normalized_state};

const DEMO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../guest-example/examples/demo.toml"
);
const SCRIPT: &str = include_str!("../guest-example/examples/lighthouse.txt");

fn decode(path: &std::path::Path) -> (png::Info<'static>, u32) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let info = reader.info().clone();
    let frames = info.animation_control.map_or(1, |a| a.num_frames);
    // Decode every frame: a broken stream fails here, not just in the header.
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    for _ in 0..frames {
        reader.next_frame(&mut buf).unwrap();
    }
    (info, frames)
}

#[test]
fn the_demo_pipeline_turns_the_example_script_into_keyframes_and_clips_that_decode() {
    let home = TestHome::new();
    let id = home.project("Lighthouse", SCRIPT);
    let run = home
        .vidpipe(&["run", DEMO, "--project", &id])
        .expect_code(0);
    assert!(run.stdout.contains("3 stage(s) ran"), "{}", run.stdout);
    assert_consistent(&home);

    let detail = home.show(&id);
    let scenes = detail["scenes"].as_array().unwrap();
    assert_eq!(scenes.len(), 5);
    assert_eq!(
        detail["keyframes"].as_array().unwrap().len(),
        10,
        "a start and an end keyframe per scene"
    );
    let clips = detail["video_clips"].as_array().unwrap();
    assert_eq!(clips.len(), 5, "one clip per scene");

    for k in detail["keyframes"].as_array().unwrap() {
        let path = home
            .project_dir(&id)
            .join("keyframes")
            .join(k["image"]["name"].as_str().unwrap());
        let (info, frames) = decode(&path);
        assert_eq!(
            (info.width, info.height, frames),
            (640, 360, 1),
            "{}",
            path.display()
        );
    }
    for c in clips {
        let path = home
            .project_dir(&id)
            .join("clips")
            .join(c["video"]["name"].as_str().unwrap());
        let (info, frames) = decode(&path);
        assert_eq!((info.width, info.height), (640, 360));
        let scene = scenes.iter().find(|s| s["id"] == c["scene_id"]).unwrap();
        let expected = (scene["duration_ms"].as_u64().unwrap() * 12).div_ceil(1000) as u32;
        assert!(
            frames.abs_diff(expected) <= 1,
            "{frames} frames for {expected} expected"
        );
        assert_eq!(c["frame_rate"], 12);
    }

    // Same script, same configuration: the same bytes.
    let again = home.project("Lighthouse", SCRIPT);
    home.vidpipe(&["run", DEMO, "--project", &again])
        .expect_code(0);
    assert_eq!(
        normalized_state(&home, &again),
        normalized_state(&home, &id)
    );
}
