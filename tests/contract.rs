//! Contract versions: a plugin built against the frozen `vidpipe:plugin@0.1.0` keeps running,
//! unchanged, on a host whose newest contract is 0.2.0, and `plugin inspect` says which
//! version each plugin targets. Everything through the real `vidpipe` binary.
// A failed unwrap is a failed test, with its location; that is what tests want.
#![allow(clippy::unwrap_used)]

mod common;

use common::TestHome;
use sha2::Digest as _;
use vidpipe_example_plugins as plugins;

fn inspect(home: &TestHome, plugin: &str) -> serde_json::Value {
    let run = home
        .vidpipe(&["plugin", "inspect", plugin, "--json"])
        .expect_code(0);
    serde_json::from_str(&run.stdout).unwrap()
}

#[test]
fn plugin_inspect_says_which_contract_version_each_plugin_targets() {
    let home = TestHome::new();
    let old = inspect(&home, plugins::V0_1_STAGE_PATH);
    assert_eq!(old["targets"], serde_json::json!(["vidpipe:plugin@0.1.0"]));
    assert_eq!(old["runnable"], true, "{old}");
    let new = inspect(&home, plugins::STORYBOARD_PATH);
    assert_eq!(new["targets"], serde_json::json!(["vidpipe:plugin@0.2.0"]));
    assert_eq!(new["runnable"], true, "{new}");

    let future = inspect(&home, plugins::FUTURE_VERSION_PATH);
    assert_eq!(
        future["targets"],
        serde_json::json!(["vidpipe:plugin@0.3.0"])
    );
    assert_eq!(future["runnable"], false);
    let reason = future["reason"].as_str().unwrap();
    assert!(
        reason.contains("@0.3.0, but this host implements vidpipe:plugin@0.1.0 and @0.2.0 only"),
        "{reason}"
    );
    let text = home
        .vidpipe(&["plugin", "inspect", plugins::V0_1_STAGE_PATH])
        .expect_code(0);
    assert!(
        text.stdout.contains("targets   vidpipe:plugin@0.1.0")
            && text
                .stdout
                .contains("runnable  yes: this host (vidpipe:plugin@0.1.0 and @0.2.0)"),
        "{}",
        text.stdout
    );
}

#[test]
fn a_plugin_built_against_0_1_0_runs_unchanged_and_everything_it_wrote_commits() {
    let home = TestHome::new();
    let id = home.project("Old", "");
    let run = home
        .vidpipe(&["stage", "run", plugins::V0_1_STAGE_PATH, "--project", &id])
        .expect_code(0);
    let image = b"an image from 0.1.0";
    let summary = format!(
        "0.1.0 stage v0_1_stage on Old: 3 scenes (Old 0, Old 1, Old two, renamed), keyframe {} of {} bytes, missing scene not-found, referenced artifact conflict",
        hex::encode(sha2::Sha256::digest(image)),
        image.len()
    );
    assert!(run.stdout.contains(&summary), "{}", run.stdout);

    let detail = home.show(&id);
    assert_eq!(detail["runs"][0]["status"], "succeeded");
    let scenes = detail["scenes"].as_array().unwrap();
    let titles: Vec<&str> = scenes
        .iter()
        .map(|s| s["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Old 0", "Old 1", "Old two, renamed"]);
    assert_eq!(scenes[2]["duration_ms"], 1500);
    assert_eq!(detail["keyframes"][0]["prompt"], "older");
    assert_eq!(detail["video_clips"][0]["frame_rate"], 24);
    let dir = home.project_dir(&id);
    assert_eq!(std::fs::read(dir.join("keyframes/old.png")).unwrap(), image);
    assert_eq!(
        std::fs::read(dir.join("clips/old.mp4")).unwrap(),
        b"a clip from 0.1.0"
    );
    assert_eq!(
        home.files(&id),
        ["clips/old.mp4", "keyframes/old.png"],
        "the dropped writer and the deleted artifact left nothing"
    );
    common::assert_consistent(&home);
}

#[test]
fn a_0_1_0_plugins_own_error_keeps_its_case_and_commits_nothing() {
    let home = TestHome::new();
    let id = home.project("Old", "");
    for code in ["not-found", "invalid-input", "limit-exceeded", "busy"] {
        let run = home
            .vidpipe(&[
                "stage",
                "run",
                plugins::V0_1_STAGE_PATH,
                "--project",
                &id,
                "--set",
                &format!("fail={code}"),
            ])
            .expect_code(1);
        let wanted = format!("the stage returned an error ({code}): asked to fail");
        assert!(run.stderr.contains(&wanted), "{wanted}: {}", run.stderr);
    }
    let detail = home.show(&id);
    let runs = detail["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    assert!(runs.iter().all(|r| r["status"] == "failed"));
    assert!(detail["scenes"].as_array().unwrap().is_empty());
    assert!(home.files(&id).is_empty(), "{:?}", home.files(&id));
}
