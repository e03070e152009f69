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
//! for-each = "scene"                # one shard per scene (see `fanout`)
//! ```
//!
//! # Fan-out
//!
//! A stage with `for-each = "scene"` runs as shards, one per committed scene of the project
//! when the stage starts, up to `jobs` at once: each a run of its own (its record names its
//! scene), in its own store with the stage's limits, its database session bound to its scene
//! (`db.scope` tells the guest; writes to other scenes' rows are `out-of-scope`), committing on
//! its own. The stage succeeds when every shard has; a shard that fails fails the stage, named,
//! and the shards that succeeded stay committed.
//!
//! # Resume
//!
//! A stage — or a shard, for its scene — is skipped when its latest run on the project
//! succeeded with the same plugin (by SHA-256) and the same configuration, and started after
//! the run the stage before it relied on (for the first stage, after the project's last
//! `project update`) — so its input has not changed since. Limits are not part of that: a
//! shard that failed by its memory or time limit runs again with new limits while the others
//! stay skipped. Once one stage or shard runs, every stage after it runs too: its input may
//! have changed. `force` runs everything.
//!
//! # Ready for more than one machine
//!
//! The unit of work is a stage run: a whole-project stage or one shard, named by (project,
//! stage, scene), with everything it needs in its record (plugin hash, configuration) and in
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

mod fanout;
mod manifest;

use crate::capabilities::ProgressSink;
use crate::db::{self, RunStatus};
use crate::home::{Home, HomeError, doing};
use crate::runner::{self, StageReport, StageRequest};
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
    /// [`StageOutcome::Skipped`] or [`StageOutcome::Ran`].
    pub outcome: StageOutcome,
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

/// What a running pipeline tells its caller, stage by stage, as it happens. The shards of a
/// stage run on threads of their own, so an observer is `Send`; it is called by one thread at
/// a time.
pub trait Observer: Send {
    /// Stage `index` (named `name`) is about to run: where its progress goes. For a per-scene
    /// stage, that is the count of its shards done (`done` of `total`, message `scenes`).
    fn started(&mut self, index: usize, name: &str) -> ProgressSink;
    /// The shard of stage `index` bound to `scene` is about to run: where its progress goes.
    fn shard_started(&mut self, index: usize, name: &str, scene: &db::Scene) -> ProgressSink;
    /// That shard ran (and succeeded or failed).
    fn shard_finished(&mut self, index: usize, name: &str, scene: &db::Scene, report: &StageReport);
    /// Stage `index` is done with: it ran (and succeeded or failed), was skipped, or was not
    /// reached. Called once per stage, in manifest order.
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
    let jobs = options.jobs_for(manifest);
    let mut outcomes = Vec::with_capacity(manifest.stages.len());
    for (i, (spec, plugin)) in manifest.stages.iter().zip(plugins).enumerate() {
        let outcome = if at.failure.is_some() {
            StageOutcome::NotReached
        } else {
            let stage = StageRun {
                runtime,
                manifest,
                spec,
                plugin,
                index: i,
                pipeline_id: &record.id,
                project_id: &project.id,
                jobs,
            };
            match stage.run(home, &mut at, observer) {
                Ok(outcome) => outcome,
                Err(e) => return Err(abandon(home, &record.id, &at.plan, e)),
            }
        };
        observer.finished(i, &spec.name, &outcome);
        outcomes.push((spec.name.clone(), outcome));
    }
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

/// One stage of a pipeline run, about to run.
struct StageRun<'a> {
    runtime: &'a Runtime,
    manifest: &'a Manifest,
    spec: &'a StageSpec,
    plugin: &'a Plugin,
    index: usize,
    pipeline_id: &'a str,
    project_id: &'a str,
    jobs: usize,
}

impl StageRun<'_> {
    /// Runs the stage (or its shards), or skips what earlier runs did, and moves `at` on.
    fn run(
        &self,
        home: &mut Home,
        at: &mut Progress,
        observer: &mut dyn Observer,
    ) -> Result<StageOutcome, HomeError> {
        if self.spec.for_each.is_some() {
            return self.fan_out(home, at, observer);
        }
        let previous = db::latest_run_of_stage(home.conn(), self.project_id, &self.spec.name)?;
        let reason = match self.decide(home, at, previous)? {
            Decision::Reuse(previous) => {
                let previous = *previous;
                tracing::info!(stage = %self.spec.name, run = %previous.id, "skipped: done by an earlier run");
                at.skipped += 1;
                at.plan
                    .push(self.step(None, false, Some(&previous.id), unchanged(&previous)));
                return Ok(StageOutcome::Skipped { previous });
            }
            Decision::Run(reason) => reason,
        };
        let request = StageRequest {
            project_id: self.project_id.to_owned(),
            config: self.spec.config.clone(),
            limits: self.spec.limits,
            progress: observer.started(self.index, &self.spec.name),
            pipeline: Some((self.pipeline_id.to_owned(), self.position())),
            scene: None,
            reason: Some(reason.clone()),
        };
        let report = runner::run_stage(home, self.runtime, self.plugin, request)?;
        at.ran += 1;
        at.plan
            .push(self.step(None, true, Some(&report.run.id), reason));
        if let Some(why) = self.not_done(home, &report)? {
            at.failure = Some(format!("stage {} {why}", self.label()));
        }
        Ok(StageOutcome::Ran(report))
    }

    /// Runs the shards of a per-scene stage whose work is not done, `jobs` at once.
    fn fan_out(
        &self,
        home: &mut Home,
        at: &mut Progress,
        observer: &mut dyn Observer,
    ) -> Result<StageOutcome, HomeError> {
        let scenes = db::list_scenes(home.conn(), self.project_id)?;
        let mut decided = Vec::with_capacity(scenes.len());
        let mut to_run = Vec::new();
        for scene in &scenes {
            let previous =
                db::latest_run_of_shard(home.conn(), self.project_id, &self.spec.name, &scene.id)?;
            let decision = self.decide(home, at, previous)?;
            if let Decision::Run(reason) = &decision {
                to_run.push((scene.clone(), reason.clone()));
            }
            decided.push(decision);
        }
        let reports = if to_run.is_empty() {
            Vec::new()
        } else {
            let stage_bar = observer.started(self.index, &self.spec.name);
            let plan = fanout::Shards {
                spec: self.spec,
                plugin: self.plugin,
                index: self.index,
                pipeline_id: self.pipeline_id,
                project_id: self.project_id,
                jobs: self.jobs,
            };
            fanout::run_shards(home, self.runtime, observer, stage_bar, &plan, &to_run)?
        };
        let mut reports = reports.into_iter();
        let mut shards = Vec::with_capacity(scenes.len());
        let mut failed = Vec::new();
        for (scene, decision) in scenes.into_iter().zip(decided) {
            let at_scene = Some((scene.index, scene.id.clone()));
            let outcome = match decision {
                Decision::Reuse(previous) => {
                    let previous = *previous;
                    at.plan.push(self.step(
                        at_scene,
                        false,
                        Some(&previous.id),
                        unchanged(&previous),
                    ));
                    StageOutcome::Skipped { previous }
                }
                Decision::Run(reason) => match reports.next() {
                    Some(report) => {
                        at.plan
                            .push(self.step(at_scene, true, Some(&report.run.id), reason));
                        if let Some(why) = self.not_done(home, &report)? {
                            failed.push(format!("the shard of scene {} {why}", scene.index));
                        }
                        StageOutcome::Ran(report)
                    }
                    None => StageOutcome::NotReached,
                },
            };
            shards.push(Shard { scene, outcome });
        }
        let ran = shards
            .iter()
            .filter(|s| matches!(s.outcome, StageOutcome::Ran(_)))
            .count();
        if ran > 0 {
            at.ran += 1;
        } else {
            at.skipped += 1;
            if shards.is_empty() {
                at.plan
                    .push(self.step(None, false, None, "the project has no scenes".into()));
            }
        }
        if !failed.is_empty() {
            let shown = failed.len().min(3);
            let more = match failed.len() - shown {
                0 => String::new(),
                n => format!(", and {n} more"),
            };
            at.failure = Some(format!(
                "stage {}: {} of {} shards failed: {}{more}",
                self.label(),
                failed.len(),
                shards.len(),
                failed[..shown].join("; ")
            ));
        }
        Ok(StageOutcome::Fanned(shards))
    }

    /// Whether `previous` (the latest run of this stage, or of this shard) did the work this
    /// stage would do now: it succeeded with the same plugin and configuration, its files are
    /// all in place, and everything it read is as its commit left it.
    fn decide(
        &self,
        home: &Home,
        at: &Progress,
        previous: Option<db::Run>,
    ) -> Result<Decision, HomeError> {
        let run = |reason: &str| Ok(Decision::Run(reason.to_owned()));
        if at.force {
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
        if previous.plugin_sha256 != self.plugin.sha256 {
            return run("plugin changed");
        }
        if previous.config != self.spec.config {
            return run("configuration changed");
        }
        // A run whose files could not all be put in place did not do its work.
        let damaged = db::damaged_journal(home.conn(), self.project_id)?;
        if damaged.iter().any(|d| d.entry.run_id == previous.id) {
            return run("the last run's files were damaged");
        }
        let Some(reads) = db::run_reads(home.conn(), &previous.id)? else {
            return run("what the last run read was not recorded");
        };
        match db::reads::first_changed(home.conn(), self.project_id, &reads)? {
            Some(read) => run(&db::reads::describe(home.conn(), self.project_id, &read)),
            None => Ok(Decision::Reuse(Box::new(previous))),
        }
    }

    fn step(
        &self,
        scene: Option<(u32, String)>,
        ran: bool,
        run: Option<&str>,
        reason: String,
    ) -> db::Step {
        db::Step {
            stage: self.spec.name.clone(),
            scene,
            ran,
            run: run.map(str::to_owned),
            reason,
        }
    }

    /// Why the run of `report` did not do its work, if it did not: it failed, or it committed
    /// but its files are not all in place even after one more try.
    fn not_done(&self, home: &mut Home, report: &StageReport) -> Result<Option<String>, HomeError> {
        if !report.succeeded() {
            // The stage's own record says why; the pipeline's says which.
            return Ok(Some(format!("failed (run {})", report.run.id)));
        }
        let Some(why) = &report.unpublished else {
            return Ok(None);
        };
        // A stage whose files are not all in place is not done: roll its publish forward
        // before going on, or stop. Files recorded as damaged will never be in place.
        let retried = home.finish_publishes(self.project_id, None);
        let damaged = db::damaged_journal(home.conn(), self.project_id)
            .map_err(doing("read the damaged artifacts"))?
            .iter()
            .any(|d| d.entry.run_id == report.run.id);
        let stopped = match retried {
            Err(e) => Some(format!(
                "its files could not all be moved into place: {e}; run the pipeline again \
                 to finish moving them"
            )),
            Ok(_) if damaged => Some(why.clone()),
            Ok(_) => None,
        };
        Ok(stopped.map(|stopped| format!("committed (run {}), but {stopped}", report.run.id)))
    }

    /// `NAME (I of N)`.
    fn label(&self) -> String {
        format!(
            "{} ({} of {})",
            self.spec.name,
            self.index + 1,
            self.manifest.stages.len()
        )
    }

    fn position(&self) -> u32 {
        u32::try_from(self.index).unwrap_or(u32::MAX)
    }
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
