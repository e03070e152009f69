//! Engine configuration: the linker of the stage world for an engine, and the ticker that
//! advances every engine's epoch (what makes guest code yield at each tick).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

use super::{EPOCH_TICK, PluginError, RunState, Surface};
use crate::capabilities::StageContext;
use crate::capabilities::bindings::{Stage, StagePre};

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
        Stage::add_to_linker::<RunState, HasSelf<StageContext>>(
            &mut linker,
            |s: &mut RunState| &mut s.ctx,
        )?;
        Ok(Backend { engine, linker })
    }

    /// Links a component into a [`StagePre`]: every import satisfied, `run` exported.
    pub(super) fn link(
        &self,
        name: &str,
        component: &Component,
        surface: &Surface,
    ) -> Result<StagePre<RunState>, PluginError> {
        let pre =
            self.linker
                .instantiate_pre(component)
                .map_err(|e| PluginError::Incompatible {
                    name: name.to_owned(),
                    reason: format!("{e:#}"),
                })?;
        StagePre::new(pre).map_err(|e| PluginError::Incompatible {
            name: name.to_owned(),
            reason: format!(
                "it does not export the vidpipe:plugin@0.1.0 `stage` world's `run` function ({e:#}); its exports are [{}]",
                surface.exports.join(", ")
            ),
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
