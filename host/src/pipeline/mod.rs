//! Pipelines: a TOML manifest lists stages in order; running it runs them on one project, each
//! atomically, skipping those whose work is already done.
//!
//! ```toml
//! name = "demo"                     # optional; defaults to the file stem
//! jobs = 4                          # optional: most shards at once (default: the cores)
//!
//! [[stage]]
//! name = "storyboard"               # unique within the manifest
//! plugin = "storyboard.wasm"        # relative to the manifest, or "builtin:storyboard"
//! timeout = 60                      # seconds, optional (see runtime::limits::ALL for all
//! max-memory = 256                  # MiB, optional   the limit keys and their ranges)
//! [stage.config]                    # strings, numbers or booleans
//! seconds-per-scene = 4
//!
//! [[stage]]
//! name = "clips"
//! plugin = "builtin:clips"
//! for-each = "scene"                # one shard per scene (see "Fan-out")
//! parts = 2                         # optional: each scene's work cut in 2 shards (1 to 16)
//! ```
//!
//! # Fan-out
//!
//! A stage with `for-each = "scene"` runs as shards, one per committed scene of the project
//! when the stage starts (shards cannot create or delete scenes), up to `jobs` at once: each a run of its own (its record names its
//! scene), in its own store with the stage's limits, its database session bound to its scene
//! (`db.scope` tells the guest; writes to other scenes' rows are `out-of-scope`), committing on
//! its own. The stage succeeds when every shard has; a shard that fails fails the stage, named,
//! and the shards that succeeded stay committed. After per-scene stages, a per-scene stage's
//! shard starts as soon as their shards of its scene are done, and is checked again once they
//! are all done (`schedule`, "Scene by scene").
//!
//! `parts = N` cuts each scene's work into N shards, so that one scene's work can use N cores (an
//! edit that changes one scene is redrawn up to N times faster) and few scenes still keep many
//! cores busy. Each part's shard is a run of its own (its record names its scene and part, and so
//! does `runs show`: "clips scene 3 part 2/2"), told its part by `db.part`; it may write only its
//! own part of the scene's clip (`db.put-clip-part`) and the files only that part names, and delete
//! only the parts past its cut (`db.delete-clip-parts`; part 0 deletes those left over from a cut
//! into more); the scene's row and keyframes are the whole scene's. A shard whose plugin never asks
//! its part fails. A scene's work is done once every part of it is; the stages after it follow
//! scene by scene as before. Each part is reused on its own: a shard is skipped when the latest run
//! of the same part, cut the same way, stands and no run of another cut of that scene succeeded
//! since.
//!
//! # Resume and reuse
//!
//! Every read a guest makes goes through the host, which notes it (`db::reads`): the project,
//! rows by id, listings, artifacts by name. A run's commit records a digest of each answer. A
//! stage — or a shard, for its scene — is skipped ([`decide`]) when its latest run succeeded
//! with the same plugin (by SHA-256) and the same configuration, its files are all in place,
//! and every digest still matches what the database holds now: nothing it read has changed.
//! Otherwise it runs, and the reason is recorded with the run and in the pipeline's plan
//! ("first run", "plugin changed", "configuration changed", "the last run failed", "the last
//! run was interrupted", "the last run did not finish", "the last run's files were damaged",
//! "what the last run read was not recorded", or what changed: "scene 3 changed", …). Limits
//! are not part of it: a shard that failed by its memory or time limit runs again with new
//! limits while the others stay skipped. `force` runs everything.
//!
//! A run whose reads another unit changed while it ran (a digest taken when the guest first
//! asked differs at commit) records none, and is never reused. That includes a torn read: a
//! guest reading an artifact, in several calls, while another unit publishes a new version of
//! it may see parts of both. Its run still commits (what it wrote is its own), but the next
//! pipeline runs it again on the settled state. Writes are guarded at commit too: see
//! `db::stage` for how concurrent runs of one project never overwrite each other's changes.
//!
//! # Ready for more than one machine
//!
//! The unit of work is a stage run: a whole-project stage or one shard, named by (project,
//! stage, scene, part), with everything it needs in its record (plugin hash, configuration) and in
//! the database. Today one process claims a project by its lock file and runs every unit of a
//! pipeline. Spread across machines, the same units would be claimed through a shared database
//! (PostgreSQL): a coordinator inserts the `queued` records of a stage's shards; a worker claims
//! one with `UPDATE … SET status = 'running', lease_until = now() + ttl, fence = fence + 1 …
//! WHERE id = (SELECT id … WHERE status = 'queued' OR lease_until < now() … FOR UPDATE SKIP
//! LOCKED LIMIT 1) RETURNING fence`, renews the lease by heartbeat while its guest runs, and
//! commits its overlay in one transaction that first checks `fence` is still its own (so a
//! worker whose lease expired and was taken over cannot commit); artifacts go to an object
//! store under content-addressed names, published by the commit that names them, as the
//! journal does here. The guest, its store and its overlay need no change: a shard already
//! reads and writes only through its session, and commits in one transaction.

mod manifest;
mod schedule;

use crate::capabilities::ProgressSink;
use crate::db::{self, RunStatus};
use crate::home::{Home, HomeError, doing};
use crate::runner::StageReport;
use crate::runtime::{Plugin, Runtime};
pub use manifest::{
    ForEach, MAX_JOBS, MAX_MANIFEST_BYTES, MAX_STAGES, Manifest, ManifestError, PluginSource,
    StageSpec, check_jobs, check_stage_name,
};

/// What happened to one stage of a pipeline run.
#[derive(Debug, Clone)]
pub enum StageOutcome {
    /// Its work was already done by this earlier run.
    Skipped {
        /// The run whose work stands.
        previous: db::Run,
    },
    /// It ran (and succeeded or failed).
    Ran(StageReport),
    /// A per-scene stage: what happened to each of its shards, in scene order (none if the
    /// project has no scenes). It succeeded if every shard did or was skipped.
    Fanned(Vec<Shard>),
    /// An earlier stage failed, so it did not run.
    NotReached,
}

/// One shard of a per-scene stage in a pipeline run.
#[derive(Debug, Clone)]
pub struct Shard {
    /// The scene it was bound to.
    pub scene: db::Scene,
    /// Its part of the scene's work, if its stage is cut into parts.
    pub part: Option<db::Part>,
    /// [`StageOutcome::Skipped`], [`StageOutcome::Ran`], or [`StageOutcome::NotReached`].
    pub outcome: StageOutcome,
    /// Its work is not done: its run failed, or the files of a run that committed could not
    /// all be put in place.
    pub failed: bool,
}

impl StageOutcome {
    /// The runs that failed: this stage's own, or its shards'.
    pub fn failed_runs(&self) -> Vec<&db::Run> {
        match self {
            StageOutcome::Ran(r) if !r.succeeded() => vec![&r.run],
            StageOutcome::Fanned(shards) => shards
                .iter()
                .flat_map(|s| s.outcome.failed_runs())
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The end of a pipeline run.
#[derive(Debug, Clone)]
pub struct PipelineReport {
    /// The pipeline record.
    pub pipeline: db::Pipeline,
    /// Each stage's outcome, in manifest order.
    pub stages: Vec<(String, StageOutcome)>,
}

impl PipelineReport {
    /// Whether every stage succeeded or was skipped.
    pub fn succeeded(&self) -> bool {
        self.pipeline.status == RunStatus::Succeeded
    }
}

/// How to run a pipeline.
#[derive(Debug, Clone, Copy, Default)]
pub struct PipelineOptions {
    /// Run every stage, even those whose work is done.
    pub force: bool,
    /// Wait for another process that is running stages on the project instead of refusing.
    pub wait: bool,
    /// Most shards of a per-scene stage running at once; `None`: the manifest's `jobs`, or
    /// else the machine's cores.
    pub jobs: Option<usize>,
}

impl PipelineOptions {
    /// How many shards run at once for `manifest`.
    pub fn jobs_for(&self, manifest: &Manifest) -> usize {
        self.jobs.or(manifest.jobs).unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }
}

/// What a running pipeline tells its caller, stage by stage, as it happens. Stages and shards
/// run on threads of their own, so an observer is `Send`; it is called by one thread at a time.
pub trait Observer: Send {
    /// Stage `index` (named `name`) is about to run: where its progress goes. For a per-scene
    /// stage, that is the count of its shards done (`done` of `total`, message `scenes`).
    fn started(&mut self, index: usize, name: &str) -> ProgressSink;
    /// The shard of stage `index` bound to `scene` (and doing `part` of its work, if the
    /// stage is cut into parts) is about to run: where its progress goes.
    fn shard_started(
        &mut self,
        index: usize,
        name: &str,
        scene: &db::Scene,
        part: Option<db::Part>,
    ) -> ProgressSink;
    /// That shard ran (and succeeded or failed).
    fn shard_finished(
        &mut self,
        index: usize,
        name: &str,
        scene: &db::Scene,
        part: Option<db::Part>,
        report: &StageReport,
    );
    /// Stage `index` is done with: it ran (and succeeded or failed), was skipped, or was not
    /// reached. Called once per stage, as each ends (stages that do not run after one another
    /// may end in any order).
    fn finished(&mut self, index: usize, name: &str, outcome: &StageOutcome);
}

/// Where the runs of a pipeline stand between stages.
struct Progress {
    /// Run everything, reusing nothing (`--force`).
    force: bool,
    /// Why the pipeline stopped, once a stage failed.
    failure: Option<String>,
    /// What was decided for each stage and shard so far.
    plan: Vec<db::Step>,
    ran: usize,
    skipped: usize,
}

/// Whether an earlier run's work stands for a stage or shard now, and why.
enum Decision {
    /// It does: this run's work is reused.
    Reuse(Box<db::Run>),
    /// It does not, for this reason: run it.
    Run(String),
}

/// Runs `manifest` (with its `plugins`, from [`Manifest::load_plugins`]) on a project,
/// telling `observer` of each stage as it starts and ends.
pub fn run_pipeline(
    home: &mut Home,
    runtime: &Runtime,
    manifest: &Manifest,
    plugins: &[Plugin],
    project_id: &str,
    options: PipelineOptions,
    observer: &mut dyn Observer,
) -> Result<PipelineReport, HomeError> {
    let project = db::get_project(home.conn(), project_id)?;
    let _lock = home.lock_project(&project.id, options.wait)?;
    let stage_count = u32::try_from(manifest.stages.len()).unwrap_or(u32::MAX);
    let record = db::start_pipeline(
        home.conn_mut(),
        &project.id,
        &manifest.name,
        &manifest.path.display().to_string(),
        stage_count,
    )
    .map_err(doing("record the start of the pipeline"))?;
    let mut at = Progress {
        force: options.force,
        failure: None,
        plan: Vec::new(),
        ran: 0,
        skipped: 0,
    };
    let graph = schedule::Graph {
        manifest,
        plugins,
        runtime,
        pipeline_id: &record.id,
        project_id: &project.id,
        jobs: options.jobs_for(manifest),
    };
    let outcomes = match schedule::run(home, observer, &mut at, &graph) {
        Ok(outcomes) => outcomes,
        Err(e) => return Err(abandon(home, &record.id, &at.plan, e)),
    };
    let outcomes: Vec<(String, StageOutcome)> = manifest
        .stages
        .iter()
        .map(|s| s.name.clone())
        .zip(outcomes)
        .collect();
    let summary = format!("{} stage(s) ran, {} skipped", at.ran, at.skipped);
    let outcome = match &at.failure {
        Some(reason) => Err(reason.as_str()),
        None => Ok(summary.as_str()),
    };
    db::finish_pipeline(home.conn_mut(), &record.id, outcome, &at.plan)
        .map_err(doing("record the end of the pipeline"))?;
    let pipeline = db::get_pipeline(home.conn(), &record.id)?.unwrap_or(record);
    Ok(PipelineReport {
        pipeline,
        stages: outcomes,
    })
}

/// Whether `previous` (the latest run of this stage, or of this shard) did the work the stage
/// would do now: it succeeded with the same plugin and configuration, its files are all in
/// place, and everything it read is as its commit left it.
fn decide(
    home: &Home,
    project_id: &str,
    spec: &StageSpec,
    plugin: &Plugin,
    force: bool,
    previous: Option<db::Run>,
) -> Result<Decision, HomeError> {
    let run = |reason: &str| Ok(Decision::Run(reason.to_owned()));
    if force {
        return run("forced (--force)");
    }
    let Some(previous) = previous else {
        return run("first run");
    };
    match previous.status {
        RunStatus::Succeeded => {}
        RunStatus::Interrupted => return run("the last run was interrupted"),
        RunStatus::Failed => return run("the last run failed"),
        // Another process's run, still going (or never started): this one does the work.
        RunStatus::Running | RunStatus::Queued => return run("the last run did not finish"),
    }
    if previous.plugin_sha256 != plugin.sha256 {
        return run("plugin changed");
    }
    if previous.config != spec.config {
        return run("configuration changed");
    }
    // A run whose files could not all be put in place did not do its work.
    let damaged = db::damaged_journal(home.conn(), project_id)?;
    if damaged.iter().any(|d| d.entry.run_id == previous.id) {
        return run("the last run's files were damaged");
    }
    let Some(reads) = db::run_reads(home.conn(), &previous.id)? else {
        return run("what the last run read was not recorded");
    };
    match db::reads::first_changed(home.conn(), project_id, &reads)? {
        Some(read) => run(&db::reads::describe(home.conn(), project_id, &read)),
        None => Ok(Decision::Reuse(Box::new(previous))),
    }
}

/// Why the run of `report` did not do its work, if it did not: it failed, or it committed but
/// its files are not all in place even after one more try.
fn not_done(
    home: &mut Home,
    project_id: &str,
    report: &StageReport,
) -> Result<Option<String>, HomeError> {
    if !report.succeeded() {
        // The stage's own record says why; the pipeline's says which.
        return Ok(Some(format!("failed (run {})", report.run.id)));
    }
    let Some(why) = &report.unpublished else {
        return Ok(None);
    };
    // A stage whose files are not all in place is not done: roll its publish forward before
    // going on, or stop. Files recorded as damaged will never be in place.
    let retried = home.finish_publishes(project_id, None);
    let damaged = db::damaged_journal(home.conn(), project_id)
        .map_err(doing("read the damaged artifacts"))?
        .iter()
        .any(|d| d.entry.run_id == report.run.id);
    let stopped = match retried {
        Err(e) => Some(format!(
            "its files could not all be moved into place: {e}; run the pipeline again to \
             finish moving them"
        )),
        Ok(_) if damaged => Some(why.clone()),
        Ok(_) => None,
    };
    Ok(stopped.map(|stopped| format!("committed (run {}), but {stopped}", report.run.id)))
}

/// Why a run's work was reused, for the plan.
fn unchanged(previous: &db::Run) -> String {
    format!("unchanged since run {}", previous.id)
}

/// Records a pipeline the host could not carry on with as failed (rather than leaving it
/// `running` for the next process to call interrupted) and hands the error back.
fn abandon(home: &mut Home, pipeline_id: &str, plan: &[db::Step], e: HomeError) -> HomeError {
    if let Err(record) = db::finish_pipeline(
        home.conn_mut(),
        pipeline_id,
        Err(&format!("the host failed: {e}")),
        plan,
    ) {
        tracing::error!(
            pipeline = pipeline_id,
            "could not record the pipeline as failed: {record}"
        );
    }
    e
}

#[cfg(test)]
mod tests;
