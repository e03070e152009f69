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
//! [`InstancePre`]: wasmtime::component::InstancePre

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable, types::ComponentItem};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter,
    Store, Trap,
};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{self, Stage, StagePre};
use crate::cache::{CacheOutcome, CompileCache, Compiled};
use crate::host_api::log::OutputBudget;
use crate::host_api::{StageContext, StoreLimits};

/// Largest plugin file read (a Python stage built with componentize-py is about 18 MB).
pub const MAX_PLUGIN_BYTES: u64 = 512 << 20;

/// How often the epoch ticker advances the engine's epoch; deadlines are rounded up to it.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Most bytes of a stage's stdout and stderr taken in; beyond it they are counted and dropped
/// (what is logged of them is bounded by the run's [`OutputBudget`] besides).
const MAX_CAPTURED_OUTPUT: usize = 1 << 20;
/// Longest line of guest output logged as one event.
const MAX_LINE: usize = 4096;

/// The limits of one stage run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock time the stage may run.
    pub timeout: Duration,
    /// Linear memory of the whole instance (all its memories together), in bytes.
    pub max_memory_bytes: usize,
    /// Elements of any one table.
    pub max_table_elements: usize,
    /// Core instances the component may create.
    pub max_instances: usize,
    /// Bytes one call from the guest may copy into the host (all its lists and strings).
    pub max_import_bytes: usize,
    /// Component-model handles (resources) live at once.
    pub max_handles: usize,
    /// What the stage may store.
    pub store: StoreLimits,
    /// What the stage may stage in the database.
    pub session: crate::db::stage::SessionLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(300),
            max_memory_bytes: 512 << 20,
            max_table_elements: 100_000,
            max_instances: 100,
            max_import_bytes: 32 << 20,
            max_handles: 10_000,
            store: StoreLimits::default(),
            session: crate::db::stage::SessionLimits::default(),
        }
    }
}

/// Limits as a user gives them — `vidpipe stage run` flags or manifest keys — before they are
/// checked. Unset fields keep the defaults of [`Limits::default`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LimitSettings {
    /// `timeout`: wall-clock seconds.
    pub timeout: Option<f64>,
    /// `max-memory`: MiB of linear memory for the whole instance.
    pub max_memory: Option<u64>,
    /// `max-table-elements`: elements of any one table.
    pub max_table_elements: Option<u64>,
    /// `max-instances`: core instances (and tables, and memories).
    pub max_instances: Option<u64>,
    /// `max-artifact-size`: MiB of one artifact.
    pub max_artifact_size: Option<u64>,
    /// `project-quota`: MiB of all the project's artifacts after the stage.
    pub project_quota: Option<u64>,
    /// `max-writers`: artifact writers open at once.
    pub max_writers: Option<u64>,
    /// `max-import-size`: MiB one guest call may copy into the host.
    pub max_import_size: Option<u64>,
    /// `max-handles`: component-model resource handles live at once.
    pub max_handles: Option<u64>,
    /// `max-staged-rows`: row writes one run may stage.
    pub max_staged_rows: Option<u64>,
    /// `max-staged-text`: MiB of text one run may stage.
    pub max_staged_text: Option<u64>,
}

fn in_range(
    key: &'static str,
    v: u64,
    lo: u64,
    hi: u64,
    unit: &str,
) -> Result<u64, (&'static str, String)> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err((key, format!("must be {lo} to {hi}{unit}, not {v}")))
    }
}

impl LimitSettings {
    /// Checks every setting and returns the limits, or the offending key and why.
    pub fn to_limits(&self) -> Result<Limits, (&'static str, String)> {
        let mut l = Limits::default();
        let mib = |v: u64| usize::try_from(v << 20).unwrap_or(usize::MAX);
        if let Some(t) = self.timeout {
            if !(t.is_finite() && t > 0.0 && t <= 86_400.0) {
                return Err((
                    "timeout",
                    format!("must be more than 0 and at most 86400 seconds, not {t}"),
                ));
            }
            l.timeout = Duration::from_secs_f64(t);
        }
        if let Some(m) = self.max_memory {
            l.max_memory_bytes = mib(in_range("max-memory", m, 1, 4096, " MiB")?);
        }
        if let Some(n) = self.max_table_elements {
            l.max_table_elements =
                usize::try_from(in_range("max-table-elements", n, 1, 10_000_000, "")?)
                    .unwrap_or(usize::MAX);
        }
        if let Some(n) = self.max_instances {
            l.max_instances =
                usize::try_from(in_range("max-instances", n, 1, 10_000, "")?).unwrap_or(usize::MAX);
        }
        if let Some(m) = self.max_artifact_size {
            l.store.max_artifact_bytes =
                in_range("max-artifact-size", m, 1, 1 << 20, " MiB")? << 20;
        }
        if let Some(m) = self.project_quota {
            l.store.project_quota_bytes = in_range("project-quota", m, 1, 1 << 30, " MiB")? << 20;
        }
        if let Some(m) = self.max_import_size {
            l.max_import_bytes = mib(in_range("max-import-size", m, 1, 4096, " MiB")?);
        }
        if let Some(n) = self.max_handles {
            l.max_handles = usize::try_from(in_range("max-handles", n, 1, 10_000_000, "")?)
                .unwrap_or(usize::MAX);
        }
        if let Some(n) = self.max_staged_rows {
            l.session.max_writes = in_range("max-staged-rows", n, 1, 100_000_000, "")?;
        }
        if let Some(m) = self.max_staged_text {
            l.session.max_bytes = in_range("max-staged-text", m, 1, 64 << 10, " MiB")? << 20;
        }
        if let Some(n) = self.max_writers {
            l.store.max_open_writers =
                usize::try_from(in_range("max-writers", n, 1, 100_000, "")?).unwrap_or(usize::MAX);
        }
        Ok(l)
    }
}

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
    pooled: Option<StagePre<RunState>>,
    /// Linked in the on-demand engine: at load when the pool cannot hold the plugin, otherwise
    /// on its first run that cannot use the pool.
    on_demand: OnceLock<Result<StagePre<RunState>, String>>,
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

/// SHA-256 of `bytes` in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

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

/// Caps the linear memory of the whole instance (the sum over all its memories, which a
/// per-memory limit would not), table sizes and instance counts. Exceeding a limit traps with a
/// message naming the limit.
struct Limiter {
    max_memory: usize,
    memory: usize,
    max_table_elements: usize,
    max_instances: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory.saturating_sub(current).saturating_add(desired);
        if total > self.max_memory {
            return Err(wasmtime::format_err!(
                "the stage exceeded its memory limit of {} MiB (it asked for {} MiB in all)",
                self.max_memory >> 20,
                total.div_ceil(1 << 20)
            ));
        }
        self.memory = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_table_elements {
            return Err(wasmtime::format_err!(
                "the stage exceeded its table limit of {} elements",
                self.max_table_elements
            ));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.max_instances
    }

    fn tables(&self) -> usize {
        self.max_instances
    }

    fn memories(&self) -> usize {
        self.max_instances
    }
}

/// Guest stdout/stderr, forwarded line by line into the host's log, each line charged to the
/// run's output budget.
#[derive(Clone)]
struct LogStream {
    stage: Arc<str>,
    stream: &'static str,
    state: Arc<std::sync::Mutex<LineBuffer>>,
    budget: Arc<OutputBudget>,
}

#[derive(Default)]
struct LineBuffer {
    line: Vec<u8>,
    total: usize,
    dropped: usize,
}

impl LogStream {
    fn new(stage: &str, stream: &'static str, budget: Arc<OutputBudget>) -> Self {
        LogStream {
            stage: stage.into(),
            stream,
            state: Arc::default(),
            budget,
        }
    }

    fn emit(&self, line: &[u8]) {
        let text = crate::text::printable(String::from_utf8_lossy(line).trim_end(), MAX_LINE);
        if self.budget.charge(text.len() + self.stream.len()) {
            tracing::info!(target: "vidpipe::guest", stage = &*self.stage, stream = self.stream, "{text}");
        }
    }

    fn accept(&self, bytes: &[u8]) {
        let Ok(mut buf) = self.state.lock() else {
            return;
        };
        let room = MAX_CAPTURED_OUTPUT.saturating_sub(buf.total);
        let (kept, dropped) = bytes.split_at(bytes.len().min(room));
        buf.total += kept.len();
        buf.dropped += dropped.len();
        for &b in kept {
            if b == b'\n' || buf.line.len() >= MAX_LINE {
                let line = std::mem::take(&mut buf.line);
                self.emit(&line);
                if b == b'\n' {
                    continue;
                }
            }
            buf.line.push(b);
        }
    }

    fn finish(&self) {
        let Ok(mut buf) = self.state.lock() else {
            return;
        };
        let line = std::mem::take(&mut buf.line);
        if !line.is_empty() {
            self.emit(&line);
        }
        if buf.dropped > 0 {
            tracing::warn!(
                stage = &*self.stage,
                "dropped {} bytes of {} beyond the {} byte capture limit",
                buf.dropped,
                self.stream,
                MAX_CAPTURED_OUTPUT
            );
        }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    /// A stream that takes every write at once, on the guest's own thread (the default adapter
    /// would hand each write to a task on the executor: tens of microseconds per write).
    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::OutputStream> {
        Box::new(self.clone())
    }
}

/// Most bytes one write to a stage's stdout or stderr may carry.
const MAX_WRITE: usize = 64 << 10;

impl wasmtime_wasi::p2::OutputStream for LogStream {
    fn write(&mut self, bytes: bytes::Bytes) -> wasmtime_wasi::p2::StreamResult<()> {
        self.accept(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> wasmtime_wasi::p2::StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> wasmtime_wasi::p2::StreamResult<usize> {
        Ok(MAX_WRITE)
    }
}

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.accept(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    fn start(engines: &[&Engine]) -> Self {
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

/// The shape of the instance pool: how many stage runs hold slots at once, and how big one
/// run's slot set is. A plugin that needs more (instances, memories, tables, or a table that
/// starts bigger) is run on demand, as is a run whose `max-table-elements` exceeds the slots'
/// tables or that finds every slot set taken. The size of a memory is never the reason: every
/// memory slot can grow to 4 GiB, the most a 32-bit memory can have, and the host's limiter
/// caps the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolShape {
    /// Stage runs holding pool slots at once.
    pub stages: u32,
    /// Core instances of one run (the demo plugins have 3).
    pub core_instances: u32,
    /// Linear memories of one run (the demo plugins have 1).
    pub memories: u32,
    /// Tables of one run (the demo plugins have 2).
    pub tables: u32,
    /// Elements of one table; the default `max-table-elements` fits.
    pub table_elements: usize,
    /// Bytes of each memory reset in place rather than returned to the kernel when a slot is
    /// freed: the memory a small stage touches is then reused without a page fault. (Measured
    /// with `vidpipe-bench --only-stage-start`: with none kept, a no-op stage starts in about
    /// 45 µs; with 256 KiB or more, about 12–25 µs; more does not help it.)
    pub memory_keep_resident: usize,
    /// The same for each table.
    pub table_keep_resident: usize,
}

impl Default for PoolShape {
    fn default() -> Self {
        PoolShape {
            stages: 8,
            core_instances: 16,
            memories: 4,
            tables: 8,
            table_elements: Limits::default().max_table_elements,
            memory_keep_resident: 256 << 10,
            table_keep_resident: 16 << 10,
        }
    }
}

/// Bytes of a pooled fiber stack reset by memset rather than by the kernel when its run ends.
const STACK_KEEP_RESIDENT: usize = 64 << 10;

/// The largest memory a slot holds: all of a 32-bit memory.
const POOL_MEMORY_BYTES: usize = 1 << 32;

impl PoolShape {
    fn config(&self) -> PoolingAllocationConfig {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(self.stages)
            .total_core_instances(self.stages.saturating_mul(self.core_instances))
            .max_core_instances_per_component(self.core_instances)
            .total_memories(self.stages.saturating_mul(self.memories))
            .max_memories_per_component(self.memories)
            .max_memories_per_module(self.memories)
            .max_memory_size(POOL_MEMORY_BYTES)
            .total_tables(self.stages.saturating_mul(self.tables))
            .max_tables_per_component(self.tables)
            .max_tables_per_module(self.tables)
            .table_elements(self.table_elements)
            .linear_memory_keep_resident(self.memory_keep_resident)
            .table_keep_resident(self.table_keep_resident)
            // One fiber stack per run in the pool; zeroed (below) before it is reused, the
            // first part by memset, the rest by returning it to the kernel.
            .total_stacks(self.stages)
            .async_stack_keep_resident(STACK_KEEP_RESIDENT)
            // Where the kernel has PAGEMAP_SCAN (Linux 6.7+), find the pages a run touched and
            // restore up to `keep_resident` bytes of them in place; elsewhere restore the first
            // `keep_resident` bytes whole. Either way the rest goes back to the kernel.
            .pagemap_scan(Enabled::Auto);
        pool
    }
}

/// How many runs each engine has served, for benchmarks and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Placements {
    /// Runs in pool slots.
    pub pooled: u64,
    /// Runs allocated on demand.
    pub on_demand: u64,
}

/// One engine and the linker of the stage world for it.
struct Backend {
    engine: Engine,
    linker: Linker<RunState>,
}

impl Backend {
    fn new(config: &Config) -> wasmtime::Result<Self> {
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
    fn link(
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

/// The pooled engine and how many of its slot sets are taken.
struct Pool {
    backend: Backend,
    shape: PoolShape,
    taken: AtomicUsize,
}

/// One slot set of the pool, held for the length of a run.
struct Lease<'a>(&'a AtomicUsize);

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
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
    fn place(&self, name: &str, compiled: &Compiled) -> wasmtime::Result<(Component, bool)> {
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

    /// A pool slot set for a run of `plugin` with `limits`, if the run can use one.
    fn lease(&self, plugin: &Plugin, limits: &Limits) -> Option<Lease<'_>> {
        let pool = self.pool.as_ref()?;
        plugin.pooled.as_ref()?;
        // A table may grow only as far as its slot; a larger limit is the limiter's to enforce.
        if limits.max_table_elements > pool.shape.table_elements {
            return None;
        }
        let stages = usize::try_from(pool.shape.stages).unwrap_or(usize::MAX);
        pool.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < stages).then_some(n + 1)
            })
            .ok()?;
        Some(Lease(&pool.taken))
    }

    /// The plugin linked in the on-demand engine, moving its code there on first use.
    fn on_demand_pre<'p>(&self, plugin: &'p Plugin) -> Result<&'p StagePre<RunState>, String> {
        plugin
            .on_demand
            .get_or_init(|| {
                let pooled = plugin
                    .pooled
                    .as_ref()
                    .ok_or("the plugin is linked in neither engine")?;
                let component = Compiled::of(pooled.instance_pre().component())
                    .and_then(|compiled| compiled.load(&self.on_demand.engine))
                    .map_err(|e| format!("{e:#}"))?;
                self.on_demand
                    .link(&plugin.name, &component, &plugin.surface)
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| {
                format!(
                    "could not prepare {} to run outside the instance pool: {e}",
                    plugin.name
                )
            })
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
        let stdout = LogStream::new(&ctx.stage, "stdout", ctx.output.clone());
        let stderr = LogStream::new(&ctx.stage, "stderr", ctx.output.clone());
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

        let run = async {
            let stage = pre.instantiate_async(&mut store).await?;
            stage.call_run(&mut store, config).await
        };
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

/// Consecutive frames of one function on top of the call stack from which an out-of-bounds trap
/// is reported as a runaway recursion (Rust guests keep their data stack in linear memory and
/// overflow it that way, rather than the engine's stack). wasmtime captures 20 frames by default.
const RECURSION_FRAMES: usize = 16;

/// Why a stage that ran out of time was stopped.
fn time_limit(limits: &Limits) -> String {
    format!(
        "the stage exceeded its time limit of {} s and was stopped",
        limits.timeout.as_secs_f64()
    )
}

/// One line naming why a stage trapped: the limit it hit, or the trap and where it happened.
/// Never the full backtrace, which can be thousands of lines.
fn describe_trap(e: &wasmtime::Error, limits: &Limits) -> String {
    let trap = e.downcast_ref::<Trap>();
    let frames = e
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(|bt| bt.frames());
    let depth = frames.map_or(0, <[_]>::len);
    let top = frames
        .and_then(|f| f.first())
        .and_then(|frame| frame.func_name());
    let place = top
        .map(|name| format!(" in {:#}", rustc_demangle::demangle(name)))
        .unwrap_or_default();
    let recursing = depth >= RECURSION_FRAMES
        && frames.is_some_and(|f| {
            f.iter()
                .take(RECURSION_FRAMES)
                .all(|frame| frame.func_name() == top)
        });
    if e.root_cause().is::<crate::host_api::DeadlineInHost>() {
        return format!(
            "the stage exceeded its time limit of {} s (during a database call) and was stopped",
            limits.timeout.as_secs_f64()
        );
    }
    match trap {
        Some(Trap::Interrupt) => time_limit(limits),
        Some(Trap::StackOverflow) => {
            "the stage overflowed its stack (too deep a recursion)".to_owned()
        }
        Some(Trap::MemoryOutOfBounds) if recursing => format!(
            "the stage overflowed its stack (too deep a recursion): out of bounds memory access{place}, \
             the same function on every one of the {depth} innermost frames"
        ),
        Some(trap) => format!("the stage trapped: {trap}{place}"),
        // Not a trap: an error from a host function, the limiter or the component runtime,
        // whose own message (the root of the chain, under the backtrace context) says it all.
        None => {
            let cause = e.root_cause().to_string();
            if cause.contains("handle limit") {
                format!(
                    "the stage exceeded its limit of {} live resource handles (max-handles) ({cause})",
                    limits.max_handles
                )
            } else if cause.contains("fuel allocated for hostcalls") && frames.is_none() {
                // No guest frame on the stack: the guest had returned, and what could not be
                // copied out was the result of `run` itself (its summary or error).
                format!(
                    "the stage returned a result (its summary or error) of more than {} MiB, its \
                     import size limit (max-import-size); only the first {} characters of a \
                     summary are kept anyway",
                    limits.max_import_bytes >> 20,
                    crate::runner::MAX_REPORT_CHARS
                )
            } else if cause.contains("fuel allocated for hostcalls") {
                format!(
                    "the stage passed more than {} MiB to one host call, its import size limit ({cause})",
                    limits.max_import_bytes >> 20
                )
            } else {
                cause
            }
        }
    }
}

fn surface(component: &Component) -> Surface {
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

    fn limiter(max_mib: usize) -> Limiter {
        Limiter {
            max_memory: max_mib << 20,
            memory: 0,
            max_table_elements: 10,
            max_instances: 1,
        }
    }

    #[test]
    fn the_memory_limit_counts_every_memory_of_the_instance_together() {
        let mut l = limiter(10);
        assert!(
            l.memory_growing(0, 6 << 20, None)
                .expect("first memory fits")
        );
        let err = l
            .memory_growing(0, 6 << 20, None)
            .expect_err("a second memory pushes the total over");
        assert!(err.to_string().contains("memory limit of 10 MiB"), "{err}");
        assert!(
            l.memory_growing(6 << 20, 10 << 20, None)
                .expect("growing the first to the cap fits")
        );
    }

    #[test]
    fn the_table_limit_names_its_value() {
        let mut l = limiter(1);
        assert!(l.table_growing(0, 10, None).expect("at the cap"));
        let err = l.table_growing(10, 11, None).expect_err("over the cap");
        assert!(err.to_string().contains("10 elements"), "{err}");
    }

    #[test]
    fn guest_output_is_split_into_lines_and_capped() {
        let s = LogStream::new("t", "stdout", Arc::new(OutputBudget::new("t")));
        s.accept(b"one\ntwo");
        s.accept(&vec![b'x'; MAX_CAPTURED_OUTPUT]);
        let buf = s.state.lock().expect("lock");
        assert_eq!(
            buf.total, MAX_CAPTURED_OUTPUT,
            "no more than the cap is kept"
        );
        assert_eq!(buf.dropped, 7, "the overflow is counted");
        assert!(buf.line.len() <= MAX_LINE, "long lines are split");
    }

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

    #[test]
    fn a_pool_slot_set_is_leased_to_one_run_at_a_time_and_returned() {
        let rt = Runtime::with_pool(Some(PoolShape {
            stages: 2,
            ..PoolShape::default()
        }))
        .expect("runtime");
        assert!(rt.has_pool(), "the instance pool could not be reserved");
        let plugin = rt
            .load("storyboard", vidpipe_example_plugins::STORYBOARD)
            .expect("loads");
        let limits = Limits::default();
        let first = rt.lease(&plugin, &limits).expect("a free slot set");
        let second = rt.lease(&plugin, &limits).expect("another");
        assert!(rt.lease(&plugin, &limits).is_none(), "both are taken");
        drop(first);
        let third = rt.lease(&plugin, &limits).expect("the returned one");
        drop((second, third));
        let wide = Limits {
            max_table_elements: 10_000_000,
            ..limits
        };
        assert!(
            rt.lease(&plugin, &wide).is_none(),
            "a table limit beyond the slots' tables runs on demand"
        );
    }

    #[test]
    fn compiled_code_loads_into_both_engines() {
        let rt = Runtime::new().expect("runtime");
        let compiled =
            Compiled::compile(rt.engine(), vidpipe_example_plugins::STORYBOARD).expect("compiles");
        let (component, pooled) = rt.place("storyboard", &compiled).expect("places");
        assert!(pooled, "the demo plugins fit the default pool");
        let moved = Compiled::of(&component)
            .and_then(|c| c.load(&rt.on_demand.engine))
            .expect("moves to the on-demand engine");
        assert_eq!(surface(&moved).imports, surface(&component).imports);
    }

    #[test]
    fn a_run_that_finds_every_slot_set_taken_runs_on_demand_and_succeeds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut home = crate::home::Home::init(&dir.path().join("home")).expect("home");
        let project = home
            .create_project("p", "A fox.\n\nA river.\n", &Default::default())
            .expect("project");
        let _lock = home.lock_project(&project.id, true).expect("lock");
        let rt = Runtime::with_pool(Some(PoolShape {
            stages: 1,
            ..PoolShape::default()
        }))
        .expect("runtime");
        assert!(
            rt.has_pool(),
            "the instance pool could not be reserved on this machine (its log says why)"
        );
        let plugin = rt
            .load("storyboard", vidpipe_example_plugins::STORYBOARD)
            .expect("loads");
        let run = |rt: &Runtime, home: &mut crate::home::Home| {
            let request = crate::runner::StageRequest {
                project_id: project.id.clone(),
                config: Default::default(),
                limits: Limits::default(),
                progress: Box::new(|_, _, _, _| {}),
                pipeline: None,
            };
            let report = crate::runner::run_stage(home, rt, &plugin, request).expect("runs");
            assert!(report.succeeded(), "{:?}", report.run.error);
        };
        let held = rt
            .lease(&plugin, &Limits::default())
            .expect("the only slot set");
        run(&rt, &mut home);
        assert_eq!(
            rt.placements(),
            Placements {
                pooled: 0,
                on_demand: 1
            }
        );
        drop(held);
        run(&rt, &mut home);
        assert_eq!(
            rt.placements(),
            Placements {
                pooled: 1,
                on_demand: 1
            }
        );
    }
}
