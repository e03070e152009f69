//! Pipeline manifests: reading and checking the TOML file (see the module above for its form),
//! and compiling the plugins it names before anything runs.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::capabilities::bindings::Contract;
use crate::db::KeyValues;
use crate::input::{self, InputError};
use crate::limits::{LimitSettings, LimitValue, Unit};
use crate::runtime::limits;
use crate::runtime::{Limits, MAX_PLUGIN_BYTES, Plugin, PluginError, Runtime};

/// Most stages a manifest may list.
pub const MAX_STAGES: usize = 64;
/// Most shards a pipeline runs at once (`jobs`, `--jobs`).
pub const MAX_JOBS: usize = 256;
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
    jobs: Option<i64>,
    #[serde(default)]
    stage: Vec<RawStage>,
}

/// A `[[stage]]` as written. Keys other than these must be limit keys (see [`limits::ALL`]),
/// checked against their declarations when the manifest is parsed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawStage {
    name: String,
    plugin: String,
    for_each: Option<String>,
    parts: Option<i64>,
    after: Option<Vec<String>>,
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
                    "unknown field `{key}`: a stage takes name, plugin, for-each, parts, after, \
                     config and the limits {}",
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

/// What a stage runs once for (`for-each`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForEach {
    /// Every scene of the project: one shard per scene, each bound to its scene.
    Scene,
}

/// One stage of a manifest.
#[derive(Debug, Clone)]
pub struct StageSpec {
    /// Its name, unique in the manifest; run records use it.
    pub name: String,
    /// Its plugin.
    pub plugin: PluginSource,
    /// `Some`: the stage runs as shards, one per scene; `None`: once, for the whole project.
    pub for_each: Option<ForEach>,
    /// How many parts each scene's work is cut into (`parts`; 1 unless the manifest says):
    /// a per-scene stage runs this many shards per scene, each told its part.
    pub parts: u32,
    /// The stages (by index in the manifest) it runs after: `after = [names]`, or by default
    /// the stage before it.
    pub after: Vec<usize>,
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
    /// How many shards run at once (`jobs`), if it says; see [`super::PipelineOptions::jobs`].
    pub jobs: Option<usize>,
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

/// A cycle of `after` edges, as stage indexes in order (each runs after the next, the last
/// after the first), if there is one.
fn find_cycle(stages: &[StageSpec]) -> Option<Vec<usize>> {
    // Depth-first search over "runs after": 0 unvisited, 1 on the current path, 2 done.
    fn visit(i: usize, stages: &[StageSpec], mark: &mut [u8], path: &mut Vec<usize>) -> bool {
        mark[i] = 1;
        path.push(i);
        for &j in &stages[i].after {
            if mark[j] == 1 {
                let start = path.iter().position(|&k| k == j).unwrap_or(0);
                path.drain(..start);
                return true;
            }
            if mark[j] == 0 && visit(j, stages, mark, path) {
                return true;
            }
        }
        mark[i] = 2;
        path.pop();
        false
    }
    let mut mark = vec![0u8; stages.len()];
    for i in 0..stages.len() {
        let mut path = Vec::new();
        if mark[i] == 0 && visit(i, stages, &mut mark, &mut path) {
            return Some(path);
        }
    }
    None
}

/// Checks a number of jobs: 1 to [`MAX_JOBS`].
pub fn check_jobs(n: i64) -> Result<usize, String> {
    match usize::try_from(n) {
        Ok(n @ 1..=MAX_JOBS) => Ok(n),
        _ => Err(format!("is {n}; it must be 1 to {MAX_JOBS}")),
    }
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
        let mut after_names: Vec<Option<Vec<String>>> = Vec::with_capacity(raw.stage.len());
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
            let for_each = match st.for_each.as_deref() {
                None => None,
                Some("scene") => Some(ForEach::Scene),
                Some(other) => {
                    return Err(invalid(
                        key("for-each"),
                        format!(
                            "is {:?}; the only value is \"scene\" (one shard per scene)",
                            crate::text::cut(other, 64)
                        ),
                    ));
                }
            };
            let parts = match (st.parts, for_each) {
                (None, _) => 1,
                (Some(n), Some(_)) => u32::try_from(n)
                    .ok()
                    .filter(|n| (1..=crate::db::MAX_PARTS).contains(n))
                    .ok_or_else(|| {
                        invalid(
                            key("parts"),
                            format!("is {n}; it must be 1 to {}", crate::db::MAX_PARTS),
                        )
                    })?,
                (Some(_), None) => {
                    return Err(invalid(
                        key("parts"),
                        "cuts each scene's work into parts, so it needs `for-each = \"scene\"`"
                            .into(),
                    ));
                }
            };
            let limits = stage_limits(&st.limits)
                .and_then(|settings| {
                    Limits::from_settings(&settings).map_err(|(k, r)| (k.to_owned(), r))
                })
                .map_err(|(k, reason)| invalid(key(&k), reason))?;
            after_names.push(st.after);
            stages.push(StageSpec {
                name: st.name,
                plugin,
                for_each,
                parts,
                after: Vec::new(),
                config,
                limits,
            });
        }
        for (i, names) in after_names.into_iter().enumerate() {
            let after = match names {
                None => i.checked_sub(1).into_iter().collect(),
                Some(names) => {
                    let mut after = Vec::with_capacity(names.len());
                    for name in names {
                        let Some(j) = stages.iter().position(|s| s.name == name) else {
                            return Err(invalid(
                                format!("stage[{i}].after"),
                                format!(
                                    "names {:?}, which is no stage of this pipeline",
                                    crate::text::cut(&name, 64)
                                ),
                            ));
                        };
                        if !after.contains(&j) {
                            after.push(j);
                        }
                    }
                    after
                }
            };
            stages[i].after = after;
        }
        if let Some(cycle) = find_cycle(&stages) {
            let names: Vec<&str> = cycle.iter().map(|&i| stages[i].name.as_str()).collect();
            return Err(invalid(
                format!("stage[{}].after", cycle[0]),
                format!(
                    "makes a cycle: {} → {}; a stage cannot run after itself",
                    names.join(" → "),
                    names[0]
                ),
            ));
        }
        let name = match raw.name {
            Some(n) if !n.trim().is_empty() => n,
            _ => path.file_stem().map_or_else(
                || "pipeline".to_owned(),
                |s| s.to_string_lossy().into_owned(),
            ),
        };
        let jobs = raw
            .jobs
            .map(|n| check_jobs(n).map_err(|reason| invalid("jobs".into(), reason)))
            .transpose()?;
        Ok(Manifest {
            path: path.to_owned(),
            name,
            stages,
            jobs,
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
            let plugin = loaded.map_err(|source| ManifestError::Plugin {
                path: self.path.clone(),
                key,
                source,
            })?;
            if stage.for_each.is_some() && plugin.contract == Contract::V0_1 {
                return Err(ManifestError::Invalid {
                    path: self.path.clone(),
                    key: format!("stage[{i}].for-each"),
                    reason: format!(
                        "needs a plugin built for {} or newer (a shard learns its scene from \
                         db.scope); this one targets {}",
                        Contract::V0_2.package(),
                        Contract::V0_1.package()
                    ),
                });
            }
            plugins.push(plugin);
        }
        Ok(plugins)
    }
}
