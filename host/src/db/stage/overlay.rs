//! A run's staged rows, held in memory until the run commits, and how a page of them merges
//! with a page of committed rows.
//!
//! Each kind of row is kept in the order its listing uses (scenes by index, keyframes by scene
//! index then position, clips by scene index then part, artifacts by kind and name), with a map from id to
//! that position for lookups by id. A staged row replaces the committed row of the same key:
//! keys are immutable (a scene never changes its index, a keyframe its scene or position), so a
//! row changed by the run keeps its key.
//!
//! A committed scene the run deleted is a tombstone: its id and index are kept, and every
//! lookup and listing leaves out the committed scene and the committed keyframes and clips that
//! hang off it (the commit deletes the scene, and the database's cascades delete the rest). Its
//! index is free again: the run may create a new scene there. A committed clip part the run
//! deleted (`delete-clip-parts`) is a tombstone too, by its slot.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::db::{Artifact, Keyframe, Kind, Scene, VideoClip};

/// A keyframe's place in listings: its scene's index, then 0 for the start, 1 for the end.
pub(crate) type KeyframeSlot = (u32, u8);

/// A clip's place in listings: its scene's index, then its part.
pub(crate) type ClipSlot = (u32, u32);

/// What a run has staged. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Overlay {
    /// Scenes created or changed, by index.
    pub scenes: BTreeMap<u32, Scene>,
    /// The index of each staged scene, by id.
    pub scene_ids: HashMap<String, u32>,
    /// Keyframes created or changed, by slot.
    pub keyframes: BTreeMap<KeyframeSlot, Keyframe>,
    /// The slot of each staged keyframe, by id.
    pub keyframe_ids: HashMap<String, KeyframeSlot>,
    /// Video clips created or changed, by slot.
    pub clips: BTreeMap<ClipSlot, VideoClip>,
    /// The slot of each staged clip, by id.
    pub clip_ids: HashMap<String, ClipSlot>,
    /// Committed clips this run deleted on their own (not with their scene), by slot, with
    /// their ids: the commit deletes them, and listings leave them out.
    pub deleted_clips: BTreeMap<ClipSlot, String>,
    /// Committed scenes this run deleted: their indexes, by id.
    pub deleted_scenes: HashMap<String, u32>,
    /// The indexes of [`Self::deleted_scenes`]: committed rows at these scene indexes are hidden.
    pub deleted_indexes: BTreeSet<u32>,
    /// Ids of the committed keyframes and clips of deleted scenes.
    pub deleted_media: HashSet<String>,
    /// Artifacts written (with the staged file holding their bytes) or deleted (`None`).
    pub artifacts: BTreeMap<(Kind, String), Option<(Artifact, String)>>,
    /// Bytes on disk of the staged files (see [`crate::artifacts::disk_bytes`]).
    pub staged_disk_bytes: u64,
    /// The indexes of the project's committed scenes, once a run has checked enough new
    /// indexes to make loading them pay (a scene this run deletes is taken out). Another run
    /// of the project may commit a scene meanwhile: then the commit's insert finds the index
    /// taken, and fails as a conflict.
    pub committed_indexes: Option<std::collections::HashSet<u32>>,
    /// How many index checks have asked the database so far.
    pub index_queries: u32,
    /// The committed scenes, keyframes and clips this run changed or deleted: the
    /// `updated_at` each had when the run first changed it, by id. The commit changes such a
    /// row only if it still has it (see `commit.rs`).
    pub seen_rows: HashMap<String, i64>,
    /// The artifacts this run wrote or deleted: the committed record of each (`None`: there
    /// was none) when the run first touched it. The commit goes ahead only if each is still so.
    pub seen_artifacts: HashMap<(Kind, String), Option<Artifact>>,
}

impl Overlay {
    /// Notes that the run changes committed row `id`, which had `updated_at` (unless it
    /// already did: the first time counts).
    pub fn saw_row(&mut self, id: &str, updated_at: i64) {
        if !self.seen_rows.contains_key(id) {
            self.seen_rows.insert(id.to_owned(), updated_at);
        }
    }

    /// Stages a scene, new or changed.
    pub fn put_scene(&mut self, scene: Scene) {
        self.scene_ids.insert(scene.id.clone(), scene.index);
        self.scenes.insert(scene.index, scene);
    }

    /// The staged scene with `id`, if there is one.
    pub fn scene(&self, id: &str) -> Option<&Scene> {
        self.scene_ids.get(id).and_then(|i| self.scenes.get(i))
    }

    /// Stages a keyframe, new or changed, at `slot`.
    pub fn put_keyframe(&mut self, slot: KeyframeSlot, keyframe: Keyframe) {
        self.keyframe_ids.insert(keyframe.id.clone(), slot);
        self.keyframes.insert(slot, keyframe);
    }

    /// The staged keyframe with `id` and its slot, if there is one.
    pub fn keyframe(&self, id: &str) -> Option<(KeyframeSlot, &Keyframe)> {
        let slot = *self.keyframe_ids.get(id)?;
        Some((slot, self.keyframes.get(&slot)?))
    }

    /// Stages a clip, new or changed, at `slot`.
    pub fn put_clip(&mut self, slot: ClipSlot, clip: VideoClip) {
        self.clip_ids.insert(clip.id.clone(), slot);
        self.clips.insert(slot, clip);
    }

    /// Takes the staged scene at `index`, and the staged keyframes and clips hanging off it,
    /// out of the overlay.
    pub fn remove_scene(&mut self, index: u32) {
        if let Some(scene) = self.scenes.remove(&index) {
            self.scene_ids.remove(&scene.id);
        }
        for position in 0..=1 {
            if let Some(k) = self.keyframes.remove(&(index, position)) {
                self.keyframe_ids.remove(&k.id);
            }
        }
        let parts: Vec<ClipSlot> = self
            .clips
            .range((index, 0)..=(index, u32::MAX))
            .map(|(slot, _)| *slot)
            .collect();
        for slot in parts {
            if let Some(c) = self.clips.remove(&slot) {
                self.clip_ids.remove(&c.id);
            }
        }
        // Its committed clips go with the scene, by cascade.
        self.deleted_clips.retain(|&(scene, _), _| scene != index);
    }

    /// The staged clip with `id` and its slot, if there is one.
    pub fn clip(&self, id: &str) -> Option<(ClipSlot, &VideoClip)> {
        let slot = *self.clip_ids.get(id)?;
        Some((slot, self.clips.get(&slot)?))
    }
}

/// The first `limit + 1` distinct rows of two key-ordered runs of rows — the committed rows of a
/// page and the staged ones after the same cursor — in key order. Where both have a key, the
/// staged row is the one seen; committed rows whose key `hidden` says was deleted are left out.
///
/// Each input needs no more than its own first `limit + 1` rows (plus, for `committed`, as
/// many as can be hidden): every key among the first `limit + 1` of the merge is among the
/// first `limit + 1` of the run it comes from.
pub(crate) fn merge<K: Ord, T>(
    committed: Vec<T>,
    staged: Vec<T>,
    key: impl Fn(&T) -> K,
    hidden: impl Fn(&K) -> bool,
    limit: usize,
) -> Vec<T> {
    let mut out = Vec::with_capacity(limit + 1);
    let mut committed = committed
        .into_iter()
        .filter(|t| !hidden(&key(t)))
        .peekable();
    let mut staged = staged.into_iter().peekable();
    while out.len() <= limit {
        let next = match (committed.peek(), staged.peek()) {
            (None, None) => break,
            (Some(_), None) => committed.next(),
            (None, Some(_)) => staged.next(),
            (Some(c), Some(s)) => match key(c).cmp(&key(s)) {
                std::cmp::Ordering::Less => committed.next(),
                std::cmp::Ordering::Greater => staged.next(),
                std::cmp::Ordering::Equal => {
                    committed.next();
                    staged.next()
                }
            },
        };
        out.extend(next);
    }
    out
}

/// Splits `rows` (at most `limit + 1` of them) into a page of `limit`, deriving the cursor of the
/// next page from the last row kept when there are more.
pub(crate) fn paginate<T>(
    mut rows: Vec<T>,
    limit: usize,
    cursor_of: impl Fn(&T) -> String,
) -> super::Page<T> {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more {
        rows.last().map(cursor_of)
    } else {
        None
    };
    super::Page {
        items: rows,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merged_page_has_each_key_once_staged_rows_first_and_no_hidden_rows() {
        let committed = vec![(1, "c1"), (2, "c2"), (4, "c4"), (5, "c5"), (7, "c7")];
        let staged = vec![(2, "s2"), (3, "s3"), (6, "s6")];
        let merged = merge(committed.clone(), staged.clone(), |t| t.0, |k| *k == 4, 10);
        let names: Vec<&str> = merged.iter().map(|t| t.1).collect();
        assert_eq!(names, ["c1", "s2", "s3", "c5", "s6", "c7"]);
        let short = merge(committed, staged, |t| t.0, |_| false, 2);
        assert_eq!(
            short.len(),
            3,
            "limit + 1, to tell whether there is a next page"
        );
        let page = paginate(short, 2, |t| t.0.to_string());
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next_cursor.as_deref(), Some("2"));
    }
}
