//! The `assemble` stage: the scene clips joined into one final video, a contact sheet of the
//! keyframes, and a JSON manifest of both.
//!
//! It writes these `output` artifacts:
//!
//! - `final.mp4`: every scene's clip, in scene order, in one fast-start MP4 (H.264, or AV1 if
//!   the clips are). A scene's clip is one clip, or the parts the clips stage cut it into
//!   (`parts = N`), joined in part order. The clips' coded pictures are copied, not decoded and
//!   re-encoded ([`vidpipe_render::join_clips`]), so joining costs about as much as copying the
//!   bytes; clips that could not be joined that way (another size, frame rate or encoder
//!   setting than the first) fail the stage, naming the scene. With it come `final.vtt`, its
//!   WebVTT captions (a cue per scene, with its title, timed by the frames of its clip's
//!   parts), and `poster.png`, the first scene's start keyframe.
//! - `contact-sheet.png`: each scene's number and title above its start and end keyframes,
//!   shrunk to `thumbnail-width` pixels.
//! - `manifest.json`: the project, the video (codec, size, frames, frame rate, duration, bytes,
//!   SHA-256), the captions, the poster, the contact sheet, and each scene with the keyframes
//!   and clip it was made from (`"clip": {"artifacts": [...], "frames", "frame_rate"}`, its
//!   parts' artifacts in part order, and the frames of all of them).
//!
//! Every scene needs a start and an end keyframe and a clip — one clip (part 0 of 1), or every
//! part of one cut: all of the same count `N`, numbered 0 to `N - 1` — and the clips must all
//! join; otherwise the stage fails before writing anything, naming the scene (and the parts it
//! has, for a cut left incomplete or mixed with another).
//! (Keyframes of another size than the first are stretched to its shape in the contact sheet.)
//!
//! Configuration (unknown keys are rejected):
//!
//! | key | value | default |
//! | --- | --- | --- |
//! | `thumbnail-width` | width of a contact-sheet thumbnail in pixels, 32 to 1024 | `320` |
//!
//! The logic lives in plain Rust ([`stage`]), unit-tested natively; the WIT bindings below only
//! translate types. The same clips, keyframes and configuration give the same bytes.

mod media;
pub mod stage;

pub use media::{CAPTIONS_NAME, MP4_NAME, POSTER_NAME};

pub use vidpipe_stage_kit::{ErrorCode, StageError};

// The export glue wit-bindgen generates is FFI and has to be unsafe; it is confined to this
// module so the rest of the crate stays under the workspace's `unsafe_code = "deny"`.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "stage",
    });

    use super::Assemble;
    export!(Assemble with_types_in crate::bindings);
}

use bindings::vidpipe::plugin::{artifacts, db, log, types};
use vidpipe_render::Position;
use vidpipe_stage_kit::{ArtifactKind, Level, Page, Part};

/// The component's export: the WIT `run` function.
struct Assemble;

impl bindings::Guest for Assemble {
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

impl stage::Host for WitHost {
    type Writer = artifacts::Writer;

    fn project_name(&mut self) -> Result<String, StageError> {
        db::get_project()
            .map(|project| project.name)
            .map_err(from_wit_error)
    }

    fn list_scenes(
        &mut self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<stage::Scene>, StageError> {
        let page = db::list_scenes(cursor, limit).map_err(from_wit_error)?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|scene| stage::Scene {
                    id: scene.id,
                    index: scene.index,
                    title: scene.title,
                    duration_ms: scene.duration_ms,
                })
                .collect(),
            next_cursor: page.next_cursor,
        })
    }

    fn list_keyframes(
        &mut self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<stage::Keyframe>, StageError> {
        let page = db::list_keyframes(None, cursor, limit).map_err(from_wit_error)?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|keyframe| stage::Keyframe {
                    scene_id: keyframe.scene_id,
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

    fn list_clip_parts(
        &mut self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<stage::Clip>, StageError> {
        let page = db::list_clip_parts(None, cursor, limit).map_err(from_wit_error)?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|item| stage::Clip {
                    scene_id: item.clip.scene_id,
                    part: Part {
                        index: item.part.index,
                        count: item.part.count,
                    },
                    kind: from_wit_kind(item.clip.video.kind),
                    name: item.clip.video.name,
                    frame_rate: item.clip.frame_rate,
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

    fn create_output(&mut self, name: &str) -> Result<Self::Writer, StageError> {
        artifacts::create(types::ArtifactKind::Output, name).map_err(from_wit_error)
    }

    fn write(&mut self, writer: &mut Self::Writer, chunk: &[u8]) -> Result<(), StageError> {
        writer.write(chunk).map_err(from_wit_error)
    }

    fn finish(&mut self, writer: Self::Writer) -> Result<stage::Published, StageError> {
        artifacts::Writer::finish(writer)
            .map(|info| stage::Published {
                size: info.size,
                sha256: info.sha256,
            })
            .map_err(from_wit_error)
    }

    fn log(&mut self, level: Level, message: &str) {
        log::log(to_wit_level(level), message);
    }

    fn progress(&mut self, done: u64, total: u64, message: &str) {
        log::progress(done, total, message);
    }
}
