//! Storage faults injected the way they happen: an `LD_PRELOAD` shim (tests/faults/shim.c)
//! fails the Nth `fsync` or `write` a pipeline makes on the home's files with EIO (or ENOSPC),
//! each one in turn, and optionally kills the process a few calls later. After each fault,
//! after the next command, and after a rerun: the database is intact, every artifact row has
//! its file with the right size and SHA-256, no staged file is visible, no run is reported
//! with an outcome the database contradicts, and the rerun ends in the uninterrupted state.
//!
//! CI runs every fsync point and a sample of write points; `VIDPIPE_FAULTS_ALL=1` runs every
//! write point too.

// A failed unwrap is a failed test, with its location; that is what tests want.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use rusqlite::OptionalExtension;

use common::{Run, TestHome, assert_consistent, bulk_manifest, manifest, normalized_state};

const SCRIPT: &str = "One.\n\nTwo.\n\nThree.\n";
/// Every project of these tests has this name, so that their storyboards are the same bytes.
const NAME: &str = "faults";
const LIVENESS: Duration = Duration::from_secs(120);

/// The shim, compiled once per test run with the system C compiler.
fn shim() -> &'static PathBuf {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| {
        let source = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/faults/shim.c");
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("faultshim.so");
        let status = Command::new("cc")
            .args(["-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o"])
            .arg(&out)
            .arg(source)
            .arg("-ldl")
            .status()
            .expect("a C compiler (cc) builds the fault shim");
        assert!(status.success(), "building {source} failed");
        out
    })
}

/// A fault to inject.
#[derive(Debug, Clone, Copy)]
struct Fault {
    ops: &'static str,
    at: u64,
    errno: &'static str,
    /// Every later call of `ops` fails too.
    persist: bool,
    kill_after: Option<u64>,
}

/// The pipeline every fault test runs: storyboard, then keyframes and clips of a few KB each.
/// The keyframes stage also writes 2,000 scenes with 2 KB descriptions, so that its commit
/// grows the write-ahead log past SQLite's checkpoint threshold (1,000 pages).
fn pipeline(home: &TestHome) -> String {
    let text = bulk_manifest(8 * 1024, 2000, 16 * 1024, 0).replace(
        "extra-scenes = 2000\n",
        "extra-scenes = 2000\ndescription-bytes = 2048\n",
    );
    assert!(text.contains("description-bytes"));
    manifest(home, "bulk.toml", &text)
}

/// `vidpipe run` of the pipeline on `id` under the shim with `fault` (or only counting calls,
/// into `count`).
fn run_with(
    home: &TestHome,
    m: &str,
    id: &str,
    fault: Option<Fault>,
    count: Option<&PathBuf>,
) -> Run {
    let command = home.command(&["run", m, "--project", id]);
    under_shim(home, command, fault, count)
}

/// Runs `command` under the shim with `fault` (or only counting calls, into `count`).
fn under_shim(
    home: &TestHome,
    mut command: Command,
    fault: Option<Fault>,
    count: Option<&PathBuf>,
) -> Run {
    command
        .env("LD_PRELOAD", shim())
        .env("FAULT_MATCH", format!("{}/", home.path().display()))
        // Not every fault is a failure the user hears of: a failed fsync of a staged file is
        // the stage's io error, of a folder after a commit a publish the pipeline retries.
        .env("VIDPIPE_LOG", "error");
    if let Some(f) = fault {
        command
            .env("FAULT_OPS", f.ops)
            .env("FAULT_AT", f.at.to_string())
            .env("FAULT_ERRNO", f.errno);
        if let Some(k) = f.kill_after {
            command.env("FAULT_KILL_AFTER", k.to_string());
        }
        if f.persist {
            command.env("FAULT_PERSIST", "1");
        }
    }
    if let Some(count) = count {
        command.env("FAULT_COUNT_FILE", count);
    }
    common::finish_within(command, LIVENESS)
}

/// The first `vidpipe: error:` line a run printed, for the report of each fault.
fn error_line(run: &Run) -> &str {
    run.stderr
        .lines()
        .find(|l| l.starts_with("vidpipe: error:"))
        .unwrap_or("")
}

/// How many calls of `ops` an uninterrupted run of the pipeline makes on the home's files (on
/// the reference's home, whose compile cache the fault runs find warm too).
fn calls(home: &TestHome, m: &str, ops: &'static str) -> u64 {
    let id = home.project(NAME, SCRIPT);
    let count = home.dir.path().join("count");
    let mut command_fault = None;
    if ops != "fsync,write" {
        command_fault = Some(Fault {
            ops,
            at: 0,
            errno: "EIO",
            persist: false,
            kill_after: None,
        });
    }
    run_with(home, m, &id, command_fault, Some(&count)).expect_code(0);
    std::fs::read_to_string(count)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The stage outcomes a `vidpipe run` printed: (run id, succeeded).
fn printed_outcomes(run: &Run) -> Vec<(String, bool)> {
    run.stdout
        .lines()
        .filter_map(|line| {
            let succeeded = line.contains(": succeeded (run ");
            let failed = line.contains(": FAILED (run ");
            if !(succeeded || failed) {
                return None;
            }
            let id = line.split("(run ").nth(1)?.split(')').next()?;
            Some((id.to_owned(), succeeded))
        })
        .collect()
}

/// Every check of the module docs for one fault, on a new project.
fn check(home: &TestHome, m: &str, fault: Fault, expected: &serde_json::Value) {
    let id = home.project(NAME, SCRIPT);
    check_on(home, m, &id, fault, expected);
}

/// Every check of the module docs for one fault, on project `id`.
fn check_on(home: &TestHome, m: &str, id: &str, fault: Fault, expected: &serde_json::Value) {
    let id = id.to_owned();
    let run = run_with(home, m, &id, Some(fault), None);
    let what = format!("{fault:?}: exit {}\n{}{}", run.code, run.stdout, run.stderr);
    // Reported, for reading what each fault came to.
    println!(
        "{} {} at {}{}{}: exit {} {}",
        fault.errno,
        fault.ops,
        fault.at,
        if fault.persist { " and after" } else { "" },
        fault
            .kill_after
            .map_or_else(String::new, |k| format!(", killed {k} calls later")),
        run.code,
        error_line(&run)
    );
    // The next command (recovering what a killed process left).
    home.vidpipe(&["project", "show", &id]).expect_code(0);
    assert_consistent(home);
    // What was printed agrees with the database.
    let db = home.db();
    for (run_id, succeeded) in printed_outcomes(&run) {
        let status: String = db
            .query_row(
                "SELECT status FROM pipeline_runs WHERE id = ?1",
                [&run_id],
                |r| r.get(0),
            )
            .unwrap();
        let agrees = if succeeded {
            status == "succeeded"
        } else {
            status == "failed"
        };
        assert!(
            agrees,
            "printed {succeeded} for run {run_id} now {status}: {what}"
        );
    }
    if run.code == 0 {
        assert_eq!(
            normalized_state(home, &id),
            *expected,
            "exit 0 means done: {what}"
        );
    }
    let rerun = home.vidpipe_within(&["run", m, "--project", &id], LIVENESS);
    assert_eq!(rerun.code, 0, "the rerun after {what}: {}", rerun.stderr);
    assert_eq!(normalized_state(home, &id), *expected, "after {what}");
    assert_consistent(home);
}

/// The fault points to try out of `total`: all of them, or when `sample` is set that many,
/// spread evenly, the first and the last included.
fn points(total: u64, sample: Option<u64>) -> Vec<u64> {
    match sample {
        Some(n) if n < total => {
            let mut picked: Vec<u64> = (0..n)
                .map(|i| 1 + i * (total - 1) / (n - 1).max(1))
                .collect();
            picked.dedup();
            picked
        }
        _ => (1..=total).collect(),
    }
}

fn all_points() -> bool {
    std::env::var_os("VIDPIPE_FAULTS_ALL").is_some_and(|v| v == "1")
}

fn reference() -> (TestHome, String, serde_json::Value) {
    let home = TestHome::new();
    let m = pipeline(&home);
    let id = home.project(NAME, SCRIPT);
    home.vidpipe(&["run", &m, "--project", &id]).expect_code(0);
    let expected = normalized_state(&home, &id);
    (home, m, expected)
}

#[test]
fn an_eio_at_any_fsync_of_a_pipeline_never_loses_or_half_shows_a_stage() {
    let (home, m, expected) = reference();
    let total = calls(&home, &m, "fsync");
    println!("the pipeline makes {total} fsyncs on the home's files");
    for at in points(total, None) {
        for persist in [false, true] {
            let fault = Fault {
                ops: "fsync",
                at,
                errno: "EIO",
                persist,
                kill_after: None,
            };
            check(&home, &m, fault, &expected);
        }
    }
}

/// A project of the fanned-out pipeline run once whole, then edited to lose its last paragraph:
/// its next run deletes a scene (with its keyframes, clip and files) and reuses every shard
/// of the others.
fn edited_fanned(home: &TestHome, m: &str) -> String {
    let id = home.project(NAME, SCRIPT);
    home.vidpipe(&["run", m, "--project", &id]).expect_code(0);
    let script = home.dir.path().join("edited.txt");
    std::fs::write(&script, "One.\n\nTwo.\n").unwrap();
    home.vidpipe(&[
        "project",
        "update",
        &id,
        "--script",
        script.to_str().unwrap(),
    ])
    .expect_code(0);
    id
}

#[test]
fn an_eio_at_any_fsync_of_a_fanned_out_pipeline_deleting_a_scene_never_loses_or_half_shows_a_shard()
{
    let home = TestHome::new();
    let m = manifest(
        &home,
        "fanned.toml",
        &common::fanned_bulk_manifest(8 * 1024, 16 * 1024, 0, "", ""),
    );
    // The reference: the same edit, no fault.
    let id = edited_fanned(&home, &m);
    let count = home.dir.path().join("count");
    let counting = Fault {
        ops: "fsync",
        at: 0,
        errno: "EIO",
        persist: false,
        kill_after: None,
    };
    let reference = run_with(&home, &m, &id, Some(counting), Some(&count)).expect_code(0);
    // The faults below land on the path of reuse: the two scenes the edit kept are skipped.
    for stage in ["keyframes", "clips"] {
        let line = format!("{stage}: skipped (done by earlier runs): 2 scene(s), 0 ran, 2 skipped");
        assert!(reference.stdout.contains(&line), "{}", reference.stdout);
    }
    let total: u64 = std::fs::read_to_string(count)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let expected = normalized_state(&home, &id);
    assert_eq!(expected["scenes"].as_array().unwrap().len(), 2);
    assert_eq!(expected["keyframes"].as_array().unwrap().len(), 4);
    println!("the edited fanned-out pipeline makes {total} fsyncs on the home's files");
    for at in points(total, None) {
        for persist in [false, true] {
            let fault = Fault {
                ops: "fsync",
                at,
                errno: "EIO",
                persist,
                kill_after: None,
            };
            let id = edited_fanned(&home, &m);
            check_on(&home, &m, &id, fault, &expected);
        }
    }
}

#[test]
fn an_eio_or_enospc_at_a_write_of_a_pipeline_never_loses_or_half_shows_a_stage() {
    let (home, m, expected) = reference();
    let total = calls(&home, &m, "write");
    println!("the pipeline makes {total} writes on the home's files");
    let sample = (!all_points()).then_some(24);
    for (i, at) in points(total, sample).into_iter().enumerate() {
        // ENOSPC stays: a full disk is still full at the next write.
        let (errno, persist) = if i % 3 == 2 {
            ("ENOSPC", true)
        } else {
            ("EIO", i % 3 == 1)
        };
        let fault = Fault {
            ops: "write",
            at,
            errno,
            persist,
            kill_after: None,
        };
        check(&home, &m, fault, &expected);
    }
}

#[test]
fn a_fault_followed_by_a_kill_never_loses_or_half_shows_a_stage() {
    let (home, m, expected) = reference();
    let total = calls(&home, &m, "fsync");
    for at in points(total, None) {
        // Killed before the next write or fsync of any file of the home, or a few later.
        let later: &[u64] = if all_points() || at % 4 == 0 {
            &[1, 2, 5]
        } else {
            &[1]
        };
        for &kill_after in later {
            let fault = Fault {
                ops: "fsync",
                at,
                errno: "EIO",
                persist: false,
                kill_after: Some(kill_after),
            };
            check(&home, &m, fault, &expected);
        }
    }
}

/// xorshift64*: random fault points, replayable from `VIDPIPE_FAULTS_SEED`.
fn random_points(total: u64, n: usize) -> Vec<u64> {
    let mut state: u64 = std::env::var("VIDPIPE_FAULTS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0xF417_5EED)
        .max(1);
    println!("random fault points from seed {state}");
    (0..n)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            1 + state.wrapping_mul(0x2545_F491_4F6C_DD1D) % total
        })
        .collect()
}

#[test]
fn random_faults_of_every_kind_never_lose_or_half_show_a_stage() {
    let (home, m, expected) = reference();
    let total = calls(&home, &m, "fsync,write");
    for (i, at) in random_points(total, 16).into_iter().enumerate() {
        let fault = Fault {
            ops: "fsync,write",
            at,
            errno: if i % 2 == 0 { "EIO" } else { "ENOSPC" },
            persist: i % 4 == 1,
            kill_after: (i % 3 == 0).then_some(1 + (i as u64 % 4)),
        };
        check(&home, &m, fault, &expected);
    }
}

/// `vidpipe stage run` of the bulk stage's keyframes on `id` (whose storyboard ran) under the
/// shim with `fault` (or only counting calls, into `count`).
fn stage_run_with(home: &TestHome, id: &str, fault: Option<Fault>, count: Option<&PathBuf>) -> Run {
    let command = home.command(&[
        "stage",
        "run",
        vidpipe_example_plugins::BULK_STAGE_PATH,
        "--project",
        id,
        "--name",
        "keyframes",
        "--set",
        "kind=keyframe",
        "--set",
        "bytes=8192",
        "--set",
        "extra-scenes=500",
        "--set",
        "description-bytes=2048",
    ]);
    under_shim(home, command, fault, count)
}

/// A project of the fault tests with its storyboard run.
fn storyboarded(home: &TestHome) -> String {
    let id = home.project(NAME, SCRIPT);
    home.vidpipe(&[
        "stage",
        "run",
        vidpipe_example_plugins::STORYBOARD_PATH,
        "--project",
        &id,
    ])
    .expect_code(0);
    id
}

/// A single `stage run`, unlike a pipeline, leaves no `running` pipeline record for recovery
/// to find: when its commit cannot be settled, or its staged files cannot be removed, only
/// the host's own note says they are there. The next command, even one that only reads,
/// must still sweep them.
#[test]
fn an_eio_at_any_fsync_of_a_stage_run_leaves_no_staged_file_after_the_next_command() {
    let home = TestHome::new();
    let reference = storyboarded(&home);
    let count = home.dir.path().join("stage-count");
    let counting = Fault {
        ops: "fsync",
        at: 0,
        errno: "EIO",
        persist: false,
        kill_after: None,
    };
    stage_run_with(&home, &reference, Some(counting), Some(&count)).expect_code(0);
    let expected = normalized_state(&home, &reference);
    let total: u64 = std::fs::read_to_string(&count)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    println!("the stage run makes {total} fsyncs on the home's files");
    for at in points(total, None) {
        for persist in [false, true] {
            let id = storyboarded(&home);
            let fault = Fault {
                ops: "fsync",
                at,
                errno: "EIO",
                persist,
                kill_after: None,
            };
            let run = stage_run_with(&home, &id, Some(fault), None);
            let what = format!("{fault:?}: exit {}\n{}{}", run.code, run.stdout, run.stderr);
            println!(
                "EIO fsync at {at}{}: exit {} {}",
                if persist { " and after" } else { "" },
                run.code,
                error_line(&run)
            );
            home.vidpipe(&["project", "show", &id]).expect_code(0);
            assert_consistent(&home);
            // No record at all when the start record itself could not be written.
            let status: Option<String> = home
                .db()
                .query_row(
                    "SELECT status FROM pipeline_runs WHERE project_id = ?1 AND stage = 'keyframes'",
                    [&id],
                    |r| r.get(0),
                )
                .optional()
                .unwrap();
            if run.code == 0 {
                assert_eq!(status.as_deref(), Some("succeeded"), "{what}");
            }
            if status.as_deref() == Some("succeeded") {
                assert_eq!(normalized_state(&home, &id), expected, "{what}");
            } else {
                assert_ne!(run.code, 0, "{what}");
                stage_run_with(&home, &id, None, None).expect_code(0);
                assert_eq!(normalized_state(&home, &id), expected, "after {what}");
                assert_consistent(&home);
            }
        }
    }
}
