//! The one transaction that makes a run's work visible: its staged rows into the main tables,
//! its file moves into the publish journal, its record `succeeded` with what it read.

use rusqlite::{Connection, params};

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
        let reads = (!self.reads_lost).then_some(&self.reads);
        let now = now_ms();
        let past = self.past_cut();
        let scope = self.scope.as_deref().map(|scene| super::ShardScope {
            scene,
            part: self.part,
            past,
        });
        let overlay = &self.overlay;
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
            super::artifacts::check_artifacts_unchanged(tx, &project, scope, overlay)?;
            // Order matters for foreign keys: deleted scenes first (their keyframes and clips
            // go with them by cascade, and a new scene may take their index), artifacts and
            // scenes before the rows that refer to them, deletions of artifacts after the rows
            // that may have stopped referring to them.
            //
            // A committed row the run changed or deleted is written only if it is as the run
            // first saw it (by `updated_at`, which every change moves on); a new row only if its
            // key is still free. Another run of the project may have committed meanwhile (a
            // shard, or a stage that does not run after this one): then this run worked from
            // rows that are gone, and nothing of it is committed.
            let seen = |id: &str| overlay.seen_rows.get(id).copied();
            let mut delete_scene = tx.prepare_cached(
                "DELETE FROM main.scenes WHERE id = ?1 AND project_id = ?2 AND updated_at = ?3",
            )?;
            for id in overlay.deleted_scenes.keys() {
                if delete_scene.execute(params![id, project, seen(id)])? == 0
                    && exists(tx, "scenes", id)?
                {
                    return Err(changed("scene", id));
                }
            }
            // Then clip parts deleted on their own: a part may take their place.
            let mut delete_clip = tx.prepare_cached(
                "DELETE FROM main.video_clips WHERE id = ?1 AND project_id = ?2 AND updated_at = ?3",
            )?;
            for id in overlay.deleted_clips.values() {
                if delete_clip.execute(params![id, project, seen(id)])? == 0
                    && exists(tx, "video_clips", id)?
                {
                    return Err(changed("video clip", id));
                }
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
            let mut new_scene = tx.prepare_cached(
                "INSERT INTO main.scenes (id, project_id, idx, title, description, duration_ms, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let mut change_scene = tx.prepare_cached(
                "UPDATE main.scenes SET title = ?3, description = ?4, duration_ms = ?5, updated_at = ?6
                 WHERE id = ?1 AND project_id = ?2 AND updated_at = ?7",
            )?;
            for s in overlay.scenes.values() {
                match seen(&s.id) {
                    None => {
                        let inserted = new_scene.execute(params![
                            s.id,
                            project,
                            s.index,
                            s.title,
                            s.description,
                            s.duration_ms,
                            s.created_at,
                            s.updated_at
                        ]);
                        inserted.map_err(taken(&format!("scene index {}", s.index)))?;
                    }
                    Some(seen) => {
                        let changed_rows = change_scene.execute(params![
                            s.id,
                            project,
                            s.title,
                            s.description,
                            s.duration_ms,
                            s.updated_at,
                            seen
                        ])?;
                        if changed_rows != 1 {
                            return Err(changed("scene", &s.id));
                        }
                    }
                }
            }
            let mut new_keyframe = tx.prepare_cached(
                "INSERT INTO main.keyframes (id, project_id, scene_id, position, prompt, image_kind, image_name, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            let mut change_keyframe = tx.prepare_cached(
                "UPDATE main.keyframes SET prompt = ?3, image_kind = ?4, image_name = ?5, updated_at = ?6
                 WHERE id = ?1 AND project_id = ?2 AND updated_at = ?7",
            )?;
            for k in overlay.keyframes.values() {
                match seen(&k.id) {
                    None => {
                        let inserted = new_keyframe.execute(params![
                            k.id,
                            project,
                            k.scene_id,
                            k.position,
                            k.prompt,
                            k.image.kind,
                            k.image.name,
                            k.created_at,
                            k.updated_at
                        ]);
                        inserted.map_err(taken(&format!(
                            "the {} keyframe of scene {}",
                            k.position, k.scene_id
                        )))?;
                    }
                    Some(seen) => {
                        let changed_rows = change_keyframe
                            .execute(params![
                                k.id,
                                project,
                                k.prompt,
                                k.image.kind,
                                k.image.name,
                                k.updated_at,
                                seen
                            ])
                            .map_err(taken(&format!("keyframe {}", k.id)))?;
                        if changed_rows != 1 {
                            return Err(changed("keyframe", &k.id));
                        }
                    }
                }
            }
            let mut new_clip = tx.prepare_cached(
                "INSERT INTO main.video_clips (id, project_id, scene_id, video_kind, video_name, duration_ms, frame_rate, created_at, updated_at, part, parts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            let mut change_clip = tx.prepare_cached(
                "UPDATE main.video_clips SET video_kind = ?3, video_name = ?4, duration_ms = ?5,
                     frame_rate = ?6, updated_at = ?7, parts = ?9
                 WHERE id = ?1 AND project_id = ?2 AND updated_at = ?8",
            )?;
            for c in overlay.clips.values() {
                match seen(&c.id) {
                    None => {
                        let inserted = new_clip.execute(params![
                            c.id,
                            project,
                            c.scene_id,
                            c.video.kind,
                            c.video.name,
                            c.duration_ms,
                            c.frame_rate,
                            c.created_at,
                            c.updated_at,
                            c.part.index,
                            c.part.count
                        ]);
                        inserted.map_err(taken(&format!(
                            "the video clip (part {}) of scene {}",
                            c.part.index, c.scene_id
                        )))?;
                    }
                    Some(seen) => {
                        let changed_rows = change_clip
                            .execute(params![
                                c.id,
                                project,
                                c.video.kind,
                                c.video.name,
                                c.duration_ms,
                                c.frame_rate,
                                c.updated_at,
                                seen,
                                c.part.count
                            ])
                            .map_err(taken(&format!("video clip {}", c.id)))?;
                        if changed_rows != 1 {
                            return Err(changed("video clip", &c.id));
                        }
                    }
                }
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
                // Only when the status changes: a project whose last run succeeded too is
                // left as it is, a page fewer in the write-ahead log for this commit.
                "UPDATE main.projects SET status = 'ready', updated_at = ?2
                     WHERE id = ?1 AND status <> 'ready'",
            )?
            .execute(params![project, now])?;
            Ok(())
        })?;
        Ok(journal)
    }
}

/// Whether the project's table `table` has a row `id`.
fn exists(tx: &Connection, table: &str, id: &str) -> Result<bool> {
    Ok(tx
        .prepare_cached(&format!(
            "SELECT EXISTS (SELECT 1 FROM main.{table} WHERE id = ?1)"
        ))?
        .query_row([id], |r| r.get(0))?)
}

/// The conflict of a committed row that changed (or went) while the run that changes it ran.
fn changed(what: &str, id: &str) -> DbError {
    DbError::Conflict(format!(
        "{what} {id} was changed or deleted by another run of the project while this one ran; \
         nothing was committed"
    ))
}

/// Turns a constraint violation of the commit (a key another run took meanwhile, a row it
/// refers to that another run deleted) into the conflict it is.
fn taken(what: &str) -> impl FnOnce(rusqlite::Error) -> DbError {
    let what = what.to_owned();
    move |e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => DbError::Conflict(format!(
            "{what}: another run of the project committed a conflicting change while this one \
             ran ({e}); nothing was committed"
        )),
        _ => DbError::from(e),
    }
}
