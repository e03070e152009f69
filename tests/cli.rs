//! The `vidpipe` binary end to end: real plugins, real host, a temp home.
// A failed unwrap is a failed test, with its location; that is what tests want.
#![allow(clippy::unwrap_used)]

mod common;

use common::{SCRIPT, TestHome, VIDPIPE};
use vidpipe_example_plugins as plugins;

#[test]
fn init_is_idempotent_and_leaves_a_wal_database_without_foreign_key_errors() {
    let home = TestHome::new();
    home.vidpipe(&["init"]).expect_code(0);
    let db = home.db();
    let mode: String = db
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let mut fk = db.prepare("PRAGMA foreign_key_check").unwrap();
    assert!(!fk.exists([]).unwrap());
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 7, "every migration applied");
}

#[test]
fn project_create_prints_only_the_new_uuid() {
    let home = TestHome::new();
    let run = home.vidpipe(&["project", "create", "Fox"]).expect_code(0);
    let id = run.stdout.trim();
    assert_eq!(
        run.stdout,
        format!("{id}\n"),
        "nothing but the id on stdout"
    );
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id:?} is a UUID");
    for kind in ["keyframes", "clips", "output"] {
        assert!(home.project_dir(id).join(kind).is_dir(), "{kind}/ exists");
    }
    let list = home.vidpipe(&["project", "list", "--json"]).expect_code(0);
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(list[0]["id"], id);
    assert_eq!(list[0]["status"], "draft");
}

#[test]
fn commands_on_a_home_that_was_never_initialised_fail_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(VIDPIPE)
        .args([
            "--home",
            dir.path().join("nowhere").to_str().unwrap(),
            "project",
            "list",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("vidpipe init"));
    assert!(!dir.path().join("nowhere").exists(), "nothing was created");
}

#[test]
fn the_storyboard_stage_writes_one_scene_per_paragraph_and_a_markdown_document() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let run = home
        .vidpipe(&[
            "stage",
            "run",
            plugins::STORYBOARD_PATH,
            "--project",
            &id,
            "--set",
            "seconds-per-scene=2.5",
        ])
        .expect_code(0);
    assert!(run.stdout.contains("succeeded"), "{}", run.stdout);
    assert!(
        run.stdout.contains("storyboard.md"),
        "prints where the result is: {}",
        run.stdout
    );

    let detail = home.show(&id);
    let scenes = detail["scenes"].as_array().unwrap();
    assert_eq!(scenes.len(), 3);
    assert_eq!(scenes[0]["index"], 0);
    assert_eq!(scenes[0]["title"], "A red fox wakes in the snow");
    assert_eq!(
        scenes[1]["description"],
        "The fox crosses a frozen river, slipping once."
    );
    assert!(scenes.iter().all(|s| s["duration_ms"] == 2500));
    assert_eq!(detail["project"]["status"], "ready");
    let runs = detail["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "succeeded");
    assert_eq!(runs[0]["stage"], "storyboard");
    assert_eq!(runs[0]["config"]["seconds-per-scene"], "2.5");
    assert_eq!(runs[0]["plugin_sha256"].as_str().unwrap().len(), 64);

    let doc_path = home.project_dir(&id).join("output/storyboard.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    assert!(doc.starts_with("# Storyboard: Fox"), "{doc}");
    assert!(
        doc.contains("## Scene 2 — The fox crosses a frozen river, slipping once"),
        "{doc}"
    );
    assert!(doc.contains("2.5 s"), "{doc}");
    let artifact = &detail["artifacts"][0];
    assert_eq!(artifact["kind"], "output");
    assert_eq!(artifact["name"], "storyboard.md");
    assert_eq!(artifact["size"], doc.len());
    use sha2::Digest;
    assert_eq!(
        artifact["sha256"],
        hex::encode(sha2::Sha256::digest(doc.as_bytes()))
    );
    assert_eq!(
        home.files(&id),
        vec!["output/storyboard.md"],
        "no staged files remain"
    );
}

#[test]
fn running_the_storyboard_again_updates_the_same_scenes() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    home.vidpipe(&["stage", "run", plugins::STORYBOARD_PATH, "--project", &id])
        .expect_code(0);
    let first = home.show(&id);
    home.vidpipe(&[
        "stage",
        "run",
        plugins::STORYBOARD_PATH,
        "--project",
        &id,
        "--set",
        "format=json",
    ])
    .expect_code(0);
    let second = home.show(&id);
    let ids = |d: &serde_json::Value| -> Vec<String> {
        d["scenes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&first), ids(&second));
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(home.project_dir(&id).join("output/storyboard.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["scenes"].as_array().unwrap().len(), 3);
    assert_eq!(second["runs"].as_array().unwrap().len(), 2);
}

#[test]
fn a_stage_that_returns_an_error_is_recorded_as_failed_exits_1_and_leaves_nothing() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let run = home
        .vidpipe(&[
            "stage",
            "run",
            plugins::FAULTY_STAGE_PATH,
            "--project",
            &id,
            "--set",
            "mode=error",
        ])
        .expect_code(1);
    assert!(
        run.stderr.contains("faulty-stage failed on purpose"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("conflict"),
        "names the error code: {}",
        run.stderr
    );
    let detail = home.show(&id);
    assert_eq!(detail["runs"][0]["status"], "failed");
    assert!(
        detail["runs"][0]["error"]
            .as_str()
            .unwrap()
            .contains("failed on purpose")
    );
    assert_eq!(detail["project"]["status"], "failed");
    assert!(
        detail["scenes"].as_array().unwrap().is_empty(),
        "the scene it wrote is gone"
    );
    assert!(
        detail["artifacts"].as_array().unwrap().is_empty(),
        "the artifact it finished is gone"
    );
    assert!(
        home.files(&id).is_empty(),
        "no file, staged or half-written, remains: {:?}",
        home.files(&id)
    );
}

#[test]
fn the_same_faulty_plugin_commits_everything_when_it_succeeds() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    home.vidpipe(&[
        "stage",
        "run",
        plugins::FAULTY_STAGE_PATH,
        "--project",
        &id,
        "--set",
        "mode=ok",
    ])
    .expect_code(0);
    let detail = home.show(&id);
    assert_eq!(detail["scenes"][0]["title"], "doomed");
    assert_eq!(
        home.files(&id),
        vec!["output/doomed.txt"],
        "the unfinished writer published nothing"
    );
}

#[test]
fn traps_timeouts_and_memory_bombs_fail_the_run_with_a_named_reason_and_leave_nothing() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let cases: [(&str, &[&str], &str); 3] = [
        ("trap", &[], "trap"),
        ("loop", &["--timeout", "1"], "time limit of 1 s"),
        ("memory", &["--max-memory", "64"], "memory limit of 64 MiB"),
    ];
    for (mode, extra, reason) in cases {
        let set = format!("mode={mode}");
        let mut args = vec![
            "stage",
            "run",
            plugins::FAULTY_STAGE_PATH,
            "--project",
            &id,
            "--set",
            &set,
        ];
        args.extend_from_slice(extra);
        let run = home.vidpipe(&args).expect_code(1);
        assert!(run.stderr.contains(reason), "{mode}: {}", run.stderr);
    }
    let detail = home.show(&id);
    let runs = detail["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|r| r["status"] == "failed"));
    assert!(detail["scenes"].as_array().unwrap().is_empty());
    assert!(home.files(&id).is_empty(), "{:?}", home.files(&id));
}

#[test]
fn an_unknown_project_id_is_bad_input_and_writes_nothing() {
    let home = TestHome::new();
    for id in [
        "00000000-0000-4000-8000-000000000000",
        "../../etc",
        "not-a-uuid",
    ] {
        let run = home
            .vidpipe(&["stage", "run", plugins::STORYBOARD_PATH, "--project", id])
            .expect_code(2);
        assert!(run.stderr.contains("project"), "{}", run.stderr);
    }
    assert_eq!(home.count("SELECT count(*) FROM pipeline_runs"), 0);
}

#[test]
fn garbage_core_modules_and_components_of_another_world_are_refused_with_exit_2() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let garbage = home.dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"this is not wasm at all").unwrap();
    let truncated = home.dir.path().join("truncated.wasm");
    let storyboard = std::fs::read(plugins::STORYBOARD_PATH).unwrap();
    std::fs::write(&truncated, &storyboard[..storyboard.len() / 2]).unwrap();
    let core = home.dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let cases = [
        (garbage.to_str().unwrap(), "not a WebAssembly file"),
        (
            truncated.to_str().unwrap(),
            "not a valid WebAssembly component",
        ),
        (
            core.to_str().unwrap(),
            "core WebAssembly module, not a component",
        ),
        (plugins::OTHER_WORLD_PATH, "does not export"),
        (
            plugins::FUTURE_VERSION_PATH,
            "@0.3.0, but this host implements vidpipe:plugin@0.1.0 and @0.2.0 only",
        ),
        (home.dir.path().to_str().unwrap(), "is a directory"),
    ];
    for (plugin, message) in cases {
        let run = home
            .vidpipe(&["stage", "run", plugin, "--project", &id])
            .expect_code(2);
        assert!(run.stderr.contains(message), "{plugin}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
    }
    assert_eq!(
        home.count("SELECT count(*) FROM pipeline_runs"),
        0,
        "no run was recorded"
    );
}

#[test]
fn bad_flags_are_usage_errors_that_write_nothing() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let bad: [&[&str]; 4] = [
        &["--set", "no-equals-sign"],
        &["--timeout", "0"],
        &["--max-memory", "0"],
        &["--set", "a=1", "--set", "a=2"],
    ];
    for extra in bad {
        let mut args = vec!["stage", "run", plugins::STORYBOARD_PATH, "--project", &id];
        args.extend_from_slice(extra);
        home.vidpipe(&args).expect_code(2);
    }
    home.vidpipe(&["stage", "frobnicate"]).expect_code(2);
    assert_eq!(home.count("SELECT count(*) FROM pipeline_runs"), 0);
}

#[test]
fn plugin_inspect_shows_the_target_version_and_only_wasi_and_vidpipe_imports() {
    let home = TestHome::new();
    let run = home
        .vidpipe(&["plugin", "inspect", plugins::STORYBOARD_PATH, "--json"])
        .expect_code(0);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        report["targets"],
        serde_json::json!(["vidpipe:plugin@0.2.0"])
    );
    assert_eq!(report["runnable"], true);
    assert_eq!(report["sha256"].as_str().unwrap().len(), 64);
    let imports: Vec<&str> = report["imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for wanted in [
        "vidpipe:plugin/db@0.2.0",
        "vidpipe:plugin/artifacts@0.2.0",
        "vidpipe:plugin/log@0.2.0",
    ] {
        assert!(imports.contains(&wanted), "{wanted} in {imports:?}");
    }
    for import in &imports {
        assert!(
            import.starts_with("vidpipe:plugin/") || import.starts_with("wasi:"),
            "{import}"
        );
        assert!(
            !import.starts_with("wasi:sockets") && !import.starts_with("wasi:http"),
            "{import}"
        );
    }
    assert!(
        report["exports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().starts_with("run"))
    );

    let other = home
        .vidpipe(&["plugin", "inspect", plugins::OTHER_WORLD_PATH])
        .expect_code(0);
    assert!(other.stdout.contains("runnable  no"), "{}", other.stdout);
}

#[test]
fn create_scenes_writes_a_batch_in_order_and_names_the_row_that_fails() {
    let home = TestHome::new();
    let id = home.project("Batch", "");
    let run = |first: &str| {
        home.vidpipe(&[
            "stage",
            "run",
            plugins::BENCH_STAGE_PATH,
            "--project",
            &id,
            "--set",
            "mode=rows",
            "--set",
            "rows=250",
            "--set",
            "batch=100",
            "--set",
            &format!("first={first}"),
        ])
    };
    run("0").expect_code(0);
    let scenes = home.show(&id)["scenes"].as_array().unwrap().clone();
    assert_eq!(scenes.len(), 250);
    assert!(
        scenes
            .iter()
            .enumerate()
            .all(|(i, s)| s["index"] == i && s["title"] == format!("Scene {i}"))
    );
    // Indexes 200..449 collide from the first row on: the stage fails, naming the row, and
    // nothing of it is kept.
    let failed = run("200").expect_code(1);
    assert!(
        failed.stderr.contains("scene 0 of the batch"),
        "{}",
        failed.stderr
    );
    assert_eq!(home.show(&id)["scenes"].as_array().unwrap().len(), 250);
}
