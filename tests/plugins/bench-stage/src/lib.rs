//! `bench-stage`: the plugin side of `vidpipe-bench`. Each mode does exactly what the bench's
//! native baseline does through the host's own layers, so the difference is the sandbox.
//!
//! | `mode` | what it does | keys |
//! | --- | --- | --- |
//! | `noop` | returns at once | |
//! | `rows` | creates `rows` scenes at indexes `first`, `first` + 1, …: one `create-scene` call each, or `create-scenes` calls of `batch` scenes | `rows`, `first` (default 0), `batch` (default 1) |
//! | `write` | writes `bytes` bytes to the `output` artifact `name` in `chunk`-byte writes | `bytes`, `chunk`, `name` |
//! | `read` | reads the `output` artifact `name` to its end in `chunk`-byte reads | `chunk`, `name` |

// The export glue wit-bindgen generates is FFI and has to be unsafe; it is confined here.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "stage",
    });

    use super::BenchStage;
    export!(BenchStage with_types_in crate::bindings);
}

use bindings::vidpipe::plugin::{artifacts, db, types};
use types::{ArtifactKind, Error, ErrorCode};

struct BenchStage;

fn invalid(message: String) -> Error {
    Error {
        code: ErrorCode::InvalidInput,
        message,
    }
}

/// The value of `key`, or an error naming it.
fn value<'a>(config: &'a [(String, String)], key: &str) -> Result<&'a str, Error> {
    config
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| invalid(format!("config key `{key}` is missing")))
}

fn number(config: &[(String, String)], key: &str) -> Result<u64, Error> {
    let text = value(config, key)?;
    text.parse().map_err(|_| {
        invalid(format!(
            "config key `{key}` must be a whole number, not {text:?}"
        ))
    })
}

impl bindings::Guest for BenchStage {
    fn run(config: Vec<(String, String)>) -> Result<String, Error> {
        match value(&config, "mode")? {
            "noop" => Ok(String::new()),
            "rows" => {
                let rows = u32::try_from(number(&config, "rows")?)
                    .map_err(|_| invalid("too many rows".to_owned()))?;
                let first = match value(&config, "first") {
                    Ok(_) => u32::try_from(number(&config, "first")?)
                        .map_err(|_| invalid("`first` is too large".to_owned()))?,
                    Err(_) => 0,
                };
                let batch = match value(&config, "batch") {
                    Ok(_) => number(&config, "batch")?.max(1) as usize,
                    Err(_) => 1,
                };
                let scene = |index: u32| db::NewScene {
                    index,
                    title: format!("Scene {index}"),
                    description: String::new(),
                    duration_ms: 1000,
                };
                let indexes: Vec<u32> = (first..).take(rows as usize).collect();
                if batch == 1 {
                    for &index in &indexes {
                        db::create_scene(&scene(index))?;
                    }
                } else {
                    for group in indexes.chunks(batch) {
                        let scenes: Vec<db::NewScene> = group.iter().map(|&i| scene(i)).collect();
                        db::create_scenes(&scenes)?;
                    }
                }
                Ok(format!("{rows} rows"))
            }
            "write" => {
                let bytes = number(&config, "bytes")?;
                let chunk = usize::try_from(number(&config, "chunk")?)
                    .ok()
                    .filter(|&c| c > 0)
                    .ok_or_else(|| invalid("`chunk` must be positive".to_owned()))?;
                let name = value(&config, "name")?;
                // One buffer, filled once: the bench measures moving bytes, not making them.
                let buffer: Vec<u8> = (0..chunk).map(|i| (i % 251) as u8).collect();
                let writer = artifacts::create(ArtifactKind::Output, name)?;
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(chunk as u64) as usize;
                    writer.write(&buffer[..n])?;
                    left -= n as u64;
                }
                let info = artifacts::Writer::finish(writer)?;
                Ok(format!("{} bytes", info.size))
            }
            "read" => {
                let chunk = u32::try_from(number(&config, "chunk")?)
                    .map_err(|_| invalid("`chunk` is too large".to_owned()))?;
                let name = value(&config, "name")?;
                let mut offset = 0u64;
                loop {
                    let bytes = artifacts::read(ArtifactKind::Output, name, offset, chunk)?;
                    if bytes.is_empty() {
                        break;
                    }
                    offset += bytes.len() as u64;
                }
                Ok(format!("{offset} bytes"))
            }
            other => Err(invalid(format!("unknown mode {other:?}"))),
        }
    }
}
