//! Fan-out: a `for-each = "scene"` stage runs as shards, one per scene of the project, up to
//! `jobs` at once.
//!
//! Each shard is a stage run of its own: its record names its scene, and it has its own store,
//! limits, database session — bound to its scene, so that writing another scene's rows is
//! `out-of-scope` ([`StageSession::set_scope`]) — and commit. A shard that fails fails alone;
//! the shards that succeeded stay committed.
//!
//! The guests of running shards run at the same time, each on a thread of its own (every thread
//! drives its own guest through the runtime's executor: see `Runtime::call`). Recording a
//! shard's start and committing its work need the [`Home`], and happen one shard at a time
//! under a mutex: each is one short transaction (SQLite takes one writer at a time anyway), so
//! the guests, where the time goes, never wait for each other.
//!
//! [`StageSession::set_scope`]: crate::db::stage::StageSession::set_scope

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::{Observer, StageSpec};
use crate::capabilities::ProgressSink;
use crate::db::Scene;
use crate::home::{Home, HomeError};
use crate::runner::{self, StageReport, StageRequest};
use crate::runtime::{Plugin, Runtime};

/// What the shards of one stage share: the home, the observer and the stage's own bar, used
/// by one thread at a time.
struct Shared<'a> {
    home: &'a mut Home,
    observer: &'a mut dyn Observer,
    /// The stage's progress: shards done of all it runs.
    stage_bar: ProgressSink,
    done: u64,
}

/// Where a stage's shards come from and go.
pub(super) struct Shards<'a> {
    /// The stage.
    pub spec: &'a StageSpec,
    /// Its plugin.
    pub plugin: &'a Plugin,
    /// Its position in the manifest.
    pub index: usize,
    /// The pipeline record.
    pub pipeline_id: &'a str,
    /// The project.
    pub project_id: &'a str,
    /// Most shards running at once.
    pub jobs: usize,
}

/// Runs one shard per scene of `scenes` (each with why it runs; up to `jobs` at once), and
/// returns each one's report, in the order of `scenes`. `Err` if the host itself failed (its database, say): no shard is
/// started after that, and those running are finished first.
pub(super) fn run_shards(
    home: &mut Home,
    runtime: &Runtime,
    observer: &mut dyn Observer,
    stage_bar: ProgressSink,
    shards: &Shards<'_>,
    scenes: &[(Scene, String)],
) -> Result<Vec<StageReport>, HomeError> {
    let shared = Mutex::new(Shared {
        home,
        observer,
        stage_bar,
        done: 0,
    });
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let reports: Mutex<Vec<Option<StageReport>>> = Mutex::new(vec![None; scenes.len()]);
    let error: Mutex<Option<HomeError>> = Mutex::new(None);
    let workers = shards.jobs.clamp(1, scenes.len().max(1));
    let total = scenes.len() as u64;
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((scene, reason)) = scenes.get(i) else {
                        break;
                    };
                    match run_one(&shared, runtime, shards, scene, reason, total) {
                        Ok(report) => lock(&reports)[i] = Some(report),
                        Err(e) => {
                            stop.store(true, Ordering::Relaxed);
                            lock(&error).get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = lock(&error).take() {
        return Err(e);
    }
    let reports = reports.into_inner().unwrap_or_else(|p| p.into_inner());
    // Every slot is filled: each index was taken by exactly one worker, and only an error
    // (returned above) leaves one empty.
    Ok(reports.into_iter().flatten().collect())
}

/// Records, runs and commits the shard of `scene`.
fn run_one(
    shared: &Mutex<Shared<'_>>,
    runtime: &Runtime,
    shards: &Shards<'_>,
    scene: &Scene,
    reason: &str,
    total: u64,
) -> Result<StageReport, HomeError> {
    let spec = shards.spec;
    let prepared = {
        let mut s = lock(shared);
        let progress = s.observer.shard_started(shards.index, &spec.name, scene);
        let request = StageRequest {
            project_id: shards.project_id.to_owned(),
            config: spec.config.clone(),
            limits: spec.limits,
            progress,
            pipeline: Some((
                shards.pipeline_id.to_owned(),
                u32::try_from(shards.index).unwrap_or(u32::MAX),
            )),
            scene: Some(scene.id.clone()),
            reason: Some(reason.to_owned()),
        };
        runner::prepare(s.home, &shards.plugin.name, &shards.plugin.sha256, request)?
    };
    // The guest runs with nothing locked.
    let called =
        prepared.call(|ctx, config, limits| runtime.call(shards.plugin, ctx, config, limits));
    let mut s = lock(shared);
    let report = runner::conclude(s.home, called)?;
    s.observer
        .shard_finished(shards.index, &spec.name, scene, &report);
    s.done += 1;
    let done = s.done;
    (s.stage_bar)(&spec.name, done, total, "scenes");
    Ok(report)
}

/// Locks `m`, even if a thread panicked holding it (what it guards stays usable: each holder
/// leaves it whole between statements).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
