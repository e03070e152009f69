//! The crate's map, checked: data flows one way (pipeline → runner → runtime → capabilities →
//! storage), so a module names only modules after it in that line, and the capability rooms
//! do not name each other. With one strict order there can be no circle of imports.

use std::path::{Path, PathBuf};

/// Top-level modules from the top of the flow to its end; a module may name only modules of a
/// lower rank (and itself). Equal ranks may not name each other.
const RANKS: &[(&str, u8)] = &[
    ("pipeline", 7),
    ("runner", 6),
    ("runtime", 5),
    ("cache", 4),
    ("capabilities", 4),
    ("home", 3),
    ("db", 2),
    ("artifacts", 1),
    // Vocabulary, used by every room and using none.
    ("limits", 0),
    ("input", 0),
    ("text", 0),
    ("digest", 0),
];

/// The rooms of `capabilities/`, which share only the module root and `bindings`.
const ROOMS: &[&str] = &["db", "artifacts", "log"];

fn rank(module: &str) -> Option<u8> {
    RANKS.iter().find(|(m, _)| *m == module).map(|&(_, r)| r)
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments (doc links name modules without importing them).
fn code(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `prefix<name>` in `code`, by name.
fn named<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    code.match_indices(prefix)
        .map(|(i, _)| {
            let rest = &code[i + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

#[test]
fn no_module_names_a_module_upstream_of_it_and_capability_rooms_do_not_name_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(
        files.len() > 20,
        "found the sources under {}",
        src.display()
    );
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap_or(file);
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or_default()
            .trim_end_matches(".rs");
        if matches!(top, "lib" | "layering") {
            continue;
        }
        let own = rank(top).unwrap_or_else(|| panic!("{top} has no place in RANKS"));
        let text = code(&std::fs::read_to_string(file).unwrap_or_default());
        for target in named(&text, "crate::") {
            if target == top {
                continue;
            }
            match rank(target) {
                Some(r) if r < own => {}
                _ => wrong.push(format!("{} names crate::{target}", rel.display())),
            }
        }
        let room = rel.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if top == "capabilities" && ROOMS.contains(&room) {
            for other in named(&text, "super::").into_iter().chain(
                named(&text, "crate::capabilities::")
                    .into_iter()
                    .filter(|n| !n.is_empty()),
            ) {
                if ROOMS.contains(&other) && other != room {
                    wrong.push(format!("{} names the {other} room", rel.display()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the flow:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_library_depends_on_no_cli_or_plotting_crate() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .unwrap_or_default();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .unwrap_or_default();
    assert!(
        !deps.is_empty(),
        "found the [dependencies] of the host crate"
    );
    for name in [
        "clap",
        "indicatif",
        "plotters",
        "vidpipe-cli",
        "vidpipe-bench",
    ] {
        assert!(
            !deps.lines().any(|l| l.trim_start().starts_with(name)),
            "the library depends on {name}"
        );
    }
}
