//! The instance pool: its shape (how many runs hold slots at once, how big a slot set is), and
//! the leases by which a run holds one slot set.

use std::sync::atomic::{AtomicUsize, Ordering};

use wasmtime::{Enabled, PoolingAllocationConfig};

use super::engine::{Backend, Linked};
use super::{Limits, Plugin, Runtime};
use crate::cache::Compiled;

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
    /// Slot sets for as many runs at once as the machine has cores (the default `--jobs`), and
    /// at least 8; at most 64 (each set reserves address space for its memories, not memory).
    /// Runs beyond them, with a larger `--jobs`, run on demand.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        PoolShape {
            stages: u32::try_from(cores.clamp(8, 64)).unwrap_or(8),
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
    pub(super) fn config(&self) -> PoolingAllocationConfig {
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

/// The pooled engine and how many of its slot sets are taken.
pub(super) struct Pool {
    pub(super) backend: Backend,
    pub(super) shape: PoolShape,
    pub(super) taken: AtomicUsize,
}

/// One slot set of the pool, held for the length of a run.
pub(crate) struct Lease<'a>(&'a AtomicUsize);

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Runtime {
    /// A pool slot set for a run of `plugin` with `limits`, if the run can use one.
    pub(crate) fn lease(&self, plugin: &Plugin, limits: &Limits) -> Option<Lease<'_>> {
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
    pub(super) fn on_demand_pre<'p>(&self, plugin: &'p Plugin) -> Result<&'p Linked, String> {
        plugin
            .on_demand
            .get_or_init(|| {
                let pooled = plugin
                    .pooled
                    .as_ref()
                    .ok_or("the plugin is linked in neither engine")?;
                let component = Compiled::of(pooled.component())
                    .and_then(|compiled| compiled.load(&self.on_demand.engine))
                    .map_err(|e| format!("{e:#}"))?;
                self.on_demand
                    .link(&plugin.name, &component, &plugin.surface, plugin.contract)
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::plugin::surface;

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
}
