//! The database as one stage run sees it: bound to one project, with writes staged until commit.
//!
//! # Why writes are staged, and where
//!
//! A stage must be atomic: all of its rows become visible together when it succeeds, or none do.
//! Holding one write transaction open for the whole stage would give that, but it would also block
//! every other writer (other projects, other processes) for as long as the stage runs — minutes,
//! when stages render video.
//!
//! Instead a run's writes go to an [`overlay`] in the host's memory, and it reads through it:
//! every read looks at the overlay first and at the committed rows of its project second, so the
//! stage always reads its own writes, and nobody else sees them. [`StageSession::commit`] then
//! writes the whole overlay in one short `BEGIN IMMEDIATE` transaction; a run that fails simply
//! drops the overlay. A crash leaves nothing behind in the database either.
//!
//! (Earlier the overlay was a set of SQLite TEMP tables with views over them. Every write then
//! paid for a SQL insert and every check for a query through a `UNION ALL` view: a fifth of the
//! rate SQLite itself reaches for the same rows. In memory, the checks are map lookups and the
//! only SQL left is the commit, which issue #12's benchmark puts next to raw rusqlite.)
//!
//! Uniqueness and references are checked at write time against the overlay and the committed
//! rows, so a stage gets its `conflict` or `not-found` error at the call that caused it; the
//! commit re-checks them through the main tables' constraints and foreign keys.
//!
//! Other runs of the same project may commit while this one runs: the shards of a per-scene
//! stage, and stages of a pipeline that do not run after one another. The commit therefore
//! writes a run's changes only onto what the run saw (optimistic concurrency, as an ORM's
//! version column does): a committed row it changed or deleted must still have the
//! `updated_at` it had when the run first changed it (every change moves it on, even within
//! a millisecond), an artifact it wrote or deleted must still have the record it had, and a
//! new row's key must still be free. Otherwise the commit fails with `conflict` and nothing of
//! the run is committed: a change it never saw is not overwritten, and a row another run
//! deleted is not brought back. Rerunning it works from the new state.
//!
//! Every query carries the session's project id: an id of another project is simply not found.
//!
//! | file | holds |
//! |---|---|
//! | [`overlay`] | the staged rows, in memory, and how pages of staged and committed rows merge |
//! | `scenes.rs` | scene reads and writes |
//! | `media.rs` | keyframe reads and writes |
//! | `clips.rs` | video clip reads and writes, by scene and part |
//! | `artifacts.rs` | artifact lookups, staging, deletion, listing, and what they hold on disk |
//! | `commit.rs` | the one transaction that makes a run's work visible |

mod artifacts;
mod clips;
mod commit;
mod media;
pub(crate) mod overlay;
mod scenes;
#[cfg(test)]
mod tests;

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::projects::parse_id;
use super::rows::{PROJECT_COLUMNS, RUN_COLUMNS, project_from_row, run_from_row};
use super::{
    Artifact, ArtifactRef, DbError, KeyframePosition, Project, Result, Run, query_row_cached,
};
use overlay::Overlay;

/// The most rows a list call returns at once.
pub const MAX_PAGE: u32 = 500;
/// Longest scene title, in characters.
pub const MAX_TITLE_CHARS: usize = 500;
/// Longest description or prompt, in bytes.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Pages of SQLite's cache a session's connection may keep (negative: KiB), so that a large
/// commit does not spill its pages to the log before it is done.
const CACHE_KIB: i64 = 64 * 1024;

/// The fields of a new scene.
#[derive(Debug, Clone)]
pub struct NewScene {
    /// Position in the project.
    pub index: u32,
    /// Short title.
    pub title: String,
    /// What happens.
    pub description: String,
    /// Length in milliseconds.
    pub duration_ms: u32,
}

/// Changes to a scene.
#[derive(Debug, Clone, Default)]
pub struct SceneUpdate {
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New length.
    pub duration_ms: Option<u32>,
}

/// The fields of a new keyframe.
#[derive(Debug, Clone)]
pub struct NewKeyframe {
    /// Its scene.
    pub scene_id: String,
    /// Start or end.
    pub position: KeyframePosition,
    /// What it shows.
    pub prompt: String,
    /// Its image.
    pub image: ArtifactRef,
}

/// Changes to a keyframe.
#[derive(Debug, Clone, Default)]
pub struct KeyframeUpdate {
    /// New prompt.
    pub prompt: Option<String>,
    /// New image.
    pub image: Option<ArtifactRef>,
}

/// The fields of a new video clip.
#[derive(Debug, Clone)]
pub struct NewVideoClip {
    /// Its scene.
    pub scene_id: String,
    /// Its video file.
    pub video: ArtifactRef,
    /// Length in milliseconds.
    pub duration_ms: u32,
    /// Frames per second.
    pub frame_rate: u32,
}

/// Changes to a video clip.
#[derive(Debug, Clone, Default)]
pub struct VideoClipUpdate {
    /// New video file.
    pub video: Option<ArtifactRef>,
    /// New length.
    pub duration_ms: Option<u32>,
    /// New frame rate.
    pub frame_rate: Option<u32>,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// The cursor for the next page, if there is one.
    pub next_cursor: Option<String>,
}

/// An artifact as the stage sees it: committed, or staged by this run (then `staged` names the
/// file that holds its bytes until commit).
#[derive(Debug, Clone)]
pub struct ArtifactView {
    /// What is known of it.
    pub info: Artifact,
    /// The staged file holding its bytes, if this run wrote it.
    pub staged: Option<String>,
}

/// How much one run may stage. Staged rows live in memory until commit, and the commit writes
/// them in one transaction (holding the database's write lock), so a guest must not be able to
/// stage without bound.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Row writes (creates, updates, deletions, artifact records) per run.
    pub max_writes: u64,
    /// Bytes of text (titles, descriptions, prompts, names) written per run.
    pub max_bytes: u64,
    /// How the user sets each of the two, for the message when one is hit (the names are
    /// declared by the room that sets the limits; storage only repeats them).
    pub names: (&'static str, &'static str),
}

impl Default for SessionLimits {
    /// No bound: the runner sets every run's limits (`runner::run_in`, from
    /// `capabilities::db::limits`, which reads the declared `max-staged-rows` / `max-staged-text`).
    fn default() -> Self {
        SessionLimits {
            max_writes: u64::MAX,
            max_bytes: u64::MAX,
            names: ("the row write limit", "the text limit"),
        }
    }
}

/// What a shard is bound to: its scene, and the part of that scene's work it does if its stage
/// is cut into parts.
#[derive(Clone, Copy, Debug)]
struct ShardScope<'a> {
    /// The scene's id.
    pub scene: &'a str,
    /// Its part, if the scene's work is cut into more than one.
    pub part: Option<super::Part>,
    /// The parts numbered this and up are past the shard's cut (left over from a cut into
    /// more), so their files are its to delete: its part's count, or the count it wrote its
    /// own part with if fewer.
    pub past: u32,
}

/// The database side of one stage run. See the module docs.
pub struct StageSession {
    conn: Connection,
    /// The path it was opened on, when opened by path: where a recycled connection may go.
    db_path: Option<std::path::PathBuf>,
    project_id: String,
    run_id: String,
    limits: SessionLimits,
    writes: u64,
    bytes: u64,
    overlay: Overlay,
    /// The scene a shard is bound to; `None`: the whole project.
    scope: Option<String>,
    /// The part of its scene's work a shard does, if its stage is cut into parts.
    part: Option<super::Part>,
    /// Whether the guest asked its part ([`Self::ask_part`]): a shard with a part whose guest
    /// never asked did the same work as its siblings, so it fails.
    part_asked: bool,
    /// What the guest has read (see [`super::reads`]), each with a digest of the committed
    /// answer when it first asked.
    reads: std::collections::BTreeMap<super::Read, String>,
    /// Whether what it read is lost: it read more than [`MAX_READS`] different things, or a
    /// digest could not be taken. Then none is recorded, and the run's work is never reused.
    reads_lost: bool,
}

/// Most different reads a run records; a run that makes more is simply never reused (its
/// commit would otherwise spend long on their digests).
pub const MAX_READS: usize = 10_000;

/// A session's connection, ready for the next session of the same database (see
/// [`StageSession::recycle`]).
pub struct Recycled {
    conn: Connection,
    /// The path its session was opened on.
    path: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Recycled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recycled(..)")
    }
}

impl std::fmt::Debug for StageSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageSession")
            .field("project_id", &self.project_id)
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

fn check_limit(limit: u32) -> Result<usize> {
    if limit == 0 {
        return Err(DbError::InvalidInput(
            "a page limit must be more than 0".into(),
        ));
    }
    Ok(limit.min(MAX_PAGE) as usize)
}

fn bad_cursor(cursor: &str) -> DbError {
    let shown = crate::text::cut(cursor, 64);
    DbError::InvalidInput(format!("{shown:?} is not a cursor this listing returned"))
}

/// Cursor of index-ordered listings: the last index seen.
fn parse_index_cursor(cursor: Option<&str>) -> Result<Option<u32>> {
    cursor
        .map(|c| c.parse::<u32>().map_err(|_| bad_cursor(c)))
        .transpose()
}

fn check_text(what: &str, text: &str) -> Result<()> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(DbError::InvalidInput(format!(
            "{what} has {} bytes; the limit is {MAX_TEXT_BYTES}",
            text.len()
        )));
    }
    Ok(())
}

fn check_positive(what: &str, v: u32) -> Result<()> {
    if v == 0 {
        return Err(DbError::InvalidInput(format!("{what} must be more than 0")));
    }
    Ok(())
}

/// The `updated_at` of a row changed now that had `previous`: later than it, even within the
/// same millisecond, so that every committed change moves it (the commit relies on that to tell
/// whether a row changed under a run).
fn next_updated_at(previous: i64) -> i64 {
    super::now_ms().max(previous.saturating_add(1))
}

/// A new row id: time-ordered (UUIDv7), so rows a run creates append to the right edge of
/// each index rather than landing all over it.
fn new_id() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

impl StageSession {
    /// Opens a session on the database at `path` for run `run_id` of project `project_id`.
    pub fn open(path: &Path, project_id: &str, run_id: &str) -> Result<Self> {
        Self::open_reusing(path, None, project_id, run_id)
    }

    /// [`StageSession::open`] on `spare`, a connection an earlier session gave back with
    /// [`StageSession::recycle`], if there is one. Reusing a connection skips opening the
    /// database, parsing its schema and SQLite's directory sync of a newly opened write-ahead
    /// log, and keeps the statements it has prepared and the pages it has read.
    pub fn open_reusing(
        path: &Path,
        spare: Option<Recycled>,
        project_id: &str,
        run_id: &str,
    ) -> Result<Self> {
        let mut session =
            Self::with_connection(Self::connection(path, spare)?, project_id, run_id)?;
        session.db_path = Some(path.to_owned());
        Ok(session)
    }

    /// Records the start of a run of `stage` on the project (see [`super::start_run`]) and
    /// opens its session, on `spare` if there is one, bound to the origin's scene if it has one
    /// (a shard: see [`StageSession::set_scope`]). The record is written on the session's
    /// own connection: one connection then writes both of a run's transactions, and neither
    /// finds its page cache out of date because another connection of this process wrote. It is
    /// written at `synchronous = NORMAL` ([`super::with_normal_sync`]): a run costs one fsync,
    /// at its end, which makes its start durable too.
    pub fn start(
        path: &Path,
        spare: Option<Recycled>,
        project_id: &str,
        stage: &str,
        plugin_sha256: &str,
        config: &super::KeyValues,
        origin: super::Origin<'_>,
    ) -> Result<(Self, Run)> {
        let mut conn = Self::connection(path, spare)?;
        // Not made durable on its own: the run's end (committed or failed) makes it durable.
        let run = super::with_normal_sync(&mut conn, |conn| {
            super::start_run(conn, project_id, stage, plugin_sha256, config, origin)
        })?;
        let mut session = Self::with_connection(conn, project_id, &run.id)?;
        session.db_path = Some(path.to_owned());
        session.scope = origin.scene.map(str::to_owned);
        session.part = run.part;
        Ok((session, run))
    }

    /// Records the run as failed with `reason` (see [`super::fail_run`]).
    pub fn fail(&mut self, reason: &str) -> Result<Option<super::RunStatus>> {
        self.overlay = Overlay::default();
        super::fail_run(&mut self.conn, &self.run_id, reason)
    }

    /// `spare` if it was opened on `path`, else a new connection to it.
    fn connection(path: &Path, spare: Option<Recycled>) -> Result<Connection> {
        match spare {
            // Only a connection opened on this very path; any other is closed.
            Some(Recycled {
                conn,
                path: Some(p),
            }) if p == path => Ok(conn),
            _ => {
                let conn = super::open(path)?;
                conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
                Ok(conn)
            }
        }
    }

    /// Turns an open connection (set up by [`super::open`]) into a session.
    pub fn with_connection(conn: Connection, project_id: &str, run_id: &str) -> Result<Self> {
        let project_id = parse_id("project", project_id)?;
        let run_id = parse_id("run", run_id)?;
        Ok(StageSession {
            conn,
            db_path: None,
            project_id,
            run_id,
            limits: SessionLimits::default(),
            writes: 0,
            bytes: 0,
            overlay: Overlay::default(),
            scope: None,
            part: None,
            part_asked: false,
            reads: std::collections::BTreeMap::new(),
            reads_lost: false,
        })
    }

    /// Makes every database call of the stage give up (as [`DbError::Interrupted`]) once
    /// `deadline` has passed, so a guest cannot outlive its time limit inside a host call.
    pub fn set_deadline(&mut self, deadline: std::time::Instant) -> Result<()> {
        self.conn
            .progress_handler(100, Some(move || std::time::Instant::now() >= deadline))?;
        Ok(())
    }

    /// Removes the deadline set by [`set_deadline`](Self::set_deadline): the host's own work after
    /// the stage ends (listing staged files, committing or discarding) must never be cut short.
    pub fn clear_deadline(&mut self) -> Result<()> {
        self.conn.progress_handler(0, None::<fn() -> bool>)?;
        Ok(())
    }

    /// Replaces the default staging limits.
    pub fn set_limits(&mut self, limits: SessionLimits) {
        self.limits = limits;
    }

    /// Counts one staged write of `bytes` bytes of text against the run's limits.
    fn charge(&mut self, bytes: usize) -> Result<()> {
        self.charge_writes(1, bytes)
    }

    /// Counts `count` staged writes of `bytes` bytes of text in all against the run's limits:
    /// all of them or, if that would pass a limit, none.
    fn charge_writes(&mut self, count: u64, bytes: usize) -> Result<()> {
        let writes = self.writes.saturating_add(count);
        let total = self.bytes.saturating_add(bytes as u64);
        if writes > self.limits.max_writes {
            return Err(DbError::LimitExceeded(format!(
                "the stage has made {} row writes; the limit per run is {} ({})",
                self.writes, self.limits.max_writes, self.limits.names.0
            )));
        }
        if total > self.limits.max_bytes {
            return Err(DbError::LimitExceeded(format!(
                "the stage has written more than {} bytes of text; the limit per run is {} ({})",
                self.bytes, self.limits.max_bytes, self.limits.names.1
            )));
        }
        self.writes = writes;
        self.bytes = total;
        Ok(())
    }

    /// Binds the session to one scene of its project (a shard of a per-scene stage): it may
    /// still read the whole project, but writes only that scene's rows — updating the scene,
    /// creating and changing its keyframes and its clip — and its own artifacts (see
    /// `check_artifact_scope` in `artifacts.rs`). Creating or deleting a scene, or writing
    /// another scene's rows or files, is [`DbError::OutOfScope`]. `None`: the whole project
    /// (the default).
    pub fn set_scope(&mut self, scene_id: Option<String>) {
        self.scope = scene_id;
    }

    /// Notes that the guest read `read`: the commit records a digest of its answer, so that a
    /// later pipeline can tell whether it changed (see [`super::reads`]). Called by the
    /// capabilities for what the guest asks, not by the session for its own checks.
    ///
    /// The first time, a digest of the committed answer is taken too: the commit compares it
    /// with the answer then, before its own writes, and records nothing if another run of the
    /// project (a stage or shard running at the same time) changed it meanwhile — the guest
    /// may have worked from the old answer, and its work must not be taken for the new one's.
    ///
    /// An id that is not well formed names no row, now or ever, and is not noted.
    pub fn observe(&mut self, read: super::Read) {
        use super::Read;
        let id = match &read {
            Read::Scene(id) | Read::Keyframe(id) | Read::Clip(id) => Some(id),
            Read::Keyframes(scene) | Read::Clips(scene) | Read::ClipParts(scene) => scene.as_ref(),
            _ => None,
        };
        if id.is_some_and(|id| parse_id("row", id).is_err())
            || self.reads_lost
            || self.reads.contains_key(&read)
        {
            return;
        }
        let seen = match super::reads::digest(&self.conn, &self.project_id, &read) {
            Ok(seen) if self.reads.len() < MAX_READS => seen,
            _ => {
                self.reads_lost = true;
                self.reads.clear();
                return;
            }
        };
        self.reads.insert(read, seen);
    }

    /// What the guest has read so far (with the digests of the answers when it first asked),
    /// or `None` if that is lost (see [`StageSession::observe`]).
    pub fn reads(&self) -> Option<&std::collections::BTreeMap<super::Read, String>> {
        (!self.reads_lost).then_some(&self.reads)
    }

    /// The scene this session is bound to, if it is a shard's.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// Refuses `what` (a write to rows of scene `scene_id`, or of no scene in particular when
    /// `None`: creating or deleting a scene) outside the session's scope.
    fn check_scope(&self, what: &str, scene_id: Option<&str>) -> Result<()> {
        match (&self.scope, scene_id) {
            (None, _) => Ok(()),
            (Some(own), Some(scene)) if own == scene => Ok(()),
            (Some(own), Some(scene)) => Err(DbError::OutOfScope(format!(
                "{what}: scene {} is not this shard's scene {own}",
                crate::text::cut(scene, 64)
            ))),
            (Some(own), None) => Err(DbError::OutOfScope(format!(
                "{what}: a shard (bound to scene {own}) may not create or delete scenes"
            ))),
        }
    }

    /// Binds the session to part `part` of its scene's work (`None`, or a count of 1: all of
    /// it). A shard with a part may write only that part of its scene's clip and the files only
    /// that part names, and delete only the clip parts past its cut ([`Self::check_part`],
    /// [`Self::check_whole_scene`], `delete_clip_parts`).
    pub fn set_part(&mut self, part: Option<super::Part>) {
        self.part = part.filter(|p| p.count > 1);
    }

    /// The part of its scene's work this session's shard does, if its stage is cut into parts.
    pub fn part(&self) -> Option<super::Part> {
        self.part
    }

    /// [`Self::part`], for the guest: notes that it asked, so that [`Self::unasked_part`] can
    /// tell a plugin that cannot split its work.
    pub fn ask_part(&mut self) -> Option<super::Part> {
        self.part_asked = true;
        self.part
    }

    /// The part this shard does if its guest never asked it: such a plugin does not know its
    /// work is cut, so every shard of its scene did all of it.
    pub fn unasked_part(&self) -> Option<super::Part> {
        self.part.filter(|_| !self.part_asked)
    }

    /// Refuses, as out of scope, `what` to clip part `index` (of its scene, in scope already)
    /// by a shard that does another part: its sibling shards, running at the same time, write
    /// those.
    fn check_part(&self, what: &str, index: u32) -> Result<()> {
        match self.part {
            Some(own) if own.index != index => Err(DbError::OutOfScope(format!(
                "{what}: clip part {} is not this shard's {own}",
                index + 1
            ))),
            _ => Ok(()),
        }
    }

    /// Refuses `what` (a write to its scene's own row or keyframes) by a shard that does one
    /// part of its scene's work: those rows are the whole scene's, and its sibling shards,
    /// running at the same time, would write them too.
    fn check_whole_scene(&self, what: &str) -> Result<()> {
        match self.part {
            Some(own) => Err(DbError::OutOfScope(format!(
                "{what}: this shard does {own} of its scene's work, and writes only that part \
                 of the scene's clip (put-clip-part) and the files only that part names"
            ))),
            None => Ok(()),
        }
    }

    /// The scope of a shard, for the artifact checks: its scene and part; `None` for a run of
    /// the whole project.
    fn shard_scope(&self) -> Option<ShardScope<'_>> {
        self.scope.as_deref().map(|scene| ShardScope {
            scene,
            part: self.part,
            past: self.past_cut(),
        })
    }

    /// Where the parts past this shard's cut begin (see [`ShardScope::past`]).
    pub(super) fn past_cut(&self) -> u32 {
        let Some(own) = self.part else {
            return 0;
        };
        let written = self
            .overlay
            .clips
            .values()
            .find(|c| {
                self.scope.as_deref() == Some(c.scene_id.as_str()) && c.part.index == own.index
            })
            .map_or(own.count, |c| c.part.count);
        written.min(own.count)
    }

    /// The project this session is bound to.
    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    /// The run this session belongs to.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Reads the project.
    pub fn project(&self) -> Result<Project> {
        query_row_cached(
            &self.conn,
            &format!("SELECT {PROJECT_COLUMNS} FROM main.projects p WHERE p.id = ?1"),
            [&self.project_id],
            project_from_row,
        )
        .optional()?
        .ok_or_else(|| DbError::NotFound(format!("project {} no longer exists", self.project_id)))
    }

    /// Reads this run's record.
    pub fn run(&self) -> Result<Run> {
        query_row_cached(
            &self.conn,
            &format!(
                "SELECT {RUN_COLUMNS} FROM main.pipeline_runs WHERE id = ?1 AND project_id = ?2"
            ),
            [&self.run_id, &self.project_id],
            run_from_row,
        )
        .optional()?
        .ok_or_else(|| DbError::NotFound(format!("run {} has no record", self.run_id)))
    }

    /// Parses a guest-supplied id. A malformed id cannot name a row, so it is `not-found`
    /// rather than `invalid-input`: either way the row is not there.
    fn row_id(what: &str, id: &str) -> Result<String> {
        parse_id(what, id).map_err(|_| {
            let shown = crate::text::cut(id, 64);
            DbError::NotFound(format!("no {what} with id {shown:?}"))
        })
    }

    /// Ends the session and gives back its connection for the next one, or `None` if it should
    /// not be reused (it is then closed): a transaction or a statement left open, or a deadline
    /// that cannot be cleared. The staged rows go with the session; nothing of it reaches the
    /// next.
    pub fn recycle(mut self) -> Option<Recycled> {
        if self.clear_deadline().is_err() || !self.conn.is_autocommit() || self.conn.is_busy() {
            return None;
        }
        Some(Recycled {
            conn: self.conn,
            path: self.db_path,
        })
    }
}
