//! Artifact records as a run sees them (its staged writes and deletions over its project's
//! committed artifacts), and what the project holds on disk.

use std::collections::HashSet;
use std::ops::Bound;

use rusqlite::{Connection, OptionalExtension, params};

use super::overlay::{Overlay, merge, paginate};
use super::{ArtifactView, Page, ShardScope, StageSession, check_limit};
use crate::artifacts::disk_bytes;
use crate::db::rows::{ARTIFACT_COLUMNS, artifact_from_row};
use crate::db::{Artifact, ArtifactRef, DbError, Kind, Result, now_ms, query_row_cached};

impl StageSession {
    /// Looks an artifact up, staged or committed.
    pub fn artifact(&self, kind: Kind, name: &str) -> Result<Option<ArtifactView>> {
        match self.overlay.artifacts.get(&(kind, name.to_owned())) {
            Some(Some((info, staged))) => Ok(Some(ArtifactView {
                info: info.clone(),
                staged: Some(staged.clone()),
            })),
            Some(None) => Ok(None),
            None => Ok(self
                .committed_artifact(kind, name)?
                .map(|info| ArtifactView { info, staged: None })),
        }
    }

    fn committed_artifact(&self, kind: Kind, name: &str) -> Result<Option<Artifact>> {
        Ok(query_row_cached(
            &self.conn,
            &format!(
                "SELECT {ARTIFACT_COLUMNS} FROM main.artifacts
                 WHERE project_id = ?1 AND kind = ?2 AND name = ?3"
            ),
            params![self.project_id, kind, name],
            artifact_from_row,
        )
        .optional()?)
    }

    /// Bytes on disk of the project's committed artifacts (see [`disk_bytes`]): all of them,
    /// including those this run replaces or deletes, whose files stay until it commits.
    pub fn committed_disk_bytes(&self) -> Result<u64> {
        let total: i64 = query_row_cached(
            &self.conn,
            "SELECT coalesce(sum(max((size + 4095) / 4096, 1) * 4096), 0) FROM main.artifacts
             WHERE project_id = ?1",
            [&self.project_id],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(total).unwrap_or(0))
    }

    /// Bytes on disk of the staged files this run holds (finished writers not yet committed).
    pub fn staged_disk_bytes(&self) -> u64 {
        self.overlay.staged_disk_bytes
    }

    /// Lists the artifacts of one kind in name order; the cursor is the last name returned.
    pub fn list_artifacts(
        &self,
        kind: Kind,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Artifact>> {
        let limit = check_limit(limit)?;
        let after = cursor.unwrap_or("");
        let from = (kind, after.to_owned());
        let staged_after = || {
            self.overlay
                .artifacts
                .range((Bound::Excluded(&from), Bound::Unbounded))
                .take_while(|((k, _), _)| *k == kind)
        };
        // Committed rows this run deleted are left out of the page: fetch enough to make up.
        let deleted = staged_after().filter(|(_, v)| v.is_none()).count();
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {ARTIFACT_COLUMNS} FROM main.artifacts
             WHERE project_id = ?1 AND kind = ?2 AND name > ?3 ORDER BY name LIMIT ?4"
        ))?;
        let committed = st
            .query_map(
                params![self.project_id, kind, after, (limit + 1 + deleted) as i64],
                artifact_from_row,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let staged = staged_after()
            .filter_map(|(_, v)| v.as_ref().map(|(info, _)| info.clone()))
            .take(limit + 1)
            .collect();
        let is_deleted = |name: &String| {
            matches!(
                self.overlay.artifacts.get(&(kind, name.clone())),
                Some(None)
            )
        };
        let rows = merge(committed, staged, |a| a.name.clone(), is_deleted, limit);
        Ok(paginate(rows, limit, |a| a.name.clone()))
    }

    /// Records a finished staged file as the new content of `kind/name`. Returns the staged file
    /// of an earlier write of the same name in this run, which the caller must discard.
    /// A shard may not replace an artifact outside its scene ([`Self::check_artifact_scope`]).
    pub fn stage_artifact(
        &mut self,
        kind: Kind,
        name: &str,
        staged: &str,
        size: u64,
        sha256: &str,
    ) -> Result<Option<String>> {
        self.touch_artifact(kind, name, "replacing")?;
        self.charge(name.len())?;
        let info = Artifact {
            kind,
            name: name.to_owned(),
            size,
            sha256: sha256.to_owned(),
            run_id: Some(self.run_id.clone()),
            created_at: now_ms(),
        };
        self.overlay.staged_disk_bytes += disk_bytes(size);
        let previous = self
            .overlay
            .artifacts
            .insert((kind, name.to_owned()), Some((info, staged.to_owned())));
        Ok(self.forget_staged(previous))
    }

    /// Before the run first writes or deletes `kind/name` (`what`: "replacing", "deleting"):
    /// refuses it outside a shard's scope, and notes the committed record the run saw, which
    /// the commit checks is still there. Called when the guest opens a writer, so that it
    /// learns before writing, and again when the file is staged.
    pub fn touch_artifact(&mut self, kind: Kind, name: &str, what: &str) -> Result<()> {
        let key = (kind, name.to_owned());
        if self.overlay.seen_artifacts.contains_key(&key) {
            return Ok(());
        }
        let committed = self.committed_artifact(kind, name)?;
        if let Some(committed) = &committed {
            check_artifact_scope(
                &self.conn,
                &self.project_id,
                self.shard_scope(),
                what,
                committed,
            )?;
        }
        self.overlay.seen_artifacts.insert(key, committed);
        Ok(())
    }

    /// Refuses `what` ("deleting", say) of `kind/name` outside a shard's scope, changing
    /// nothing: for a deletion checked in full before it is staged.
    pub(super) fn check_artifact_in_scope(&self, kind: Kind, name: &str, what: &str) -> Result<()> {
        match self.committed_artifact(kind, name)? {
            Some(committed) => check_artifact_scope(
                &self.conn,
                &self.project_id,
                self.shard_scope(),
                what,
                &committed,
            ),
            None => Ok(()),
        }
    }

    /// Takes a replaced staged file off the books; returns its name.
    fn forget_staged(&mut self, entry: Option<Option<(Artifact, String)>>) -> Option<String> {
        let (info, file) = entry.flatten()?;
        self.overlay.staged_disk_bytes = self
            .overlay
            .staged_disk_bytes
            .saturating_sub(disk_bytes(info.size));
        Some(file)
    }

    /// Whether a keyframe or clip, as this run sees them, refers to `kind/name`, leaving out
    /// the rows whose ids are in `except` (those a deletion is about to remove).
    pub(super) fn referenced(
        &self,
        kind: Kind,
        name: &str,
        except: &HashSet<String>,
    ) -> Result<bool> {
        let target = ArtifactRef {
            kind,
            name: name.to_owned(),
        };
        if self
            .overlay
            .keyframes
            .values()
            .any(|k| k.image == target && !except.contains(&k.id))
            || self
                .overlay
                .clips
                .values()
                .any(|c| c.video == target && !except.contains(&c.id))
        {
            return Ok(true);
        }
        // Committed rows refer to it unless this run changed them (then their staged version,
        // checked above, is what counts) or deleted their scene.
        let mut st = self.conn.prepare_cached(
            "SELECT id, 0 FROM main.keyframes WHERE project_id = ?1 AND image_kind = ?2 AND image_name = ?3
             UNION ALL
             SELECT id, 1 FROM main.video_clips WHERE project_id = ?1 AND video_kind = ?2 AND video_name = ?3",
        )?;
        let mut rows = st.query(params![self.project_id, kind, name])?;
        while let Some(row) = rows.next()? {
            let (id, clip): (String, bool) = (row.get(0)?, row.get(1)?);
            let changed = except.contains(&id)
                || self.overlay.deleted_media.contains(&id)
                || if clip {
                    self.overlay.clip_ids.contains_key(&id)
                } else {
                    self.overlay.keyframe_ids.contains_key(&id)
                };
            if !changed {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Stages the deletion of `kind/name`. Refused while a keyframe or clip (as this run sees
    /// them) refers to it. Returns a staged file of this run that the caller must discard.
    pub fn stage_delete(&mut self, kind: Kind, name: &str) -> Result<Option<String>> {
        if self.artifact(kind, name)?.is_none() {
            return Err(DbError::NotFound(format!("no artifact {kind}/{name}")));
        }
        if self.referenced(kind, name, &HashSet::new())? {
            return Err(DbError::Conflict(format!(
                "artifact {kind}/{name} is still referred to by a keyframe or video clip"
            )));
        }
        self.touch_artifact(kind, name, "deleting")?;
        self.charge(name.len())?;
        let committed = self.committed_artifact(kind, name)?;
        Ok(self.apply_delete(kind, name, committed))
    }

    /// The deletion of an artifact that exists (`committed`: its record in the database, if
    /// it has one), checked already: it cannot fail. Returns a staged file of this run that the
    /// caller must discard.
    pub(super) fn apply_delete(
        &mut self,
        kind: Kind,
        name: &str,
        committed: Option<Artifact>,
    ) -> Option<String> {
        let key = (kind, name.to_owned());
        self.overlay
            .seen_artifacts
            .entry(key.clone())
            .or_insert_with(|| committed.clone());
        let previous = if committed.is_some() {
            // A tombstone: hides the committed row now, deletes it at commit.
            self.overlay.artifacts.insert(key, None)
        } else {
            self.overlay.artifacts.remove(&key)
        };
        self.forget_staged(previous)
    }

    /// The database's record of `kind/name` for this project (whatever this run staged).
    pub(super) fn artifact_committed(&self, kind: Kind, name: &str) -> Result<Option<Artifact>> {
        self.committed_artifact(kind, name)
    }

    /// Every staged file this run still holds, to discard when the run fails.
    pub fn staged_files(&self) -> Result<Vec<(Kind, String)>> {
        Ok(self
            .overlay
            .artifacts
            .iter()
            .filter_map(|((kind, _), v)| v.as_ref().map(|(_, file)| (*kind, file.clone())))
            .collect())
    }
}

/// Refuses `what` (replacing or deleting) of the committed artifact `a` of `project` if `scope`
/// is a shard's and the artifact is not that shard's: a keyframe or clip of another scene names
/// it, or none of its own scene does and no run bound to its scene wrote it (a file of the
/// whole project, say the assembled video). A shard doing one part of its scene's work owns
/// less: only the files its own part's clip row names (or a part past its cut, left over from a
/// cut into more), or, if no row names them, that a run of the same scene and part wrote —
/// never one a keyframe or a sibling's part names. A new name is
/// any shard's to take; two shards taking the same one conflict at the second commit. Checked
/// on `conn`: the session's when the guest asks, and the commit's transaction, which checks
/// again.
fn check_artifact_scope(
    conn: &Connection,
    project: &str,
    scope: Option<ShardScope<'_>>,
    what: &str,
    a: &Artifact,
) -> Result<()> {
    let Some(own) = scope else {
        return Ok(());
    };
    let mut st = conn.prepare_cached(
        "SELECT scene_id, NULL FROM main.keyframes WHERE project_id = ?1 AND image_kind = ?2 AND image_name = ?3
         UNION ALL
         SELECT scene_id, part FROM main.video_clips WHERE project_id = ?1 AND video_kind = ?2 AND video_name = ?3",
    )?;
    let rows = st
        .query_map(params![project, a.kind, a.name], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<u32>>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let refuse = |why: String| {
        let part = own.part.map(|p| format!(" ({p})")).unwrap_or_default();
        Err(DbError::OutOfScope(format!(
            "{what} artifact {}/{}: {why}; this shard is bound to scene {}{part}",
            a.kind, a.name, own.scene
        )))
    };
    if let Some((other, _)) = rows.iter().find(|(s, _)| s != own.scene) {
        return refuse(format!("a row of scene {other} refers to it"));
    }
    if let Some(part) = own.part {
        // Its own part's file, or one a part past its cut names (to delete), is its own.
        let its = |p: &Option<u32>| p.is_some_and(|p| p == part.index || p >= own.past);
        match rows.iter().find(|(_, p)| !its(p)) {
            Some((_, None)) => return refuse("a keyframe of this scene refers to it".to_owned()),
            Some((_, Some(p))) => {
                return refuse(format!("clip part {} of this scene refers to it", p + 1));
            }
            None => {}
        }
    }
    if !rows.is_empty() {
        return Ok(());
    }
    let writer: Option<(Option<String>, Option<u32>)> = match &a.run_id {
        Some(run) => query_row_cached(
            conn,
            "SELECT scene_id, part FROM main.pipeline_runs WHERE id = ?1",
            [run],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?,
        None => None,
    };
    let (writer_scene, writer_part) = writer.unwrap_or((None, None));
    let same_part = match own.part {
        Some(part) => writer_part == Some(part.index),
        None => true,
    };
    if writer_scene.as_deref() == Some(own.scene) && same_part {
        return Ok(());
    }
    refuse(if own.part.is_some() {
        "no row of this part refers to it, and no run of this part wrote it".to_owned()
    } else {
        "no row of this scene refers to it, and no run of this scene wrote it".to_owned()
    })
}

/// Checks, inside the commit's transaction `tx`, that every artifact of `project` the run
/// wrote or deleted (in `overlay`) is still as the run first saw it — no other run of the
/// project wrote or deleted it meanwhile — and, for a shard bound to `scope`, still its own.
pub(super) fn check_artifacts_unchanged(
    tx: &Connection,
    project: &str,
    scope: Option<ShardScope<'_>>,
    overlay: &Overlay,
) -> Result<()> {
    let mut st = tx.prepare_cached(&format!(
        "SELECT {ARTIFACT_COLUMNS} FROM main.artifacts
         WHERE project_id = ?1 AND kind = ?2 AND name = ?3"
    ))?;
    for (kind, name) in overlay.artifacts.keys() {
        let now = st
            .query_row(params![project, kind, name], artifact_from_row)
            .optional()?;
        let seen = overlay.seen_artifacts.get(&(*kind, name.clone()));
        if seen != Some(&now) {
            return Err(DbError::Conflict(format!(
                "artifact {kind}/{name} was written or deleted by another run of the project \
                 while this one ran; nothing was committed"
            )));
        }
        if let Some(now) = &now {
            check_artifact_scope(tx, project, scope, "replacing", now)?;
        }
    }
    Ok(())
}
