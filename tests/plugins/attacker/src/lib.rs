//! `attacker`: a test plugin that tries, through nothing but the WIT and WASI, to do what
//! SECURITY.md says a stage cannot. Each mode is one attack; the host's tests check that it
//! ends as a recorded failure (or a refusal) within the promised bounds.
//!
//! | mode | attack |
//! | --- | --- |
//! | `sleep` | `std::thread::sleep` for config `secs` seconds (default: `Duration::MAX`) |
//! | `poll` | `wasi:io/poll.poll` on 1,000 clock pollables that never become ready |
//! | `stdin` | reads standard input to its end, then sleeps as `sleep` does |
//! | `log-flood` | config `count` (default 2,000,000) empty `log` calls |
//! | `quiet-flood` | `count` debug-level `log` calls (not shown by default), then one warning |
//! | `progress-flood` | `count` calls of `progress(u64::MAX, 1, "")` |
//! | `stdout-flood` | `count` empty lines on stdout, and as many on stderr |
//! | `hostile-text` | tries hostile scene titles and artifact names, logs and prints hostile text, and returns a hostile summary |
//! | `hostile-error` | fails with a hostile error message |
//! | `hoard` | stages up to config `mib` MiB as `output/big.bin`, then writes 1 MiB chunks into an unfinished `output/more.bin` until refused, logs `hoarded …`, and sleeps as `sleep` does |
//! | `big-summary` | returns a summary of config `bytes` bytes (default 40 MiB) |
//! | `exit` | calls `std::process::exit(3)` |
//! | `scope-escape` | as a shard: writes its own `output/side-<scene index>.bin`, then tries every write outside its scene — updating, deleting and creating scenes, changing and adding keyframes of other scenes, replacing and deleting every file of the project its own scene's rows do not name — and returns how many attempts got each outcome and which were allowed, e.g. `73 attempts: out-of-scope 73; allowed: none` |
//! | `part-escape` | as a shard doing one part of its scene (`parts = N`): tries every write a part may not make — another part's row (every index up to 16), a cut into more than N, deleting clip parts from every number below N, a whole clip, its scene's row and keyframes, and replacing or deleting every file its own part's row does not name — and returns the tally, as `scope-escape` does |
//! | `leave-file` | writes `output/<config name>` (default `left.bin`), a file no row names |
//! | `read-flood` | reads config `count` (default 20,000) different scenes by well-formed ids that name nothing, then the project |
//!
//! Hostile text is [`HOSTILE`]: terminal escape sequences (set the window title, clear the
//! screen), a newline that forges an output line, and bidi overrides that reverse what follows.

use std::hint::black_box;
use std::io::{Read, Write};
use std::time::Duration;

// The export glue wit-bindgen generates is FFI and has to be unsafe; it is confined here.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "stage",
    });

    use super::Attacker;
    export!(Attacker with_types_in crate::bindings);
}

use bindings::vidpipe::plugin::{artifacts, db, log, types};
use types::{ArtifactKind, Error, ErrorCode};

/// Text a terminal would obey if printed raw: an OSC that sets the window title, a CSI that
/// clears the screen, a newline followed by a forged line, a C1 control, a line separator and a
/// right-to-left override.
pub const HOSTILE: &str =
    "title\u{1b}]0;pwned\u{7}\u{1b}[2J\nFORGED: all good\u{9b}31m\u{2028}x\u{202e}gpj.exe";

/// An artifact name that displays as a harmless `…exe.jpg`-looking name.
pub const BIDI_NAME: &str = "invoice\u{202e}gpj.exe";

/// A configuration value, or `default`.
fn value<'a>(config: &'a [(String, String)], key: &str, default: &'a str) -> &'a str {
    config
        .iter()
        .find(|(k, _)| k == key)
        .map_or(default, |(_, v)| v.as_str())
}

fn number(config: &[(String, String)], key: &str, default: u64) -> Result<u64, Error> {
    let text = value(config, key, "");
    if text.is_empty() {
        return Ok(default);
    }
    text.parse().map_err(|_| Error {
        code: ErrorCode::InvalidInput,
        message: format!("`{key}` must be a whole number, not {text:?}"),
    })
}

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

struct Attacker;

impl bindings::Guest for Attacker {
    fn run(config: Vec<(String, String)>) -> Result<String, Error> {
        match value(&config, "mode", "") {
            "sleep" => sleep(&config),
            "poll" => poll_forever(),
            "stdin" => {
                let mut bytes = Vec::new();
                let read = std::io::stdin().read_to_end(&mut bytes);
                log::log(
                    log::Level::Info,
                    &format!("stdin gave {} bytes ({read:?})", bytes.len()),
                );
                sleep(&config)
            }
            "log-flood" => {
                for _ in 0..number(&config, "count", 2_000_000)? {
                    log::log(log::Level::Info, black_box(""));
                }
                Ok("flooded the log".to_owned())
            }
            "quiet-flood" => {
                // Lines nobody sees (debug is off by default) must not use up the budget.
                for _ in 0..number(&config, "count", 2_000_000)? {
                    log::log(log::Level::Debug, black_box("unseen"));
                }
                log::log(log::Level::Warn, "still heard after the quiet flood");
                Ok("flooded the debug log".to_owned())
            }
            "progress-flood" => {
                for _ in 0..number(&config, "count", 2_000_000)? {
                    log::progress(u64::MAX, 1, black_box(""));
                }
                Ok("flooded progress".to_owned())
            }
            "stdout-flood" => {
                let count = number(&config, "count", 2_000_000)?;
                let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
                for _ in 0..count {
                    // Unbuffered: one host call per line, as an attacker would.
                    let _ = out.write_all(b"\n");
                    let _ = err.write_all(b"\n");
                }
                Ok("flooded stdout and stderr".to_owned())
            }
            "hostile-text" => hostile_text(),
            "hostile-error" => Err(Error {
                code: ErrorCode::Conflict,
                message: HOSTILE.to_owned(),
            }),
            "hoard" => hoard(number(&config, "mib", 2)?, &config),
            "big-summary" => {
                let bytes = number(&config, "bytes", 40 << 20)?;
                Ok("s".repeat(usize::try_from(bytes).unwrap_or(usize::MAX)))
            }
            "exit" => std::process::exit(3),
            "scope-escape" => scope_escape(),
            "part-escape" => part_escape(),
            "leave-file" => {
                let name = value(&config, "name", "left.bin");
                let w = artifacts::create(ArtifactKind::Output, name)?;
                w.write(b"left behind")?;
                artifacts::Writer::finish(w)?;
                Ok(format!("left {name}"))
            }
            "read-flood" => {
                let count = number(&config, "count", 20_000)?;
                for i in 0..count {
                    let _ = db::get_scene(&format!("00000000-0000-7000-8000-{i:012x}"));
                }
                let project = db::get_project()?;
                Ok(format!(
                    "read {count} scenes that are not there, and {}",
                    project.name
                ))
            }
            other => Err(Error {
                code: ErrorCode::InvalidInput,
                message: format!("unknown mode {other:?}"),
            }),
        }
    }
}

fn sleep(config: &[(String, String)]) -> Result<String, Error> {
    let secs = value(config, "secs", "");
    let duration = if secs.is_empty() {
        Duration::MAX
    } else {
        Duration::from_secs(number(config, "secs", 0)?)
    };
    std::thread::sleep(duration);
    Ok(format!("slept {duration:?} and got away with it"))
}

fn poll_forever() -> Result<String, Error> {
    use wasip2::clocks::monotonic_clock;
    let pollables: Vec<_> = (0..1000)
        .map(|i| monotonic_clock::subscribe_duration(u64::MAX - i))
        .collect();
    let refs: Vec<_> = pollables.iter().collect();
    let ready = wasip2::io::poll::poll(&refs);
    Ok(format!("poll returned {ready:?} and got away with it"))
}

/// Tries hostile titles and names (each refused or accepted, reported), then leaves hostile
/// text everywhere the host accepts text: a description, a log line, stdout, the summary.
fn hostile_text() -> Result<String, Error> {
    let mut report = Vec::new();
    let titles = [
        ("escape", HOSTILE.to_owned()),
        ("nul", "a\0b".to_owned()),
        ("bidi", "a\u{202e}b".to_owned()),
        ("isolate", "a\u{2066}b".to_owned()),
        ("separator", "a\u{2029}b".to_owned()),
        ("zero-width", "a\u{200b}b".to_owned()),
    ];
    for (index, (label, title)) in titles.into_iter().enumerate() {
        let created = db::create_scene(&db::NewScene {
            index: 100 + index as u32,
            title,
            description: String::new(),
            duration_ms: 1000,
        });
        report.push(format!(
            "title {label}: {}",
            created.map_or_else(|e| code_text(e.code), |_| "ok")
        ));
    }
    for (label, name) in [
        ("bidi", BIDI_NAME),
        ("isolate", "a\u{2067}b.png"),
        ("separator", "a\u{2028}b.png"),
        ("bom", "\u{feff}a.png"),
    ] {
        let created = artifacts::create(ArtifactKind::Output, name).map(drop);
        report.push(format!(
            "name {label}: {}",
            created.map_or_else(|e| code_text(e.code), |()| "ok")
        ));
    }
    db::create_scene(&db::NewScene {
        index: 0,
        title: "A plain title".to_owned(),
        description: HOSTILE.to_owned(),
        duration_ms: 1000,
    })?;
    log::log(log::Level::Warn, HOSTILE);
    log::progress(1, 2, HOSTILE);
    println!("{HOSTILE}");
    eprintln!("{HOSTILE}");
    log::log(log::Level::Info, &format!("report: {}", report.join("; ")));
    Ok(format!("{HOSTILE} | {}", report.join("; ")))
}

/// Holds as many bytes on disk as the host lets it: a replacement of `output/big.bin` of up to
/// `mib` MiB (finished), then an unfinished writer filled until refused (either writer may be
/// refused outright when the quota is full). Then it says how much
/// it holds and waits to be stopped (or for config `secs`), so the test can measure the disk
/// while everything is still held.
fn hoard(mib: u64, config: &[(String, String)]) -> Result<String, Error> {
    let chunk = vec![0x5Au8; 1 << 20];
    let fill = |writer: &artifacts::Writer, chunks: u64| -> (u64, Option<Error>) {
        let mut written = 0;
        for _ in 0..chunks {
            match writer.write(&chunk) {
                Ok(()) => written += chunk.len() as u64,
                Err(e) => return (written, Some(e)),
            }
        }
        (written, None)
    };
    // Even an empty file takes room: a writer itself may be refused.
    let (staged, first) = match artifacts::create(ArtifactKind::Output, "big.bin") {
        Ok(big) => {
            let filled = fill(&big, mib);
            artifacts::Writer::finish(big)?;
            filled
        }
        Err(e) => (0, Some(e)),
    };
    let more = artifacts::create(ArtifactKind::Output, "more.bin");
    let (unfinished, refusal) = match &more {
        Ok(writer) => fill(writer, u64::MAX),
        Err(e) => (0, Some(e.clone())),
    };
    let why = first.or(refusal).map_or_else(String::new, |e| {
        format!("{}: {}", code_text(e.code), e.message)
    });
    log::log(
        log::Level::Info,
        &format!("hoarded {staged} staged and {unfinished} unfinished bytes; refused with {why}"),
    );
    black_box(&more);
    sleep(config)
}

/// What one attempt got: `ok`, or its error's case.
fn outcome<T>(r: Result<T, Error>) -> &'static str {
    r.map_or_else(|e| code_text(e.code), |_| "ok")
}

/// Every scene of the project, by index.
fn all_scenes() -> Result<Vec<db::Scene>, Error> {
    let (mut scenes, mut cursor) = (Vec::new(), None);
    loop {
        let page = db::list_scenes(cursor.as_deref(), 500)?;
        scenes.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(scenes),
        }
    }
}

/// A shard's attempts to write outside its scene; see the module docs.
fn scope_escape() -> Result<String, Error> {
    let db::RunScope::Scene(own) = db::scope() else {
        return Err(Error {
            code: ErrorCode::InvalidInput,
            message: "scope-escape runs as a shard (for-each = \"scene\")".to_owned(),
        });
    };
    let mut report = Vec::new();
    let scenes = all_scenes()?;
    // Its own file, which it may write; and the files its own scene's rows name, which it may
    // replace. Every other attempt below must be refused.
    let own_index = scenes.iter().find(|s| s.id == own).map_or(0, |s| s.index);
    let side = format!("side-{own_index}.bin");
    let w = artifacts::create(ArtifactKind::Output, &side)?;
    w.write(b"mine")?;
    artifacts::Writer::finish(w)?;
    let mut own_files = vec![(ArtifactKind::Output, side)];
    own_files.extend(
        db::list_keyframes(Some(&own), None, 500)?
            .items
            .into_iter()
            .map(|k| (k.image.kind, k.image.name)),
    );
    own_files.extend(
        db::list_video_clips(Some(&own), None, 500)?
            .items
            .into_iter()
            .map(|c| (c.video.kind, c.video.name)),
    );
    for scene in scenes.iter().filter(|s| s.id != own) {
        let i = scene.index;
        let update = db::update_scene(
            &scene.id,
            &db::SceneUpdate {
                title: Some("taken over".to_owned()),
                description: None,
                duration_ms: None,
            },
        );
        report.push(format!("scene {i} update: {}", outcome(update)));
        report.push(format!(
            "scene {i} delete: {}",
            outcome(db::delete_scene(&scene.id))
        ));
        let keyframes = db::list_keyframes(Some(&scene.id), None, 2)?.items;
        if let Some(k) = keyframes.first() {
            let changed = db::update_keyframe(
                &k.id,
                &db::KeyframeUpdate {
                    prompt: Some("taken over".to_owned()),
                    image: None,
                },
            );
            report.push(format!("scene {i} keyframe update: {}", outcome(changed)));
            let added = db::create_keyframe(&db::NewKeyframe {
                scene_id: scene.id.clone(),
                position: db::KeyframePosition::End,
                prompt: "extra".to_owned(),
                image: k.image.clone(),
            });
            report.push(format!("scene {i} keyframe create: {}", outcome(added)));
        }
    }
    let created = db::create_scene(&db::NewScene {
        index: 9_999,
        title: "mine now".to_owned(),
        description: String::new(),
        duration_ms: 1000,
    });
    report.push(format!("scene create: {}", outcome(created)));
    // Every file of the project: replace it, then delete it.
    for kind in [
        ArtifactKind::Keyframe,
        ArtifactKind::Clip,
        ArtifactKind::Output,
    ] {
        let mut names = Vec::new();
        let mut cursor = None;
        loop {
            let page = artifacts::list(kind, cursor.as_deref(), 500)?;
            names.extend(page.items.into_iter().map(|a| a.name));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        for name in names
            .into_iter()
            .filter(|n| !own_files.iter().any(|(k, o)| *k == kind && o == n))
        {
            let replaced = artifacts::create(kind, &name).and_then(|w| {
                w.write(b"taken over")?;
                artifacts::Writer::finish(w)
            });
            report.push(format!("{name} replace: {}", outcome(replaced)));
            report.push(format!(
                "{name} delete: {}",
                outcome(artifacts::delete(kind, &name))
            ));
        }
    }
    Ok(tally(&report))
}

fn part_escape() -> Result<String, Error> {
    let (db::RunScope::Scene(own), Some(part)) = (db::scope(), db::part()) else {
        return Err(Error {
            code: ErrorCode::InvalidInput,
            message: "part-escape runs as a part (for-each = \"scene\", parts = N)".to_owned(),
        });
    };
    let mut report = Vec::new();
    let clips = db::list_clip_parts(Some(&own), None, 500)?.items;
    let mine = clips.iter().find(|c| c.part.index == part.index);
    let template = clips.first().map(|c| c.clip.clone()).ok_or_else(|| Error {
        code: ErrorCode::InvalidInput,
        message: "part-escape needs its scene's clip parts in place".to_owned(),
    })?;
    let new = |video: types::ArtifactRef| db::NewVideoClip {
        scene_id: own.clone(),
        video,
        duration_ms: 500,
        frame_rate: 12,
    };
    for index in (0..16).filter(|&i| i != part.index) {
        let count = part.count.max(index + 1);
        let put = db::put_clip_part(&new(template.video.clone()), db::PartOf { index, count });
        report.push(format!("put part {index} of {count}: {}", outcome(put)));
    }
    let more = db::PartOf {
        index: part.index,
        count: part.count + 1,
    };
    let put = db::put_clip_part(&new(template.video.clone()), more);
    report.push(format!("put a cut into more: {}", outcome(put)));
    for first in 0..part.count {
        let deleted = db::delete_clip_parts(&own, first);
        report.push(format!("delete parts from {first}: {}", outcome(deleted)));
    }
    let whole = db::create_video_clip(&new(template.video.clone()));
    report.push(format!("whole clip: {}", outcome(whole)));
    let update = db::update_scene(
        &own,
        &db::SceneUpdate {
            title: Some("taken over".to_owned()),
            description: None,
            duration_ms: None,
        },
    );
    report.push(format!("scene update: {}", outcome(update)));
    let mut own_files = Vec::new();
    for k in db::list_keyframes(Some(&own), None, 2)?.items {
        let changed = db::update_keyframe(
            &k.id,
            &db::KeyframeUpdate {
                prompt: Some("taken over".to_owned()),
                image: None,
            },
        );
        report.push(format!("keyframe update: {}", outcome(changed)));
    }
    if let Some(c) = mine {
        own_files.push((c.clip.video.kind, c.clip.video.name.clone()));
    }
    for kind in [ArtifactKind::Keyframe, ArtifactKind::Clip] {
        let names: Vec<String> = artifacts::list(kind, None, 500)?
            .items
            .into_iter()
            .map(|a| a.name)
            .filter(|n| !own_files.iter().any(|(k, o)| *k == kind && o == n))
            .collect();
        for name in names {
            let replaced = artifacts::create(kind, &name).and_then(|w| {
                w.write(b"taken over")?;
                artifacts::Writer::finish(w)
            });
            report.push(format!("{name} replace: {}", outcome(replaced)));
            report.push(format!(
                "{name} delete: {}",
                outcome(artifacts::delete(kind, &name))
            ));
        }
    }
    Ok(tally(&report))
}

/// `report`'s attempts counted by outcome, and every one that was allowed by name, e.g.
/// `73 attempts: conflict 21, out-of-scope 52; allowed: none` — short enough for a summary.
fn tally(report: &[String]) -> String {
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    let mut allowed = Vec::new();
    for attempt in report {
        let (what, got) = attempt.rsplit_once(": ").unwrap_or((attempt, ""));
        *counts.entry(got).or_default() += 1;
        if got == "ok" {
            allowed.push(what);
        }
    }
    let counts: Vec<String> = counts.iter().map(|(got, n)| format!("{got} {n}")).collect();
    let allowed = if allowed.is_empty() {
        "none".to_owned()
    } else {
        allowed.join(", ")
    };
    format!(
        "{} attempts: {}; allowed: {allowed}",
        report.len(),
        counts.join(", ")
    )
}
