//! What commands need before they can call the library: the home, the runtime, and the files
//! and values the user named, each checked before anything is written.

use std::path::Path;

use vidpipe_host::cache::CompileCache;
use vidpipe_host::db::KeyValues;
use vidpipe_host::home::Home;
use vidpipe_host::input;
use vidpipe_host::runtime::Runtime;

use crate::failure::{Failure, bad};

/// Opens an existing home to change it; a home that cannot be written is refused, saying why.
pub fn writable_home(path: &Path) -> Result<Home, Failure> {
    Ok(Home::open(path)?)
}

/// Refuses, before anything is compiled or written, a home that does not exist or that this
/// process cannot write.
pub fn check_writable(path: &Path) -> Result<(), Failure> {
    Ok(Home::check_writable(path)?)
}

/// Opens an existing home to read it: read-only when it cannot be written (a read-only mount,
/// another user's home), so the commands that only read still work there.
pub fn readable_home(path: &Path) -> Result<Home, Failure> {
    Ok(Home::open_for_reading(path)?)
}

/// The runtime of a command that runs plugins: with the home's compile cache, unless
/// `--no-cache` was given or the home does not exist (a command never creates one as a side
/// effect). A cache that cannot be opened is skipped with a warning: it only saves time.
pub fn runtime(home: &Path, no_cache: bool) -> Result<Runtime, Failure> {
    let runtime = Runtime::new().map_err(|e| anyhow::anyhow!("{e:#}"))?;
    if no_cache || !home.join("vidpipe.db").is_file() {
        return Ok(runtime);
    }
    match CompileCache::open(&home.join("cache")) {
        Ok(cache) => Ok(runtime.with_cache(cache)),
        Err(e) => {
            tracing::warn!("compiling without the cache: {e}");
            Ok(runtime)
        }
    }
}

/// `KEY=VALUE` items as a map; a malformed or repeated key is bad input.
pub fn parse_pairs(what: &str, items: &[String]) -> anyhow::Result<KeyValues> {
    let mut map = KeyValues::new();
    for item in items {
        let shown = vidpipe_host::text::cut(item, 64);
        let Some((k, v)) = item.split_once('=') else {
            return Err(bad(format!("{what} {shown:?} is not KEY=VALUE")));
        };
        if k.trim().is_empty() {
            return Err(bad(format!("{what} {shown:?} has an empty key")));
        }
        if map.insert(k.to_owned(), v.to_owned()).is_some() {
            let k = vidpipe_host::text::cut(k, 64);
            return Err(bad(format!("{what} key {k:?} is given twice")));
        }
    }
    Ok(map)
}

/// Reads a UTF-8 text file the user named (a script), refusing anything but a regular file of
/// at most `max` bytes.
pub fn read_text(path: &Path, what: &'static str, max: u64) -> anyhow::Result<String> {
    let bytes = input::read_file(path, what, max)?;
    String::from_utf8(bytes)
        .map_err(|_| bad(format!("{what} {} is not UTF-8 text", path.display())))
}

/// Reads a plugin file the user named.
pub fn read_plugin(path: &Path) -> anyhow::Result<Vec<u8>> {
    Ok(input::read_file(
        path,
        "plugin",
        vidpipe_host::runtime::MAX_PLUGIN_BYTES,
    )?)
}

/// The stage name: `--name` as given (checked), else the plugin's file stem made into a valid
/// name (other characters become `-`, cut to 64).
pub fn stage_name(path: &Path, name: Option<&str>) -> anyhow::Result<String> {
    if let Some(name) = name {
        vidpipe_host::pipeline::check_stage_name(name).map_err(|r| bad(format!("--name {r}")))?;
        return Ok(name.to_owned());
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cleaned: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    Ok(if cleaned.is_empty() {
        "stage".to_owned()
    } else {
        cleaned
    })
}
