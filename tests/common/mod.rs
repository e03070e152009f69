//! Helpers shared by the integration tests: a temp home and the real `vidpipe` binary.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

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
    fn from(output: Output) -> Self {
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

/// A script of three paragraphs.
pub const SCRIPT: &str = "A red fox wakes in the snow. It sniffs the cold air.\n\n\
    The fox crosses a frozen river, slipping once.\n\n\
    On the far bank it finds its den and sleeps.\n";
