//! Loading a plugin: the checks that tell garbage, core modules and components of another
//! contract version apart, compiling (through the compile cache), and linking into the engine
//! its runs will use.

use std::sync::OnceLock;

use wasmtime::component::{Component, types::ComponentItem};

use super::engine::Linked;
use super::{Runtime, sha256_hex};
use crate::cache::{CacheOutcome, Compiled};
use crate::capabilities::bindings::Contract;

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
    /// The version of the contract it was built against.
    pub contract: Contract,
    /// Linked in the pooled engine, when the plugin fits the pool's slots.
    pub(super) pooled: Option<Linked>,
    /// Linked in the on-demand engine: at load when the pool cannot hold the plugin, otherwise
    /// on its first run that cannot use the pool.
    pub(super) on_demand: OnceLock<Result<Linked, String>>,
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
        let contract = contract(name, &surface)?;
        let (pooled, on_demand) = match (&self.pool, in_pool) {
            (Some(pool), true) => (
                Some(pool.backend.link(name, &component, &surface, contract)?),
                OnceLock::new(),
            ),
            _ => (
                None,
                OnceLock::from(Ok(self
                    .on_demand
                    .link(name, &component, &surface, contract)?)),
            ),
        };
        Ok(Plugin {
            name: name.to_owned(),
            sha256,
            size: bytes.len() as u64,
            surface,
            contract,
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

/// The contract version a plugin targets, from its imports: the one version of
/// `vidpipe:plugin` it imports (the newest if it imports none). Versions are matched exactly:
/// a `0.2.1` this host has never heard of is refused rather than linked as `0.2.0`, though
/// wasmtime's semver rules would allow it. A version this host does not
/// implement, an interface that version does not have, or two versions at once are refused
/// with a message naming them (the linker's own message would only say "not found").
fn contract(name: &str, surface: &Surface) -> Result<Contract, PluginError> {
    let refuse = |reason: String| PluginError::Incompatible {
        name: name.to_owned(),
        reason,
    };
    let mut found: Option<(Contract, &str)> = None;
    for import in &surface.imports {
        let Some(rest) = import.strip_prefix("vidpipe:plugin/") else {
            continue;
        };
        let (iface, version) = rest.split_once('@').unwrap_or((rest, "(unversioned)"));
        let Some(contract) = Contract::from_version(version) else {
            return Err(refuse(format!(
                "it imports {import}, but this host implements {} only",
                Contract::supported()
            )));
        };
        if !contract.interfaces().contains(&iface) {
            return Err(refuse(format!(
                "it imports {import}, an interface {} does not have",
                contract.package()
            )));
        }
        match found {
            Some((other, first)) if other != contract => {
                return Err(refuse(format!(
                    "it imports both {first} and {import}; a plugin targets one version of vidpipe:plugin"
                )));
            }
            _ => found = Some((contract, import)),
        }
    }
    Ok(found.map_or(Contract::NEWEST, |(c, _)| c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn surface(imports: &[&str]) -> Surface {
        Surface {
            imports: imports.iter().map(|i| (*i).to_owned()).collect(),
            exports: vec!["run (function)".into()],
        }
    }

    #[test]
    fn a_plugin_targets_the_one_vidpipe_version_it_imports_and_the_newest_if_none() {
        let old = surface(&["vidpipe:plugin/db@0.1.0", "vidpipe:plugin/types@0.1.0"]);
        assert_eq!(contract("p", &old).expect("0.1.0"), Contract::V0_1);
        let new = surface(&["vidpipe:plugin/log@0.2.0", "wasi:cli/stdout@0.2.6"]);
        assert_eq!(contract("p", &new).expect("0.2.0"), Contract::V0_2);
        assert_eq!(
            contract("p", &surface(&["wasi:cli/stdout@0.2.6"])).expect("none"),
            Contract::NEWEST
        );
    }

    #[test]
    fn plugins_importing_an_unknown_vidpipe_version_are_refused_naming_every_version_this_host_has()
    {
        let err = contract("p", &surface(&["vidpipe:plugin/db@0.9.0"])).expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains("vidpipe:plugin/db@0.9.0")
                && text.contains("vidpipe:plugin@0.1.0 and @0.2.0"),
            "{text}"
        );
        let unknown = surface(&["vidpipe:plugin/render@0.2.0"]);
        let text = contract("p", &unknown).expect_err("refused").to_string();
        assert!(
            text.contains("an interface vidpipe:plugin@0.2.0 does not have"),
            "{text}"
        );
    }

    #[test]
    fn plugins_importing_two_vidpipe_versions_at_once_are_refused_naming_both() {
        let mixed = surface(&["vidpipe:plugin/db@0.2.0", "vidpipe:plugin/log@0.1.0"]);
        let text = contract("p", &mixed).expect_err("refused").to_string();
        assert!(
            text.contains("vidpipe:plugin/db@0.2.0")
                && text.contains("vidpipe:plugin/log@0.1.0")
                && text.contains("one version"),
            "{text}"
        );
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
