//! `vidpipe plugin inspect`: what a plugin targets, imports and exports, and whether this host
//! can run it.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use vidpipe_host::runtime::Runtime;

use crate::failure::Failure;
use crate::output::{self, say};
use crate::setup;

/// `vidpipe plugin` subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Prints a plugin's WIT package version, imports, exports, size, sha256, and whether this
    /// host can run it.
    Inspect {
        /// The plugin file.
        plugin: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(serde::Serialize)]
struct Inspection {
    path: String,
    size: u64,
    sha256: String,
    targets: Vec<String>,
    imports: Vec<String>,
    exports: Vec<String>,
    runnable: bool,
    reason: Option<String>,
}

/// Runs a `vidpipe plugin` subcommand.
pub fn exec(cmd: PluginCommand) -> Result<(), Failure> {
    let PluginCommand::Inspect { plugin, json } = cmd;
    inspect(&plugin, json)
}

fn inspect(path: &Path, json: bool) -> Result<(), Failure> {
    let bytes = setup::read_plugin(path)?;
    let runtime = Runtime::new().map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let name = setup::stage_name(path, None)?;
    // A file that is not a component at all cannot be described: that is bad input.
    let component = runtime.compile(&name, &bytes)?;
    let surface = runtime.surface(&component);
    let verdict = runtime.load(&name, &bytes);
    let mut targets: Vec<String> = surface
        .imports
        .iter()
        .filter_map(|i| i.strip_prefix("vidpipe:plugin/"))
        .map(|rest| {
            format!(
                "vidpipe:plugin@{}",
                rest.split_once('@').map_or("(unversioned)", |(_, v)| v)
            )
        })
        .collect();
    targets.sort();
    targets.dedup();
    let report = Inspection {
        path: path.display().to_string(),
        size: bytes.len() as u64,
        sha256: vidpipe_host::runtime::sha256_hex(&bytes),
        targets,
        imports: surface.imports,
        exports: surface.exports,
        runnable: verdict.is_ok(),
        reason: verdict.err().map(|e| e.to_string()),
    };
    if json {
        return Ok(output::json(&report)?);
    }
    say!("plugin    {}", report.path);
    say!("size      {} bytes", report.size);
    say!("sha256    {}", report.sha256);
    if report.targets.is_empty() {
        say!("targets   (no vidpipe:plugin interface imported)");
    } else {
        say!("targets   {}", report.targets.join(", "));
    }
    say!("imports ({})", report.imports.len());
    for i in &report.imports {
        say!("  {i}");
    }
    say!("exports ({})", report.exports.len());
    for e in &report.exports {
        say!("  {e}");
    }
    match &report.reason {
        None => say!(
            "runnable  yes: this host ({}) can run it",
            vidpipe_host::Contract::supported()
        ),
        Some(reason) => say!("runnable  no: {reason}"),
    }
    Ok(())
}
