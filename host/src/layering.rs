//! The crate's map, checked: data flows one way (pipeline → runner → runtime → capabilities →
//! storage), so a module names only modules after it in that line, and the capability rooms
//! do not name each other. With one strict order there can be no circle of imports.

use std::path::{Path, PathBuf};

/// Top-level modules from the top of the flow to its end; a module may name only modules of a
/// lower rank (and itself). Equal ranks may not name each other.
const RANKS: &[(&str, u8)] = &[
    ("pipeline", 8),
    ("runner", 7),
    ("runtime", 6),
    ("cache", 5),
    // Storage, but it opens every project: above the capabilities, which reach only the
    // session and folders of their own run.
    ("home", 5),
    ("capabilities", 4),
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

/// The code of a file without its comments (doc links name modules without importing them):
/// whole comment lines, and the rest of a line after a `//` outside a string.
fn code(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| {
            let mut quotes = 0;
            let bytes = l.as_bytes();
            for i in 0..bytes.len() {
                match bytes[i] {
                    b'"' if i == 0 || bytes[i - 1] != b'\\' => quotes += 1,
                    b'/' if quotes % 2 == 0 && bytes.get(i + 1) == Some(&b'/') => return &l[..i],
                    _ => {}
                }
            }
            l
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(rest: &str) -> &str {
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The first segment of each path that follows `prefix` in `code`: `prefix::a` gives `a`, and
/// `prefix::{a, b::c}` gives `a` and `b`.
fn named<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    code.match_indices(prefix)
        .flat_map(|(i, _)| segments(&code[i + prefix.len()..]))
        .collect()
}

/// The first segment of the path at the start of `rest`, or of each path of a `{…}` group.
fn segments(rest: &str) -> Vec<&str> {
    let mut out = Vec::new();
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 0;
        let mut start = 0;
        for (j, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    out.push(ident(group[start..j].trim_start()));
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(ident(group[start..j].trim_start()));
                    start = j + 1;
                }
                _ => {}
            }
        }
    } else {
        out.push(ident(rest));
    }
    out.retain(|n| !n.is_empty());
    out
}

/// The top-level modules that `super::` chains in a file reach after climbing to the crate
/// root: in `a/b.rs` (module `a::b`), `super::super::x` names `x`.
fn climbed(code: &str, depth: usize) -> Vec<&str> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices("super::") {
        if code[..i].ends_with("super::") {
            continue; // counted from the first `super` of the chain
        }
        let mut rest = &code[i..];
        let mut ups = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            ups += 1;
            rest = r;
        }
        // Inline `mod tests` blocks are one level deeper than their file, so a climb from
        // one may look as if it overshoots: only names of top-level modules count.
        if ups >= depth {
            out.extend(segments(rest).into_iter().filter(|n| rank(n).is_some()));
        }
    }
    out
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
        let depth =
            rel.components().count() - usize::from(rel.file_name().is_some_and(|n| n == "mod.rs"));
        for target in named(&text, "crate::")
            .into_iter()
            .chain(climbed(&text, depth))
        {
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
            for other in named(&text, "super::")
                .into_iter()
                .chain(named(&text, "crate::capabilities::"))
            {
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

#[test]
fn the_path_reader_sees_groups_climbs_and_not_comments() {
    let text = code(
        "use crate::{db::x, artifacts, runner::{a, b}};\nlet u = \"http://e\"; // crate::pipeline\nsuper::super::runtime::f();",
    );
    assert_eq!(named(&text, "crate::"), ["db", "artifacts", "runner"]);
    assert_eq!(climbed(&text, 2), ["runtime"]);
    assert!(
        climbed(&text, 3).is_empty(),
        "two climbs from depth 3 stay inside the crate"
    );
}
