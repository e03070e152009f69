//! `vidpipe project …`: create, change, list and show projects.

use std::path::PathBuf;

use clap::Subcommand;
use vidpipe_host::artifacts::ArtifactKind;
use vidpipe_host::db;

use crate::Globals;
use crate::failure::Failure;
use crate::output::{self, say};
use crate::setup;

/// `vidpipe project` subcommands.
#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Creates a project and prints its id (and nothing else) on stdout.
    Create {
        /// The project's name.
        name: String,
        /// A text file holding the script the video is made from.
        #[arg(long)]
        script: Option<PathBuf>,
        /// A project setting, KEY=VALUE (repeatable).
        #[arg(long = "setting", value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
    /// Changes a project's name, script or settings (only what is given) and prints a line
    /// saying what changed. Its scenes follow a new script when the storyboard stage runs again;
    /// refused while a stage runs on the project.
    Update {
        /// The project's id.
        id: String,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        /// A text file holding the new script.
        #[arg(long)]
        script: Option<PathBuf>,
        /// A setting to set, KEY=VALUE (repeatable); the other settings are kept.
        #[arg(long = "setting", value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
    /// Lists projects.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Shows a project's scenes, keyframes, clips, artifacts and runs.
    Show {
        /// The project's id.
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `vidpipe project` subcommand.
pub fn exec(globals: &Globals, cmd: ProjectCommand) -> Result<(), Failure> {
    match cmd {
        ProjectCommand::Create {
            name,
            script,
            settings,
        } => {
            setup::check_writable(&globals.home)?;
            let settings = setup::parse_pairs("setting", &settings)?;
            let script = match script {
                Some(path) => setup::read_text(&path, "script", db::MAX_SCRIPT_BYTES as u64)?,
                None => String::new(),
            };
            let mut home = setup::writable_home(&globals.home)?;
            let project = home.create_project(&name, &script, &settings)?;
            say!("{}", project.id);
            Ok(())
        }
        ProjectCommand::Update {
            id,
            name,
            script,
            settings,
        } => {
            setup::check_writable(&globals.home)?;
            let settings = setup::parse_pairs("setting", &settings)?;
            let script = script
                .map(|path| setup::read_text(&path, "script", db::MAX_SCRIPT_BYTES as u64))
                .transpose()?;
            let mut what: Vec<&str> = Vec::new();
            what.extend(name.as_ref().map(|_| "name"));
            what.extend(script.as_ref().map(|_| "script"));
            what.extend((!settings.is_empty()).then_some("settings"));
            if what.is_empty() {
                return Err(Failure::BadInput(anyhow::anyhow!(
                    "nothing to change: give --name, --script or --setting"
                )));
            }
            let mut home = setup::writable_home(&globals.home)?;
            // The id must name a project before a lock file is made for it.
            let project = db::get_project(home.conn(), &id)?;
            // A stage reading the script while it changes would see either version: refuse.
            let _lock = home.lock_project(&project.id, false)?;
            let changes = db::ProjectChanges {
                name,
                script,
                settings,
            };
            match db::update_project(home.conn_mut(), &project.id, &changes)? {
                (project, true) => {
                    say!("updated the {} of project {}", what.join(", "), project.id)
                }
                (project, false) => say!(
                    "project {} already had that {}",
                    project.id,
                    what.join(", ")
                ),
            }
            Ok(())
        }
        ProjectCommand::List { json } => {
            let home = setup::readable_home(&globals.home)?;
            let projects = db::list_projects(home.conn())?;
            if json {
                return Ok(output::json(&projects)?);
            }
            if projects.is_empty() {
                say!("no projects; create one with `vidpipe project create NAME --script FILE`");
                return Ok(());
            }
            say!("{:<36}  {:<8}  {:<20}  name", "id", "status", "created");
            for p in projects {
                say!(
                    "{:<36}  {:<8}  {:<20}  {}",
                    p.id,
                    p.status,
                    output::time(p.created_at),
                    p.name
                );
            }
            Ok(())
        }
        ProjectCommand::Show { id, json } => {
            let mut home = setup::readable_home(&globals.home)?;
            let detail = db::project_detail(home.conn_mut(), &id)?;
            if json {
                return Ok(output::json(&detail)?);
            }
            print_detail(
                &home.path().join("projects").join(&detail.project.id),
                &detail,
            );
            Ok(())
        }
    }
}

fn print_detail(folder: &std::path::Path, d: &db::ProjectDetail) {
    let p = &d.project;
    say!("project   {}", p.id);
    say!("name      {}", p.name);
    say!("status    {}", p.status);
    say!("created   {}", output::time(p.created_at));
    say!("script    {} bytes", p.script.len());
    say!("folder    {}", folder.display());
    for (k, v) in &p.settings {
        say!("setting   {k} = {v}");
    }
    say!("");
    say!("scenes ({})", d.scenes.len());
    for s in &d.scenes {
        say!(
            "  {:>3}  {:>6.1} s  {}  [{}]",
            s.index,
            f64::from(s.duration_ms) / 1000.0,
            s.title,
            s.id
        );
    }
    say!("");
    say!("keyframes ({})", d.keyframes.len());
    for k in &d.keyframes {
        say!(
            "  {:<5}  {}/{}  scene {}  [{}]",
            k.position,
            k.image.kind,
            k.image.name,
            k.scene_id,
            k.id
        );
    }
    say!("");
    say!("video clips ({})", d.video_clips.len());
    for c in &d.video_clips {
        say!(
            "  {}/{}  {:.1} s @ {} fps  scene {}  [{}]",
            c.video.kind,
            c.video.name,
            f64::from(c.duration_ms) / 1000.0,
            c.frame_rate,
            c.scene_id,
            c.id
        );
    }
    say!("");
    say!("artifacts ({})", d.artifacts.len());
    for a in &d.artifacts {
        let kind: ArtifactKind = a.kind.into();
        say!(
            "  {}/{}  {} bytes  sha256 {}",
            kind.dir_name(),
            a.name,
            a.size,
            a.sha256
        );
    }
    say!("");
    say!("runs ({})", d.runs.len());
    d.runs.iter().for_each(super::runs::print_run);
}
