//! `vidpipe stage run`: one stage plugin on one project, recorded as a run.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use vidpipe_host::artifacts::ArtifactKind;
use vidpipe_host::db::{self, KeyValues};
use vidpipe_host::home::Home;
use vidpipe_host::runner::{self, StageRequest};
use vidpipe_host::runtime::{LimitSettings, Limits, Plugin, Runtime};

use crate::Globals;
use crate::failure::{Failure, bad, failed};
use crate::output::say;
use crate::{progress, setup};

/// `vidpipe stage` subcommands.
#[derive(Debug, Subcommand)]
pub enum StageCommand {
    /// Runs one stage plugin on a project and records the run.
    Run(Box<StageRun>),
}

/// The arguments of `vidpipe stage run`.
#[derive(Debug, Args)]
pub struct StageRun {
    /// The plugin: a WebAssembly component of world vidpipe:plugin/stage.
    plugin: PathBuf,
    /// The project to run it on.
    #[arg(long)]
    project: String,
    /// A configuration entry for the stage, KEY=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// The stage's name in run records and logs (default: the plugin's file stem).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
    /// If another process is running stages on the project, wait for it instead of refusing.
    #[arg(long)]
    wait: bool,
}

/// Per-stage limits; unset ones keep their defaults (see SECURITY.md).
#[derive(Debug, Args)]
struct LimitArgs {
    /// Wall-clock limit in seconds [default: 300].
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
    /// Linear memory of the whole instance, in MiB [default: 512].
    #[arg(long, value_name = "MIB")]
    max_memory: Option<u64>,
    /// Elements of any one table [default: 100000].
    #[arg(long, value_name = "N")]
    max_table_elements: Option<u64>,
    /// Core instances, tables and memories [default: 100].
    #[arg(long, value_name = "N")]
    max_instances: Option<u64>,
    /// Size of one artifact, in MiB [default: 4096].
    #[arg(long, value_name = "MIB")]
    max_artifact_size: Option<u64>,
    /// All of the project's artifacts after the stage, in MiB [default: 20480].
    #[arg(long, value_name = "MIB")]
    project_quota: Option<u64>,
    /// Artifact writers open at once [default: 64].
    #[arg(long, value_name = "N")]
    max_writers: Option<u64>,
    /// Bytes one guest call may copy into the host (its lists and strings), in MiB [default: 32].
    #[arg(long, value_name = "MIB")]
    max_import_size: Option<u64>,
    /// Component-model resource handles live at once [default: 10000].
    #[arg(long, value_name = "N")]
    max_handles: Option<u64>,
    /// Row writes one run may stage [default: 100000].
    #[arg(long, value_name = "N")]
    max_staged_rows: Option<u64>,
    /// Text one run may stage, in MiB [default: 64].
    #[arg(long, value_name = "MIB")]
    max_staged_text: Option<u64>,
}

impl LimitArgs {
    fn limits(&self) -> anyhow::Result<Limits> {
        let settings = LimitSettings {
            timeout: self.timeout,
            max_memory: self.max_memory,
            max_table_elements: self.max_table_elements,
            max_instances: self.max_instances,
            max_artifact_size: self.max_artifact_size,
            project_quota: self.project_quota,
            max_writers: self.max_writers,
            max_import_size: self.max_import_size,
            max_handles: self.max_handles,
            max_staged_rows: self.max_staged_rows,
            max_staged_text: self.max_staged_text,
        };
        settings
            .to_limits()
            .map_err(|(key, reason)| bad(format!("--{key} {reason}")))
    }
}

/// Runs a `vidpipe stage` subcommand.
pub fn exec(globals: &Globals, cmd: StageCommand) -> Result<(), Failure> {
    let StageCommand::Run(args) = cmd;
    // Check everything the user gave before writing anything.
    setup::check_writable(&globals.home)?;
    let config = setup::parse_pairs("--set", &args.set)?;
    let limits = args.limits.limits()?;
    let bytes = setup::read_plugin(&args.plugin)?;
    let name = setup::stage_name(&args.plugin, args.name.as_deref())?;
    let runtime = setup::runtime(&globals.home, globals.no_cache)?;
    let plugin = runtime.load(&name, &bytes)?;
    let mut home = setup::writable_home(&globals.home)?;
    run_and_report(
        &mut home,
        &runtime,
        &plugin,
        &args.project,
        config,
        limits,
        args.wait,
    )
}

fn run_and_report(
    home: &mut Home,
    runtime: &Runtime,
    plugin: &Plugin,
    project_id: &str,
    config: KeyValues,
    limits: Limits,
    wait: bool,
) -> Result<(), Failure> {
    // Look the project up first: an unknown id is bad input, not a lock error.
    let project = db::get_project(home.conn(), project_id)?;
    let _lock = home.lock_project(&project.id, wait)?;
    let request = StageRequest {
        project_id: project.id.clone(),
        config,
        limits,
        progress: progress::sink(plugin.name.clone()),
        pipeline: None,
    };
    let report = runner::run_stage(home, runtime, plugin, request)?;
    let run = &report.run;
    if !report.succeeded() {
        let reason = run.error.as_deref().unwrap_or("unknown reason");
        return Err(failed(format!(
            "stage {} failed (run {}): {reason}",
            run.stage, run.id
        )));
    }
    say!(
        "stage {} succeeded (run {}): {}",
        run.stage,
        run.id,
        run.summary.as_deref().unwrap_or("")
    );
    if let Some(why) = &report.unpublished {
        let damaged = db::damaged_journal(home.conn(), &run.project_id)?
            .iter()
            .any(|d| d.entry.run_id == run.id);
        let next = if damaged {
            "they cannot be; run the stage again"
        } else {
            "the next command that runs a stage on the project finishes moving them"
        };
        return Err(failed(format!(
            "stage {} committed (run {}), but its files could not all be moved into place: {why}; {next}",
            run.stage, run.id
        )));
    }
    let detail = db::project_detail(home.conn_mut(), &run.project_id)?;
    for a in detail
        .artifacts
        .iter()
        .filter(|a| a.run_id.as_deref() == Some(run.id.as_str()))
    {
        let kind: ArtifactKind = a.kind.into();
        let path = home
            .path()
            .join("projects")
            .join(&run.project_id)
            .join(kind.dir_name())
            .join(&a.name);
        say!("wrote {} ({} bytes)", path.display(), a.size);
    }
    Ok(())
}
