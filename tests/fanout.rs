//! Fan-out and the graph through the real binary: a `for-each = "scene"` stage runs one shard
//! per scene, each bound to its scene, up to `--jobs` at once; a shard that fails fails alone,
//! and only it runs again on resume; stages whose inputs are ready run at the same time, and a
//! failed stage stops only the stages after it.

// A failed unwrap is a failed test, with its location; that is what tests want.
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestHome, assert_consistent, bulk_manifest, fanned_bulk_manifest, manifest};
use serde_json::Value;

/// Eight paragraphs: eight scenes.
const SCRIPT: &str = "One.\n\nTwo.\n\nThree.\n\nFour.\n\nFive.\n\nSix.\n\nSeven.\n\nEight.\n";

/// The stage runs of a project, oldest first, as `runs list --json` gives them.
fn runs(home: &TestHome, id: &str) -> Vec<Value> {
    let out = home
        .vidpipe(&["runs", "list", "--project", id, "--json"])
        .expect_code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    v["runs"].as_array().unwrap().clone()
}

fn of_stage<'a>(runs: &'a [Value], stage: &str) -> Vec<&'a Value> {
    runs.iter().filter(|r| r["stage"] == stage).collect()
}

/// The runs of `stage`'s shard of `scene`, in order.
fn of_shard<'a>(runs: &'a [Value], stage: &str, scene: &Value) -> Vec<&'a Value> {
    runs.iter()
        .filter(|r| r["stage"] == stage && &r["scene_id"] == scene)
        .collect()
}

/// A run record's time field (`started_at`, `finished_at`), in ms.
fn ms(run: &Value, field: &str) -> i64 {
    run[field].as_i64().unwrap()
}

/// The fanned bulk pipeline whose clips each read scene 7's keyframes (adding their count to
/// the frame rate), with `keyframes` added to the keyframes' configuration.
fn early_manifest(keyframes: &str) -> String {
    fanned_bulk_manifest(4096, 8192, 0, "", keyframes).replacen(
        "kind = \"clip\"\n",
        "kind = \"clip\"\ncount-keyframes-of = 7\n",
        1,
    )
}

/// A per-scene `check` stage (bulk-stage writing each scene's clip frame rate to a file)
/// running after `after`, with `config` added.
fn check_stage(after: &str, config: &str) -> String {
    format!(
        "[[stage]]\nname = \"check\"\nplugin = \"{}\"\nfor-each = \"scene\"\n\
         after = [\"{after}\"]\n[stage.config]\nkind = \"check\"\n{config}\n",
        vidpipe_example_plugins::BULK_STAGE_PATH
    )
}

fn scene_ids(home: &TestHome, id: &str) -> Vec<String> {
    home.show(id)["scenes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_per_scene_stage_runs_one_shard_per_scene_and_ends_where_a_whole_project_run_does() {
    let home = TestHome::new();
    let id = home.project("fan", SCRIPT);
    let m = manifest(
        &home,
        "fanned.toml",
        &fanned_bulk_manifest(4096, 8192, 0, "", ""),
    );
    let out = home
        .vidpipe(&["run", &m, "--project", &id, "--jobs", "2"])
        .expect_code(0);
    assert!(
        out.stdout.contains("3 stage(s) ran, 0 skipped"),
        "{}",
        out.stdout
    );
    // One line per shard as it ends, and one per stage.
    assert_eq!(
        out.stdout.matches("keyframes: scene ").count(),
        8,
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("[2/3] keyframes: succeeded: 8 scene(s), 8 ran, 0 skipped"),
        "{}",
        out.stdout
    );

    // Each scene has exactly one shard of each per-scene stage, bound to it.
    let all = runs(&home, &id);
    let mut scenes = scene_ids(&home, &id);
    scenes.sort();
    for stage in ["keyframes", "clips"] {
        let mut bound: Vec<String> = of_stage(&all, stage)
            .iter()
            .map(|r| {
                assert_eq!(r["status"], "succeeded", "{r}");
                r["scene_id"].as_str().unwrap().to_owned()
            })
            .collect();
        bound.sort();
        assert_eq!(bound, scenes, "{stage}: one shard per scene");
    }
    assert!(of_stage(&all, "storyboard")[0]["scene_id"].is_null());

    // The same rows and files as the same stages run once over the whole project.
    let whole = TestHome::new();
    let wid = whole.project("fan", SCRIPT);
    let wm = manifest(&whole, "bulk.toml", &bulk_manifest(4096, 0, 8192, 0));
    whole
        .vidpipe(&["run", &wm, "--project", &wid])
        .expect_code(0);
    assert_eq!(
        common::normalized_state(&home, &id),
        common::normalized_state(&whole, &wid)
    );
    assert_consistent(&home);

    // Nothing changed: every shard is skipped, and no new run is recorded.
    let again = home.vidpipe(&["run", &m, "--project", &id]).expect_code(0);
    assert!(
        again.stdout.contains("0 stage(s) ran, 3 skipped"),
        "{}",
        again.stdout
    );
    assert!(
        again
            .stdout
            .contains("[3/3] clips: skipped (done by earlier runs): 8 scene(s), 0 ran, 8 skipped"),
        "{}",
        again.stdout
    );
    assert_eq!(runs(&home, &id).len(), all.len());
}

#[test]
fn a_shard_writing_another_scenes_rows_fails_out_of_scope_and_the_other_shards_stay_committed() {
    let home = TestHome::new();
    let id = home.project("escape", SCRIPT);
    // Every shard first retitles scene 0: allowed to scene 0's own shard only.
    let text = fanned_bulk_manifest(4096, 8192, 0, "", "escape-scene = 0");
    let m = manifest(&home, "escape.toml", &text);
    // One worker: scene 0's clip is decided once its keyframes are done, and queued behind the
    // other scenes' keyframes; once they fail, it must not start.
    let out = home
        .vidpipe(&["run", &m, "--project", &id, "--jobs", "1"])
        .expect_code(1);
    assert!(
        out.stderr
            .contains("stage keyframes (2 of 3): 7 of 8 shards failed"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("[3/3] clips: not run"),
        "{}",
        out.stdout
    );
    let all = runs(&home, &id);
    assert!(of_stage(&all, "clips").is_empty(), "{all:?}");
    let shards = of_stage(&all, "keyframes");
    let failed: Vec<_> = shards.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!((shards.len(), failed.len()), (8, 7));
    for r in &failed {
        let error = r["error"].as_str().unwrap();
        assert!(error.contains("(out-of-scope)"), "{error}");
        assert!(error.contains("is not this shard's scene"), "{error}");
    }
    // Scene 0's shard committed: its scene retitled, its two keyframes; no other scene has any.
    let d = home.show(&id);
    let scene0 = d["scenes"].as_array().unwrap()[0].clone();
    assert_eq!(scene0["title"], "retitled by bulk-stage");
    let keyframes = d["keyframes"].as_array().unwrap();
    assert_eq!(keyframes.len(), 2);
    assert!(keyframes.iter().all(|k| k["scene_id"] == scene0["id"]));
    assert_consistent(&home);
}

#[test]
fn a_shard_that_failed_is_the_only_one_run_again_when_the_pipeline_resumes() {
    let home = TestHome::new();
    let id = home.project("resume", SCRIPT);
    // Scene 3's shard needs 96 MiB more than the others; at 64 MiB it fails.
    let config = "grow-scene = 3\ngrow-mib = 96";
    let small = manifest(
        &home,
        "small.toml",
        &fanned_bulk_manifest(4096, 8192, 0, "max-memory = 64", config),
    );
    let out = home
        .vidpipe(&["run", &small, "--project", &id])
        .expect_code(1);
    assert!(
        out.stderr
            .contains("1 of 8 shards failed: the shard of scene 3 failed"),
        "{}",
        out.stderr
    );
    let first = runs(&home, &id);
    let failed: Vec<_> = first.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0]["error"].as_str().unwrap().contains("memory"),
        "{}",
        failed[0]
    );
    assert_eq!(home.show(&id)["keyframes"].as_array().unwrap().len(), 14);

    // Limits are not part of what a run's work depends on: with more memory, only scene 3's
    // shard runs again, then every clip.
    let big = manifest(
        &home,
        "big.toml",
        &fanned_bulk_manifest(4096, 8192, 0, "max-memory = 256", config),
    );
    let out = home
        .vidpipe(&["run", &big, "--project", &id])
        .expect_code(0);
    assert!(
        out.stdout
            .contains("[2/3] keyframes: succeeded: 8 scene(s), 1 ran, 7 skipped"),
        "{}",
        out.stdout
    );
    let second = runs(&home, &id);
    let new: Vec<_> = second[first.len()..].iter().collect();
    let keyframes: Vec<_> = new.iter().filter(|r| r["stage"] == "keyframes").collect();
    assert_eq!(keyframes.len(), 1);
    assert_eq!(keyframes[0]["scene_id"], failed[0]["scene_id"]);
    // The clips of scenes whose keyframes were done before scene 3's shard failed may have
    // run already, scene by scene; they stay committed, so each scene's clip ran exactly once.
    let mut clips: Vec<&str> = second
        .iter()
        .filter(|r| r["stage"] == "clips")
        .map(|r| {
            assert_eq!(r["status"], "succeeded", "{r}");
            r["scene_id"].as_str().unwrap()
        })
        .collect();
    clips.sort_unstable();
    let mut scenes = scene_ids(&home, &id);
    scenes.sort();
    assert_eq!(clips, scenes);
    assert!(
        !first
            .iter()
            .any(|r| r["stage"] == "clips" && r["scene_id"] == failed[0]["scene_id"])
    );
    assert_eq!(new.iter().filter(|r| r["stage"] == "storyboard").count(), 0);
    assert_eq!(home.show(&id)["keyframes"].as_array().unwrap().len(), 16);
    assert_consistent(&home);
}

/// The most shard runs of `stage` that were running at one moment, by their records.
fn most_at_once(runs: &[Value], stage: &str) -> usize {
    let spans: Vec<(i64, i64)> = of_stage(runs, stage)
        .iter()
        .map(|r| {
            (
                r["started_at"].as_i64().unwrap(),
                r["finished_at"].as_i64().unwrap(),
            )
        })
        .collect();
    spans
        .iter()
        .map(|&(t, _)| spans.iter().filter(|&&(s, f)| s <= t && t < f).count())
        .max()
        .unwrap_or(0)
}

#[test]
fn shards_run_at_the_same_time_but_never_more_of_them_than_jobs() {
    // Each shard spins long enough (tens of milliseconds) that shards started together overlap.
    let text = fanned_bulk_manifest(4096, 4096, 30_000_000, "", "");
    let mut seen = Vec::new();
    for jobs in ["1", "2", "3"] {
        let home = TestHome::new();
        let id = home.project("jobs", SCRIPT);
        let m = manifest(&home, "fanned.toml", &text);
        home.vidpipe(&["run", &m, "--project", &id, "--jobs", jobs])
            .expect_code(0);
        let all = runs(&home, &id);
        seen.push(most_at_once(&all, "keyframes").max(most_at_once(&all, "clips")));
        assert_consistent(&home);
    }
    assert_eq!(seen[0], 1, "--jobs 1 runs one shard at a time: {seen:?}");
    assert_eq!(
        seen[1], 2,
        "--jobs 2 runs two at once, never three: {seen:?}"
    );
    assert!((2..=3).contains(&seen[2]), "--jobs 3: {seen:?}");
}

#[test]
fn bad_jobs_and_for_each_values_are_refused_before_anything_runs() {
    let home = TestHome::new();
    let id = home.project("bad", SCRIPT);
    let good = fanned_bulk_manifest(4096, 4096, 0, "", "");
    let m = manifest(&home, "good.toml", &good);
    for jobs in ["0", "257", "-1", "two"] {
        let flag = format!("--jobs={jobs}");
        let out = home.vidpipe(&["run", &m, "--project", &id, &flag]);
        assert_eq!(out.code, 2, "--jobs {jobs}: {}", out.stderr);
        assert!(out.stderr.contains("--jobs"), "{}", out.stderr);
    }
    let cases = [
        (
            good.replacen("name = \"fanned\"", "name = \"fanned\"\njobs = 0", 1),
            "`jobs` is 0",
        ),
        (
            good.replacen("for-each = \"scene\"", "for-each = \"take\"", 1),
            "`stage[1].for-each` is \"take\"",
        ),
        (
            format!(
                "[[stage]]\nname = \"old\"\nplugin = \"{}\"\nfor-each = \"scene\"\n",
                vidpipe_example_plugins::V0_1_STAGE_PATH
            ),
            "`stage[0].for-each` needs a plugin built for vidpipe:plugin@0.2.0",
        ),
    ];
    for (text, says) in cases {
        let m = manifest(&home, "bad.toml", &text);
        let out = home.vidpipe(&["run", &m, "--project", &id]);
        assert_eq!(out.code, 2, "{text}\n{}", out.stderr);
        assert!(out.stderr.contains(says), "{says}: {}", out.stderr);
    }
    // Nothing ran.
    assert!(runs(&home, &id).is_empty());
}

/// A pipeline of the storyboard and two bulk stages that both run after it alone, so that
/// they are ready at the same time; `extra` goes at the end.
fn forked(spin: u64, extra: &str) -> String {
    format!(
        r#"name = "forked"

[[stage]]
name = "storyboard"
plugin = "{storyboard}"

[[stage]]
name = "keyframes"
plugin = "{bulk}"
[stage.config]
kind = "keyframe"
bytes = 4096
spin = {spin}

[[stage]]
name = "clips"
plugin = "{bulk}"
after = ["storyboard"]
[stage.config]
kind = "clip"
bytes = 4096
spin = {spin}
{extra}"#,
        storyboard = vidpipe_example_plugins::STORYBOARD_PATH,
        bulk = vidpipe_example_plugins::BULK_STAGE_PATH,
    )
}

/// Whether the runs of stages `a` and `b` were running at one moment, by their records.
fn overlapped(runs: &[Value], a: &str, b: &str) -> bool {
    let span = |stage: &str| {
        let r = of_stage(runs, stage)[0];
        (
            r["started_at"].as_i64().unwrap(),
            r["finished_at"].as_i64().unwrap(),
        )
    };
    let ((s1, f1), (s2, f2)) = (span(a), span(b));
    s1 < f2 && s2 < f1
}

#[test]
fn stages_whose_inputs_are_ready_run_at_the_same_time_within_jobs() {
    let text = forked(60_000_000, "");
    let mut seen = Vec::new();
    for jobs in ["1", "2"] {
        let home = TestHome::new();
        let id = home.project("graph", SCRIPT);
        let m = manifest(&home, "forked.toml", &text);
        let out = home
            .vidpipe(&["run", &m, "--project", &id, "--jobs", jobs])
            .expect_code(0);
        assert!(out.stdout.contains("3 stage(s) ran"), "{}", out.stdout);
        let all = runs(&home, &id);
        // Both ran after the storyboard had committed.
        let story_end = of_stage(&all, "storyboard")[0]["finished_at"]
            .as_i64()
            .unwrap();
        for stage in ["keyframes", "clips"] {
            assert!(of_stage(&all, stage)[0]["started_at"].as_i64().unwrap() >= story_end);
        }
        seen.push(overlapped(&all, "keyframes", "clips"));
    }
    assert_eq!(
        seen,
        [false, true],
        "--jobs 1 runs them one at a time, --jobs 2 together"
    );
}

#[test]
fn a_failed_stage_stops_only_the_stages_that_run_after_it() {
    let home = TestHome::new();
    let id = home.project("graph", SCRIPT);
    // keyframes fails (its memory limit); clips runs after the storyboard alone and goes on;
    // "late" runs after keyframes and is not reached.
    let text = forked(0, "")
        .replacen(
            "name = \"keyframes\"\n",
            "name = \"keyframes\"\nmax-memory = 64\n",
            1,
        )
        .replacen("spin = 0\n", "spin = 0\ngrow-scene = 0\ngrow-mib = 96\n", 1)
        + &format!(
            "\n[[stage]]\nname = \"late\"\nplugin = \"{}\"\nafter = [\"keyframes\", \"clips\"]\n",
            vidpipe_example_plugins::BULK_STAGE_PATH
        );
    let m = manifest(&home, "failing.toml", &text);
    let out = home.vidpipe(&["run", &m, "--project", &id]).expect_code(1);
    for line in [
        "[2/4] keyframes: FAILED",
        "[3/4] clips: succeeded",
        "[4/4] late: not run (an earlier stage failed)",
    ] {
        assert!(out.stdout.contains(line), "{line}: {}", out.stdout);
    }
    assert!(
        out.stderr.contains("stage keyframes (2 of 4) failed"),
        "{}",
        out.stderr
    );
    let all = runs(&home, &id);
    assert_eq!(of_stage(&all, "clips")[0]["status"], "succeeded");
    assert!(of_stage(&all, "late").is_empty());
    assert_eq!(home.show(&id)["video_clips"].as_array().unwrap().len(), 8);
    // `runs show` lists every stage, the one not reached too, and says why.
    let pipeline: String = home
        .db()
        .query_row("SELECT id FROM pipelines", [], |r| r.get(0))
        .unwrap();
    let shown = home.vidpipe(&["runs", "show", &pipeline]).expect_code(0);
    assert!(
        shown.stdout.contains(
            "late                  not run  not reached: keyframes, which it runs after, did not succeed"
        ),
        "{}",
        shown.stdout
    );
    assert_consistent(&home);
}

#[test]
fn a_cycle_or_an_unknown_stage_in_after_is_refused_naming_the_stages() {
    let home = TestHome::new();
    let id = home.project("graph", SCRIPT);
    let cases = [
        (
            forked(0, "").replacen(
                "name = \"storyboard\"\n",
                "name = \"storyboard\"\nafter = [\"clips\"]\n",
                1,
            ),
            "`stage[0].after` makes a cycle: storyboard → clips → storyboard",
        ),
        (
            forked(0, "").replacen("after = [\"storyboard\"]", "after = [\"story\"]", 1),
            "`stage[2].after` names \"story\", which is no stage of this pipeline",
        ),
    ];
    for (text, says) in cases {
        let m = manifest(&home, "bad.toml", &text);
        let out = home.vidpipe(&["run", &m, "--project", &id]);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(out.stderr.contains(says), "{says}: {}", out.stderr);
    }
    assert!(runs(&home, &id).is_empty());
}

/// A one-stage pipeline running the attacker plugin in `mode`, once per scene if `fanned`.
fn attacker_manifest(mode: &str, fanned: bool, config: &str) -> String {
    let for_each = if fanned { "for-each = \"scene\"\n" } else { "" };
    format!(
        "name = \"attack\"\n\n[[stage]]\nname = \"attack\"\nplugin = \"{}\"\n{for_each}\
         [stage.config]\nmode = \"{mode}\"\n{config}\n",
        vidpipe_example_plugins::ATTACKER_PATH
    )
}

/// `name`'s record in a `project show --json` document, as (kind, size, sha256).
fn artifact<'a>(d: &'a Value, name: &str) -> Option<(&'a Value, &'a Value, &'a Value)> {
    d["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .map(|a| (&a["kind"], &a["size"], &a["sha256"]))
}

#[test]
fn a_hostile_shard_is_refused_other_scenes_rows_and_files_through_the_binary() {
    let home = TestHome::new();
    let id = home.project("hostile", SCRIPT);
    let m = manifest(
        &home,
        "fanned.toml",
        &fanned_bulk_manifest(4096, 8192, 0, "", ""),
    );
    home.vidpipe(&["run", &m, "--project", &id, "--jobs", "2"])
        .expect_code(0);
    // A file of the whole project, which no row names and no shard wrote.
    home.vidpipe(&[
        "stage",
        "run",
        vidpipe_example_plugins::ATTACKER_PATH,
        "--project",
        &id,
        "--set",
        "mode=leave-file",
        "--set",
        "name=project.bin",
    ])
    .expect_code(0);
    let before = home.show(&id);
    let files_before = home.files(&id);

    // Each shard writes its own side file, then tries every write outside its scene.
    let attack = manifest(
        &home,
        "attack.toml",
        &attacker_manifest("scope-escape", true, ""),
    );
    home.vidpipe(&["run", &attack, "--project", &id, "--jobs", "2"])
        .expect_code(0);
    let all = runs(&home, &id);
    let shards = of_stage(&all, "attack");
    assert_eq!(shards.len(), 8);
    for r in shards {
        assert_eq!(r["status"], "succeeded", "{r}");
        let summary = r["summary"].as_str().unwrap();
        let (n, rest) = summary.split_once(" attempts: ").unwrap();
        let counts = rest
            .strip_suffix("; allowed: none")
            .unwrap_or_else(|| panic!("every attempt is refused: {summary}"));
        // Per other scene: its update and delete, a keyframe's update and a new keyframe (28);
        // a new scene; and a replace and a delete of each file it does not own: 14 keyframes,
        // 7 clips, storyboard.md, project.bin, and the side files of the shards that committed
        // before it.
        let n: usize = n.parse().unwrap();
        assert!(n >= 28 + 1 + 2 * (14 + 7 + 2), "{summary}");
        assert!(n <= 28 + 1 + 2 * (14 + 7 + 2 + 7), "{summary}");
        let mut refused = 0;
        for count in counts.split(", ") {
            let (got, k) = count.rsplit_once(' ').unwrap();
            let k: usize = k.parse().unwrap();
            match got {
                "out-of-scope" => {}
                // Deleting a file a row names is refused before its scope is asked.
                "conflict" => assert_eq!(k, 14 + 7, "{summary}"),
                other => panic!("an attempt got {other}: {summary}"),
            }
            refused += k;
        }
        assert_eq!(refused, n, "{summary}");
    }

    // Nothing outside each shard's own side file changed: rows, files and their contents.
    let after = home.show(&id);
    for table in ["scenes", "keyframes", "video_clips"] {
        assert_eq!(after[table], before[table], "{table}");
    }
    for a in before["artifacts"].as_array().unwrap() {
        let name = a["name"].as_str().unwrap();
        assert_eq!(
            artifact(&after, name),
            artifact(&before, name),
            "{name} is as it was"
        );
    }
    let mut expected = files_before.clone();
    for i in 0..8 {
        let (_, size, _) = artifact(&after, &format!("side-{i}.bin")).unwrap();
        assert_eq!(size, 4);
        expected.push(format!("output/side-{i}.bin"));
    }
    expected.sort();
    assert_eq!(
        after["artifacts"].as_array().unwrap().len(),
        before["artifacts"].as_array().unwrap().len() + 8
    );
    assert_eq!(home.files(&id), expected);
    assert_consistent(&home);
}

#[test]
fn a_stage_that_reads_more_than_the_host_records_always_runs_again() {
    let home = TestHome::new();
    let id = home.project("flood", SCRIPT);
    // 20,000 different scenes read, more than the 10,000 reads a run records: none is kept.
    let flood = manifest(
        &home,
        "flood.toml",
        &attacker_manifest("read-flood", false, "count = 20000"),
    );
    home.vidpipe(&["run", &flood, "--project", &id])
        .expect_code(0);
    let again = home
        .vidpipe(&["run", &flood, "--project", &id])
        .expect_code(0);
    assert!(
        again.stdout.contains("1 stage(s) ran, 0 skipped"),
        "{}",
        again.stdout
    );
    let pipeline = common::pipeline_run(&again);
    let shown = home.vidpipe(&["runs", "show", &pipeline]).expect_code(0);
    assert!(
        shown
            .stdout
            .contains("ran      what the last run read was not recorded"),
        "{}",
        shown.stdout
    );
    assert_eq!(of_stage(&runs(&home, &id), "attack").len(), 2);

    // 100 reads are recorded, and nothing they read changed: the rerun skips it.
    let few = manifest(
        &home,
        "few.toml",
        &attacker_manifest("read-flood", false, "count = 100"),
    );
    home.vidpipe(&["run", &few, "--project", &id])
        .expect_code(0);
    let skipped = home
        .vidpipe(&["run", &few, "--project", &id])
        .expect_code(0);
    assert!(
        skipped.stdout.contains("0 stage(s) ran, 1 skipped"),
        "{}",
        skipped.stdout
    );
    assert_eq!(of_stage(&runs(&home, &id), "attack").len(), 3);
}

#[test]
fn a_shard_started_before_its_inputs_were_all_done_runs_again_if_what_it_read_changed() {
    let home = TestHome::new();
    let id = home.project("early", SCRIPT);
    // Scene 7's keyframes end 1.5 s after the others; every clip counts scene 7's keyframes
    // into its frame rate, so the clips that start early read what is about to change.
    let text = early_manifest("sleep-scene = 7\nsleep-ms = 1500");
    let m = manifest(&home, "early.toml", &text);
    let out = home
        .vidpipe(&["run", &m, "--project", &id, "--jobs", "2"])
        .expect_code(0);
    let all = runs(&home, &id);
    let scene7 = home.show(&id)["scenes"][7]["id"].clone();
    let late = ms(of_shard(&all, "keyframes", &scene7)[0], "finished_at");
    // The clips did not wait for scene 7's keyframes: the free worker drew them meanwhile.
    let clips = of_stage(&all, "clips");
    let early = |r: &&Value| ms(r, "started_at") < late;
    assert!(clips.iter().any(early), "{}", out.stdout);
    // A clip that ran before scene 7's keyframes were there read none of them, and ran again
    // once they were; a clip that started after ran once. (One that started just before and
    // read just after read the settled state: it runs once too.)
    let mut twice = 0;
    for scene in scene_ids(&home, &id) {
        let of_scene: Vec<_> = clips.iter().filter(|c| c["scene_id"] == scene).collect();
        match of_scene.as_slice() {
            [_] => {}
            [first, second] => {
                twice += 1;
                assert!(early(first), "{first}");
                assert_ne!(first["scene_id"], scene7);
                assert!(
                    second["reason"]
                        .as_str()
                        .unwrap()
                        .ends_with("(it had run before its inputs were all done)"),
                    "{second}"
                );
            }
            runs => panic!("scene {scene}: {} clip runs: {runs:?}", runs.len()),
        }
    }
    // Scenes 0 to 6 were drawn while scene 7's keyframes slept 1.5 s.
    assert!(twice > 0, "{}", out.stdout);
    assert_eq!(clips.len(), 8 + twice);
    // The end state is the one waiting for every keyframe would give.
    let d = home.show(&id);
    let rates: Vec<_> = d["video_clips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["frame_rate"].as_i64().unwrap())
        .collect();
    assert_eq!(rates, vec![26; 8]);
    assert_consistent(&home);
    // And it stands: nothing runs again.
    let again = home.vidpipe(&["run", &m, "--project", &id]).expect_code(0);
    assert!(
        again.stdout.contains("0 stage(s) ran, 3 skipped"),
        "{}",
        again.stdout
    );
}

#[test]
fn once_an_input_fails_no_more_shards_start_and_none_runs_again() {
    let home = TestHome::new();
    let id = home.project("stop", SCRIPT);
    // Scene 7's keyframes land after 1 s, changing what every clip reads; scene 6's fail
    // after 2 s. The clips of scenes 0 to 5 are drawn meanwhile, on the free workers.
    let text = early_manifest("sleep-scene = 7\nsleep-ms = 1000\nfail-scene = 6\nfail-ms = 2000");
    let m = manifest(&home, "stop.toml", &text);
    let out = home
        .vidpipe(&["run", &m, "--project", &id, "--jobs", "4"])
        .expect_code(1);
    assert!(
        out.stderr
            .contains("1 of 8 shards failed: the shard of scene 6 failed"),
        "{}",
        out.stderr
    );
    let all = runs(&home, &id);
    let d = home.show(&id);
    let scene6 = d["scenes"][6]["id"].clone();
    let failed_at = ms(of_shard(&all, "keyframes", &scene6)[0], "finished_at");
    let clips = of_stage(&all, "clips");
    // Some read scene 7's keyframes before they were there.
    let scene7 = d["scenes"][7]["id"].clone();
    let landed = ms(of_shard(&all, "keyframes", &scene7)[0], "finished_at");
    let early = clips
        .iter()
        .filter(|c| ms(c, "finished_at") < landed)
        .count();
    assert!(early > 0, "{}", out.stdout);
    for c in &clips {
        // None started after the failure, none was run a second time (what the early ones
        // read did change, but their input failed: the next run decides them), and scene 6
        // got none (scene 7's, drawn once its keyframes were there, read the settled state).
        assert!(ms(c, "started_at") <= failed_at, "{c}");
        assert_ne!(c["scene_id"], scene6);
        assert_eq!(
            clips
                .iter()
                .filter(|o| o["scene_id"] == c["scene_id"])
                .count(),
            1,
            "{c}"
        );
    }
    let line = format!(
        "[3/3] clips: stopped (an earlier stage failed): 8 scene(s), {} ran, 0 skipped, {} not reached",
        clips.len(),
        8 - clips.len()
    );
    assert!(out.stdout.contains(&line), "{line}\n{}", out.stdout);
    assert_consistent(&home);
    // With the failure gone, the next run ends where a run that never failed does.
    let fixed = manifest(
        &home,
        "fixed.toml",
        &text.replace("fail-scene = 6\nfail-ms = 2000", ""),
    );
    home.vidpipe(&["run", &fixed, "--project", &id, "--jobs", "4"])
        .expect_code(0);
    let rates: Vec<_> = home.show(&id)["video_clips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["frame_rate"].as_i64().unwrap())
        .collect();
    assert_eq!(rates, vec![26; 8]);
}

#[test]
fn a_shard_run_again_never_overlaps_a_run_of_its_scene_after_it_and_those_see_its_new_work() {
    let home = TestHome::new();
    let id = home.project("chain", SCRIPT);
    // As in the test above, the clips drawn before scene 7's keyframes land run again; here a
    // per-scene `check` stage after the clips writes each scene's clip frame rate to a file.
    // Scene 0's check is still running (it sleeps 2.5 s) when the clips are checked again, so
    // scene 0's clip must wait for it before it runs again; the other checks are done, and run
    // again on the new clips.
    let text = early_manifest("sleep-scene = 7\nsleep-ms = 1500")
        + "\n"
        + &check_stage("clips", "sleep-scene = 0\nsleep-ms = 2500");
    let m = manifest(&home, "chain.toml", &text);
    let out = home
        .vidpipe(&["run", &m, "--project", &id, "--jobs", "2"])
        .expect_code(0);
    let all = runs(&home, &id);
    let (clips, checks) = (of_stage(&all, "clips"), of_stage(&all, "check"));
    let span = |r: &Value| (ms(r, "started_at"), ms(r, "finished_at"));
    let mut again = 0;
    for scene in scene_ids(&home, &id) {
        let of = |runs: &[&Value]| -> Vec<(i64, i64)> {
            runs.iter()
                .filter(|r| r["scene_id"] == scene)
                .map(|r| span(r))
                .collect()
        };
        let (c, k) = (of(&clips), of(&checks));
        again += c.len() - 1;
        // No run of the scene's check overlaps a run of its clip (times in ms: touching is
        // not overlapping) ...
        for &(c0, c1) in &c {
            for &(k0, k1) in &k {
                assert!(
                    c1 <= k0 || k1 <= c0,
                    "scene {scene}: clip {c0}–{c1}, check {k0}–{k1}"
                );
            }
        }
        // ... and the last check ran on the last clip.
        let last_clip = c.iter().map(|s| s.1).max().unwrap();
        let last_check = k.iter().map(|s| s.0).max().unwrap();
        assert!(last_check >= last_clip, "scene {scene}: {c:?} {k:?}");
    }
    assert!(again > 0, "no clip ran again: {}", out.stdout);
    // Every check file holds the frame rate the settled clips have.
    for index in 0..8 {
        let file = home
            .project_dir(&id)
            .join("output")
            .join(format!("check-{index:03}.txt"));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "26", "{file:?}");
    }
    assert_consistent(&home);
    let rerun = home.vidpipe(&["run", &m, "--project", &id]).expect_code(0);
    assert!(
        rerun.stdout.contains("0 stage(s) ran, 4 skipped"),
        "{}",
        rerun.stdout
    );
}

#[test]
fn a_shard_queued_after_one_that_must_run_again_waits_for_the_rerun_and_runs_once() {
    let home = TestHome::new();
    let id = home.project("regate", SCRIPT);
    // Scene 0's clip reads scene 7's keyframes before they land (1.5 s) and ends last (it
    // sleeps 3 s), so its check is decided, and queued, just before the clips are checked
    // again. (The check stage is listed before the clips, which it runs after, so that it is
    // decided first.) Its clip must run again: the queued check goes back to wait for it and
    // runs once, on the new clip.
    let clips = "[[stage]]\nname = \"clips\"\n";
    let text = early_manifest("sleep-scene = 7\nsleep-ms = 1500").replacen(
        clips,
        &format!(
            "{}\n{clips}after = [\"keyframes\"]\n",
            check_stage("clips", "")
        ),
        1,
    ) + "sleep-scene = 0\nsleep-ms = 3000\n";
    let m = manifest(&home, "regate.toml", &text);
    let out = home
        .vidpipe(&["run", &m, "--project", &id, "--jobs", "2"])
        .expect_code(0);
    let all = runs(&home, &id);
    let scene0 = home.show(&id)["scenes"][0]["id"].clone();
    let (clips, checks) = (
        of_shard(&all, "clips", &scene0),
        of_shard(&all, "check", &scene0),
    );
    assert_eq!(clips.len(), 2, "{}", out.stdout);
    assert_eq!(checks.len(), 1, "{}", out.stdout);
    assert!(
        ms(checks[0], "started_at") >= ms(clips[1], "finished_at"),
        "{checks:?} {clips:?}"
    );
    let file = home.project_dir(&id).join("output").join("check-000.txt");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "26");
    assert_consistent(&home);
}
