//! `vidpipe runs …`: the records of pipeline runs and stage runs.

use clap::Subcommand;
use vidpipe_host::db;

use crate::Globals;
use crate::failure::Failure;
use crate::output::{self, say};
use crate::setup;

/// `vidpipe runs` subcommands.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Lists a project's pipeline runs and stage runs, oldest first.
    List {
        /// The project.
        #[arg(long)]
        project: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Shows one pipeline run (with its stage runs) or one stage run.
    Show {
        /// A pipeline run id or a stage run id.
        run: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(serde::Serialize)]
struct PipelineWithRuns {
    pipeline: db::Pipeline,
    runs: Vec<db::Run>,
}

/// One stage run as a line of a listing.
pub fn print_run(r: &db::Run) {
    let detail = r.error.as_deref().or(r.summary.as_deref()).unwrap_or("");
    // A shard names the scene it was bound to.
    let detail = match (&r.scene_id, r.part) {
        (Some(scene), Some(part)) => format!("scene {scene} {part}: {detail}"),
        (Some(scene), None) => format!("scene {scene}: {detail}"),
        (None, _) => detail.to_owned(),
    };
    say!(
        "  {}  {:<12}  {:<11}  {}  {}",
        r.id,
        r.stage,
        r.status,
        output::time(r.started_at),
        detail
    );
}

/// Runs a `vidpipe runs` subcommand.
pub fn exec(globals: &Globals, cmd: RunsCommand) -> Result<(), Failure> {
    let home = setup::readable_home(&globals.home)?;
    match cmd {
        RunsCommand::List { project, json } => {
            let project = db::get_project(home.conn(), &project)?;
            let pipelines = db::list_pipelines(home.conn(), &project.id)?;
            let runs = db::list_runs(home.conn(), &project.id)?;
            if json {
                let value = serde_json::json!({ "pipelines": pipelines, "runs": runs });
                return Ok(output::json(&value)?);
            }
            say!("pipeline runs ({})", pipelines.len());
            for p in &pipelines {
                let detail = p.error.as_deref().or(p.summary.as_deref()).unwrap_or("");
                say!(
                    "  {}  {:<12}  {:<11}  {}  {}",
                    p.id,
                    p.name,
                    p.status,
                    output::time(p.started_at),
                    detail
                );
            }
            say!("");
            say!("stage runs ({})", runs.len());
            runs.iter().for_each(print_run);
            Ok(())
        }
        RunsCommand::Show { run, json } => {
            if let Some(pipeline) = db::get_pipeline(home.conn(), &run)? {
                let runs = db::runs_of_pipeline(home.conn(), &pipeline.id)?;
                if json {
                    return Ok(output::json(&PipelineWithRuns { pipeline, runs })?);
                }
                say!("pipeline run {}", pipeline.id);
                say!("manifest  {} ({})", pipeline.name, pipeline.manifest);
                say!("project   {}", pipeline.project_id);
                say!("status    {}", pipeline.status);
                say!("started   {}", output::time(pipeline.started_at));
                if let Some(f) = pipeline.finished_at {
                    say!("finished  {}", output::time(f));
                }
                if let Some(d) = pipeline.error.as_deref().or(pipeline.summary.as_deref()) {
                    say!("detail    {d}");
                }
                if !pipeline.plan.is_empty() {
                    say!("what ran and why");
                    let names: Vec<String> = pipeline
                        .plan
                        .iter()
                        .map(|step| match (&step.scene, step.part) {
                            (Some((index, _)), Some(part)) => {
                                format!("{} scene {index} {part}", step.stage)
                            }
                            (Some((index, _)), None) => format!("{} scene {index}", step.stage),
                            (None, _) => step.stage.clone(),
                        })
                        .collect();
                    // One column for every name, as wide as the widest (at least 20).
                    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
                    let width = width.max(20);
                    for (step, name) in pipeline.plan.iter().zip(&names) {
                        let verdict = match (step.ran, &step.run) {
                            (true, _) => "ran",
                            (false, Some(_)) => "skipped",
                            (false, None) => "not run",
                        };
                        say!("  {name:<width$}  {verdict:<7}  {}", step.reason);
                    }
                }
                say!(
                    "stage runs ({}; the manifest has {} stages)",
                    runs.len(),
                    pipeline.stage_count
                );
                runs.iter().for_each(print_run);
                return Ok(());
            }
            let r = db::get_run(home.conn(), &run)?;
            if json {
                return Ok(output::json(&r)?);
            }
            say!("stage run {}", r.id);
            say!("stage     {}", r.stage);
            say!("project   {}", r.project_id);
            if let Some(p) = &r.pipeline_id {
                say!(
                    "pipeline  {p} (stage {})",
                    r.stage_index.map_or(0, |i| i + 1)
                );
            }
            match (&r.scene_id, r.part) {
                (Some(scene), Some(part)) => say!("scene     {scene}, {part} (a shard)"),
                (Some(scene), None) => say!("scene     {scene} (a shard)"),
                (None, _) => {}
            }
            if let Some(reason) = &r.reason {
                say!("why       {reason}");
            }
            say!("plugin    sha256 {}", r.plugin_sha256);
            say!("status    {}", r.status);
            say!("started   {}", output::time(r.started_at));
            if let Some(f) = r.finished_at {
                say!("finished  {}", output::time(f));
            }
            for (k, v) in &r.config {
                say!("config    {k} = {v}");
            }
            if let Some(d) = r.error.as_deref().or(r.summary.as_deref()) {
                say!("detail    {d}");
            }
            Ok(())
        }
    }
}
