//! `vidpipe demo`: the bundled pipeline on the bundled script, and where everything it made is.

use std::path::Path;

use vidpipe_host::db::{self, KeyValues};
use vidpipe_host::home::Home;
use vidpipe_host::pipeline::{Manifest, PipelineOptions};

use crate::Globals;
use crate::failure::Failure;
use crate::output::{note, say};
use crate::setup;

/// The bundled example script.
const EXAMPLE_SCRIPT: &str = include_str!("../../../../guest-example/examples/lighthouse.txt");
/// The bundled demo pipeline (plugins built into this binary).
const DEMO_MANIFEST: &str = include_str!("../../../../guest-example/examples/demo.toml");
const DEMO_PROJECT: &str = "vidpipe demo: The Lighthouse Keeper";

/// Runs `vidpipe demo`.
pub fn exec(globals: &Globals) -> Result<(), Failure> {
    let manifest = Manifest::parse(Path::new("builtin:demo.toml"), DEMO_MANIFEST)?;
    let mut home = Home::init(&globals.home)?;
    let runtime = setup::runtime(&globals.home, globals.no_cache)?;
    let plugins = manifest.load_plugins(&runtime, vidpipe_example_plugins::builtin)?;
    let existing = db::list_projects(home.conn())?
        .into_iter()
        .find(|p| p.name == DEMO_PROJECT);
    let project = match existing {
        Some(p) => {
            note!("reusing demo project {}", p.id);
            p
        }
        None => home.create_project(DEMO_PROJECT, EXAMPLE_SCRIPT, &KeyValues::new())?,
    };
    let options = PipelineOptions {
        force: false,
        wait: true,
        jobs: None,
    };
    super::pipeline::run_and_report(
        &mut home,
        &runtime,
        &manifest,
        &plugins,
        &project.id,
        options,
    )?;
    let detail = db::project_detail(home.conn_mut(), &project.id)?;
    let folder = home.path().join("projects").join(&project.id);
    let output = folder.join("output");
    say!("");
    say!(
        "the demo project {} is in {}:",
        project.id,
        folder.display()
    );
    say!("  storyboard  {}", output.join("storyboard.md").display());
    say!(
        "  keyframes   {} ({} PNG images)",
        folder.join("keyframes").display(),
        detail.keyframes.len()
    );
    say!(
        "  clips       {} ({} H.264 MP4s for {} scenes; each scene's clip is in parts)",
        folder.join("clips").display(),
        detail.video_clips.len(),
        detail.scenes.len()
    );
    say!(
        "  video       {} (H.264 MP4, encoded inside the sandbox; plays in a browser or any player)",
        output.join("final.mp4").display()
    );
    say!(
        "  captions    {} (WebVTT, a cue per scene), poster {}",
        output.join("final.vtt").display(),
        output.join("poster.png").display()
    );
    say!(
        "  contact     {}",
        output.join("contact-sheet.png").display()
    );
    say!("  manifest    {}", output.join("manifest.json").display());
    say!(
        "see everything with `vidpipe --home {} project show {}`",
        home.path().display(),
        project.id
    );
    Ok(())
}
