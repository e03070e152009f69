//! Video clips as a run sees them: its staged rows over its project's committed ones, by scene
//! index, then part.
//!
//! A scene's video is one clip (part 0 of 1) or consecutive parts, one clip each, that a stage
//! cut into parts writes from as many shards at once (see [`StageSession::set_part`]). Each
//! part is a row of its own, keyed by its scene and its part number, so that sibling shards
//! never write the same row; a shard that does one part may write only that one.

use std::collections::HashSet;
use std::ops::Bound;

use rusqlite::{OptionalExtension, params};

use super::overlay::{ClipSlot, merge, paginate};
use super::{
    NewVideoClip, Page, StageSession, VideoClipUpdate, bad_cursor, check_limit, check_positive,
    new_id, next_updated_at,
};
use crate::db::rows::{CLIP_COLUMNS, clip_from_row};
use crate::db::{
    ArtifactRef, DbError, Kind, MAX_PARTS, Part, Result, VideoClip, now_ms, query_row_cached,
};

fn check_frame_rate(v: u32) -> Result<()> {
    if !(1..=1000).contains(&v) {
        return Err(DbError::InvalidInput(format!(
            "a frame rate must be 1 to 1000, not {v}"
        )));
    }
    Ok(())
}

/// The cursor of clip listings: "<scene index>:<part>" of the last row.
fn parse_clip_cursor(cursor: Option<&str>) -> Result<Option<ClipSlot>> {
    let Some(c) = cursor else {
        return Ok(None);
    };
    let (i, p) = c.split_once(':').ok_or_else(|| bad_cursor(c))?;
    let i = i.parse::<u32>().map_err(|_| bad_cursor(c))?;
    let p = p
        .parse::<u32>()
        .ok()
        .filter(|p| *p < MAX_PARTS)
        .ok_or_else(|| bad_cursor(c))?;
    Ok(Some((i, p)))
}

/// Part `index` of `count`, or `invalid-input` naming what is wrong.
fn check_part_of(index: u32, count: u32) -> Result<Part> {
    Part::new(index, count).ok_or_else(|| {
        DbError::InvalidInput(format!(
            "part {index} of {count} is no part: a clip is cut into 1 to {MAX_PARTS} parts, \
             numbered from 0"
        ))
    })
}

/// A new clip row of scene `scene_id`, made now, for `part` of its video.
fn new_clip_row(scene_id: String, new: NewVideoClip, part: Part) -> VideoClip {
    let now = now_ms();
    VideoClip {
        id: new_id(),
        scene_id,
        video: new.video,
        duration_ms: new.duration_ms,
        frame_rate: new.frame_rate,
        created_at: now,
        updated_at: now,
        part,
    }
}

impl StageSession {
    /// Creates a video clip: the whole of its scene's video, part 0 of 1.
    pub fn create_video_clip(&mut self, new: NewVideoClip) -> Result<VideoClip> {
        let scene = self.get_scene(&new.scene_id)?;
        self.check_scope("creating a video clip", Some(&scene.id))?;
        if let Some(own) = self.part() {
            return Err(DbError::OutOfScope(format!(
                "creating a video clip: this shard does {own} of its scene's work, and writes \
                 that part of its clip (put-clip-part)"
            )));
        }
        check_positive("a clip duration", new.duration_ms)?;
        check_frame_rate(new.frame_rate)?;
        self.require_artifact(&new.video)?;
        if self
            .scene_clips(&scene.id, scene.index, 0)?
            .next()
            .is_some()
        {
            return Err(DbError::Conflict(format!(
                "scene {} already has a video clip",
                scene.index
            )));
        }
        self.charge(new.video.name.len())?;
        let c = new_clip_row(scene.id, new, Part::WHOLE);
        self.overlay.put_clip((scene.index, 0), c.clone());
        Ok(c)
    }

    /// Sets part `part_index` of `part_count` of the clip of `new.scene_id`: creates its row,
    /// or changes the one the scene has for that part (its id stays). An artifact the row
    /// named before that no row names now is deleted. Returns the clip, and the staged files
    /// (written by this run, now deleted) the caller must discard.
    pub fn put_clip_part(
        &mut self,
        new: NewVideoClip,
        part_index: u32,
        part_count: u32,
    ) -> Result<(VideoClip, Vec<(Kind, String)>)> {
        let scene = self.get_scene(&new.scene_id)?;
        self.check_scope("writing a clip part", Some(&scene.id))?;
        let part = check_part_of(part_index, part_count)?;
        self.check_part("writing a clip part", part.index)?;
        if let Some(own) = self.part()
            && part.count > own.count
        {
            return Err(DbError::OutOfScope(format!(
                "writing clip part {} of {}: this shard does {own}, so its scene's clip is cut \
                 into at most {} parts",
                part.index + 1,
                part.count,
                own.count
            )));
        }
        check_positive("a clip duration", new.duration_ms)?;
        check_frame_rate(new.frame_rate)?;
        self.require_artifact(&new.video)?;
        let slot = (scene.index, part.index);
        let existing = self.clip_at(&scene.id, slot)?;
        // The file it named before goes, unless another row names it.
        let mut doomed = None;
        if let Some((old, _)) = &existing
            && old.video != new.video
            && self.artifact(old.video.kind, &old.video.name)?.is_some()
            && !self.referenced(
                old.video.kind,
                &old.video.name,
                &HashSet::from([old.id.clone()]),
            )?
        {
            let committed = self.artifact_committed(old.video.kind, &old.video.name)?;
            self.check_artifact_in_scope(old.video.kind, &old.video.name, "deleting")?;
            doomed = Some((old.video.clone(), committed));
        }
        let text = new.video.name.len() + doomed.as_ref().map_or(0, |(a, _)| a.name.len());
        self.charge_writes(1 + u64::from(doomed.is_some()), text)?;

        // Nothing below can fail.
        let clip = match existing {
            Some((old, committed)) => {
                if committed {
                    self.overlay.saw_row(&old.id, old.updated_at);
                }
                VideoClip {
                    video: new.video,
                    duration_ms: new.duration_ms,
                    frame_rate: new.frame_rate,
                    updated_at: next_updated_at(old.updated_at),
                    part,
                    ..old
                }
            }
            None => new_clip_row(scene.id, new, part),
        };
        self.overlay.put_clip(slot, clip.clone());
        let discard = doomed
            .and_then(|(a, committed)| {
                self.apply_delete(a.kind, &a.name, committed)
                    .map(|file| (a.kind, file))
            })
            .into_iter()
            .collect();
        Ok((clip, discard))
    }

    /// Deletes the clip parts of scene `scene_id` numbered `first` and up, as this run sees
    /// them, with the artifacts they name unless another row names them. A shard doing part
    /// `k` of `n` may delete only parts past its cut, never a sibling's: from `n` up (left over
    /// from a cut into more), or from `c` up once it has written its own part as part `k` of
    /// `c` (a scene too short for `n` parts is cut into fewer, and the shards past them write
    /// nothing). Returns the staged files (written by this run, now deleted) the caller must
    /// discard.
    ///
    /// Everything that can fail happens before anything changes.
    pub fn delete_clip_parts(&mut self, scene_id: &str, first: u32) -> Result<Vec<(Kind, String)>> {
        let scene = self.get_scene(scene_id)?;
        self.check_scope("deleting clip parts", Some(&scene.id))?;
        if let Some(own) = self.part() {
            let cut = self
                .overlay
                .clips
                .get(&(scene.index, own.index))
                .map(|c| c.part.count);
            if first < own.count && cut != Some(first) {
                let written = match cut {
                    Some(c) => format!("its own part as part {} of {c}", own.index + 1),
                    None => "no part of this scene yet".to_owned(),
                };
                return Err(DbError::OutOfScope(format!(
                    "deleting clip parts from part {}: this shard does {own} and has written \
                     {written}; it may delete only the parts past its cut (from part {} on, \
                     or from the count it wrote its own part with), never a sibling's",
                    first + 1,
                    own.count + 1
                )));
            }
        }
        let doomed_rows: Vec<(VideoClip, bool)> =
            self.scene_clips(&scene.id, scene.index, first)?.collect();
        if doomed_rows.is_empty() {
            return Ok(Vec::new());
        }
        let removed: HashSet<String> = doomed_rows.iter().map(|(c, _)| c.id.clone()).collect();
        let mut named: Vec<ArtifactRef> =
            doomed_rows.iter().map(|(c, _)| c.video.clone()).collect();
        named.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        named.dedup();
        let mut doomed = Vec::new();
        for artifact in named {
            if self.artifact(artifact.kind, &artifact.name)?.is_some()
                && !self.referenced(artifact.kind, &artifact.name, &removed)?
            {
                self.check_artifact_in_scope(artifact.kind, &artifact.name, "deleting")?;
                let in_database = self.artifact_committed(artifact.kind, &artifact.name)?;
                doomed.push((artifact, in_database));
            }
        }
        let text = scene.id.len() + doomed.iter().map(|(a, _)| a.name.len()).sum::<usize>();
        self.charge_writes((doomed_rows.len() + doomed.len()) as u64, text)?;

        // Nothing below can fail.
        for (clip, committed) in doomed_rows {
            let slot = (scene.index, clip.part.index);
            if let Some(staged) = self.overlay.clips.remove(&slot) {
                self.overlay.clip_ids.remove(&staged.id);
            }
            if committed {
                self.overlay.saw_row(&clip.id, clip.updated_at);
                self.overlay.deleted_media.insert(clip.id.clone());
                self.overlay.deleted_clips.insert(slot, clip.id);
            }
        }
        Ok(doomed
            .into_iter()
            .filter_map(|(a, in_database)| {
                self.apply_delete(a.kind, &a.name, in_database)
                    .map(|file| (a.kind, file))
            })
            .collect())
    }

    /// The clip at `slot` of scene `scene_id` as this run sees it, and whether it is committed
    /// (its staged version, if the run changed it, is the one returned).
    fn clip_at(&self, scene_id: &str, slot: ClipSlot) -> Result<Option<(VideoClip, bool)>> {
        let committed = query_row_cached(
            &self.conn,
            &format!(
                "SELECT {CLIP_COLUMNS} FROM main.video_clips
                 WHERE scene_id = ?1 AND part = ?2 AND project_id = ?3"
            ),
            params![scene_id, slot.1, self.project_id],
            clip_from_row,
        )
        .optional()?
        .filter(|c| !self.overlay.deleted_media.contains(&c.id));
        if let Some(staged) = self.overlay.clips.get(&slot) {
            return Ok(Some((staged.clone(), committed.is_some())));
        }
        Ok(committed.map(|c| (c, true)))
    }

    /// The clips of scene `scene_id` (at `index`) with part numbers from `first` up, as this
    /// run sees them, each with whether it is committed, in part order.
    fn scene_clips(
        &self,
        scene_id: &str,
        index: u32,
        first: u32,
    ) -> Result<impl Iterator<Item = (VideoClip, bool)> + use<>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {CLIP_COLUMNS} FROM main.video_clips
             WHERE scene_id = ?1 AND project_id = ?2 AND part >= ?3 ORDER BY part"
        ))?;
        let mut rows: std::collections::BTreeMap<u32, (VideoClip, bool)> =
            std::collections::BTreeMap::new();
        if !self.overlay.deleted_indexes.contains(&index) {
            for c in st.query_map(params![scene_id, self.project_id, first], clip_from_row)? {
                let c = c?;
                if !self.overlay.deleted_media.contains(&c.id) {
                    rows.insert(c.part.index, (c, true));
                }
            }
        }
        for ((_, part), c) in self.overlay.clips.range((index, first)..=(index, u32::MAX)) {
            let committed = rows.get(part).is_some_and(|(_, committed)| *committed);
            rows.insert(*part, (c.clone(), committed));
        }
        Ok(rows.into_values())
    }

    /// A video clip of this project and its slot.
    fn find_clip(&self, id: &str) -> Result<(ClipSlot, VideoClip)> {
        let id = Self::row_id("video clip", id)?;
        if let Some((slot, c)) = self.overlay.clip(&id) {
            return Ok((slot, c.clone()));
        }
        if self.overlay.deleted_media.contains(&id) {
            return Err(DbError::NotFound(format!(
                "no video clip with id {id} (this run deleted it, or its scene)"
            )));
        }
        let c = query_row_cached(
            &self.conn,
            &format!(
                "SELECT {CLIP_COLUMNS} FROM main.video_clips WHERE id = ?1 AND project_id = ?2"
            ),
            [&id, &self.project_id],
            clip_from_row,
        )
        .optional()?
        .ok_or_else(|| DbError::NotFound(format!("no video clip with id {id}")))?;
        Ok(((self.scene_index(&c.scene_id)?, c.part.index), c))
    }

    /// Reads a video clip of this project.
    pub fn get_video_clip(&self, id: &str) -> Result<VideoClip> {
        Ok(self.find_clip(id)?.1)
    }

    /// Lists video clips in scene order, then part order; of one scene if `scene_id` is given.
    pub fn list_video_clips(
        &self,
        scene_id: Option<&str>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<VideoClip>> {
        let limit = check_limit(limit)?;
        let scene_id = scene_id
            .map(|s| self.get_scene(s))
            .transpose()?
            .map(|s| s.id);
        let after = parse_clip_cursor(cursor)?;
        let (after_idx, after_part) = after.map_or((-1i64, i64::from(MAX_PARTS)), |(i, p)| {
            (i64::from(i), i64::from(p))
        });
        let cols = CLIP_COLUMNS.replace(", ", ", c.");
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT c.{cols}, s.idx FROM main.video_clips c
             JOIN main.scenes s ON s.id = c.scene_id AND s.project_id = c.project_id
             WHERE c.project_id = ?1 AND (?2 IS NULL OR c.scene_id = ?2)
               AND (s.idx, c.part) > (?3, ?4)
             ORDER BY s.idx, c.part LIMIT ?5"
        ))?;
        // The committed clips of scenes this run deleted, and those it deleted on their own,
        // are left out: fetch enough to make up.
        let overlay = &self.overlay;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let hidden_here = overlay
            .deleted_indexes
            .range(after.map_or(0, |(i, _)| i)..)
            .count()
            * MAX_PARTS as usize
            + overlay
                .deleted_clips
                .range((from, Bound::Unbounded))
                .count();
        let committed = st
            .query_map(
                params![
                    self.project_id,
                    scene_id,
                    after_idx,
                    after_part,
                    (limit + 1 + hidden_here) as i64
                ],
                |r| {
                    let c = clip_from_row(r)?;
                    Ok(((r.get::<_, u32>(10)?, c.part.index), c))
                },
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let staged = overlay
            .clips
            .range((from, Bound::Unbounded))
            .filter(|(_, c)| scene_id.as_ref().is_none_or(|s| *s == c.scene_id))
            .take(limit + 1)
            .map(|(slot, c)| (*slot, c.clone()))
            .collect();
        let rows = merge(
            committed,
            staged,
            |(slot, _)| *slot,
            |slot| {
                overlay.deleted_indexes.contains(&slot.0)
                    || overlay.deleted_clips.contains_key(slot)
            },
            limit,
        );
        let page = paginate(rows, limit, |((i, p), _)| format!("{i}:{p}"));
        Ok(Page {
            items: page.items.into_iter().map(|(_, c)| c).collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// Changes a video clip (its part stays).
    pub fn update_video_clip(&mut self, id: &str, changes: VideoClipUpdate) -> Result<VideoClip> {
        let (slot, mut c) = self.find_clip(id)?;
        self.check_scope("updating a video clip", Some(&c.scene_id))?;
        self.check_part("updating a video clip", c.part.index)?;
        let committed = self.overlay.clip(&c.id).is_none();
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
        self.charge(c.video.name.len())?;
        if committed {
            self.overlay.saw_row(&c.id, c.updated_at);
        }
        c.updated_at = next_updated_at(c.updated_at);
        self.overlay.put_clip(slot, c.clone());
        Ok(c)
    }
}

#[cfg(test)]
mod tests;
