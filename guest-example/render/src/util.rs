//! Small deterministic helpers: word hashing, a seeded generator and float functions that give
//! the same bits on every platform.

use std::f32::consts::{FRAC_PI_2, PI, TAU};

/// The lowercase alphanumeric words of a scene's title and description, and their hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Words {
    /// The words, in order, lowercase.
    pub list: Vec<String>,
    /// FNV-1a of the words joined by single spaces, so punctuation, case and spacing do not
    /// change a scene's look.
    pub hash: u64,
}

impl Words {
    /// Splits `title` and `description` into lowercase words.
    pub fn of(title: &str, description: &str) -> Self {
        let list: Vec<String> = title
            .split(|c: char| !c.is_alphanumeric())
            .chain(description.split(|c: char| !c.is_alphanumeric()))
            .filter(|word| !word.is_empty())
            .map(str::to_lowercase)
            .collect();
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        for (i, word) in list.iter().enumerate() {
            if i > 0 {
                hash = fnv_step(hash, b' ');
            }
            for &b in word.as_bytes() {
                hash = fnv_step(hash, b);
            }
        }
        Self { list, hash }
    }

    /// How many of the words are in `vocabulary`.
    pub fn count(&self, vocabulary: &[&str]) -> usize {
        self.list
            .iter()
            .filter(|word| vocabulary.contains(&word.as_str()))
            .count()
    }

    /// Whether any word is in `vocabulary`.
    pub fn any(&self, vocabulary: &[&str]) -> bool {
        self.count(vocabulary) > 0
    }

    /// A generator seeded by the words and `salt`, so each element of a picture draws its own
    /// sequence and adding an element does not move the others.
    pub fn rng(&self, salt: u64) -> Rng {
        Rng(self.hash ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }
}

fn fnv_step(hash: u64, byte: u8) -> u64 {
    (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
}

/// SplitMix64: a tiny, well-mixed sequence generator. Seeded from the words, it is not
/// randomness but a reproducible way of spreading shapes around.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f32 {
        // 24 bits is exactly what an f32 mantissa holds, so the division is exact.
        (self.next_u64() >> 40) as f32 / (1u32 << 24) as f32
    }

    /// A number in `[low, high)`.
    pub fn range(&mut self, low: f32, high: f32) -> f32 {
        low + (high - low) * self.unit()
    }

    /// A whole number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % u64::from(n)) as u32
    }
}

/// Sine, from a polynomial rather than the platform's libm, whose last bits differ between
/// targets (glibc natively, Rust's libm port in wasm). Accurate to about 1e-6 on any input.
pub(crate) fn sin(x: f32) -> f32 {
    if !x.is_finite() {
        return 0.0;
    }
    let mut x = x - TAU * (x / TAU).round();
    if x > FRAC_PI_2 {
        x = PI - x;
    } else if x < -FRAC_PI_2 {
        x = -PI - x;
    }
    let x2 = x * x;
    x * (1.0 + x2 * (-1.0 / 6.0 + x2 * (1.0 / 120.0 + x2 * (-1.0 / 5040.0 + x2 / 362_880.0))))
}

/// Cosine, through [`sin`].
pub(crate) fn cos(x: f32) -> f32 {
    sin(x + FRAC_PI_2)
}

/// The smaller of `a` and `b`, or the number if one is NaN, as `f32::min` (the sign of a zero
/// result may differ, which no caller can see: every result is scaled, clamped or added to).
/// Compiled to Wasm, `f32::min` is a call to libm's `fminf` (the `f32.min` instruction
/// propagates NaN instead), which was a fifth of the keyframes stage; there this is a compare
/// and select. Natively `f32::min` is a few inline instructions and stays.
pub(crate) fn fmin(a: f32, b: f32) -> f32 {
    if cfg!(target_family = "wasm") {
        select_min(a, b)
    } else {
        a.min(b)
    }
}

/// The larger of `a` and `b`, or the number if one is NaN, as `f32::max` (see [`fmin`]).
pub(crate) fn fmax(a: f32, b: f32) -> f32 {
    if cfg!(target_family = "wasm") {
        select_max(a, b)
    } else {
        a.max(b)
    }
}

/// `f32::min` as a compare and select.
fn select_min(a: f32, b: f32) -> f32 {
    if b < a || a.is_nan() { b } else { a }
}

/// `f32::max` as a compare and select.
fn select_max(a: f32, b: f32) -> f32 {
    if b > a || a.is_nan() { b } else { a }
}

/// Linear interpolation from `a` (at `t = 0`) to `b` (at `t = 1`).
pub(crate) fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

/// Hermite smoothstep of `t` clamped to `[0, 1]`: eases in and out.
pub(crate) fn smoothstep(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_wasm_min_and_max_agree_with_f32_min_and_max_on_numbers_and_nan() {
        let values = [
            f32::NAN,
            f32::NEG_INFINITY,
            -1.5,
            -0.0,
            0.0,
            0.25,
            1.0,
            7.0,
            f32::INFINITY,
        ];
        for a in values {
            for b in values {
                let same = |x: f32, y: f32| x == y || (x.is_nan() && y.is_nan());
                // `==` takes -0.0 and 0.0 as equal: the sign of a zero may differ.
                assert!(same(select_min(a, b), a.min(b)), "min({a}, {b})");
                assert!(same(select_max(a, b), a.max(b)), "max({a}, {b})");
            }
        }
    }

    use super::*;

    #[test]
    fn the_portable_sine_matches_the_platform_sine_closely() {
        let mut x = -20.0f32;
        while x < 20.0 {
            assert!((sin(x) - x.sin()).abs() < 2e-5, "sin({x})");
            assert!((cos(x) - x.cos()).abs() < 2e-5, "cos({x})");
            x += 0.013;
        }
        assert_eq!(sin(f32::NAN), 0.0);
    }

    #[test]
    fn words_ignore_case_and_punctuation_but_not_order() {
        let a = Words::of("Night Storm!", "The sea, at night.");
        let b = Words::of("night storm", "the   SEA at night");
        assert_eq!(a, b);
        assert_eq!(a.list, ["night", "storm", "the", "sea", "at", "night"]);
        assert_eq!(a.count(&["night", "sea"]), 3);
        assert_ne!(a.hash, Words::of("storm night", "the sea at night").hash);
    }

    #[test]
    fn the_generator_is_reproducible_and_stays_in_range() {
        let words = Words::of("a", "b");
        let (mut r1, mut r2) = (words.rng(1), words.rng(1));
        for _ in 0..1000 {
            let u = r1.unit();
            assert_eq!(u, r2.unit());
            assert!((0.0..1.0).contains(&u));
            assert!(r1.below(7) < 7 && r2.below(7) < 7);
        }
        assert_ne!(words.rng(1).next_u64(), words.rng(2).next_u64());
        assert_eq!(words.rng(3).below(0), 0);
    }
}
