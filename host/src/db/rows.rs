//! The rows of the schema as Rust types, and how each reads from a query (the column lists
//! and `*_from_row` functions every query of that table uses).

use std::collections::BTreeMap;

use rusqlite::Row;

/// Key/value pairs stored as a JSON object (project settings, stage configuration).
pub type KeyValues = BTreeMap<String, String>;

pub(crate) fn kv_to_json(kv: &KeyValues) -> String {
    serde_json::to_string(kv).unwrap_or_else(|_| "{}".to_owned())
}

pub(crate) fn kv_from_json(text: &str) -> KeyValues {
    // Written by us as an object of strings; anything else (a hand-edited row) reads as empty
    // rather than failing every read of the project.
    serde_json::from_str(text).unwrap_or_default()
}

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// The text stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            /// Parses the stored text.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                let s = v.as_str()?;
                $name::parse(s).ok_or_else(|| rusqlite::types::FromSqlError::Other(
                    format!("unknown {} {s:?}", stringify!($name)).into()))
            }
        }

        impl rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }
    };
}

text_enum! {
    /// Where a project stands.
    ProjectStatus {
        /// Created; no stage has run.
        Draft = "draft",
        /// A stage is running on it.
        Running = "running",
        /// The last stage run succeeded.
        Ready = "ready",
        /// The last stage run failed.
        Failed = "failed",
    }
}

text_enum! {
    /// Where a stage run stands.
    RunStatus {
        /// Recorded, not started.
        Queued = "queued",
        /// Running now.
        Running = "running",
        /// Finished and committed.
        Succeeded = "succeeded",
        /// Finished with an error; nothing it wrote is kept.
        Failed = "failed",
        /// Its process died while it ran.
        Interrupted = "interrupted",
    }
}

text_enum! {
    /// Which end of a scene a keyframe shows.
    KeyframePosition {
        /// The first frame of the scene.
        Start = "start",
        /// The last frame of the scene.
        End = "end",
    }
}

text_enum! {
    /// The folder of an artifact, as stored in the database.
    Kind {
        /// `keyframes/`.
        Keyframe = "keyframe",
        /// `clips/`.
        Clip = "clip",
        /// `output/`.
        Output = "output",
    }
}

impl From<crate::artifacts::ArtifactKind> for Kind {
    fn from(k: crate::artifacts::ArtifactKind) -> Self {
        use crate::artifacts::ArtifactKind as A;
        match k {
            A::Keyframe => Kind::Keyframe,
            A::Clip => Kind::Clip,
            A::Output => Kind::Output,
        }
    }
}

impl From<Kind> for crate::artifacts::ArtifactKind {
    fn from(k: Kind) -> Self {
        use crate::artifacts::ArtifactKind as A;
        match k {
            Kind::Keyframe => A::Keyframe,
            Kind::Clip => A::Clip,
            Kind::Output => A::Output,
        }
    }
}

/// A project row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Project {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The script the video is made from.
    pub script: String,
    /// Project-wide settings.
    pub settings: KeyValues,
    /// Where it stands.
    pub status: ProjectStatus,
    /// Creation time (ms since the epoch).
    pub created_at: i64,
    /// Last change (ms since the epoch).
    pub updated_at: i64,
}

/// A scene row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scene {
    /// Its id.
    pub id: String,
    /// Position within the project, from 0.
    pub index: u32,
    /// Short title.
    pub title: String,
    /// What happens.
    pub description: String,
    /// Length in milliseconds.
    pub duration_ms: u32,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// A reference from a row to an artifact.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ArtifactRef {
    /// Its folder.
    pub kind: Kind,
    /// Its name.
    pub name: String,
}

/// A keyframe row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Keyframe {
    /// Its id.
    pub id: String,
    /// Its scene.
    pub scene_id: String,
    /// Start or end.
    pub position: KeyframePosition,
    /// What the image shows.
    pub prompt: String,
    /// The image file.
    pub image: ArtifactRef,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// The most parts a scene's work may be cut into (`parts` in a manifest stage).
pub const MAX_PARTS: u32 = 16;

/// Which part of its scene's work a run did, or of its scene's video a clip holds: part
/// `index` (from 0) of `count`. A clip made whole is part 0 of 1.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Part {
    /// This part, from 0.
    pub index: u32,
    /// How many parts there are: 1 to [`MAX_PARTS`].
    pub count: u32,
}

impl Part {
    /// All of it: part 0 of 1.
    pub const WHOLE: Part = Part { index: 0, count: 1 };

    /// Part `index` of `count`, if that is one: `index < count <= MAX_PARTS`.
    pub fn new(index: u32, count: u32) -> Option<Part> {
        (index < count && count <= MAX_PARTS).then_some(Part { index, count })
    }
}

impl std::fmt::Display for Part {
    /// `part 2/3`, counted from 1.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "part {}/{}", self.index + 1, self.count)
    }
}

/// A video clip row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VideoClip {
    /// Its id.
    pub id: String,
    /// Its scene.
    pub scene_id: String,
    /// The video file.
    pub video: ArtifactRef,
    /// Length in milliseconds.
    pub duration_ms: u32,
    /// Frames per second.
    pub frame_rate: u32,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// Which part of its scene's video it holds.
    pub part: Part,
}

/// An artifact row: a published file and what the store knows of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Artifact {
    /// Its folder.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// The run that published it, if that run's record still exists.
    pub run_id: Option<String>,
    /// Publication time.
    pub created_at: i64,
}

/// A stage run record.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Run {
    /// Its id.
    pub id: String,
    /// The project it ran on.
    pub project_id: String,
    /// The stage's name.
    pub stage: String,
    /// SHA-256 of the plugin, lowercase hex.
    pub plugin_sha256: String,
    /// The configuration it was given.
    pub config: KeyValues,
    /// Where it stands.
    pub status: RunStatus,
    /// What it reported on success.
    pub summary: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Start time.
    pub started_at: i64,
    /// End time.
    pub finished_at: Option<i64>,
    /// The pipeline run it was part of, if any.
    pub pipeline_id: Option<String>,
    /// Its position in that pipeline's manifest.
    pub stage_index: Option<u32>,
    /// Its place in the order runs were recorded (increasing; unlike times, never goes back).
    pub seq: i64,
    /// The scene a shard was bound to; `None` for a run of the whole project.
    pub scene_id: Option<String>,
    /// Why it ran ("first run", "scene 3 changed", …), when a pipeline ran it.
    pub reason: Option<String>,
    /// The part of its scene's work a shard did, if its stage is cut into parts.
    pub part: Option<Part>,
}

/// The columns [`project_from_row`] reads, of `projects` named `p`. The status is `running`
/// while a stage run of the project is (no run writes the project's row when it starts: see
/// [`super::runs::start_run`]); otherwise it is the stored outcome of the last run.
pub(crate) const PROJECT_COLUMNS: &str = "p.id, p.name, p.script, p.settings, \
     CASE WHEN EXISTS (SELECT 1 FROM pipeline_runs INDEXED BY pipeline_runs_by_status \
         WHERE status IN ('queued', 'running') AND project_id = p.id) \
     THEN 'running' ELSE p.status END, \
     p.created_at, p.updated_at";

pub(crate) fn project_from_row(r: &Row<'_>) -> rusqlite::Result<Project> {
    Ok(Project {
        id: r.get(0)?,
        name: r.get(1)?,
        script: r.get(2)?,
        settings: kv_from_json(&r.get::<_, String>(3)?),
        status: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

pub(crate) const RUN_COLUMNS: &str = "id, project_id, stage, plugin_sha256, config, status, summary, error, \
     started_at, finished_at, pipeline_id, stage_index, rowid, scene_id, reason, part, parts";

pub(crate) fn run_from_row(r: &Row<'_>) -> rusqlite::Result<Run> {
    Ok(Run {
        id: r.get(0)?,
        project_id: r.get(1)?,
        stage: r.get(2)?,
        plugin_sha256: r.get(3)?,
        config: kv_from_json(&r.get::<_, String>(4)?),
        status: r.get(5)?,
        summary: r.get(6)?,
        error: r.get(7)?,
        started_at: r.get(8)?,
        finished_at: r.get(9)?,
        pipeline_id: r.get(10)?,
        stage_index: r.get(11)?,
        seq: r.get(12)?,
        scene_id: r.get(13)?,
        reason: r.get(14)?,
        part: match (r.get::<_, Option<u32>>(15)?, r.get::<_, Option<u32>>(16)?) {
            (Some(index), Some(count)) => Some(Part { index, count }),
            _ => None,
        },
    })
}

pub(crate) const SCENE_COLUMNS: &str =
    "id, idx, title, description, duration_ms, created_at, updated_at";

pub(crate) fn scene_from_row(r: &Row<'_>) -> rusqlite::Result<Scene> {
    Ok(Scene {
        id: r.get(0)?,
        index: r.get(1)?,
        title: r.get(2)?,
        description: r.get(3)?,
        duration_ms: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

pub(crate) const KEYFRAME_COLUMNS: &str =
    "id, scene_id, position, prompt, image_kind, image_name, created_at, updated_at";

pub(crate) fn keyframe_from_row(r: &Row<'_>) -> rusqlite::Result<Keyframe> {
    Ok(Keyframe {
        id: r.get(0)?,
        scene_id: r.get(1)?,
        position: r.get(2)?,
        prompt: r.get(3)?,
        image: ArtifactRef {
            kind: r.get(4)?,
            name: r.get(5)?,
        },
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

pub(crate) const CLIP_COLUMNS: &str = "id, scene_id, video_kind, video_name, duration_ms, frame_rate, created_at, updated_at, part, parts";

pub(crate) fn clip_from_row(r: &Row<'_>) -> rusqlite::Result<VideoClip> {
    Ok(VideoClip {
        id: r.get(0)?,
        scene_id: r.get(1)?,
        video: ArtifactRef {
            kind: r.get(2)?,
            name: r.get(3)?,
        },
        duration_ms: r.get(4)?,
        frame_rate: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
        part: Part {
            index: r.get(8)?,
            count: r.get(9)?,
        },
    })
}

pub(crate) const ARTIFACT_COLUMNS: &str = "kind, name, size, sha256, run_id, created_at";

pub(crate) fn artifact_from_row(r: &Row<'_>) -> rusqlite::Result<Artifact> {
    Ok(Artifact {
        kind: r.get(0)?,
        name: r.get(1)?,
        size: r.get(2)?,
        sha256: r.get(3)?,
        run_id: r.get(4)?,
        created_at: r.get(5)?,
    })
}
