//! The WebAssembly runtime: wasmtime [`Engine`]s and [`Linker`]s, plugins loaded into
//! [`InstancePre`]s, and a fresh, limited [`Store`] for every stage run.
//!
//! Two engines with the same settings, which therefore accept the same compiled code: a **pooled** one,
//! whose instances, memories and tables live in slots reserved once and reused (a stage start
//! then maps nothing; see [`PoolShape`]), and an **on-demand** one, which maps every instance
//! afresh. A run uses the pool when its plugin fits the slots, its limits fit them, and a slot
//! set is free; otherwise it runs on demand, the same in every respect but speed. wasmtime
//! resets a slot before reusing it (its memory back to the component's initial image, its tables
//! cleared), so nothing of one run reaches the next.
//!
//! Deny by default: the WASI context of a stage has no preopened directories, no environment, no
//! arguments, no network and no stdin; its stdout and stderr go to the host's log under the stage's
//! name. Its memory is capped for the whole instance by [`Limiter`].
//!
//! # Deadlines that cannot be slept through
//!
//! A run is an `async` call on a tokio executor, wrapped in one `tokio::time::timeout` of the
//! stage's time limit. WASI is linked asynchronously, so every wait a guest can ask for (a
//! clock, `poll` on any set of pollables, a stream) is a future that yields to the executor
//! rather than blocking a thread. Guest code yields too: one engine-wide ticker thread advances
//! the epoch every [`EPOCH_TICK`], and at each tick a running guest yields
//! (`epoch_deadline_async_yield_and_update`). So whatever the guest does, the timeout gets to
//! run within a tick of the deadline; it drops the call, and with it the guest's fiber, and the
//! store goes after it. The host's own imports are synchronous and bounded (a database call
//! is cut short at the deadline by SQLite's progress handler; one file chunk is at most 16 MiB).
//!
//! Why not a thread per run and a watchdog: a blocked host call on a thread cannot be stopped
//! from outside, only abandoned with the thread, its store and its project lock still held.
//!
//! # Rooms
//!
//! | module | owns |
//! |---|---|
//! | this one | [`Runtime`]: the engines, the executor, and [`Runtime::call`], one run in a fresh store |
//! | [`limits`] | the engine's limits, [`limits::ALL`] (every limit a stage takes), the memory limiter |
//! | `engine` | engine configuration and the linker of the stage world, the epoch ticker |
//! | `pool` | the instance pool's shape and its leases |
//! | `plugin` | loading a plugin: checks, compile (through the cache), link, surface and version |
//! | `output` | the capture of a guest's stdout and stderr |
//! | `trap` | one line naming why a run trapped |
//!
//! [`InstancePre`]: wasmtime::component::InstancePre

mod engine;
pub mod limits;
mod output;
mod plugin;
mod pool;
mod trap;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::cache::CompileCache;
use crate::capabilities::StageContext;
use crate::capabilities::bindings;
pub use crate::digest::sha256_hex;
pub use crate::limits::LimitSettings;
use engine::{Backend, Ticker};
use limits::Limiter;
pub use limits::Limits;
use output::LogStream;
pub use plugin::{Plugin, PluginError, Surface};
use pool::Pool;
pub use pool::{Placements, PoolShape};
use trap::{describe_trap, time_limit};

/// Largest plugin file read (a Python stage built with componentize-py is about 18 MB).
pub const MAX_PLUGIN_BYTES: u64 = 512 << 20;

/// How often the epoch ticker advances the engine's epoch; deadlines are rounded up to it.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Longest summary or error message of a stage kept in its run record and report.
pub const MAX_REPORT_CHARS: usize = 4096;

/// The data of a stage's [`Store`]: WASI state, the stage's context and its limiter.
pub struct RunState {
    wasi: WasiCtx,
    wasi_table: ResourceTable,
    /// What the stage can reach through the vidpipe interfaces.
    pub ctx: StageContext,
    limiter: Limiter,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.wasi_table,
        }
    }
}

/// How a stage call ended.
#[derive(Debug)]
pub enum Outcome {
    /// The stage returned a summary.
    Succeeded(String),
    /// The stage returned a structured error.
    Failed(bindings::types::Error),
    /// The stage trapped, ran out of time or memory, or broke the contract.
    Trapped(String),
}

/// The engines, their linkers, the executor and the ticker, shared by every plugin and run of
/// a process.
pub struct Runtime {
    on_demand: Backend,
    pool: Option<Pool>,
    cache: Option<CompileCache>,
    pooled_runs: AtomicU64,
    on_demand_runs: AtomicU64,
    /// Runs calls on the thread that asks for them; its one worker thread drives the timers
    /// (deadlines, WASI clocks) while that thread runs guest code.
    executor: tokio::runtime::Runtime,
    _ticker: Ticker,
}

impl Runtime {
    /// Builds the engines (epoch interruption on) and their linkers with WASI p2 and the vidpipe
    /// interfaces, with the default [`PoolShape`].
    pub fn new() -> wasmtime::Result<Self> {
        Self::with_pool(Some(PoolShape::default()))
    }

    /// [`Runtime::new`] with an instance pool of `shape`, or none (every run on demand). If the
    /// pool cannot be reserved (its address space is refused, say under `ulimit -v`), that is
    /// logged and every run is on demand.
    pub fn with_pool(shape: Option<PoolShape>) -> wasmtime::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        // A run's fiber stack holds the spills of its compiled code; a stack reused from the
        // pool starts zeroed, so no frame of an earlier run can be read (defence in depth).
        config.async_stack_zeroing(true);
        // `VIDPIPE_PERFMAP=1` writes /tmp/perf-<pid>.map, so `perf record` / `perf report`
        // name the functions of plugins (what found the hot loops of the demo stages).
        if std::env::var_os("VIDPIPE_PERFMAP").is_some_and(|v| v == "1") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let on_demand = Backend::new(&config)?;
        let pool = match shape {
            None => None,
            Some(shape) => {
                config.allocation_strategy(InstanceAllocationStrategy::Pooling(shape.config()));
                match Backend::new(&config) {
                    Ok(backend) => Some(Pool {
                        backend,
                        shape,
                        taken: AtomicUsize::new(0),
                    }),
                    Err(e) => {
                        tracing::warn!("no instance pool, every stage runs on demand: {e:#}");
                        None
                    }
                }
            }
        };
        let mut engines = vec![&on_demand.engine];
        engines.extend(pool.as_ref().map(|p| &p.backend.engine));
        let ticker = Ticker::start(&engines);
        let executor = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("vidpipe-executor")
            .enable_time()
            .build()
            .map_err(|e| {
                wasmtime::format_err!("could not start the executor of stage runs: {e}")
            })?;
        Ok(Runtime {
            on_demand,
            pool,
            cache: None,
            pooled_runs: AtomicU64::new(0),
            on_demand_runs: AtomicU64::new(0),
            executor,
            _ticker: ticker,
        })
    }

    /// The same runtime, loading and storing compiled plugins in `cache`.
    pub fn with_cache(mut self, cache: CompileCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The engine that compiles; every engine of this runtime accepts what it compiles.
    pub fn engine(&self) -> &Engine {
        &self.on_demand.engine
    }

    /// Whether this runtime has an instance pool.
    pub fn has_pool(&self) -> bool {
        self.pool.is_some()
    }

    /// How many runs each engine has served so far.
    pub fn placements(&self) -> Placements {
        Placements {
            pooled: self.pooled_runs.load(Ordering::Relaxed),
            on_demand: self.on_demand_runs.load(Ordering::Relaxed),
        }
    }

    /// Runs `plugin` once in a fresh store with `ctx`, `config` and `limits`, and hands the
    /// context back whatever happened, so the caller can commit or discard what the stage staged.
    pub fn call(
        &self,
        plugin: &Plugin,
        mut ctx: StageContext,
        config: &[(String, String)],
        limits: &Limits,
    ) -> (Outcome, StageContext) {
        // Taken before the store is made and released after it is gone (declared first,
        // dropped last), so the pool never has more runs in it than slot sets.
        let lease = self.lease(plugin, limits);
        let (engine, pre) = match (&lease, &self.pool, &plugin.pooled) {
            (Some(_), Some(pool), Some(pre)) => {
                self.pooled_runs.fetch_add(1, Ordering::Relaxed);
                (&pool.backend.engine, pre)
            }
            _ => match self.on_demand_pre(plugin) {
                Ok(pre) => {
                    self.on_demand_runs.fetch_add(1, Ordering::Relaxed);
                    (&self.on_demand.engine, pre)
                }
                Err(e) => return (Outcome::Trapped(e), ctx),
            },
        };
        // The epoch deadline stops guest code; this stops database work done on its behalf.
        if let Err(e) = ctx
            .db
            .set_deadline(std::time::Instant::now() + limits.timeout)
        {
            tracing::warn!(stage = %ctx.stage, "database calls will not be cut short at the deadline: {e}");
        }
        let stdout = LogStream::new(&ctx.stage, "stdout", ctx.log.output());
        let stderr = LogStream::new(&ctx.stage, "stderr", ctx.log.output());
        let mut wasi = WasiCtx::builder();
        wasi.stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let state = RunState {
            wasi: wasi.build(),
            wasi_table: ResourceTable::new(),
            ctx,
            limiter: Limiter {
                max_memory: limits.max_memory_bytes,
                memory: 0,
                max_table_elements: limits.max_table_elements,
                max_instances: limits.max_instances,
            },
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_hostcall_fuel(limits.max_import_bytes);
        store.set_max_component_handles(limits.max_handles);
        // Guest code yields to the executor at every tick, so the timeout below can fire.
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);

        let run = pre.run(&mut store, config);
        let result = self
            .executor
            .block_on(async { tokio::time::timeout(limits.timeout, run).await });
        let outcome = match result {
            Ok(Ok(Ok(summary))) => Outcome::Succeeded(summary),
            Ok(Ok(Err(error))) => Outcome::Failed(error),
            Ok(Err(e)) => Outcome::Trapped(describe_trap(&e, limits)),
            // The call, and the guest's fiber with it, was dropped at the deadline.
            Err(_elapsed) => Outcome::Trapped(time_limit(limits)),
        };
        stdout.finish();
        stderr.finish();
        // The store (and with it every instance and open writer of this run) is dropped here;
        // dropping the writers removes their staged files.
        let RunState { mut ctx, .. } = store.into_data();
        ctx.finish_output();
        drop(lease);
        if let Err(e) = ctx.db.clear_deadline() {
            tracing::warn!(stage = %ctx.stage, "could not clear the database deadline: {e}");
        }
        (outcome, ctx)
    }
}
