//! Attacks on what SECURITY.md promises, written as an attacker would: the `attacker` plugin
//! (nothing but the WIT and WASI) and hostile command-line input, through the real binary.
//! Each test would have caught a finding of issue #11; each also tries variations of it.

// A failed unwrap is a failed test, with its location; that is what tests want.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::BufRead;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Run, SCRIPT, TestHome};
use vidpipe_example_plugins as plugins;

/// Long enough for any run here to finish many times over; a process still running then is
/// the bug (a deadline slept through), and is killed.
const LIVENESS: Duration = Duration::from_secs(60);

fn attack(home: &TestHome, id: &str, mode: &str, extra: &[&str]) -> Run {
    let set = format!("mode={mode}");
    let mut args = vec![
        "stage",
        "run",
        plugins::ATTACKER_PATH,
        "--project",
        id,
        "--set",
        &set,
    ];
    args.extend_from_slice(extra);
    home.vidpipe_within(&args, LIVENESS)
}

/// The last stage run of a project, and how long it ran by its own record, in ms.
fn last_run(home: &TestHome, id: &str) -> (serde_json::Value, i64) {
    let detail = home.show(id);
    let run = detail["runs"].as_array().unwrap().last().unwrap().clone();
    let ms = run["finished_at"].as_i64().unwrap() - run["started_at"].as_i64().unwrap();
    (run, ms)
}

#[test]
fn a_stage_sleeping_forever_is_stopped_at_its_deadline_and_a_waiting_run_then_proceeds() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let started = Instant::now();
    let sleeper = home
        .command(&[
            "stage",
            "run",
            plugins::ATTACKER_PATH,
            "--project",
            &id,
            "--set",
            "mode=sleep",
            "--timeout",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The sleeper holds the project's lock by the time the waiter asks for it.
    let lock = home.path().join("locks").join(format!("{id}.lock"));
    while !lock.exists() && started.elapsed() < LIVENESS {
        std::thread::sleep(Duration::from_millis(5));
    }
    let waiter = home.vidpipe_within(
        &[
            "stage",
            "run",
            plugins::STORYBOARD_PATH,
            "--project",
            &id,
            "--wait",
        ],
        LIVENESS,
    );
    let waited = started.elapsed();
    let out = sleeper.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("time limit of 1 s"), "{stderr}");
    let waiter = waiter.expect_code(0);
    assert!(waiter.stdout.contains("stage storyboard succeeded"));
    assert!(
        waited >= Duration::from_millis(900),
        "the waiter waited for the sleeper's lock: {waited:?}"
    );
    let runs = home.show(&id)["runs"].as_array().unwrap().clone();
    let slept = &runs[0];
    assert_eq!(slept["status"], "failed");
    assert!(
        slept["error"]
            .as_str()
            .unwrap()
            .contains("time limit of 1 s"),
        "{slept}"
    );
    let ms = slept["finished_at"].as_i64().unwrap() - slept["started_at"].as_i64().unwrap();
    // Reported, not asserted: timings belong in benchmarks. Liveness is what is asserted.
    println!(
        "sleep(Duration::MAX) under a 1 s deadline: recorded as running {ms} ms; the waiting run was done {waited:?} after the sleeper started"
    );
    assert_eq!(runs[1]["status"], "succeeded");
}

#[test]
fn no_blocking_wasi_call_outlasts_the_deadline() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    for (mode, extra) in [
        ("sleep", &["--set", "secs=15"][..]),
        ("sleep", &[][..]),
        ("poll", &[][..]),
        ("stdin", &[][..]),
    ] {
        let started = Instant::now();
        let mut args = vec!["--timeout", "1"];
        args.extend_from_slice(extra);
        let run = attack(&home, &id, mode, &args).expect_code(1);
        let command = started.elapsed();
        assert!(
            run.stderr.contains("time limit of 1 s"),
            "{mode}: {}",
            run.stderr
        );
        let (record, ms) = last_run(&home, &id);
        assert_eq!(record["status"], "failed");
        // Liveness, generously: a 1 s deadline must not become a 15 s sleep, nor a watchdog
        // of several seconds. The overshoot itself is printed below, not asserted.
        assert!(ms < 5_000, "{mode} {extra:?} ran {ms} ms");
        println!("{mode} {extra:?} under a 1 s deadline: recorded {ms} ms, command {command:?}");
    }
}

/// Whether a terminal would obey `c` (an independent list, not the host's own function):
/// controls, bidi embeddings, overrides, isolates and marks, separators, zero-width characters.
fn obeyed(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200b}'..='\u{200f}')
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{061c}' | '\u{feff}')
}

/// Fails unless `text` holds nothing a terminal would obey but the newlines ending its lines,
/// and no forged line.
fn assert_shown_not_obeyed(what: &str, text: &str) {
    if let Some(c) = text.chars().find(|&c| c != '\n' && obeyed(c)) {
        panic!("{what} printed {} raw:\n{text}", c.escape_unicode());
    }
    assert!(
        !text.lines().any(|l| l.starts_with("FORGED")),
        "{what} printed a forged line:\n{text}"
    );
}

#[test]
fn hostile_text_is_shown_not_obeyed_on_every_path_to_the_terminal() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let run = attack(&home, &id, "hostile-text", &[]).expect_code(0);
    for (what, text) in [
        ("stage run stdout", &run.stdout),
        ("stage run stderr", &run.stderr),
    ] {
        assert_shown_not_obeyed(what, text);
    }
    // One-line fields refuse what a terminal would obey when they are written.
    for refused in [
        "title escape: invalid-input",
        "title nul: invalid-input",
        "title bidi: invalid-input",
        "title isolate: invalid-input",
        "title separator: invalid-input",
        "title zero-width: invalid-input",
        "name bidi: invalid-input",
        "name isolate: invalid-input",
        "name separator: invalid-input",
        "name bom: invalid-input",
    ] {
        assert!(run.stdout.contains(refused), "{refused} in {}", run.stdout);
    }
    assert!(
        run.stdout.contains("\\u{1b}]0;pwned"),
        "shown as an escape: {}",
        run.stdout
    );
    let failed = attack(&home, &id, "hostile-error", &[]).expect_code(1);
    assert_shown_not_obeyed("a failed stage's error", &failed.stderr);
    assert_eq!(
        failed
            .stderr
            .lines()
            .filter(|l| l.starts_with("vidpipe: error:"))
            .count(),
        1,
        "{}",
        failed.stderr
    );

    // Through a pipeline too: its per-stage lines and its error.
    let m = common::manifest(
        &home,
        "hostile.toml",
        &format!(
            "[[stage]]\nname = \"hostile\"\nplugin = \"{}\"\n[stage.config]\nmode = \"hostile-error\"\n",
            plugins::ATTACKER_PATH
        ),
    );
    let piped = home.vidpipe_within(&["run", &m, "--project", &id], LIVENESS);
    assert_eq!(piped.code, 1, "{}", piped.stderr);
    assert_shown_not_obeyed("vidpipe run stdout", &piped.stdout);
    assert_shown_not_obeyed("vidpipe run stderr", &piped.stderr);

    // Rows an older vidpipe let in are shown safely too.
    let db = home.db();
    db.execute(
        "INSERT INTO artifacts (project_id, kind, name, size, sha256, run_id, created_at)
         VALUES (?1, 'output', 'invoice\u{202e}gpj.exe', 1, ?2, NULL, 0)",
        rusqlite::params![id, "0".repeat(64)],
    )
    .unwrap();
    db.execute(
        "UPDATE scenes SET title = 'old\u{1b}[2J\nFORGED title' WHERE project_id = ?1",
        [&id],
    )
    .unwrap();
    db.execute(
        "UPDATE projects SET name = 'n\u{202e}ame', settings = json_object('k\u{1b}]0;x\u{7}', 'v\nFORGED') WHERE id = ?1",
        [&id],
    )
    .unwrap();
    let show = home.vidpipe(&["project", "show", &id]).expect_code(0);
    assert_shown_not_obeyed("project show", &show.stdout);
    assert!(
        show.stdout.contains("old\\u{1b}[2J\\u{a}FORGED title"),
        "{}",
        show.stdout
    );
    let list = home.vidpipe(&["project", "list"]).expect_code(0);
    assert_shown_not_obeyed("project list", &list.stdout);
    let runs = home
        .vidpipe(&["runs", "list", "--project", &id])
        .expect_code(0);
    assert_shown_not_obeyed("runs list", &runs.stdout);
    let detail = home.show(&id);
    for run in detail["runs"].as_array().unwrap() {
        let shown = home
            .vidpipe(&["runs", "show", run["id"].as_str().unwrap()])
            .expect_code(0);
        assert_shown_not_obeyed("runs show", &shown.stdout);
    }

    // --json is exact, and as safe to print.
    let json = home
        .vidpipe(&["project", "show", &id, "--json"])
        .expect_code(0);
    assert_shown_not_obeyed("project show --json", &json.stdout);
    let summary = detail["runs"][0]["summary"].as_str().unwrap();
    assert!(summary.starts_with(attacker::HOSTILE), "{summary:?}");
    let error = detail["runs"][1]["error"].as_str().unwrap();
    assert!(error.ends_with(attacker::HOSTILE), "{error:?}");
    assert!(
        detail["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "invoice\u{202e}gpj.exe"),
        "the old row's name, exactly"
    );
    assert_eq!(detail["project"]["name"], "n\u{202e}ame");
    let description = detail["scenes"][0]["description"].as_str().unwrap();
    assert_eq!(description, attacker::HOSTILE);
}

#[test]
fn floods_of_output_are_bounded_by_what_they_print() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    for (mode, count) in [
        ("log-flood", "2000000"),
        ("progress-flood", "2000000"),
        ("stdout-flood", "500000"),
    ] {
        let set = format!("count={count}");
        let run = attack(&home, &id, mode, &["--set", &set]).expect_code(0);
        let printed = run.stdout.len() + run.stderr.len();
        println!("{mode} of {count} calls: the host printed {printed} bytes");
        // The budget is 1 MiB of what a run makes the host print; the host's own few lines
        // (the summary, the warning that output was dropped) come on top.
        assert!(printed <= (1 << 20) + 4096, "{mode}: {printed} bytes");
    }
    // Lines nobody is shown do not use up the budget of those that are.
    let quiet = attack(&home, &id, "quiet-flood", &[]).expect_code(0);
    assert!(
        quiet.stderr.contains("still heard after the quiet flood"),
        "{}",
        quiet.stderr
    );
}

#[test]
fn a_stage_whose_output_nobody_reads_still_ends_at_its_deadline() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    // stderr is a pipe nobody drains: once its buffer is full, a write to it blocks.
    let mut child = home
        .command(&[
            "stage",
            "run",
            plugins::ATTACKER_PATH,
            "--project",
            &id,
            "--set",
            "mode=log-flood",
            "--set",
            "count=1000000000000",
            "--timeout",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the stage outlived its deadline while nobody read its output");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    println!(
        "with stderr unread, the command ended after {:?}",
        started.elapsed()
    );
    assert_eq!(status.code(), Some(1));
    let (record, ms) = last_run(&home, &id);
    assert!(
        record["error"]
            .as_str()
            .unwrap()
            .contains("time limit of 1 s"),
        "{record}"
    );
    assert!(ms < 5_000, "{ms} ms");
}

/// Bytes of every file under `dir`, staged ones included.
fn bytes_on_disk(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                bytes_on_disk(&entry.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

/// Runs the `hoard` attack with `quota` MiB and measures the project's bytes on disk once the
/// stage says it holds all it can.
fn hoarded(home: &TestHome, id: &str, mib: &str, quota: &str) -> u64 {
    let mut child = home
        .command(&[
            "stage",
            "run",
            plugins::ATTACKER_PATH,
            "--project",
            id,
            "--set",
            "mode=hoard",
            "--set",
            &format!("mib={mib}"),
            "--project-quota",
            quota,
            "--timeout",
            "5",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut held = None;
    let mut log = String::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.contains("hoarded") && held.is_none() {
            held = Some(bytes_on_disk(&home.project_dir(id)));
        }
        log.push_str(&line);
        log.push('\n');
    }
    assert_eq!(child.wait().unwrap().code(), Some(1), "{log}");
    let held = held.unwrap_or_else(|| panic!("the stage never said it hoarded: {log}"));
    println!("hoard of {mib} MiB with a {quota} MiB quota: {held} bytes on disk; {log}");
    held
}

#[test]
fn a_running_stage_never_holds_more_than_its_project_quota_on_disk() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    // A committed 2 MiB artifact fills a 2 MiB quota.
    attack(
        &home,
        &id,
        "hoard",
        &["--set", "mib=2", "--set", "secs=0", "--project-quota", "2"],
    )
    .expect_code(0);
    let committed = bytes_on_disk(&home.project_dir(&id));
    assert_eq!(committed, 2 << 20);
    // A replacement staged over it and a writer kept open: still within the quota on disk
    // (plus at most the one chunk the promise allows).
    let held = hoarded(&home, &id, "2", "2");
    assert!(held <= (2 << 20) + (1 << 20), "{held} bytes on disk");
    // With room to spare, finished and unfinished bytes together stop at the quota.
    let other = home.project("Other", SCRIPT);
    let held = hoarded(&home, &other, "3", "8");
    assert!(held <= (8 << 20) + (1 << 20), "{held} bytes on disk");
    assert!(held >= 7 << 20, "it got to use its quota: {held}");
    assert_eq!(
        bytes_on_disk(&home.project_dir(&other)),
        0,
        "the failed run left nothing"
    );
}

#[test]
fn a_result_larger_than_the_import_limit_is_reported_as_what_it_is() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let run = attack(&home, &id, "big-summary", &[]).expect_code(1);
    assert!(
        run.stderr.contains("returned a result") && run.stderr.contains("32 MiB"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("to one host call"), "{}", run.stderr);
    // A summary the host can take is kept to its first 4096 characters.
    attack(&home, &id, "big-summary", &["--set", "bytes=1000000"]).expect_code(0);
    let (record, _) = last_run(&home, &id);
    let summary = record["summary"].as_str().unwrap();
    assert_eq!(summary.chars().count(), 4097, "4096 and an ellipsis");
}

#[test]
fn a_plugin_that_exits_fails_its_own_run_and_the_host_reports_it() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let run = attack(&home, &id, "exit", &[]).expect_code(1);
    assert!(
        run.stderr.contains("Exited with i32 exit status"),
        "{}",
        run.stderr
    );
    let (record, _) = last_run(&home, &id);
    assert_eq!(record["status"], "failed");
}

/// Fails unless `run` is a bad-input refusal: exit 2, one error line that contains `needle`,
/// bounded, with no cause printed twice.
fn assert_clear_refusal(what: &str, run: &Run, needle: &str) {
    assert_eq!(run.code, 2, "{what}: {}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: one line: {}", run.stderr);
    let line = lines[0];
    assert!(line.contains(needle), "{what}: {needle:?} in {line}");
    assert!(line.len() <= 5000, "{what}: {} bytes", line.len());
    let parts: Vec<&str> = line.split(": ").filter(|p| p.len() > 12).collect();
    for (i, part) in parts.iter().enumerate() {
        assert!(
            !parts[i + 1..].contains(part),
            "{what}: {part:?} is printed twice: {line}"
        );
    }
}

#[test]
fn a_home_that_is_not_a_folder_gets_a_clear_refusal_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "not a home").unwrap();
    let loop_a = dir.path().join("loop-a");
    std::os::unix::fs::symlink(dir.path().join("loop-b"), &loop_a).unwrap();
    std::os::unix::fs::symlink(&loop_a, dir.path().join("loop-b")).unwrap();
    for (home, needle) in [
        (file.as_path(), "is a regular file, not a directory"),
        (loop_a.as_path(), "symbolic links"),
        (std::path::Path::new("/dev/null"), "is a character device"),
        (std::path::Path::new("/proc"), "/proc"),
    ] {
        for args in [
            &["init"][..],
            &["project", "list"],
            &["project", "create", "x"],
        ] {
            let mut command = std::process::Command::new(common::VIDPIPE);
            command.arg("--home").arg(home).args(args);
            let run = common::finish_within(command, LIVENESS);
            assert_clear_refusal(&format!("--home {} {args:?}", home.display()), &run, needle);
        }
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"not a home");
    assert!(
        std::fs::read_dir("/proc")
            .unwrap()
            .all(|e| e.unwrap().file_name() != "vidpipe.db")
    );
}

#[test]
fn inputs_that_are_not_regular_files_or_are_huge_get_a_clear_refusal_without_hanging() {
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    let fifo = home.dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let fifo = fifo.to_str().unwrap();
    let deep = home.dir.path().join("deep.toml");
    std::fs::write(&deep, format!("a = {}", "[".repeat(100_000))).unwrap();
    let deep = deep.to_str().unwrap();
    let folder = home.dir.path().to_str().unwrap();
    let long_id = "x".repeat(10_000);
    let huge = home.dir.path().join("huge.txt");
    std::fs::write(&huge, vec![b'a'; (1 << 20) + 1]).unwrap();
    let huge = huge.to_str().unwrap();
    let cases: [(&[&str], &str); 9] = [
        (
            &["project", "create", "x", "--script", huge],
            "larger than the limit",
        ),
        (&["project", "create", "x", "--script", fifo], "is a FIFO"),
        (
            &["project", "create", "x", "--script", "/dev/zero"],
            "character device",
        ),
        (
            &["project", "create", "x", "--script", folder],
            "is a directory",
        ),
        (&["run", fifo, "--project", &id], "is a FIFO"),
        (&["run", "/dev/zero", "--project", &id], "character device"),
        (&["run", deep, "--project", &id], "is malformed"),
        (&["stage", "run", fifo, "--project", &id], "is a FIFO"),
        (&["project", "show", &long_id], "is not a UUID"),
    ];
    let before = home.count("SELECT count(*) FROM projects");
    for (args, needle) in cases {
        let run = home.vidpipe_within(args, LIVENESS);
        assert_clear_refusal(&format!("{args:?}"), &run, needle);
    }
    let shown = home.vidpipe(&["project", "show", &long_id]);
    assert!(
        shown.stderr.len() < 300,
        "a 10 KB id is not echoed whole: {}",
        shown.stderr
    );
    assert_eq!(
        home.count("SELECT count(*) FROM projects"),
        before,
        "nothing was written"
    );
}

/// Copies of the `vidpipe` binary and the storyboard plugin in a folder anyone may read: a
/// checkout in a private folder (a `mktemp -d`, a home directory) keeps `nobody` out of the
/// build folder, and the test is about the vidpipe home, not about where it was built.
struct Reachable {
    _dir: tempfile::TempDir,
    vidpipe: std::path::PathBuf,
    storyboard: String,
}

impl Reachable {
    fn new() -> Reachable {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let vidpipe = dir.path().join("vidpipe");
        // A hard link keeps the file's own permissions; a copy where links cannot go.
        if std::fs::hard_link(common::VIDPIPE, &vidpipe).is_err() {
            std::fs::copy(common::VIDPIPE, &vidpipe).unwrap();
        }
        std::fs::set_permissions(&vidpipe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let storyboard = dir.path().join("storyboard.wasm");
        std::fs::copy(plugins::STORYBOARD_PATH, &storyboard).unwrap();
        std::fs::set_permissions(&storyboard, std::fs::Permissions::from_mode(0o644)).unwrap();
        Reachable {
            _dir: dir,
            vidpipe,
            storyboard: storyboard.to_str().unwrap().to_owned(),
        }
    }

    /// Runs `vidpipe` on `home` as the unprivileged user `nobody`, who can read it but not
    /// write it.
    fn as_nobody(&self, home: &TestHome, args: &[&str]) -> Run {
        use std::os::unix::process::CommandExt;
        let mut command = home.command_of(&self.vidpipe, args);
        command.uid(65534).gid(65534);
        common::finish_within(command, LIVENESS)
    }
}

/// Every file under `dir` with its length and modification time.
fn snapshot(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            out.extend(snapshot(&entry.path()));
        } else {
            out.push((entry.path(), meta.len(), meta.modified().unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn a_home_that_can_be_read_but_not_written_serves_the_reading_commands_and_refuses_the_rest() {
    if !rustix_is_root() {
        println!("skipped: needs root, to run vidpipe as another user");
        return;
    }
    let home = TestHome::new();
    let id = home.project("Fox", SCRIPT);
    home.vidpipe(&["stage", "run", plugins::STORYBOARD_PATH, "--project", &id])
        .expect_code(0);
    // Let `nobody` reach the home (the temp folder is private to its owner), not write it.
    let mut perms = std::fs::metadata(home.dir.path()).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(home.dir.path(), perms).unwrap();
    let before = snapshot(&home.path());
    let reachable = Reachable::new();
    let run_id = home.show(&id)["runs"][0]["id"].as_str().unwrap().to_owned();
    for args in [
        &["project", "list"][..],
        &["project", "show", &id],
        &["project", "show", &id, "--json"],
        &["runs", "list", "--project", &id],
        &["runs", "show", &run_id],
    ] {
        let run = reachable.as_nobody(&home, args).expect_code(0);
        assert!(
            run.stdout.contains(&id) || run.stdout.contains(&run_id),
            "{args:?}: {}",
            run.stdout
        );
    }
    for args in [
        &["init"][..],
        &["project", "create", "y"],
        &["stage", "run", &reachable.storyboard, "--project", &id],
    ] {
        let run = reachable.as_nobody(&home, args);
        assert_clear_refusal(&format!("{args:?}"), &run, "cannot be written");
        assert!(
            run.stderr.contains("project list"),
            "says what still works: {}",
            run.stderr
        );
    }
    assert_eq!(
        snapshot(&home.path()),
        before,
        "nothing in the home changed"
    );
}

/// Whether this test runs as root (`/proc/self/status` says the real uid).
fn rustix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .is_some_and(|uids| uids.split_whitespace().next() == Some("0"))
}
