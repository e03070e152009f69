//! How a user-settable limit is declared: once, as a [`LimitSpec`], by the room that enforces
//! it — the runtime for the engine's limits (`runtime::limits`), each capability for its own
//! (`capabilities::artifacts`, `capabilities::db`). Everything else is drawn
//! from those declarations: the `vidpipe stage run` flags and their help, the manifest keys,
//! the defaults, the range checks and their messages; a test holds SECURITY.md's table to them.
//!
//! Adding a limit: declare it beside the code that enforces it, add it to `runtime::limits::ALL`,
//! read it where that room builds its limits from [`Checked`], and give it a row in SECURITY.md.

use std::time::Duration;

/// What a limit's number counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Wall-clock seconds; fractions allowed.
    Seconds,
    /// Mebibytes (2^20 bytes).
    MiB,
    /// A plain count.
    Count,
}

/// One user-settable limit: its flag and manifest key, what it counts, its default and range.
#[derive(Debug)]
pub struct LimitSpec {
    /// The flag (`--key`) and the manifest key of a stage (`key = …`).
    pub key: &'static str,
    /// What the number counts.
    pub unit: Unit,
    /// Its value when unset, in `unit`.
    pub default: u64,
    /// The smallest value accepted (for [`Unit::Seconds`]: anything above 0 is).
    pub min: u64,
    /// The largest value accepted.
    pub max: u64,
    /// What it bounds, in a few words, for `--help`.
    pub help: &'static str,
}

/// A value as a user gave it, before it is checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LimitValue {
    /// A number of seconds.
    Seconds(f64),
    /// A whole number (MiB or a count).
    Whole(u64),
}

impl LimitSpec {
    /// The placeholder of its flag's value in `--help`.
    pub fn value_name(&self) -> &'static str {
        match self.unit {
            Unit::Seconds => "SECS",
            Unit::MiB => "MIB",
            Unit::Count => "N",
        }
    }

    /// Its line in `--help`, with the default.
    pub fn help_line(&self) -> String {
        format!("{} [default: {}]", self.help, self.default)
    }

    /// Checks `value` against the range; the reason names the range and the value.
    pub fn check(&self, value: LimitValue) -> Result<LimitValue, String> {
        if self.unit == Unit::Seconds {
            let t = match value {
                LimitValue::Seconds(t) => t,
                LimitValue::Whole(n) => n as f64,
            };
            return if t.is_finite() && t > 0.0 && t <= self.max as f64 {
                Ok(LimitValue::Seconds(t))
            } else {
                Err(format!(
                    "must be more than 0 and at most {} seconds, not {t}",
                    self.max
                ))
            };
        }
        match value {
            LimitValue::Whole(v) if (self.min..=self.max).contains(&v) => Ok(value),
            LimitValue::Whole(v) => Err(self.out_of_range(v)),
            LimitValue::Seconds(t) => Err(format!("must be a whole number, not {t:?}")),
        }
    }

    /// Why `shown` (any number, as the user wrote it) is refused by a whole-number limit.
    pub fn out_of_range(&self, shown: impl std::fmt::Display) -> String {
        let unit = if self.unit == Unit::MiB { " MiB" } else { "" };
        format!("must be {} to {}{unit}, not {shown}", self.min, self.max)
    }
}

/// Limits as a user gives them — `vidpipe stage run` flags or manifest keys — before they are
/// checked; unset ones keep their declared defaults.
#[derive(Debug, Clone, Default)]
pub struct LimitSettings {
    values: Vec<(&'static LimitSpec, LimitValue)>,
}

impl LimitSettings {
    /// Sets the limit `spec` to `value` (checked by [`LimitSettings::check`]).
    pub fn set(&mut self, spec: &'static LimitSpec, value: LimitValue) {
        self.values.retain(|(s, _)| s.key != spec.key);
        self.values.push((spec, value));
    }

    /// Checks every value set against its declaration; on the first one out of range, its key
    /// and why.
    pub fn check(&self) -> Result<Checked, (&'static str, String)> {
        let mut checked = Checked::default();
        for &(spec, value) in &self.values {
            let value = spec.check(value).map_err(|reason| (spec.key, reason))?;
            checked.values.push((spec.key, value));
        }
        Ok(checked)
    }
}

/// Limits whose values are all in range, read by the rooms that enforce them.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    values: Vec<(&'static str, LimitValue)>,
}

impl Checked {
    fn get(&self, spec: &LimitSpec) -> Option<LimitValue> {
        self.values
            .iter()
            .find(|(key, _)| *key == spec.key)
            .map(|&(_, v)| v)
    }

    /// A [`Unit::Count`] limit (or the number of a [`Unit::MiB`] one).
    pub fn count(&self, spec: &LimitSpec) -> u64 {
        match self.get(spec) {
            Some(LimitValue::Whole(n)) => n,
            _ => spec.default,
        }
    }

    /// A [`Unit::Count`] limit as a `usize`.
    pub fn count_usize(&self, spec: &LimitSpec) -> usize {
        usize::try_from(self.count(spec)).unwrap_or(usize::MAX)
    }

    /// A [`Unit::MiB`] limit in bytes.
    pub fn bytes(&self, spec: &LimitSpec) -> u64 {
        self.count(spec).saturating_mul(1 << 20)
    }

    /// A [`Unit::MiB`] limit in bytes, as a `usize`.
    pub fn bytes_usize(&self, spec: &LimitSpec) -> usize {
        usize::try_from(self.bytes(spec)).unwrap_or(usize::MAX)
    }

    /// A [`Unit::Seconds`] limit.
    pub fn duration(&self, spec: &LimitSpec) -> Duration {
        match self.get(spec) {
            Some(LimitValue::Seconds(t)) => Duration::from_secs_f64(t),
            _ => Duration::from_secs(spec.default),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SECS: LimitSpec = LimitSpec {
        key: "timeout",
        unit: Unit::Seconds,
        default: 300,
        min: 0,
        max: 86_400,
        help: "t",
    };
    static SIZE: LimitSpec = LimitSpec {
        key: "max-memory",
        unit: Unit::MiB,
        default: 512,
        min: 1,
        max: 4096,
        help: "m",
    };

    #[test]
    fn values_out_of_range_are_refused_naming_the_key_the_range_and_the_value() {
        let mut s = LimitSettings::default();
        s.set(&SIZE, LimitValue::Whole(99_999));
        let (key, reason) = s.check().expect_err("out of range");
        assert_eq!(key, "max-memory");
        assert_eq!(reason, "must be 1 to 4096 MiB, not 99999");
        let mut s = LimitSettings::default();
        s.set(&SECS, LimitValue::Seconds(f64::NAN));
        let (key, reason) = s.check().expect_err("not a time");
        assert_eq!(key, "timeout");
        assert!(
            reason.contains("more than 0 and at most 86400 seconds"),
            "{reason}"
        );
        let mut s = LimitSettings::default();
        s.set(&SIZE, LimitValue::Seconds(1.5));
        assert!(s.check().is_err(), "a fraction of a MiB is refused");
    }

    #[test]
    fn unset_limits_read_as_their_declared_defaults_and_set_ones_as_given() {
        let mut s = LimitSettings::default();
        let unset = s.check().expect("nothing set");
        assert_eq!(unset.bytes(&SIZE), 512 << 20);
        assert_eq!(unset.duration(&SECS), Duration::from_secs(300));
        s.set(&SIZE, LimitValue::Whole(3));
        s.set(&SECS, LimitValue::Whole(2));
        s.set(&SIZE, LimitValue::Whole(4));
        let set = s.check().expect("in range");
        assert_eq!(set.bytes(&SIZE), 4 << 20, "the last value set wins");
        assert_eq!(set.duration(&SECS), Duration::from_secs(2));
    }
}
