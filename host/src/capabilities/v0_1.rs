//! The frozen `vidpipe:plugin@0.1.0` contract, adapted onto the current one.
//!
//! A plugin built against 0.1.0 imports `vidpipe:plugin/db@0.1.0` and its siblings. The host
//! links those beside the current interfaces, and every 0.1.0 function here converts its
//! arguments, calls the current room's function of the same name and converts the result back,
//! so both versions share one implementation, one set of limits and one run state (as Spin does
//! for its older worlds). Nothing here decides anything: a change of behaviour belongs in the
//! rooms, where it reaches both versions.
//!
//! 0.1.0 is a subset of the current contract, with the same records, so the conversions are
//! field by field. The one thing 0.1.0 cannot express is a newer error case; [`error`] maps
//! each to the 0.1.0 case a 0.1.0 plugin would already handle the same way.

use wasmtime::component::Resource;

use super::artifacts::WriterState;
use super::bindings::v0_1::vidpipe::plugin as old;
use super::bindings::{artifacts as new_artifacts, db as new_db, log as new_log, types as new};
use super::{HostError, StageContext};

/// Converts between the two versions' copies of one WIT type.
trait Adapt<T> {
    fn adapt(self) -> T;
}

impl<A: Adapt<B>, B> Adapt<Option<B>> for Option<A> {
    fn adapt(self) -> Option<B> {
        self.map(Adapt::adapt)
    }
}

impl<A: Adapt<B>, B> Adapt<Vec<B>> for Vec<A> {
    fn adapt(self) -> Vec<B> {
        self.into_iter().map(Adapt::adapt).collect()
    }
}

/// Types that are the same Rust type in both versions.
macro_rules! same {
    ($($t:ty),*) => {$(
        impl Adapt<$t> for $t {
            fn adapt(self) -> $t {
                self
            }
        }
    )*};
}
same!(String, u32, u64, i64, (String, String));

/// Both directions of an enum whose cases are the same in both versions.
macro_rules! enums {
    ($($old:ident :: $ty:ident <=> $new:ident { $($case:ident),* $(,)? })*) => {$(
        impl Adapt<$new::$ty> for old::$old::$ty {
            fn adapt(self) -> $new::$ty {
                match self {
                    $(old::$old::$ty::$case => $new::$ty::$case,)*
                }
            }
        }
        impl Adapt<old::$old::$ty> for $new::$ty {
            fn adapt(self) -> old::$old::$ty {
                match self {
                    $($new::$ty::$case => old::$old::$ty::$case,)*
                }
            }
        }
    )*};
}

/// One direction of a record whose fields are the same in both versions.
macro_rules! records {
    ($($from:path => $to:path { $($field:ident),* $(,)? })*) => {$(
        impl Adapt<$to> for $from {
            fn adapt(self) -> $to {
                $to { $($field: self.$field.adapt(),)* }
            }
        }
    )*};
}

enums! {
    types::ArtifactKind <=> new { Keyframe, Clip, Output }
    db::ProjectStatus <=> new_db { Draft, Running, Ready, Failed }
    db::KeyframePosition <=> new_db { Start, End }
    db::RunStatus <=> new_db { Queued, Running, Succeeded, Failed, Interrupted }
    log::Level <=> new_log { Trace, Debug, Info, Warn, Error }
}

// What a 0.1.0 plugin passes in.
records! {
    old::types::ArtifactRef => new::ArtifactRef { kind, name }
    old::db::NewScene => new_db::NewScene { index, title, description, duration_ms }
    old::db::SceneUpdate => new_db::SceneUpdate { title, description, duration_ms }
    old::db::NewKeyframe => new_db::NewKeyframe { scene_id, position, prompt, image }
    old::db::KeyframeUpdate => new_db::KeyframeUpdate { prompt, image }
    old::db::NewVideoClip => new_db::NewVideoClip { scene_id, video, duration_ms, frame_rate }
    old::db::VideoClipUpdate => new_db::VideoClipUpdate { video, duration_ms, frame_rate }
}

// What it gets back.
records! {
    new::ArtifactRef => old::types::ArtifactRef { kind, name }
    new_db::Project => old::db::Project { id, name, script, settings, status, created_at, updated_at }
    new_db::Scene => old::db::Scene { id, index, title, description, duration_ms, created_at, updated_at }
    new_db::Keyframe => old::db::Keyframe { id, scene_id, position, prompt, image, created_at, updated_at }
    new_db::VideoClip => old::db::VideoClip { id, scene_id, video, duration_ms, frame_rate, created_at, updated_at }
    new_db::Run => old::db::Run { id, stage, plugin_sha256, config, status, started_at, finished_at, error }
    new_db::ScenePage => old::db::ScenePage { items, next_cursor }
    new_db::KeyframePage => old::db::KeyframePage { items, next_cursor }
    new_db::VideoClipPage => old::db::VideoClipPage { items, next_cursor }
    new_artifacts::ArtifactInfo => old::artifacts::ArtifactInfo { kind, name, size, sha256, created_at }
    new_artifacts::ArtifactPage => old::artifacts::ArtifactPage { items, next_cursor }
}

/// A current error as 0.1.0 names it. Every case 0.1.0 has keeps its name.
pub(crate) fn error(e: new::Error) -> old::types::Error {
    use new::ErrorCode as N;
    use old::types::ErrorCode as O;
    let code = match e.code {
        N::NotFound => O::NotFound,
        N::InvalidInput => O::InvalidInput,
        N::Conflict => O::Conflict,
        N::LimitExceeded => O::LimitExceeded,
        N::Io => O::Io,
        N::Busy => O::Busy,
        // A 0.1.0 plugin never runs as a shard (a per-scene stage needs 0.2.0's `db.scope`),
        // so its writes are never out of scope; were one, it is the closest 0.1.0 case.
        N::OutOfScope => O::Conflict,
    };
    old::types::Error {
        code,
        message: e.message,
    }
}

/// The result of a current function, as the 0.1.0 function returns it.
fn back<A: Adapt<B>, B>(r: Result<A, HostError>) -> Result<B, HostError> {
    r.map(Adapt::adapt)
}

impl old::types::Host for StageContext {
    fn convert_error(&mut self, err: HostError) -> wasmtime::Result<old::types::Error> {
        <Self as new::Host>::convert_error(self, err).map(error)
    }
}

impl old::db::Host for StageContext {
    fn get_project(&mut self) -> Result<old::db::Project, HostError> {
        back(new_db::Host::get_project(self))
    }
    fn get_run(&mut self) -> Result<old::db::Run, HostError> {
        back(new_db::Host::get_run(self))
    }
    fn create_scene(&mut self, scene: old::db::NewScene) -> Result<old::db::Scene, HostError> {
        back(new_db::Host::create_scene(self, scene.adapt()))
    }
    fn create_scenes(&mut self, scenes: Vec<old::db::NewScene>) -> Result<Vec<String>, HostError> {
        new_db::Host::create_scenes(self, scenes.adapt())
    }
    fn get_scene(&mut self, id: String) -> Result<old::db::Scene, HostError> {
        back(new_db::Host::get_scene(self, id))
    }
    fn list_scenes(
        &mut self,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<old::db::ScenePage, HostError> {
        back(new_db::Host::list_scenes(self, cursor, limit))
    }
    fn update_scene(
        &mut self,
        id: String,
        changes: old::db::SceneUpdate,
    ) -> Result<old::db::Scene, HostError> {
        back(new_db::Host::update_scene(self, id, changes.adapt()))
    }
    fn create_keyframe(
        &mut self,
        keyframe: old::db::NewKeyframe,
    ) -> Result<old::db::Keyframe, HostError> {
        back(new_db::Host::create_keyframe(self, keyframe.adapt()))
    }
    fn get_keyframe(&mut self, id: String) -> Result<old::db::Keyframe, HostError> {
        back(new_db::Host::get_keyframe(self, id))
    }
    fn list_keyframes(
        &mut self,
        scene_id: Option<String>,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<old::db::KeyframePage, HostError> {
        back(new_db::Host::list_keyframes(self, scene_id, cursor, limit))
    }
    fn update_keyframe(
        &mut self,
        id: String,
        changes: old::db::KeyframeUpdate,
    ) -> Result<old::db::Keyframe, HostError> {
        back(new_db::Host::update_keyframe(self, id, changes.adapt()))
    }
    fn create_video_clip(
        &mut self,
        clip: old::db::NewVideoClip,
    ) -> Result<old::db::VideoClip, HostError> {
        back(new_db::Host::create_video_clip(self, clip.adapt()))
    }
    fn get_video_clip(&mut self, id: String) -> Result<old::db::VideoClip, HostError> {
        back(new_db::Host::get_video_clip(self, id))
    }
    fn list_video_clips(
        &mut self,
        scene_id: Option<String>,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<old::db::VideoClipPage, HostError> {
        back(new_db::Host::list_video_clips(
            self, scene_id, cursor, limit,
        ))
    }
    fn update_video_clip(
        &mut self,
        id: String,
        changes: old::db::VideoClipUpdate,
    ) -> Result<old::db::VideoClip, HostError> {
        back(new_db::Host::update_video_clip(self, id, changes.adapt()))
    }
}

// The writer resource is the same Rust type in both versions (`with` in `bindings`), so a
// handle made through either version's `create` is the current room's writer.
impl old::artifacts::HostWriter for StageContext {
    fn write(&mut self, this: Resource<WriterState>, chunk: Vec<u8>) -> Result<(), HostError> {
        new_artifacts::HostWriter::write(self, this, chunk)
    }
    fn finish(
        &mut self,
        this: Resource<WriterState>,
    ) -> Result<old::artifacts::ArtifactInfo, HostError> {
        back(new_artifacts::HostWriter::finish(self, this))
    }
    fn drop(&mut self, this: Resource<WriterState>) -> wasmtime::Result<()> {
        new_artifacts::HostWriter::drop(self, this)
    }
}

impl old::artifacts::Host for StageContext {
    fn create(
        &mut self,
        kind: old::types::ArtifactKind,
        name: String,
    ) -> Result<Resource<WriterState>, HostError> {
        new_artifacts::Host::create(self, kind.adapt(), name)
    }
    fn read(
        &mut self,
        kind: old::types::ArtifactKind,
        name: String,
        offset: u64,
        length: u32,
    ) -> Result<Vec<u8>, HostError> {
        new_artifacts::Host::read(self, kind.adapt(), name, offset, length)
    }
    fn stat(
        &mut self,
        kind: old::types::ArtifactKind,
        name: String,
    ) -> Result<old::artifacts::ArtifactInfo, HostError> {
        back(new_artifacts::Host::stat(self, kind.adapt(), name))
    }
    fn list(
        &mut self,
        kind: old::types::ArtifactKind,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<old::artifacts::ArtifactPage, HostError> {
        back(new_artifacts::Host::list(self, kind.adapt(), cursor, limit))
    }
    fn delete(&mut self, kind: old::types::ArtifactKind, name: String) -> Result<(), HostError> {
        new_artifacts::Host::delete(self, kind.adapt(), name)
    }
}

impl old::log::Host for StageContext {
    fn log(&mut self, level: old::log::Level, message: String) -> wasmtime::Result<()> {
        new_log::Host::log(self, level.adapt(), message)
    }
    fn progress(&mut self, done: u64, total: u64, message: String) -> wasmtime::Result<()> {
        new_log::Host::progress(self, done, total, message)
    }
}

/// A 0.1.0 plugin's own error (what its `run` returned) as the newest contract names it.
pub(crate) fn from_v0_1_error(e: old::types::Error) -> new::Error {
    use new::ErrorCode as N;
    use old::types::ErrorCode as O;
    let code = match e.code {
        O::NotFound => N::NotFound,
        O::InvalidInput => N::InvalidInput,
        O::Conflict => N::Conflict,
        O::LimitExceeded => N::LimitExceeded,
        O::Io => N::Io,
        O::Busy => N::Busy,
    };
    new::Error {
        code,
        message: e.message,
    }
}
