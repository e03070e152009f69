//! What a stage run read, so that a later pipeline can tell, without running the guest again,
//! whether its work still stands.
//!
//! Every read a guest makes goes through the host, so the host sees what a stage depends on
//! without being told. A run's session notes each read as a [`Read`] — what was asked — with a
//! digest of the committed answer when it was first asked ([`digest`]). When the run commits,
//! inside its commit's transaction, the host first takes each digest again: if one differs,
//! another run of the project (a stage or shard running at the same time) changed what this
//! one read while it ran, and nothing is recorded (the run is never reused). Otherwise, after
//! its own writes, it takes each digest once more and stores the list with the run's record. A
//! later pipeline takes the same digests again ([`first_changed`]): if none differs,
//! everything the run read is as its commit left it, and running the stage again on the same
//! input would only do its work over.
//!
//! Digests are of the answer as the committed state gives it after the commit, so they include
//! the run's own writes (a storyboard that lists scenes and then writes them reads, next time,
//! the scenes it wrote): that assumes what every stage of a resumable pipeline must already be,
//! that running it on its own output changes nothing. A listing is digested whole, whatever
//! page the guest read: a change anywhere in it counts. Times (`created_at`, `updated_at`) and
//! statuses are left out; ids, positions, text and artifact contents (by SHA-256) are in.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};

use super::{Kind, Result};

/// One read of a run, as the host can ask it again.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Read {
    /// The project's name, script and settings.
    Project,
    /// One scene, by id (its absence, if it has none).
    Scene(String),
    /// One keyframe, by id.
    Keyframe(String),
    /// One video clip, by id.
    Clip(String),
    /// The listing of every scene.
    Scenes,
    /// The listing of the keyframes of one scene, or of every scene.
    Keyframes(Option<String>),
    /// The listing of the clips of one scene, or of every scene.
    Clips(Option<String>),
    /// The listing of the clips of one scene, or of every scene, with their parts.
    ClipParts(Option<String>),
    /// The listing of the artifacts of a folder.
    Artifacts(Kind),
    /// One artifact, by folder and name: its size and SHA-256 (its absence, if it has none).
    Artifact(Kind, String),
}

/// The query that answers a read: `?1` is the read's own key (an id, a scene id or a folder;
/// `NULL` where it has none) and `?2` the project.
fn query(read: &Read) -> &'static str {
    match read {
        Read::Project => "SELECT name, script, settings FROM main.projects WHERE id = ?2 AND ?1 IS NULL",
        Read::Scene(_) => {
            "SELECT idx, title, description, duration_ms FROM main.scenes
             WHERE id = ?1 AND project_id = ?2"
        }
        Read::Keyframe(_) => {
            "SELECT scene_id, position, prompt, image_kind, image_name FROM main.keyframes
             WHERE id = ?1 AND project_id = ?2"
        }
        Read::Clip(_) => {
            "SELECT scene_id, video_kind, video_name, duration_ms, frame_rate FROM main.video_clips
             WHERE id = ?1 AND project_id = ?2"
        }
        Read::Scenes => {
            "SELECT id, idx, title, description, duration_ms FROM main.scenes
             WHERE project_id = ?2 AND ?1 IS NULL ORDER BY idx"
        }
        Read::Keyframes(Some(_)) => {
            "SELECT id, position, prompt, image_kind, image_name FROM main.keyframes
             WHERE scene_id = ?1 AND project_id = ?2 ORDER BY position"
        }
        Read::Keyframes(None) => {
            "SELECT id, scene_id, position, prompt, image_kind, image_name FROM main.keyframes
             WHERE project_id = ?2 AND ?1 IS NULL ORDER BY id"
        }
        Read::Clips(Some(_)) => {
            "SELECT id, video_kind, video_name, duration_ms, frame_rate FROM main.video_clips
             WHERE scene_id = ?1 AND project_id = ?2 ORDER BY part"
        }
        Read::ClipParts(Some(_)) => {
            "SELECT id, video_kind, video_name, duration_ms, frame_rate, part, parts
             FROM main.video_clips WHERE scene_id = ?1 AND project_id = ?2 ORDER BY part"
        }
        Read::ClipParts(None) => {
            "SELECT id, scene_id, video_kind, video_name, duration_ms, frame_rate, part, parts
             FROM main.video_clips WHERE project_id = ?2 AND ?1 IS NULL ORDER BY id"
        }
        Read::Clips(None) => {
            "SELECT id, scene_id, video_kind, video_name, duration_ms, frame_rate FROM main.video_clips
             WHERE project_id = ?2 AND ?1 IS NULL ORDER BY id"
        }
        Read::Artifacts(_) => {
            "SELECT name, size, sha256 FROM main.artifacts
             WHERE kind = ?1 AND project_id = ?2 ORDER BY name"
        }
        Read::Artifact(..) => {
            "SELECT size, sha256 FROM main.artifacts
             WHERE kind = ?1 AND project_id = ?2 AND name = ?3"
        }
    }
}

/// The SHA-256 (hex) of the answer to `read` in `project_id`'s committed state, as `conn`
/// sees it: every value of every row, each with its type, in order.
pub fn digest(conn: &Connection, project_id: &str, read: &Read) -> Result<String> {
    let key: Option<&str> = match read {
        Read::Scene(id) | Read::Keyframe(id) | Read::Clip(id) => Some(id),
        Read::Keyframes(scene) | Read::Clips(scene) | Read::ClipParts(scene) => scene.as_deref(),
        Read::Artifacts(kind) | Read::Artifact(kind, _) => Some(kind.as_str()),
        Read::Project | Read::Scenes => None,
    };
    let mut st = conn.prepare_cached(query(read))?;
    let mut rows = match read {
        Read::Artifact(_, name) => st.query(params![key, project_id, name])?,
        _ => st.query(params![key, project_id])?,
    };
    let mut hash = Sha256::new();
    while let Some(row) = rows.next()? {
        hash.update(b"\x1erow");
        for i in 0..row.as_ref().column_count() {
            match row.get_ref(i)? {
                ValueRef::Null => hash.update(b"\x1fn"),
                ValueRef::Integer(n) => {
                    hash.update(b"\x1fi");
                    hash.update(n.to_le_bytes());
                }
                ValueRef::Real(f) => {
                    hash.update(b"\x1fr");
                    hash.update(f.to_le_bytes());
                }
                ValueRef::Text(t) | ValueRef::Blob(t) => {
                    hash.update(b"\x1ft");
                    hash.update((t.len() as u64).to_le_bytes());
                    hash.update(t);
                }
            }
        }
    }
    Ok(hex(&hash.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first of a run's recorded reads whose answer is not what it was, if any.
pub fn first_changed(
    conn: &Connection,
    project_id: &str,
    recorded: &[(Read, String)],
) -> Result<Option<Read>> {
    for (read, was) in recorded {
        if &digest(conn, project_id, read)? != was {
            return Ok(Some(read.clone()));
        }
    }
    Ok(None)
}

/// `recorded` as stored in a run's record (JSON).
pub fn to_json(recorded: &[(Read, String)]) -> String {
    serde_json::to_string(recorded).unwrap_or_else(|_| "null".to_owned())
}

/// A run record's reads, or `None` if it has none (it ran before reads were recorded, or its
/// record was edited by hand): such a run's work is never reused.
pub fn from_json(text: Option<&str>) -> Option<Vec<(Read, String)>> {
    serde_json::from_str(text?).ok()
}

/// What changed, in words, for `runs show`: "scene 3 changed", "the project changed".
pub fn describe(conn: &Connection, project_id: &str, read: &Read) -> String {
    let scene = |id: &str| -> String {
        let index: Option<u32> = conn
            .query_row(
                "SELECT idx FROM main.scenes WHERE id = ?1 AND project_id = ?2",
                params![id, project_id],
                |r| r.get(0),
            )
            .ok();
        match index {
            Some(i) => format!("scene {i}"),
            None => format!("scene {id} (since deleted)"),
        }
    };
    match read {
        Read::Project => "the project (its name, script or settings) changed".to_owned(),
        Read::Scene(id) => format!("{} changed", scene(id)),
        Read::Keyframe(id) => format!("keyframe {id} changed"),
        Read::Clip(id) => format!("video clip {id} changed"),
        Read::Scenes => "the scenes changed".to_owned(),
        Read::Keyframes(Some(id)) => format!("the keyframes of {} changed", scene(id)),
        Read::Keyframes(None) => "the keyframes changed".to_owned(),
        Read::Clips(Some(id)) => format!("the clip of {} changed", scene(id)),
        Read::Clips(None) => "the clips changed".to_owned(),
        Read::ClipParts(Some(id)) => format!("the clip parts of {} changed", scene(id)),
        Read::ClipParts(None) => "the clip parts changed".to_owned(),
        Read::Artifacts(kind) => format!("the {kind} artifacts changed"),
        Read::Artifact(kind, name) => format!("artifact {kind}/{name} changed"),
    }
}
