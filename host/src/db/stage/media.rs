//! Keyframes as a run sees them: its staged rows over its project's committed ones, in scene
//! order. (Video clips are in `clips.rs`.)

use std::ops::Bound;

use rusqlite::{OptionalExtension, params};

use super::overlay::{KeyframeSlot, merge, paginate};
use super::{
    KeyframeUpdate, NewKeyframe, Page, StageSession, bad_cursor, check_limit, check_text, new_id,
    next_updated_at,
};
use crate::db::rows::{KEYFRAME_COLUMNS, keyframe_from_row};
use crate::db::{
    ArtifactRef, DbError, Keyframe, KeyframePosition, Result, now_ms, query_row_cached,
};

fn position_number(p: KeyframePosition) -> u8 {
    match p {
        KeyframePosition::Start => 0,
        KeyframePosition::End => 1,
    }
}

/// The cursor of keyframe listings: "<scene index>:<0 for start, 1 for end>" of the last row.
fn parse_keyframe_cursor(cursor: Option<&str>) -> Result<Option<KeyframeSlot>> {
    let Some(c) = cursor else {
        return Ok(None);
    };
    let (i, p) = c.split_once(':').ok_or_else(|| bad_cursor(c))?;
    let i = i.parse::<u32>().map_err(|_| bad_cursor(c))?;
    let p = p
        .parse::<u8>()
        .ok()
        .filter(|p| *p <= 1)
        .ok_or_else(|| bad_cursor(c))?;
    Ok(Some((i, p)))
}

impl StageSession {
    /// Refuses a row naming artifact `r` unless it exists (staged by this run, or committed)
    /// and, for a shard, is its own ([`Self::check_artifact_in_scope`]): a shard naming
    /// another scene's file would make that scene's shard unable to replace it.
    pub(super) fn require_artifact(&self, r: &ArtifactRef) -> Result<()> {
        if self.artifact(r.kind, &r.name)?.is_none() {
            return Err(DbError::InvalidInput(format!(
                "artifact {}/{} does not exist; publish it before referring to it",
                r.kind, r.name
            )));
        }
        self.check_artifact_in_scope(r.kind, &r.name, "referring to")
    }

    /// The index of a scene of this project (staged or committed) by id, for placing rows that
    /// hang off it.
    pub(super) fn scene_index(&self, scene_id: &str) -> Result<u32> {
        Ok(self.get_scene(scene_id)?.index)
    }

    // ---- keyframes ----------------------------------------------------------------------------

    /// Creates a keyframe.
    pub fn create_keyframe(&mut self, new: NewKeyframe) -> Result<Keyframe> {
        let scene = self.get_scene(&new.scene_id)?;
        self.check_scope("creating a keyframe", Some(&scene.id))?;
        self.check_whole_scene("creating a keyframe")?;
        check_text("a keyframe prompt", &new.prompt)?;
        self.require_artifact(&new.image)?;
        let slot = (scene.index, position_number(new.position));
        let taken = self.overlay.keyframes.contains_key(&slot)
            || query_row_cached(
                &self.conn,
                "SELECT EXISTS (SELECT 1 FROM main.keyframes WHERE scene_id = ?1 AND position = ?2)",
                params![scene.id, new.position],
                |r| r.get(0),
            )?;
        if taken {
            return Err(DbError::Conflict(format!(
                "scene {} already has a {} keyframe",
                scene.index, new.position
            )));
        }
        self.charge(new.prompt.len() + new.image.name.len())?;
        let now = now_ms();
        let k = Keyframe {
            id: new_id(),
            scene_id: scene.id,
            position: new.position,
            prompt: new.prompt,
            image: new.image,
            created_at: now,
            updated_at: now,
        };
        self.overlay.put_keyframe(slot, k.clone());
        Ok(k)
    }

    /// A keyframe of this project and its slot.
    fn find_keyframe(&self, id: &str) -> Result<(KeyframeSlot, Keyframe)> {
        let id = Self::row_id("keyframe", id)?;
        if let Some((slot, k)) = self.overlay.keyframe(&id) {
            return Ok((slot, k.clone()));
        }
        if self.overlay.deleted_media.contains(&id) {
            return Err(DbError::NotFound(format!(
                "no keyframe with id {id} (this run deleted its scene)"
            )));
        }
        let k = query_row_cached(
            &self.conn,
            &format!(
                "SELECT {KEYFRAME_COLUMNS} FROM main.keyframes WHERE id = ?1 AND project_id = ?2"
            ),
            [&id, &self.project_id],
            keyframe_from_row,
        )
        .optional()?
        .ok_or_else(|| DbError::NotFound(format!("no keyframe with id {id}")))?;
        let slot = (self.scene_index(&k.scene_id)?, position_number(k.position));
        Ok((slot, k))
    }

    /// Reads a keyframe of this project.
    pub fn get_keyframe(&self, id: &str) -> Result<Keyframe> {
        Ok(self.find_keyframe(id)?.1)
    }

    /// Lists keyframes by scene index, start before end; of one scene if `scene_id` is given.
    pub fn list_keyframes(
        &self,
        scene_id: Option<&str>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Keyframe>> {
        let limit = check_limit(limit)?;
        let scene_id = scene_id
            .map(|s| self.get_scene(s))
            .transpose()?
            .map(|s| s.id);
        let after = parse_keyframe_cursor(cursor)?;
        let (after_idx, after_pos) =
            after.map_or((-1i64, 1i64), |(i, p)| (i64::from(i), i64::from(p)));
        let cols = KEYFRAME_COLUMNS.replace(", ", ", k.");
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT k.{cols}, s.idx, (k.position = 'end') AS pos FROM main.keyframes k
             JOIN main.scenes s ON s.id = k.scene_id AND s.project_id = k.project_id
             WHERE k.project_id = ?1 AND (?2 IS NULL OR k.scene_id = ?2)
               AND (s.idx, (k.position = 'end')) > (?3, ?4)
             ORDER BY s.idx, pos LIMIT ?5"
        ))?;
        // The committed keyframes of scenes this run deleted are left out: fetch enough to
        // make up.
        let hidden = &self.overlay.deleted_indexes;
        let hidden_here = hidden.range(after.map_or(0, |(i, _)| i)..).count();
        let committed = st
            .query_map(
                params![
                    self.project_id,
                    scene_id,
                    after_idx,
                    after_pos,
                    (limit + 1 + 2 * hidden_here) as i64
                ],
                |r| {
                    Ok((
                        (r.get::<_, u32>(8)?, r.get::<_, u8>(9)?),
                        keyframe_from_row(r)?,
                    ))
                },
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let staged = self
            .overlay
            .keyframes
            .range((from, Bound::Unbounded))
            .filter(|(_, k)| scene_id.as_ref().is_none_or(|s| *s == k.scene_id))
            .take(limit + 1)
            .map(|(slot, k)| (*slot, k.clone()))
            .collect();
        let rows = merge(
            committed,
            staged,
            |(slot, _)| *slot,
            |slot| hidden.contains(&slot.0),
            limit,
        );
        let page = paginate(rows, limit, |((i, p), _)| format!("{i}:{p}"));
        Ok(Page {
            items: page.items.into_iter().map(|(_, k)| k).collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// Changes a keyframe.
    pub fn update_keyframe(&mut self, id: &str, changes: KeyframeUpdate) -> Result<Keyframe> {
        let (slot, mut k) = self.find_keyframe(id)?;
        self.check_scope("updating a keyframe", Some(&k.scene_id))?;
        self.check_whole_scene("updating a keyframe")?;
        let committed = self.overlay.keyframe(&k.id).is_none();
        if let Some(prompt) = changes.prompt {
            check_text("a keyframe prompt", &prompt)?;
            k.prompt = prompt;
        }
        if let Some(image) = changes.image {
            self.require_artifact(&image)?;
            k.image = image;
        }
        self.charge(k.prompt.len() + k.image.name.len())?;
        if committed {
            self.overlay.saw_row(&k.id, k.updated_at);
        }
        k.updated_at = next_updated_at(k.updated_at);
        self.overlay.put_keyframe(slot, k.clone());
        Ok(k)
    }
}
