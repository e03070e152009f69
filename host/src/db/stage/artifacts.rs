//! Artifact records as a run sees them (its staged writes and deletions over its project's
//! committed artifacts), and what the project holds on disk.

use std::collections::HashSet;
use std::ops::Bound;

use rusqlite::{OptionalExtension, params};

use super::overlay::{merge, paginate};
use super::{ArtifactView, Page, StageSession, check_limit};
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
    pub fn stage_artifact(
        &mut self,
        kind: Kind,
        name: &str,
        staged: &str,
        size: u64,
        sha256: &str,
    ) -> Result<Option<String>> {
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
        self.charge(name.len())?;
        if self.artifact(kind, name)?.is_none() {
            return Err(DbError::NotFound(format!("no artifact {kind}/{name}")));
        }
        if self.referenced(kind, name, &HashSet::new())? {
            return Err(DbError::Conflict(format!(
                "artifact {kind}/{name} is still referred to by a keyframe or video clip"
            )));
        }
        let committed = self.committed_artifact(kind, name)?.is_some();
        Ok(self.apply_delete(kind, name, committed))
    }

    /// The deletion of an artifact that exists (`committed` if the database has it), checked
    /// already: it cannot fail. Returns a staged file of this run that the caller must discard.
    pub(super) fn apply_delete(
        &mut self,
        kind: Kind,
        name: &str,
        committed: bool,
    ) -> Option<String> {
        let key = (kind, name.to_owned());
        let previous = if committed {
            // A tombstone: hides the committed row now, deletes it at commit.
            self.overlay.artifacts.insert(key, None)
        } else {
            self.overlay.artifacts.remove(&key)
        };
        self.forget_staged(previous)
    }

    /// Whether the database has `kind/name` for this project (whatever this run staged).
    pub(super) fn artifact_committed(&self, kind: Kind, name: &str) -> Result<bool> {
        Ok(self.committed_artifact(kind, name)?.is_some())
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
