//! Helpers shared by the integration tests: a temp home and the real `vidpipe` binary.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

pub mod video;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The real CLI binary, built by cargo for this test run.
pub const VIDPIPE: &str = env!("CARGO_BIN_EXE_vidpipe");

/// A fresh, initialised home in a temp folder, deleted at the end of the test.
pub struct TestHome {
    pub dir: tempfile::TempDir,
}

/// The result of one CLI invocation.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(output: Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with both streams unless the exit code is `code`.
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl TestHome {
    pub fn new() -> Self {
        let home = TestHome {
            dir: tempfile::tempdir().unwrap(),
        };
        home.vidpipe(&["init"]).expect_code(0);
        home
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// A `vidpipe` command on this home, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_of(Path::new(VIDPIPE), args)
    }

    /// [`TestHome::command`] run by the `vidpipe` binary at `program` (a copy, say).
    #[allow(dead_code)]
    pub fn command_of(&self, program: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        command
            .arg("--home")
            .arg(self.path())
            .args(args)
            .env_remove("VIDPIPE_HOME")
            .env_remove("VIDPIPE_LOG")
            .current_dir(self.dir.path());
        command
    }

    /// Runs `vidpipe` with `args`, failing the test (and killing the process) if it has not
    /// ended within `limit`: for attacks whose failure mode is a process that never ends.
    pub fn vidpipe_within(&self, args: &[&str], limit: std::time::Duration) -> Run {
        finish_within(self.command(args), limit)
    }

    pub fn vidpipe(&self, args: &[&str]) -> Run {
        let output = Command::new(VIDPIPE)
            .arg("--home")
            .arg(self.path())
            .args(args)
            .env_remove("VIDPIPE_HOME")
            .env_remove("VIDPIPE_LOG")
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        Run::from(output)
    }

    /// Creates a project with `script` and returns its id.
    pub fn project(&self, name: &str, script: &str) -> String {
        let script_path = self.dir.path().join(format!("{}.txt", uuid_like(name)));
        std::fs::write(&script_path, script).unwrap();
        let run = self
            .vidpipe(&[
                "project",
                "create",
                name,
                "--script",
                script_path.to_str().unwrap(),
            ])
            .expect_code(0);
        run.stdout.trim().to_owned()
    }

    pub fn show(&self, id: &str) -> serde_json::Value {
        let run = self
            .vidpipe(&["project", "show", id, "--json"])
            .expect_code(0);
        serde_json::from_str(&run.stdout).unwrap()
    }

    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.path().join("vidpipe.db")).unwrap()
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    pub fn project_dir(&self, id: &str) -> PathBuf {
        self.path().join("projects").join(id)
    }

    /// Every file name under the project folder, relative, sorted (hidden ones included).
    pub fn files(&self, id: &str) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.project_dir(id), &self.project_dir(id), &mut out);
        out.sort();
        out
    }
}

/// Runs `command` to its end, killing it and failing the test if that takes longer than `limit`.
pub fn finish_within(mut command: Command, limit: std::time::Duration) -> Run {
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    // Read both pipes while waiting, so a chatty process cannot block on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).unwrap();
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut buf).unwrap();
        buf
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} was still running after {limit:?} and was killed");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
    }
}

fn uuid_like(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            walk(root, &path, out);
        } else {
            out.push(path.strip_prefix(root).unwrap().display().to_string());
        }
    }
}

/// Writes a pipeline manifest into the test's temp dir and returns its path.
pub fn manifest(home: &TestHome, file: &str, text: &str) -> String {
    let path = home.dir.path().join(file);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A three-stage manifest: storyboard, then bulk keyframes, then bulk clips.
pub fn bulk_manifest(keyframe_bytes: u32, extra_scenes: u32, clip_bytes: u32, spin: u64) -> String {
    format!(
        r#"name = "bulk"

[[stage]]
name = "storyboard"
plugin = "{storyboard}"

[[stage]]
name = "keyframes"
plugin = "{bulk}"
[stage.config]
kind = "keyframe"
bytes = {keyframe_bytes}
extra-scenes = {extra_scenes}
spin = {spin}

[[stage]]
name = "clips"
plugin = "{bulk}"
[stage.config]
kind = "clip"
bytes = {clip_bytes}
spin = {spin}
"#,
        storyboard = vidpipe_example_plugins::STORYBOARD_PATH,
        bulk = vidpipe_example_plugins::BULK_STAGE_PATH,
    )
}

/// [`bulk_manifest`] (without extra scenes) with keyframes and clips as per-scene stages
/// (`for-each = "scene"`): `limits` goes into the keyframes stage's table as given (limit keys,
/// one per line), and `config` into its configuration.
pub fn fanned_bulk_manifest(
    keyframe_bytes: u32,
    clip_bytes: u32,
    spin: u64,
    limits: &str,
    config: &str,
) -> String {
    format!(
        r#"name = "fanned"

[[stage]]
name = "storyboard"
plugin = "{storyboard}"

[[stage]]
name = "keyframes"
plugin = "{bulk}"
for-each = "scene"
{limits}
[stage.config]
kind = "keyframe"
bytes = {keyframe_bytes}
spin = {spin}
{config}

[[stage]]
name = "clips"
plugin = "{bulk}"
for-each = "scene"
[stage.config]
kind = "clip"
bytes = {clip_bytes}
spin = {spin}
"#,
        storyboard = vidpipe_example_plugins::STORYBOARD_PATH,
        bulk = vidpipe_example_plugins::BULK_STAGE_PATH,
    )
}

/// The committed state of a project without ids and times, to compare two runs' results.
pub fn normalized_state(home: &TestHome, id: &str) -> serde_json::Value {
    let d = home.show(id);
    let scene_index = |scene_id: &serde_json::Value| -> i64 {
        d["scenes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| &s["id"] == scene_id)
            .map_or(-1, |s| s["index"].as_i64().unwrap())
    };
    let scenes: Vec<_> = d["scenes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["index"].clone(),
                s["title"].clone(),
                s["description"].clone(),
                s["duration_ms"].clone(),
            )
        })
        .collect();
    let keyframes: Vec<_> = d["keyframes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                scene_index(&k["scene_id"]),
                k["position"].clone(),
                k["prompt"].clone(),
                k["image"].clone(),
            )
        })
        .collect();
    let clips: Vec<_> = d["video_clips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                scene_index(&c["scene_id"]),
                c["video"].clone(),
                c["duration_ms"].clone(),
                c["frame_rate"].clone(),
            )
        })
        .collect();
    let artifacts: Vec<_> = d["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["kind"].clone(),
                a["name"].clone(),
                a["size"].clone(),
                a["sha256"].clone(),
            )
        })
        .collect();
    serde_json::json!({ "scenes": scenes, "keyframes": keyframes, "clips": clips, "artifacts": artifacts })
}

/// Checks the invariants a crash must never break, directly on the files of the home:
/// the database is intact, every artifact row names a complete file, no staged file is left,
/// nothing is recorded as still running.
pub fn assert_consistent(home: &TestHome) {
    use sha2::Digest;
    let db = home.db();
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let mut fk = db.prepare("PRAGMA foreign_key_check").unwrap();
    assert!(!fk.exists([]).unwrap(), "foreign_key_check is empty");
    let running: i64 = db
        .query_row(
            "SELECT (SELECT count(*) FROM pipeline_runs WHERE status IN ('queued', 'running'))
                  + (SELECT count(*) FROM pipelines WHERE status = 'running')
                  + (SELECT count(*) FROM publish_journal)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        running, 0,
        "nothing is left running or journaled after recovery"
    );
    let mut st = db
        .prepare("SELECT project_id, kind, name, size, sha256 FROM artifacts")
        .unwrap();
    let rows: Vec<(String, String, String, u64, String)> = st
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (project, kind, name, size, sha) in rows {
        let folder = match kind.as_str() {
            "keyframe" => "keyframes",
            "clip" => "clips",
            _ => "output",
        };
        let bytes = std::fs::read(home.project_dir(&project).join(folder).join(&name))
            .unwrap_or_else(|e| panic!("artifact {kind}/{name} has a row but no file: {e}"));
        assert_eq!(bytes.len() as u64, size, "{kind}/{name} size");
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&bytes)),
            sha,
            "{kind}/{name} sha256"
        );
    }
    for entry in std::fs::read_dir(home.path().join("projects")).unwrap() {
        let id = entry.unwrap().file_name().to_string_lossy().into_owned();
        for file in home.files(&id) {
            assert!(
                !file.contains(".stage-"),
                "staged file left visible: {id}/{file}"
            );
        }
    }
}

/// The id of the pipeline run that `run` (a `vidpipe run`) reported on its last line.
pub fn pipeline_run(run: &Run) -> String {
    run.stdout
        .lines()
        .last()
        .and_then(|l| l.split("(run ").nth(1))
        .and_then(|l| l.split(')').next())
        .unwrap_or_else(|| panic!("no pipeline run id: {}", run.stdout))
        .to_owned()
}

/// The report of a faulty-stage probing mode whose every attempt the host refused: the run
/// failed, and its reason (printed on stderr) lists each attempt and what it got.
pub fn refusals(run: &Run) -> String {
    assert_eq!(
        run.code, 1,
        "a probe the host refused entirely fails the run: {}",
        run.stderr
    );
    let marker = "every attempt was refused: ";
    let line = run
        .stderr
        .lines()
        .find(|l| l.starts_with("vidpipe: error:") && l.contains(marker))
        .unwrap_or_else(|| panic!("{}", run.stderr));
    line.split_once(marker).unwrap().1.to_owned()
}

/// A script of three paragraphs.
pub const SCRIPT: &str = "A red fox wakes in the snow. It sniffs the cold air.\n\n\
    The fox crosses a frozen river, slipping once.\n\n\
    On the far bank it finds its den and sleeps.\n";
