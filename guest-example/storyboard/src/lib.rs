//! The `storyboard` stage: turns a project's script into scenes and a storyboard document.
//!
//! Each paragraph of the script (paragraphs are separated by blank lines) becomes one scene,
//! titled by its `# heading` or its first sentence. Scenes are written through the host's
//! database interface, updating the scene at each index if one exists, and the storyboard is
//! published as an `output` artifact in Markdown or JSON.
//!
//! Configuration (unknown keys are rejected):
//!
//! | key | value | default |
//! | --- | --- | --- |
//! | `seconds-per-scene` | decimal seconds, more than 0 and at most 600 | `4` |
//! | `max-scenes` | whole number, 1 to 1000 | `200` |
//! | `format` | `markdown` or `json` | `markdown` |
//! | `output` | artifact name of the document | `storyboard.md` / `storyboard.json` |
//!
//! The logic lives in plain Rust modules ([`config`], [`script`], [`render`], [`stage`]) that are
//! unit-tested natively; the WIT bindings below only translate types. The stage touches nothing
//! but its host: no files, environment, clock or randomness, so its output is deterministic.

pub mod config;
pub mod render;
pub mod script;
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

    use super::Storyboard;
    export!(Storyboard with_types_in crate::bindings);
}

use bindings::vidpipe::plugin::{artifacts, db, log, types};
use vidpipe_stage_kit::{Level, Page};

/// The component's export: the WIT `run` function.
struct Storyboard;

impl bindings::Guest for Storyboard {
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

    fn project(&mut self) -> Result<stage::Project, StageError> {
        let project = db::get_project().map_err(from_wit_error)?;
        Ok(stage::Project {
            name: project.name,
            script: project.script,
        })
    }

    fn list_scenes(
        &mut self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<stage::ExistingScene>, StageError> {
        let page = db::list_scenes(cursor, limit).map_err(from_wit_error)?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|scene| stage::ExistingScene {
                    id: scene.id,
                    scene: render::Scene {
                        index: scene.index,
                        title: scene.title,
                        description: scene.description,
                        duration_ms: scene.duration_ms,
                    },
                })
                .collect(),
            next_cursor: page.next_cursor,
        })
    }

    fn create_scene(&mut self, scene: &render::Scene) -> Result<(), StageError> {
        db::create_scene(&db::NewScene {
            index: scene.index,
            title: scene.title.clone(),
            description: scene.description.clone(),
            duration_ms: scene.duration_ms,
        })
        .map(drop)
        .map_err(from_wit_error)
    }

    fn update_scene(&mut self, id: &str, scene: &render::Scene) -> Result<(), StageError> {
        db::update_scene(
            id,
            &db::SceneUpdate {
                title: Some(scene.title.clone()),
                description: Some(scene.description.clone()),
                duration_ms: Some(scene.duration_ms),
            },
        )
        .map(drop)
        .map_err(from_wit_error)
    }

    fn delete_scene(&mut self, id: &str) -> Result<(), StageError> {
        db::delete_scene(id).map_err(from_wit_error)
    }

    fn create_output(&mut self, name: &str) -> Result<Self::Writer, StageError> {
        artifacts::create(types::ArtifactKind::Output, name).map_err(from_wit_error)
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
