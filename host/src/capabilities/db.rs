//! `vidpipe:plugin/db`: typed rows of the run's project, through its [`StageSession`].
//!
//! [`StageSession`]: crate::db::stage::StageSession

use super::bindings::db::{self as wit, Host};
use super::bindings::types::ArtifactRef as WitRef;
use super::{HostError, StageContext};
pub use crate::db::stage::SessionLimits;
use crate::db::{self, Read, stage};
use crate::limits::{Checked, LimitSpec, Unit};

/// `max-staged-rows`: row writes (creates, updates, deletions, artifact records) one run may
/// stage.
pub static MAX_STAGED_ROWS: LimitSpec = LimitSpec {
    key: "max-staged-rows",
    unit: Unit::Count,
    default: 100_000,
    min: 1,
    max: 100_000_000,
    help: "Row writes one run may stage",
};
/// `max-staged-text`: text (titles, descriptions, prompts, names) one run may stage. With
/// `max-staged-rows`, sized so that the largest commit they allow holds the database's write
/// lock, which every other writer then waits for, well under a second on a small VM (100,000
/// rows of 670 bytes each took 0.6 s; issue #12, SECURITY.md).
pub static MAX_STAGED_TEXT: LimitSpec = LimitSpec {
    key: "max-staged-text",
    unit: Unit::MiB,
    default: 64,
    min: 1,
    max: 64 << 10,
    help: "Text one run may stage, in MiB",
};

/// This room's limits, from checked settings: what the session lets one run stage.
pub fn limits(c: &Checked) -> stage::SessionLimits {
    stage::SessionLimits {
        max_writes: c.count(&MAX_STAGED_ROWS),
        max_bytes: c.bytes(&MAX_STAGED_TEXT),
        names: (MAX_STAGED_ROWS.key, MAX_STAGED_TEXT.key),
    }
}

fn kv(map: db::KeyValues) -> Vec<(String, String)> {
    map.into_iter().collect()
}

fn project(p: db::Project) -> wit::Project {
    wit::Project {
        id: p.id,
        name: p.name,
        script: p.script,
        settings: kv(p.settings),
        status: match p.status {
            db::ProjectStatus::Draft => wit::ProjectStatus::Draft,
            db::ProjectStatus::Running => wit::ProjectStatus::Running,
            db::ProjectStatus::Ready => wit::ProjectStatus::Ready,
            db::ProjectStatus::Failed => wit::ProjectStatus::Failed,
        },
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

fn run(r: db::Run) -> wit::Run {
    wit::Run {
        id: r.id,
        stage: r.stage,
        plugin_sha256: r.plugin_sha256,
        config: kv(r.config),
        status: match r.status {
            db::RunStatus::Queued => wit::RunStatus::Queued,
            db::RunStatus::Running => wit::RunStatus::Running,
            db::RunStatus::Succeeded => wit::RunStatus::Succeeded,
            db::RunStatus::Failed => wit::RunStatus::Failed,
            db::RunStatus::Interrupted => wit::RunStatus::Interrupted,
        },
        started_at: r.started_at,
        finished_at: r.finished_at,
        error: r.error,
    }
}

fn scene(s: db::Scene) -> wit::Scene {
    wit::Scene {
        id: s.id,
        index: s.index,
        title: s.title,
        description: s.description,
        duration_ms: s.duration_ms,
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

fn position(p: wit::KeyframePosition) -> db::KeyframePosition {
    match p {
        wit::KeyframePosition::Start => db::KeyframePosition::Start,
        wit::KeyframePosition::End => db::KeyframePosition::End,
    }
}

/// Converts a guest's artifact reference, refusing a malformed name with `invalid-input`.
fn artifact_ref(r: WitRef) -> Result<db::ArtifactRef, HostError> {
    crate::artifacts::validate_name(&r.name)?;
    Ok(db::ArtifactRef {
        kind: super::kind(r.kind).into(),
        name: r.name,
    })
}

fn wit_ref(r: db::ArtifactRef) -> WitRef {
    WitRef {
        kind: super::wit_kind(r.kind.into()),
        name: r.name,
    }
}

fn keyframe(k: db::Keyframe) -> wit::Keyframe {
    wit::Keyframe {
        id: k.id,
        scene_id: k.scene_id,
        position: match k.position {
            db::KeyframePosition::Start => wit::KeyframePosition::Start,
            db::KeyframePosition::End => wit::KeyframePosition::End,
        },
        prompt: k.prompt,
        image: wit_ref(k.image),
        created_at: k.created_at,
        updated_at: k.updated_at,
    }
}

fn part_of(p: db::Part) -> wit::PartOf {
    wit::PartOf {
        index: p.index,
        count: p.count,
    }
}

fn clip_part(c: db::VideoClip) -> wit::ClipPart {
    let part = part_of(c.part);
    wit::ClipPart {
        clip: clip(c),
        part,
    }
}

fn new_clip(new: wit::NewVideoClip) -> Result<stage::NewVideoClip, HostError> {
    Ok(stage::NewVideoClip {
        scene_id: new.scene_id,
        video: artifact_ref(new.video)?,
        duration_ms: new.duration_ms,
        frame_rate: new.frame_rate,
    })
}

fn clip(c: db::VideoClip) -> wit::VideoClip {
    wit::VideoClip {
        id: c.id,
        scene_id: c.scene_id,
        video: wit_ref(c.video),
        duration_ms: c.duration_ms,
        frame_rate: c.frame_rate,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

impl Host for StageContext {
    fn get_project(&mut self) -> Result<wit::Project, HostError> {
        self.db.observe(Read::Project);
        Ok(project(self.db.project()?))
    }

    fn get_run(&mut self) -> Result<wit::Run, HostError> {
        Ok(run(self.db.run()?))
    }

    fn scope(&mut self) -> wasmtime::Result<wit::RunScope> {
        Ok(match self.db.scope() {
            Some(scene) => wit::RunScope::Scene(scene.to_owned()),
            None => wit::RunScope::Project,
        })
    }

    fn create_scene(&mut self, new: wit::NewScene) -> Result<wit::Scene, HostError> {
        let new = stage::NewScene {
            index: new.index,
            title: new.title,
            description: new.description,
            duration_ms: new.duration_ms,
        };
        Ok(scene(self.db.create_scene(new)?))
    }

    fn create_scenes(&mut self, scenes: Vec<wit::NewScene>) -> Result<Vec<String>, HostError> {
        let mut ids = Vec::with_capacity(scenes.len());
        for (position, new) in scenes.into_iter().enumerate() {
            let new = stage::NewScene {
                index: new.index,
                title: new.title,
                description: new.description,
                duration_ms: new.duration_ms,
            };
            match self.db.create_scene(new) {
                Ok(scene) => ids.push(scene.id),
                Err(e) => {
                    return Err(match HostError::from(e) {
                        HostError::Guest(mut error) => {
                            error.message =
                                format!("scene {position} of the batch: {}", error.message);
                            HostError::Guest(error)
                        }
                        other => other,
                    });
                }
            }
        }
        Ok(ids)
    }

    fn get_scene(&mut self, id: String) -> Result<wit::Scene, HostError> {
        self.db.observe(Read::Scene(id.clone()));
        Ok(scene(self.db.get_scene(&id)?))
    }

    fn list_scenes(
        &mut self,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<wit::ScenePage, HostError> {
        self.db.observe(Read::Scenes);
        let page = self.db.list_scenes(cursor.as_deref(), limit)?;
        Ok(wit::ScenePage {
            items: page.items.into_iter().map(scene).collect(),
            next_cursor: page.next_cursor,
        })
    }

    fn update_scene(
        &mut self,
        id: String,
        changes: wit::SceneUpdate,
    ) -> Result<wit::Scene, HostError> {
        let changes = stage::SceneUpdate {
            title: changes.title,
            description: changes.description,
            duration_ms: changes.duration_ms,
        };
        // The whole row comes back: the guest has read it.
        self.db.observe(Read::Scene(id.clone()));
        Ok(scene(self.db.update_scene(&id, changes)?))
    }

    fn delete_scene(&mut self, id: String) -> Result<(), HostError> {
        // The deletion is staged; every file it took off the books is removed before an
        // error is returned.
        let discard = self.db.delete_scene(&id)?;
        self.discard_all(discard)
    }

    fn create_keyframe(&mut self, new: wit::NewKeyframe) -> Result<wit::Keyframe, HostError> {
        let new = stage::NewKeyframe {
            scene_id: new.scene_id,
            position: position(new.position),
            prompt: new.prompt,
            image: artifact_ref(new.image)?,
        };
        Ok(keyframe(self.db.create_keyframe(new)?))
    }

    fn get_keyframe(&mut self, id: String) -> Result<wit::Keyframe, HostError> {
        self.db.observe(Read::Keyframe(id.clone()));
        Ok(keyframe(self.db.get_keyframe(&id)?))
    }

    fn list_keyframes(
        &mut self,
        scene_id: Option<String>,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<wit::KeyframePage, HostError> {
        self.db.observe(Read::Keyframes(scene_id.clone()));
        let page = self
            .db
            .list_keyframes(scene_id.as_deref(), cursor.as_deref(), limit)?;
        Ok(wit::KeyframePage {
            items: page.items.into_iter().map(keyframe).collect(),
            next_cursor: page.next_cursor,
        })
    }

    fn update_keyframe(
        &mut self,
        id: String,
        changes: wit::KeyframeUpdate,
    ) -> Result<wit::Keyframe, HostError> {
        let changes = stage::KeyframeUpdate {
            prompt: changes.prompt,
            image: changes.image.map(artifact_ref).transpose()?,
        };
        self.db.observe(Read::Keyframe(id.clone()));
        Ok(keyframe(self.db.update_keyframe(&id, changes)?))
    }

    fn create_video_clip(&mut self, new: wit::NewVideoClip) -> Result<wit::VideoClip, HostError> {
        Ok(clip(self.db.create_video_clip(new_clip(new)?)?))
    }

    fn get_video_clip(&mut self, id: String) -> Result<wit::VideoClip, HostError> {
        self.db.observe(Read::Clip(id.clone()));
        Ok(clip(self.db.get_video_clip(&id)?))
    }

    fn list_video_clips(
        &mut self,
        scene_id: Option<String>,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<wit::VideoClipPage, HostError> {
        self.db.observe(Read::Clips(scene_id.clone()));
        let page = self
            .db
            .list_video_clips(scene_id.as_deref(), cursor.as_deref(), limit)?;
        Ok(wit::VideoClipPage {
            items: page.items.into_iter().map(clip).collect(),
            next_cursor: page.next_cursor,
        })
    }

    fn update_video_clip(
        &mut self,
        id: String,
        changes: wit::VideoClipUpdate,
    ) -> Result<wit::VideoClip, HostError> {
        let changes = stage::VideoClipUpdate {
            video: changes.video.map(artifact_ref).transpose()?,
            duration_ms: changes.duration_ms,
            frame_rate: changes.frame_rate,
        };
        self.db.observe(Read::Clip(id.clone()));
        Ok(clip(self.db.update_video_clip(&id, changes)?))
    }

    fn part(&mut self) -> wasmtime::Result<Option<wit::PartOf>> {
        Ok(self.db.ask_part().map(part_of))
    }

    fn put_clip_part(
        &mut self,
        new: wit::NewVideoClip,
        part: wit::PartOf,
    ) -> Result<wit::ClipPart, HostError> {
        let (row, discard) = self
            .db
            .put_clip_part(new_clip(new)?, part.index, part.count)?;
        self.discard_all(discard)?;
        Ok(clip_part(row))
    }

    fn list_clip_parts(
        &mut self,
        scene_id: Option<String>,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<wit::ClipPartPage, HostError> {
        self.db.observe(Read::ClipParts(scene_id.clone()));
        let page = self
            .db
            .list_video_clips(scene_id.as_deref(), cursor.as_deref(), limit)?;
        Ok(wit::ClipPartPage {
            items: page.items.into_iter().map(clip_part).collect(),
            next_cursor: page.next_cursor,
        })
    }

    fn delete_clip_parts(&mut self, scene_id: String, first: u32) -> Result<(), HostError> {
        let discard = self.db.delete_clip_parts(&scene_id, first)?;
        self.discard_all(discard)
    }
}

impl StageContext {
    /// Removes staged files a deletion took off the books (a removal that fails is left for
    /// the sweep, which the store arranges); the first failure is returned after all were
    /// tried.
    fn discard_all(&mut self, files: Vec<(db::Kind, String)>) -> Result<(), HostError> {
        let mut first_error = None;
        for (kind, staged) in files {
            if let Err(e) = self.files.discard(kind.into(), &staged) {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}
