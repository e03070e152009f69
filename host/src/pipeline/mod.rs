//! Pipelines: a TOML manifest lists stages in order; running it runs them on one project, each
//! atomically, skipping those whose work is already done.
//!
//! ```toml
//! name = "storyboard only"          # optional; defaults to the file stem
//!
//! [[stage]]
//! name = "storyboard"               # unique within the manifest
//! plugin = "storyboard.wasm"        # relative to the manifest, or "builtin:storyboard"
//! timeout = 60                      # seconds, optional (see runtime::limits::ALL for all
//! max-memory = 256                  # MiB, optional   the limit keys and their ranges)
//! [stage.config]                    # strings, numbers or booleans
//! seconds-per-scene = 4
//! ```
//!
//! # Resume
//!
//! A stage is skipped when its latest run on the project succeeded with the same plugin (by
//! SHA-256) and the same configuration, and started after the run the stage before it relied
//! on (for the first stage, after the project's last `project update`) — so its input has not
//! changed since. Once one stage runs, every stage after it runs too: its input may have
//! changed. `force` runs everything.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::capabilities::ProgressSink;
use crate::db::{self, KeyValues, RunStatus};
use crate::home::{Home, HomeError, doing};
use crate::input::{self, InputError};
use crate::limits::{LimitSettings, LimitValue, Unit};
use crate::runner::{self, StageReport, StageRequest};
use crate::runtime::limits;
use crate::runtime::{Limits, MAX_PLUGIN_BYTES, Plugin, PluginError, Runtime};

/// Most stages a manifest may list.
pub const MAX_STAGES: usize = 64;
/// Largest manifest read, in bytes.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;
/// Longest parser message kept in an error, in characters.
const MAX_PARSE_MESSAGE: usize = 400;

/// Why a manifest was refused. Always bad input: nothing has been written.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The manifest, or a plugin file it names, could not be read.
    #[error(transparent)]
    Read(#[from] InputError),
    /// The manifest is not UTF-8 text.
    #[error("pipeline manifest {path} is not UTF-8 text")]
    NotText {
        /// The manifest.
        path: PathBuf,
    },
    /// The file is not valid TOML, or its top level or a stage lacks or mistypes a key
    /// (unknown keys of a stage, and limit values, are [`ManifestError::Invalid`], naming the key).
    #[error("pipeline manifest {path} is malformed: {message}")]
    Parse {
        /// The manifest.
        path: PathBuf,
        /// The parser's explanation, with line, column and key.
        message: String,
    },
    /// A key has a value the pipeline cannot use.
    #[error("pipeline manifest {path}: `{key}` {reason}")]
    Invalid {
        /// The manifest.
        path: PathBuf,
        /// The offending key, e.g. `stage[2].timeout`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A plugin it names could not be loaded.
    #[error("pipeline manifest {path}: `{key}`: {source}")]
    Plugin {
        /// The manifest.
        path: PathBuf,
        /// The offending key.
        key: String,
        /// Why the plugin was refused.
        source: PluginError,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawManifest {
    name: Option<String>,
    #[serde(default)]
    stage: Vec<RawStage>,
}

/// A `[[stage]]` as written. Keys other than these three must be limit keys (see
/// [`limits::ALL`]), checked against their declarations when the manifest is parsed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawStage {
    name: String,
    plugin: String,
    #[serde(default)]
    config: toml::Table,
    #[serde(flatten)]
    limits: toml::Table,
}

/// The limit settings of a stage from its other keys, or the offending key and why.
fn stage_limits(raw: &toml::Table) -> Result<LimitSettings, (String, String)> {
    let mut settings = LimitSettings::default();
    for (key, value) in raw {
        let Some(spec) = limits::spec(key) else {
            let keys: Vec<&str> = limits::ALL.iter().map(|s| s.key).collect();
            return Err((
                key.clone(),
                format!(
                    "unknown field `{key}`: a stage takes name, plugin, config and the limits {}",
                    keys.join(", ")
                ),
            ));
        };
        let value = match (value, spec.unit) {
            (toml::Value::Integer(n), Unit::Seconds) => LimitValue::Seconds(*n as f64),
            (toml::Value::Float(t), _) => LimitValue::Seconds(*t),
            (toml::Value::Integer(n), _) => match u64::try_from(*n) {
                Ok(n) => LimitValue::Whole(n),
                Err(_) => return Err((key.clone(), spec.out_of_range(n))),
            },
            (other, _) => {
                return Err((
                    key.clone(),
                    format!("must be a number, not a {}", other.type_str()),
                ));
            }
        };
        settings.set(spec, value);
    }
    Ok(settings)
}

/// Where a stage's plugin comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// A file (resolved against the manifest's folder).
    File(PathBuf),
    /// A plugin built into the `vidpipe` binary, by name.
    Builtin(String),
}

/// One stage of a manifest.
#[derive(Debug, Clone)]
pub struct StageSpec {
    /// Its name, unique in the manifest; run records use it.
    pub name: String,
    /// Its plugin.
    pub plugin: PluginSource,
    /// Its configuration.
    pub config: KeyValues,
    /// Its limits (defaults where the manifest is silent).
    pub limits: Limits,
}

/// A checked manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file it came from.
    pub path: PathBuf,
    /// Its name.
    pub name: String,
    /// Its stages, in order.
    pub stages: Vec<StageSpec>,
}

/// Checks a stage name: 1 to 64 characters of letters, digits, `-`, `_` and `.`.
pub fn check_stage_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("must have 1 to 64 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "{name:?} may only contain letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

impl Manifest {
    /// Reads and checks a manifest. Plugin files must exist; their contents are checked by
    /// [`Manifest::load_plugins`].
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let bytes = input::read_file(path, "pipeline manifest", MAX_MANIFEST_BYTES)?;
        let text = String::from_utf8(bytes).map_err(|_| ManifestError::NotText {
            path: path.to_owned(),
        })?;
        Self::parse(path, &text)
    }

    /// Checks manifest text as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: path.to_owned(),
            // The parser quotes the offending line, which may be a megabyte long.
            message: crate::text::cut(&e.to_string().trim().replace('\n', " "), MAX_PARSE_MESSAGE),
        })?;
        let invalid = |key: String, reason: String| ManifestError::Invalid {
            path: path.to_owned(),
            key,
            reason,
        };
        if raw.stage.is_empty() {
            return Err(invalid(
                "stage".into(),
                "is missing: a pipeline needs at least one [[stage]]".into(),
            ));
        }
        if raw.stage.len() > MAX_STAGES {
            return Err(invalid(
                "stage".into(),
                format!(
                    "lists {} stages; the limit is {MAX_STAGES}",
                    raw.stage.len()
                ),
            ));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut stages: Vec<StageSpec> = Vec::with_capacity(raw.stage.len());
        for (i, st) in raw.stage.into_iter().enumerate() {
            let key = |field: &str| format!("stage[{i}].{field}");
            check_stage_name(&st.name).map_err(|r| invalid(key("name"), r))?;
            if stages.iter().any(|s| s.name == st.name) {
                return Err(invalid(
                    key("name"),
                    format!("{:?} is used by an earlier stage", st.name),
                ));
            }
            let plugin = match st.plugin.strip_prefix("builtin:") {
                Some(name) => PluginSource::Builtin(name.to_owned()),
                None => {
                    let file = base.join(&st.plugin);
                    if !file.is_file() {
                        let what = if file.is_dir() {
                            "is a directory"
                        } else {
                            "does not exist"
                        };
                        return Err(invalid(key("plugin"), format!("{} {what}", file.display())));
                    }
                    PluginSource::File(file)
                }
            };
            let mut config = KeyValues::new();
            for (k, v) in st.config {
                let value = match v {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(n) => n.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        return Err(invalid(
                            format!("stage[{i}].config.{k}"),
                            format!(
                                "must be a string, number or boolean, not a {}",
                                other.type_str()
                            ),
                        ));
                    }
                };
                config.insert(k, value);
            }
            let limits = stage_limits(&st.limits)
                .and_then(|settings| {
                    Limits::from_settings(&settings).map_err(|(k, r)| (k.to_owned(), r))
                })
                .map_err(|(k, reason)| invalid(key(&k), reason))?;
            stages.push(StageSpec {
                name: st.name,
                plugin,
                config,
                limits,
            });
        }
        let name = match raw.name {
            Some(n) if !n.trim().is_empty() => n,
            _ => path.file_stem().map_or_else(
                || "pipeline".to_owned(),
                |s| s.to_string_lossy().into_owned(),
            ),
        };
        Ok(Manifest {
            path: path.to_owned(),
            name,
            stages,
        })
    }

    /// Reads and compiles every stage's plugin, before anything runs. `builtin` resolves
    /// `builtin:NAME` plugins.
    pub fn load_plugins(
        &self,
        runtime: &Runtime,
        builtin: impl Fn(&str) -> Option<&'static [u8]>,
    ) -> Result<Vec<Plugin>, ManifestError> {
        let mut plugins = Vec::with_capacity(self.stages.len());
        for (i, stage) in self.stages.iter().enumerate() {
            let key = format!("stage[{i}].plugin");
            let loaded = match &stage.plugin {
                PluginSource::Builtin(name) => match builtin(name) {
                    Some(bytes) => runtime.load(&stage.name, bytes),
                    None => {
                        return Err(ManifestError::Invalid {
                            path: self.path.clone(),
                            key,
                            reason: format!(
                                "builtin:{name} is not a plugin built into this vidpipe"
                            ),
                        });
                    }
                },
                PluginSource::File(file) => {
                    let bytes = input::read_file(file, "plugin", MAX_PLUGIN_BYTES)?;
                    runtime.load(&stage.name, &bytes)
                }
            };
            plugins.push(loaded.map_err(|source| ManifestError::Plugin {
                path: self.path.clone(),
                key,
                source,
            })?);
        }
        Ok(plugins)
    }
}

/// What happened to one stage of a pipeline run.
#[derive(Debug, Clone)]
pub enum StageOutcome {
    /// Its work was already done by this earlier run.
    Skipped {
        /// The run whose work stands.
        previous: db::Run,
    },
    /// It ran (and succeeded or failed).
    Ran(StageReport),
    /// An earlier stage failed, so it did not run.
    NotReached,
}

/// The end of a pipeline run.
#[derive(Debug, Clone)]
pub struct PipelineReport {
    /// The pipeline record.
    pub pipeline: db::Pipeline,
    /// Each stage's outcome, in manifest order.
    pub stages: Vec<(String, StageOutcome)>,
}

impl PipelineReport {
    /// Whether every stage succeeded or was skipped.
    pub fn succeeded(&self) -> bool {
        self.pipeline.status == RunStatus::Succeeded
    }
}

/// How to run a pipeline.
#[derive(Debug, Clone, Copy, Default)]
pub struct PipelineOptions {
    /// Run every stage, even those whose work is done.
    pub force: bool,
    /// Wait for another process that is running stages on the project instead of refusing.
    pub wait: bool,
}

/// What a running pipeline tells its caller, stage by stage, as it happens.
pub trait Observer {
    /// Stage `index` (named `name`) is about to run: where its progress goes.
    fn started(&mut self, index: usize, name: &str) -> ProgressSink;
    /// Stage `index` is done with: it ran (and succeeded or failed), was skipped, or was not
    /// reached. Called once per stage, in manifest order.
    fn finished(&mut self, index: usize, name: &str, outcome: &StageOutcome);
}

/// Runs `manifest` (with its `plugins`, from [`Manifest::load_plugins`]) on a project,
/// telling `observer` of each stage as it starts and ends.
pub fn run_pipeline(
    home: &mut Home,
    runtime: &Runtime,
    manifest: &Manifest,
    plugins: &[Plugin],
    project_id: &str,
    options: PipelineOptions,
    observer: &mut dyn Observer,
) -> Result<PipelineReport, HomeError> {
    let project = db::get_project(home.conn(), project_id)?;
    let _lock = home.lock_project(&project.id, options.wait)?;
    let stage_count = u32::try_from(manifest.stages.len()).unwrap_or(u32::MAX);
    let record = db::start_pipeline(
        home.conn_mut(),
        &project.id,
        &manifest.name,
        &manifest.path.display().to_string(),
        stage_count,
    )
    .map_err(doing("record the start of the pipeline"))?;
    let mut outcomes = Vec::with_capacity(manifest.stages.len());
    let mut rerun = options.force;
    // The run the previous stage's output came from (by record order); a run of this stage
    // recorded before it read an older input. For the first stage, that is the project's last
    // edit: a run recorded before it read the old script, name or settings.
    let edited = match db::project_edit_seq(home.conn(), &project.id) {
        Ok(seq) => seq,
        Err(e) => return Err(abandon(home, &record.id, e.into())),
    };
    let mut input_since: Option<i64> = (edited > 0).then_some(edited);
    let mut failure: Option<String> = None;
    let (mut ran, mut skipped) = (0, 0);

    for (i, (spec, plugin)) in manifest.stages.iter().zip(plugins).enumerate() {
        if failure.is_some() {
            observer.finished(i, &spec.name, &StageOutcome::NotReached);
            outcomes.push((spec.name.clone(), StageOutcome::NotReached));
            continue;
        }
        if !rerun {
            let found = db::latest_run_of_stage(home.conn(), &project.id, &spec.name).and_then(
                |previous| Ok((previous, db::damaged_journal(home.conn(), &project.id)?)),
            );
            let (previous, damaged) = match found {
                Ok(found) => found,
                Err(e) => return Err(abandon(home, &record.id, e.into())),
            };
            // A run whose files could not all be put in place did not do its work.
            if let Some(previous) = previous.filter(|r| {
                r.status == RunStatus::Succeeded
                    && r.plugin_sha256 == plugin.sha256
                    && r.config == spec.config
                    && input_since.is_none_or(|seq| r.seq > seq)
                    && !damaged.iter().any(|d| d.entry.run_id == r.id)
            }) {
                tracing::info!(stage = %spec.name, run = %previous.id, "skipped: done by an earlier run");
                input_since = Some(previous.seq);
                skipped += 1;
                let outcome = StageOutcome::Skipped { previous };
                observer.finished(i, &spec.name, &outcome);
                outcomes.push((spec.name.clone(), outcome));
                continue;
            }
        }
        rerun = true;
        let request = StageRequest {
            project_id: project.id.clone(),
            config: spec.config.clone(),
            limits: spec.limits,
            progress: observer.started(i, &spec.name),
            pipeline: Some((record.id.clone(), u32::try_from(i).unwrap_or(u32::MAX))),
        };
        let report = match runner::run_stage(home, runtime, plugin, request) {
            Ok(report) => report,
            Err(e) => return Err(abandon(home, &record.id, e)),
        };
        ran += 1;
        if !report.succeeded() {
            // The stage's own record says why; the pipeline's says which.
            failure = Some(format!(
                "stage {} ({} of {}) failed (run {})",
                spec.name,
                i + 1,
                manifest.stages.len(),
                report.run.id
            ));
        } else if let Some(why) = &report.unpublished {
            // A stage whose files are not all in place is not done: roll its publish forward
            // before going on, or stop. Files recorded as damaged will never be in place.
            let retried = home.finish_publishes(&project.id, None);
            let damaged = match db::damaged_journal(home.conn(), &project.id) {
                Ok(damaged) => damaged.iter().any(|d| d.entry.run_id == report.run.id),
                Err(e) => {
                    let e = doing("read the damaged artifacts")(e);
                    return Err(abandon(home, &record.id, e));
                }
            };
            let stopped = match retried {
                Err(e) => Some(format!(
                    "its files could not all be moved into place: {e}; run the pipeline again \
                     to finish moving them"
                )),
                Ok(_) if damaged => Some(why.clone()),
                Ok(_) => None,
            };
            if let Some(stopped) = stopped {
                failure = Some(format!(
                    "stage {} ({} of {}) committed (run {}), but {stopped}",
                    spec.name,
                    i + 1,
                    manifest.stages.len(),
                    report.run.id
                ));
            }
        }
        input_since = Some(report.run.seq);
        let outcome = StageOutcome::Ran(report);
        observer.finished(i, &spec.name, &outcome);
        outcomes.push((spec.name.clone(), outcome));
    }
    let summary = format!("{ran} stage(s) ran, {skipped} skipped");
    let outcome = match &failure {
        Some(reason) => Err(reason.as_str()),
        None => Ok(summary.as_str()),
    };
    db::finish_pipeline(home.conn_mut(), &record.id, outcome)
        .map_err(doing("record the end of the pipeline"))?;
    let pipeline = db::get_pipeline(home.conn(), &record.id)?.unwrap_or(record);
    Ok(PipelineReport {
        pipeline,
        stages: outcomes,
    })
}

/// Records a pipeline the host could not carry on with as failed (rather than leaving it
/// `running` for the next process to call interrupted) and hands the error back.
fn abandon(home: &mut Home, pipeline_id: &str, e: HomeError) -> HomeError {
    if let Err(record) = db::finish_pipeline(
        home.conn_mut(),
        pipeline_id,
        Err(&format!("the host failed: {e}")),
    ) {
        tracing::error!(
            pipeline = pipeline_id,
            "could not record the pipeline as failed: {record}"
        );
    }
    e
}

#[cfg(test)]
mod tests;
