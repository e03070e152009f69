//! The `clips` stage: turns each scene's start and end keyframes into an MP4 clip (H.264 or AV1).
//!
//! For every scene of the project (all of them, page by page; a shard's one scene when it runs
//! with `for-each = "scene"`) it reads the images of the scene's start and end keyframes —
//! written by the keyframes stage — in ranged reads of at most 1 MiB, decodes them, and renders
//! `round(duration × fps)` frames (at least one) that cross-fade from one to the other while
//! the camera slowly zooms in ([`vidpipe_render::frame`]). The frames are encoded, one at a
//! time, as they are rendered, into H.264 (High profile) or AV1 (main profile), BT.709 limited
//! range at a constant `qp`, in a fast-start MP4 ([`vidpipe_render::Mp4Encoder`]) published as
//! the `clip` artifact `scene-NNN.mp4` — a file browsers play — and set as the scene's video
//! clip (`put-clip-part`, part 0 of 1), with the clip's real length and frame rate. A scene
//! lacking either keyframe fails the stage before anything is rendered.
//!
//! **Parts.** With `parts = N` in its manifest stage, the host runs N shards per scene, each
//! told its part (`db.part`), so that one scene's clip is encoded on N cores. Part `k` of a
//! scene of `F` frames holds its frames `k × F / N` up to `(k + 1) × F / N`, each rendered at
//! its place in the whole scene, so the parts joined are exactly the frames of the whole clip.
//! A scene of fewer frames than parts is cut into `F` parts of one frame each, and the shards
//! past them write nothing (their summary says so). Each part is the `clip` artifact
//! `scene-NNN-part-K-of-N.mp4` (counted from 1, with the count the scene was cut into; a scene
//! cut into one part is `scene-NNN.mp4`), set as that part of the scene's clip. The shard of
//! the first part (and every run not cut into parts) then deletes the scene's parts numbered
//! from its count up, left over from a cut into more (`delete-clip-parts`). No shard reads its
//! scene's clip rows: its siblings write them at the same time, and the host would run it
//! again each time one of them changed.
//!
//! Every clip and every part starts with a sync picture and all are coded with the same
//! parameter sets, so the assemble stage joins them into the final video by copying their
//! pictures, without re-encoding ([`vidpipe_render::join_clips`]).
//!
//! Configuration (unknown keys are rejected):
//!
//! | key | value | default |
//! | --- | --- | --- |
//! | `codec` | `h264` (plays everywhere) or `av1` (royalty-free, smaller, much slower) | `h264` |
//! | `fps` | frames per second, 1 to 60 | `12` |
//! | `qp` | the constant quantiser, 0 (best, biggest) to 51 for H.264, to 255 for AV1 | `28` for H.264, `100` for AV1 |
//!
//! The logic lives in plain Rust modules ([`config`], [`stage`]) that are unit-tested natively;
//! the WIT bindings below only translate types. The same keyframes and configuration give the
//! same bytes.

pub mod config;
pub mod stage;

pub use vidpipe_stage_kit::{ErrorCode, StageError};

// The export glue wit-bindgen generates is FFI and has to be unsafe; it is confined to this
// module so the rest of the crate stays under the workspace's `unsafe_code = "deny"`.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "stage",
    });

    use super::Clips;
    export!(Clips with_types_in crate::bindings);
}

use bindings::vidpipe::plugin::{artifacts, db, log, types};
use vidpipe_render::Position;
use vidpipe_stage_kit::{ArtifactKind, Level, Page, Part};

/// The component's export: the WIT `run` function.
struct Clips;

impl bindings::Guest for Clips {
    fn run(config: Vec<(String, String)>) -> Result<String, types::Error> {
        stage::run(&mut WitHost, &config).map_err(to_wit_error)
    }
}

/// [`stage::Host`] implemented by the real host imports.
struct WitHost;

vidpipe_stage_kit::wit_conversions!(
    types = bindings::vidpipe::plugin::types,
    log = bindings::vidpipe::plugin::log,
);

fn clip_ref(name: &str) -> types::ArtifactRef {
    types::ArtifactRef {
        kind: types::ArtifactKind::Clip,
        name: name.to_owned(),
    }
}

/// The scenes this run works on, a page at a time: a shard's one scene (the stage runs with
/// `for-each = "scene"`), or else every scene of the project.
fn scenes_in_scope(cursor: Option<&str>, limit: u32) -> Result<db::ScenePage, types::Error> {
    match db::scope() {
        db::RunScope::Scene(id) => Ok(db::ScenePage {
            items: vec![db::get_scene(&id)?],
            next_cursor: None,
        }),
        db::RunScope::Project => db::list_scenes(cursor, limit),
    }
}

impl stage::Host for WitHost {
    type Writer = artifacts::Writer;

    fn part(&mut self) -> Option<Part> {
        db::part().map(|part| Part {
            index: part.index,
            count: part.count,
        })
    }

    fn list_scenes(
        &mut self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<stage::Scene>, StageError> {
        let page = scenes_in_scope(cursor, limit).map_err(from_wit_error)?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|scene| stage::Scene {
                    id: scene.id,
                    index: scene.index,
                    title: scene.title,
                    description: scene.description,
                    duration_ms: scene.duration_ms,
                })
                .collect(),
            next_cursor: page.next_cursor,
        })
    }

    fn list_keyframes(
        &mut self,
        scene_id: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<stage::Keyframe>, StageError> {
        let page = db::list_keyframes(Some(scene_id), cursor, limit).map_err(from_wit_error)?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|keyframe| stage::Keyframe {
                    position: match keyframe.position {
                        db::KeyframePosition::Start => Position::Start,
                        db::KeyframePosition::End => Position::End,
                    },
                    kind: from_wit_kind(keyframe.image.kind),
                    name: keyframe.image.name,
                })
                .collect(),
            next_cursor: page.next_cursor,
        })
    }

    fn read(
        &mut self,
        kind: ArtifactKind,
        name: &str,
        offset: u64,
        length: u32,
    ) -> Result<Vec<u8>, StageError> {
        artifacts::read(to_wit_kind(kind), name, offset, length).map_err(from_wit_error)
    }

    fn put_clip_part(
        &mut self,
        scene_id: &str,
        clip: &stage::ClipRow,
        part: Part,
    ) -> Result<(), StageError> {
        db::put_clip_part(
            &db::NewVideoClip {
                scene_id: scene_id.to_owned(),
                video: clip_ref(&clip.video),
                duration_ms: clip.duration_ms,
                frame_rate: clip.frame_rate,
            },
            db::PartOf {
                index: part.index,
                count: part.count,
            },
        )
        .map(drop)
        .map_err(from_wit_error)
    }

    fn delete_clip_parts(&mut self, scene_id: &str, first: u32) -> Result<(), StageError> {
        db::delete_clip_parts(scene_id, first).map_err(from_wit_error)
    }

    fn create_clip_artifact(&mut self, name: &str) -> Result<Self::Writer, StageError> {
        artifacts::create(types::ArtifactKind::Clip, name).map_err(from_wit_error)
    }

    fn write(&mut self, writer: &mut Self::Writer, chunk: &[u8]) -> Result<(), StageError> {
        writer.write(chunk).map_err(from_wit_error)
    }

    fn finish(&mut self, writer: Self::Writer) -> Result<(), StageError> {
        artifacts::Writer::finish(writer)
            .map(drop)
            .map_err(from_wit_error)
    }

    fn log(&mut self, level: Level, message: &str) {
        log::log(to_wit_level(level), message);
    }

    fn progress(&mut self, done: u64, total: u64, message: &str) {
        log::progress(done, total, message);
    }
}
