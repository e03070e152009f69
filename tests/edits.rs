//! Edits that stay small: `vidpipe project update` changes a project, and a storyboard run
//! after a script edit touches only the scenes the edit touched. Through the real binary, with
//! the demo's real stages.

// A failed unwrap is a failed test, with its location; that is what tests want.
#![allow(clippy::unwrap_used)]

mod common;

use common::{SCRIPT, TestHome};
use serde_json::Value;
use vidpipe_example_plugins as plugins;

fn run_stage(home: &TestHome, plugin: &str, id: &str) {
    home.vidpipe(&["stage", "run", plugin, "--project", id])
        .expect_code(0);
}

/// `vidpipe project update ID --script FILE` with `text` in the file; it must succeed.
fn update_script(home: &TestHome, id: &str, text: &str) -> common::Run {
    let script = home.dir.path().join("edited.txt");
    std::fs::write(&script, text).unwrap();
    home.vidpipe(&[
        "project",
        "update",
        id,
        "--script",
        script.to_str().unwrap(),
    ])
    .expect_code(0)
}

/// The artifacts (folder/name) the keyframes and clip of scene `index` name.
fn media_of(detail: &Value, index: u64) -> Vec<String> {
    let scene = detail["scenes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["index"] == index)
        .unwrap();
    let mine = |row: &&Value| row["scene_id"] == scene["id"];
    let folder = |kind: &Value| match kind.as_str().unwrap() {
        "keyframe" => "keyframes",
        "clip" => "clips",
        other => panic!("unexpected kind {other}"),
    };
    let mut out = Vec::new();
    for k in detail["keyframes"].as_array().unwrap().iter().filter(mine) {
        out.push(format!(
            "{}/{}",
            folder(&k["image"]["kind"]),
            k["image"]["name"].as_str().unwrap()
        ));
    }
    for c in detail["video_clips"]
        .as_array()
        .unwrap()
        .iter()
        .filter(mine)
    {
        out.push(format!(
            "{}/{}",
            folder(&c["video"]["kind"]),
            c["video"]["name"].as_str().unwrap()
        ));
    }
    out
}

#[test]
fn after_a_script_edit_the_storyboard_rewrites_only_the_edited_scene_and_deletes_the_removed_one_with_its_media()
 {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    for plugin in [
        plugins::STORYBOARD_PATH,
        plugins::KEYFRAMES_PATH,
        plugins::CLIPS_PATH,
    ] {
        run_stage(&home, plugin, &id);
    }
    let before = home.show(&id);
    let removed = media_of(&before, 2);
    assert_eq!(removed.len(), 3, "two keyframes and a clip: {removed:?}");
    let dir = home.project_dir(&id);
    assert!(removed.iter().all(|f| dir.join(f).is_file()));

    // Paragraph 2 edited, paragraph 3 removed.
    let edited = "A red fox wakes in the snow. It sniffs the cold air.\n\n\
                  The fox leaps over a frozen river.\n";
    let update = update_script(&home, &id, edited);
    assert!(
        update.stdout.contains("updated the script of project"),
        "{}",
        update.stdout
    );
    assert_eq!(home.show(&id)["project"]["script"], edited);
    assert_eq!(
        home.show(&id)["scenes"].as_array().unwrap().len(),
        3,
        "the scenes follow the script only when the storyboard runs"
    );

    run_stage(&home, plugins::STORYBOARD_PATH, &id);
    let after = home.show(&id);
    let scenes = after["scenes"].as_array().unwrap();
    assert_eq!(scenes.len(), 2);
    assert_eq!(
        scenes[0], before["scenes"][0],
        "the untouched scene is not rewritten"
    );
    assert_eq!(
        scenes[1]["id"], before["scenes"][1]["id"],
        "updated in place"
    );
    assert_eq!(scenes[1]["title"], "The fox leaps over a frozen river");
    assert_ne!(scenes[1]["updated_at"], before["scenes"][1]["updated_at"]);
    // The removed scene's keyframes and clip are gone, rows and files.
    assert_eq!(after["keyframes"].as_array().unwrap().len(), 4);
    assert_eq!(after["video_clips"].as_array().unwrap().len(), 2);
    for file in &removed {
        assert!(!dir.join(file).exists(), "{file} was deleted");
        let (kind, name) = file.split_once('/').unwrap();
        assert!(
            !after["artifacts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["name"] == name && a["kind"] == kind.trim_end_matches('s')),
            "{file} has no row"
        );
    }
    assert!(media_of(&after, 0).iter().all(|f| dir.join(f).is_file()));
    common::assert_consistent(&home);
}

#[test]
fn project_update_changes_only_what_it_is_given_and_bad_input_changes_nothing() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    home.vidpipe(&[
        "project",
        "update",
        &id,
        "--name",
        "Red fox",
        "--setting",
        "look=snow",
    ])
    .expect_code(0);
    home.vidpipe(&["project", "update", &id, "--setting", "mood=calm"])
        .expect_code(0);
    let same = home
        .vidpipe(&["project", "update", &id, "--name", "Red fox"])
        .expect_code(0);
    assert!(
        same.stdout.contains("already had that name"),
        "{}",
        same.stdout
    );
    let project = home.show(&id)["project"].clone();
    assert_eq!(project["name"], "Red fox");
    assert_eq!(project["script"], SCRIPT);
    assert_eq!(
        project["settings"],
        serde_json::json!({"look": "snow", "mood": "calm"})
    );

    let missing = home.dir.path().join("missing.txt");
    let bad: [&[&str]; 5] = [
        &[],
        &["--name", "  "],
        &["--setting", "no-equals-sign"],
        &["--script", missing.to_str().unwrap()],
        &["--name", "bad\u{7}name"],
    ];
    for extra in bad {
        let mut args = vec!["project", "update", &id];
        args.extend_from_slice(extra);
        let run = home.vidpipe(&args).expect_code(2);
        assert_eq!(run.stderr.lines().count(), 1, "{extra:?}: {}", run.stderr);
    }
    let unknown = home
        .vidpipe(&[
            "project",
            "update",
            "01234567-89ab-7def-8123-456789abcdef",
            "--name",
            "x",
        ])
        .expect_code(2);
    assert!(unknown.stderr.contains("no project"), "{}", unknown.stderr);
    assert_eq!(home.show(&id)["project"], project, "nothing changed");
}

#[test]
fn a_pipeline_after_a_project_update_reruns_from_its_first_stage_and_then_skips_again() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let m = common::manifest(&home, "bulk.toml", &common::bulk_manifest(1000, 0, 2000, 0));
    let run = |wanted: &str| {
        let out = home.vidpipe(&["run", &m, "--project", &id]).expect_code(0);
        assert!(out.stdout.contains(wanted), "{wanted}: {}", out.stdout);
    };
    run("3 stage(s) ran, 0 skipped");
    run("0 stage(s) ran, 3 skipped");
    update_script(
        &home,
        &id,
        &SCRIPT.replace("slipping once", "never slipping"),
    );
    run("3 stage(s) ran, 0 skipped");
    let scenes = home.show(&id)["scenes"].clone();
    assert_eq!(
        scenes[1]["title"],
        "The fox crosses a frozen river, never slipping"
    );
    run("0 stage(s) ran, 3 skipped");
    // An update that changes nothing is no edit.
    update_script(
        &home,
        &id,
        &SCRIPT.replace("slipping once", "never slipping"),
    );
    run("0 stage(s) ran, 3 skipped");
}

/// The demo pipeline, from the repository.
const DEMO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../guest-example/examples/demo.toml"
);
const LIGHTHOUSE: &str = include_str!("../guest-example/examples/lighthouse.txt");

#[test]
fn after_one_paragraph_of_the_demo_changes_only_its_scenes_keyframes_and_clip_are_drawn_again() {
    let home = TestHome::new();
    let id = home.project("Lighthouse", LIGHTHOUSE);
    home.vidpipe(&["run", DEMO, "--project", &id, "--jobs", "2"])
        .expect_code(0);
    let before = home.show(&id);
    let runs_before = before["runs"].as_array().unwrap().len();
    assert_eq!(
        runs_before,
        1 + 5 + 2 * 5 + 1,
        "one run per stage, one per shard (two per scene for clips, cut into two parts)"
    );

    // Nothing changed: nothing runs, and no run is recorded.
    let same = home
        .vidpipe(&["run", DEMO, "--project", &id])
        .expect_code(0);
    assert!(
        same.stdout.contains("0 stage(s) ran, 4 skipped"),
        "{}",
        same.stdout
    );
    assert_eq!(
        home.show(&id)["runs"].as_array().unwrap().len(),
        runs_before
    );

    // Paragraph 3 of 5 reworded.
    update_script(
        &home,
        &id,
        &LIGHTHOUSE.replacen("rowing hard", "rowing hard and fast", 1),
    );
    let edited = home
        .vidpipe(&["run", DEMO, "--project", &id])
        .expect_code(0);
    for line in [
        "[2/4] keyframes: succeeded: 5 scene(s), 1 ran, 4 skipped",
        "[3/4] clips: succeeded: 5 scene(s) in 10 parts, 2 ran, 8 skipped",
        "[2/4] keyframes: scene 2: succeeded",
        "[3/4] clips: scene 2 part 1/2: succeeded",
        "[3/4] clips: scene 2 part 2/2: succeeded",
    ] {
        assert!(edited.stdout.contains(line), "{line}: {}", edited.stdout);
    }
    let after = home.show(&id);
    let new: Vec<&Value> = after["runs"].as_array().unwrap()[runs_before..]
        .iter()
        .collect();
    let scene2 = after["scenes"][2]["id"].clone();
    let mut stages: Vec<(&str, &Value, &Value)> = new
        .iter()
        .map(|r| (r["stage"].as_str().unwrap(), &r["scene_id"], &r["part"]))
        .collect();
    // The two parts of the clip run side by side, and either may start first.
    stages.sort_by_key(|(stage, _, part)| {
        let order = ["storyboard", "keyframes", "clips", "assemble"];
        (
            order.iter().position(|s| s == stage),
            part["index"].as_u64(),
        )
    });
    let part = |index: u32| serde_json::json!({ "index": index, "count": 2 });
    assert_eq!(
        stages,
        [
            ("storyboard", &Value::Null, &Value::Null),
            ("keyframes", &scene2, &Value::Null),
            ("clips", &scene2, &part(0)),
            ("clips", &scene2, &part(1)),
            ("assemble", &Value::Null, &Value::Null)
        ],
        "exactly one scene's keyframes and clip (its two parts) were drawn again"
    );
    // The other scenes' media are the very same rows and files.
    for index in [0, 1, 3, 4] {
        assert_eq!(media_of(&after, index), media_of(&before, index));
    }
    let sha = |d: &Value, name: &str| {
        d["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .map(|a| a["sha256"].clone())
    };
    for half in ["part-1-of-2", "part-2-of-2"] {
        let name = |scene: u32| format!("scene-{scene:03}-{half}.mp4");
        assert!(sha(&before, &name(0)).is_some(), "{}", name(0));
        assert_eq!(sha(&after, &name(0)), sha(&before, &name(0)));
        assert_ne!(sha(&after, &name(2)), sha(&before, &name(2)));
    }
    assert_ne!(sha(&after, "final.mp4"), sha(&before, "final.mp4"));

    // `runs show` says why each ran or was skipped.
    let pipeline = common::pipeline_run(&edited);
    let shown = home.vidpipe(&["runs", "show", &pipeline]).expect_code(0);
    for line in [
        // One column for the names, as wide as the widest ("clips scene 0 part 1/2").
        "storyboard              ran      the project (its name, script or settings) changed",
        "keyframes scene 2       ran      scene 2 changed",
        "keyframes scene 0       skipped  unchanged since run",
        "clips scene 2 part 1/2  ran      scene 2 changed",
        "clips scene 2 part 2/2  ran      scene 2 changed",
        "clips scene 4 part 2/2  skipped  unchanged since run",
        "assemble                ran",
    ] {
        assert!(shown.stdout.contains(line), "{line}: {}", shown.stdout);
    }
    common::assert_consistent(&home);
}
