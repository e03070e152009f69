//! `vidpipe`: the command line over the vidpipe host library. Glue only: parse, call, print,
//! choose the exit code (0 success, 1 the stage failed, 2 usage error or bad input).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use vidpipe_host::cache::{self, CompileCache};
use vidpipe_host::db::{self, DbError, KeyValues};
use vidpipe_host::home::{Home, HomeError};
use vidpipe_host::pipeline::{self, Manifest, ManifestError, PipelineOptions, StageOutcome};
use vidpipe_host::runner::{self, StageRequest};
use vidpipe_host::runtime::{LimitSettings, Limits, Plugin, PluginError, Runtime};

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

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates the home, or migrates an existing one (idempotent).
    Init,
    /// Creates, lists and shows projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Runs stage plugins.
    #[command(subcommand)]
    Stage(StageCommand),
    /// Runs a pipeline manifest on a project: its stages in order, each atomically, skipping
    /// stages whose work is already done with the same plugin and configuration.
    Run(PipelineRun),
    /// Lists and shows run records.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Inspects plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Runs the bundled demo pipeline (storyboard, keyframes, clips, assemble) on the bundled
    /// example script and prints where the video and contact sheet are. Reuses the demo
    /// project, and the stages already done, on later runs.
    Demo,
    /// Manages the cache of compiled plugins (HOME/cache).
    #[command(subcommand)]
    Cache(CacheCommand),
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// Removes every compiled plugin from the cache; the next run of each compiles it again.
    Clear,
}

#[derive(Debug, Subcommand)]
enum ProjectCommand {
    /// Creates a project and prints its id (and nothing else) on stdout.
    Create {
        /// The project's name.
        name: String,
        /// A text file holding the script the video is made from.
        #[arg(long)]
        script: Option<PathBuf>,
        /// A project setting, KEY=VALUE (repeatable).
        #[arg(long = "setting", value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
    /// Lists projects.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Shows a project's scenes, keyframes, clips, artifacts and runs.
    Show {
        /// The project's id.
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct PipelineRun {
    /// The pipeline manifest (TOML).
    manifest: PathBuf,
    /// The project to run it on.
    #[arg(long)]
    project: String,
    /// Run every stage, even those whose work is already done.
    #[arg(long)]
    force: bool,
    /// If another process is running stages on the project, wait for it instead of refusing.
    #[arg(long)]
    wait: bool,
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// Lists a project's pipeline runs and stage runs, oldest first.
    List {
        /// The project.
        #[arg(long)]
        project: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Shows one pipeline run (with its stage runs) or one stage run.
    Show {
        /// A pipeline run id or a stage run id.
        run: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum StageCommand {
    /// Runs one stage plugin on a project and records the run.
    Run(Box<StageRun>),
}

#[derive(Debug, Args)]
struct StageRun {
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
    /// Row writes one run may stage [default: 250000].
    #[arg(long, value_name = "N")]
    max_staged_rows: Option<u64>,
    /// Text one run may stage, in MiB [default: 256].
    #[arg(long, value_name = "MIB")]
    max_staged_text: Option<u64>,
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
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

/// How a command failed, which decides the exit code.
enum Failure {
    /// Bad input or usage: nothing was written. Exit 2.
    BadInput(anyhow::Error),
    /// The stage ran and failed (recorded as such), or the host failed. Exit 1.
    Failed(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let e = e.into();
        if is_bad_input(&e) {
            Failure::BadInput(e)
        } else {
            Failure::Failed(e)
        }
    }
}

/// Errors caused by what the user passed rather than by the host or the stage.
fn is_bad_input(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.is::<PluginError>()
            || cause.is::<ManifestError>()
            || cause.is::<clap::Error>()
            || cause.downcast_ref::<DbError>().is_some_and(db_bad_input)
            || match cause.downcast_ref::<HomeError>() {
                Some(HomeError::Missing(_)) => true,
                Some(HomeError::Db(e)) => db_bad_input(e),
                _ => false,
            }
            || cause.downcast_ref::<UsageError>().is_some()
    })
}

/// A lookup or a value the user gave was wrong (as opposed to the database failing).
fn db_bad_input(e: &DbError) -> bool {
    matches!(e, DbError::NotFound(_) | DbError::InvalidInput(_))
}

/// A usage mistake the CLI itself detected.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn bad(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::BadInput(e)) => {
            eprintln!("vidpipe: error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(e)) => {
            eprintln!("vidpipe: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIDPIPE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,vidpipe::guest=info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Init => {
            let home = Home::init(&cli.home)?;
            println!("vidpipe home ready at {}", home.path().display());
            Ok(())
        }
        Command::Project(cmd) => project(&cli.home, cmd),
        Command::Stage(StageCommand::Run(args)) => stage_run(&cli.home, cli.no_cache, *args),
        Command::Run(args) => pipeline_run(&cli.home, cli.no_cache, args),
        Command::Runs(cmd) => runs(&cli.home, cmd),
        Command::Plugin(PluginCommand::Inspect { plugin, json }) => inspect(&plugin, json),
        Command::Demo => demo(&cli.home, cli.no_cache),
        Command::Cache(CacheCommand::Clear) => {
            let root = cli.home.join("cache");
            let (files, bytes) = cache::clear(&root).map_err(anyhow::Error::from)?;
            println!(
                "removed {files} compiled plugin(s), {:.1} MiB, from {}",
                bytes as f64 / (1024.0 * 1024.0),
                root.display()
            );
            Ok(())
        }
    }
}

/// The runtime of a command that runs plugins: with the home's compile cache, unless
/// `--no-cache` was given or the home does not exist (a command never creates one as a side
/// effect). A cache that cannot be opened is skipped with a warning: it only saves time.
fn runtime(home: &Path, no_cache: bool) -> Result<Runtime, Failure> {
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

fn parse_pairs(what: &str, items: &[String]) -> anyhow::Result<KeyValues> {
    let mut map = KeyValues::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            return Err(bad(format!("{what} {item:?} is not KEY=VALUE")));
        };
        if k.trim().is_empty() {
            return Err(bad(format!("{what} {item:?} has an empty key")));
        }
        if map.insert(k.to_owned(), v.to_owned()).is_some() {
            return Err(bad(format!("{what} key {k:?} is given twice")));
        }
    }
    Ok(map)
}

fn read_text(path: &Path, what: &str) -> anyhow::Result<String> {
    let bytes = std::fs::read(path)
        .map_err(|e| bad(format!("cannot read {what} {}: {e}", path.display())))?;
    String::from_utf8(bytes)
        .map_err(|_| bad(format!("{what} {} is not UTF-8 text", path.display())))
}

fn project(home: &Path, cmd: ProjectCommand) -> Result<(), Failure> {
    match cmd {
        ProjectCommand::Create {
            name,
            script,
            settings,
        } => {
            let settings = parse_pairs("setting", &settings)?;
            let script = match script {
                Some(path) => read_text(&path, "script")?,
                None => String::new(),
            };
            let home = Home::open(home)?;
            let project = home.create_project(&name, &script, &settings)?;
            println!("{}", project.id);
            Ok(())
        }
        ProjectCommand::List { json } => {
            let home = Home::open(home)?;
            let projects = db::list_projects(home.conn())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&projects).context("encoding JSON")?
                );
            } else if projects.is_empty() {
                println!(
                    "no projects; create one with `vidpipe project create NAME --script FILE`"
                );
            } else {
                println!("{:<36}  {:<8}  {:<20}  name", "id", "status", "created");
                for p in projects {
                    println!(
                        "{:<36}  {:<8}  {:<20}  {}",
                        p.id,
                        p.status,
                        time(p.created_at),
                        p.name
                    );
                }
            }
            Ok(())
        }
        ProjectCommand::Show { id, json } => {
            let mut home = Home::open(home)?;
            let detail = db::project_detail(home.conn_mut(), &id)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&detail).context("encoding JSON")?
                );
            } else {
                print_detail(&home, &detail);
            }
            Ok(())
        }
    }
}

fn time(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

fn print_detail(home: &Home, d: &db::ProjectDetail) {
    let p = &d.project;
    println!("project   {}", p.id);
    println!("name      {}", p.name);
    println!("status    {}", p.status);
    println!("created   {}", time(p.created_at));
    println!("script    {} bytes", p.script.len());
    println!(
        "folder    {}",
        home.path().join("projects").join(&p.id).display()
    );
    for (k, v) in &p.settings {
        println!("setting   {k} = {v}");
    }
    println!("\nscenes ({})", d.scenes.len());
    for s in &d.scenes {
        println!(
            "  {:>3}  {:>6.1} s  {}  [{}]",
            s.index,
            f64::from(s.duration_ms) / 1000.0,
            s.title,
            s.id
        );
    }
    println!("\nkeyframes ({})", d.keyframes.len());
    for k in &d.keyframes {
        println!(
            "  {:<5}  {}/{}  scene {}  [{}]",
            k.position, k.image.kind, k.image.name, k.scene_id, k.id
        );
    }
    println!("\nvideo clips ({})", d.video_clips.len());
    for c in &d.video_clips {
        println!(
            "  {}/{}  {:.1} s @ {} fps  scene {}  [{}]",
            c.video.kind,
            c.video.name,
            f64::from(c.duration_ms) / 1000.0,
            c.frame_rate,
            c.scene_id,
            c.id
        );
    }
    println!("\nartifacts ({})", d.artifacts.len());
    for a in &d.artifacts {
        let kind: vidpipe_host::artifacts::ArtifactKind = a.kind.into();
        println!(
            "  {}/{}  {} bytes  sha256 {}",
            kind.dir_name(),
            a.name,
            a.size,
            a.sha256
        );
    }
    println!("\nruns ({})", d.runs.len());
    for r in &d.runs {
        let detail = r.error.as_deref().or(r.summary.as_deref()).unwrap_or("");
        println!(
            "  {}  {:<12}  {:<11}  {}  {}",
            r.id,
            r.stage,
            r.status,
            time(r.started_at),
            detail
        );
    }
}

fn limits(args: &LimitArgs) -> anyhow::Result<Limits> {
    let settings = LimitSettings {
        timeout: args.timeout,
        max_memory: args.max_memory,
        max_table_elements: args.max_table_elements,
        max_instances: args.max_instances,
        max_artifact_size: args.max_artifact_size,
        project_quota: args.project_quota,
        max_writers: args.max_writers,
        max_import_size: args.max_import_size,
        max_handles: args.max_handles,
        max_staged_rows: args.max_staged_rows,
        max_staged_text: args.max_staged_text,
    };
    settings
        .to_limits()
        .map_err(|(key, reason)| bad(format!("--{key} {reason}")))
}

fn read_plugin(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path.is_dir() {
        return Err(bad(format!(
            "{} is a directory, not a plugin file",
            path.display()
        )));
    }
    std::fs::read(path).map_err(|e| bad(format!("cannot read plugin {}: {e}", path.display())))
}

/// The stage name: `--name` as given (checked), else the plugin's file stem made into a valid
/// name (other characters become `-`, cut to 64).
fn stage_name(path: &Path, name: Option<&str>) -> anyhow::Result<String> {
    if let Some(name) = name {
        pipeline::check_stage_name(name).map_err(|r| bad(format!("--name {r}")))?;
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

/// A progress bar on a terminal, plain lines otherwise (logs, pipes, CI).
fn progress_printer(label: String) -> vidpipe_host::host_api::ProgressSink {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return Box::new(move |_stage, done, total, message| {
            if message.is_empty() {
                eprintln!("[{label}] {done}/{total}");
            } else {
                eprintln!("[{label}] {done}/{total} {message}");
            }
        });
    }
    /// Clears the bar when the stage ends and its sink is dropped.
    struct Bar(indicatif::ProgressBar);
    impl Drop for Bar {
        fn drop(&mut self) {
            self.0.finish_and_clear();
        }
    }
    let bar = indicatif::ProgressBar::new(0);
    let style = indicatif::ProgressStyle::with_template(
        "{prefix:.bold} [{bar:32.cyan/blue}] {pos}/{len} {wide_msg}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(label);
    let bar = Bar(bar);
    Box::new(move |_stage, done, total, message| {
        bar.0.set_length(total);
        bar.0.set_position(done);
        bar.0.set_message(message.to_owned());
    })
}

fn stage_run(home: &Path, no_cache: bool, args: StageRun) -> Result<(), Failure> {
    // Check everything the user gave before writing anything.
    let config = parse_pairs("--set", &args.set)?;
    let limits = limits(&args.limits)?;
    let bytes = read_plugin(&args.plugin)?;
    let name = stage_name(&args.plugin, args.name.as_deref())?;
    let runtime = runtime(home, no_cache)?;
    let plugin = runtime.load(&name, &bytes)?;
    let mut home = Home::open(home)?;
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
        progress: progress_printer(plugin.name.clone()),
        pipeline: None,
    };
    let report = runner::run_stage(home, runtime, plugin, request)?;
    let run = &report.run;
    if !report.succeeded() {
        let reason = run.error.as_deref().unwrap_or("unknown reason");
        return Err(Failure::Failed(anyhow::anyhow!(
            "stage {} failed (run {}): {reason}",
            run.stage,
            run.id
        )));
    }
    println!(
        "stage {} succeeded (run {}): {}",
        run.stage,
        run.id,
        run.summary.as_deref().unwrap_or("")
    );
    let detail = db::project_detail(home.conn_mut(), &run.project_id)?;
    for a in detail
        .artifacts
        .iter()
        .filter(|a| a.run_id.as_deref() == Some(run.id.as_str()))
    {
        let kind: vidpipe_host::artifacts::ArtifactKind = a.kind.into();
        let path = home
            .path()
            .join("projects")
            .join(&run.project_id)
            .join(kind.dir_name())
            .join(&a.name);
        println!("wrote {} ({} bytes)", path.display(), a.size);
    }
    Ok(())
}

/// The plugins built into this binary, for `builtin:NAME` in manifests.
fn builtin_plugin(name: &str) -> Option<&'static [u8]> {
    match name {
        "storyboard" => Some(vidpipe_example_plugins::STORYBOARD),
        "keyframes" => Some(vidpipe_example_plugins::KEYFRAMES),
        "clips" => Some(vidpipe_example_plugins::CLIPS),
        "assemble" => Some(vidpipe_example_plugins::ASSEMBLE),
        _ => None,
    }
}

fn pipeline_run(home_path: &Path, no_cache: bool, args: PipelineRun) -> Result<(), Failure> {
    // Everything the user gave is checked, and every plugin compiled, before anything is written.
    let manifest = Manifest::load(&args.manifest)?;
    let runtime = runtime(home_path, no_cache)?;
    let plugins = manifest.load_plugins(&runtime, builtin_plugin)?;
    let mut home = Home::open(home_path)?;
    let options = PipelineOptions {
        force: args.force,
        wait: args.wait,
    };
    run_pipeline_and_report(
        &mut home,
        &runtime,
        &manifest,
        &plugins,
        &args.project,
        options,
    )
}

/// Runs a checked manifest, prints one line per stage and the outcome.
fn run_pipeline_and_report(
    home: &mut Home,
    runtime: &Runtime,
    manifest: &Manifest,
    plugins: &[Plugin],
    project_id: &str,
    options: PipelineOptions,
) -> Result<(), Failure> {
    let count = manifest.stages.len();
    let report = pipeline::run_pipeline(
        home,
        runtime,
        manifest,
        plugins,
        project_id,
        options,
        |i, name| {
            eprintln!("[{}/{count}] {name}: running", i + 1);
            progress_printer(format!("{}/{count} {name}", i + 1))
        },
    )?;
    for (i, (name, outcome)) in report.stages.iter().enumerate() {
        let line = match outcome {
            StageOutcome::Skipped { previous } => format!("skipped (done by run {})", previous.id),
            StageOutcome::Ran(r) if r.succeeded() => {
                format!(
                    "succeeded (run {}): {}",
                    r.run.id,
                    r.run.summary.as_deref().unwrap_or("")
                )
            }
            StageOutcome::Ran(r) => format!(
                "FAILED (run {}): {}",
                r.run.id,
                r.run.error.as_deref().unwrap_or("")
            ),
            StageOutcome::NotReached => "not run (an earlier stage failed)".to_owned(),
        };
        println!("[{}/{count}] {name}: {line}", i + 1);
    }
    let p = &report.pipeline;
    if !report.succeeded() {
        return Err(Failure::Failed(anyhow::anyhow!(
            "pipeline {} failed (run {}): {}",
            p.name,
            p.id,
            p.error.as_deref().unwrap_or("unknown reason")
        )));
    }
    println!(
        "pipeline {} succeeded (run {}): {}",
        p.name,
        p.id,
        p.summary.as_deref().unwrap_or("")
    );
    Ok(())
}

#[derive(serde::Serialize)]
struct PipelineWithRuns {
    pipeline: db::Pipeline,
    runs: Vec<db::Run>,
}

fn print_run(r: &db::Run) {
    let detail = r.error.as_deref().or(r.summary.as_deref()).unwrap_or("");
    println!(
        "  {}  {:<12}  {:<11}  {}  {}",
        r.id,
        r.stage,
        r.status,
        time(r.started_at),
        detail
    );
}

fn runs(home_path: &Path, cmd: RunsCommand) -> Result<(), Failure> {
    let home = Home::open(home_path)?;
    match cmd {
        RunsCommand::List { project, json } => {
            let project = db::get_project(home.conn(), &project)?;
            let pipelines = db::list_pipelines(home.conn(), &project.id)?;
            let runs = db::list_runs(home.conn(), &project.id)?;
            if json {
                let value = serde_json::json!({ "pipelines": pipelines, "runs": runs });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).context("encoding JSON")?
                );
                return Ok(());
            }
            println!("pipeline runs ({})", pipelines.len());
            for p in &pipelines {
                let detail = p.error.as_deref().or(p.summary.as_deref()).unwrap_or("");
                println!(
                    "  {}  {:<12}  {:<11}  {}  {}",
                    p.id,
                    p.name,
                    p.status,
                    time(p.started_at),
                    detail
                );
            }
            println!("\nstage runs ({})", runs.len());
            runs.iter().for_each(print_run);
            Ok(())
        }
        RunsCommand::Show { run, json } => {
            if let Some(pipeline) = db::get_pipeline(home.conn(), &run)? {
                let runs = db::runs_of_pipeline(home.conn(), &pipeline.id)?;
                if json {
                    let value = PipelineWithRuns { pipeline, runs };
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&value).context("encoding JSON")?
                    );
                    return Ok(());
                }
                println!("pipeline run {}", pipeline.id);
                println!("manifest  {} ({})", pipeline.name, pipeline.manifest);
                println!("project   {}", pipeline.project_id);
                println!("status    {}", pipeline.status);
                println!("started   {}", time(pipeline.started_at));
                if let Some(f) = pipeline.finished_at {
                    println!("finished  {}", time(f));
                }
                if let Some(d) = pipeline.error.as_deref().or(pipeline.summary.as_deref()) {
                    println!("detail    {d}");
                }
                println!(
                    "stage runs ({} of {} stages)",
                    runs.len(),
                    pipeline.stage_count
                );
                runs.iter().for_each(print_run);
                return Ok(());
            }
            let r = db::get_run(home.conn(), &run)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&r).context("encoding JSON")?
                );
                return Ok(());
            }
            println!("stage run {}", r.id);
            println!("stage     {}", r.stage);
            println!("project   {}", r.project_id);
            if let Some(p) = &r.pipeline_id {
                println!(
                    "pipeline  {p} (stage {})",
                    r.stage_index.map_or(0, |i| i + 1)
                );
            }
            println!("plugin    sha256 {}", r.plugin_sha256);
            println!("status    {}", r.status);
            println!("started   {}", time(r.started_at));
            if let Some(f) = r.finished_at {
                println!("finished  {}", time(f));
            }
            for (k, v) in &r.config {
                println!("config    {k} = {v}");
            }
            if let Some(d) = r.error.as_deref().or(r.summary.as_deref()) {
                println!("detail    {d}");
            }
            Ok(())
        }
    }
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

fn inspect(path: &Path, json: bool) -> Result<(), Failure> {
    let bytes = read_plugin(path)?;
    let runtime = Runtime::new().map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let name = stage_name(path, None)?;
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
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("encoding JSON")?
        );
        return Ok(());
    }
    println!("plugin    {}", report.path);
    println!("size      {} bytes", report.size);
    println!("sha256    {}", report.sha256);
    if report.targets.is_empty() {
        println!("targets   (no vidpipe:plugin interface imported)");
    } else {
        println!("targets   {}", report.targets.join(", "));
    }
    println!("imports ({})", report.imports.len());
    for i in &report.imports {
        println!("  {i}");
    }
    println!("exports ({})", report.exports.len());
    for e in &report.exports {
        println!("  {e}");
    }
    match &report.reason {
        None => println!(
            "runnable  yes: this host ({}) can run it",
            vidpipe_host::WIT_PACKAGE
        ),
        Some(reason) => println!("runnable  no: {reason}"),
    }
    Ok(())
}

/// The bundled example script.
const EXAMPLE_SCRIPT: &str = include_str!("../../guest-example/examples/lighthouse.txt");
/// The bundled demo pipeline (plugins built into this binary).
const DEMO_MANIFEST: &str = include_str!("../../guest-example/examples/demo.toml");
const DEMO_PROJECT: &str = "vidpipe demo: The Lighthouse Keeper";

fn demo(home_path: &Path, no_cache: bool) -> Result<(), Failure> {
    let manifest = Manifest::parse(Path::new("builtin:demo.toml"), DEMO_MANIFEST)?;
    let mut home = Home::init(home_path)?;
    let runtime = runtime(home_path, no_cache)?;
    let plugins = manifest.load_plugins(&runtime, builtin_plugin)?;
    let existing = db::list_projects(home.conn())?
        .into_iter()
        .find(|p| p.name == DEMO_PROJECT);
    let project = match existing {
        Some(p) => {
            eprintln!("reusing demo project {}", p.id);
            p
        }
        None => home.create_project(DEMO_PROJECT, EXAMPLE_SCRIPT, &KeyValues::new())?,
    };
    let options = PipelineOptions {
        force: false,
        wait: true,
    };
    run_pipeline_and_report(
        &mut home,
        &runtime,
        &manifest,
        &plugins,
        &project.id,
        options,
    )?;
    let detail = db::project_detail(home.conn_mut(), &project.id)?;
    let folder = home.path().join("projects").join(&project.id);
    println!(
        "\nthe demo project {} is in {}:",
        project.id,
        folder.display()
    );
    println!(
        "  storyboard  {}",
        folder.join("output").join("storyboard.md").display()
    );
    println!(
        "  keyframes   {} ({} PNG images)",
        folder.join("keyframes").display(),
        detail.keyframes.len()
    );
    println!(
        "  clips       {} ({} animated PNGs)",
        folder.join("clips").display(),
        detail.video_clips.len()
    );
    let output = folder.join("output");
    println!(
        "  video       {} (animated PNG; open it in a web browser, or `ffplay` it)",
        output.join("final.png").display()
    );
    println!(
        "  contact     {}",
        output.join("contact-sheet.png").display()
    );
    println!("  manifest    {}", output.join("manifest.json").display());
    println!(
        "see everything with `vidpipe --home {} project show {}`",
        home.path().display(),
        project.id
    );
    Ok(())
}
