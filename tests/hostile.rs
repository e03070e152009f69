//! Hostile plugins through the real binary: each misbehaviour ends as a recorded failure with a
//! named reason (or a refusal the plugin reports), the host stays up, and nothing else changes.

// A failed unwrap is a failed test, with its location; that is what tests want.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use common::{SCRIPT, TestHome, bulk_manifest, manifest, normalized_state};
use vidpipe_example_plugins as plugins;

fn faulty(home: &TestHome, id: &str, mode: &str, extra: &[&str]) -> common::Run {
    let set = format!("mode={mode}");
    let mut args = vec![
        "stage",
        "run",
        plugins::FAULTY_STAGE_PATH,
        "--project",
        id,
        "--set",
        &set,
    ];
    args.extend_from_slice(extra);
    home.vidpipe(&args)
}

fn assert_nothing_left(home: &TestHome, id: &str) {
    let detail = home.show(id);
    assert!(
        detail["scenes"].as_array().unwrap().is_empty(),
        "no scene of the failed run"
    );
    assert!(
        home.files(id).is_empty(),
        "no file of the failed run: {:?}",
        home.files(id)
    );
    assert_eq!(
        detail["runs"].as_array().unwrap().last().unwrap()["status"],
        "failed"
    );
}

#[test]
fn deep_recursion_ends_the_run_with_a_stack_overflow_and_leaves_nothing() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let run = faulty(&home, &id, "recursion", &[]).expect_code(1);
    assert!(
        run.stderr.contains("overflowed its stack"),
        "{}",
        run.stderr
    );
    assert_nothing_left(&home, &id);
}

#[test]
fn a_loop_of_host_calls_is_stopped_by_the_deadline() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    // Guest code, a loop of host calls, and WASI's blocking waits (a sleep, a poll).
    let cases = [
        (plugins::FAULTY_STAGE_PATH, "loop"),
        (plugins::FAULTY_STAGE_PATH, "host-loop"),
        (plugins::ATTACKER_PATH, "sleep"),
        (plugins::ATTACKER_PATH, "poll"),
    ];
    for (plugin, mode) in cases {
        let started = Instant::now();
        let set = format!("mode={mode}");
        let args = [
            "stage",
            "run",
            plugin,
            "--project",
            &id,
            "--set",
            &set,
            "--timeout",
            "1",
        ];
        let run = home
            .vidpipe_within(&args, std::time::Duration::from_secs(60))
            .expect_code(1);
        let command = started.elapsed();
        let detail = home.show(&id);
        let record = detail["runs"].as_array().unwrap().last().unwrap().clone();
        let stage_ms =
            record["finished_at"].as_i64().unwrap() - record["started_at"].as_i64().unwrap();
        // Reported, not asserted: timings belong in benchmarks, not in pass/fail.
        println!(
            "{mode}: with a 1 s deadline the stage ran {stage_ms} ms (overshoot {} ms); the whole command took {command:?}",
            stage_ms - 1000
        );
        assert!(
            run.stderr.contains("time limit of 1 s"),
            "{mode}: {}",
            run.stderr
        );
        if plugin == plugins::FAULTY_STAGE_PATH {
            assert_nothing_left(&home, &id);
        }
    }
}

#[test]
fn opening_writers_without_end_hits_the_handle_limit() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let run = faulty(&home, &id, "handles", &[]).expect_code(1);
    assert!(
        run.stderr.contains("limit-exceeded") && run.stderr.contains("writers may be open"),
        "{}",
        run.stderr
    );
    assert_nothing_left(&home, &id);
}

#[test]
fn ids_of_another_project_are_not_found_for_every_read_and_write() {
    let home = TestHome::new();
    let victim = home.project("Victim", SCRIPT);
    let m = manifest(&home, "bulk.toml", &bulk_manifest(1000, 0, 1000, 0));
    home.vidpipe(&["run", &m, "--project", &victim])
        .expect_code(0);
    let before = normalized_state(&home, &victim);
    let files_before = home.files(&victim);
    let detail = home.show(&victim);
    let mut ids = Vec::new();
    for (table, n) in [
        ("scenes", 3),
        ("keyframes", 6),
        ("video_clips", 3),
        ("runs", 3),
    ] {
        let rows = detail[table].as_array().unwrap();
        assert_eq!(rows.len(), n, "{table}");
        ids.push(rows[0]["id"].as_str().unwrap().to_owned());
    }
    ids.push(victim.clone());

    let attacker = home.project("Attacker", SCRIPT);
    let set = format!("ids={}", ids.join(","));
    let run = faulty(&home, &attacker, "foreign", &["--set", &set]);
    let summary = common::refusals(&run);
    let outcomes: Vec<&str> = summary.split("; ").collect();
    assert_eq!(outcomes.len(), 10 * ids.len(), "{summary}");
    for outcome in outcomes {
        assert!(
            outcome.ends_with(":not-found"),
            "refused as not found: {outcome}"
        );
    }
    assert_eq!(
        normalized_state(&home, &victim),
        before,
        "the victim's rows are unchanged"
    );
    assert_eq!(
        home.files(&victim),
        files_before,
        "the victim's files are unchanged"
    );
}

#[test]
fn files_environment_and_network_are_out_of_reach_of_a_plugin() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let run = faulty(&home, &id, "ambient", &[]);
    let summary = common::refusals(&run);
    assert!(!summary.contains("LEAKED"), "{summary}");
    for refused in [
        "read /etc/passwd: refused",
        "list /: refused",
        "connect 127.0.0.1:22: refused",
    ] {
        assert!(summary.contains(refused), "{refused} in {summary}");
    }
    assert!(
        summary.contains("environment: 0 variables, 0 arguments"),
        "{summary}"
    );
}

/// Peak resident memory (VmHWM, in KiB) of a running process, read until it exits.
fn watch_peak_rss(child: &mut std::process::Child) -> u64 {
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        if let Ok(text) = std::fs::read_to_string(&status) {
            let hwm = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok());
            peak = peak.max(hwm.unwrap_or(0));
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    peak
}

#[test]
fn a_memory_bomb_is_stopped_at_its_limit_and_host_memory_stays_bounded() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let measure = |mode: &str, memory: &str| -> (u64, common::Run) {
        let set = format!("mode={mode}");
        let args = [
            "stage",
            "run",
            plugins::FAULTY_STAGE_PATH,
            "--project",
            &id,
            "--set",
            &set,
            "--max-memory",
            memory,
        ];
        let mut child = home
            .command(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let peak = watch_peak_rss(&mut child);
        let out = child.wait_with_output().unwrap();
        let run = common::Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        (peak, run)
    };
    let (baseline, _) = measure("ok", "64");
    for limit in [64u64, 256] {
        let (peak, run) = measure("memory", &limit.to_string());
        let run = run.expect_code(1);
        assert!(
            run.stderr.contains(&format!("memory limit of {limit} MiB")),
            "{}",
            run.stderr
        );
        // Reported, not asserted: the growth is the guest's memory up to its limit, plus the host's own.
        println!(
            "memory bomb with a {limit} MiB limit: peak RSS {} MiB against {} MiB for a healthy run, growth {} MiB",
            peak / 1024,
            baseline / 1024,
            peak.saturating_sub(baseline) / 1024
        );
    }
}

#[test]
fn every_limit_can_be_set_per_stage_and_names_itself_when_hit() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    home.vidpipe(&["stage", "run", plugins::STORYBOARD_PATH, "--project", &id])
        .expect_code(0);
    let bulk = |extra: &[&str]| {
        let mut args = vec![
            "stage",
            "run",
            plugins::BULK_STAGE_PATH,
            "--project",
            &id,
            "--set",
            "kind=keyframe",
        ];
        args.extend_from_slice(extra);
        home.vidpipe(&args)
    };
    let quota = bulk(&["--set", "bytes=400000", "--project-quota", "1"]).expect_code(1);
    assert!(
        quota.stderr.contains("project quota is 1048576 bytes"),
        "{}",
        quota.stderr
    );
    let size = bulk(&["--set", "bytes=2000000", "--max-artifact-size", "1"]).expect_code(1);
    assert!(
        size.stderr.contains("limit-exceeded") && size.stderr.contains("1048576"),
        "{}",
        size.stderr
    );
    let handles = faulty(
        &home,
        &id,
        "handles",
        &["--max-writers", "1000", "--max-handles", "20"],
    )
    .expect_code(1);
    assert!(
        handles.stderr.contains("limit of 20 live resource handles"),
        "{}",
        handles.stderr
    );
    let writers = faulty(&home, &id, "handles", &["--max-writers", "3"]).expect_code(1);
    assert!(
        writers.stderr.contains("at most 3 artifact writers"),
        "{}",
        writers.stderr
    );
    let instances = faulty(&home, &id, "ok", &["--max-instances", "1"]).expect_code(1);
    assert!(
        instances.stderr.contains("instance"),
        "{}",
        instances.stderr
    );
    // Within the limits the same stages pass.
    bulk(&[
        "--set",
        "bytes=1000",
        "--project-quota",
        "1",
        "--max-artifact-size",
        "1",
    ])
    .expect_code(0);

    for bad in [
        ["--max-writers", "0"],
        ["--project-quota", "0"],
        ["--max-instances", "99999999"],
        ["--timeout", "0"],
    ] {
        let run = faulty(&home, &id, "ok", &bad).expect_code(2);
        assert!(
            run.stderr.contains(bad[0]),
            "names the flag: {}",
            run.stderr
        );
    }
}

#[test]
fn a_one_gib_list_passed_to_an_import_is_refused_and_a_ten_million_element_one_is_bounded() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let run = faulty(&home, &id, "big-list", &["--max-memory", "2048"]).expect_code(1);
    assert!(
        run.stderr.contains("more than 32 MiB to one host call"),
        "{}",
        run.stderr
    );
    assert_nothing_left(&home, &id);
    // Ten million elements fit the chunk limit: written, and committed with the rest.
    faulty(&home, &id, "big-list", &["--set", "bytes=10000000"]).expect_code(0);
    let detail = home.show(&id);
    let huge = detail["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "huge.bin")
        .cloned()
        .unwrap();
    assert_eq!(huge["size"], 10_000_000);
}

#[test]
fn a_stage_stopped_by_its_deadline_leaves_none_of_its_finished_artifacts_behind() {
    let home = TestHome::new();
    let script: String = (1..=10).map(|i| format!("Scene number {i}.\n\n")).collect();
    let id = home.project("Fox", &script);
    home.vidpipe(&["stage", "run", plugins::STORYBOARD_PATH, "--project", &id])
        .expect_code(0);
    // 20 artifacts with a spin between them: several are finished (staged) when time runs out.
    let run = home
        .vidpipe(&[
            "stage",
            "run",
            plugins::BULK_STAGE_PATH,
            "--project",
            &id,
            "--set",
            "kind=keyframe",
            "--set",
            "spin=400000000",
            "--timeout",
            "1",
        ])
        .expect_code(1);
    assert!(run.stderr.contains("time limit of 1 s"), "{}", run.stderr);
    assert_eq!(
        home.files(&id),
        ["output/storyboard.md"],
        "no staged or published keyframe is left"
    );
    assert!(home.show(&id)["keyframes"].as_array().unwrap().is_empty());
}

#[test]
fn clips_that_are_not_videos_fail_the_assemble_stage_naming_the_scene_and_change_no_file() {
    let home = TestHome::new();
    let id = home.project("Hostile clips", SCRIPT);
    // The bulk plugin records 2 MiB of patterned bytes per scene as its clip: what a broken or
    // hostile clips stage could leave for the assemble stage to read.
    let m = manifest(&home, "bulk.toml", &bulk_manifest(1000, 0, 2 << 20, 0));
    home.vidpipe(&["run", &m, "--project", &id]).expect_code(0);
    let files = home.files(&id);
    let run = home.vidpipe(&["stage", "run", plugins::ASSEMBLE_PATH, "--project", &id]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("vidpipe: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {}", run.stderr);
    for says in [
        "invalid-input",
        "scene 0",
        "is not an H.264 or AV1 MP4",
        "run the clips stage again",
    ] {
        assert!(errors[0].contains(says), "{says}: {}", errors[0]);
    }
    assert!(
        !run.stderr.contains("trap"),
        "a clean error, not a trap: {}",
        run.stderr
    );
    assert_eq!(home.files(&id), files, "no output was written");
}
