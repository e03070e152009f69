//! The host's own operations: projects, run records, the publish journal, and read-only views of
//! a project's committed rows (for `vidpipe project show`).

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::rows::*;
use super::{
    DbError, Result, execute_cached, kv_to_json, now_ms, query_row_cached, write_transaction,
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

/// What `vidpipe project update` changes: the fields given, and the settings given set (added
/// or replaced; the others are kept).
#[derive(Debug, Clone, Default)]
pub struct ProjectChanges {
    /// A new name.
    pub name: Option<String>,
    /// A new script.
    pub script: Option<String>,
    /// Settings to set.
    pub settings: KeyValues,
}

/// Changes a project's name, script or settings and returns it, and whether anything changed.
/// Nothing else changes: its scenes stay as they are until a stage (the storyboard) reads the
/// new script; a pipeline runs again the stages that read what changed (see `db::reads`).
/// The edit's place in the record order of stage runs is kept ([`project_edit_seq`]), as
/// history. Changes that leave every value as it was write nothing. Bad input changes nothing.
pub fn update_project(
    conn: &mut Connection,
    id: &str,
    changes: &ProjectChanges,
) -> Result<(Project, bool)> {
    let id = parse_id("project", id)?;
    write_transaction(conn, |tx| {
        let before = get_project(tx, &id)?;
        let mut project = before.clone();
        if let Some(name) = &changes.name {
            project.name = name.trim().to_owned();
        }
        if let Some(script) = &changes.script {
            project.script = script.clone();
        }
        check_new_project(&project.name, &project.script)?;
        project
            .settings
            .extend(changes.settings.iter().map(|(k, v)| (k.clone(), v.clone())));
        if (&project.name, &project.script, &project.settings)
            == (&before.name, &before.script, &before.settings)
        {
            return Ok((before, false));
        }
        project.updated_at = now_ms();
        execute_cached(
            tx,
            "UPDATE projects SET name = ?2, script = ?3, settings = ?4, updated_at = ?5,
                 edit_seq = (SELECT coalesce(max(rowid), 0) FROM pipeline_runs)
             WHERE id = ?1",
            params![
                project.id,
                project.name,
                project.script,
                kv_to_json(&project.settings),
                project.updated_at
            ],
        )?;
        Ok((project, true))
    })
}

/// The record order of stage runs when the project was last edited (see
/// [`update_project`]): runs recorded at or before it read the project as it was before. A
/// pipeline does not need it (it compares what each run read), but it tells which runs
/// predate an edit.
pub fn project_edit_seq(conn: &Connection, id: &str) -> Result<i64> {
    let id = parse_id("project", id)?;
    query_row_cached(
        conn,
        "SELECT edit_seq FROM projects WHERE id = ?1",
        [&id],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| DbError::NotFound(format!("no project with id {id}")))
}

/// Reads one project.
pub fn get_project(conn: &Connection, id: &str) -> Result<Project> {
    let id = parse_id("project", id)?;
    query_row_cached(
        conn,
        &format!("SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.id = ?1"),
        [&id],
        project_from_row,
    )
    .optional()?
    .ok_or_else(|| DbError::NotFound(format!("no project with id {id}")))
}

/// Lists every project, oldest first.
pub fn list_projects(conn: &Connection) -> Result<Vec<Project>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {PROJECT_COLUMNS} FROM projects p ORDER BY p.created_at, p.id"
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

/// Everything committed for one project, for display.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProjectDetail {
    /// The project row.
    pub project: Project,
    /// Its scenes in index order.
    pub scenes: Vec<Scene>,
    /// Its keyframes, by scene then position.
    pub keyframes: Vec<Keyframe>,
    /// Its clips, by scene then part.
    pub video_clips: Vec<VideoClip>,
    /// Its artifacts, by kind then name.
    pub artifacts: Vec<Artifact>,
    /// Its runs, oldest first.
    pub runs: Vec<Run>,
}

/// The committed scenes of a project, in index order.
pub fn list_scenes(conn: &Connection, project_id: &str) -> Result<Vec<Scene>> {
    query_all(
        conn,
        &format!("SELECT {SCENE_COLUMNS} FROM scenes WHERE project_id = ?1 ORDER BY idx"),
        project_id,
        scene_from_row,
    )
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
             WHERE c.project_id = ?1 ORDER BY s.idx, c.part",
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
