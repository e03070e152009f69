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
//! # Scene by scene
//!
//! A per-scene stage after per-scene stages does not wait for them to end: its shard of a scene
//! is decided, and runs, as soon as their shards of that scene have ended (the demo's clip of
//! scene 0 is drawn while scene 4's keyframes still are), so that no worker idles at the end of
//! a stage. This is Dagster's identity partition mapping, without its assumption: a shard may
//! read other scenes too, which may still be changing. So a shard decided before its stage's
//! inputs were all done is *early*; once they are, each early shard's recorded reads are checked
//! against the settled state on the host side, as a later pipeline would, and it runs again if
//! anything it read changed (or it failed, or what it read was not recorded). The end state is
//! the one waiting would give; the demo's shards read only their own scene, so nothing runs
//! twice. A shard that runs again first sends the shards of its scene queued in the stages
//! right after it back to wait for it, and waits for the others of its scene queued or running
//! further down to end (they are checked again in turn), so that it never runs beside a run
//! that read its earlier work. Once an input fails, no more shards start (those queued
//! are not reached, early ones are not checked again: the next pipeline run decides them);
//! those that ran stay committed. The per-scene bookkeeping is in [`shards`].
//!
//! The guests of running units run at the same time, each on its worker's thread (every thread
//! drives its own guest through the runtime's executor: see `Runtime::call`). Deciding, recording
//! a unit's start and committing its work need the [`Home`], and happen one at a time under a
//! mutex: each is short (one transaction, or a few reads), and SQLite takes one writer at a time
//! anyway, so the guests, where the time goes, never wait for each other.
//!
//! [`StageSession::set_scope`]: crate::db::stage::StageSession::set_scope

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};

use super::{Decision, Manifest, Observer, Progress, Shard, StageOutcome, decide, not_done};
use crate::db;
use crate::home::{Home, HomeError};
use crate::runner::{self, StageReport, StageRequest};
use crate::runtime::{Plugin, Runtime};

mod shards;

use shards::{Phase, Running, Slot};

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
    Running(Box<Running>),
    /// Done with (ran, skipped or not reached); whether it failed.
    Done(bool),
}

/// Everything the workers share, used by one at a time.
struct Shared<'a, 'g> {
    home: &'a mut Home,
    observer: &'a mut dyn Observer,
    at: &'a mut Progress,
    graph: &'g Graph<'g>,
    states: Vec<State>,
    outcomes: Vec<Option<StageOutcome>>,
    /// The stages that run after each.
    dependents: Vec<Vec<usize>>,
    /// For each per-scene stage that is done: whether its work for each scene succeeded.
    ended: Vec<Option<HashMap<String, bool>>>,
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
    let mut dependents = vec![Vec::new(); count];
    for (i, stage) in graph.manifest.stages.iter().enumerate() {
        for &j in &stage.after {
            dependents[j].push(i);
        }
    }
    let shared = Mutex::new(Shared {
        home,
        observer,
        at,
        graph,
        states: (0..count).map(|_| State::Waiting).collect(),
        outcomes: (0..count).map(|_| None).collect(),
        dependents,
        ended: (0..count).map(|_| None).collect(),
        queue: VecDeque::new(),
        busy: 0,
        error: None,
    });
    let wake = Condvar::new();
    lock(&shared).start_ready_guarded("the pipeline's start");
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
    // Every stage ends (ran, skipped or not reached) once nothing is queued or running; one
    // that did not is a bug of the scheduler, never to be passed off as success.
    if let Some(i) = (0..count).find(|&i| !matches!(s.states[i], State::Done(_))) {
        return Err(HomeError::Panicked {
            unit: "the pipeline's scheduler".into(),
            message: format!("stage {} never ended", s.label(i)),
        });
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
/// becomes the pipeline's error, so no unit starts after it and the pipeline ends. So does a
/// panic while deciding what runs next.
fn work(shared: &Mutex<Shared<'_, '_>>, wake: &Condvar) {
    loop {
        let (unit, unit_name) = {
            let mut s = lock(shared);
            loop {
                if s.error.is_some() {
                    wake.notify_all();
                    return;
                }
                if let Some(unit) = s.queue.pop_front() {
                    s.busy += 1;
                    s.taken(&unit);
                    // Named now: by the time it ends, its stage may have ended with it.
                    let name = s.unit_name(&unit);
                    break (unit, name);
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
            Ok(Ok(())) => s.start_ready_guarded(&format!("the end of {unit_name}")),
            Ok(Err(e)) => {
                s.error.get_or_insert(e);
            }
            Err(panic) => {
                s.error.get_or_insert(HomeError::Panicked {
                    unit: unit_name,
                    message: panic_message(panic.as_ref()),
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

/// `scene 3`, or `scene 3 part 2/2` for a stage cut into parts.
fn shard_label(slot: &Slot) -> String {
    match slot.part {
        Some(part) => format!("scene {} {part}", slot.scene.index),
        None => format!("scene {}", slot.scene.index),
    }
}

/// What a panic said, cut to a length.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let message = panic
        .downcast_ref::<&str>()
        .map(|m| (*m).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned());
    crate::text::cut(&message, 500)
}

impl Shared<'_, '_> {
    /// Records the start of `unit`'s run and binds it to its stage (and scene).
    fn prepare(&mut self, unit: &Unit) -> Result<runner::Prepared, HomeError> {
        let i = unit.stage;
        let graph = self.graph;
        let spec = &graph.manifest.stages[i];
        let plugin = &graph.plugins[i];
        let (progress, scene, part) = match (unit.slot, &mut self.states[i]) {
            (Some(slot), State::Running(r)) => {
                let (scene, part) = (r.shards[slot].scene.clone(), r.shards[slot].part);
                if r.bar.is_none() {
                    r.bar = Some(self.observer.started(i, &spec.name));
                }
                let progress = self.observer.shard_started(i, &spec.name, &scene, part);
                (progress, Some(scene.id), part)
            }
            _ => (self.observer.started(i, &spec.name), None, None),
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
            part,
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
        let State::Running(r) = &mut self.states[i] else {
            return Ok(());
        };
        r.pending = r.pending.saturating_sub(1);
        let Some(slot) = unit.slot else {
            self.at.plan.push(db::Step {
                stage: spec.name.clone(),
                scene: None,
                part: None,
                ran: true,
                run: Some(report.run.id.clone()),
                reason: unit.reason.clone(),
            });
            if let Some(why) = why {
                r.failed.push(why);
            }
            self.outcomes[i] = Some(StageOutcome::Ran(report));
            self.end_stage(i, None);
            return Ok(());
        };
        let (scene, part) = (r.shards[slot].scene.clone(), r.shards[slot].part);
        self.observer
            .shard_finished(i, &spec.name, &scene, part, &report);
        r.done += 1;
        if let Some(bar) = &mut r.bar {
            let unit = if spec.parts > 1 { "parts" } else { "scenes" };
            bar(&spec.name, r.done, r.total, unit);
        }
        let label = shard_label(&r.shards[slot]);
        let shard = &mut r.shards[slot];
        shard.phase = Phase::Ended;
        shard.failed = why.is_some();
        if shard.failed && !shard.early {
            r.hard_failed += 1;
        }
        if let Some(why) = why {
            shard.reason = format!("the shard of {label} {why}");
        }
        shard.outcome = Some(StageOutcome::Ran(report));
        // Its stage ends in `advance`, once the stages it runs after are done too.
        self.scene_ended(i, &scene.id);
        Ok(())
    }

    /// Stage `i` is done: stage `i` ends as `failed`, and every gated shard of the stages
    /// after it is looked at again.
    fn set_done(&mut self, i: usize, failed: bool) {
        self.states[i] = State::Done(failed);
        for k in 0..self.dependents[i].len() {
            if let State::Running(r) = &mut self.states[self.dependents[i][k]] {
                r.all_dirty = true;
            }
        }
    }

    /// Ends a running stage whose units are all done: its outcome, plan steps and failure.
    /// `failed_input`: a stage it runs after that did not succeed, so that some of its shards
    /// were not reached; it counts as failed for the stages after it.
    fn end_stage(&mut self, i: usize, failed_input: Option<usize>) {
        if let (Some(j), State::Running(r)) = (failed_input, &self.states[i]) {
            let none_ran = r
                .shards
                .iter()
                .all(|s| matches!(s.outcome, None | Some(StageOutcome::NotReached)));
            if none_ran {
                return self.end_unreached(i, j);
            }
        }
        let State::Running(r) = std::mem::replace(&mut self.states[i], State::Done(false)) else {
            return;
        };
        let graph = self.graph;
        let spec = &graph.manifest.stages[i];
        let failed = if spec.for_each.is_some() {
            let mut shards = Vec::with_capacity(r.shards.len());
            let mut ended = HashMap::with_capacity(r.shards.len());
            let mut failed = Vec::new();
            for Slot {
                scene,
                part,
                outcome,
                reason,
                failed: shard_failed,
                ..
            } in r.shards
            {
                if shard_failed {
                    failed.push(reason.clone());
                }
                let outcome = outcome.unwrap_or(StageOutcome::NotReached);
                let (ran, run) = match &outcome {
                    StageOutcome::Ran(report) => (true, Some(report.run.id.clone())),
                    StageOutcome::Skipped { previous } => (false, Some(previous.id.clone())),
                    _ => (false, None),
                };
                let ok = !shard_failed && !matches!(outcome, StageOutcome::NotReached);
                // A scene's work succeeded if every part of it did.
                *ended.entry(scene.id.clone()).or_insert(true) &= ok;
                self.at.plan.push(db::Step {
                    stage: spec.name.clone(),
                    scene: Some((scene.index, scene.id.clone())),
                    part,
                    ran,
                    run,
                    reason,
                });
                shards.push(Shard {
                    scene,
                    part,
                    outcome,
                    failed: shard_failed,
                });
            }
            if shards.is_empty() {
                self.at.plan.push(db::Step {
                    stage: spec.name.clone(),
                    scene: None,
                    part: None,
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
            if !failed.is_empty() {
                let shown = failed.len().min(3);
                let more = match failed.len() - shown {
                    0 => String::new(),
                    n => format!(", and {n} more"),
                };
                self.fail(format!(
                    "stage {}: {} of {} shards failed: {}{more}",
                    self.label(i),
                    failed.len(),
                    shards.len(),
                    failed[..shown].join("; ")
                ));
            }
            self.outcomes[i] = Some(StageOutcome::Fanned(shards));
            self.ended[i] = Some(ended);
            !failed.is_empty() || failed_input.is_some()
        } else {
            self.at.ran += 1;
            if let Some(why) = r.failed.first() {
                self.fail(format!("stage {} {why}", self.label(i)));
            }
            !r.failed.is_empty()
        };
        self.set_done(i, failed);
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

    /// `stage NAME (I of N)`, and for a shard `, scene 3 part 2/2`.
    fn unit_name(&self, unit: &Unit) -> String {
        let mut name = format!("stage {}", self.label(unit.stage));
        if let (Some(slot), State::Running(r)) = (unit.slot, &self.states[unit.stage]) {
            name.push_str(&format!(", {}", shard_label(&r.shards[slot])));
        }
        name
    }

    /// `NAME (I of N)`.
    fn label(&self, i: usize) -> String {
        let stages = &self.graph.manifest.stages;
        format!("{} ({} of {})", stages[i].name, i + 1, stages.len())
    }

    /// [`start_ready`](Self::start_ready), with a panic (a bug of the host) turned into the
    /// pipeline's error, so that the workers waiting for more units end instead of hanging.
    fn start_ready_guarded(&mut self, after: &str) {
        let decided = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.start_ready()));
        if let Err(panic) = decided {
            self.error.get_or_insert(HomeError::Panicked {
                unit: format!("the pipeline's scheduler after {after}"),
                message: panic_message(panic.as_ref()),
            });
        }
    }

    /// Starts every waiting stage whose inputs are all done (or, for a per-scene stage, that
    /// can follow them scene by scene), and moves every running per-scene stage on, until
    /// nothing more changes.
    fn start_ready(&mut self) {
        if self.error.is_some() {
            return;
        }
        loop {
            let mut changed = false;
            for i in 0..self.states.len() {
                match self.advance(i) {
                    Ok(c) => changed |= c,
                    Err(e) => {
                        self.error = Some(e);
                        return;
                    }
                }
            }
            if let Some(i) = (0..self.states.len()).find(|&i| self.startable(i)) {
                if let Err(e) = self.start(i) {
                    self.error = Some(e);
                    return;
                }
                changed = true;
            }
            if !changed {
                return;
            }
        }
    }

    /// Whether waiting stage `i` can start: every stage it runs after is done, or — for a
    /// per-scene stage — each is done or a per-scene stage running with no shard failed for
    /// good, so that its shards can follow theirs scene by scene.
    fn startable(&self, i: usize) -> bool {
        if !matches!(self.states[i], State::Waiting) {
            return false;
        }
        let spec = &self.graph.manifest.stages[i];
        let done = |j: &usize| matches!(self.states[*j], State::Done(_));
        if spec.after.iter().all(done) {
            return true;
        }
        spec.for_each.is_some()
            && spec.after.iter().all(|&j| match &self.states[j] {
                State::Done(failed) => !failed,
                State::Running(r) => {
                    self.graph.manifest.stages[j].for_each.is_some()
                        && r.hard_failed == 0
                        && !r.stopped
                }
                State::Waiting => false,
            })
    }

    /// Starts stage `i`, whose inputs are all done (or can be followed scene by scene).
    fn start(&mut self, i: usize) -> Result<(), HomeError> {
        let graph = self.graph;
        let spec = &graph.manifest.stages[i];
        let plugin = &graph.plugins[i];
        let all_done = spec
            .after
            .iter()
            .all(|&j| matches!(self.states[j], State::Done(_)));
        let failed_input = spec
            .after
            .iter()
            .find(|&&j| matches!(self.states[j], State::Done(true)));
        if let (true, Some(&j)) = (all_done, failed_input) {
            self.end_unreached(i, j);
            return Ok(());
        }
        let project = graph.project_id;
        if spec.for_each.is_some() {
            // Each shard is decided in `advance`, once its inputs for its scene have ended.
            let scenes = db::list_scenes(self.home.conn(), project)?;
            self.states[i] = State::Running(Box::new(Running::of(scenes, spec.parts)));
            return Ok(());
        }
        let previous = db::latest_run_of_stage(self.home.conn(), project, &spec.name)?;
        match decide(self.home, project, spec, plugin, self.at.force, previous)? {
            Decision::Reuse(previous) => {
                let previous = *previous;
                tracing::info!(stage = %spec.name, run = %previous.id, "skipped: done by an earlier run");
                self.at.skipped += 1;
                self.at.plan.push(db::Step {
                    stage: spec.name.clone(),
                    scene: None,
                    part: None,
                    ran: false,
                    run: Some(previous.id.clone()),
                    reason: super::unchanged(&previous),
                });
                let outcome = StageOutcome::Skipped { previous };
                self.observer.finished(i, &spec.name, &outcome);
                self.outcomes[i] = Some(outcome);
                self.set_done(i, false);
            }
            Decision::Run(reason) => {
                let mut running = Running::whole();
                running.pending = 1;
                running.total = 1;
                self.states[i] = State::Running(Box::new(running));
                self.queue.push_back(Unit {
                    stage: i,
                    slot: None,
                    reason,
                });
            }
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
            part: None,
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
        self.set_done(i, true);
    }
}

/// Locks `m`, even if a thread panicked holding it (what it guards stays usable: each holder
/// leaves it whole between statements).
fn lock<'m, T>(m: &'m Mutex<T>) -> MutexGuard<'m, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
