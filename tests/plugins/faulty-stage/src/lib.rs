//! `faulty-stage`: a test plugin of world `stage` that misbehaves on demand, so host tests can
//! check that a failing, trapping, looping or memory-hungry stage leaves nothing behind, and that
//! artifact names trying to escape the store are refused.
//!
//! Every run first does some real work: it writes scene 0 titled `doomed` (creating it, or
//! updating it if the project already has a scene 0), publishes the `output` artifact
//! `doomed.txt`, and starts writing `output/half.bin` without finishing it. Then the config key
//! `mode` picks what happens:
//!
//! | mode | behaviour |
//! | --- | --- |
//! | `error` | returns the error `conflict: faulty-stage failed on purpose` |
//! | `trap` | executes `unreachable` |
//! | `loop` | spins forever |
//! | `memory` | allocates and touches 1 MiB blocks forever |
//! | `ok` | returns `fine`, so the same plugin can be shown to commit when healthy |
//! | `escape` | tries [`ESCAPE_CORPUS`] names with create/read/stat/delete and reports what each got |
//! | `read` | reads the whole `output` artifact named by config key `name` and returns it as text |
//! | `recursion` | recurses without end |
//! | `host-loop` | calls the host in an endless loop |
//! | `handles` | opens artifact writers until the host refuses, and returns that error |
//! | `foreign` | tries every db call on the comma-separated ids in config key `ids`; reports what each got |
//! | `ambient` | tries to read `/etc/passwd`, list `/`, read the environment and connect to 127.0.0.1 |
//! | `big-list` | passes one `list<u8>` of config key `bytes` bytes (default 1 GiB) to `write` |
//! | `residue` | checks that its memory is as the component defines it (a zeroed and a preset static, and 8 MiB of fresh zeroed heap), then scribbles over all three; an earlier run's scribbles fail it with `conflict` |
//!
//! The probing modes (`escape`, `foreign`, `ambient`) fail the stage with
//! `every attempt was refused: <report>` when the host refused everything, and succeed with the
//! report if anything got through.
//!
//! In `error`, `ok` and `escape` the unfinished `half.bin` writer is dropped when `run` returns;
//! in the other modes it is never dropped.

use std::hint::black_box;
use std::sync::atomic::{AtomicU8, Ordering};

// The export glue wit-bindgen generates is FFI and has to be unsafe; it is confined to this
// module so the rest of the crate stays under the workspace's `unsafe_code = "deny"`.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "stage",
    });

    use super::FaultyStage;
    export!(FaultyStage with_types_in crate::bindings);
}

use bindings::vidpipe::plugin::{artifacts, db, log, types};
use types::{ArtifactKind, ArtifactRef, Error, ErrorCode};

/// The message of the `error` mode.
pub const ERROR_MESSAGE: &str = "faulty-stage failed on purpose";

/// The misbehaviours the plugin can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Return an error.
    Error,
    /// Trap.
    Trap,
    /// Loop forever.
    Loop,
    /// Allocate memory forever.
    Memory,
    /// Succeed.
    Ok,
    /// Probe the artifact store with escaping names.
    Escape,
    /// Read the `output` artifact named by config key `name`.
    Read,
    /// Recurse without end.
    Recursion,
    /// Call the host in an endless loop.
    HostLoop,
    /// Open writers until refused.
    Handles,
    /// Use ids of another project.
    Foreign,
    /// Reach for ambient authority: files, environment, network.
    Ambient,
    /// Pass one huge list to an import.
    BigList,
    /// Look for what an earlier run left in memory, then leave some.
    Residue,
}

/// The accepted values of `mode`.
pub const MODES: [&str; 14] = [
    "error",
    "trap",
    "loop",
    "memory",
    "ok",
    "escape",
    "read",
    "recursion",
    "host-loop",
    "handles",
    "foreign",
    "ambient",
    "big-list",
    "residue",
];

impl Mode {
    /// Reads `mode` from the stage's configuration; any other key, a missing `mode` or an
    /// unknown one is an error message for `invalid-input`.
    pub fn from_config(config: &[(String, String)]) -> Result<Self, String> {
        let mut mode = None;
        for (key, value) in config {
            match key.as_str() {
                "mode" => mode = Some(value.as_str()),
                "name" | "ids" | "bytes" => {}
                _ => {
                    return Err(format!(
                        "unknown config key `{key}`; known keys: mode, name, ids, bytes"
                    ));
                }
            }
        }
        match mode {
            Some("error") => Ok(Self::Error),
            Some("trap") => Ok(Self::Trap),
            Some("loop") => Ok(Self::Loop),
            Some("memory") => Ok(Self::Memory),
            Some("ok") => Ok(Self::Ok),
            Some("escape") => Ok(Self::Escape),
            Some("read") => Ok(Self::Read),
            Some("recursion") => Ok(Self::Recursion),
            Some("host-loop") => Ok(Self::HostLoop),
            Some("handles") => Ok(Self::Handles),
            Some("foreign") => Ok(Self::Foreign),
            Some("ambient") => Ok(Self::Ambient),
            Some("big-list") => Ok(Self::BigList),
            Some("residue") => Ok(Self::Residue),
            Some(other) => Err(format!(
                "unknown mode `{other}`; expected one of: {}",
                MODES.join(", ")
            )),
            None => Err(format!(
                "config key `mode` is required; one of: {}",
                MODES.join(", ")
            )),
        }
    }
}

/// Artifact names that must all be refused, each with the label used for it in the summary.
pub fn escape_corpus() -> Vec<(String, String)> {
    let long = "a".repeat(4096);
    [
        ("../x", "../x".to_owned()),
        ("a/../../x", "a/../../x".to_owned()),
        ("/etc/passwd", "/etc/passwd".to_owned()),
        ("//x", "//x".to_owned()),
        ("x\\0y", "x\0y".to_owned()),
        (".", ".".to_owned()),
        ("..", "..".to_owned()),
        ("(empty)", String::new()),
        ("(4096 bytes)", long),
        ("..\\x", "..\\x".to_owned()),
        ("../vidpipe.db", "../vidpipe.db".to_owned()),
        ("../../../vidpipe.db", "../../../vidpipe.db".to_owned()),
    ]
    .into_iter()
    .map(|(label, name)| (label.to_owned(), name))
    .collect()
}

/// The labels of [`escape_corpus`], in order, for tests that check the summary.
pub const ESCAPE_CORPUS: [&str; 12] = [
    "../x",
    "a/../../x",
    "/etc/passwd",
    "//x",
    "x\\0y",
    ".",
    "..",
    "(empty)",
    "(4096 bytes)",
    "..\\x",
    "../vidpipe.db",
    "../../../vidpipe.db",
];

/// The WIT spelling of an error code, as used in the `escape` summary.
fn code_text(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::NotFound => "not-found",
        ErrorCode::InvalidInput => "invalid-input",
        ErrorCode::Conflict => "conflict",
        ErrorCode::LimitExceeded => "limit-exceeded",
        ErrorCode::Io => "io",
        ErrorCode::Busy => "busy",
        ErrorCode::OutOfScope => "out-of-scope",
    }
}

/// The summary of the `escape` mode from the outcomes, one per operation and name in order:
/// entries such as `create ../x:invalid-input` joined by `; `. An accepted call shows as `ok`.
pub fn escape_summary(outcomes: &[(&str, &str, &str)]) -> String {
    outcomes
        .iter()
        .map(|(op, label, outcome)| format!("{op} {label}:{outcome}"))
        .collect::<Vec<_>>()
        .join("; ")
}

struct FaultyStage;

impl bindings::Guest for FaultyStage {
    fn run(config: Vec<(String, String)>) -> Result<String, Error> {
        let mode = Mode::from_config(&config).map_err(|message| Error {
            code: ErrorCode::InvalidInput,
            message,
        })?;
        log::log(log::Level::Info, &format!("faulty-stage: mode {mode:?}"));
        // Kept alive on purpose: the host must discard it whatever happens next.
        let _half_written = do_some_real_work()?;
        match mode {
            Mode::Error => Err(Error {
                code: ErrorCode::Conflict,
                message: ERROR_MESSAGE.to_owned(),
            }),
            Mode::Trap => trap(),
            Mode::Loop => spin_forever(),
            Mode::Memory => hoard_memory_forever(),
            Mode::Ok => Ok("fine".to_owned()),
            Mode::Escape => refused_or_leaked(probe_escapes(), ":ok"),
            Mode::Recursion => Ok(format!("{}", recurse(black_box(1)))),
            Mode::HostLoop => loop {
                black_box(db::get_project()?);
            },
            Mode::Handles => {
                let mut open = Vec::new();
                loop {
                    open.push(artifacts::create(
                        ArtifactKind::Output,
                        &format!("h{}.bin", open.len()),
                    )?);
                }
            }
            Mode::Foreign => {
                let ids = config
                    .iter()
                    .find(|(k, _)| k == "ids")
                    .map_or("", |(_, v)| v.as_str());
                refused_or_leaked(probe_foreign(ids), ":ok")
            }
            Mode::Ambient => refused_or_leaked(probe_ambient(), "LEAKED"),
            Mode::Residue => look_for_residue(),
            Mode::BigList => {
                let bytes = config
                    .iter()
                    .find(|(k, _)| k == "bytes")
                    .and_then(|(_, v)| v.parse::<usize>().ok())
                    .unwrap_or(1 << 30);
                let huge = vec![0x42u8; bytes];
                let writer = artifacts::create(ArtifactKind::Output, "huge.bin")?;
                writer.write(black_box(&huge))?;
                artifacts::Writer::finish(writer)?;
                Ok(format!("wrote {bytes} bytes in one call"))
            }
            Mode::Read => {
                let name = config
                    .iter()
                    .find(|(k, _)| k == "name")
                    .map_or("", |(_, v)| v.as_str());
                read_all(name)
            }
        }
    }
}

/// Writes the `doomed` scene, publishes `doomed.txt` and returns an unfinished `half.bin` writer.
fn do_some_real_work() -> Result<artifacts::Writer, Error> {
    let first = db::list_scenes(None, 1)?;
    match first.items.first().filter(|scene| scene.index == 0) {
        // A scene 0 left by an earlier healthy run must not turn every later mode into a
        // duplicate-index conflict before the misbehaviour under test.
        Some(scene) => {
            db::update_scene(
                &scene.id,
                &db::SceneUpdate {
                    title: Some("doomed".to_owned()),
                    description: Some("written by faulty-stage".to_owned()),
                    duration_ms: Some(1_000),
                },
            )?;
        }
        None => {
            db::create_scene(&db::NewScene {
                index: 0,
                title: "doomed".to_owned(),
                description: "written by faulty-stage".to_owned(),
                duration_ms: 1_000,
            })?;
        }
    }

    let doomed = artifacts::create(ArtifactKind::Output, "doomed.txt")?;
    doomed.write(b"this artifact must not survive a failed run\n")?;
    artifacts::Writer::finish(doomed)?;

    let half = artifacts::create(ArtifactKind::Output, "half.bin")?;
    half.write(&[0xA5; 4096])?;
    half.write(&[0x5A; 1000])?;
    Ok(half)
}

/// Reads a whole `output` artifact in 64 KiB ranges and returns it as (lossy) text.
fn read_all(name: &str) -> Result<String, Error> {
    let mut bytes = Vec::new();
    loop {
        let chunk = artifacts::read(ArtifactKind::Output, name, bytes.len() as u64, 64 * 1024)?;
        if chunk.is_empty() {
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Recursion the optimiser cannot turn into a loop; it never returns, which is the point.
#[allow(unconditional_recursion)]
fn recurse(n: u64) -> u64 {
    let mut frame = [n; 64];
    frame[black_box(7)] = recurse(black_box(n + 1));
    black_box(frame).iter().sum()
}

/// Every db call that takes an id, on each of `ids`; `op id:outcome` joined by `; `.
fn probe_foreign(ids: &str) -> String {
    let outcome = |r: Result<(), Error>| match r {
        Ok(()) => "ok",
        Err(e) => code_text(e.code),
    };
    let image = ArtifactRef {
        kind: ArtifactKind::Output,
        name: "doomed.txt".to_owned(),
    };
    let mut out = Vec::new();
    for id in ids.split(',').filter(|s| !s.is_empty()) {
        let id = id.to_owned();
        let calls: [(&str, Result<(), Error>); 10] = [
            ("get-scene", db::get_scene(&id).map(drop)),
            (
                "update-scene",
                db::update_scene(
                    &id,
                    &db::SceneUpdate {
                        title: Some("stolen".into()),
                        description: None,
                        duration_ms: None,
                    },
                )
                .map(drop),
            ),
            ("get-keyframe", db::get_keyframe(&id).map(drop)),
            (
                "update-keyframe",
                db::update_keyframe(
                    &id,
                    &db::KeyframeUpdate {
                        prompt: Some("stolen".into()),
                        image: None,
                    },
                )
                .map(drop),
            ),
            ("get-video-clip", db::get_video_clip(&id).map(drop)),
            (
                "update-video-clip",
                db::update_video_clip(
                    &id,
                    &db::VideoClipUpdate {
                        video: None,
                        duration_ms: Some(1),
                        frame_rate: None,
                    },
                )
                .map(drop),
            ),
            (
                "list-keyframes",
                db::list_keyframes(Some(&id), None, 10).map(drop),
            ),
            (
                "list-video-clips",
                db::list_video_clips(Some(&id), None, 10).map(drop),
            ),
            (
                "create-keyframe",
                db::create_keyframe(&db::NewKeyframe {
                    scene_id: id.clone(),
                    position: db::KeyframePosition::Start,
                    prompt: String::new(),
                    image: image.clone(),
                })
                .map(drop),
            ),
            (
                "create-video-clip",
                db::create_video_clip(&db::NewVideoClip {
                    scene_id: id.clone(),
                    video: image.clone(),
                    duration_ms: 1,
                    frame_rate: 1,
                })
                .map(drop),
            ),
        ];
        for (op, result) in calls {
            out.push(format!("{op} {id}:{}", outcome(result)));
        }
    }
    out.join("; ")
}

/// What the sandbox answers when the stage reaches for files, environment and network.
fn probe_ambient() -> String {
    let passwd = match std::fs::read_to_string("/etc/passwd") {
        Ok(text) => format!("read /etc/passwd: LEAKED {} bytes", text.len()),
        Err(e) => format!("read /etc/passwd: refused ({e})"),
    };
    let root = match std::fs::read_dir("/") {
        Ok(entries) => format!("list /: LEAKED {} entries", entries.count()),
        Err(e) => format!("list /: refused ({e})"),
    };
    let env = format!(
        "environment: {} variables, {} arguments",
        std::env::vars().count(),
        std::env::args().count()
    );
    let net = match std::net::TcpStream::connect("127.0.0.1:22") {
        Ok(_) => "connect 127.0.0.1:22: LEAKED a connection".to_owned(),
        Err(e) => format!("connect 127.0.0.1:22: refused ({e})"),
    };
    [passwd, root, env, net].join("; ")
}

/// The end of a probing mode: when the host refused every attempt (`report` has no `leak`
/// marker) the stage fails with the report, so the run is recorded as failed with every
/// refusal in its reason; if anything got through, it succeeds, which tests treat as a breach.
fn refused_or_leaked(report: String, leak: &str) -> Result<String, Error> {
    if report.contains(leak) {
        Ok(report)
    } else {
        Err(Error {
            code: ErrorCode::Conflict,
            message: format!("{REFUSED}{report}"),
        })
    }
}

/// How the report of a probing mode starts when every attempt was refused.
pub const REFUSED: &str = "every attempt was refused: ";

fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    panic!("faulty-stage trapped on purpose");
}

fn spin_forever() -> ! {
    let mut counter = 0u64;
    loop {
        // black_box keeps the optimiser from proving the loop side-effect free and removing it.
        counter = black_box(counter.wrapping_add(1));
    }
}

fn hoard_memory_forever() -> ! {
    const BLOCK: usize = 1 << 20;
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; BLOCK];
        // Touch every page so the memory is really used, not just reserved.
        for byte in block.iter_mut().step_by(4096) {
            *byte = 1;
        }
        hoard.push(black_box(block));
        black_box(&mut hoard);
    }
}

fn probe_escapes() -> String {
    let corpus = escape_corpus();
    let mut outcomes: Vec<(&str, &str, &'static str)> = Vec::new();
    for (label, name) in &corpus {
        let outcome = |result: Result<(), Error>| match result {
            Ok(()) => "ok",
            Err(error) => code_text(error.code),
        };
        // An accepted writer is dropped unfinished, so even a host that wrongly accepts the
        // name publishes nothing.
        let created = outcome(artifacts::create(ArtifactKind::Output, name).map(drop));
        let read = outcome(artifacts::read(ArtifactKind::Output, name, 0, 16).map(drop));
        let stat = outcome(artifacts::stat(ArtifactKind::Output, name).map(drop));
        let deleted = outcome(artifacts::delete(ArtifactKind::Output, name));
        for (op, result) in [
            ("create", created),
            ("read", read),
            ("stat", stat),
            ("delete", deleted),
        ] {
            outcomes.push((op, label.as_str(), result));
        }
    }
    let summary = escape_summary(&outcomes);
    log::log(log::Level::Info, &format!("escape probes: {summary}"));
    summary
}

/// Bytes of each static [`look_for_residue`] checks.
const RESIDUE_BYTES: usize = 64 << 10;
/// Bytes of fresh heap it checks: more than the memory a stage starts with, so most of it is
/// memory the instance grows.
const GROWN_BYTES: usize = 8 << 20;
/// What an earlier run writes over both statics and the heap.
const SCRIBBLE: u8 = 0xA5;
/// Zero-initialised, so it lives outside the component's data segments.
static ZEROED: [AtomicU8; RESIDUE_BYTES] = [const { AtomicU8::new(0) }; RESIDUE_BYTES];
/// Initialised to 7, so it lives in a data segment (the memory image).
static PRESET: [AtomicU8; RESIDUE_BYTES] = [const { AtomicU8::new(7) }; RESIDUE_BYTES];

/// Fails with `conflict` if either static differs from its initial value, or fresh zeroed heap
/// is not zero (an earlier run's memory showing through), then overwrites all three for the
/// next run to find. (The guest allocator hands out memory the instance has just grown as
/// zeroed without clearing it, trusting WebAssembly's guarantee that new pages are zero.)
fn look_for_residue() -> Result<String, Error> {
    let differing = |cells: &[AtomicU8], expected: u8| {
        cells
            .iter()
            .filter(|c| c.load(Ordering::Relaxed) != expected)
            .count()
    };
    let (zeroed, preset) = (differing(&ZEROED, 0), differing(&PRESET, 7));
    let mut heap = black_box(vec![0u8; GROWN_BYTES]);
    let grown = heap.iter().filter(|&&b| b != 0).count();
    for cell in ZEROED.iter().chain(PRESET.iter()) {
        cell.store(SCRIBBLE, Ordering::Relaxed);
    }
    heap.fill(SCRIBBLE);
    black_box(&heap);
    if zeroed + preset + grown > 0 {
        return Err(Error {
            code: ErrorCode::Conflict,
            message: format!(
                "memory left by an earlier run: {zeroed} zeroed, {preset} preset and {grown} heap bytes differ"
            ),
        });
    }
    Ok(format!(
        "clean: {} bytes checked",
        2 * RESIDUE_BYTES + GROWN_BYTES
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn every_documented_mode_is_understood() {
        let modes: Vec<Mode> = MODES
            .iter()
            .map(|m| Mode::from_config(&config(&[("mode", m)])).expect("known mode"))
            .collect();
        assert_eq!(
            modes,
            [
                Mode::Error,
                Mode::Trap,
                Mode::Loop,
                Mode::Memory,
                Mode::Ok,
                Mode::Escape,
                Mode::Read,
                Mode::Recursion,
                Mode::HostLoop,
                Mode::Handles,
                Mode::Foreign,
                Mode::Ambient,
                Mode::BigList,
                Mode::Residue
            ]
        );
    }

    #[test]
    fn residue_mode_finds_what_an_earlier_run_in_the_same_memory_left() {
        // Natively both calls share one process's statics: the second finds the first's bytes,
        // which is what a run in an unreset pool slot would see.
        let first = look_for_residue().expect("fresh memory is clean");
        assert_eq!(first, "clean: 8519680 bytes checked");
        let second = look_for_residue().expect_err("the scribbles are found");
        assert!(matches!(second.code, ErrorCode::Conflict));
        assert!(
            second.message.contains("65536 zeroed, 65536 preset and"),
            "{}",
            second.message
        );
    }

    #[test]
    fn an_unknown_or_missing_mode_is_refused_with_the_list_of_modes() {
        for pairs in [vec![("mode", "explode")], vec![]] {
            let message = Mode::from_config(&config(&pairs)).expect_err("refused");
            assert!(
                message.contains("error, trap, loop, memory, ok, escape, read, recursion"),
                "{message}"
            );
        }
        let message =
            Mode::from_config(&config(&[("mode", "ok"), ("speed", "1")])).expect_err("refused");
        assert!(message.contains("`speed`"), "{message}");
    }

    #[test]
    fn the_escape_corpus_has_every_hostile_name_once() {
        let corpus = escape_corpus();
        let labels: Vec<&str> = corpus.iter().map(|(label, _)| label.as_str()).collect();
        assert_eq!(labels, ESCAPE_CORPUS);
        let names: Vec<&str> = corpus.iter().map(|(_, name)| name.as_str()).collect();
        assert!(names.contains(&"x\0y"));
        assert!(names.contains(&""));
        assert!(names.contains(&"..\\x"));
        assert!(names.iter().any(|n| n.len() == 4096));
    }

    #[test]
    fn the_escape_summary_pairs_operation_name_and_code() {
        let summary =
            escape_summary(&[("create", "../x", "invalid-input"), ("read", "../x", "ok")]);
        assert_eq!(summary, "create ../x:invalid-input; read ../x:ok");
    }

    #[test]
    fn error_codes_use_their_wit_spelling() {
        assert_eq!(code_text(ErrorCode::InvalidInput), "invalid-input");
        assert_eq!(code_text(ErrorCode::LimitExceeded), "limit-exceeded");
        assert_eq!(code_text(ErrorCode::NotFound), "not-found");
    }
}
