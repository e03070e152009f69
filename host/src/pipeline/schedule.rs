//! Running a pipeline's graph: stages start when every stage they run `after` is done, and
//! every unit of work — a whole-project stage, or one shard of a per-scene stage — runs on one
//! of `jobs` workers.
//!
//! A stage that becomes ready is decided at once, on the state its inputs committed: skipped
//! (its latest run's work stands), or queued — whole, or as one unit per scene whose shard must
//! run. A shard is a stage run of its own: its record names its scene, and it has its own store,
//! limits, database session — bound to its scene, so that writing another scene's rows or files
//! is `out-of-scope` ([`StageSession::set_scope`]) — and commit. A shard that fails fails alone;
//! the shards that succeeded stay committed. A stage whose input failed (or was not reached) is
//! not reached; stages that do not depend on it go on.
//!
//! The guests of running units run at the same time, each on its worker's thread (every thread
//! drives its own guest through the runtime's executor: see `Runtime::call`). Deciding, recording
//! a unit's start and committing its work need the [`Home`], and happen one at a time under a
//! mutex: each is short (one transaction, or a few reads), and SQLite takes one writer at a time
//! anyway, so the guests, where the time goes, never wait for each other.
//!
//! [`StageSession::set_scope`]: crate::db::stage::StageSession::set_scope

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

use super::{Decision, Manifest, Observer, Progress, Shard, StageOutcome, decide, not_done};
use crate::capabilities::ProgressSink;
use crate::db::{self, Scene};
use crate::home::{Home, HomeError};
use crate::runner::{self, StageReport, StageRequest};
use crate::runtime::{Plugin, Runtime};

/// What a pipeline run works on.
pub(super) struct Graph<'a> {
    pub manifest: &'a Manifest,
    pub plugins: &'a [Plugin],
    pub runtime: &'a Runtime,
    pub pipeline_id: &'a str,
    pub project_id: &'a str,
    pub jobs: usize,
}

/// One unit of work: stage `stage` whole, or its shard in `slot` (of its scenes).
struct Unit {
    stage: usize,
    slot: Option<usize>,
    reason: String,
}

/// Where one stage stands.
enum State {
    /// Some stage it runs after is not done yet.
    Waiting,
    /// Its units are queued or running.
    Running(Running),
    /// Done with (ran, skipped or not reached); whether it failed.
    Done(bool),
}

/// A stage whose units are queued or running.
struct Running {
    /// A per-scene stage's scenes, each with its outcome once known (a skipped shard's from the
    /// start); empty for a whole stage.
    shards: Vec<(Scene, Option<StageOutcome>, String)>,
    /// Units not finished yet.
    pending: usize,
    /// A per-scene stage's own bar (shards done of those run), from its first shard on.
    bar: Option<ProgressSink>,
    done: u64,
    total: u64,
    /// Why the stage failed, shard by shard.
    failed: Vec<String>,
}

/// Everything the workers share, used by one at a time.
struct Shared<'a, 'g> {
    home: &'a mut Home,
    observer: &'a mut dyn Observer,
    at: &'a mut Progress,
    graph: &'g Graph<'g>,
    states: Vec<State>,
    outcomes: Vec<Option<StageOutcome>>,
    queue: VecDeque<Unit>,
    /// Units being run now.
    busy: usize,
    error: Option<HomeError>,
}

/// Runs the graph; returns each stage's outcome in manifest order. `Err` if the host itself
/// failed (its database, say): no unit starts after that, and those running finish first.
pub(super) fn run(
    home: &mut Home,
    observer: &mut dyn Observer,
    at: &mut Progress,
    graph: &Graph<'_>,
) -> Result<Vec<StageOutcome>, HomeError> {
    let count = graph.manifest.stages.len();
    let shared = Mutex::new(Shared {
        home,
        observer,
        at,
        graph,
        states: (0..count).map(|_| State::Waiting).collect(),
        outcomes: (0..count).map(|_| None).collect(),
        queue: VecDeque::new(),
        busy: 0,
        error: None,
    });
    let wake = Condvar::new();
    lock(&shared).start_ready();
    let workers = graph.jobs.max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| work(&shared, &wake));
        }
    });
    let mut s = shared.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Some(e) = s.error.take() {
        return Err(e);
    }
    Ok(s.outcomes
        .into_iter()
        .map(|o| o.unwrap_or(StageOutcome::NotReached))
        .collect())
}

/// One worker: takes units off the queue until there are none left to come.
///
/// A unit that panics (a bug of the host: a guest's faults are its run's errors) does not take
/// the others down with it, nor leave them waiting for it: it is counted done, and its panic
/// becomes the pipeline's error, so no unit starts after it and the pipeline ends.
fn work(shared: &Mutex<Shared<'_, '_>>, wake: &Condvar) {
    loop {
        let unit = {
            let mut s = lock(shared);
            loop {
                if s.error.is_some() {
                    return;
                }
                if let Some(unit) = s.queue.pop_front() {
                    s.busy += 1;
                    break unit;
                }
                // Nothing queued, and nothing running that could queue more: all is done.
                if s.busy == 0 {
                    wake.notify_all();
                    return;
                }
                s = wake.wait(s).unwrap_or_else(|p| p.into_inner());
            }
        };
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(shared, &unit)));
        let mut s = lock(shared);
        match ran {
            Ok(Ok(())) => s.start_ready(),
            Ok(Err(e)) => {
                s.error.get_or_insert(e);
            }
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|m| (*m).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_owned());
                let mut unit_name = format!("stage {}", s.label(unit.stage));
                if let (Some(slot), State::Running(r)) = (unit.slot, &s.states[unit.stage]) {
                    unit_name.push_str(&format!(", scene {}", r.shards[slot].0.index));
                }
                s.error.get_or_insert(HomeError::Panicked {
                    unit: unit_name,
                    message: crate::text::cut(&message, 500),
                });
            }
        }
        s.busy -= 1;
        wake.notify_all();
    }

    /// Runs `unit`: records its start, calls its guest with nothing locked, commits.
    fn run(shared: &Mutex<Shared<'_, '_>>, unit: &Unit) -> Result<(), HomeError> {
        let mut s = lock(shared);
        let prepared = s.prepare(unit);
        let graph = s.graph;
        drop(s);
        let called = prepared.map(|prepared| {
            let plugin = &graph.plugins[unit.stage];
            prepared.call(|ctx, config, limits| graph.runtime.call(plugin, ctx, config, limits))
        });
        let mut s = lock(shared);
        let report = called.and_then(|called| runner::conclude(s.home, called))?;
        s.complete(unit, report)
    }
}

impl Shared<'_, '_> {
    /// Records the start of `unit`'s run and binds it to its stage (and scene).
    fn prepare(&mut self, unit: &Unit) -> Result<runner::Prepared, HomeError> {
        let i = unit.stage;
        let graph = self.graph;
        let spec = &graph.manifest.stages[i];
        let plugin = &graph.plugins[i];
        let (progress, scene) = match (unit.slot, &mut self.states[i]) {
            (Some(slot), State::Running(r)) => {
                let scene = r.shards[slot].0.clone();
                if r.bar.is_none() {
                    r.bar = Some(self.observer.started(i, &spec.name));
                }
                let progress = self.observer.shard_started(i, &spec.name, &scene);
                (progress, Some(scene.id))
            }
            _ => (self.observer.started(i, &spec.name), None),
        };
        let request = StageRequest {
            project_id: self.graph.project_id.to_owned(),
            config: spec.config.clone(),
            limits: spec.limits,
            progress,
            pipeline: Some((
                self.graph.pipeline_id.to_owned(),
                u32::try_from(i).unwrap_or(u32::MAX),
            )),
            scene,
            reason: Some(unit.reason.clone()),
        };
        runner::prepare(self.home, &plugin.name, &plugin.sha256, request)
    }

    /// Takes in the report of `unit`, and ends its stage if that was its last unit.
    fn complete(&mut self, unit: &Unit, report: StageReport) -> Result<(), HomeError> {
        let i = unit.stage;
        let graph = self.graph;
        let spec = &graph.manifest.stages[i];
        let why = not_done(self.home, self.graph.project_id, &report)?;
        let step = |scene: Option<(u32, String)>| db::Step {
            stage: spec.name.clone(),
            scene,
            ran: true,
            run: Some(report.run.id.clone()),
            reason: unit.reason.clone(),
        };
        let State::Running(r) = &mut self.states[i] else {
            return Ok(());
        };
        r.pending = r.pending.saturating_sub(1);
        match unit.slot {
            None => {
                self.at.plan.push(step(None));
                if let Some(why) = why {
                    r.failed.push(why);
                }
                self.outcomes[i] = Some(StageOutcome::Ran(report));
            }
            Some(slot) => {
                let scene = r.shards[slot].0.clone();
                if let Some(why) = why {
                    r.failed
                        .push(format!("the shard of scene {} {why}", scene.index));
                }
                self.observer.shard_finished(i, &spec.name, &scene, &report);
                r.done += 1;
                if let Some(bar) = &mut r.bar {
                    bar(&spec.name, r.done, r.total, "scenes");
                }
                r.shards[slot].1 = Some(StageOutcome::Ran(report));
            }
        }
        if r.pending == 0 {
            self.end_stage(i);
        }
        Ok(())
    }

    /// Ends a running stage whose units are all done: its outcome, plan steps and failure.
    fn end_stage(&mut self, i: usize) {
        let State::Running(r) = std::mem::replace(&mut self.states[i], State::Done(false)) else {
            return;
        };
        let graph = self.graph;
        let spec = &graph.manifest.stages[i];
        let fanned = spec.for_each.is_some();
        if fanned {
            let mut shards = Vec::with_capacity(r.shards.len());
            for (scene, outcome, reason) in r.shards {
                let outcome = outcome.unwrap_or(StageOutcome::NotReached);
                let (ran, run) = match &outcome {
                    StageOutcome::Ran(report) => (true, Some(report.run.id.clone())),
                    StageOutcome::Skipped { previous } => (false, Some(previous.id.clone())),
                    _ => (false, None),
                };
                self.at.plan.push(db::Step {
                    stage: spec.name.clone(),
                    scene: Some((scene.index, scene.id.clone())),
                    ran,
                    run,
                    reason,
                });
                shards.push(Shard { scene, outcome });
            }
            if shards.is_empty() {
                self.at.plan.push(db::Step {
                    stage: spec.name.clone(),
                    scene: None,
                    ran: false,
                    run: None,
                    reason: "the project has no scenes".into(),
                });
            }
            let ran = shards
                .iter()
                .any(|s| matches!(s.outcome, StageOutcome::Ran(_)));
            if ran {
                self.at.ran += 1;
            } else {
                self.at.skipped += 1;
            }
            if !r.failed.is_empty() {
                let shown = r.failed.len().min(3);
                let more = match r.failed.len() - shown {
                    0 => String::new(),
                    n => format!(", and {n} more"),
                };
                self.fail(format!(
                    "stage {}: {} of {} shards failed: {}{more}",
                    self.label(i),
                    r.failed.len(),
                    shards.len(),
                    r.failed[..shown].join("; ")
                ));
            }
            self.outcomes[i] = Some(StageOutcome::Fanned(shards));
        } else {
            self.at.ran += 1;
            if let Some(why) = r.failed.first() {
                self.fail(format!("stage {} {why}", self.label(i)));
            }
        }
        self.states[i] = State::Done(!r.failed.is_empty());
        if let Some(outcome) = &self.outcomes[i] {
            self.observer.finished(i, &spec.name, outcome);
        }
    }

    /// Notes why the pipeline failed (the first reason leads; the others follow it).
    fn fail(&mut self, reason: String) {
        match &mut self.at.failure {
            Some(first) => {
                first.push_str("; ");
                first.push_str(&reason);
            }
            None => self.at.failure = Some(reason),
        }
    }

    /// `NAME (I of N)`.
    fn label(&self, i: usize) -> String {
        let stages = &self.graph.manifest.stages;
        format!("{} ({} of {})", stages[i].name, i + 1, stages.len())
    }

    /// Starts every waiting stage whose inputs are all done: decides it, and queues what must
    /// run (or ends it at once: skipped, or not reached). Repeats until nothing more starts.
    fn start_ready(&mut self) {
        if self.error.is_some() {
            return;
        }
        loop {
            let ready = (0..self.states.len()).find(|&i| {
                matches!(self.states[i], State::Waiting)
                    && self.graph.manifest.stages[i]
                        .after
                        .iter()
                        .all(|&j| matches!(self.states[j], State::Done(_)))
            });
            let Some(i) = ready else { return };
            if let Err(e) = self.start(i) {
                self.error = Some(e);
                return;
            }
        }
    }

    /// Starts stage `i`, whose inputs are all done.
    fn start(&mut self, i: usize) -> Result<(), HomeError> {
        let graph = self.graph;
        let spec = &graph.manifest.stages[i];
        let plugin = &graph.plugins[i];
        let failed_input = spec
            .after
            .iter()
            .find(|&&j| matches!(self.states[j], State::Done(true)));
        if let Some(&j) = failed_input {
            self.end_unreached(i, j);
            return Ok(());
        }
        let project = graph.project_id;
        if spec.for_each.is_none() {
            let previous = db::latest_run_of_stage(self.home.conn(), project, &spec.name)?;
            match decide(self.home, project, spec, plugin, self.at.force, previous)? {
                Decision::Reuse(previous) => {
                    let previous = *previous;
                    tracing::info!(stage = %spec.name, run = %previous.id, "skipped: done by an earlier run");
                    self.at.skipped += 1;
                    self.at.plan.push(db::Step {
                        stage: spec.name.clone(),
                        scene: None,
                        ran: false,
                        run: Some(previous.id.clone()),
                        reason: super::unchanged(&previous),
                    });
                    let outcome = StageOutcome::Skipped { previous };
                    self.observer.finished(i, &spec.name, &outcome);
                    self.outcomes[i] = Some(outcome);
                    self.states[i] = State::Done(false);
                }
                Decision::Run(reason) => {
                    self.states[i] = State::Running(Running {
                        shards: Vec::new(),
                        pending: 1,
                        bar: None,
                        done: 0,
                        total: 1,
                        failed: Vec::new(),
                    });
                    self.queue.push_back(Unit {
                        stage: i,
                        slot: None,
                        reason,
                    });
                }
            }
            return Ok(());
        }
        let scenes = db::list_scenes(self.home.conn(), project)?;
        let mut shards = Vec::with_capacity(scenes.len());
        let mut units = Vec::new();
        for (slot, scene) in scenes.into_iter().enumerate() {
            let previous =
                db::latest_run_of_shard(self.home.conn(), project, &spec.name, &scene.id)?;
            match decide(self.home, project, spec, plugin, self.at.force, previous)? {
                Decision::Reuse(previous) => {
                    let reason = super::unchanged(&previous);
                    let outcome = StageOutcome::Skipped {
                        previous: *previous,
                    };
                    shards.push((scene, Some(outcome), reason));
                }
                Decision::Run(reason) => {
                    units.push(Unit {
                        stage: i,
                        slot: Some(slot),
                        reason: reason.clone(),
                    });
                    shards.push((scene, None, reason));
                }
            }
        }
        let pending = units.len();
        self.states[i] = State::Running(Running {
            shards,
            pending,
            bar: None,
            done: 0,
            total: pending as u64,
            failed: Vec::new(),
        });
        if pending == 0 {
            self.end_stage(i);
        } else {
            self.queue.extend(units);
        }
        Ok(())
    }

    /// Ends stage `i` as not reached: stage `failed`, which it runs after, failed (or was not
    /// reached itself). The plan says so, so that `runs show` lists every stage.
    fn end_unreached(&mut self, i: usize, failed: usize) {
        let graph = self.graph;
        let spec = &graph.manifest.stages[i];
        self.at.plan.push(db::Step {
            stage: spec.name.clone(),
            scene: None,
            ran: false,
            run: None,
            reason: format!(
                "not reached: {}, which it runs after, did not succeed",
                graph.manifest.stages[failed].name
            ),
        });
        self.observer
            .finished(i, &spec.name, &StageOutcome::NotReached);
        self.outcomes[i] = Some(StageOutcome::NotReached);
        // Not reached counts as failed for the stages after it.
        self.states[i] = State::Done(true);
    }
}

/// Locks `m`, even if a thread panicked holding it (what it guards stays usable: each holder
/// leaves it whole between statements).
fn lock<'m, T>(m: &'m Mutex<T>) -> MutexGuard<'m, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
