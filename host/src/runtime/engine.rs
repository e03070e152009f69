//! Engine configuration: the linker of the stage world for an engine, and the ticker that
//! advances every engine's epoch (what makes guest code yield at each tick).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store};

use super::{EPOCH_TICK, PluginError, RunState, Surface};
use crate::capabilities::bindings::{Contract, Stage, StagePre, types, v0_1};
use crate::capabilities::{StageContext, v0_1 as adapt};

/// A plugin linked into an engine, through the world of the contract version it targets.
pub(super) enum Linked {
    /// Built against `vidpipe:plugin@0.1.0`: its calls go through the 0.1.0 adapters.
    V0_1(v0_1::StagePre<RunState>),
    /// Built against the newest contract.
    V0_2(StagePre<RunState>),
}

impl Linked {
    /// The component it instantiates.
    pub(super) fn component(&self) -> &Component {
        match self {
            Linked::V0_1(pre) => pre.instance_pre().component(),
            Linked::V0_2(pre) => pre.instance_pre().component(),
        }
    }

    /// Instantiates the plugin in `store` and calls its `run`; a 0.1.0 plugin's error is
    /// returned as the newest contract names it.
    pub(super) async fn run(
        &self,
        store: &mut Store<RunState>,
        config: &[(String, String)],
    ) -> wasmtime::Result<Result<String, types::Error>> {
        match self {
            Linked::V0_2(pre) => {
                let stage = pre.instantiate_async(&mut *store).await?;
                stage.call_run(&mut *store, config).await
            }
            Linked::V0_1(pre) => {
                let stage = pre.instantiate_async(&mut *store).await?;
                let result = stage.call_run(&mut *store, config).await?;
                Ok(result.map_err(adapt::from_v0_1_error))
            }
        }
    }
}

/// One engine and the linker of the stage world for it.
pub(super) struct Backend {
    pub(super) engine: Engine,
    linker: Linker<RunState>,
}

impl Backend {
    pub(super) fn new(config: &Config) -> wasmtime::Result<Self> {
        let engine = Engine::new(config)?;
        let mut linker = Linker::new(&engine);
        // Asynchronous: every WASI wait is a future the run's timeout can drop (module docs).
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        // Every version the host implements, side by side: their import names differ by
        // version, and each 0.1.0 function is adapted onto the newest one (`capabilities::v0_1`).
        Stage::add_to_linker::<RunState, HasSelf<StageContext>>(
            &mut linker,
            |s: &mut RunState| &mut s.ctx,
        )?;
        v0_1::Stage::add_to_linker::<RunState, HasSelf<StageContext>>(
            &mut linker,
            |s: &mut RunState| &mut s.ctx,
        )?;
        Ok(Backend { engine, linker })
    }

    /// Links a component built against `contract`: every import satisfied, that version's
    /// `run` exported.
    pub(super) fn link(
        &self,
        name: &str,
        component: &Component,
        surface: &Surface,
        contract: Contract,
    ) -> Result<Linked, PluginError> {
        let incompatible = |reason: String| PluginError::Incompatible {
            name: name.to_owned(),
            reason,
        };
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| incompatible(format!("{e:#}")))?;
        let no_run = |e: wasmtime::Error| {
            incompatible(format!(
                "it does not export the {} `stage` world's `run` function ({e:#}); its exports are [{}]",
                contract.package(),
                surface.exports.join(", ")
            ))
        };
        Ok(match contract {
            Contract::V0_1 => Linked::V0_1(v0_1::StagePre::new(pre).map_err(no_run)?),
            Contract::V0_2 => Linked::V0_2(StagePre::new(pre).map_err(no_run)?),
        })
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub(super) struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    pub(super) fn start(engines: &[&Engine]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let weak: Vec<_> = engines.iter().map(|e| e.weak()).collect();
        let flag = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("vidpipe-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    let mut alive = false;
                    for engine in weak.iter().filter_map(|w| w.upgrade()) {
                        engine.increment_epoch();
                        alive = true;
                    }
                    if !alive {
                        break;
                    }
                }
            });
        if let Err(e) = spawned {
            // Without a ticker no deadline fires; say so loudly rather than run unbounded silently.
            tracing::error!(
                "could not start the epoch ticker thread, deadlines will not fire: {e}"
            );
        }
        Ticker { stop }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
