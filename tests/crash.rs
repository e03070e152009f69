//! The crash harness: SQLite's method applied to whole stages. Run a multi-stage pipeline as a
//! child process, SIGKILL it at a random moment, reopen the home and check that nothing is
//! broken or half-visible, then resume it and check that the end state is exactly that of a run
//! that was never interrupted — for a pipeline of whole-project stages and for one whose stages
//! fan out into a shard per scene. 50 and 30 kills by default; set VIDPIPE_CRASH_ITERATIONS for
//! more and VIDPIPE_CRASH_SEED to replay a sequence.

// A failed unwrap is a failed test, with its location; that is what tests want.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{TestHome, assert_consistent, bulk_manifest, manifest, normalized_state};

/// Eight paragraphs: eight scenes, sixteen keyframes, eight clips, plus the extra scenes.
const SCRIPT: &str = "One.\n\nTwo.\n\nThree.\n\nFour.\n\nFive.\n\nSix.\n\nSeven.\n\nEight.\n";

/// xorshift64*: enough randomness for kill times, and replayable from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Checks what no crash may break, then that the visible rows are those of whole stages only.
fn assert_no_half_stage(home: &TestHome, id: &str) {
    assert_consistent(home);
    let state = normalized_state(home, id);
    let scenes = state["scenes"].as_array().unwrap();
    let story = scenes
        .iter()
        .filter(|s| s[0].as_i64().unwrap() < 1000)
        .count();
    let extra = scenes.len() - story;
    let keyframes = state["keyframes"].as_array().unwrap().len();
    let clips = state["clips"].as_array().unwrap().len();
    // Each stage is all or nothing, and they commit in order.
    assert!(story == 0 || story == 8, "storyboard scenes: {story}");
    assert!(
        (extra == 0 && keyframes == 0) || (extra == 200 && keyframes == 16),
        "keyframes stage: {extra} extra scenes, {keyframes} keyframes"
    );
    assert!(clips == 0 || clips == 8, "clips: {clips}");
    if clips > 0 {
        assert_eq!(keyframes, 16, "clips commit after keyframes");
    }
    if keyframes > 0 {
        assert_eq!(story, 8, "keyframes commit after the storyboard");
    }
}

#[test]
fn a_pipeline_killed_at_random_moments_never_shows_half_a_stage_and_resumes_to_the_same_end() {
    let text = bulk_manifest(96 * 1024, 200, 256 * 1024, 0);
    kill_and_resume(&text, 50, assert_no_half_stage);
}

/// Checks what no crash may break, then that the visible rows of the per-scene stages are those
/// of whole shards only: each scene has both keyframes or none, and a clip only after both.
fn assert_no_half_shard(home: &TestHome, id: &str) {
    assert_consistent(home);
    let state = normalized_state(home, id);
    let scenes = state["scenes"].as_array().unwrap().len();
    assert!(scenes == 0 || scenes == 8, "storyboard scenes: {scenes}");
    for index in 0..8 {
        let of = |table: &str| {
            state[table]
                .as_array()
                .unwrap()
                .iter()
                .filter(|row| row[0].as_i64() == Some(index))
                .count()
        };
        let (keyframes, clips) = (of("keyframes"), of("clips"));
        assert!(
            keyframes == 0 || keyframes == 2,
            "scene {index}: {keyframes} keyframes"
        );
        assert!(clips <= 1, "scene {index}: {clips} clips");
        if clips == 1 {
            assert_eq!(
                keyframes, 2,
                "scene {index}: its clip commits after its keyframes"
            );
        }
    }
}

#[test]
fn a_fanned_out_pipeline_killed_at_random_moments_shows_only_whole_shards_and_resumes_to_the_same_end()
 {
    let text = common::fanned_bulk_manifest(96 * 1024, 256 * 1024, 0, "", "");
    kill_and_resume(&text, 30, assert_no_half_shard);
}

/// Runs the pipeline of `text` once uninterrupted, for reference; then `iterations` (by default:
/// see the module) times on a new project, kills it at a random moment, checks the home with
/// `check`, resumes it and compares the end with the reference.
fn kill_and_resume(text: &str, default_iterations: u32, check: fn(&TestHome, &str)) {
    let iterations: u32 = std::env::var("VIDPIPE_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_iterations);
    let seed: u64 = std::env::var("VIDPIPE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_CAFE);
    let mut rng = Rng(seed.max(1));

    // The reference: one uninterrupted run, and how long a run takes once the home's compile
    // cache is warm, as it is for all the killed runs but the first (timing the cold run,
    // which compiles every plugin, would put most kills after the end).
    let reference = TestHome::new();
    let ref_id = reference.project("crash", SCRIPT);
    let m = manifest(&reference, "bulk.toml", text);
    reference
        .vidpipe(&["run", &m, "--project", &ref_id])
        .expect_code(0);
    let timed = reference.project("timed", SCRIPT);
    let started = Instant::now();
    reference
        .vidpipe(&["run", &m, "--project", &timed])
        .expect_code(0);
    let span = started.elapsed();
    let expected = normalized_state(&reference, &ref_id);
    check(&reference, &ref_id);

    let home = TestHome::new();
    let m = manifest(&home, "bulk.toml", text);
    let mut outcomes = [0u32; 3]; // killed before any commit, in between, after the end
    for i in 0..iterations {
        let id = home.project("crash", SCRIPT);
        let mut child = home
            .command(&["run", &m, "--project", &id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill anywhere from process start to a little past the reference's end.
        let at = Duration::from_micros(rng.next() % (span.as_micros() as u64 * 11 / 10).max(1));
        std::thread::sleep(at);
        child.kill().unwrap();
        let status = child.wait().unwrap();
        outcomes[match (status.success(), home.count(&format!("SELECT count(*) FROM pipeline_runs WHERE project_id = '{id}' AND status = 'succeeded'"))) {
            (true, _) => 2,
            (false, 0) => 0,
            _ => 1,
        }] += 1;

        // Every other time, any command reopens the home and recovers it, and then nothing may
        // be broken; the other times the resumed run itself recovers the project when it takes
        // the project's lock.
        if i % 2 == 0 {
            home.vidpipe(&["project", "show", &id]).expect_code(0);
            check(&home, &id);
        }

        let resumed = home.vidpipe(&["run", &m, "--project", &id]);
        assert_eq!(
            resumed.code, 0,
            "iteration {i} (seed {seed}, kill at {at:?}): {}",
            resumed.stderr
        );
        assert_eq!(
            normalized_state(&home, &id),
            expected,
            "iteration {i} (seed {seed}, kill at {at:?})"
        );
        assert_consistent(&home);
    }
    println!(
        "{iterations} kills over a {span:?} pipeline: {} before any stage committed, {} between stages, {} after it finished",
        outcomes[0], outcomes[1], outcomes[2]
    );
    assert!(
        outcomes[1] > 0 || iterations < 10,
        "some kills landed between stages: {outcomes:?}"
    );
}
