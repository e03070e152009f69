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
//! twice. Once an input fails, no more shards start; those that ran stay committed.
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

/// One scene's shard of a running per-scene stage.
struct Slot {
    scene: Scene,
    /// Its outcome once known: skipped when decided so, ran when its run ended.
    outcome: Option<StageOutcome>,
    /// Why it ran or was skipped (or was not reached).
    reason: String,
    /// Not decided yet: the same scene's shard of a per-scene stage it runs after has not
    /// ended (see "Scene by scene" in the module docs).
    gated: bool,
    /// Decided while a stage it runs after was still running: checked again when they are
    /// all done, and run (again) if what it read changed.
    early: bool,
    /// Its run failed.
    failed: bool,
}

/// A stage whose units are queued or running.
struct Running {
    /// A per-scene stage's shards, in scene order; empty for a whole stage.
    shards: Vec<Slot>,
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
                    unit_name.push_str(&format!(", scene {}", r.shards[slot].scene.index));
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
                let scene = r.shards[slot].scene.clone();
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
                let scene = r.shards[slot].scene.clone();
                self.observer.shard_finished(i, &spec.name, &scene, &report);
                r.done += 1;
                if let Some(bar) = &mut r.bar {
                    bar(&spec.name, r.done, r.total, "scenes");
                }
                let shard = &mut r.shards[slot];
                shard.failed = why.is_some();
                if let Some(why) = why {
                    shard.reason = format!("the shard of scene {} {why}", scene.index);
                }
                shard.outcome = Some(StageOutcome::Ran(report));
                // Its stage ends in `advance`, once the stages it runs after are done too.
                return Ok(());
            }
        }
        if r.pending == 0 {
            self.end_stage(i, None);
        }
        Ok(())
    }

    /// Whether stage `j`'s work for `scene` has ended: `Some(true)` if it succeeded (ran or
    /// was skipped), `Some(false)` if it failed or was not reached, `None` while it may still
    /// change. A whole stage ends once done; a per-scene stage shard by shard (a shard that
    /// failed after starting early may still run again, so it has not ended).
    fn ended_for(&self, j: usize, scene: &str) -> Option<bool> {
        match &self.states[j] {
            State::Waiting => None,
            State::Done(failed) => match &self.outcomes[j] {
                Some(StageOutcome::Fanned(shards)) => {
                    Some(shards.iter().find(|s| s.scene.id == scene).is_none_or(
                        |s| match &s.outcome {
                            StageOutcome::Skipped { .. } => true,
                            StageOutcome::Ran(report) => report.succeeded(),
                            _ => false,
                        },
                    ))
                }
                _ => Some(!failed),
            },
            State::Running(r) => {
                let slot = r.shards.iter().find(|s| s.scene.id == scene)?;
                match &slot.outcome {
                    Some(StageOutcome::NotReached) => Some(false),
                    Some(_) if slot.failed && slot.early => None,
                    Some(_) => Some(!slot.failed),
                    None => None,
                }
            }
        }
    }

    /// The first stage `i` runs after that has failed for good: done and failed, or with a
    /// shard that failed (not after starting early) or was not reached. Once there is one,
    /// no more of `i`'s shards start.
    fn failed_input(&self, i: usize) -> Option<usize> {
        self.graph.manifest.stages[i]
            .after
            .iter()
            .copied()
            .find(|&j| match &self.states[j] {
                State::Done(failed) => *failed,
                State::Running(r) => r.shards.iter().any(|s| {
                    (s.failed && !s.early) || matches!(s.outcome, Some(StageOutcome::NotReached))
                }),
                State::Waiting => false,
            })
    }

    /// Moves running per-scene stage `i` on: decides the shards whose inputs have ended (or
    /// leaves them not reached if an input failed), and once nothing of it runs and the stages
    /// it runs after are all done, checks again the shards decided early and ends it. Returns
    /// whether anything changed.
    fn advance(&mut self, i: usize) -> Result<bool, HomeError> {
        let graph = self.graph;
        let spec = &graph.manifest.stages[i];
        let plugin = &graph.plugins[i];
        let project = graph.project_id;
        let State::Running(r) = &self.states[i] else {
            return Ok(false);
        };
        if spec.for_each.is_none() {
            return Ok(false);
        }
        let inputs_done = spec
            .after
            .iter()
            .all(|&j| matches!(self.states[j], State::Done(_)));
        let mut changed = false;
        // Decide every gated shard whose inputs ended; none once an input failed.
        let failed_input = self.failed_input(i);
        let gated: Vec<(usize, String)> = r
            .shards
            .iter()
            .enumerate()
            .filter(|(_, s)| s.gated)
            .map(|(slot, s)| (slot, s.scene.id.clone()))
            .collect();
        for (slot, scene) in gated {
            if let Some(j) = failed_input {
                let reason = format!(
                    "not reached: {}, which it runs after, did not succeed",
                    graph.manifest.stages[j].name
                );
                if let State::Running(r) = &mut self.states[i] {
                    let shard = &mut r.shards[slot];
                    shard.gated = false;
                    shard.reason = reason;
                    shard.outcome = Some(StageOutcome::NotReached);
                    r.total = r.total.saturating_sub(1);
                }
                changed = true;
                continue;
            }
            let ended = spec
                .after
                .iter()
                .all(|&j| self.ended_for(j, &scene).is_some());
            if !ended {
                continue;
            }
            let previous = db::latest_run_of_shard(self.home.conn(), project, &spec.name, &scene)?;
            let decision = decide(self.home, project, spec, plugin, self.at.force, previous)?;
            let State::Running(r) = &mut self.states[i] else {
                return Ok(changed);
            };
            let shard = &mut r.shards[slot];
            shard.gated = false;
            shard.early = !inputs_done;
            match decision {
                Decision::Reuse(previous) => {
                    shard.reason = super::unchanged(&previous);
                    shard.outcome = Some(StageOutcome::Skipped {
                        previous: *previous,
                    });
                    r.total = r.total.saturating_sub(1);
                }
                Decision::Run(reason) => {
                    shard.reason = reason.clone();
                    r.pending += 1;
                    self.queue.push_back(Unit {
                        stage: i,
                        slot: Some(slot),
                        reason,
                    });
                }
            }
            changed = true;
        }
        let State::Running(r) = &self.states[i] else {
            return Ok(changed);
        };
        if r.pending > 0 || !inputs_done || r.shards.iter().any(|s| s.gated) {
            return Ok(changed);
        }
        // Everything it runs after is done, and so is everything of it that ran: a shard
        // decided early runs (again) if what it read has changed since.
        let early: Vec<(usize, String)> = r
            .shards
            .iter()
            .enumerate()
            .filter(|(_, s)| s.early)
            .map(|(slot, s)| (slot, s.scene.id.clone()))
            .collect();
        let mut again = 0;
        for (slot, scene) in early {
            let previous = db::latest_run_of_shard(self.home.conn(), project, &spec.name, &scene)?;
            let decision = decide(self.home, project, spec, plugin, false, previous)?;
            let State::Running(r) = &mut self.states[i] else {
                return Ok(true);
            };
            let shard = &mut r.shards[slot];
            shard.early = false;
            if let Decision::Run(reason) = decision {
                let reason = format!("{reason} (it had run before its inputs were all done)");
                // Not ended again until it has run again: the shards after it wait.
                (shard.reason, shard.failed, shard.outcome) = (reason.clone(), false, None);
                r.pending += 1;
                r.total += 1;
                again += 1;
                self.queue.push_back(Unit {
                    stage: i,
                    slot: Some(slot),
                    reason,
                });
            }
        }
        if again == 0 {
            self.end_stage(i, self.failed_input(i));
        }
        Ok(true)
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
        let fanned = spec.for_each.is_some();
        if fanned {
            let mut shards = Vec::with_capacity(r.shards.len());
            let mut failed = Vec::new();
            for Slot {
                scene,
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
            self.states[i] = State::Done(!failed.is_empty() || failed_input.is_some());
        } else {
            self.at.ran += 1;
            if let Some(why) = r.failed.first() {
                self.fail(format!("stage {} {why}", self.label(i)));
            }
            self.states[i] = State::Done(!r.failed.is_empty());
        }
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
    /// per-scene stage — each is done or a per-scene stage running without a failed shard, so
    /// that its shards can follow theirs scene by scene.
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
                        && !r.shards.iter().any(|s| s.failed)
                }
                State::Waiting => false,
            })
    }

    /// Starts stage `i`, whose inputs are all done.
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
        // Each shard is decided in `advance`, once its inputs for its scene have ended.
        let scenes = db::list_scenes(self.home.conn(), project)?;
        let total = scenes.len() as u64;
        let shards = scenes
            .into_iter()
            .map(|scene| Slot {
                scene,
                outcome: None,
                reason: String::new(),
                gated: true,
                early: false,
                failed: false,
            })
            .collect();
        self.states[i] = State::Running(Running {
            shards,
            pending: 0,
            bar: None,
            done: 0,
            total,
            failed: Vec::new(),
        });
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
