//! The host's own operations: projects, run records, the publish journal, and read-only views of
//! a project's committed rows (for `vidpipe project show`).

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::{
    Artifact, ArtifactRef, DbError, KeyValues, Keyframe, Project, ProjectStatus, Result, Run,
    RunStatus, Scene, VideoClip, execute_cached, kv_from_json, kv_to_json, now_ms,
    query_row_cached, write_transaction,
};

/// Longest project name accepted, in characters.
pub const MAX_PROJECT_NAME: usize = 200;
/// Largest script accepted, in bytes.
pub const MAX_SCRIPT_BYTES: usize = 1 << 20;

/// Checks that `id` is a UUID and returns it in canonical form, so that lookups by a user-typed
/// id (any case, with or without braces) find the stored row.
pub fn parse_id(what: &str, id: &str) -> Result<String> {
    uuid::Uuid::parse_str(id)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| {
            // Echo a bounded excerpt: the id may be anything a user or a guest typed.
            let shown = crate::text::cut(id, 64);
            DbError::InvalidInput(format!("{what} id {shown:?} is not a UUID"))
        })
}

/// Checks a new project's name and script without writing anything.
pub fn check_new_project(name: &str, script: &str) -> Result<()> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > MAX_PROJECT_NAME {
        return Err(DbError::InvalidInput(format!(
            "a project name must have 1 to {MAX_PROJECT_NAME} characters"
        )));
    }
    crate::text::check_plain("a project name", trimmed).map_err(DbError::InvalidInput)?;
    if script.len() > MAX_SCRIPT_BYTES {
        return Err(DbError::InvalidInput(format!(
            "the script has {} bytes; the limit is {MAX_SCRIPT_BYTES}",
            script.len()
        )));
    }
    Ok(())
}

/// Creates a project (status `draft`) with a fresh id and returns it.
pub fn create_project(
    conn: &mut Connection,
    name: &str,
    script: &str,
    settings: &KeyValues,
) -> Result<Project> {
    create_project_with_id(
        conn,
        &uuid::Uuid::new_v4().hyphenated().to_string(),
        name,
        script,
        settings,
    )
}

/// Creates a project (status `draft`) with the given id and returns it.
pub fn create_project_with_id(
    conn: &mut Connection,
    id: &str,
    name: &str,
    script: &str,
    settings: &KeyValues,
) -> Result<Project> {
    check_new_project(name, script)?;
    let now = now_ms();
    let project = Project {
        id: parse_id("project", id)?,
        name: name.trim().to_owned(),
        script: script.to_owned(),
        settings: settings.clone(),
        status: ProjectStatus::Draft,
        created_at: now,
        updated_at: now,
    };
    write_transaction(conn, |tx| {
        execute_cached(
            tx,
            "INSERT INTO projects (id, name, script, settings, status, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![
                project.id,
                project.name,
                project.script,
                kv_to_json(&project.settings),
                project.status,
                now
            ],
        )?;
        Ok(())
    })?;
    Ok(project)
}

pub(crate) const PROJECT_COLUMNS: &str =
    "id, name, script, settings, status, created_at, updated_at";

pub(crate) fn project_from_row(r: &Row<'_>) -> rusqlite::Result<Project> {
    Ok(Project {
        id: r.get(0)?,
        name: r.get(1)?,
        script: r.get(2)?,
        settings: kv_from_json(&r.get::<_, String>(3)?),
        status: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

/// Reads one project.
pub fn get_project(conn: &Connection, id: &str) -> Result<Project> {
    let id = parse_id("project", id)?;
    query_row_cached(
        conn,
        &format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE id = ?1"),
        [&id],
        project_from_row,
    )
    .optional()?
    .ok_or_else(|| DbError::NotFound(format!("no project with id {id}")))
}

/// Lists every project, oldest first.
pub fn list_projects(conn: &Connection) -> Result<Vec<Project>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {PROJECT_COLUMNS} FROM projects ORDER BY created_at, id"
    ))?;
    let rows = st.query_map([], project_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Deletes a project and, by cascade, every row that belongs to it.
pub fn delete_project(conn: &mut Connection, id: &str) -> Result<()> {
    let id = parse_id("project", id)?;
    write_transaction(conn, |tx| {
        match execute_cached(tx, "DELETE FROM projects WHERE id = ?1", [&id])? {
            0 => Err(DbError::NotFound(format!("no project with id {id}"))),
            _ => Ok(()),
        }
    })
}

pub(crate) const RUN_COLUMNS: &str = "id, project_id, stage, plugin_sha256, config, status, summary, error, \
     started_at, finished_at, pipeline_id, stage_index, rowid";

pub(crate) fn run_from_row(r: &Row<'_>) -> rusqlite::Result<Run> {
    Ok(Run {
        id: r.get(0)?,
        project_id: r.get(1)?,
        stage: r.get(2)?,
        plugin_sha256: r.get(3)?,
        config: kv_from_json(&r.get::<_, String>(4)?),
        status: r.get(5)?,
        summary: r.get(6)?,
        error: r.get(7)?,
        started_at: r.get(8)?,
        finished_at: r.get(9)?,
        pipeline_id: r.get(10)?,
        stage_index: r.get(11)?,
        seq: r.get(12)?,
    })
}

/// Records the start of a stage run on a project and marks the project `running`.
pub fn start_run(
    conn: &mut Connection,
    project_id: &str,
    stage: &str,
    plugin_sha256: &str,
    config: &KeyValues,
    pipeline: Option<(&str, u32)>,
) -> Result<Run> {
    let project_id = parse_id("project", project_id)?;
    let now = now_ms();
    let run = Run {
        // Time-ordered: new records append to the right edge of the id index.
        id: uuid::Uuid::now_v7().hyphenated().to_string(),
        project_id: project_id.clone(),
        stage: stage.to_owned(),
        plugin_sha256: plugin_sha256.to_owned(),
        config: config.clone(),
        status: RunStatus::Running,
        summary: None,
        error: None,
        started_at: now,
        finished_at: None,
        pipeline_id: pipeline.map(|(id, _)| id.to_owned()),
        stage_index: pipeline.map(|(_, i)| i),
        seq: 0,
    };
    let seq = write_transaction(conn, |tx| {
        let updated = execute_cached(
            tx,
            "UPDATE projects SET status = 'running', updated_at = ?2 WHERE id = ?1",
            params![project_id, now],
        )?;
        if updated == 0 {
            return Err(DbError::NotFound(format!(
                "no project with id {project_id}"
            )));
        }
        execute_cached(tx, "INSERT INTO pipeline_runs
             (id, project_id, stage, plugin_sha256, config, status, pid, started_at, pipeline_id, stage_index)
             VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6, ?7, ?8, ?9)",
            params![
                run.id,
                project_id,
                stage,
                plugin_sha256,
                kv_to_json(config),
                std::process::id(),
                now,
                run.pipeline_id,
                run.stage_index
            ],
        )?;
        Ok(tx.last_insert_rowid())
    })?;
    Ok(Run { seq, ..run })
}

/// Records that a run failed with `error` and marks its project `failed`, if the run is still
/// `running`. Returns `None` when it did, or the status the run already has (`succeeded`, say)
/// when it was not running any more and nothing was changed.
///
/// Being a write transaction of its own, this also settles a commit whose outcome an I/O error
/// left unknown: if that commit is not what the database says now, this write supersedes it
/// for good (see `runner`).
pub fn fail_run(conn: &mut Connection, run_id: &str, error: &str) -> Result<Option<RunStatus>> {
    let now = now_ms();
    write_transaction(conn, |tx| {
        let project_id: Option<String> = query_row_cached(
            tx,
            "UPDATE pipeline_runs SET status = 'failed', error = ?2, finished_at = ?3
                 WHERE id = ?1 AND status = 'running' RETURNING project_id",
            params![run_id, error, now],
            |r| r.get(0),
        )
        .optional()?;
        let Some(project_id) = project_id else {
            let status = query_row_cached(
                tx,
                "SELECT status FROM pipeline_runs WHERE id = ?1",
                [run_id],
                |r| r.get(0),
            )
            .optional()?;
            return Ok(Some(status.unwrap_or(RunStatus::Failed)));
        };
        execute_cached(
            tx,
            "UPDATE projects SET status = 'failed', updated_at = ?2 WHERE id = ?1",
            params![project_id, now],
        )?;
        Ok(None)
    })
}

/// Reads one run record.
pub fn get_run(conn: &Connection, id: &str) -> Result<Run> {
    let id = parse_id("run", id)?;
    query_row_cached(
        conn,
        &format!("SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE id = ?1"),
        [&id],
        run_from_row,
    )
    .optional()?
    .ok_or_else(|| DbError::NotFound(format!("no run with id {id}")))
}

/// Lists the runs of a project, oldest first.
pub fn list_runs(conn: &Connection, project_id: &str) -> Result<Vec<Run>> {
    let project_id = parse_id("project", project_id)?;
    let mut st = conn.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE project_id = ?1 ORDER BY started_at, rowid"
    ))?;
    let rows = st.query_map([&project_id], run_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The latest run of `stage` on a project, if any.
pub fn latest_run_of_stage(
    conn: &Connection,
    project_id: &str,
    stage: &str,
) -> Result<Option<Run>> {
    Ok(query_row_cached(
        conn,
        &format!(
            "SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE project_id = ?1 AND stage = ?2
                 ORDER BY rowid DESC LIMIT 1"
        ),
        params![project_id, stage],
        run_from_row,
    )
    .optional()?)
}

/// The runs of one pipeline, in stage order.
pub fn runs_of_pipeline(conn: &Connection, pipeline_id: &str) -> Result<Vec<Run>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE pipeline_id = ?1 ORDER BY stage_index, started_at"
    ))?;
    let rows = st.query_map([pipeline_id], run_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A pipeline run: one `vidpipe run` of a manifest on a project.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Pipeline {
    /// Its id.
    pub id: String,
    /// The project it ran on.
    pub project_id: String,
    /// The manifest's name.
    pub name: String,
    /// The manifest's path, as given.
    pub manifest: String,
    /// How many stages the manifest lists.
    pub stage_count: u32,
    /// `running`, `succeeded`, `failed` or `interrupted`.
    pub status: RunStatus,
    /// What it did, when it succeeded.
    pub summary: Option<String>,
    /// Why it failed or was interrupted.
    pub error: Option<String>,
    /// Start time.
    pub started_at: i64,
    /// End time.
    pub finished_at: Option<i64>,
}

const PIPELINE_COLUMNS: &str =
    "id, project_id, name, manifest, stage_count, status, summary, error, started_at, finished_at";

fn pipeline_from_row(r: &Row<'_>) -> rusqlite::Result<Pipeline> {
    Ok(Pipeline {
        id: r.get(0)?,
        project_id: r.get(1)?,
        name: r.get(2)?,
        manifest: r.get(3)?,
        stage_count: r.get(4)?,
        status: r.get(5)?,
        summary: r.get(6)?,
        error: r.get(7)?,
        started_at: r.get(8)?,
        finished_at: r.get(9)?,
    })
}

/// Records the start of a pipeline run.
pub fn start_pipeline(
    conn: &mut Connection,
    project_id: &str,
    name: &str,
    manifest: &str,
    stage_count: u32,
) -> Result<Pipeline> {
    let now = now_ms();
    let p = Pipeline {
        // Time-ordered: new records append to the right edge of the id index.
        id: uuid::Uuid::now_v7().hyphenated().to_string(),
        project_id: parse_id("project", project_id)?,
        name: name.to_owned(),
        manifest: manifest.to_owned(),
        stage_count,
        status: RunStatus::Running,
        summary: None,
        error: None,
        started_at: now,
        finished_at: None,
    };
    write_transaction(conn, |tx| {
        execute_cached(tx, "INSERT INTO pipelines (id, project_id, name, manifest, stage_count, status, pid, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6, ?7)",
            params![p.id, p.project_id, p.name, p.manifest, p.stage_count, std::process::id(), now],
        )?;
        Ok(())
    })?;
    Ok(p)
}

/// Records how a pipeline run ended: `Ok(summary)` or `Err(reason)`.
pub fn finish_pipeline(
    conn: &mut Connection,
    id: &str,
    outcome: std::result::Result<&str, &str>,
) -> Result<()> {
    let (status, summary, error) = match outcome {
        Ok(summary) => ("succeeded", Some(summary), None),
        Err(reason) => ("failed", None, Some(reason)),
    };
    write_transaction(conn, |tx| {
        execute_cached(
            tx,
            "UPDATE pipelines SET status = ?2, summary = ?3, error = ?4, finished_at = ?5
             WHERE id = ?1 AND status = 'running'",
            params![id, status, summary, error, now_ms()],
        )?;
        Ok(())
    })
}

/// Reads one pipeline run.
pub fn get_pipeline(conn: &Connection, id: &str) -> Result<Option<Pipeline>> {
    let id = parse_id("run", id)?;
    Ok(query_row_cached(
        conn,
        &format!("SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE id = ?1"),
        [&id],
        pipeline_from_row,
    )
    .optional()?)
}

/// Lists the pipeline runs of a project, oldest first.
pub fn list_pipelines(conn: &Connection, project_id: &str) -> Result<Vec<Pipeline>> {
    let project_id = parse_id("project", project_id)?;
    let mut st = conn.prepare_cached(&format!(
        "SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE project_id = ?1 ORDER BY started_at, rowid"
    ))?;
    let rows = st.query_map([&project_id], pipeline_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Projects that have a run or pipeline recorded as `running`, or file moves still journaled
/// (not marked damaged), each with the process ids recorded for them (of the runs, pipelines
/// and publishing runs concerned), in project order.
pub fn projects_needing_recovery(conn: &Connection) -> Result<Vec<(String, Vec<u32>)>> {
    let mut st = conn.prepare_cached(
        "SELECT project_id, pid FROM pipeline_runs WHERE status IN ('queued', 'running')
         UNION SELECT project_id, pid FROM pipelines WHERE status = 'running'
         UNION SELECT j.project_id, r.pid FROM publish_journal j
             LEFT JOIN pipeline_runs r ON r.id = j.run_id WHERE j.damaged IS NULL
         ORDER BY 1",
    )?;
    let rows = st.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Option<u32>>(1)?))
    })?;
    let mut projects: Vec<(String, Vec<u32>)> = Vec::new();
    for row in rows {
        let (project, pid) = row?;
        match projects.last_mut() {
            Some((last, pids)) if *last == project => pids.extend(pid),
            _ => projects.push((project, pid.into_iter().collect())),
        }
    }
    Ok(projects)
}

/// Marks every `running` stage run and pipeline of a project `interrupted`, in one IMMEDIATE
/// transaction. Only call it while holding the project's lock: then nobody is running them.
/// Returns how many records changed.
pub fn mark_interrupted(conn: &mut Connection, project_id: &str) -> Result<usize> {
    let now = now_ms();
    let reason = "interrupted: the vidpipe process running it stopped before it finished; nothing it wrote was kept";
    write_transaction(conn, |tx| {
        // Through the partial indexes of unfinished records, which stay small however many
        // runs a project has had (the planner would otherwise walk all of the project's runs).
        let runs = execute_cached(
            tx,
            "UPDATE pipeline_runs INDEXED BY pipeline_runs_by_status
             SET status = 'interrupted', error = ?2, finished_at = ?3
             WHERE status IN ('queued', 'running') AND project_id = ?1",
            params![project_id, reason, now],
        )?;
        let pipelines = execute_cached(
            tx,
            "UPDATE pipelines INDEXED BY pipelines_running
             SET status = 'interrupted', error = ?2, finished_at = ?3
             WHERE status = 'running' AND project_id = ?1",
            params![project_id, reason, now],
        )?;
        if runs + pipelines > 0 {
            execute_cached(
                tx,
                "UPDATE projects SET status = 'failed', updated_at = ?2 WHERE id = ?1 AND status = 'running'",
                params![project_id, now],
            )?;
        }
        Ok(runs + pipelines)
    })
}

pub(crate) const SCENE_COLUMNS: &str =
    "id, idx, title, description, duration_ms, created_at, updated_at";

pub(crate) fn scene_from_row(r: &Row<'_>) -> rusqlite::Result<Scene> {
    Ok(Scene {
        id: r.get(0)?,
        index: r.get(1)?,
        title: r.get(2)?,
        description: r.get(3)?,
        duration_ms: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

pub(crate) const KEYFRAME_COLUMNS: &str =
    "id, scene_id, position, prompt, image_kind, image_name, created_at, updated_at";

pub(crate) fn keyframe_from_row(r: &Row<'_>) -> rusqlite::Result<Keyframe> {
    Ok(Keyframe {
        id: r.get(0)?,
        scene_id: r.get(1)?,
        position: r.get(2)?,
        prompt: r.get(3)?,
        image: ArtifactRef {
            kind: r.get(4)?,
            name: r.get(5)?,
        },
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

pub(crate) const CLIP_COLUMNS: &str =
    "id, scene_id, video_kind, video_name, duration_ms, frame_rate, created_at, updated_at";

pub(crate) fn clip_from_row(r: &Row<'_>) -> rusqlite::Result<VideoClip> {
    Ok(VideoClip {
        id: r.get(0)?,
        scene_id: r.get(1)?,
        video: ArtifactRef {
            kind: r.get(2)?,
            name: r.get(3)?,
        },
        duration_ms: r.get(4)?,
        frame_rate: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

pub(crate) const ARTIFACT_COLUMNS: &str = "kind, name, size, sha256, run_id, created_at";

pub(crate) fn artifact_from_row(r: &Row<'_>) -> rusqlite::Result<Artifact> {
    Ok(Artifact {
        kind: r.get(0)?,
        name: r.get(1)?,
        size: r.get(2)?,
        sha256: r.get(3)?,
        run_id: r.get(4)?,
        created_at: r.get(5)?,
    })
}

/// Everything committed for one project, for display.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProjectDetail {
    /// The project row.
    pub project: Project,
    /// Its scenes in index order.
    pub scenes: Vec<Scene>,
    /// Its keyframes, by scene then position.
    pub keyframes: Vec<Keyframe>,
    /// Its clips, by scene.
    pub video_clips: Vec<VideoClip>,
    /// Its artifacts, by kind then name.
    pub artifacts: Vec<Artifact>,
    /// Its runs, oldest first.
    pub runs: Vec<Run>,
}

/// Reads a project and everything committed under it, in one read transaction so the parts agree.
pub fn project_detail(conn: &mut Connection, id: &str) -> Result<ProjectDetail> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let project = get_project(&tx, id)?;
    let pid = project.id.as_str();
    let scenes = query_all(
        &tx,
        &format!("SELECT {SCENE_COLUMNS} FROM scenes WHERE project_id = ?1 ORDER BY idx"),
        pid,
        scene_from_row,
    )?;
    let keyframes = query_all(
        &tx,
        &format!(
            "SELECT k.{} FROM keyframes k JOIN scenes s ON s.id = k.scene_id
             WHERE k.project_id = ?1 ORDER BY s.idx, k.position = 'end'",
            KEYFRAME_COLUMNS.replace(", ", ", k.")
        ),
        pid,
        keyframe_from_row,
    )?;
    let video_clips = query_all(
        &tx,
        &format!(
            "SELECT c.{} FROM video_clips c JOIN scenes s ON s.id = c.scene_id
             WHERE c.project_id = ?1 ORDER BY s.idx",
            CLIP_COLUMNS.replace(", ", ", c.")
        ),
        pid,
        clip_from_row,
    )?;
    let artifacts = query_all(
        &tx,
        &format!(
            "SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE project_id = ?1 ORDER BY kind, name"
        ),
        pid,
        artifact_from_row,
    )?;
    let runs = query_all(
        &tx,
        &format!(
            "SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE project_id = ?1 ORDER BY started_at, rowid"
        ),
        pid,
        run_from_row,
    )?;
    tx.finish()?;
    Ok(ProjectDetail {
        project,
        scenes,
        keyframes,
        video_clips,
        artifacts,
        runs,
    })
}

fn query_all<T>(
    conn: &Connection,
    sql: &str,
    project_id: &str,
    f: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut st = conn.prepare_cached(sql)?;
    let rows = st.query_map([project_id], f)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// A file move a committed run still owes: `staged` → `name`, or a removal when `staged` is `None`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JournalEntry {
    /// The run that committed it.
    pub run_id: String,
    /// The project the file belongs to.
    pub project_id: String,
    /// The folder.
    pub kind: super::Kind,
    /// The final name.
    pub name: String,
    /// The staged file to rename onto `name`, or `None` to remove `name`.
    pub staged: Option<String>,
}

/// Every pending journal entry of one project (optionally of one run only), except those
/// marked damaged ([`damaged_journal`]).
pub fn pending_journal(
    conn: &Connection,
    project_id: &str,
    run_id: Option<&str>,
) -> Result<Vec<JournalEntry>> {
    let mut st = conn.prepare_cached(
        "SELECT run_id, project_id, kind, name, staged FROM publish_journal
         WHERE project_id = ?1 AND (?2 IS NULL OR run_id = ?2) AND damaged IS NULL
         ORDER BY run_id, kind, name",
    )?;
    let rows = st.query_map(params![project_id, run_id], |r| {
        Ok(JournalEntry {
            run_id: r.get(0)?,
            project_id: r.get(1)?,
            kind: r.get(2)?,
            name: r.get(3)?,
            staged: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The committed artifact `kind/name` of a project, if there is one.
pub fn artifact_row(
    conn: &Connection,
    project_id: &str,
    kind: super::Kind,
    name: &str,
) -> Result<Option<Artifact>> {
    Ok(query_row_cached(
        conn,
        &format!(
            "SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE project_id = ?1 AND kind = ?2 AND name = ?3"
        ),
        params![project_id, kind, name],
        artifact_from_row,
    )
    .optional()?)
}

/// Forgets journal entries once their file moves are durable, in one transaction.
pub fn clear_journal(conn: &mut Connection, entries: &[JournalEntry]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    write_transaction(conn, |tx| {
        for entry in entries {
            execute_cached(
                tx,
                "DELETE FROM publish_journal WHERE run_id = ?1 AND kind = ?2 AND name = ?3",
                params![entry.run_id, entry.kind, entry.name],
            )?;
        }
        Ok(())
    })
}

/// Marks a journal entry damaged: its staged file is gone and the file in place is not the
/// artifact its row describes, so the move can never be finished. The entry stays, with why,
/// for `project show` to report and for the stage to be run again; recovery skips it.
pub fn mark_journal_damaged(conn: &mut Connection, entry: &JournalEntry, why: &str) -> Result<()> {
    write_transaction(conn, |tx| {
        execute_cached(
            tx,
            "UPDATE publish_journal SET damaged = ?4 WHERE run_id = ?1 AND kind = ?2 AND name = ?3",
            params![entry.run_id, entry.kind, entry.name, why],
        )?;
        Ok(())
    })
}

/// A journal entry marked damaged, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Damage {
    /// The entry.
    pub entry: JournalEntry,
    /// What was found.
    pub why: String,
}

/// The journal entries of a project marked damaged by [`mark_journal_damaged`].
pub fn damaged_journal(conn: &Connection, project_id: &str) -> Result<Vec<Damage>> {
    let mut st = conn.prepare_cached(
        "SELECT run_id, project_id, kind, name, staged, damaged FROM publish_journal
         WHERE project_id = ?1 AND damaged IS NOT NULL ORDER BY run_id, kind, name",
    )?;
    let rows = st.query_map([project_id], |r| {
        Ok(Damage {
            entry: JournalEntry {
                run_id: r.get(0)?,
                project_id: r.get(1)?,
                kind: r.get(2)?,
                name: r.get(3)?,
                staged: r.get(4)?,
            },
            why: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
