//! The shards of a running per-scene stage, scene by scene: when each is decided, when one
//! runs again, and when the stage ends (see "Scene by scene" in the parent module's docs).
//!
//! Each shard that ends marks the same scene's gated shards of the stages after it to be looked
//! at again, so that deciding costs the same whatever the number of scenes; a stage that ends or
//! starts has all its dependents' gated shards looked at.

use std::collections::HashMap;

use super::{Shared, State, Unit};
use crate::capabilities::ProgressSink;
use crate::db::{self, Part, Scene};
use crate::home::HomeError;
use crate::pipeline::{Decision, StageOutcome, decide};

/// Where one shard of a running per-scene stage stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Phase {
    /// Not decided yet: the same scene's shard of a per-scene stage it runs after has not
    /// ended.
    Gated,
    /// Decided to run, and in the queue.
    Queued,
    /// Its run is under way.
    Running,
    /// To run again (what it read changed), once no shard of its scene in a stage after it is
    /// queued or running: a rerun never overlaps a run of its scene that read its earlier work.
    Reopening,
    /// Skipped, ran, or not reached: see its outcome.
    Ended,
}

/// One scene's shard (or, for a stage cut into parts, one part of a scene's work) of a
/// running per-scene stage.
pub(super) struct Slot {
    pub(super) scene: Scene,
    /// Its part of the scene's work, if the stage is cut into parts.
    pub(super) part: Option<Part>,
    pub(super) phase: Phase,
    /// Its outcome once ended: skipped when decided so, ran when its run ended.
    pub(super) outcome: Option<StageOutcome>,
    /// Why it ran or was skipped (or was not reached).
    pub(super) reason: String,
    /// Decided while a stage it runs after was still running: checked again when they are
    /// all done, and run (again) if what it read changed.
    pub(super) early: bool,
    /// Its run failed.
    pub(super) failed: bool,
}

/// A stage whose units are queued or running.
pub(super) struct Running {
    /// A per-scene stage's shards, in scene order (then part order); empty for a whole stage.
    pub(super) shards: Vec<Slot>,
    /// The slots of each scene's shards (one, or one per part), by its id.
    pub(super) by_scene: HashMap<String, Vec<usize>>,
    /// Gated shards whose inputs for their scene may have ended since last looked at (all of
    /// them if `all_dirty`): each shard that ends points its dependents' shards of its scene
    /// here, so that deciding costs the same whatever the number of scenes.
    pub(super) dirty: Vec<usize>,
    pub(super) all_dirty: bool,
    /// Shards in [`Phase::Gated`].
    pub(super) gated: usize,
    /// Shards failed for good (not after starting early) or not reached: the stages after it
    /// start no more shards.
    pub(super) hard_failed: usize,
    /// An input failed: nothing more of it starts.
    pub(super) stopped: bool,
    /// Shards in [`Phase::Reopening`].
    pub(super) reopening: Vec<usize>,
    /// Its early shards have been checked against its settled inputs.
    pub(super) rechecked: bool,
    /// Units queued, running or reopening.
    pub(super) pending: usize,
    /// A per-scene stage's own bar (shards done of those run), from its first shard on.
    pub(super) bar: Option<ProgressSink>,
    pub(super) done: u64,
    pub(super) total: u64,
    /// Why the stage failed, shard by shard.
    pub(super) failed: Vec<String>,
}

impl Running {
    pub(super) fn whole() -> Running {
        Running::of(Vec::new(), 1)
    }

    /// A per-scene stage's, every shard gated: one per scene, or `parts` per scene.
    pub(super) fn of(scenes: Vec<Scene>, parts: u32) -> Running {
        let parts = parts.max(1);
        let mut by_scene: HashMap<String, Vec<usize>> = HashMap::with_capacity(scenes.len());
        let mut shards = Vec::with_capacity(scenes.len() * parts as usize);
        for scene in scenes {
            for index in 0..parts {
                by_scene
                    .entry(scene.id.clone())
                    .or_default()
                    .push(shards.len());
                shards.push(Slot {
                    scene: scene.clone(),
                    part: (parts > 1).then_some(Part {
                        index,
                        count: parts,
                    }),
                    phase: Phase::Gated,
                    outcome: None,
                    reason: String::new(),
                    early: false,
                    failed: false,
                });
            }
        }
        Running {
            gated: shards.len(),
            total: shards.len() as u64,
            shards,
            by_scene,
            dirty: Vec::new(),
            all_dirty: true,
            hard_failed: 0,
            stopped: false,
            reopening: Vec::new(),
            rechecked: false,
            pending: 0,
            bar: None,
            done: 0,
            failed: Vec::new(),
        }
    }
}

impl Shared<'_, '_> {
    /// Stage `i`'s shard of `scene` has ended: the same scene's gated shards of the stages
    /// after it are looked at again.
    pub(super) fn scene_ended(&mut self, i: usize, scene: &str) {
        for k in 0..self.dependents[i].len() {
            let d = self.dependents[i][k];
            if let State::Running(r) = &mut self.states[d]
                && let Some(slots) = r.by_scene.get(scene)
            {
                for &slot in slots {
                    if r.shards[slot].phase == Phase::Gated {
                        r.dirty.push(slot);
                    }
                }
            }
        }
    }

    /// Whether stage `j`'s work for `scene` has ended: `Some(true)` if it succeeded (ran or
    /// was skipped), `Some(false)` if it failed or was not reached, `None` while it may still
    /// change. A whole stage ends once done; a per-scene stage shard by shard (a shard that
    /// failed after starting early may still run again, so it has not ended). A scene's work
    /// cut into parts has ended once every part's has, and succeeded if every part did.
    fn ended_for(&self, j: usize, scene: &str) -> Option<bool> {
        match &self.states[j] {
            State::Waiting => None,
            // A scene the stage did not know of (made after it started) is no work of it.
            State::Done(failed) => match &self.ended[j] {
                Some(by_scene) => Some(by_scene.get(scene).copied().unwrap_or(true)),
                None => Some(!failed),
            },
            State::Running(r) => {
                let mut ok = true;
                for &slot in r.by_scene.get(scene)? {
                    let slot = &r.shards[slot];
                    match (slot.phase, &slot.outcome) {
                        (Phase::Ended, Some(StageOutcome::NotReached)) => return Some(false),
                        (Phase::Ended, _) if slot.failed && slot.early => return None,
                        (Phase::Ended, _) => ok &= !slot.failed,
                        _ => return None,
                    }
                }
                Some(ok)
            }
        }
    }

    /// The first stage `i` runs after that has failed for good: done and failed, stopped, or
    /// with a shard that failed (not after starting early) or was not reached. Once there is
    /// one, no more of `i`'s shards start.
    fn failed_input(&self, i: usize) -> Option<usize> {
        self.graph.manifest.stages[i]
            .after
            .iter()
            .copied()
            .find(|&j| match &self.states[j] {
                State::Done(failed) => *failed,
                State::Running(r) => r.hard_failed > 0 || r.stopped,
                State::Waiting => false,
            })
    }

    /// Moves running per-scene stage `i` on: decides the shards whose inputs have ended (or,
    /// once an input failed, starts none of those not started), and once nothing of it runs
    /// and the stages it runs after are all done, checks again the shards decided early and
    /// ends it. Returns whether anything changed.
    pub(super) fn advance(&mut self, i: usize) -> Result<bool, HomeError> {
        let spec = &self.graph.manifest.stages[i];
        let State::Running(r) = &self.states[i] else {
            return Ok(false);
        };
        if spec.for_each.is_none() {
            return Ok(false);
        }
        if let Some(j) = self.failed_input(i) {
            let mut changed = false;
            if !r.stopped {
                self.stop(i, j);
                changed = true;
            }
            // What started runs to its end; the early shards are not checked again (the
            // next pipeline run decides them on what it finds).
            if let State::Running(r) = &self.states[i]
                && r.pending == 0
            {
                self.end_stage(i, Some(j));
                changed = true;
            }
            return Ok(changed);
        }
        let mut changed = self.reopen_ready(i);
        let inputs_done = spec
            .after
            .iter()
            .all(|&j| matches!(self.states[j], State::Done(_)));
        // Decide every gated shard whose inputs for its scene have ended.
        let State::Running(r) = &mut self.states[i] else {
            return Ok(changed);
        };
        let look: Vec<usize> = if std::mem::take(&mut r.all_dirty) {
            r.dirty.clear();
            (0..r.shards.len()).collect()
        } else {
            std::mem::take(&mut r.dirty)
        };
        for slot in look {
            let State::Running(r) = &self.states[i] else {
                return Ok(changed);
            };
            let (scene, part) = (&r.shards[slot].scene.id, r.shards[slot].part);
            if r.shards[slot].phase != Phase::Gated
                || !spec
                    .after
                    .iter()
                    .all(|&j| self.ended_for(j, scene) == Some(true))
            {
                continue;
            }
            let decision = self.decide_shard(i, scene, part, self.at.force)?;
            self.decided(i, slot, decision, !inputs_done);
            changed = true;
        }
        let State::Running(r) = &self.states[i] else {
            return Ok(changed);
        };
        if r.pending > 0 || r.gated > 0 || !inputs_done {
            return Ok(changed);
        }
        // Everything it runs after is done, and so is everything of it that ran: a shard
        // decided early runs (again) if what it read has changed since.
        if !r.rechecked && self.recheck(i)? {
            return Ok(true);
        }
        self.end_stage(i, None);
        Ok(true)
    }

    /// Records the decision for gated shard `slot` of stage `i`, queueing it if it runs.
    fn decided(&mut self, i: usize, slot: usize, decision: Decision, early: bool) {
        let State::Running(r) = &mut self.states[i] else {
            return;
        };
        r.gated -= 1;
        let shard = &mut r.shards[slot];
        shard.early = early;
        match decision {
            Decision::Reuse(previous) => {
                shard.reason = crate::pipeline::unchanged(&previous);
                shard.outcome = Some(StageOutcome::Skipped {
                    previous: *previous,
                });
                shard.phase = Phase::Ended;
                r.total = r.total.saturating_sub(1);
                let scene = shard.scene.id.clone();
                self.scene_ended(i, &scene);
            }
            Decision::Run(reason) => {
                shard.reason = reason.clone();
                shard.phase = Phase::Queued;
                r.pending += 1;
                self.queue.push_back(Unit {
                    stage: i,
                    slot: Some(slot),
                    reason,
                });
            }
        }
    }

    /// Checks each early shard of stage `i`, whose inputs are all done, as a later pipeline
    /// would, and reopens those that must run again. Returns whether any must.
    /// Whether the shard of stage `i` for `scene` (and `part`) runs, and why, or reuses the
    /// latest run of the same shard ([`decide`]) — not if the scene's work was since cut into
    /// another number of parts, which rewrote what that run wrote.
    fn decide_shard(
        &self,
        i: usize,
        scene: &str,
        part: Option<Part>,
        force: bool,
    ) -> Result<Decision, HomeError> {
        let (graph, conn) = (self.graph, self.home.conn());
        let (spec, project) = (&graph.manifest.stages[i], graph.project_id);
        let previous = db::latest_run_of_shard(conn, project, &spec.name, scene, part)?;
        if !force {
            let since = previous.as_ref().map(|r| r.id.as_str());
            if db::cut_changed(conn, project, &spec.name, scene, part, since)? {
                let now = part.map_or(1, |p| p.count);
                return Ok(Decision::Run(format!(
                    "parts changed (the scene's work is now cut into {now})"
                )));
            }
        }
        decide(self.home, project, spec, &graph.plugins[i], force, previous)
    }

    fn recheck(&mut self, i: usize) -> Result<bool, HomeError> {
        let State::Running(r) = &mut self.states[i] else {
            return Ok(false);
        };
        r.rechecked = true;
        let early: Vec<(usize, String, Option<Part>)> = r
            .shards
            .iter()
            .enumerate()
            .filter(|(_, s)| s.early)
            .map(|(slot, s)| (slot, s.scene.id.clone(), s.part))
            .collect();
        let mut again = false;
        for (slot, scene, part) in early {
            let decision = self.decide_shard(i, &scene, part, false)?;
            let State::Running(r) = &mut self.states[i] else {
                return Ok(again);
            };
            let shard = &mut r.shards[slot];
            shard.early = false;
            let Decision::Run(reason) = decision else {
                // Its work stands; if its files could not all be put in place, for good now.
                if shard.failed {
                    r.hard_failed += 1;
                }
                continue;
            };
            let was = match shard.outcome {
                Some(StageOutcome::Skipped { .. }) => "it was decided",
                _ => "it had run",
            };
            // Not ended again until it has run again: the shards after it wait.
            shard.reason = format!("{reason} ({was} before its inputs were all done)");
            (shard.phase, shard.failed, shard.outcome) = (Phase::Reopening, false, None);
            r.pending += 1;
            r.total += 1;
            r.reopening.push(slot);
            again = true;
            // The same scene's shards after it that are queued go back to waiting for it.
            for k in 0..self.dependents[i].len() {
                let d = self.dependents[i][k];
                let State::Running(rd) = &mut self.states[d] else {
                    continue;
                };
                let Some(slots) = rd.by_scene.get(&scene) else {
                    continue;
                };
                for &sd in slots {
                    if rd.shards[sd].phase == Phase::Queued {
                        tracing::debug!(stage = %self.graph.manifest.stages[d].name, scene = %scene, "a shard queued goes back to wait for its input's shard to run again");
                        self.queue.retain(|u| !(u.stage == d && u.slot == Some(sd)));
                        rd.shards[sd].phase = Phase::Gated;
                        rd.shards[sd].reason.clear();
                        rd.gated += 1;
                        rd.pending -= 1;
                    }
                }
            }
        }
        self.reopen_ready(i);
        Ok(again)
    }

    /// Queues each reopened shard of stage `i` whose scene has no shard queued or running in a
    /// stage after it (directly or further down). Returns whether any was queued.
    fn reopen_ready(&mut self, i: usize) -> bool {
        let State::Running(r) = &self.states[i] else {
            return false;
        };
        if r.reopening.is_empty() {
            return false;
        }
        let ready: Vec<usize> = r
            .reopening
            .iter()
            .copied()
            .filter(|&slot| !self.busy_after(i, &r.shards[slot].scene.id))
            .collect();
        if ready.len() < r.reopening.len() {
            tracing::debug!(stage = %self.graph.manifest.stages[i].name, waiting = r.reopening.len() - ready.len(), "shards to run again wait for shards of their scenes after them");
        }
        let State::Running(r) = &mut self.states[i] else {
            return false;
        };
        for &slot in &ready {
            r.reopening.retain(|&s| s != slot);
            r.shards[slot].phase = Phase::Queued;
            self.queue.push_back(Unit {
                stage: i,
                slot: Some(slot),
                reason: r.shards[slot].reason.clone(),
            });
        }
        !ready.is_empty()
    }

    /// Whether a stage that runs after stage `i`, directly or further down, has its shard of
    /// `scene` queued or running: those were decided on what `i` did before, and run to their
    /// end (to be checked again once their inputs are done) before `i`'s shard runs again.
    fn busy_after(&self, i: usize, scene: &str) -> bool {
        let mut seen = vec![false; self.states.len()];
        let mut next = self.dependents[i].clone();
        while let Some(d) = next.pop() {
            if std::mem::replace(&mut seen[d], true) {
                continue;
            }
            if let State::Running(rd) = &self.states[d]
                && let Some(slots) = rd.by_scene.get(scene)
                && slots
                    .iter()
                    .any(|&sd| matches!(rd.shards[sd].phase, Phase::Queued | Phase::Running))
            {
                return true;
            }
            next.extend_from_slice(&self.dependents[d]);
        }
        false
    }

    /// Takes `unit` off the queue's books: its shard's run is under way. Called under the same
    /// lock as the queue's `pop_front`, so that a shard is `Queued` exactly while it is queued.
    pub(super) fn taken(&mut self, unit: &Unit) {
        if let (Some(slot), State::Running(r)) = (unit.slot, &mut self.states[unit.stage]) {
            r.shards[slot].phase = Phase::Running;
        }
    }

    /// Stage `i`'s input `j` failed for good: none of `i`'s shards that have not started
    /// will (they are not reached); those running end as they will.
    fn stop(&mut self, i: usize, j: usize) {
        let reason = format!(
            "not reached: {}, which it runs after, did not succeed",
            self.graph.manifest.stages[j].name
        );
        let State::Running(r) = &mut self.states[i] else {
            return;
        };
        r.stopped = true;
        let mut dequeued = false;
        for shard in &mut r.shards {
            match shard.phase {
                Phase::Gated => r.gated -= 1,
                Phase::Queued => {
                    dequeued = true;
                    r.pending -= 1;
                }
                Phase::Reopening => r.pending -= 1,
                Phase::Running | Phase::Ended => continue,
            }
            shard.phase = Phase::Ended;
            shard.reason.clone_from(&reason);
            shard.outcome = Some(StageOutcome::NotReached);
            shard.early = false;
            r.total = r.total.saturating_sub(1);
            r.hard_failed += 1;
        }
        r.reopening.clear();
        if dequeued {
            self.queue.retain(|u| u.stage != i);
        }
    }
}
