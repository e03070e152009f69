//! Pipelines through the real binary: manifests, atomic stages, resume, run records, locks.

// A failed unwrap is a failed test, with its location; that is what tests want.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{SCRIPT, TestHome, bulk_manifest, manifest, normalized_state};
use vidpipe_example_plugins as plugins;

fn stage_statuses(home: &TestHome, id: &str) -> Vec<(String, String)> {
    let runs = home
        .vidpipe(&["runs", "list", "--project", id, "--json"])
        .expect_code(0);
    let runs: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
    runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["stage"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_pipeline_runs_its_stages_in_order_and_a_second_run_skips_them_all() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    // No extra scenes: the storyboard, rerun by --force, would delete the scenes it did not write.
    let m = manifest(&home, "bulk.toml", &bulk_manifest(1000, 0, 2000, 0));
    let first = home.vidpipe(&["run", &m, "--project", &id]).expect_code(0);
    assert!(
        first.stdout.contains("3 stage(s) ran, 0 skipped"),
        "{}",
        first.stdout
    );
    let state = normalized_state(&home, &id);
    assert_eq!(
        state["keyframes"].as_array().unwrap().len(),
        6,
        "two keyframes for each of 3 scenes"
    );
    assert_eq!(state["clips"].as_array().unwrap().len(), 3);
    assert_eq!(state["scenes"].as_array().unwrap().len(), 3);

    let second = home.vidpipe(&["run", &m, "--project", &id]).expect_code(0);
    assert!(
        second.stdout.contains("0 stage(s) ran, 3 skipped"),
        "{}",
        second.stdout
    );
    assert_eq!(normalized_state(&home, &id), state);
    assert_eq!(
        stage_statuses(&home, &id).len(),
        3,
        "skipped stages add no run"
    );

    let forced = home
        .vidpipe(&["run", &m, "--project", &id, "--force"])
        .expect_code(0);
    assert!(
        forced.stdout.contains("3 stage(s) ran, 0 skipped"),
        "{}",
        forced.stdout
    );
    assert_eq!(
        normalized_state(&home, &id),
        state,
        "rerunning deterministic stages changes nothing"
    );

    let list = home
        .vidpipe(&["runs", "list", "--project", &id, "--json"])
        .expect_code(0);
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let pipelines = list["pipelines"].as_array().unwrap();
    assert_eq!(pipelines.len(), 3);
    assert!(pipelines.iter().all(|p| p["status"] == "succeeded"));
    let shown = home
        .vidpipe(&[
            "runs",
            "show",
            pipelines[0]["id"].as_str().unwrap(),
            "--json",
        ])
        .expect_code(0);
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    let stages: Vec<&str> = shown["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["storyboard", "keyframes", "clips"]);
}

#[test]
fn a_changed_configuration_reruns_that_stage_and_then_only_the_stages_that_read_what_it_changed() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let m = manifest(&home, "a.toml", &bulk_manifest(1000, 0, 2000, 0));
    home.vidpipe(&["run", &m, "--project", &id]).expect_code(0);
    let expect = |run: &common::Run, lines: &[&str]| {
        for line in lines {
            assert!(run.stdout.contains(line), "{line}: {}", run.stdout);
        }
    };
    // Bigger keyframes: the bulk clips stage reads scenes and clips, never a keyframe, so
    // its work stands.
    let bigger = bulk_manifest(1500, 0, 2000, 0);
    let changed = manifest(&home, "b.toml", &bigger);
    let run = home
        .vidpipe(&["run", &changed, "--project", &id])
        .expect_code(0);
    expect(
        &run,
        &[
            "[1/3] storyboard: skipped",
            "[2/3] keyframes: succeeded",
            "[3/3] clips: skipped",
        ],
    );
    let state = normalized_state(&home, &id);
    assert!(
        state["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a[0] == "keyframe" && a[2] == 1500)
    );
    // Longer scenes: both later stages read the scenes, so both run again.
    let longer = bigger.replacen(
        "name = \"storyboard\"\nplugin = ",
        "name = \"storyboard\"\nconfig = { seconds-per-scene = 7 }\nplugin = ",
        1,
    );
    assert_ne!(longer, bigger);
    let changed = manifest(&home, "c.toml", &longer);
    let run = home
        .vidpipe(&["run", &changed, "--project", &id])
        .expect_code(0);
    expect(
        &run,
        &[
            "[1/3] storyboard: succeeded",
            "[2/3] keyframes: succeeded",
            "[3/3] clips: succeeded",
        ],
    );
    // `runs show` says why each ran.
    let pipeline = common::pipeline_run(&run);
    let shown = home.vidpipe(&["runs", "show", &pipeline]).expect_code(0);
    expect(
        &shown,
        &[
            "storyboard            ran      configuration changed",
            "keyframes             ran      the scenes changed",
            "clips                 ran      the scenes changed",
        ],
    );
}

#[test]
fn a_failing_stage_stops_the_pipeline_keeps_earlier_stages_and_leaves_no_trace_of_itself() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let m = manifest(
        &home,
        "failing.toml",
        &format!(
            "[[stage]]\nname = \"storyboard\"\nplugin = \"{}\"\n\n\
             [[stage]]\nname = \"faulty\"\nplugin = \"{}\"\nconfig = {{ mode = \"trap\" }}\n\n\
             [[stage]]\nname = \"clips\"\nplugin = \"{}\"\nconfig = {{ kind = \"clip\" }}\n",
            plugins::STORYBOARD_PATH,
            plugins::FAULTY_STAGE_PATH,
            plugins::BULK_STAGE_PATH
        ),
    );
    let run = home.vidpipe(&["run", &m, "--project", &id]).expect_code(1);
    assert!(
        run.stdout.contains("[3/3] clips: not run"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("stage faulty (2 of 3) failed"),
        "{}",
        run.stderr
    );
    let detail = home.show(&id);
    let titles: Vec<&str> = detail["scenes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["title"].as_str().unwrap())
        .collect();
    assert!(
        !titles.contains(&"doomed"),
        "the faulty stage's scene is gone: {titles:?}"
    );
    assert_eq!(titles.len(), 3, "the storyboard's scenes stay");
    assert_eq!(home.files(&id), ["output/storyboard.md"]);
    assert_eq!(
        stage_statuses(&home, &id),
        [
            ("storyboard".to_owned(), "succeeded".to_owned()),
            ("faulty".to_owned(), "failed".to_owned())
        ]
    );
}

#[test]
fn bad_manifests_exit_2_and_write_nothing() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let s = plugins::STORYBOARD_PATH;
    let cases = [
        (
            "missing.toml",
            "[[stage]]\nname = \"a\"\nplugin = \"nowhere.wasm\"\n".to_owned(),
            "stage[0].plugin",
        ),
        (
            "unknown.toml",
            format!("[[stage]]\nname = \"a\"\nplugin = \"{s}\"\ncolor = 1\n"),
            "unknown field `color`",
        ),
        (
            "limits.toml",
            format!("[[stage]]\nname = \"a\"\nplugin = \"{s}\"\ntimeout = -1\n"),
            "stage[0].timeout",
        ),
        (
            "memory.toml",
            format!("[[stage]]\nname = \"a\"\nplugin = \"{s}\"\nmax-memory = 0\n"),
            "stage[0].max-memory",
        ),
        (
            "dir.toml",
            "[[stage]]\nname = \"a\"\nplugin = \".\"\n".to_owned(),
            "is a directory",
        ),
        (
            "world.toml",
            format!(
                "[[stage]]\nname = \"a\"\nplugin = \"{}\"\n",
                plugins::OTHER_WORLD_PATH
            ),
            "does not export",
        ),
    ];
    for (file, text, needle) in cases {
        let path = manifest(&home, file, &text);
        let run = home
            .vidpipe(&["run", &path, "--project", &id])
            .expect_code(2);
        assert!(run.stderr.contains(needle), "{file}: {}", run.stderr);
        assert!(run.stderr.contains(file), "names the file: {}", run.stderr);
    }
    home.vidpipe(&["run", "/no/such/manifest.toml", "--project", &id])
        .expect_code(2);
    let dir = home.dir.path().to_str().unwrap().to_owned();
    let run = home
        .vidpipe(&["run", &dir, "--project", &id])
        .expect_code(2);
    assert!(
        run.stderr.contains("pipeline manifest") && run.stderr.contains("is a directory"),
        "a manifest that is a directory: {}",
        run.stderr
    );
    assert_eq!(home.count("SELECT count(*) FROM pipelines"), 0);
    assert_eq!(home.count("SELECT count(*) FROM pipeline_runs"), 0);
}

#[test]
fn pipelines_on_two_projects_run_at_once_and_a_second_on_the_same_project_is_refused() {
    let home = TestHome::new();
    // The same name, so the two results can be compared byte for byte.
    let a = home.project("Twin", SCRIPT);
    let b = home.project("Twin", SCRIPT);
    // Slow enough that the runs overlap.
    let m = manifest(
        &home,
        "slow.toml",
        &bulk_manifest(4096, 20, 4096, 1_000_000_000),
    );
    let started = Instant::now();
    let mut first = home
        .command(&["run", &m, "--project", &a])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut other = home
        .command(&["run", &m, "--project", &b])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first holds its project, then try a second pipeline on it.
    while home.count(&format!(
        "SELECT count(*) FROM pipeline_runs WHERE project_id = '{a}'"
    )) == 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the first pipeline never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let refused = home.vidpipe(&["run", &m, "--project", &a]);
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first pipeline is still running"
    );
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("is busy"), "{}", refused.stderr);
    let waited = home
        .command(&["run", &m, "--project", &a, "--wait"])
        .output()
        .unwrap();
    assert!(first.wait().unwrap().success());
    assert!(other.wait().unwrap().success());
    assert!(
        waited.status.success(),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    for id in [&a, &b] {
        let states: Vec<_> = stage_statuses(&home, id)
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert!(states.iter().all(|s| s == "succeeded"), "{states:?}");
    }
    assert_eq!(normalized_state(&home, &a), normalized_state(&home, &b));
    // The two projects' pipelines overlapped in time, and --wait started only after the first
    // pipeline on its project had finished.
    let spans = |project: &str| -> Vec<(i64, i64)> {
        let list = home
            .vidpipe(&["runs", "list", "--project", project, "--json"])
            .expect_code(0);
        let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
        list["pipelines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["started_at"].as_i64().unwrap(),
                    p["finished_at"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let (on_a, on_b) = (spans(&a), spans(&b));
    assert_eq!(on_a.len(), 2, "the refused run left no pipeline record");
    assert!(
        on_a[0].0 < on_b[0].1 && on_b[0].0 < on_a[0].1,
        "overlapped: {on_a:?} {on_b:?}"
    );
    assert!(
        on_a[1].0 >= on_a[0].1,
        "--wait waited for the first: {on_a:?}"
    );
    for run in [
        &refused.stderr,
        &String::from_utf8_lossy(&waited.stderr).into_owned(),
    ] {
        assert!(
            !run.contains("database is locked") && !run.contains("busy for more than"),
            "{run}"
        );
    }
}

/// Starts a slow bulk pipeline on `id` in the background and returns once its keyframes stage
/// has started (so the storyboard has committed and the keyframes stage is mid-flight).
fn start_slow_pipeline_until_keyframes(home: &TestHome, id: &str) -> (std::process::Child, String) {
    // Long enough per artifact that a kill a few hundred milliseconds after the keyframes
    // stage starts lands inside it on a fast machine too.
    let m = slow_manifest(home);
    let child = home
        .command(&["run", &m, "--project", id])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while home.count("SELECT count(*) FROM pipeline_runs WHERE stage = 'keyframes'") == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the keyframes stage never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    (child, m)
}

#[test]
fn a_killed_pipeline_is_marked_interrupted_and_its_leftovers_are_swept() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    // Kill it while the keyframes stage is running (after the storyboard committed).
    let (mut child, m) = start_slow_pipeline_until_keyframes(&home, &id);
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();

    let show = home
        .vidpipe(&["project", "show", &id, "--json"])
        .expect_code(0);
    assert!(
        show.stderr.contains("recovered from an interrupted run"),
        "{}",
        show.stderr
    );
    common::assert_consistent(&home);
    let statuses = stage_statuses(&home, &id);
    assert_eq!(
        statuses[0],
        ("storyboard".to_owned(), "succeeded".to_owned())
    );
    assert_eq!(
        statuses[1],
        ("keyframes".to_owned(), "interrupted".to_owned())
    );
    let detail = home.show(&id);
    assert!(
        detail["keyframes"].as_array().unwrap().is_empty(),
        "nothing of the killed stage is visible"
    );

    let resumed = home.vidpipe(&["run", &m, "--project", &id]).expect_code(0);
    assert!(
        resumed.stdout.contains("[1/3] storyboard: skipped"),
        "{}",
        resumed.stdout
    );
    assert!(
        resumed.stdout.contains("2 stage(s) ran, 1 skipped"),
        "{}",
        resumed.stdout
    );
}

#[test]
fn a_waiting_pipeline_recovers_what_the_holder_of_the_lock_left_when_it_died() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let (mut holder, m) = start_slow_pipeline_until_keyframes(&home, &id);
    // The waiter opens the home while the holder is alive, so opening it recovers nothing.
    let waiter = home
        .command(&["run", &m, "--project", &id, "--wait"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    holder.kill().unwrap();
    holder.wait().unwrap();
    let out = waiter.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    common::assert_consistent(&home);
    let statuses = stage_statuses(&home, &id);
    // The holder died inside the keyframes stage (or, on a fast machine, the clips stage):
    // exactly that run is interrupted, and the waiter ran the rest.
    let interrupted: Vec<_> = statuses
        .iter()
        .filter(|(_, s)| s == "interrupted")
        .collect();
    assert_eq!(interrupted.len(), 1, "{statuses:?}");
    assert_ne!(interrupted[0].0, "storyboard", "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|(_, s)| s == "succeeded").count(),
        3,
        "{statuses:?}"
    );
}

/// Reads `child`'s stdout line by line on a thread, handing each line over as it comes.
fn lines_of(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead as _;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A manifest whose keyframes stage is slow: its pipeline is still running long after the
/// storyboard is done.
fn slow_manifest(home: &TestHome) -> String {
    manifest(
        home,
        "slow.toml",
        &bulk_manifest(65536, 0, 65536, 600_000_000),
    )
}

/// Asserts that `child`'s pipeline had not ended when the storyboard's line was read.
fn assert_still_running(home: &TestHome, child: &mut std::process::Child, seen: &str) {
    assert!(
        child.try_wait().unwrap().is_none(),
        "the pipeline was still running when the storyboard's line arrived: {seen}"
    );
    assert_eq!(
        home.count("SELECT count(*) FROM pipelines WHERE status = 'running'"),
        1
    );
}

#[test]
fn each_stage_line_is_printed_when_the_stage_ends_not_when_the_pipeline_does() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let m = slow_manifest(&home);
    let mut child = home
        .command(&["run", &m, "--project", &id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut child);
    let first = lines
        .recv_timeout(Duration::from_secs(60))
        .expect("a line while the pipeline runs");
    assert!(
        first.starts_with("[1/3] storyboard: succeeded (run "),
        "{first}"
    );
    assert_still_running(&home, &mut child, &first);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn in_a_terminal_stage_lines_arrive_as_stages_end_and_no_empty_bar_is_drawn() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let m = slow_manifest(&home);
    // util-linux `script` runs the command on a pseudo-terminal: stdout and stderr are a
    // terminal, as when a person runs it, and everything shown comes out of `script`.
    let command = format!(
        "{} --home {} run {m} --project {id}",
        common::VIDPIPE,
        home.path().display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("util-linux script");
    let lines = lines_of(&mut child);
    let started = Instant::now();
    let mut seen = String::new();
    while !seen.contains("[1/3] storyboard: succeeded (run ") {
        assert!(started.elapsed() < Duration::from_secs(60), "{seen}");
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) {
            seen.push_str(&line);
            seen.push('\n');
        }
    }
    assert_still_running(&home, &mut child, &seen);
    assert!(
        !seen.contains("0/0"),
        "a bar with no total is a spinner: {seen}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // The pipeline runs in a session of its own under `script`; the hang-up of its terminal
    // ends it, and this makes sure before the home is deleted.
    let home_path = home.path().display().to_string();
    let _ = std::process::Command::new("pkill")
        .args(["-KILL", "-f", &home_path])
        .status();
}
