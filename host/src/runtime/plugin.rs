//! Loading a plugin: the checks that tell garbage, core modules and components of another
//! contract version apart, compiling (through the compile cache), and linking into the engine
//! its runs will use.

use std::sync::OnceLock;

use wasmtime::component::{Component, types::ComponentItem};

use super::{RunState, Runtime, sha256_hex};
use crate::cache::{CacheOutcome, Compiled};
use crate::capabilities::bindings::{self, StagePre};

/// Why a plugin could not be loaded. Each is bad input: nothing has been written when it happens.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// Not WebAssembly at all.
    #[error("{name} is not a WebAssembly file (it does not start with the \\0asm magic number)")]
    NotWasm {
        /// The plugin's name.
        name: String,
    },
    /// A core module rather than a component.
    #[error(
        "{name} is a core WebAssembly module, not a component; build the stage for the wasm32-wasip2 target \
         (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule {
        /// The plugin's name.
        name: String,
    },
    /// Malformed or unsupported binary.
    #[error("{name} is not a valid WebAssembly component: {reason}")]
    Invalid {
        /// The plugin's name.
        name: String,
        /// The compiler's explanation.
        reason: String,
    },
    /// Imports the host cannot satisfy, or the wrong exports.
    #[error("{name} cannot run on this host: {reason}")]
    Incompatible {
        /// The plugin's name.
        name: String,
        /// What is missing or unsupported.
        reason: String,
    },
}

/// What a component imports and exports, by name.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Surface {
    /// Imported interface or function names, e.g. `vidpipe:plugin/db@0.1.0`.
    pub imports: Vec<String>,
    /// Exported names, e.g. `run`.
    pub exports: Vec<String>,
}

/// A plugin compiled and linked, ready to instantiate many times.
pub struct Plugin {
    /// Its name (the stage name unless overridden).
    pub name: String,
    /// SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// What it imports and exports.
    pub surface: Surface,
    /// Linked in the pooled engine, when the plugin fits the pool's slots.
    pub(super) pooled: Option<StagePre<RunState>>,
    /// Linked in the on-demand engine: at load when the pool cannot hold the plugin, otherwise
    /// on its first run that cannot use the pool.
    pub(super) on_demand: OnceLock<Result<StagePre<RunState>, String>>,
}

impl Plugin {
    /// Whether its runs can use the instance pool (see [`PoolShape`]).
    pub fn fits_the_pool(&self) -> bool {
        self.pooled.is_some()
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("sha256", &self.sha256)
            .field("pooled", &self.pooled.is_some())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Checks, compiles and links `bytes` as a stage named `name`. Every failure is a
    /// [`PluginError`] explaining what is wrong, before anything runs.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<Plugin, PluginError> {
        let sha256 = sha256_hex(bytes);
        let (component, in_pool) = self.compile_hashed(name, bytes, &sha256)?;
        let surface = surface(&component);
        check_version(name, &surface)?;
        let (pooled, on_demand) = match (&self.pool, in_pool) {
            (Some(pool), true) => (
                Some(pool.backend.link(name, &component, &surface)?),
                OnceLock::new(),
            ),
            _ => (
                None,
                OnceLock::from(Ok(self.on_demand.link(name, &component, &surface)?)),
            ),
        };
        Ok(Plugin {
            name: name.to_owned(),
            sha256,
            size: bytes.len() as u64,
            surface,
            pooled,
            on_demand,
        })
    }

    /// Compiles a component, telling garbage and core modules apart from components; with a
    /// cache, loads it from there when it was compiled before.
    pub fn compile(&self, name: &str, bytes: &[u8]) -> Result<Component, PluginError> {
        self.compile_hashed(name, bytes, &sha256_hex(bytes))
            .map(|(component, _)| component)
    }

    /// [`Runtime::compile`] of bytes whose SHA-256 is already known. The component is loaded
    /// into the pooled engine if it fits the pool (the `bool`), else into the on-demand one.
    fn compile_hashed(
        &self,
        name: &str,
        bytes: &[u8],
        sha256: &str,
    ) -> Result<(Component, bool), PluginError> {
        if !bytes.starts_with(b"\0asm") {
            return Err(PluginError::NotWasm {
                name: name.to_owned(),
            });
        }
        if wasmparser::Parser::is_core_wasm(bytes) {
            return Err(PluginError::CoreModule {
                name: name.to_owned(),
            });
        }
        let invalid = |e: wasmtime::Error| PluginError::Invalid {
            name: name.to_owned(),
            reason: format!("{e:#}"),
        };
        let compile = || Compiled::compile(self.engine(), bytes).map_err(invalid);
        let Some(cache) = &self.cache else {
            return self.place(name, &compile()?).map_err(invalid);
        };
        let (compiled, outcome) = cache.load_or_compile(self.engine(), sha256, compile)?;
        tracing::debug!(plugin = name, ?outcome, "compile cache");
        match self.place(name, &compiled) {
            Ok(placed) => Ok(placed),
            // An entry whose tag verified (so this home wrote it) but which this wasmtime
            // refuses: compile afresh and replace it.
            Err(e) if outcome == CacheOutcome::Hit => {
                tracing::warn!(
                    plugin = name,
                    "compile cache entry refused ({e:#}); compiling again"
                );
                let compiled = compile()?;
                cache.replace(self.engine(), sha256, &compiled);
                self.place(name, &compiled).map_err(invalid)
            }
            Err(e) => Err(invalid(e)),
        }
    }

    /// Loads compiled code into the pooled engine if the pool can hold it, else on demand.
    pub(super) fn place(
        &self,
        name: &str,
        compiled: &Compiled,
    ) -> wasmtime::Result<(Component, bool)> {
        if let Some(pool) = &self.pool {
            match compiled.load(&pool.backend.engine) {
                Ok(component) => return Ok((component, true)),
                Err(e) => {
                    tracing::debug!(
                        plugin = name,
                        "runs on demand, not in the instance pool: {e:#}"
                    );
                }
            }
        }
        Ok((compiled.load(&self.on_demand.engine)?, false))
    }

    /// The imports and exports of a compiled component.
    pub fn surface(&self, component: &Component) -> Surface {
        surface(component)
    }
}

/// What `component` imports and exports, sorted.
pub(super) fn surface(component: &Component) -> Surface {
    let engine = component.engine();
    let ty = component.component_type();
    let mut imports: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let mut exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, item)| match item.ty {
            ComponentItem::ComponentFunc(_) => format!("{name} (function)"),
            ComponentItem::ComponentInstance(_) => format!("{name} (interface)"),
            _ => name.to_owned(),
        })
        .collect();
    imports.sort();
    exports.sort();
    Surface { imports, exports }
}

/// Refuses a plugin that imports a vidpipe:plugin version this host does not implement, with a
/// message naming both versions (the linker's own message would only say "not found").
fn check_version(name: &str, surface: &Surface) -> Result<(), PluginError> {
    for import in &surface.imports {
        let Some(rest) = import.strip_prefix("vidpipe:plugin/") else {
            continue;
        };
        let (iface, version) = rest.split_once('@').unwrap_or((rest, "(unversioned)"));
        if version != "0.1.0" {
            return Err(PluginError::Incompatible {
                name: name.to_owned(),
                reason: format!(
                    "it imports {import}, but this host implements {} only",
                    bindings::PACKAGE
                ),
            });
        }
        if !bindings::INTERFACES.contains(&iface) {
            return Err(PluginError::Incompatible {
                name: name.to_owned(),
                reason: format!(
                    "it imports {import}, an interface {} does not have",
                    bindings::PACKAGE
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugins_importing_another_vidpipe_version_are_refused_naming_both_versions() {
        let surface = Surface {
            imports: vec![
                "vidpipe:plugin/db@0.2.0".into(),
                "wasi:cli/stdout@0.2.6".into(),
            ],
            exports: vec!["run (function)".into()],
        };
        let err = check_version("p", &surface).expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains("vidpipe:plugin/db@0.2.0") && text.contains("vidpipe:plugin@0.1.0"),
            "{text}"
        );
        let unknown = Surface {
            imports: vec!["vidpipe:plugin/render@0.1.0".into()],
            exports: vec![],
        };
        assert!(check_version("p", &unknown).is_err());
    }

    #[test]
    fn garbage_and_core_modules_are_told_apart_from_components() {
        let rt = Runtime::new().expect("runtime");
        assert!(matches!(
            rt.load("g", b"hello"),
            Err(PluginError::NotWasm { .. })
        ));
        assert!(matches!(
            rt.load("c", b"\0asm\x01\0\0\0"),
            Err(PluginError::CoreModule { .. })
        ));
        assert!(matches!(
            rt.load("t", b"\0asm\x0d\0\x01\0"),
            Err(PluginError::Invalid { .. }) | Err(PluginError::Incompatible { .. })
        ));
    }
}
