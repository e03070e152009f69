//! The `keyframes` stage: renders a start and an end keyframe image for every scene of a
//! project.
//!
//! For each scene written by the storyboard stage (all of them, page by page; a shard's one
//! scene when it runs with `for-each = "scene"`), it draws two
//! pictures with [`vidpipe_render::keyframe`] — a landscape picked from the scene's words with
//! the scene's title as a caption, differing between the start and the end of the scene — and
//! publishes them as PNG `keyframe` artifacts `scene-NNN-start.png` and `scene-NNN-end.png`.
//! It then points the scene's start and end keyframe rows at them, creating the rows that do
//! not exist yet, with a prompt derived from the scene's description. Re-running it replaces
//! the same files and updates the same rows. Its work is not cut into parts: a shard told a
//! part (`parts = N` in its manifest stage) fails with `invalid-input`, asking for `parts` to
//! be removed.
//!
//! Configuration (unknown keys are rejected):
//!
//! | key | value | default |
//! | --- | --- | --- |
//! | `width` | keyframe width in pixels, 64 to 1920 | `640` |
//! | `height` | keyframe height in pixels, 64 to 1080 | `360` |
//!
//! The logic lives in plain Rust modules ([`config`], [`stage`]) that are unit-tested natively;
//! the WIT bindings below only translate types. Rendering is deterministic: the same scenes and
//! configuration give the same bytes.

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

    use super::Keyframes;
    export!(Keyframes with_types_in crate::bindings);
}

use bindings::vidpipe::plugin::{artifacts, db, log, types};
use vidpipe_render::Position;
use vidpipe_stage_kit::{Level, Page, Part};

/// The component's export: the WIT `run` function.
struct Keyframes;

impl bindings::Guest for Keyframes {
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

fn to_wit_position(position: Position) -> db::KeyframePosition {
    match position {
        Position::Start => db::KeyframePosition::Start,
        Position::End => db::KeyframePosition::End,
    }
}

fn keyframe_ref(name: &str) -> types::ArtifactRef {
    types::ArtifactRef {
        kind: types::ArtifactKind::Keyframe,
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
    ) -> Result<Page<stage::ExistingKeyframe>, StageError> {
        let page = db::list_keyframes(Some(scene_id), cursor, limit).map_err(from_wit_error)?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|keyframe| stage::ExistingKeyframe {
                    id: keyframe.id,
                    position: match keyframe.position {
                        db::KeyframePosition::Start => Position::Start,
                        db::KeyframePosition::End => Position::End,
                    },
                })
                .collect(),
            next_cursor: page.next_cursor,
        })
    }

    fn create_keyframe(
        &mut self,
        scene_id: &str,
        position: Position,
        prompt: &str,
        image: &str,
    ) -> Result<(), StageError> {
        db::create_keyframe(&db::NewKeyframe {
            scene_id: scene_id.to_owned(),
            position: to_wit_position(position),
            prompt: prompt.to_owned(),
            image: keyframe_ref(image),
        })
        .map(drop)
        .map_err(from_wit_error)
    }

    fn update_keyframe(&mut self, id: &str, prompt: &str, image: &str) -> Result<(), StageError> {
        db::update_keyframe(
            id,
            &db::KeyframeUpdate {
                prompt: Some(prompt.to_owned()),
                image: Some(keyframe_ref(image)),
            },
        )
        .map(drop)
        .map_err(from_wit_error)
    }

    fn create_keyframe_artifact(&mut self, name: &str) -> Result<Self::Writer, StageError> {
        artifacts::create(types::ArtifactKind::Keyframe, name).map_err(from_wit_error)
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
