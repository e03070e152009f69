//! Parts through the real binary and the real demo plugins: `parts = N` on a per-scene stage
//! runs N shards per scene, each a run of its own that writes its part of the scene's clip;
//! a rerun reuses every part; a new cut replaces the old one whole, rows and files; a plugin
//! that cannot split its work refuses a part.

// A failed unwrap is a failed test, with its location; that is what tests want.
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestHome, assert_consistent, manifest};
use serde_json::Value;

const DEMO: &str = include_str!("../guest-example/examples/demo.toml");
/// Three paragraphs: three scenes.
const SCRIPT: &str = "A lighthouse at dusk.\n\nA boat in the swell.\n\nDawn over a calm sea.\n";

/// The demo pipeline with one-second scenes (12 frames each), its clips cut into `parts`
/// (none: the line is left out), and `keyframes_parts` on the keyframes stage if given.
fn demo_manifest(home: &TestHome, parts: Option<u32>, keyframes_parts: Option<u32>) -> String {
    let mut text = DEMO
        .replace("seconds-per-scene = 4", "seconds-per-scene = 1")
        .replace("parts = 2\n", "");
    if let Some(n) = parts {
        text = text.replace(
            "plugin = \"builtin:clips\"\nfor-each = \"scene\"\n",
            &format!("plugin = \"builtin:clips\"\nfor-each = \"scene\"\nparts = {n}\n"),
        );
    }
    if let Some(n) = keyframes_parts {
        text = text.replace(
            "plugin = \"builtin:keyframes\"\nfor-each = \"scene\"\n",
            &format!("plugin = \"builtin:keyframes\"\nfor-each = \"scene\"\nparts = {n}\n"),
        );
    }
    manifest(
        home,
        &format!("demo-{parts:?}-{keyframes_parts:?}.toml"),
        &text,
    )
}

/// The project's clip rows as (scene index, part, count, video name), in listing order.
fn clips(home: &TestHome, id: &str) -> Vec<(u64, u64, u64, String)> {
    let detail = home.show(id);
    let index = |scene: &Value| {
        detail["scenes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| &s["id"] == scene)
            .unwrap()["index"]
            .as_u64()
            .unwrap()
    };
    detail["video_clips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                index(&c["scene_id"]),
                c["part"]["index"].as_u64().unwrap(),
                c["part"]["count"].as_u64().unwrap(),
                c["video"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// What a cut into `count` parts leaves: a row per part of each of the three scenes.
fn cut(count: u64) -> Vec<(u64, u64, u64, String)> {
    (0..3)
        .flat_map(|scene| {
            (0..count).map(move |part| {
                let name = if count == 1 {
                    format!("scene-{scene:03}.mp4")
                } else {
                    format!("scene-{scene:03}-part-{}-of-{count}.mp4", part + 1)
                };
                (scene, part, count, name)
            })
        })
        .collect()
}

/// The files in the project's clips folder, sorted.
fn clip_files(home: &TestHome, id: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(home.project_dir(id).join("clips"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The runs of `stage` among the project's runs after the first `skip`.
fn runs_of(home: &TestHome, id: &str, stage: &str, skip: usize) -> Vec<Value> {
    home.show(id)["runs"].as_array().unwrap()[skip..]
        .iter()
        .filter(|r| r["stage"] == stage)
        .cloned()
        .collect()
}

#[test]
fn a_stage_cut_into_parts_runs_each_part_once_and_a_new_cut_replaces_the_old_one_whole() {
    let home = TestHome::new();
    let id = home.project("Parts", SCRIPT);
    let three = demo_manifest(&home, Some(3), None);
    let run = home
        .vidpipe(&["run", &three, "--project", &id, "--jobs", "2"])
        .expect_code(0);
    assert!(
        run.stdout
            .contains("[3/4] clips: succeeded: 3 scene(s) in 9 parts, 9 ran, 0 skipped"),
        "{}",
        run.stdout
    );
    // Each part of each scene ran once, as a run of its own that names its scene and part.
    let parts: Vec<(Value, Value)> = runs_of(&home, &id, "clips", 0)
        .iter()
        .map(|r| (r["scene_id"].clone(), r["part"].clone()))
        .collect();
    assert_eq!(parts.len(), 9);
    for part in &parts {
        assert_eq!(parts.iter().filter(|p| *p == part).count(), 1, "{part:?}");
        assert_eq!(part.1["count"], 3);
    }
    assert_eq!(clips(&home, &id), cut(3));
    assert_eq!(
        clip_files(&home, &id),
        cut(3).into_iter().map(|c| c.3).collect::<Vec<_>>()
    );
    // Assembled whole: 3 scenes of 12 frames, every part joined.
    assert!(
        run.stdout
            .contains("output/final.mp4 (36 frames of 640x360"),
        "{}",
        run.stdout
    );
    let shown = home
        .vidpipe(&["runs", "show", &common::pipeline_run(&run)])
        .expect_code(0);
    assert!(
        shown
            .stdout
            .contains("clips scene 1 part 2/3  ran      first run"),
        "{}",
        shown.stdout
    );
    assert_consistent(&home);

    // Nothing changed: every part is reused.
    let same = home
        .vidpipe(&["run", &three, "--project", &id])
        .expect_code(0);
    assert!(
        same.stdout.contains("0 stage(s) ran, 4 skipped"),
        "{}",
        same.stdout
    );

    // Cut in two instead: every part runs again, and the old cut's rows and files are gone.
    let before = home.show(&id)["runs"].as_array().unwrap().len();
    let two = demo_manifest(&home, Some(2), None);
    let run = home
        .vidpipe(&["run", &two, "--project", &id])
        .expect_code(0);
    assert!(
        run.stdout
            .contains("[3/4] clips: succeeded: 3 scene(s) in 6 parts, 6 ran, 0 skipped"),
        "{}",
        run.stdout
    );
    assert_eq!(runs_of(&home, &id, "clips", before).len(), 6);
    assert_eq!(clips(&home, &id), cut(2));
    assert_eq!(
        clip_files(&home, &id),
        cut(2).into_iter().map(|c| c.3).collect::<Vec<_>>()
    );
    assert!(
        run.stdout.contains("(36 frames of 640x360"),
        "{}",
        run.stdout
    );
    assert_consistent(&home);

    // Not cut at all: one clip per scene, named as it always was.
    let whole = demo_manifest(&home, None, None);
    let run = home
        .vidpipe(&["run", &whole, "--project", &id])
        .expect_code(0);
    assert_eq!(clips(&home, &id), cut(1));
    assert_eq!(
        clip_files(&home, &id),
        cut(1).into_iter().map(|c| c.3).collect::<Vec<_>>()
    );
    assert!(
        run.stdout.contains("(36 frames of 640x360"),
        "{}",
        run.stdout
    );
    assert_consistent(&home);

    // Back to the first cut: its runs' reads are unchanged, but a later cut rewrote what they
    // wrote, so every part runs again — and so does the whole clip after that.
    for (m, n, count) in [(&three, 3, 9), (&whole, 1, 3)] {
        let run = home.vidpipe(&["run", m, "--project", &id]).expect_code(0);
        assert!(
            run.stdout.contains(&format!("{count} ran, 0 skipped")),
            "{}",
            run.stdout
        );
        assert_eq!(clips(&home, &id), cut(n));
        assert_eq!(
            clip_files(&home, &id),
            cut(n).into_iter().map(|c| c.3).collect::<Vec<_>>()
        );
        let shown = home
            .vidpipe(&["runs", "show", &common::pipeline_run(&run)])
            .expect_code(0);
        let why = format!("parts changed (the scene's work is now cut into {n})");
        assert!(shown.stdout.contains(&why), "{why}: {}", shown.stdout);
        assert_consistent(&home);
    }
}

#[test]
fn a_plugin_that_never_asks_its_part_fails_every_shard_of_a_cut_stage_and_commits_nothing() {
    let home = TestHome::new();
    let id = home.project("Unasked", SCRIPT);
    // bulk-stage's `check` writes a file per scene and knows nothing of parts.
    let text = format!(
        "{}\n[[stage]]\nname = \"check\"\nplugin = \"{}\"\nfor-each = \"scene\"\n\
         parts = 2\n[stage.config]\nkind = \"check\"\n",
        std::fs::read_to_string(demo_manifest(&home, None, None)).unwrap(),
        vidpipe_example_plugins::BULK_STAGE_PATH
    );
    let m = manifest(&home, "unasked.toml", &text);
    let run = home.vidpipe(&["run", &m, "--project", &id]).expect_code(1);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains("6 of 6 shards failed"),
        "every shard of the stage fails: {all}"
    );
    let failed = runs_of(&home, &id, "check", 0);
    assert_eq!(failed.len(), 6);
    for r in &failed {
        assert_eq!(r["status"], "failed", "{r}");
        let detail = r["error"].as_str().unwrap();
        assert!(
            detail.contains("the plugin never asked which (db.part)")
                && detail.contains("remove `parts`"),
            "{detail}"
        );
    }
    let outputs: Vec<String> = home.show(&id)["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str().map(str::to_owned))
        .filter(|n| n.starts_with("check-"))
        .collect();
    assert!(
        outputs.is_empty(),
        "nothing of the stage committed: {outputs:?}"
    );
    assert_consistent(&home);
}

#[test]
fn a_scene_shorter_than_its_parts_gets_a_frame_a_part_and_no_leftover_of_a_longer_cut() {
    let home = TestHome::new();
    let id = home.project("Short", SCRIPT);
    let sixteen = demo_manifest(&home, Some(16), None);
    // 12 frames a scene, 16 parts: parts 13 to 16 have no frame and write nothing.
    let run = home
        .vidpipe(&["run", &sixteen, "--project", &id])
        .expect_code(0);
    let rows = clips(&home, &id);
    assert_eq!(rows.len(), 3 * 12, "{rows:?}");
    assert!(rows.iter().all(|(_, _, count, _)| *count == 12), "{rows:?}");
    assert!(
        run.stdout.contains("(36 frames of 640x360"),
        "{}",
        run.stdout
    );
    assert_consistent(&home);
}

#[test]
fn a_plugin_that_cannot_split_its_work_refuses_a_part_naming_the_setting() {
    let home = TestHome::new();
    let id = home.project("Refused", SCRIPT);
    let m = demo_manifest(&home, None, Some(2));
    let run = home.vidpipe(&["run", &m, "--project", &id]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains("does not cut a scene's work into parts") && all.contains("parts"),
        "{all}"
    );
    assert!(all.contains("invalid-input"), "{all}");
    // Nothing of the keyframes was kept.
    assert!(home.show(&id)["keyframes"].as_array().unwrap().is_empty());
}

#[test]
fn a_hostile_part_is_refused_every_write_outside_its_part_through_the_binary() {
    let home = TestHome::new();
    let id = home.project("Hostile part", SCRIPT);
    home.vidpipe(&[
        "run",
        &demo_manifest(&home, Some(2), None),
        "--project",
        &id,
    ])
    .expect_code(0);
    let before = home.show(&id);
    let attack = manifest(
        &home,
        "attack.toml",
        &format!(
            "[[stage]]\nname = \"attack\"\nplugin = \"{}\"\nfor-each = \"scene\"\nparts = 2\n\
             [stage.config]\nmode = \"part-escape\"\n",
            vidpipe_example_plugins::ATTACKER_PATH
        ),
    );
    home.vidpipe(&["run", &attack, "--project", &id, "--jobs", "2"])
        .expect_code(0);
    let shards = runs_of(&home, &id, "attack", 0);
    assert_eq!(shards.len(), 6, "3 scenes in 2 parts");
    for r in &shards {
        assert_eq!(r["status"], "succeeded", "{r}");
        let summary = r["summary"].as_str().unwrap();
        let (n, rest) = summary.split_once(" attempts: ").unwrap();
        let counts = rest
            .strip_suffix("; allowed: none")
            .unwrap_or_else(|| panic!("every attempt is refused: {summary}"));
        // 15 other parts, a cut into more, 2 deletions, a whole clip, the scene, 2 keyframes,
        // and a replace and a delete of 6 keyframe images and 5 of the 6 clip parts.
        let n: usize = n.parse().unwrap();
        assert_eq!(n, 15 + 1 + 2 + 1 + 1 + 2 + 2 * (6 + 5), "{summary}");
        for count in counts.split(", ") {
            let (got, _) = count.rsplit_once(' ').unwrap();
            // Deleting a file a row names is refused before its scope is asked.
            assert!(
                got == "out-of-scope" || got == "conflict",
                "an attempt got {got}: {summary}"
            );
        }
    }
    // Nothing changed: rows, files and their contents.
    let after = home.show(&id);
    for table in ["scenes", "keyframes", "video_clips", "artifacts"] {
        assert_eq!(after[table], before[table], "{table}");
    }
    assert_consistent(&home);
}
