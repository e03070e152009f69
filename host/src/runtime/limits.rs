//! The limits of one stage run: the engine's own, declared here, composed with those each
//! capability declares (see [`crate::limits`]), and the [`Limiter`] that enforces memory,
//! tables and instances for the whole instance.

use std::time::Duration;

use wasmtime::ResourceLimiter;

use crate::capabilities::db::SessionLimits;
use crate::capabilities::{self, StoreLimits};
use crate::limits::{Checked, LimitSettings, LimitSpec, Unit};

/// `timeout`: the wall-clock time a stage may run.
pub static TIMEOUT: LimitSpec = LimitSpec {
    key: "timeout",
    unit: Unit::Seconds,
    default: 300,
    min: 0,
    max: 86_400,
    help: "Wall-clock limit in seconds",
};
/// `max-memory`: linear memory of the whole instance, all its memories together.
pub static MAX_MEMORY: LimitSpec = LimitSpec {
    key: "max-memory",
    unit: Unit::MiB,
    default: 512,
    min: 1,
    max: 4096,
    help: "Linear memory of the whole instance, in MiB",
};
/// `max-table-elements`: elements of any one table.
pub static MAX_TABLE_ELEMENTS: LimitSpec = LimitSpec {
    key: "max-table-elements",
    unit: Unit::Count,
    default: 100_000,
    min: 1,
    max: 10_000_000,
    help: "Elements of any one table",
};
/// `max-instances`: core instances (and tables, and memories) the component may create.
pub static MAX_INSTANCES: LimitSpec = LimitSpec {
    key: "max-instances",
    unit: Unit::Count,
    default: 100,
    min: 1,
    max: 10_000,
    help: "Core instances, tables and memories",
};
/// `max-import-size`: bytes one guest call may copy into the host (wasmtime's hostcall fuel).
pub static MAX_IMPORT_SIZE: LimitSpec = LimitSpec {
    key: "max-import-size",
    unit: Unit::MiB,
    default: 32,
    min: 1,
    max: 4096,
    help: "Bytes one guest call may copy into the host (its lists and strings), in MiB",
};
/// `max-handles`: component-model resource handles live at once.
pub static MAX_HANDLES: LimitSpec = LimitSpec {
    key: "max-handles",
    unit: Unit::Count,
    default: 10_000,
    min: 1,
    max: 10_000_000,
    help: "Component-model resource handles live at once",
};

/// Every user-settable limit of a stage run, the engine's then each capability's: the flags of
/// `vidpipe stage run` and the limit keys of a manifest stage, in this order.
pub static ALL: [&LimitSpec; 11] = [
    &TIMEOUT,
    &MAX_MEMORY,
    &MAX_TABLE_ELEMENTS,
    &MAX_INSTANCES,
    &capabilities::artifacts::MAX_ARTIFACT_SIZE,
    &capabilities::artifacts::PROJECT_QUOTA,
    &capabilities::artifacts::MAX_WRITERS,
    &MAX_IMPORT_SIZE,
    &MAX_HANDLES,
    &capabilities::db::MAX_STAGED_ROWS,
    &capabilities::db::MAX_STAGED_TEXT,
];

/// The declared limit with flag or manifest key `key`.
pub fn spec(key: &str) -> Option<&'static LimitSpec> {
    ALL.iter().copied().find(|s| s.key == key)
}

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
    pub session: SessionLimits,
}

impl Limits {
    /// Checks every setting against its declaration and returns the limits, or the offending
    /// key and why.
    pub fn from_settings(settings: &LimitSettings) -> Result<Limits, (&'static str, String)> {
        Ok(Limits::from_checked(&settings.check()?))
    }

    fn from_checked(c: &Checked) -> Limits {
        Limits {
            timeout: c.duration(&TIMEOUT),
            max_memory_bytes: c.bytes_usize(&MAX_MEMORY),
            max_table_elements: c.count_usize(&MAX_TABLE_ELEMENTS),
            max_instances: c.count_usize(&MAX_INSTANCES),
            max_import_bytes: c.bytes_usize(&MAX_IMPORT_SIZE),
            max_handles: c.count_usize(&MAX_HANDLES),
            store: capabilities::artifacts::limits(c),
            session: capabilities::db::limits(c),
        }
    }
}

impl Default for Limits {
    /// Every limit at its declared default.
    fn default() -> Self {
        Limits::from_checked(&Checked::default())
    }
}

/// Caps the linear memory of the whole instance (the sum over all its memories, which a
/// per-memory limit would not), table sizes and instance counts. Exceeding a limit traps with a
/// message naming the limit.
pub(super) struct Limiter {
    pub(super) max_memory: usize,
    pub(super) memory: usize,
    pub(super) max_table_elements: usize,
    pub(super) max_instances: usize,
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
                "the stage exceeded its memory limit of {} MiB ({}; it asked for {} MiB in all)",
                self.max_memory >> 20,
                MAX_MEMORY.key,
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
                "the stage exceeded its table limit of {} elements ({})",
                self.max_table_elements,
                MAX_TABLE_ELEMENTS.key
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
    fn every_limit_has_one_key_and_a_default_inside_its_own_range() {
        for (i, spec) in ALL.iter().enumerate() {
            assert!(
                ALL[..i].iter().all(|s| s.key != spec.key),
                "{} is declared twice",
                spec.key
            );
            assert!(
                spec.check(crate::limits::LimitValue::Whole(spec.default))
                    .is_ok(),
                "{}'s default is out of its range",
                spec.key
            );
        }
    }

    /// SECURITY.md's table of limits says what the declarations say: a row per limit, naming
    /// its key and unit, with its default.
    #[test]
    fn the_security_table_shows_every_declared_limit_with_its_unit_and_default() {
        let security = include_str!("../../../SECURITY.md");
        for spec in ALL {
            let unit = match spec.unit {
                Unit::Seconds => " (s)",
                Unit::MiB => " (MiB)",
                Unit::Count => "",
            };
            let cell = format!("| `{}`{unit} |", spec.key);
            let rows: Vec<&str> = security.lines().filter(|l| l.contains(&cell)).collect();
            assert!(!rows.is_empty(), "SECURITY.md has no row with {cell}");
            let default = thousands(spec.default);
            for row in rows {
                let after = row.split(&cell).nth(1).unwrap_or_default();
                let shown = after.split('|').next().unwrap_or_default().trim();
                assert_eq!(
                    shown, default,
                    "SECURITY.md's default for {}: {row}",
                    spec.key
                );
            }
        }
    }

    fn thousands(n: u64) -> String {
        let digits = n.to_string();
        if digits.len() <= 3 {
            return digits;
        }
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    }
}
