//! The sandbox through the real binary: hostile names, planted links, nothing outside the home.
// A failed unwrap is a failed test, with its location; that is what tests want.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{SCRIPT, TestHome};
use vidpipe_example_plugins as plugins;

/// Every file under `root` with the SHA-256 of its bytes (symlinks by their target), for
/// before/after checks. The database and the lock files are left out: run records and
/// locks are the host's own bookkeeping and are expected to change.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    use sha2::Digest;
    let digest = |bytes: &[u8]| hex::encode(sha2::Sha256::digest(bytes));
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let ty = entry.file_type().unwrap();
            if ty.is_symlink() {
                out.insert(
                    rel,
                    format!("-> {}", std::fs::read_link(&path).unwrap().display()),
                );
            } else if ty.is_dir() {
                stack.push(path);
            } else if !rel.starts_with("home/vidpipe.db")
                && !rel.starts_with("home/locks/")
                // The host caches the plugins it compiles; that is the host's write, not one a
                // stage can cause (tests/cache.rs covers the cache).
                && !rel.starts_with("home/cache/")
            {
                out.insert(rel, digest(&std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

#[test]
fn every_name_of_the_escape_corpus_is_refused_and_nothing_outside_the_project_changes() {
    let home = TestHome::new();
    let victim = home.project("victim", SCRIPT);
    home.vidpipe(&[
        "stage",
        "run",
        plugins::STORYBOARD_PATH,
        "--project",
        &victim,
    ])
    .expect_code(0);
    let id = home.project("attacker", SCRIPT);
    let before = snapshot(home.dir.path());

    let run = home.vidpipe(&[
        "stage",
        "run",
        plugins::FAULTY_STAGE_PATH,
        "--project",
        &id,
        "--set",
        "mode=escape",
    ]);
    let summary = common::refusals(&run);
    let attempts: Vec<&str> = summary.split("; ").collect();
    assert_eq!(
        attempts.len(),
        4 * 12,
        "every name was tried with every call: {summary}"
    );
    for attempt in &attempts {
        assert!(
            attempt.ends_with("invalid-input"),
            "refused as invalid input: {attempt}"
        );
    }

    // The run failed, so not even the stage's own legitimate work was kept.
    let after = snapshot(home.dir.path());
    assert_eq!(
        before, after,
        "no file anywhere in the temp dir was created, changed or removed"
    );
    assert_eq!(home.show(&id)["runs"][0]["status"], "failed");
}

/// Replaces the published storyboard of a fresh project with `plant(path)` and reads it back
/// through the artifact API from inside a plugin.
fn read_after_planting(plant: impl Fn(&Path)) -> common::Run {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    home.vidpipe(&["stage", "run", plugins::STORYBOARD_PATH, "--project", &id])
        .expect_code(0);
    let doc = home.project_dir(&id).join("output/storyboard.md");
    std::fs::remove_file(&doc).unwrap();
    plant(&doc);
    let run = home.vidpipe(&[
        "stage",
        "run",
        plugins::FAULTY_STAGE_PATH,
        "--project",
        &id,
        "--set",
        "mode=read",
        "--set",
        "name=storyboard.md",
    ]);
    // Keep the temp dir alive until the run has finished.
    drop(home);
    run
}

#[test]
fn a_symlink_planted_in_a_project_folder_pointing_outside_is_not_followed() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "TOP SECRET").unwrap();
    let absolute =
        read_after_planting(|doc| std::os::unix::fs::symlink(&secret, doc).unwrap()).expect_code(1);
    assert!(!absolute.stdout.contains("TOP SECRET") && !absolute.stderr.contains("TOP SECRET"));
    assert!(
        absolute.stderr.contains("symbolic link"),
        "{}",
        absolute.stderr
    );

    let looped =
        read_after_planting(|doc| std::os::unix::fs::symlink("storyboard.md", doc).unwrap())
            .expect_code(1);
    assert!(
        looped.stderr.contains("symbolic link"),
        "a symlink loop: {}",
        looped.stderr
    );

    let relative =
        read_after_planting(|doc| std::os::unix::fs::symlink("../../../vidpipe.db", doc).unwrap())
            .expect_code(1);
    assert!(
        relative.stderr.contains("symbolic link"),
        "{}",
        relative.stderr
    );
}

#[test]
fn a_hard_link_planted_in_a_project_folder_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "TOP SECRET").unwrap();
    let run = read_after_planting(|doc| std::fs::hard_link(&secret, doc).unwrap()).expect_code(1);
    assert!(!run.stdout.contains("TOP SECRET") && !run.stderr.contains("TOP SECRET"));
    assert!(run.stderr.contains("hard link"), "{}", run.stderr);
}

#[test]
fn a_regular_file_replaced_by_hand_still_reads_back_so_the_refusals_are_about_links() {
    let run =
        read_after_planting(|doc| std::fs::write(doc, "# Storyboard: replaced by hand\n").unwrap())
            .expect_code(0);
    assert!(run.stdout.contains("replaced by hand"), "{}", run.stdout);
}
