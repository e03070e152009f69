//! Runs one stage on one project, from the run record to the commit.
//!
//! 1. The project is looked up first, so an unknown id writes nothing.
//! 2. A `running` record goes into `pipeline_runs`.
//! 3. The plugin runs in a fresh store with a context bound to that project and run (and, for a
//!    shard of a per-scene stage, to its scene).
//! 4. On success the run's staged rows and files commit together (one IMMEDIATE transaction,
//!    then the journaled renames); on an error, a trap or a violated limit, the staged files are
//!    removed, the staged rows vanish with the session, and the record says `failed` and why.
//!
//! Steps 1–2 ([`prepare`]) and 4 ([`conclude`]) need the [`Home`]; step 3 ([`Prepared::call`])
//! does not, so the shards of a stage can run their guests at the same time while one thread at
//! a time records and commits them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::artifacts::ArtifactKind;
use crate::capabilities::bindings::types::ErrorCode;
use crate::capabilities::{ProgressSink, StageContext};
use crate::db::stage::StageSession;
use crate::db::{self, KeyValues, Run, RunStatus};
use crate::home::{Home, HomeError, doing};
pub use crate::runtime::MAX_REPORT_CHARS;
use crate::runtime::{Limits, Outcome, Plugin, Runtime};

/// What to run a stage with.
pub struct StageRequest {
    /// The project it is bound to.
    pub project_id: String,
    /// Its configuration.
    pub config: KeyValues,
    /// Its limits.
    pub limits: Limits,
    /// Where its progress reports go.
    pub progress: ProgressSink,
    /// The pipeline run it belongs to and its position there, if any.
    pub pipeline: Option<(String, u32)>,
    /// The scene a shard is bound to (see [`StageSession::set_scope`]); `None`: the project.
    pub scene: Option<String>,
    /// The part of its scene's work a shard does, if its stage is cut into parts (see
    /// [`StageSession::set_part`]).
    pub part: Option<db::Part>,
    /// Why it runs, for its record ("first run", "scene 3 changed", …), if the caller knows.
    pub reason: Option<String>,
}

/// The record of a finished stage run, as committed.
#[derive(Debug, Clone)]
pub struct StageReport {
    /// The run record (status `succeeded` or `failed`).
    pub run: Run,
    /// Why moving the files of a run that committed into place failed, if it did: the run is
    /// `succeeded`, and the journal still owes the moves (see [`Home::finish_publishes`]).
    pub unpublished: Option<String>,
}

impl StageReport {
    /// Whether the stage succeeded and its work was committed (its files may still be on
    /// their way into place: see [`StageReport::unpublished`]).
    pub fn succeeded(&self) -> bool {
        self.run.status == db::RunStatus::Succeeded
    }
}

/// The kebab-case name of a WIT error code, as the WIT spells it.
pub fn code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::NotFound => "not-found",
        ErrorCode::InvalidInput => "invalid-input",
        ErrorCode::Conflict => "conflict",
        ErrorCode::LimitExceeded => "limit-exceeded",
        ErrorCode::Io => "io",
        ErrorCode::Busy => "busy",
        ErrorCode::OutOfScope => "out-of-scope",
    }
}

/// A summary or error as stored: cut to a length, kept as given (it is escaped when shown, and
/// `--json` shows it exactly).
fn clip(text: &str) -> String {
    crate::text::cut(text, MAX_REPORT_CHARS)
}

/// Runs `plugin` on the request's project and records the run. The caller must hold the
/// project's lock ([`Home::lock_project`]) for the whole call. `Err` means the host itself
/// could not do its part (bad project id, database unavailable); a failing stage is an `Ok`
/// report whose run is `failed`.
pub fn run_stage(
    home: &mut Home,
    runtime: &Runtime,
    plugin: &Plugin,
    request: StageRequest,
) -> Result<StageReport, HomeError> {
    let prepared = prepare(home, &plugin.name, &plugin.sha256, request)?;
    let called = prepared.call(|ctx, config, limits| runtime.call(plugin, ctx, config, limits));
    conclude(home, called)
}

/// Runs native code as a stage named `name`: the same run record, database session, staged
/// files and commit as [`run_stage`], with `body` in place of the plugin. `body` gets the
/// stage's context and configuration and returns the run's summary or error.
///
/// This is the baseline the benchmarks measure plugins against: everything but the sandbox.
pub fn run_native_stage(
    home: &mut Home,
    name: &str,
    request: StageRequest,
    body: impl FnOnce(&mut StageContext, &[(String, String)]) -> Result<String, String>,
) -> Result<StageReport, HomeError> {
    // Native code has no component bytes; its "plugin hash" names it as native.
    let sha256 = crate::digest::sha256_hex(format!("native:{name}").as_bytes());
    let prepared = prepare(home, name, &sha256, request)?;
    let called = prepared.call(|mut ctx, config, _limits| {
        let outcome = match body(&mut ctx, config) {
            Ok(summary) => Outcome::Succeeded(summary),
            Err(message) => Outcome::Trapped(message),
        };
        (outcome, ctx)
    });
    conclude(home, called)
}

/// A stage run recorded and bound to its project (and scene), ready for its guest.
pub struct Prepared {
    project_id: String,
    left_behind: Arc<AtomicBool>,
    ctx: StageContext,
    config: Vec<(String, String)>,
    limits: Limits,
}

/// A stage run whose guest has ended, to be committed or discarded by [`conclude`].
pub struct Called {
    project_id: String,
    left_behind: Arc<AtomicBool>,
    outcome: Outcome,
    ctx: StageContext,
}

/// Records the start of a run of the stage `name` (plugin `sha256`) and opens its session and
/// context. Every database call of a run goes through its session's connection (the process's
/// other connection, [`Home::conn`], would find its page cache stale after each of the run's
/// commits and read its pages again), except the settling write after a failed commit.
pub fn prepare(
    home: &mut Home,
    name: &str,
    sha256: &str,
    request: StageRequest,
) -> Result<Prepared, HomeError> {
    let project_id = db::parse_id("project", &request.project_id)?;
    let files = home.project_store(&project_id)?;
    // Staged files nobody will find again (removals that failed, a commit left unsettled) are
    // left to the project's next lock holder to sweep, whichever way the run ends.
    let left_behind = files.left_staged_files();
    let spare = home.take_spare_session();
    // An unknown project is refused here, writing nothing: the start record needs it.
    let (mut session, run) = StageSession::start(
        &home.db_path(),
        spare,
        &project_id,
        name,
        sha256,
        &request.config,
        db::Origin {
            pipeline: request
                .pipeline
                .as_ref()
                .map(|(id, index)| (id.as_str(), *index)),
            scene: request.scene.as_deref(),
            part: request.part,
            reason: request.reason.as_deref(),
        },
    )
    .map_err(doing("record the start of the stage run"))?;
    session.set_limits(request.limits.session);
    tracing::info!(stage = %name, run = %run.id, project = %project_id, scene = ?request.scene, part = ?request.part, "stage started");
    let ctx = StageContext::new(
        name.to_owned(),
        session,
        files,
        request.limits.store,
        request.progress,
    );
    Ok(Prepared {
        project_id,
        left_behind,
        ctx,
        config: request.config.into_iter().collect(),
        limits: request.limits,
    })
}

impl Prepared {
    /// Runs the stage: `call` gets its context, configuration and limits, and hands the context
    /// back with the outcome. Needs no [`Home`]: runs of different shards may call at once.
    pub fn call(
        self,
        call: impl FnOnce(StageContext, &[(String, String)], &Limits) -> (Outcome, StageContext),
    ) -> Called {
        let (outcome, ctx) = call(self.ctx, &self.config, &self.limits);
        Called {
            project_id: self.project_id,
            left_behind: self.left_behind,
            outcome,
            ctx,
        }
    }
}

/// Commits a run that succeeded, or discards what a failed one staged, and records the outcome.
pub fn conclude(home: &mut Home, called: Called) -> Result<StageReport, HomeError> {
    let Called {
        project_id,
        left_behind,
        outcome,
        ctx,
    } = called;
    let reason = match outcome {
        Outcome::Succeeded(_) if let Some(part) = ctx.db.unasked_part() => Err(format!(
            "the stage was cut into parts and this shard does {part} of its scene's work, but \
             the plugin never asked which (db.part), so it did all of it, as every shard of \
             the scene did; remove `parts` from the stage in the manifest"
        )),
        Outcome::Succeeded(summary) => Ok(summary),
        Outcome::Failed(e) => Err(format!(
            "the stage returned an error ({}): {}",
            code_name(e.code),
            e.message
        )),
        Outcome::Trapped(reason) => Err(reason),
    };
    let report = match reason {
        Ok(summary) => commit(home, ctx, &project_id, &summary),
        Err(reason) => {
            discard(&ctx);
            failed(home, ctx.db, &reason)
        }
    };
    if left_behind.load(Ordering::Relaxed) {
        home.leave_staged_files(&project_id);
    }
    report
}

/// Records a run as failed with `reason`, on its own session's connection, and reports it.
fn failed(
    home: &mut Home,
    mut session: StageSession,
    reason: &str,
) -> Result<StageReport, HomeError> {
    let reason = clip(reason);
    // The CLI prints the failure itself; this is for `VIDPIPE_LOG=debug`.
    tracing::debug!(run = %session.run_id(), "stage failed: {}", crate::text::printable(&reason, MAX_REPORT_CHARS));
    session
        .fail(&reason)
        .map_err(doing("record the run as failed"))?;
    finish(home, session, None)
}

/// Reads the run's final record on its session, and keeps the session's connection for the
/// next run.
fn finish(
    home: &mut Home,
    session: StageSession,
    unpublished: Option<String>,
) -> Result<StageReport, HomeError> {
    let run = session.run().map_err(doing("read the run's record"))?;
    home.keep_spare_session(session.recycle());
    Ok(StageReport { run, unpublished })
}

/// Commits a successful stage and moves its files into place.
///
/// The outcome is what the database durably says, never what an error suggests: a commit
/// that fails may have reached the write-ahead log whole, to be replayed by the next process
/// that recovers it. So after a failed commit the session's connection is dropped unused (as
/// SQLite and PostgreSQL treat a failed fsync: that connection is done), the staged files are
/// kept, and a write on another connection settles the question: [`db::fail_run`] marks the
/// run failed only if it is still `running`, and that transaction supersedes any half-finished
/// commit for good. If it finds the run `succeeded`, the commit is durable and its files are
/// published. If even that write fails, the outcome is left to recovery, with the staged files
/// in place ([`HomeError::Unsettled`]).
fn commit(
    home: &mut Home,
    ctx: StageContext,
    project_id: &str,
    summary: &str,
) -> Result<StageReport, HomeError> {
    let staged = match ctx.db.staged_files() {
        Ok(staged) => staged,
        Err(e) => {
            discard(&ctx);
            return failed(
                home,
                ctx.db,
                &format!("could not list the run's staged files: {e}"),
            );
        }
    };
    // The staged files' names must be durable before a commit that points at them: after a
    // power cut, a committed artifact whose staged file lost its folder entry would be gone.
    let kinds: std::collections::BTreeSet<ArtifactKind> =
        staged.iter().map(|(kind, _)| (*kind).into()).collect();
    for kind in kinds {
        if let Err(e) = ctx.files.sync(kind) {
            discard(&ctx);
            return failed(
                home,
                ctx.db,
                &format!("could not make the run's staged files durable: {e}"),
            );
        }
    }
    let StageContext {
        stage,
        db: mut session,
        files,
        ..
    } = ctx;
    let run_id = session.run_id().to_owned();
    let journal = match session.commit(&clip(summary)) {
        Ok(journal) => journal,
        Err(e) if e.may_have_committed() => {
            drop(session);
            // Until the outcome is settled the staged files must stay; should this process
            // end before it removes them, the project's next lock holder sweeps them. Said
            // now, in the lock file, not when the run ends: this process may not get there.
            home.leave_staged_files(project_id);
            return settle(home, &stage, project_id, &run_id, &files, staged, e);
        }
        Err(e) => {
            // Nothing was committed: the transaction ended before its COMMIT.
            drop(session);
            discard_files(&files, staged);
            return not_committed(home, &run_id, e);
        }
    };
    // Committed: the rows are visible and the journal owns the file moves. If they fail here,
    // the run stays succeeded and the moves are retried (by the pipeline before its next
    // stage, or by the next process that takes the project's lock).
    let unpublished = home
        .publish(project_id, &journal)
        .err()
        .map(|e| e.to_string());
    if let Some(e) = &unpublished {
        tracing::warn!(run = %run_id, "committed, but moving files into place failed: {e}");
    }
    finish(home, session, unpublished)
}

/// Settles a commit that failed with `error` (see [`commit`]), on the home's connection.
fn settle(
    home: &mut Home,
    stage: &str,
    project_id: &str,
    run_id: &str,
    files: &crate::artifacts::ProjectStore,
    staged: Vec<(db::Kind, String)>,
    error: db::DbError,
) -> Result<StageReport, HomeError> {
    let reason = clip(&format!("the stage's work could not be committed: {error}"));
    let found = match db::fail_run(home.conn_mut(), run_id, &reason) {
        Ok(found) => found,
        Err(settle) => {
            return Err(HomeError::Unsettled {
                run: run_id.to_owned(),
                commit: error.to_string(),
                settle: settle.to_string(),
            });
        }
    };
    let unpublished = if found == Some(RunStatus::Succeeded) {
        tracing::warn!(stage = %stage, run = run_id, "the commit reported an error ({error}) but is durable");
        home.finish_publishes(project_id, Some(run_id))
            .err()
            .map(|e| e.to_string())
    } else {
        // Not committed, and now never will be.
        discard_files(files, staged);
        None
    };
    Ok(StageReport {
        run: db::get_run(home.conn(), run_id)?,
        unpublished,
    })
}

/// Records a run whose commit did not happen (it failed before its `COMMIT`) as failed, on
/// the home's connection (the session's is dropped), and reports it. A lock held by a stopped
/// process would hold this write up too: then the run is left `running`, for the next process
/// that takes the project's lock to mark interrupted, and the error says why.
fn not_committed(
    home: &mut Home,
    run_id: &str,
    error: db::DbError,
) -> Result<StageReport, HomeError> {
    if matches!(error, db::DbError::HeldByStopped { .. }) {
        return Err(doing("commit the stage's work")(error));
    }
    let reason = clip(&format!("the stage's work could not be committed: {error}"));
    db::fail_run(home.conn_mut(), run_id, &reason).map_err(doing("record the run as failed"))?;
    Ok(StageReport {
        run: db::get_run(home.conn(), run_id)?,
        unpublished: None,
    })
}

/// Removes the staged files of a context that will not commit (any left behind are swept by
/// the project's next lock holder: see [`prepare`]).
fn discard(ctx: &StageContext) {
    match ctx.db.staged_files() {
        Ok(staged) => discard_files(&ctx.files, staged),
        Err(e) => {
            tracing::warn!("could not list staged files to remove them: {e}");
            ctx.files.left_staged_files().store(true, Ordering::Relaxed);
        }
    }
}

fn discard_files(files: &crate::artifacts::ProjectStore, staged: Vec<(db::Kind, String)>) {
    for (kind, file) in staged {
        let kind: ArtifactKind = kind.into();
        if let Err(e) = files.discard(kind, &file) {
            tracing::warn!("could not remove staged file {kind}/{file}: {e}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;
