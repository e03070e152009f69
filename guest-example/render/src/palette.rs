//! A scene's colours, derived from its words.

use crate::canvas::{Rgb, mix, scale};
use crate::util::Words;

/// Words that make a scene a night scene (dark sky, a moon, stars).
pub(crate) const NIGHT: &[&str] = &[
    "night",
    "midnight",
    "moon",
    "moonlight",
    "stars",
    "star",
    "dark",
    "darkness",
];
/// Words of the evening: a warm horizon under a violet sky, a setting sun.
pub(crate) const DUSK: &[&str] = &["dusk", "sunset", "evening", "twilight", "ink"];
/// Words of the morning: a peach horizon, a rising sun.
pub(crate) const DAWN: &[&str] = &["dawn", "sunrise", "morning", "rise", "rises", "daybreak"];
/// Words of bad weather: grey, desaturated, clouded.
pub(crate) const STORM: &[&str] = &[
    "storm",
    "rain",
    "thunder",
    "lightning",
    "swell",
    "grey",
    "gray",
    "clouds",
    "wind",
    "fog",
    "gale",
    "streaks",
];
/// Words that calm a storm down again.
pub(crate) const CALM: &[&str] = &["calm", "passed", "clear", "still", "quiet"];
/// Words of water: waves instead of hills.
pub(crate) const SEA: &[&str] = &[
    "sea", "ocean", "water", "waves", "wave", "harbour", "harbor", "boat", "ship", "shore",
    "beach", "quay", "crests", "swell", "lake", "river", "bay",
];
/// Words of warm light: gold, fire, lamps.
pub(crate) const FIRE: &[&str] = &[
    "fire", "flame", "flames", "gold", "golden", "lamp", "lantern", "lanterns", "candle", "wick",
    "beam", "ember", "embers", "warm",
];
/// Words of woods and fields: green land, trees.
pub(crate) const FOREST: &[&str] = &[
    "forest", "tree", "trees", "wood", "woods", "green", "garden", "leaves", "grass", "meadow",
    "pine", "field",
];
/// Words of cold: pale land.
pub(crate) const SNOW: &[&str] = &["snow", "ice", "winter", "frost", "cold", "silver"];

/// Five colours of a scene, as 8-bit RGB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Palette {
    /// The sky at the top of the picture.
    pub sky_top: [u8; 3],
    /// The sky at the horizon.
    pub sky_horizon: [u8; 3],
    /// The sun, the moon or the lamp.
    pub light: [u8; 3],
    /// Distant land, hazy.
    pub far: [u8; 3],
    /// The foreground: land or water.
    pub near: [u8; 3],
}

impl Palette {
    /// The five colours, from the top of the sky to the foreground.
    pub fn colours(&self) -> [[u8; 3]; 5] {
        [
            self.sky_top,
            self.sky_horizon,
            self.light,
            self.far,
            self.near,
        ]
    }
}

/// The palette of the scene titled `title` described by `description`: a hue picked by a stable
/// hash of its lowercase words, bent towards night, dusk, dawn, storm, sea, fire, forest or snow
/// colours when such words occur.
pub fn palette(title: &str, description: &str) -> Palette {
    Colours::of(&Words::of(title, description)).to_palette()
}

/// A palette in floating point, as the drawing code uses it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Colours {
    pub sky_top: Rgb,
    pub sky_horizon: Rgb,
    pub light: Rgb,
    pub far: Rgb,
    pub near: Rgb,
}

impl Colours {
    /// The colours of a scene with these words.
    pub fn of(words: &Words) -> Self {
        let mut rng = words.rng(0x09a1_e77e);
        // Two hues picked by the hash: a shift of the sky and the hue of the land, so scenes
        // without any mood word still look different from each other.
        let jitter = rng.range(-28.0, 28.0);
        let land_hue = rng.range(25.0, 150.0);
        let sea_hue = rng.range(188.0, 218.0);
        let sea = words.any(SEA);
        let forest = words.any(FOREST);
        let snow = words.any(SNOW);
        let ground_hue = if forest {
            105.0 + jitter / 2.0
        } else if sea {
            sea_hue
        } else {
            land_hue
        };
        let ground_sat = if snow { 0.12 } else { 0.45 };

        let mut c = if words.any(NIGHT) {
            Self {
                sky_top: hsl(228.0 + jitter / 2.0, 0.55, 0.07),
                sky_horizon: hsl(222.0 + jitter, 0.42, 0.26),
                light: hsl(52.0, 0.35, 0.90),
                far: hsl(228.0, 0.25, 0.16),
                near: hsl(ground_hue, ground_sat * 0.6, 0.10),
            }
        } else if words.any(DUSK) {
            Self {
                sky_top: hsl(252.0 + jitter, 0.38, 0.28),
                sky_horizon: hsl(22.0 + jitter / 3.0, 0.80, 0.62),
                light: hsl(32.0, 0.95, 0.72),
                far: hsl(268.0 + jitter, 0.22, 0.32),
                near: hsl(ground_hue + 20.0, ground_sat * 0.7, 0.18),
            }
        } else if words.any(DAWN) {
            Self {
                sky_top: hsl(212.0 + jitter, 0.45, 0.52),
                sky_horizon: hsl(26.0 + jitter / 3.0, 0.85, 0.78),
                light: hsl(46.0, 1.0, 0.86),
                far: hsl(232.0 + jitter, 0.18, 0.58),
                near: hsl(ground_hue, ground_sat * 0.8, 0.34),
            }
        } else {
            Self {
                sky_top: hsl(208.0 + jitter, 0.58, 0.48),
                sky_horizon: hsl(196.0 + jitter, 0.45, 0.84),
                light: hsl(50.0, 0.95, 0.86),
                far: hsl(ground_hue + 15.0, ground_sat * 0.5, 0.58),
                near: hsl(ground_hue, ground_sat, 0.32),
            }
        };
        if snow {
            c.far = mix(c.far, [0.92, 0.95, 1.0], 0.5);
            c.near = mix(c.near, [0.88, 0.92, 0.97], 0.45);
        }
        if words.any(FIRE) {
            // Gold light warms the horizon too.
            c.light = hsl(40.0, 1.0, 0.66);
            c.sky_horizon = mix(c.sky_horizon, hsl(34.0, 0.9, 0.6), 0.35);
        }
        let storm = storminess(words);
        if storm > 0.0 {
            let grey = |colour: Rgb, darken: f32| {
                let luma = 0.3 * colour[0] + 0.59 * colour[1] + 0.11 * colour[2];
                let slate = [luma * 0.92, luma * 0.97, luma * 1.08];
                scale(mix(colour, slate, 0.65 * storm), 1.0 - darken * storm)
            };
            c.sky_top = grey(c.sky_top, 0.3);
            c.sky_horizon = grey(c.sky_horizon, 0.25);
            c.far = grey(c.far, 0.2);
            c.near = grey(c.near, 0.15);
            c.light = mix(c.light, [0.85, 0.86, 0.88], 0.4 * storm);
        }
        c
    }

    /// Rounds to 8-bit colours.
    fn to_palette(self) -> Palette {
        let byte = |c: Rgb| c.map(|v| (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8);
        Palette {
            sky_top: byte(self.sky_top),
            sky_horizon: byte(self.sky_horizon),
            light: byte(self.light),
            far: byte(self.far),
            near: byte(self.near),
        }
    }
}

/// How stormy the words are, 0 (no storm word) to 1; calm words halve it.
pub(crate) fn storminess(words: &Words) -> f32 {
    let storm = (words.count(STORM) as f32 / 2.0).min(1.0);
    if words.any(CALM) { storm / 2.0 } else { storm }
}

/// A colour from hue (degrees), saturation and lightness (0 to 1).
pub(crate) fn hsl(hue: f32, saturation: f32, lightness: f32) -> Rgb {
    let h = hue.rem_euclid(360.0) / 60.0;
    let c = (1.0 - (2.0 * lightness - 1.0).abs()) * saturation;
    let x = c * (1.0 - (h.rem_euclid(2.0) - 1.0).abs());
    let m = lightness - c / 2.0;
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    [r + m, g + m, b + m]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brightness(colour: [u8; 3]) -> u32 {
        colour.iter().map(|&c| u32::from(c)).sum()
    }

    #[test]
    fn the_palette_depends_only_on_the_words() {
        assert_eq!(
            palette("The Sea", "Waves, at dawn."),
            palette("the sea", "waves at DAWN")
        );
        assert_ne!(
            palette("A field", "Cows graze."),
            palette("A road", "Cars pass.")
        );
    }

    #[test]
    fn night_words_darken_the_sky_and_storm_words_grey_it() {
        let day = palette("A walk", "Along the road.");
        let night = palette("A walk", "Along the road at night.");
        assert!(brightness(night.sky_top) < brightness(day.sky_top) / 2);
        let clear = palette("Sea", "The sea at noon.");
        let stormy = palette("Sea", "The sea at noon, storm and rain.");
        let spread = |c: [u8; 3]| c.iter().max().unwrap_or(&0) - c.iter().min().unwrap_or(&0);
        assert!(spread(stormy.sky_top) < spread(clear.sky_top));
    }

    #[test]
    fn hsl_gives_the_primary_colours() {
        assert_eq!(hsl(0.0, 1.0, 0.5), [1.0, 0.0, 0.0]);
        assert_eq!(hsl(120.0, 1.0, 0.5), [0.0, 1.0, 0.0]);
        assert_eq!(hsl(240.0, 1.0, 0.5), [0.0, 0.0, 1.0]);
        assert_eq!(hsl(-120.0, 1.0, 0.5), [0.0, 0.0, 1.0]);
        assert_eq!(hsl(77.0, 0.0, 1.0), [1.0, 1.0, 1.0]);
    }

    #[test]
    fn a_palette_has_five_colours() {
        assert_eq!(palette("a", "b").colours().len(), 5);
    }
}
