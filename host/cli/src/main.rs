//! `vidpipe`: the command line over the vidpipe host library. Glue only: parse, call the
//! library, print, choose the exit code (0 success, 1 the stage failed or the host could not do
//! its part, 2 usage error or bad input, with nothing written).
//!
//! | module | owns |
//! |---|---|
//! | `commands/<group>.rs` | one command group each (`project`, `stage`, `run`, `runs`, `plugin`, `cache`, `demo`, `init`): its clap arguments and its `exec` |
//! | [`output`] | every byte printed: human lines (guest text made safe), `--json`, times |
//! | [`failure`] | exit codes, and the one-line, bounded error message with each cause once |
//! | [`progress`] | progress bars on a terminal, plain lines otherwise |
//! | [`setup`] | opening the home and the runtime, reading the files a user names |
//!
//! Data flows one way: a command calls the library (pipeline → runner → runtime → guest →
//! capabilities → storage) and prints what comes back; nothing in the library calls up here.

mod commands;
mod failure;
mod output;
mod progress;
mod setup;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use failure::Failure;

/// Runs video-pipeline stages as sandboxed WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "vidpipe", version, about, propagate_version = true)]
struct Cli {
    /// The home folder holding vidpipe.db and projects/.
    #[arg(
        long,
        global = true,
        env = "VIDPIPE_HOME",
        default_value = "vidpipe-data"
    )]
    home: PathBuf,

    /// Compile plugins afresh, neither reading nor writing the home's compile cache.
    #[arg(long, global = true)]
    no_cache: bool,

    #[command(subcommand)]
    command: Command,
}

/// What every command gets besides its own arguments.
pub struct Globals {
    /// `--home`.
    pub home: PathBuf,
    /// `--no-cache`.
    pub no_cache: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates the home, or migrates an existing one (idempotent).
    Init,
    /// Creates, lists and shows projects.
    #[command(subcommand)]
    Project(commands::project::ProjectCommand),
    /// Runs stage plugins.
    #[command(subcommand)]
    Stage(commands::stage::StageCommand),
    /// Runs a pipeline manifest on a project: its stages in order, each atomically, skipping
    /// stages whose work is already done with the same plugin and configuration.
    Run(commands::pipeline::PipelineRun),
    /// Lists and shows run records.
    #[command(subcommand)]
    Runs(commands::runs::RunsCommand),
    /// Inspects plugins.
    #[command(subcommand)]
    Plugin(commands::plugin::PluginCommand),
    /// Runs the bundled demo pipeline (storyboard, keyframes, clips, assemble) on the bundled
    /// example script and prints where the video and contact sheet are. Reuses the demo
    /// project, and the stages already done, on later runs.
    Demo,
    /// Manages the cache of compiled plugins (HOME/cache).
    #[command(subcommand)]
    Cache(commands::cache::CacheCommand),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version are not errors, and print what clap wrote.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        // A usage error echoes what was given, which may be anything: each line made safe and
        // bounded, like every other error.
        Err(e) => {
            for line in e.render().to_string().lines().take(MAX_USAGE_LINES) {
                output::note_line(line);
            }
            progress::drain();
            return ExitCode::from(2);
        }
    };
    init_logging();
    let globals = Globals {
        home: cli.home,
        no_cache: cli.no_cache,
    };
    let code = match run(&globals, cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    };
    progress::drain();
    code
}

/// Most lines of a usage error printed (clap's are a few: the error, the usage, a hint).
const MAX_USAGE_LINES: usize = 20;

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIDPIPE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,vidpipe::guest=info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(progress::log_writer)
        .fmt_fields(output::SafeFields)
        .with_target(false)
        .without_time()
        .try_init();
}

fn run(globals: &Globals, command: Command) -> Result<(), Failure> {
    match command {
        Command::Init => commands::init::exec(globals),
        Command::Project(cmd) => commands::project::exec(globals, cmd),
        Command::Stage(cmd) => commands::stage::exec(globals, cmd),
        Command::Run(args) => commands::pipeline::exec(globals, args),
        Command::Runs(cmd) => commands::runs::exec(globals, cmd),
        Command::Plugin(cmd) => commands::plugin::exec(cmd),
        Command::Demo => commands::demo::exec(globals),
        Command::Cache(cmd) => commands::cache::exec(globals, cmd),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
