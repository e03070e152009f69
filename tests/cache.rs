//! The compile cache through the real binary: a second process loads a plugin instead of
//! compiling it, a damaged entry is compiled again, `--no-cache` and `vidpipe cache clear` do
//! what they say.

// A failed unwrap is a failed test, with its location; that is what tests want.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use common::{Run, SCRIPT, TestHome};
use vidpipe_example_plugins as plugins;

/// Runs the storyboard stage with the runtime's debug log, which names each cache outcome.
fn run_storyboard(home: &TestHome, id: &str, extra: &[&str]) -> Run {
    let mut args = extra.to_vec();
    args.extend(["stage", "run", plugins::STORYBOARD_PATH, "--project", id]);
    let output = home
        .command(&args)
        .env("VIDPIPE_LOG", "warn,vidpipe_host::runtime=debug")
        .output()
        .unwrap();
    Run::from(output).expect_code(0)
}

fn entries(home: &TestHome) -> Vec<PathBuf> {
    let dir = home.path().join("cache/compiled");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn a_second_process_loads_the_compiled_plugin_from_the_cache() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let first = run_storyboard(&home, &id, &[]);
    assert!(first.stderr.contains("outcome=Miss"), "{}", first.stderr);
    assert_eq!(entries(&home).len(), 1);
    let second = run_storyboard(&home, &id, &[]);
    assert!(second.stderr.contains("outcome=Hit"), "{}", second.stderr);
    assert_eq!(entries(&home).len(), 1);
}

#[test]
fn a_truncated_or_corrupt_entry_is_compiled_again_and_the_run_succeeds() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    run_storyboard(&home, &id, &[]);
    let entry = entries(&home).pop().unwrap();
    let good = std::fs::read(&entry).unwrap();

    std::fs::write(&entry, &good[..good.len() / 3]).unwrap();
    let run = run_storyboard(&home, &id, &[]);
    assert!(run.stderr.contains("outcome=Replaced"), "{}", run.stderr);
    assert!(run.stderr.contains("does not verify"), "{}", run.stderr);
    assert_eq!(
        std::fs::read(&entry).unwrap(),
        good,
        "the entry is whole again"
    );

    let mut corrupt = good.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0x20;
    std::fs::write(&entry, &corrupt).unwrap();
    let run = run_storyboard(&home, &id, &[]);
    assert!(run.stderr.contains("outcome=Replaced"), "{}", run.stderr);
    let run = run_storyboard(&home, &id, &[]);
    assert!(run.stderr.contains("outcome=Hit"), "{}", run.stderr);
}

#[test]
fn no_cache_neither_reads_nor_writes_entries() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let run = run_storyboard(&home, &id, &["--no-cache"]);
    assert!(!run.stderr.contains("outcome="), "{}", run.stderr);
    assert!(entries(&home).is_empty(), "nothing written");

    // With an entry present but damaged, a cached run would reject and replace it; a
    // --no-cache run must not touch it at all.
    run_storyboard(&home, &id, &[]);
    let entry = entries(&home).pop().unwrap();
    std::fs::write(&entry, b"damaged").unwrap();
    let run = run_storyboard(&home, &id, &["--no-cache"]);
    assert!(!run.stderr.contains("outcome="), "{}", run.stderr);
    assert!(!run.stderr.contains("rejected"), "{}", run.stderr);
    assert_eq!(
        std::fs::read(&entry).unwrap(),
        b"damaged",
        "nothing read or replaced"
    );
}

#[test]
fn cache_clear_removes_every_entry_and_the_next_run_compiles_again() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    run_storyboard(&home, &id, &[]);
    let cleared = home.vidpipe(&["cache", "clear"]).expect_code(0);
    assert!(
        cleared.stdout.starts_with("removed 1 compiled plugin(s)"),
        "{}",
        cleared.stdout
    );
    assert!(entries(&home).is_empty());
    let run = run_storyboard(&home, &id, &[]);
    assert!(run.stderr.contains("outcome=Miss"), "{}", run.stderr);
    // Clearing an empty cache, or a home that has none, is not an error.
    home.vidpipe(&["cache", "clear"]).expect_code(0);
    let fresh = TestHome::new();
    let cleared = fresh.vidpipe(&["cache", "clear"]).expect_code(0);
    assert!(
        cleared.stdout.starts_with("removed 0"),
        "{}",
        cleared.stdout
    );
}
