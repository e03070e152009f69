//! Many `vidpipe` processes on one home: nobody is refused because another process was
//! recovering, listing or committing; a writer waits for a live lock holder and proceeds; a lock
//! held by a stopped process is reported clearly, naming it.
//!
//! `VIDPIPE_CONTENTION_SCALE=full` runs the sizes of issue #12 (16 projects × 25 runs; the
//! largest commit the default limits allow); CI runs smaller ones.

// A failed unwrap is a failed test, with its location; that is what tests want.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Run, SCRIPT, TestHome};
use vidpipe_example_plugins as plugins;

const LIVENESS: Duration = Duration::from_secs(600);

fn full() -> bool {
    std::env::var_os("VIDPIPE_CONTENTION_SCALE").is_some_and(|v| v == "full")
}

#[test]
fn many_processes_on_many_projects_beside_listings_are_never_refused_as_busy() {
    let (projects, runs) = if full() { (16, 25) } else { (6, 8) };
    let home = TestHome::new();
    let ids: Vec<String> = (0..projects)
        .map(|i| home.project(&format!("p{i}"), SCRIPT))
        .collect();
    let refused = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        for id in &ids {
            let (home, refused, failures) = (&home, &refused, &failures);
            scope.spawn(move || {
                for _ in 0..runs {
                    // No --wait: nothing else runs stages on this project, so it is never busy.
                    let run = home.vidpipe_within(
                        &["stage", "run", plugins::STORYBOARD_PATH, "--project", id],
                        LIVENESS,
                    );
                    if run.stderr.contains("is busy") {
                        refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    if run.code != 0 {
                        failures.lock().unwrap().push(run.stderr);
                    }
                }
            });
        }
        let listings: [Vec<&str>; 2] = [vec!["project", "list"], vec!["project", "show", &ids[0]]];
        for listing in listings {
            let (home, done, failures) = (&home, &done, &failures);
            scope.spawn(move || {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let run = home.vidpipe_within(&listing, LIVENESS);
                    if run.code != 0 {
                        failures.lock().unwrap().push(run.stderr);
                    }
                }
            });
        }
        // The listings stop once every run loop has ended.
        let started = Instant::now();
        while home.count("SELECT count(*) FROM pipeline_runs") < (projects * runs) as i64
            && started.elapsed() < LIVENESS
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(200));
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let failures = failures.into_inner().unwrap();
    println!(
        "{projects} projects × {runs} runs beside listing loops: {} refused as busy, {} failed",
        refused.load(std::sync::atomic::Ordering::Relaxed),
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(
        home.count("SELECT count(*) FROM pipeline_runs WHERE status = 'succeeded'"),
        (projects * runs) as i64
    );
}

/// A bulk stage on `id` staging `scenes` scenes with 640-byte descriptions: one big commit.
/// 100,000 of them is the largest commit the default limits allow (100,000 row writes and
/// 64 MiB of text per run).
fn big_commit(home: &TestHome, id: &str, scenes: u32) -> Command {
    let mut command = home.command(&[
        "stage",
        "run",
        plugins::BULK_STAGE_PATH,
        "--project",
        id,
        "--set",
        &format!("extra-scenes={scenes}"),
        "--set",
        "description-bytes=640",
    ]);
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    command
}

#[test]
fn stages_on_another_project_wait_for_a_big_commit_and_never_fail() {
    let scenes = if full() { 99_980 } else { 40_000 };
    let home = TestHome::new();
    let big = home.project("big", SCRIPT);
    let small = home.project("small", SCRIPT);
    let mut a = big_commit(&home, &big, scenes).spawn().unwrap();
    let mut longest = Duration::ZERO;
    let mut runs = 0;
    loop {
        let started = Instant::now();
        let run = home.vidpipe_within(
            &[
                "stage",
                "run",
                plugins::STORYBOARD_PATH,
                "--project",
                &small,
            ],
            LIVENESS,
        );
        longest = longest.max(started.elapsed());
        runs += 1;
        assert_eq!(
            run.code, 0,
            "a small stage beside the big commit: {}",
            run.stderr
        );
        if a.try_wait().unwrap().is_some() {
            break;
        }
    }
    let out = a.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Reported, not asserted.
    println!(
        "beside a commit of {scenes} scenes, {runs} small stages on another project all succeeded; the longest took {longest:?}"
    );
}

/// The fault shim of tests/faults.rs, built the same way.
fn shim() -> std::path::PathBuf {
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/faults/shim.c");
    let out = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("faultshim-contention.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o"])
        .arg(&out)
        .arg(source)
        .arg("-ldl")
        .status()
        .unwrap();
    assert!(status.success());
    out
}

/// Whether process `pid` is stopped.
fn stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('T'))
        })
        .unwrap_or(false)
}

#[test]
fn a_committer_stopped_holding_the_lock_is_named_and_others_proceed_once_it_resumes() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    // A stops itself at its first fsync of the write-ahead log: inside a write transaction,
    // holding SQLite's write lock.
    let mut a = home.command(&["stage", "run", plugins::STORYBOARD_PATH, "--project", &id]);
    a.env("LD_PRELOAD", shim())
        .env("FAULT_MATCH", "vidpipe.db-wal")
        .env("FAULT_OPS", "fsync")
        .env("FAULT_STOP_AT", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut a = a.spawn().unwrap();
    let started = Instant::now();
    while !stopped(a.id()) {
        assert!(started.elapsed() < LIVENESS, "the committer never stopped");
        std::thread::sleep(Duration::from_millis(10));
    }
    // While it stays stopped, another writer waits, then says who holds the lock and why it
    // gives up.
    let waited = Instant::now();
    let b = home.vidpipe_within(&["project", "create", "Other"], LIVENESS);
    let waited = waited.elapsed();
    assert_eq!(b.code, 1, "{}", b.stderr);
    assert!(
        b.stderr.contains(&format!("held by process {}", a.id())) && b.stderr.contains("stopped"),
        "{}",
        b.stderr
    );
    assert!(
        b.stderr.contains("waiting for process"),
        "it said it waited: {}",
        b.stderr
    );
    assert!(!b.stderr.contains("database is locked"), "{}", b.stderr);
    println!(
        "a writer behind a stopped lock holder gave up after {waited:?}: {}",
        b.stderr.trim()
    );
    // Resumed, it lets go, and a waiting writer proceeds.
    let mut c = home.command(&["project", "create", "Third"]);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let c = c.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let resumed = Command::new("kill")
        .args(["-CONT", &a.id().to_string()])
        .status()
        .unwrap();
    assert!(resumed.success());
    let c = c.wait_with_output().unwrap();
    let c = Run::from(c);
    assert_eq!(c.code, 0, "{}", c.stderr);
    assert!(a.wait().unwrap().success());
    assert_eq!(home.count("SELECT count(*) FROM projects"), 2);
}
