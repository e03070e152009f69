//! Run records and pipeline runs: starting, finishing and failing them, reading them back, and
//! the queries recovery uses to find and mark runs a dead process left `running`.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::projects::parse_id;
use super::rows::*;
use super::{
    DbError, Result, execute_cached, kv_to_json, now_ms, query_row_cached, write_transaction,
};

/// Where a stage run comes from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin<'a> {
    /// The pipeline run it belongs to and its position in the manifest, if any.
    pub pipeline: Option<(&'a str, u32)>,
    /// The scene a shard is bound to; `None`: the whole project.
    pub scene: Option<&'a str>,
    /// The part of its scene's work a shard does, if its stage is cut into parts (a count
    /// above 1).
    pub part: Option<Part>,
    /// Why it runs ("first run", "scene 3 changed", …), if the caller knows.
    pub reason: Option<&'a str>,
}

/// Records the start of a stage run on a project, which then reads `running` (see
/// `rows::PROJECT_COLUMNS`).
pub fn start_run(
    conn: &mut Connection,
    project_id: &str,
    stage: &str,
    plugin_sha256: &str,
    config: &KeyValues,
    origin: Origin<'_>,
) -> Result<Run> {
    let Origin {
        pipeline,
        scene,
        part,
        reason,
    } = origin;
    let part = part.filter(|p| p.count > 1);
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
        scene_id: scene.map(str::to_owned),
        reason: reason.map(str::to_owned),
        part,
    };
    let seq = write_transaction(conn, |tx| {
        // The project's row is only read: its status reads `running` from this record
        // (`PROJECT_COLUMNS`), so the start record writes no page of `projects`.
        let known: bool = query_row_cached(
            tx,
            "SELECT EXISTS (SELECT 1 FROM projects WHERE id = ?1)",
            [&project_id],
            |r| r.get(0),
        )?;
        if !known {
            return Err(DbError::NotFound(format!(
                "no project with id {project_id}"
            )));
        }
        execute_cached(tx, "INSERT INTO pipeline_runs
             (id, project_id, stage, plugin_sha256, config, status, pid, started_at, pipeline_id, stage_index, scene_id, reason, part, parts)
             VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                run.id,
                project_id,
                stage,
                plugin_sha256,
                kv_to_json(config),
                std::process::id(),
                now,
                run.pipeline_id,
                run.stage_index,
                run.scene_id,
                run.reason,
                part.map(|p| p.index),
                part.map(|p| p.count)
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
            "UPDATE projects SET status = 'failed', updated_at = ?2
                 WHERE id = ?1 AND status <> 'failed'",
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

/// The latest run of `stage` bound to the whole project (not a shard), if any.
pub fn latest_run_of_stage(
    conn: &Connection,
    project_id: &str,
    stage: &str,
) -> Result<Option<Run>> {
    Ok(query_row_cached(
        conn,
        &format!(
            "SELECT {RUN_COLUMNS} FROM pipeline_runs
                 WHERE project_id = ?1 AND stage = ?2 AND scene_id IS NULL
                 ORDER BY rowid DESC LIMIT 1"
        ),
        params![project_id, stage],
        run_from_row,
    )
    .optional()?)
}

/// The latest run of `stage` bound to scene `scene_id` (a shard) on a project, if any: of
/// the same part of the scene's work, cut the same way (`part`: `None` or a count of 1 for a
/// stage not cut into parts).
pub fn latest_run_of_shard(
    conn: &Connection,
    project_id: &str,
    stage: &str,
    scene_id: &str,
    part: Option<Part>,
) -> Result<Option<Run>> {
    let part = part.filter(|p| p.count > 1);
    Ok(query_row_cached(
        conn,
        &format!(
            "SELECT {RUN_COLUMNS} FROM pipeline_runs
                 WHERE project_id = ?1 AND stage = ?2 AND scene_id = ?3
                     AND part IS ?4 AND parts IS ?5
                 ORDER BY rowid DESC LIMIT 1"
        ),
        params![
            project_id,
            stage,
            scene_id,
            part.map(|p| p.index),
            part.map(|p| p.count)
        ],
        run_from_row,
    )
    .optional()?)
}

/// Whether a run of `stage` bound to scene `scene_id` succeeded with the scene's work cut
/// otherwise than `part` says (into another number of parts, or not cut where `part` is, or
/// the other way round) — after run `since`, if given. Such a run rewrote the scene's rows of
/// that stage in its own cut, so a run of `part`'s cut, even one whose reads are unchanged, no
/// longer stands (going from 2 parts to 3 and back to 2 redraws them all).
pub fn cut_changed(
    conn: &Connection,
    project_id: &str,
    stage: &str,
    scene_id: &str,
    part: Option<Part>,
    since: Option<&str>,
) -> Result<bool> {
    let parts = part.filter(|p| p.count > 1).map(|p| p.count);
    Ok(query_row_cached(
        conn,
        "SELECT EXISTS (SELECT 1 FROM pipeline_runs
             WHERE project_id = ?1 AND stage = ?2 AND scene_id = ?3 AND status = 'succeeded'
                 AND parts IS NOT ?4
                 AND rowid > coalesce((SELECT rowid FROM pipeline_runs WHERE id = ?5), 0))",
        params![project_id, stage, scene_id, parts, since],
        |r| r.get(0),
    )?)
}

/// What a succeeded run read, with the digests its commit recorded (see [`super::reads`]), or
/// `None` if it recorded none.
pub fn run_reads(conn: &Connection, run_id: &str) -> Result<Option<Vec<(super::Read, String)>>> {
    let text: Option<String> = query_row_cached(
        conn,
        "SELECT reads FROM pipeline_runs WHERE id = ?1",
        [run_id],
        |r| r.get(0),
    )
    .optional()?
    .flatten();
    Ok(super::reads::from_json(text.as_deref()))
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
    /// What it decided for each stage and shard it reached, in order (empty until it ends).
    pub plan: Vec<Step>,
}

/// What a pipeline run decided for one stage, or one shard of a per-scene stage.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Step {
    /// The stage.
    pub stage: String,
    /// A shard's scene, by index and id, as they were then.
    pub scene: Option<(u32, String)>,
    /// A shard's part of its scene's work, if its stage is cut into parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<Part>,
    /// Whether it ran (`false`: its work was done by `run`).
    pub ran: bool,
    /// The run that did its work: the new one, or the earlier one reused. `None` for a
    /// per-scene stage of a project without scenes.
    pub run: Option<String>,
    /// Why it ran ("first run", "scene 3 changed", …) or was skipped ("unchanged since run …").
    pub reason: String,
}

const PIPELINE_COLUMNS: &str = "id, project_id, name, manifest, stage_count, status, summary, \
     error, started_at, finished_at, plan";

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
        // Written by us; anything else (a hand-edited row) reads as no plan.
        plan: r
            .get::<_, Option<String>>(10)?
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default(),
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
        plan: Vec::new(),
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

/// Records how a pipeline run ended: `Ok(summary)` or `Err(reason)`, and what it decided.
pub fn finish_pipeline(
    conn: &mut Connection,
    id: &str,
    outcome: std::result::Result<&str, &str>,
    plan: &[Step],
) -> Result<()> {
    let plan = serde_json::to_string(plan).ok();
    let (status, summary, error) = match outcome {
        Ok(summary) => ("succeeded", Some(summary), None),
        Err(reason) => ("failed", None, Some(reason)),
    };
    write_transaction(conn, |tx| {
        execute_cached(
            tx,
            "UPDATE pipelines SET status = ?2, summary = ?3, error = ?4, finished_at = ?5, plan = ?6
             WHERE id = ?1 AND status = 'running'",
            params![id, status, summary, error, now_ms(), plan],
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
        if runs > 0 {
            execute_cached(
                tx,
                "UPDATE projects SET status = 'failed', updated_at = ?2 WHERE id = ?1 AND status <> 'failed'",
                params![project_id, now],
            )?;
        }
        Ok(runs + pipelines)
    })
}
