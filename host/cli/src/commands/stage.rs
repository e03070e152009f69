//! `vidpipe stage run`: one stage plugin on one project, recorded as a run.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use vidpipe_host::artifacts::ArtifactKind;
use vidpipe_host::db::{self, KeyValues};
use vidpipe_host::home::Home;
use vidpipe_host::limits::{LimitSettings, LimitValue, Unit};
use vidpipe_host::runner::{self, StageRequest};
use vidpipe_host::runtime::{Limits, Plugin, Runtime, limits};

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

/// Per-stage limits, one flag per limit the host declares (`runtime::limits::ALL`), each with
/// its declared help and default; unset ones keep their defaults (see SECURITY.md).
#[derive(Debug, Clone, Default)]
struct LimitArgs(LimitSettings);

impl clap::Args for LimitArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        limits::ALL.iter().fold(cmd, |cmd, spec| {
            let arg = clap::Arg::new(spec.key)
                .long(spec.key)
                .value_name(spec.value_name())
                .help(spec.help_line());
            cmd.arg(match spec.unit {
                Unit::Seconds => arg.value_parser(clap::value_parser!(f64)),
                Unit::MiB | Unit::Count => arg.value_parser(clap::value_parser!(u64)),
            })
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for LimitArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut settings = LimitSettings::default();
        for spec in limits::ALL {
            let value = match spec.unit {
                Unit::Seconds => matches
                    .get_one::<f64>(spec.key)
                    .map(|&t| LimitValue::Seconds(t)),
                Unit::MiB | Unit::Count => matches
                    .get_one::<u64>(spec.key)
                    .map(|&n| LimitValue::Whole(n)),
            };
            if let Some(value) = value {
                settings.set(spec, value);
            }
        }
        Ok(LimitArgs(settings))
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl LimitArgs {
    fn limits(&self) -> anyhow::Result<Limits> {
        Limits::from_settings(&self.0).map_err(|(key, reason)| bad(format!("--{key} {reason}")))
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
        scene: None,
        part: None,
        reason: None,
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
