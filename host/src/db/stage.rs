//! The database as one stage run sees it: bound to one project, with writes staged until commit.
//!
//! # Why writes are staged in TEMP tables
//!
//! A stage must be atomic: all of its rows become visible together when it succeeds, or none do.
//! Holding one write transaction open for the whole stage would give that, but it would also block
//! every other writer (other projects, other processes) for as long as the stage runs — minutes,
//! when stages render video — and turn into `SQLITE_BUSY` for them.
//!
//! Instead each run has its own connection, and its writes go to `TEMP` tables (`stage_*`) that
//! only that connection can see. Writing a TEMP table takes no lock on the main database. The
//! stage reads through TEMP views (`v_*`) that lay its staged rows over the committed ones, so it
//! always reads its own writes. [`StageSession::commit`] then applies everything in one short
//! `BEGIN IMMEDIATE` transaction; on failure the session is simply dropped and the staged rows
//! vanish with the connection. A crash leaves nothing behind in the database either.
//!
//! Uniqueness and references are checked at write time against the merged view, so a stage gets
//! its `conflict` or `not-found` error at the call that caused it; the commit re-checks them
//! against whatever other runs committed meanwhile (constraints and foreign keys of the main tables).
//!
//! Every query carries the session's project id: an id of another project is simply not found.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::projects::{
    ARTIFACT_COLUMNS, CLIP_COLUMNS, JournalEntry, KEYFRAME_COLUMNS, PROJECT_COLUMNS, RUN_COLUMNS,
    SCENE_COLUMNS, artifact_from_row, clip_from_row, keyframe_from_row, parse_id, project_from_row,
    run_from_row, scene_from_row,
};
use super::{
    Artifact, ArtifactRef, DbError, Keyframe, KeyframePosition, Kind, Project, Result, Run, Scene,
    VideoClip, execute_cached, now_ms, query_row_cached,
};

/// The most rows a list call returns at once.
pub const MAX_PAGE: u32 = 500;
/// Longest scene title, in characters.
pub const MAX_TITLE_CHARS: usize = 500;
/// Longest description or prompt, in bytes.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

const TEMP_SCHEMA: &str = r#"
CREATE TEMP TABLE stage_scenes (
    id TEXT PRIMARY KEY NOT NULL, project_id TEXT NOT NULL, idx INTEGER NOT NULL, title TEXT NOT NULL,
    description TEXT NOT NULL, duration_ms INTEGER NOT NULL, created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, UNIQUE (project_id, idx)
);
CREATE TEMP TABLE stage_keyframes (
    id TEXT PRIMARY KEY NOT NULL, project_id TEXT NOT NULL, scene_id TEXT NOT NULL, position TEXT NOT NULL,
    prompt TEXT NOT NULL, image_kind TEXT NOT NULL, image_name TEXT NOT NULL, created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, UNIQUE (scene_id, position)
);
CREATE TEMP TABLE stage_video_clips (
    id TEXT PRIMARY KEY NOT NULL, project_id TEXT NOT NULL, scene_id TEXT NOT NULL UNIQUE,
    video_kind TEXT NOT NULL, video_name TEXT NOT NULL, duration_ms INTEGER NOT NULL,
    frame_rate INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL
);
-- staged IS NULL marks a deletion of a committed artifact.
CREATE TEMP TABLE stage_artifacts (
    project_id TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL,
    sha256 TEXT NOT NULL, run_id TEXT, created_at INTEGER NOT NULL, staged TEXT,
    PRIMARY KEY (project_id, kind, name)
);

CREATE TEMP VIEW v_scenes AS
    SELECT id, project_id, idx, title, description, duration_ms, created_at, updated_at FROM temp.stage_scenes
    UNION ALL
    SELECT id, project_id, idx, title, description, duration_ms, created_at, updated_at FROM main.scenes m
    WHERE NOT EXISTS (SELECT 1 FROM temp.stage_scenes t WHERE t.id = m.id);
CREATE TEMP VIEW v_keyframes AS
    SELECT id, project_id, scene_id, position, prompt, image_kind, image_name, created_at, updated_at
    FROM temp.stage_keyframes
    UNION ALL
    SELECT id, project_id, scene_id, position, prompt, image_kind, image_name, created_at, updated_at
    FROM main.keyframes m WHERE NOT EXISTS (SELECT 1 FROM temp.stage_keyframes t WHERE t.id = m.id);
CREATE TEMP VIEW v_video_clips AS
    SELECT id, project_id, scene_id, video_kind, video_name, duration_ms, frame_rate, created_at, updated_at
    FROM temp.stage_video_clips
    UNION ALL
    SELECT id, project_id, scene_id, video_kind, video_name, duration_ms, frame_rate, created_at, updated_at
    FROM main.video_clips m WHERE NOT EXISTS (SELECT 1 FROM temp.stage_video_clips t WHERE t.id = m.id);
CREATE TEMP VIEW v_artifacts AS
    SELECT project_id, kind, name, size, sha256, run_id, created_at, staged FROM temp.stage_artifacts
    WHERE staged IS NOT NULL
    UNION ALL
    SELECT project_id, kind, name, size, sha256, run_id, created_at, NULL FROM main.artifacts m
    WHERE NOT EXISTS (SELECT 1 FROM temp.stage_artifacts t
                      WHERE t.project_id = m.project_id AND t.kind = m.kind AND t.name = m.name);
"#;

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

/// How much one run may stage. Staged rows live in memory until commit, and the commit copies
/// them in one transaction, so a guest must not be able to stage without bound.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Row writes (creates, updates, artifact records) per run.
    pub max_writes: u64,
    /// Bytes of text (titles, descriptions, prompts, names) written per run.
    pub max_bytes: u64,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_writes: 250_000,
            max_bytes: 256 << 20,
        }
    }
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
}

/// The statements of [`StageSession::commit`] that move staged rows into the main tables, in
/// order: artifacts and scenes before the rows that refer to them, deletions of artifacts after
/// the rows that may have stopped referring to them (foreign keys).
const COMMIT_STAGED: [&str; 5] = [
    "INSERT INTO main.artifacts (project_id, kind, name, size, sha256, run_id, created_at)
         SELECT project_id, kind, name, size, sha256, run_id, created_at FROM temp.stage_artifacts
         WHERE staged IS NOT NULL
         ON CONFLICT (project_id, kind, name) DO UPDATE SET
             size = excluded.size, sha256 = excluded.sha256, run_id = excluded.run_id,
             created_at = excluded.created_at",
    "INSERT INTO main.scenes (id, project_id, idx, title, description, duration_ms, created_at, updated_at)
         SELECT id, project_id, idx, title, description, duration_ms, created_at, updated_at
         FROM temp.stage_scenes WHERE true
         ON CONFLICT (id) DO UPDATE SET
             title = excluded.title, description = excluded.description,
             duration_ms = excluded.duration_ms, updated_at = excluded.updated_at",
    "INSERT INTO main.keyframes (id, project_id, scene_id, position, prompt, image_kind, image_name, created_at, updated_at)
         SELECT id, project_id, scene_id, position, prompt, image_kind, image_name, created_at, updated_at
         FROM temp.stage_keyframes WHERE true
         ON CONFLICT (id) DO UPDATE SET
             prompt = excluded.prompt, image_kind = excluded.image_kind,
             image_name = excluded.image_name, updated_at = excluded.updated_at",
    "INSERT INTO main.video_clips (id, project_id, scene_id, video_kind, video_name, duration_ms, frame_rate, created_at, updated_at)
         SELECT id, project_id, scene_id, video_kind, video_name, duration_ms, frame_rate, created_at, updated_at
         FROM temp.stage_video_clips WHERE true
         ON CONFLICT (id) DO UPDATE SET
             video_kind = excluded.video_kind, video_name = excluded.video_name,
             duration_ms = excluded.duration_ms, frame_rate = excluded.frame_rate,
             updated_at = excluded.updated_at",
    "DELETE FROM main.artifacts WHERE EXISTS (
         SELECT 1 FROM temp.stage_artifacts t
         WHERE t.staged IS NULL AND t.project_id = main.artifacts.project_id
           AND t.kind = main.artifacts.kind AND t.name = main.artifacts.name)",
];

/// Most bytes of staged text a session may have written for its connection to be reused.
const RECYCLE_MAX_BYTES: u64 = 16 << 20;
/// Most staged writes a session may have made for its connection to be reused.
const RECYCLE_MAX_WRITES: u64 = 50_000;

/// A session's connection, its staging tables emptied, ready for the next session of the same
/// database (see [`StageSession::recycle`]).
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

fn check_title(title: &str) -> Result<()> {
    if title.trim().is_empty() {
        return Err(DbError::InvalidInput(
            "a scene title must not be empty".into(),
        ));
    }
    crate::text::check_plain("a scene title", title).map_err(DbError::InvalidInput)?;
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(DbError::InvalidInput(format!(
            "a scene title must have at most {MAX_TITLE_CHARS} characters"
        )));
    }
    Ok(())
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

fn check_frame_rate(v: u32) -> Result<()> {
    if !(1..=1000).contains(&v) {
        return Err(DbError::InvalidInput(format!(
            "a frame rate must be 1 to 1000, not {v}"
        )));
    }
    Ok(())
}

fn check_limit(limit: u32) -> Result<i64> {
    if limit == 0 {
        return Err(DbError::InvalidInput(
            "a page limit must be more than 0".into(),
        ));
    }
    Ok(i64::from(limit.min(MAX_PAGE)))
}

fn bad_cursor(cursor: &str) -> DbError {
    DbError::InvalidInput(format!("{cursor:?} is not a cursor this listing returned"))
}

/// Cursor of index-ordered listings: the last index seen.
fn parse_index_cursor(cursor: Option<&str>) -> Result<i64> {
    match cursor {
        None => Ok(-1),
        Some(c) => c.parse::<u32>().map(i64::from).map_err(|_| bad_cursor(c)),
    }
}

/// Splits `rows` (fetched with `limit + 1`) into a page, deriving the cursor from the last item.
fn paginate<T>(mut rows: Vec<T>, limit: i64, cursor_of: impl Fn(&T) -> String) -> Page<T> {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(cursor_of)
    } else {
        None
    };
    Page {
        items: rows,
        next_cursor,
    }
}

impl StageSession {
    /// Opens a session on the database at `path` for run `run_id` of project `project_id`.
    pub fn open(path: &Path, project_id: &str, run_id: &str) -> Result<Self> {
        Self::open_reusing(path, None, project_id, run_id)
    }

    /// [`StageSession::open`] on `spare`, a connection an earlier session gave back with
    /// [`StageSession::recycle`], if there is one. Reusing a connection skips opening the
    /// database, parsing its schema and creating the staging tables, and SQLite's directory
    /// sync of a newly opened write-ahead log: most of a small stage's database overhead.
    pub fn open_reusing(
        path: &Path,
        spare: Option<Recycled>,
        project_id: &str,
        run_id: &str,
    ) -> Result<Self> {
        let mut session = match spare {
            // Only a connection opened on this very path; any other is closed.
            Some(Recycled {
                conn,
                path: Some(p),
            }) if p == path => Self::new(conn, project_id, run_id)?,
            _ => Self::with_connection(super::open(path)?, project_id, run_id)?,
        };
        session.db_path = Some(path.to_owned());
        Ok(session)
    }

    /// Turns an open connection (set up by [`super::open`]) into a session.
    pub fn with_connection(conn: Connection, project_id: &str, run_id: &str) -> Result<Self> {
        // Staged rows never touch the disk file; keep them in memory.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.execute_batch(TEMP_SCHEMA)?;
        Self::new(conn, project_id, run_id)
    }

    fn new(conn: Connection, project_id: &str, run_id: &str) -> Result<Self> {
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
        let writes = self.writes + 1;
        let total = self.bytes.saturating_add(bytes as u64);
        if writes > self.limits.max_writes {
            return Err(DbError::LimitExceeded(format!(
                "the stage has made {} row writes; the limit per run is {}",
                self.writes, self.limits.max_writes
            )));
        }
        if total > self.limits.max_bytes {
            return Err(DbError::LimitExceeded(format!(
                "the stage has written more than {} bytes of text; the limit per run is {}",
                self.bytes, self.limits.max_bytes
            )));
        }
        self.writes = writes;
        self.bytes = total;
        Ok(())
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
            &format!("SELECT {PROJECT_COLUMNS} FROM main.projects WHERE id = ?1"),
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

    // ---- scenes -------------------------------------------------------------------------------

    /// Creates a scene.
    pub fn create_scene(&mut self, new: NewScene) -> Result<Scene> {
        check_title(&new.title)?;
        check_text("a scene description", &new.description)?;
        check_positive("a scene duration", new.duration_ms)?;
        let taken: bool = query_row_cached(
            &self.conn,
            "SELECT EXISTS (SELECT 1 FROM v_scenes WHERE project_id = ?1 AND idx = ?2)",
            params![self.project_id, new.index],
            |r| r.get(0),
        )?;
        if taken {
            return Err(DbError::Conflict(format!(
                "scene index {} is already taken",
                new.index
            )));
        }
        let now = now_ms();
        let scene = Scene {
            id: uuid::Uuid::new_v4().hyphenated().to_string(),
            index: new.index,
            title: new.title,
            description: new.description,
            duration_ms: new.duration_ms,
            created_at: now,
            updated_at: now,
        };
        self.put_scene(&scene)?;
        Ok(scene)
    }

    fn put_scene(&mut self, s: &Scene) -> Result<()> {
        self.charge(s.title.len() + s.description.len())?;
        execute_cached(
            &self.conn,
            "INSERT OR REPLACE INTO temp.stage_scenes
             (id, project_id, idx, title, description, duration_ms, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                s.id,
                self.project_id,
                s.index,
                s.title,
                s.description,
                s.duration_ms,
                s.created_at,
                s.updated_at
            ],
        )?;
        Ok(())
    }

    /// Reads a scene of this project.
    pub fn get_scene(&self, id: &str) -> Result<Scene> {
        let id = Self::row_id("scene", id)?;
        query_row_cached(
            &self.conn,
            &format!("SELECT {SCENE_COLUMNS} FROM v_scenes WHERE id = ?1 AND project_id = ?2"),
            [&id, &self.project_id],
            scene_from_row,
        )
        .optional()?
        .ok_or_else(|| DbError::NotFound(format!("no scene with id {id}")))
    }

    /// Lists scenes in index order.
    pub fn list_scenes(&self, cursor: Option<&str>, limit: u32) -> Result<Page<Scene>> {
        let limit = check_limit(limit)?;
        let after = parse_index_cursor(cursor)?;
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {SCENE_COLUMNS} FROM v_scenes WHERE project_id = ?1 AND idx > ?2 ORDER BY idx LIMIT ?3"
        ))?;
        let rows = st
            .query_map(params![self.project_id, after, limit + 1], scene_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(paginate(rows, limit, |s| s.index.to_string()))
    }

    /// Changes a scene.
    pub fn update_scene(&mut self, id: &str, changes: SceneUpdate) -> Result<Scene> {
        let mut scene = self.get_scene(id)?;
        if let Some(title) = changes.title {
            check_title(&title)?;
            scene.title = title;
        }
        if let Some(description) = changes.description {
            check_text("a scene description", &description)?;
            scene.description = description;
        }
        if let Some(d) = changes.duration_ms {
            check_positive("a scene duration", d)?;
            scene.duration_ms = d;
        }
        scene.updated_at = now_ms();
        self.put_scene(&scene)?;
        Ok(scene)
    }

    // ---- keyframes ----------------------------------------------------------------------------

    fn require_artifact(&self, r: &ArtifactRef) -> Result<()> {
        if self.artifact(r.kind, &r.name)?.is_none() {
            return Err(DbError::InvalidInput(format!(
                "artifact {}/{} does not exist; publish it before referring to it",
                r.kind, r.name
            )));
        }
        Ok(())
    }

    /// Creates a keyframe.
    pub fn create_keyframe(&mut self, new: NewKeyframe) -> Result<Keyframe> {
        let scene = self.get_scene(&new.scene_id)?;
        check_text("a keyframe prompt", &new.prompt)?;
        self.require_artifact(&new.image)?;
        let taken: bool = query_row_cached(
            &self.conn,
            "SELECT EXISTS (SELECT 1 FROM v_keyframes WHERE scene_id = ?1 AND position = ?2)",
            params![scene.id, new.position],
            |r| r.get(0),
        )?;
        if taken {
            return Err(DbError::Conflict(format!(
                "scene {} already has a {} keyframe",
                scene.index, new.position
            )));
        }
        let now = now_ms();
        let k = Keyframe {
            id: uuid::Uuid::new_v4().hyphenated().to_string(),
            scene_id: scene.id,
            position: new.position,
            prompt: new.prompt,
            image: new.image,
            created_at: now,
            updated_at: now,
        };
        self.put_keyframe(&k)?;
        Ok(k)
    }

    fn put_keyframe(&mut self, k: &Keyframe) -> Result<()> {
        self.charge(k.prompt.len() + k.image.name.len())?;
        execute_cached(&self.conn, "INSERT OR REPLACE INTO temp.stage_keyframes
             (id, project_id, scene_id, position, prompt, image_kind, image_name, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                k.id, self.project_id, k.scene_id, k.position, k.prompt, k.image.kind, k.image.name,
                k.created_at, k.updated_at
            ],
        )?;
        Ok(())
    }

    /// Reads a keyframe of this project.
    pub fn get_keyframe(&self, id: &str) -> Result<Keyframe> {
        let id = Self::row_id("keyframe", id)?;
        query_row_cached(
            &self.conn,
            &format!(
                "SELECT {KEYFRAME_COLUMNS} FROM v_keyframes WHERE id = ?1 AND project_id = ?2"
            ),
            [&id, &self.project_id],
            keyframe_from_row,
        )
        .optional()?
        .ok_or_else(|| DbError::NotFound(format!("no keyframe with id {id}")))
    }

    /// Lists keyframes by scene index, start before end; of one scene if `scene_id` is given.
    pub fn list_keyframes(
        &self,
        scene_id: Option<&str>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Keyframe>> {
        let limit = check_limit(limit)?;
        let scene_id = match scene_id {
            Some(s) => Some(self.get_scene(s)?.id),
            None => None,
        };
        // The cursor is "<scene index>:<0 for start, 1 for end>" of the last row returned.
        let (after_idx, after_pos) = match cursor {
            None => (-1i64, 1i64),
            Some(c) => {
                let (i, p) = c.split_once(':').ok_or_else(|| bad_cursor(c))?;
                let i = i.parse::<u32>().map_err(|_| bad_cursor(c))?;
                let p = p
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= 1)
                    .ok_or_else(|| bad_cursor(c))?;
                (i64::from(i), i64::from(p))
            }
        };
        let cols = KEYFRAME_COLUMNS.replace(", ", ", k.");
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT k.{cols}, s.idx, (k.position = 'end') AS pos FROM v_keyframes k
             JOIN v_scenes s ON s.id = k.scene_id AND s.project_id = k.project_id
             WHERE k.project_id = ?1 AND (?2 IS NULL OR k.scene_id = ?2) AND (s.idx, (k.position = 'end')) > (?3, ?4)
             ORDER BY s.idx, pos LIMIT ?5"
        ))?;
        let rows = st
            .query_map(
                params![self.project_id, scene_id, after_idx, after_pos, limit + 1],
                |r| {
                    Ok((
                        keyframe_from_row(r)?,
                        r.get::<_, u32>(8)?,
                        r.get::<_, u8>(9)?,
                    ))
                },
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let page = paginate(rows, limit, |(_, idx, pos)| format!("{idx}:{pos}"));
        Ok(Page {
            items: page.items.into_iter().map(|(k, _, _)| k).collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// Changes a keyframe.
    pub fn update_keyframe(&mut self, id: &str, changes: KeyframeUpdate) -> Result<Keyframe> {
        let mut k = self.get_keyframe(id)?;
        if let Some(prompt) = changes.prompt {
            check_text("a keyframe prompt", &prompt)?;
            k.prompt = prompt;
        }
        if let Some(image) = changes.image {
            self.require_artifact(&image)?;
            k.image = image;
        }
        k.updated_at = now_ms();
        self.put_keyframe(&k)?;
        Ok(k)
    }

    // ---- video clips --------------------------------------------------------------------------

    /// Creates a video clip.
    pub fn create_video_clip(&mut self, new: NewVideoClip) -> Result<VideoClip> {
        let scene = self.get_scene(&new.scene_id)?;
        check_positive("a clip duration", new.duration_ms)?;
        check_frame_rate(new.frame_rate)?;
        self.require_artifact(&new.video)?;
        let taken: bool = query_row_cached(
            &self.conn,
            "SELECT EXISTS (SELECT 1 FROM v_video_clips WHERE scene_id = ?1)",
            [&scene.id],
            |r| r.get(0),
        )?;
        if taken {
            return Err(DbError::Conflict(format!(
                "scene {} already has a video clip",
                scene.index
            )));
        }
        let now = now_ms();
        let c = VideoClip {
            id: uuid::Uuid::new_v4().hyphenated().to_string(),
            scene_id: scene.id,
            video: new.video,
            duration_ms: new.duration_ms,
            frame_rate: new.frame_rate,
            created_at: now,
            updated_at: now,
        };
        self.put_clip(&c)?;
        Ok(c)
    }

    fn put_clip(&mut self, c: &VideoClip) -> Result<()> {
        self.charge(c.video.name.len())?;
        execute_cached(&self.conn, "INSERT OR REPLACE INTO temp.stage_video_clips
             (id, project_id, scene_id, video_kind, video_name, duration_ms, frame_rate, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                c.id, self.project_id, c.scene_id, c.video.kind, c.video.name, c.duration_ms, c.frame_rate,
                c.created_at, c.updated_at
            ],
        )?;
        Ok(())
    }

    /// Reads a video clip of this project.
    pub fn get_video_clip(&self, id: &str) -> Result<VideoClip> {
        let id = Self::row_id("video clip", id)?;
        query_row_cached(
            &self.conn,
            &format!("SELECT {CLIP_COLUMNS} FROM v_video_clips WHERE id = ?1 AND project_id = ?2"),
            [&id, &self.project_id],
            clip_from_row,
        )
        .optional()?
        .ok_or_else(|| DbError::NotFound(format!("no video clip with id {id}")))
    }

    /// Lists video clips in scene order; of one scene if `scene_id` is given.
    pub fn list_video_clips(
        &self,
        scene_id: Option<&str>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<VideoClip>> {
        let limit = check_limit(limit)?;
        let scene_id = match scene_id {
            Some(s) => Some(self.get_scene(s)?.id),
            None => None,
        };
        let after = parse_index_cursor(cursor)?;
        let cols = CLIP_COLUMNS.replace(", ", ", c.");
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT c.{cols}, s.idx FROM v_video_clips c
             JOIN v_scenes s ON s.id = c.scene_id AND s.project_id = c.project_id
             WHERE c.project_id = ?1 AND (?2 IS NULL OR c.scene_id = ?2) AND s.idx > ?3
             ORDER BY s.idx LIMIT ?4"
        ))?;
        let rows = st
            .query_map(params![self.project_id, scene_id, after, limit + 1], |r| {
                Ok((clip_from_row(r)?, r.get::<_, u32>(8)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let page = paginate(rows, limit, |(_, idx)| idx.to_string());
        Ok(Page {
            items: page.items.into_iter().map(|(c, _)| c).collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// Changes a video clip.
    pub fn update_video_clip(&mut self, id: &str, changes: VideoClipUpdate) -> Result<VideoClip> {
        let mut c = self.get_video_clip(id)?;
        if let Some(video) = changes.video {
            self.require_artifact(&video)?;
            c.video = video;
        }
        if let Some(d) = changes.duration_ms {
            check_positive("a clip duration", d)?;
            c.duration_ms = d;
        }
        if let Some(f) = changes.frame_rate {
            check_frame_rate(f)?;
            c.frame_rate = f;
        }
        c.updated_at = now_ms();
        self.put_clip(&c)?;
        Ok(c)
    }

    // ---- artifacts ----------------------------------------------------------------------------

    /// Looks an artifact up, staged or committed.
    pub fn artifact(&self, kind: Kind, name: &str) -> Result<Option<ArtifactView>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {ARTIFACT_COLUMNS}, staged FROM v_artifacts WHERE project_id = ?1 AND kind = ?2 AND name = ?3"
        ))?;
        Ok(st
            .query_row(params![self.project_id, kind, name], |r| {
                Ok(ArtifactView {
                    info: artifact_from_row(r)?,
                    staged: r.get(6)?,
                })
            })
            .optional()?)
    }

    /// Bytes on disk of the project's committed artifacts: all of them, including those this
    /// run replaces or deletes, whose files stay until it commits.
    pub fn committed_artifact_bytes(&self) -> Result<u64> {
        let total: i64 = query_row_cached(
            &self.conn,
            "SELECT coalesce(sum(size), 0) FROM main.artifacts WHERE project_id = ?1",
            [&self.project_id],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(total).unwrap_or(0))
    }

    /// Bytes of the staged files this run holds (finished writers not yet committed).
    pub fn staged_artifact_bytes(&self) -> Result<u64> {
        let total: i64 = query_row_cached(
            &self.conn,
            "SELECT coalesce(sum(size), 0) FROM temp.stage_artifacts WHERE staged IS NOT NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(total).unwrap_or(0))
    }

    /// Lists the artifacts of one kind in name order; the cursor is the last name returned.
    pub fn list_artifacts(
        &self,
        kind: Kind,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Artifact>> {
        let limit = check_limit(limit)?;
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {ARTIFACT_COLUMNS} FROM v_artifacts WHERE project_id = ?1 AND kind = ?2 AND name > ?3
             ORDER BY name LIMIT ?4"
        ))?;
        let rows = st
            .query_map(
                params![self.project_id, kind, cursor.unwrap_or(""), limit + 1],
                artifact_from_row,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(paginate(rows, limit, |a| a.name.clone()))
    }

    /// Records a finished staged file as the new content of `kind/name`. Returns the staged file
    /// of an earlier write of the same name in this run, which the caller must discard.
    pub fn stage_artifact(
        &mut self,
        kind: Kind,
        name: &str,
        staged: &str,
        size: u64,
        sha256: &str,
    ) -> Result<Option<String>> {
        self.charge(name.len())?;
        let previous = self.staged_file(kind, name)?;
        execute_cached(
            &self.conn,
            "INSERT OR REPLACE INTO temp.stage_artifacts
             (project_id, kind, name, size, sha256, run_id, created_at, staged)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                self.project_id,
                kind,
                name,
                size,
                sha256,
                self.run_id,
                now_ms(),
                staged
            ],
        )?;
        Ok(previous)
    }

    fn staged_file(&self, kind: Kind, name: &str) -> Result<Option<String>> {
        Ok(query_row_cached(
            &self.conn,
            "SELECT staged FROM temp.stage_artifacts WHERE project_id = ?1 AND kind = ?2 AND name = ?3",
            params![self.project_id, kind, name],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()?
        .flatten())
    }

    /// Stages the deletion of `kind/name`. Refused while a keyframe or clip (as this run sees
    /// them) refers to it. Returns a staged file of this run that the caller must discard.
    pub fn stage_delete(&mut self, kind: Kind, name: &str) -> Result<Option<String>> {
        self.charge(name.len())?;
        let Some(view) = self.artifact(kind, name)? else {
            return Err(DbError::NotFound(format!("no artifact {kind}/{name}")));
        };
        let referenced: bool = query_row_cached(&self.conn, "SELECT EXISTS (SELECT 1 FROM v_keyframes WHERE project_id = ?1 AND image_kind = ?2 AND image_name = ?3)
                 OR EXISTS (SELECT 1 FROM v_video_clips WHERE project_id = ?1 AND video_kind = ?2 AND video_name = ?3)",
            params![self.project_id, kind, name],
            |r| r.get(0),
        )?;
        if referenced {
            return Err(DbError::Conflict(format!(
                "artifact {kind}/{name} is still referred to by a keyframe or video clip"
            )));
        }
        let committed: bool = query_row_cached(
            &self.conn,
            "SELECT EXISTS (SELECT 1 FROM main.artifacts WHERE project_id = ?1 AND kind = ?2 AND name = ?3)",
            params![self.project_id, kind, name],
            |r| r.get(0),
        )?;
        if committed {
            // A tombstone: hides the committed row now, deletes it at commit.
            execute_cached(
                &self.conn,
                "INSERT OR REPLACE INTO temp.stage_artifacts
                 (project_id, kind, name, size, sha256, run_id, created_at, staged)
                 VALUES (?1, ?2, ?3, 0, '', ?4, ?5, NULL)",
                params![self.project_id, kind, name, self.run_id, now_ms()],
            )?;
        } else {
            execute_cached(
                &self.conn,
                "DELETE FROM temp.stage_artifacts WHERE project_id = ?1 AND kind = ?2 AND name = ?3",
                params![self.project_id, kind, name],
            )?;
        }
        Ok(view.staged)
    }

    /// Every staged file this run still holds, to discard when the run fails.
    pub fn staged_files(&self) -> Result<Vec<(Kind, String)>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT kind, staged FROM temp.stage_artifacts WHERE staged IS NOT NULL ORDER BY kind, name")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Ends the session and gives back its connection for the next one, with every staged row
    /// deleted, or `None` if it should not be reused (it is then closed): a transaction or a
    /// statement left open, a delete that failed, or a session that staged so much that its
    /// in-memory staging database, which deleting does not shrink, is better freed whole.
    /// Nothing of this session reaches the next.
    pub fn recycle(mut self) -> Option<Recycled> {
        if self.bytes > RECYCLE_MAX_BYTES || self.writes > RECYCLE_MAX_WRITES {
            return None;
        }
        if self.clear_deadline().is_err() || !self.conn.is_autocommit() || self.conn.is_busy() {
            return None;
        }
        for table in [
            "temp.stage_scenes",
            "temp.stage_keyframes",
            "temp.stage_video_clips",
            "temp.stage_artifacts",
        ] {
            let cleared = self
                .conn
                .prepare_cached(&format!("DELETE FROM {table}"))
                .and_then(|mut st| st.execute([]));
            if cleared.is_err() {
                return None;
            }
        }
        Some(Recycled {
            conn: self.conn,
            path: self.db_path,
        })
    }

    /// Makes everything this run wrote visible at once, records the run as succeeded with
    /// `summary`, and returns the file moves the caller must now carry out (and then clear from
    /// the journal). Either all of it commits or none of it does.
    pub fn commit(&mut self, summary: &str) -> Result<Vec<JournalEntry>> {
        // Whoever ran the stage should have cleared the deadline already; make sure.
        self.clear_deadline()?;
        let pid = self.project_id.clone();
        let run_id = self.run_id.clone();
        let now = now_ms();
        super::write_transaction(&mut self.conn, |tx| {
            let still_running: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM main.pipeline_runs WHERE id = ?1 AND status = 'running')",
                )?
                .query_row([&run_id], |r| r.get(0))?;
            if !still_running {
                return Err(DbError::Conflict(format!(
                    "run {run_id} is no longer running; nothing was committed"
                )));
            }
            // Order matters for foreign keys: artifacts and scenes before the rows that refer to
            // them, deletions of artifacts after the rows that may have stopped referring to them.
            // Cached: the statements are parsed once per connection, not once per commit.
            for sql in COMMIT_STAGED {
                tx.prepare_cached(sql)?.execute([])?;
            }
            tx.prepare_cached(
                "INSERT INTO main.publish_journal (run_id, project_id, kind, name, staged)
                 SELECT ?1, project_id, kind, name, staged FROM temp.stage_artifacts",
            )?
            .execute([&run_id])?;
            tx.prepare_cached(
                "UPDATE main.pipeline_runs SET status = 'succeeded', summary = ?2, finished_at = ?3 WHERE id = ?1",
            )?
            .execute(params![run_id, summary, now])?;
            tx.prepare_cached(
                "UPDATE main.projects SET status = 'ready', updated_at = ?2 WHERE id = ?1",
            )?
            .execute(params![pid, now])?;
            let mut st = tx.prepare_cached(
                "SELECT run_id, project_id, kind, name, staged FROM main.publish_journal
                 WHERE run_id = ?1 ORDER BY kind, name",
            )?;
            let rows = st.query_map([&run_id], |r| {
                Ok(JournalEntry {
                    run_id: r.get(0)?,
                    project_id: r.get(1)?,
                    kind: r.get(2)?,
                    name: r.get(3)?,
                    staged: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{KeyValues, create_project, get_run, migrate, open, project_detail, start_run};

    struct Fixture {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
        main: Connection,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vidpipe.db");
        let mut main = open(&path).expect("open");
        migrate(&mut main).expect("migrate");
        Fixture {
            _dir: dir,
            path,
            main,
        }
    }

    /// Starts a run of `project` and returns its id.
    fn start(f: &mut Fixture, project: &str) -> String {
        start_run(
            &mut f.main,
            project,
            "test",
            &"0".repeat(64),
            &KeyValues::new(),
            None,
        )
        .expect("run")
        .id
    }

    fn session(f: &mut Fixture, project: &str) -> StageSession {
        let run = start(f, project);
        StageSession::open(&f.path, project, &run).expect("session")
    }

    fn scene(index: u32) -> NewScene {
        NewScene {
            index,
            title: format!("scene {index}"),
            description: "d".into(),
            duration_ms: 1000,
        }
    }

    /// A run of `project` on `spare`, the connection an earlier session gave back.
    fn session_on(f: &mut Fixture, spare: Recycled, project: &str) -> StageSession {
        let run = start(f, project);
        StageSession::open_reusing(&f.path, Some(spare), project, &run).expect("session")
    }

    #[test]
    fn a_recycled_connection_carries_nothing_of_its_last_session_into_the_next() {
        let mut f = fixture();
        let a = create_project(&mut f.main, "a", "", &KeyValues::new()).expect("a");
        let b = create_project(&mut f.main, "b", "", &KeyValues::new()).expect("b");
        // A run of project a stages rows and a file, then fails: nothing is committed.
        let mut first = session(&mut f, &a.id);
        first.create_scene(scene(0)).expect("create");
        first
            .stage_artifact(Kind::Output, "a.bin", ".stage-a", 1, &"a".repeat(64))
            .expect("stage");
        // Its deadline has passed; it must not follow the connection into the next session.
        first
            .set_deadline(std::time::Instant::now())
            .expect("deadline");
        let spare = first.recycle().expect("a clean connection comes back");
        // The next run, of project b, on the same connection, sees none of it...
        let mut second = session_on(&mut f, spare, &b.id);
        assert!(second.list_scenes(None, 10).expect("list").items.is_empty());
        assert!(second.staged_files().expect("staged").is_empty());
        second.create_scene(scene(0)).expect("index 0 is free in b");
        second.commit("ok").expect("commit");
        // ...and commits only its own row.
        assert!(
            project_detail(&mut f.main, &a.id)
                .expect("a")
                .scenes
                .is_empty()
        );
        assert_eq!(
            project_detail(&mut f.main, &b.id).expect("b").scenes.len(),
            1
        );
        // A third run of a, after a commit, starts clean too.
        let spare = second.recycle().expect("clean after a commit");
        let mut third = session_on(&mut f, spare, &a.id);
        assert!(third.list_scenes(None, 10).expect("list").items.is_empty());
        assert!(third.staged_files().expect("staged").is_empty());
        third.create_scene(scene(0)).expect("create");
        third.commit("ok").expect("commit");
        assert_eq!(
            project_detail(&mut f.main, &a.id).expect("a").scenes.len(),
            1
        );
    }

    #[test]
    fn a_connection_inside_a_transaction_or_after_a_large_session_is_not_recycled() {
        let mut f = fixture();
        let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
        let s = session(&mut f, &p.id);
        s.conn.execute_batch("BEGIN").expect("begin");
        assert!(s.recycle().is_none());
        let mut large = session(&mut f, &p.id);
        large.writes = RECYCLE_MAX_WRITES + 1;
        assert!(large.recycle().is_none(), "its staging memory is freed");
        let mut large = session(&mut f, &p.id);
        large.bytes = RECYCLE_MAX_BYTES + 1;
        assert!(large.recycle().is_none());
        assert!(session(&mut f, &p.id).recycle().is_some(), "a small one is");
    }

    #[test]
    fn a_recycled_connection_is_used_only_for_the_database_it_was_opened_on() {
        let mut a = fixture();
        let mut b = fixture();
        let pa = create_project(&mut a.main, "a", "", &KeyValues::new()).expect("a");
        let pb = create_project(&mut b.main, "b", "", &KeyValues::new()).expect("b");
        let run = start(&mut a, &pa.id);
        let spare = StageSession::open(&a.path, &pa.id, &run)
            .expect("session")
            .recycle()
            .expect("recycled");
        // Offered to a session of database b, it is closed and b gets its own connection.
        let run = start(&mut b, &pb.id);
        let mut s =
            StageSession::open_reusing(&b.path, Some(spare), &pb.id, &run).expect("session");
        s.create_scene(scene(0)).expect("create");
        s.commit("ok").expect("commit");
        assert_eq!(
            project_detail(&mut b.main, &pb.id).expect("b").scenes.len(),
            1
        );
    }

    #[test]
    fn staged_rows_are_invisible_to_others_until_commit_and_then_all_appear() {
        let mut f = fixture();
        let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
        let mut s = session(&mut f, &p.id);
        for i in 0..3 {
            s.create_scene(scene(i)).expect("create");
        }
        s.stage_artifact(Kind::Output, "doc.md", ".stage-x", 3, &"a".repeat(64))
            .expect("stage");
        assert_eq!(
            s.list_scenes(None, 10).expect("list").items.len(),
            3,
            "the stage reads its own writes"
        );
        assert!(
            project_detail(&mut f.main, &p.id)
                .expect("detail")
                .scenes
                .is_empty()
        );
        let journal = s.commit("ok").expect("commit");
        assert_eq!(journal.len(), 1);
        assert_eq!(journal[0].staged.as_deref(), Some(".stage-x"));
        let detail = project_detail(&mut f.main, &p.id).expect("detail");
        assert_eq!(detail.scenes.len(), 3);
        assert_eq!(detail.artifacts.len(), 1);
        assert_eq!(detail.runs[0].status, crate::db::RunStatus::Succeeded);
    }

    #[test]
    fn a_dropped_session_leaves_no_rows_behind() {
        let mut f = fixture();
        let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
        let mut s = session(&mut f, &p.id);
        s.create_scene(scene(0)).expect("create");
        drop(s);
        let n: i64 = f
            .main
            .query_row("SELECT count(*) FROM scenes", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 0);
    }

    #[test]
    fn another_projects_rows_are_not_found_for_reads_and_updates() {
        let mut f = fixture();
        let a = create_project(&mut f.main, "a", "", &KeyValues::new()).expect("a");
        let b = create_project(&mut f.main, "b", "", &KeyValues::new()).expect("b");
        let mut sa = session(&mut f, &a.id);
        let theirs = sa.create_scene(scene(0)).expect("create");
        sa.commit("ok").expect("commit");
        let mut sb = session(&mut f, &b.id);
        assert!(matches!(
            sb.get_scene(&theirs.id),
            Err(DbError::NotFound(_))
        ));
        assert!(matches!(
            sb.update_scene(&theirs.id, SceneUpdate::default()),
            Err(DbError::NotFound(_))
        ));
        assert!(sb.list_scenes(None, 10).expect("list").items.is_empty());
        let new = NewKeyframe {
            scene_id: theirs.id.clone(),
            position: KeyframePosition::Start,
            prompt: String::new(),
            image: ArtifactRef {
                kind: Kind::Keyframe,
                name: "x.png".into(),
            },
        };
        assert!(matches!(sb.create_keyframe(new), Err(DbError::NotFound(_))));
        assert!(matches!(
            sb.get_scene("not a uuid"),
            Err(DbError::NotFound(_))
        ));
    }

    #[test]
    fn duplicate_scene_indexes_and_dangling_artifact_references_are_refused() {
        let mut f = fixture();
        let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
        let mut s = session(&mut f, &p.id);
        let sc = s.create_scene(scene(0)).expect("create");
        assert!(matches!(
            s.create_scene(scene(0)),
            Err(DbError::Conflict(_))
        ));
        let new = NewKeyframe {
            scene_id: sc.id.clone(),
            position: KeyframePosition::Start,
            prompt: "p".into(),
            image: ArtifactRef {
                kind: Kind::Keyframe,
                name: "missing.png".into(),
            },
        };
        assert!(matches!(
            s.create_keyframe(new.clone()),
            Err(DbError::InvalidInput(_))
        ));
        s.stage_artifact(
            Kind::Keyframe,
            "missing.png",
            ".stage-1",
            1,
            &"b".repeat(64),
        )
        .expect("stage");
        s.create_keyframe(new.clone()).expect("now it exists");
        assert!(matches!(s.create_keyframe(new), Err(DbError::Conflict(_))));
        assert!(matches!(
            s.stage_delete(Kind::Keyframe, "missing.png"),
            Err(DbError::Conflict(_))
        ));
    }

    #[test]
    fn staging_beyond_the_per_run_limits_is_refused_as_limit_exceeded() {
        let mut f = fixture();
        let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
        let mut s = session(&mut f, &p.id);
        s.set_limits(SessionLimits {
            max_writes: 3,
            max_bytes: 1 << 20,
        });
        for i in 0..3 {
            s.create_scene(scene(i)).expect("within the limit");
        }
        let err = s.create_scene(scene(3)).expect_err("over the limit");
        assert!(matches!(err, DbError::LimitExceeded(_)), "{err}");
        assert!(err.to_string().contains("limit per run is 3"), "{err}");
        let mut s = session(&mut f, &p.id);
        s.set_limits(SessionLimits {
            max_writes: 100,
            max_bytes: 10,
        });
        let err = s
            .create_scene(NewScene {
                description: "x".repeat(20),
                ..scene(0)
            })
            .expect_err("too many bytes");
        assert!(matches!(err, DbError::LimitExceeded(_)), "{err}");
    }

    #[test]
    fn database_calls_after_the_deadline_are_interrupted_and_the_commit_is_not() {
        let mut f = fixture();
        let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
        let mut s = session(&mut f, &p.id);
        for i in 0..300 {
            s.create_scene(scene(i)).expect("create");
        }
        s.set_deadline(std::time::Instant::now()).expect("deadline");
        let err = s.list_scenes(None, 500).expect_err("past the deadline");
        assert!(matches!(err, DbError::Interrupted), "{err}");
        s.commit("ok").expect("the commit is not interrupted");
    }

    #[test]
    fn pages_cover_every_row_exactly_once() {
        let mut f = fixture();
        let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
        let mut s = session(&mut f, &p.id);
        for i in (0..23).rev() {
            s.create_scene(scene(i * 2)).expect("create");
        }
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = s.list_scenes(cursor.as_deref(), 5).expect("page");
            seen.extend(page.items.iter().map(|x| x.index));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, (0..23).map(|i| i * 2).collect::<Vec<_>>());
        assert!(matches!(
            s.list_scenes(Some("garbage"), 5),
            Err(DbError::InvalidInput(_))
        ));
        assert!(matches!(
            s.list_scenes(None, 0),
            Err(DbError::InvalidInput(_))
        ));
    }

    #[test]
    fn keyframes_list_in_scene_order_start_before_end_across_pages() {
        let mut f = fixture();
        let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
        let mut s = session(&mut f, &p.id);
        s.stage_artifact(Kind::Keyframe, "k.png", ".stage-k", 1, &"c".repeat(64))
            .expect("stage");
        for i in (0..4).rev() {
            let sc = s.create_scene(scene(i)).expect("scene");
            for position in [KeyframePosition::End, KeyframePosition::Start] {
                s.create_keyframe(NewKeyframe {
                    scene_id: sc.id.clone(),
                    position,
                    prompt: format!("{i}"),
                    image: ArtifactRef {
                        kind: Kind::Keyframe,
                        name: "k.png".into(),
                    },
                })
                .expect("keyframe");
            }
        }
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = s.list_keyframes(None, cursor.as_deref(), 3).expect("page");
            seen.extend(
                page.items
                    .iter()
                    .map(|k| format!("{}{}", k.prompt, k.position)),
            );
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let expected: Vec<String> = (0..4)
            .flat_map(|i| [format!("{i}start"), format!("{i}end")])
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn committing_a_run_that_is_no_longer_running_is_refused() {
        let mut f = fixture();
        let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
        let mut s = session(&mut f, &p.id);
        s.create_scene(scene(0)).expect("create");
        let run_id = s.run_id().to_owned();
        crate::db::fail_run(&mut f.main, &run_id, "killed").expect("fail");
        assert!(matches!(s.commit("late"), Err(DbError::Conflict(_))));
        assert_eq!(
            get_run(&f.main, &run_id).expect("run").status,
            crate::db::RunStatus::Failed
        );
        let n: i64 = f
            .main
            .query_row("SELECT count(*) FROM scenes", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 0);
    }

    #[test]
    fn deleting_a_committed_artifact_hides_it_now_and_removes_it_at_commit() {
        let mut f = fixture();
        let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
        let mut s = session(&mut f, &p.id);
        s.stage_artifact(Kind::Output, "a.txt", ".stage-a", 1, &"d".repeat(64))
            .expect("stage");
        s.commit("ok").expect("commit");
        let mut s = session(&mut f, &p.id);
        assert!(s.artifact(Kind::Output, "a.txt").expect("lookup").is_some());
        s.stage_delete(Kind::Output, "a.txt").expect("delete");
        assert!(s.artifact(Kind::Output, "a.txt").expect("lookup").is_none());
        let journal = s.commit("ok").expect("commit");
        assert_eq!(journal.len(), 1);
        assert_eq!(journal[0].staged, None);
        assert!(
            project_detail(&mut f.main, &p.id)
                .expect("detail")
                .artifacts
                .is_empty()
        );
    }
}

/// Property tests: random sequences of the calls a guest can make, checked against a model.
#[cfg(test)]
mod model_tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::db::{KeyValues, create_project, migrate, open, project_detail, start_run};

    /// One guest call, with arguments drawn from small ranges so that collisions happen.
    #[derive(Debug, Clone)]
    enum Op {
        Create {
            index: u32,
            title: String,
            duration_ms: u32,
        },
        Update {
            pick: usize,
            title: Option<String>,
            duration_ms: Option<u32>,
        },
        GetForeign,
        GetGarbage(String),
        List {
            limit: u32,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u32..12, "[a-z ]{0,12}", 0u32..3000)
                .prop_map(|(index, title, duration_ms)| Op::Create { index, title, duration_ms }),
            3 => (any::<usize>(), proptest::option::of("[a-z]{0,8}"), proptest::option::of(0u32..3000))
                .prop_map(|(pick, title, duration_ms)| Op::Update { pick, title, duration_ms }),
            1 => Just(Op::GetForeign),
            1 => ".{0,40}".prop_map(Op::GetGarbage),
            1 => (0u32..8).prop_map(|limit| Op::List { limit }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn any_sequence_of_guest_calls_agrees_with_a_model_and_commits_exactly_it(ops in proptest::collection::vec(op(), 1..40)) {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("vidpipe.db");
            let mut main = open(&path).expect("open");
            migrate(&mut main).expect("migrate");
            let mine = create_project(&mut main, "mine", "", &KeyValues::new()).expect("project");
            let other = create_project(&mut main, "other", "", &KeyValues::new()).expect("project");
            let theirs = {
                let run = start_run(&mut main, &other.id, "t", &"0".repeat(64), &KeyValues::new(), None).expect("run");
                let mut s = StageSession::open(&path, &other.id, &run.id).expect("session");
                let scene = s.create_scene(NewScene { index: 0, title: "theirs".into(), description: String::new(), duration_ms: 1 }).expect("scene");
                s.commit("ok").expect("commit");
                scene.id
            };
            let run = start_run(&mut main, &mine.id, "t", &"0".repeat(64), &KeyValues::new(), None).expect("run");
            let mut session = StageSession::open(&path, &mine.id, &run.id).expect("session");
            // The model: index -> (id, title, duration).
            let mut model: BTreeMap<u32, (String, String, u32)> = BTreeMap::new();

            for op in ops {
                match op {
                    Op::Create { index, title, duration_ms } => {
                        let result = session.create_scene(NewScene { index, title: title.clone(), description: "d".into(), duration_ms });
                        let valid = !title.trim().is_empty() && duration_ms > 0;
                        match result {
                            Ok(scene) => {
                                prop_assert!(valid && !model.contains_key(&index), "accepted a bad or duplicate scene");
                                model.insert(index, (scene.id, title, duration_ms));
                            }
                            Err(DbError::Conflict(_)) => prop_assert!(model.contains_key(&index)),
                            Err(DbError::InvalidInput(_)) => prop_assert!(!valid),
                            Err(e) => prop_assert!(false, "unexpected error {e}"),
                        }
                    }
                    Op::Update { pick, title, duration_ms } => {
                        if model.is_empty() {
                            continue;
                        }
                        let index = *model.keys().nth(pick % model.len()).expect("non-empty");
                        let entry = model.get_mut(&index).expect("picked");
                        let update = SceneUpdate { title: title.clone(), description: None, duration_ms };
                        let valid = title.as_ref().is_none_or(|t| !t.trim().is_empty()) && duration_ms != Some(0);
                        match session.update_scene(&entry.0, update) {
                            Ok(scene) => {
                                prop_assert!(valid);
                                if let Some(t) = title { entry.1 = t; }
                                if let Some(d) = duration_ms { entry.2 = d; }
                                prop_assert_eq!(&scene.title, &entry.1);
                            }
                            Err(DbError::InvalidInput(_)) => prop_assert!(!valid),
                            Err(e) => prop_assert!(false, "unexpected error {e}"),
                        }
                    }
                    Op::GetForeign => {
                        let err = session.get_scene(&theirs).expect_err("another project's scene");
                        prop_assert!(matches!(err, DbError::NotFound(_)));
                        let err = session.update_scene(&theirs, SceneUpdate::default()).expect_err("another project's scene");
                        prop_assert!(matches!(err, DbError::NotFound(_)));
                    }
                    Op::GetGarbage(id) => {
                        prop_assert!(matches!(session.get_scene(&id), Err(DbError::NotFound(_))));
                    }
                    Op::List { limit } => {
                        let mut seen = Vec::new();
                        let mut cursor = None;
                        loop {
                            match session.list_scenes(cursor.as_deref(), limit) {
                                Ok(page) => {
                                    prop_assert!(page.items.len() <= limit as usize);
                                    seen.extend(page.items.into_iter().map(|s| (s.index, s.title, s.duration_ms)));
                                    match page.next_cursor { Some(c) => cursor = Some(c), None => break }
                                }
                                Err(DbError::InvalidInput(_)) => { prop_assert_eq!(limit, 0); break; }
                                Err(e) => { prop_assert!(false, "unexpected error {e}"); }
                            }
                        }
                        if limit > 0 {
                            let expected: Vec<_> = model.iter().map(|(i, (_, t, d))| (*i, t.clone(), *d)).collect();
                            prop_assert_eq!(seen, expected);
                        }
                    }
                }
            }
            session.commit("ok").expect("commit");
            let committed: Vec<_> = project_detail(&mut main, &mine.id).expect("detail")
                .scenes.into_iter().map(|s| (s.index, s.id, s.title, s.duration_ms)).collect();
            let expected: Vec<_> = model.into_iter().map(|(i, (id, t, d))| (i, id, t, d)).collect();
            prop_assert_eq!(committed, expected);
            let theirs_now = project_detail(&mut main, &other.id).expect("detail").scenes;
            prop_assert_eq!(theirs_now.len(), 1);
            prop_assert_eq!(&theirs_now[0].title, "theirs");
        }
    }
}
