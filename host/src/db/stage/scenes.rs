//! Scenes as a run sees them: its staged scenes over its project's committed ones.

use std::collections::HashSet;
use std::ops::Bound;

use rusqlite::{OptionalExtension, params};

use super::overlay::{merge, paginate};
use super::{
    MAX_TITLE_CHARS, NewScene, Page, SceneUpdate, StageSession, check_limit, check_positive,
    check_text, new_id, next_updated_at, parse_index_cursor,
};
use crate::db::rows::{SCENE_COLUMNS, scene_from_row};
use crate::db::{ArtifactRef, DbError, Kind, Result, Scene, now_ms, query_row_cached};

/// How many scene-index checks of a run query the database before it loads the project's
/// committed indexes instead.
const INDEX_QUERIES: u32 = 64;

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

impl StageSession {
    /// Creates a scene.
    pub fn create_scene(&mut self, new: NewScene) -> Result<Scene> {
        self.check_scope("creating a scene", None)?;
        check_title(&new.title)?;
        check_text("a scene description", &new.description)?;
        check_positive("a scene duration", new.duration_ms)?;
        if self.index_taken(new.index)? {
            return Err(DbError::Conflict(format!(
                "scene index {} is already taken",
                new.index
            )));
        }
        self.charge(new.title.len() + new.description.len())?;
        let now = now_ms();
        let scene = Scene {
            id: new_id(),
            index: new.index,
            title: new.title,
            description: new.description,
            duration_ms: new.duration_ms,
            created_at: now,
            updated_at: now,
        };
        self.overlay.put_scene(scene.clone());
        Ok(scene)
    }

    /// Whether a scene of the project (staged or committed) has `index`.
    ///
    /// The first few checks of a run ask the database; a run that creates more scenes than
    /// that loads the project's committed indexes once and checks in memory (no read
    /// transaction per row), which is what makes many-row stages fast.
    fn index_taken(&mut self, index: u32) -> Result<bool> {
        if self.overlay.scenes.contains_key(&index) {
            return Ok(true);
        }
        if self.overlay.deleted_indexes.contains(&index) {
            // The committed scene there was deleted by this run.
            return Ok(false);
        }
        if let Some(committed) = &self.overlay.committed_indexes {
            return Ok(committed.contains(&index));
        }
        self.overlay.index_queries += 1;
        if self.overlay.index_queries > INDEX_QUERIES {
            let mut st = self
                .conn
                .prepare_cached("SELECT idx FROM main.scenes WHERE project_id = ?1")?;
            let committed = st
                .query_map([&self.project_id], |r| r.get::<_, u32>(0))?
                .collect::<rusqlite::Result<std::collections::HashSet<u32>>>()?;
            let taken = committed.contains(&index);
            self.overlay.committed_indexes = Some(committed);
            return Ok(taken);
        }
        Ok(query_row_cached(
            &self.conn,
            "SELECT EXISTS (SELECT 1 FROM main.scenes WHERE project_id = ?1 AND idx = ?2)",
            params![self.project_id, index],
            |r| r.get(0),
        )?)
    }

    /// Reads a scene of this project.
    pub fn get_scene(&self, id: &str) -> Result<Scene> {
        let id = Self::row_id("scene", id)?;
        if let Some(scene) = self.overlay.scene(&id) {
            return Ok(scene.clone());
        }
        if self.overlay.deleted_scenes.contains_key(&id) {
            return Err(DbError::NotFound(format!(
                "no scene with id {id} (this run deleted it)"
            )));
        }
        query_row_cached(
            &self.conn,
            &format!("SELECT {SCENE_COLUMNS} FROM main.scenes WHERE id = ?1 AND project_id = ?2"),
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
            "SELECT {SCENE_COLUMNS} FROM main.scenes WHERE project_id = ?1 AND idx > ?2
             ORDER BY idx LIMIT ?3"
        ))?;
        // Committed scenes this run deleted are left out of the page: fetch enough to make up.
        let hidden = &self.overlay.deleted_indexes;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let hidden_here = hidden.range((from, Bound::Unbounded)).count();
        let committed = st
            .query_map(
                params![
                    self.project_id,
                    after.map_or(-1, i64::from),
                    (limit + 1 + hidden_here) as i64
                ],
                scene_from_row,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let staged = self
            .overlay
            .scenes
            .range((from, Bound::Unbounded))
            .take(limit + 1)
            .map(|(_, s)| s.clone())
            .collect();
        let rows = merge(
            committed,
            staged,
            |s| s.index,
            |i| hidden.contains(i),
            limit,
        );
        Ok(paginate(rows, limit, |s| s.index.to_string()))
    }

    /// Changes a scene.
    pub fn update_scene(&mut self, id: &str, changes: SceneUpdate) -> Result<Scene> {
        let mut scene = self.get_scene(id)?;
        self.check_scope("updating a scene", Some(&scene.id))?;
        self.check_whole_scene("updating a scene")?;
        let committed = self.overlay.scene(&scene.id).is_none();
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
        self.charge(scene.title.len() + scene.description.len())?;
        if committed {
            self.overlay.saw_row(&scene.id, scene.updated_at);
        }
        scene.updated_at = next_updated_at(scene.updated_at);
        self.overlay.put_scene(scene.clone());
        Ok(scene)
    }

    /// Deletes a scene with its keyframes and its clip, as this run sees them, and deletes the
    /// artifacts those rows named unless another row still names them. Its index is free
    /// again. Returns the staged files (written by this run, now deleted) the caller must
    /// discard.
    ///
    /// Everything that can fail (lookups, limits) happens before anything changes: a deletion
    /// that fails leaves the run's view as it was.
    pub fn delete_scene(&mut self, id: &str) -> Result<Vec<(Kind, String)>> {
        let scene = self.get_scene(id)?;
        self.check_scope("deleting a scene", None)?;
        // Everything hanging off it, staged or committed; a scene has at most two keyframes
        // and a clip of at most MAX_PARTS parts.
        let keyframes = self.list_keyframes(Some(&scene.id), None, 2)?.items;
        let clips = self
            .list_video_clips(Some(&scene.id), None, crate::db::MAX_PARTS)?
            .items;
        let committed: bool = query_row_cached(
            &self.conn,
            "SELECT EXISTS (SELECT 1 FROM main.scenes WHERE id = ?1 AND project_id = ?2)",
            [&scene.id, &self.project_id],
            |r| r.get(0),
        )?;
        let removed: HashSet<String> = keyframes
            .iter()
            .map(|k| k.id.clone())
            .chain(clips.iter().map(|c| c.id.clone()))
            .collect();
        let mut named: Vec<ArtifactRef> = keyframes
            .into_iter()
            .map(|k| k.image)
            .chain(clips.into_iter().map(|c| c.video))
            .collect();
        named.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        named.dedup();
        // The artifacts that go with it: those no other row names.
        let mut doomed = Vec::new();
        for artifact in named {
            if self.artifact(artifact.kind, &artifact.name)?.is_some()
                && !self.referenced(artifact.kind, &artifact.name, &removed)?
            {
                let in_database = self.artifact_committed(artifact.kind, &artifact.name)?;
                doomed.push((artifact, in_database));
            }
        }
        let text = scene.id.len() + doomed.iter().map(|(a, _)| a.name.len()).sum::<usize>();
        self.charge_writes(1 + doomed.len() as u64, text)?;

        // Nothing below can fail.
        let overlay = &mut self.overlay;
        overlay.remove_scene(scene.index);
        if committed {
            // Its staged version, if the run changed it, keeps what the run first saw.
            overlay.saw_row(&scene.id, scene.updated_at);
            overlay.deleted_scenes.insert(scene.id.clone(), scene.index);
            overlay.deleted_indexes.insert(scene.index);
            overlay.deleted_media.extend(removed);
        }
        if let Some(indexes) = &mut overlay.committed_indexes {
            indexes.remove(&scene.index);
        }
        Ok(doomed
            .into_iter()
            .filter_map(|(a, in_database)| {
                self.apply_delete(a.kind, &a.name, in_database)
                    .map(|file| (a.kind, file))
            })
            .collect())
    }
}
