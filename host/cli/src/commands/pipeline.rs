//! `vidpipe run`: a pipeline manifest on a project.

use std::path::PathBuf;

use clap::Args;
use vidpipe_host::capabilities::ProgressSink;
use vidpipe_host::db::{Part, Scene};
use vidpipe_host::home::Home;
use vidpipe_host::pipeline::{self, Manifest, PipelineOptions, StageOutcome};
use vidpipe_host::runner::StageReport;
use vidpipe_host::runtime::{Plugin, Runtime};

use crate::Globals;
use crate::failure::{Failure, failed};
use crate::output::note;
use crate::{progress, setup};

/// The arguments of `vidpipe run`.
#[derive(Debug, Args)]
pub struct PipelineRun {
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
    /// Most shards of a per-scene stage (`for-each = "scene"`) running at once, 1 to 256
    /// [default: the manifest's `jobs`, else the machine's cores].
    #[arg(long, value_parser = jobs)]
    jobs: Option<usize>,
}

fn jobs(text: &str) -> Result<usize, String> {
    let n: i64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number"))?;
    pipeline::check_jobs(n)
}

/// Runs `vidpipe run`.
pub fn exec(globals: &Globals, args: PipelineRun) -> Result<(), Failure> {
    // Everything the user gave is checked, and every plugin compiled, before anything is written.
    setup::check_writable(&globals.home)?;
    let manifest = Manifest::load(&args.manifest)?;
    let runtime = setup::runtime(&globals.home, globals.no_cache)?;
    let plugins = manifest.load_plugins(&runtime, vidpipe_example_plugins::builtin)?;
    let mut home = setup::writable_home(&globals.home)?;
    let options = PipelineOptions {
        force: args.force,
        wait: args.wait,
        jobs: args.jobs,
    };
    run_and_report(
        &mut home,
        &runtime,
        &manifest,
        &plugins,
        &args.project,
        options,
    )
}

/// Prints a line as each stage starts (on stderr, with its progress bar) and as each stage or
/// shard ends (on stdout), as it happens.
struct Printer {
    count: usize,
}

/// A run's end, as a line says it.
fn ran(report: &StageReport) -> String {
    if report.succeeded() {
        format!(
            "succeeded (run {}): {}",
            report.run.id,
            report.run.summary.as_deref().unwrap_or("")
        )
    } else {
        format!(
            "FAILED (run {}): {}",
            report.run.id,
            report.run.error.as_deref().unwrap_or("")
        )
    }
}

/// `scene 3`, or `scene 3 part 2/2` for a stage cut into parts.
fn shard(scene: &Scene, part: Option<Part>) -> String {
    match part {
        Some(part) => format!("scene {} {part}", scene.index),
        None => format!("scene {}", scene.index),
    }
}

impl pipeline::Observer for Printer {
    fn started(&mut self, i: usize, name: &str) -> ProgressSink {
        let count = self.count;
        note!("[{}/{count}] {name}: running", i + 1);
        progress::sink(format!("{}/{count} {name}", i + 1))
    }

    fn shard_started(
        &mut self,
        i: usize,
        name: &str,
        scene: &Scene,
        part: Option<Part>,
    ) -> ProgressSink {
        progress::sink(format!(
            "{}/{} {name} {}",
            i + 1,
            self.count,
            shard(scene, part)
        ))
    }

    fn shard_finished(
        &mut self,
        i: usize,
        name: &str,
        scene: &Scene,
        part: Option<Part>,
        report: &StageReport,
    ) {
        progress::stdout_line(&format!(
            "[{}/{}] {name}: {}: {}",
            i + 1,
            self.count,
            shard(scene, part),
            ran(report)
        ));
    }

    fn finished(&mut self, i: usize, name: &str, outcome: &StageOutcome) {
        let line = match outcome {
            StageOutcome::Skipped { previous } => format!("skipped (done by run {})", previous.id),
            StageOutcome::Ran(r) => ran(r),
            StageOutcome::Fanned(shards) => {
                let count = |what: fn(&StageOutcome) -> bool| {
                    shards.iter().filter(|s| what(&s.outcome)).count()
                };
                let ran = count(|o| matches!(o, StageOutcome::Ran(_)));
                let skipped = count(|o| matches!(o, StageOutcome::Skipped { .. }));
                let unreached = count(|o| matches!(o, StageOutcome::NotReached));
                let failed = shards.iter().filter(|s| s.failed).count();
                let verdict = if failed > 0 {
                    format!("FAILED ({failed} failed)")
                } else if unreached > 0 {
                    "stopped (an earlier stage failed)".to_owned()
                } else if ran > 0 {
                    "succeeded".to_owned()
                } else {
                    "skipped (done by earlier runs)".to_owned()
                };
                let unreached = match unreached {
                    0 => String::new(),
                    n => format!(", {n} not reached"),
                };
                let what = match shards.first().and_then(|s| s.part) {
                    Some(part) => format!(
                        "{} scene(s) in {} parts",
                        shards.len() / part.count.max(1) as usize,
                        shards.len()
                    ),
                    None => format!("{} scene(s)", shards.len()),
                };
                format!("{verdict}: {what}, {ran} ran, {skipped} skipped{unreached}")
            }
            StageOutcome::NotReached => "not run (an earlier stage failed)".to_owned(),
        };
        progress::stdout_line(&format!("[{}/{}] {name}: {line}", i + 1, self.count));
    }
}

/// Runs a checked manifest, prints a line per stage as it ends, and the outcome.
pub fn run_and_report(
    home: &mut Home,
    runtime: &Runtime,
    manifest: &Manifest,
    plugins: &[Plugin],
    project_id: &str,
    options: PipelineOptions,
) -> Result<(), Failure> {
    let mut printer = Printer {
        count: manifest.stages.len(),
    };
    let report = pipeline::run_pipeline(
        home,
        runtime,
        manifest,
        plugins,
        project_id,
        options,
        &mut printer,
    )?;
    let p = &report.pipeline;
    if !report.succeeded() {
        return Err(failed(format!(
            "pipeline {} failed (run {}): {}",
            p.name,
            p.id,
            p.error.as_deref().unwrap_or("unknown reason")
        )));
    }
    progress::stdout_line(&format!(
        "pipeline {} succeeded (run {}): {}",
        p.name,
        p.id,
        p.summary.as_deref().unwrap_or("")
    ));
    Ok(())
}
