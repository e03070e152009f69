//! The one transaction that makes a run's work visible: its staged rows into the main tables,
//! its file moves into the publish journal, its record `succeeded` with what it read.

use rusqlite::params;

use super::StageSession;
use crate::db::JournalEntry;
use crate::db::{DbError, Result, now_ms};

impl StageSession {
    /// Makes everything this run wrote visible at once, records the run as succeeded with
    /// `summary`, and returns the file moves the caller must now carry out (and then clear from
    /// the journal). Either all of it commits or none of it does.
    ///
    /// Only the writes happen inside the transaction: the rows are ready in memory, in key
    /// order, so the database's write lock is held for as long as SQLite takes to insert them
    /// and make them durable.
    pub fn commit(&mut self, summary: &str) -> Result<Vec<JournalEntry>> {
        // Whoever ran the stage should have cleared the deadline already; make sure.
        self.clear_deadline()?;
        let (project, run) = (self.project_id.clone(), self.run_id.clone());
        let journal: Vec<JournalEntry> = self
            .overlay
            .artifacts
            .iter()
            .map(|((kind, name), staged)| JournalEntry {
                run_id: run.clone(),
                project_id: project.clone(),
                kind: *kind,
                name: name.clone(),
                staged: staged.as_ref().map(|(_, file)| file.clone()),
            })
            .collect();
        let overlay = &self.overlay;
        let reads = (!self.reads_lost).then_some(&self.reads);
        let now = now_ms();
        crate::db::write_transaction(&mut self.conn, |tx| {
            let still_running: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM main.pipeline_runs WHERE id = ?1 AND status = 'running')",
                )?
                .query_row([&run], |r| r.get(0))?;
            if !still_running {
                return Err(DbError::Conflict(format!(
                    "run {run} is no longer running; nothing was committed"
                )));
            }
            // What the run read must still be what it was when it asked (another stage or shard
            // of the project may have committed since); if not, its reads are not recorded.
            let mut reads = reads;
            if let Some(seen) = reads {
                for (read, digest) in seen {
                    if &crate::db::reads::digest(tx, &project, read)? != digest {
                        tracing::info!(run = %run, "what the run read changed while it ran ({read:?}); its work will not be reused");
                        reads = None;
                        break;
                    }
                }
            }
            // Order matters for foreign keys: deleted scenes first (their keyframes and clips
            // go with them by cascade, and a new scene may take their index), artifacts and
            // scenes before the rows that refer to them, deletions of artifacts after the rows
            // that may have stopped referring to them.
            let mut delete_scene =
                tx.prepare_cached("DELETE FROM main.scenes WHERE id = ?1 AND project_id = ?2")?;
            for id in overlay.deleted_scenes.keys() {
                delete_scene.execute(params![id, project])?;
            }
            let mut put_artifact = tx.prepare_cached(
                "INSERT INTO main.artifacts (project_id, kind, name, size, sha256, run_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (project_id, kind, name) DO UPDATE SET
                     size = excluded.size, sha256 = excluded.sha256, run_id = excluded.run_id,
                     created_at = excluded.created_at",
            )?;
            for (info, _) in overlay.artifacts.values().flatten() {
                put_artifact.execute(params![
                    project,
                    info.kind,
                    info.name,
                    info.size,
                    info.sha256,
                    run,
                    info.created_at
                ])?;
            }
            let mut put_scene = tx.prepare_cached(
                "INSERT INTO main.scenes (id, project_id, idx, title, description, duration_ms, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (id) DO UPDATE SET
                     title = excluded.title, description = excluded.description,
                     duration_ms = excluded.duration_ms, updated_at = excluded.updated_at",
            )?;
            for s in overlay.scenes.values() {
                put_scene.execute(params![
                    s.id,
                    project,
                    s.index,
                    s.title,
                    s.description,
                    s.duration_ms,
                    s.created_at,
                    s.updated_at
                ])?;
            }
            let mut put_keyframe = tx.prepare_cached(
                "INSERT INTO main.keyframes (id, project_id, scene_id, position, prompt, image_kind, image_name, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (id) DO UPDATE SET
                     prompt = excluded.prompt, image_kind = excluded.image_kind,
                     image_name = excluded.image_name, updated_at = excluded.updated_at",
            )?;
            for k in overlay.keyframes.values() {
                put_keyframe.execute(params![
                    k.id,
                    project,
                    k.scene_id,
                    k.position,
                    k.prompt,
                    k.image.kind,
                    k.image.name,
                    k.created_at,
                    k.updated_at
                ])?;
            }
            let mut put_clip = tx.prepare_cached(
                "INSERT INTO main.video_clips (id, project_id, scene_id, video_kind, video_name, duration_ms, frame_rate, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (id) DO UPDATE SET
                     video_kind = excluded.video_kind, video_name = excluded.video_name,
                     duration_ms = excluded.duration_ms, frame_rate = excluded.frame_rate,
                     updated_at = excluded.updated_at",
            )?;
            for c in overlay.clips.values() {
                put_clip.execute(params![
                    c.id,
                    project,
                    c.scene_id,
                    c.video.kind,
                    c.video.name,
                    c.duration_ms,
                    c.frame_rate,
                    c.created_at,
                    c.updated_at
                ])?;
            }
            let mut delete_artifact = tx.prepare_cached(
                "DELETE FROM main.artifacts WHERE project_id = ?1 AND kind = ?2 AND name = ?3",
            )?;
            let mut journal_entry = tx.prepare_cached(
                "INSERT INTO main.publish_journal (run_id, project_id, kind, name, staged)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for entry in &journal {
                if entry.staged.is_none() {
                    delete_artifact.execute(params![project, entry.kind, entry.name])?;
                }
                journal_entry.execute(params![
                    run,
                    project,
                    entry.kind,
                    entry.name,
                    entry.staged
                ])?;
            }
            // What the run read, as its own writes leave it: a later pipeline compares.
            let recorded = match reads {
                Some(reads) => {
                    let after = reads
                        .keys()
                        .map(|read| {
                            Ok((read.clone(), crate::db::reads::digest(tx, &project, read)?))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    Some(crate::db::reads::to_json(&after))
                }
                None => None,
            };
            tx.prepare_cached(
                "UPDATE main.pipeline_runs SET status = 'succeeded', summary = ?2, finished_at = ?3,
                     reads = ?4 WHERE id = ?1",
            )?
            .execute(params![
                run,
                summary,
                now,
                recorded
            ])?;
            tx.prepare_cached(
                "UPDATE main.projects SET status = 'ready', updated_at = ?2 WHERE id = ?1",
            )?
            .execute(params![project, now])?;
            Ok(())
        })?;
        Ok(journal)
    }
}
