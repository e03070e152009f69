//! Keyframes: a procedural landscape drawn from a scene's words.
//!
//! The words pick a time of day (night, dusk, dawn or day), the weather, land or sea, and which
//! things stand in the picture (a lighthouse, houses, trees, a boat, a pier, lanterns); a hash
//! of the words places and sizes them. The start and the end keyframe of a scene share all of
//! that and differ only in what moves during the scene: the sun rises or sets, the camera
//! drifts a little sideways (near things more than far ones), waves, clouds, rain and boats
//! move, a lighthouse beam sweeps, and the light brightens or fades. Movements stay small
//! next to the things that move, so that a cross-fade between the keyframes reads as motion.

use std::f32::consts::PI;

use crate::canvas::{Canvas, mix, scale};
use crate::palette::{CALM, Colours, DAWN, DUSK, FIRE, FOREST, NIGHT, SEA, storminess};
use crate::text::{draw_band, draw_title};
use crate::util::{Words, lerp, sin};
use crate::{Image, RenderError};

mod land;
mod sky;
mod things;

/// Which end of a scene a keyframe shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The first frame of the scene.
    Start,
    /// The last frame of the scene.
    End,
}

/// Words that put a lighthouse or tower in the picture.
const TOWER: &[&str] = &[
    "lighthouse",
    "tower",
    "castle",
    "spire",
    "beacon",
    "keeper",
    "steeple",
];
/// Words that light a tower's lamp and send out its beam.
const BEAM: &[&str] = &["beam", "lamp", "lighthouse", "beacon", "searchlight"];
/// Words that put houses in the picture.
const VILLAGE: &[&str] = &[
    "village",
    "villagers",
    "town",
    "city",
    "street",
    "houses",
    "house",
    "harbour",
    "harbor",
    "quay",
    "cottage",
    "home",
];
/// Words that put a boat on the water.
const BOAT: &[&str] = &[
    "boat",
    "ship",
    "fishing",
    "sail",
    "sailing",
    "fishermen",
    "crew",
    "rowing",
    "ferry",
];
/// Words that make it rain.
const RAIN: &[&str] = &["rain", "storm", "downpour", "drizzle", "streaks", "shower"];
/// Words that hang lanterns along the shore.
const LANTERNS: &[&str] = &[
    "lantern", "lanterns", "lamps", "lights", "candles", "torches",
];

/// The time of day a scene's words suggest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Time {
    Night,
    Dusk,
    Dawn,
    Day,
}

/// Renders the keyframe of a scene: its landscape with the title as a caption near the bottom.
///
/// `width` and `height` must be 1 to [`MAX_DIMENSION`](crate::MAX_DIMENSION). The result
/// depends only on the arguments.
pub fn keyframe(
    title: &str,
    description: &str,
    position: Position,
    width: u32,
    height: u32,
) -> Result<Image, RenderError> {
    let mut canvas = paint(title, description, position, width, height)?;
    if !title.trim().is_empty() {
        draw_band(&mut canvas);
        draw_title(&mut canvas, title)?;
    }
    Ok(canvas.to_image())
}

/// Renders the landscape of a keyframe without its caption.
pub fn scenery(
    title: &str,
    description: &str,
    position: Position,
    width: u32,
    height: u32,
) -> Result<Image, RenderError> {
    Ok(paint(title, description, position, width, height)?.to_image())
}

fn paint(
    title: &str,
    description: &str,
    position: Position,
    width: u32,
    height: u32,
) -> Result<Canvas, RenderError> {
    crate::byte_len(width, height)?;
    let words = Words::of(title, description);
    let time = if words.any(NIGHT) {
        Time::Night
    } else if words.any(DUSK) {
        Time::Dusk
    } else if words.any(DAWN) {
        Time::Dawn
    } else {
        Time::Day
    };
    let (w, h) = (width as f32, height as f32);
    let horizon = h * words.rng(1).range(0.56, 0.66);
    let mut painter = Painter {
        canvas: Canvas::new(width as usize, height as usize),
        colours: Colours::of(&words),
        time,
        storm: storminess(&words),
        sea: words.any(SEA),
        p: match position {
            Position::Start => 0.0,
            Position::End => 1.0,
        },
        w,
        h,
        horizon,
        words,
    };
    painter.paint();
    Ok(painter.canvas)
}

/// Everything a keyframe is drawn from.
struct Painter {
    canvas: Canvas,
    words: Words,
    colours: Colours,
    time: Time,
    /// 0 (clear) to 1 (a real storm).
    storm: f32,
    /// Water instead of land in the foreground.
    sea: bool,
    /// 0 for the start keyframe, 1 for the end one: how far through the scene.
    p: f32,
    w: f32,
    h: f32,
    /// The row of the horizon.
    horizon: f32,
}

impl Painter {
    fn paint(&mut self) {
        let c = self.colours;
        self.canvas.sky(self.horizon, c.sky_top, c.sky_horizon);
        let (sx, sy, sr) = self.sun_position();
        self.sky_light(sx, sy, sr);
        if self.time == Time::Night {
            self.stars();
        }
        self.sun(sx, sy, sr);
        self.clouds();
        self.far_land();
        // Where the tower and the houses stand: on opposite sides, so neither hides the other.
        let side_left = self.words.rng(2).below(2) == 0;
        let tower = self.words.any(TOWER);
        if self.sea {
            self.water(sx, sr);
            if tower {
                self.headland(side_left);
            }
        } else {
            self.land();
        }
        let village = self.words.any(VILLAGE);
        if village {
            self.houses(!side_left);
        }
        if self.words.any(FOREST) {
            self.trees();
        } else if !village && !tower {
            if self.sea {
                // A boat moored at a pier would hide it; a boat is shape enough.
                if !self.words.any(BOAT) {
                    self.pier(!side_left);
                }
            } else {
                self.buildings();
            }
        }
        if tower {
            self.tower(side_left);
        }
        if self.sea && self.words.any(BOAT) {
            self.boat();
        }
        if self.words.any(LANTERNS) || (self.words.any(FIRE) && self.time != Time::Day) {
            self.lanterns(!side_left);
        }
        if self.words.any(RAIN) && !self.words.any(CALM) {
            self.rain();
        }
        self.grade();
    }

    /// A horizontal camera drift: things at `depth` 1 (the foreground) move most.
    ///
    /// Like every movement between the two keyframes it is kept to a fraction of the size of
    /// what moves: the clips stage cross-fades from one keyframe to the other, and a shape that
    /// moved further than its own size would show twice instead of sliding.
    fn drift(&self, depth: f32) -> f32 {
        -self.p * self.w * 0.012 * depth
    }

    /// A smooth ridge line between `low` and `high` (fractions of the height above the
    /// horizon), from three sines whose frequencies and phases come from `salt`.
    fn ridge(&self, salt: u64) -> impl Fn(f32) -> f32 + use<> {
        let mut rng = self.words.rng(salt);
        let f = [
            rng.range(1.5, 3.0),
            rng.range(4.0, 7.0),
            rng.range(9.0, 15.0),
        ];
        let phase = [
            rng.range(0.0, 2.0 * PI),
            rng.range(0.0, 2.0 * PI),
            rng.range(0.0, 2.0 * PI),
        ];
        move |u: f32| {
            let s = 0.55 * sin(f[0] * u + phase[0])
                + 0.3 * sin(f[1] * u + phase[1])
                + 0.15 * sin(f[2] * u + phase[2]);
            0.5 + 0.5 * s
        }
    }

    fn sun_position(&self) -> (f32, f32, f32) {
        let mut rng = self.words.rng(3);
        let (w, h, p) = (self.w, self.h, self.p);
        let x = w * rng.range(0.18, 0.82);
        let high = h * rng.range(0.10, 0.26);
        let r = h * rng.range(0.045, 0.075);
        let direction = if rng.below(2) == 0 { -1.0 } else { 1.0 };
        match self.time {
            // The sun rises during a dawn scene and sets during a dusk one.
            Time::Dawn => (x, self.horizon - h * lerp(0.04, 0.075, p), r),
            Time::Dusk => (x, self.horizon - h * lerp(0.075, 0.04, p), r),
            Time::Night => (x + direction * p * w * 0.008, high, r * 0.8),
            Time::Day => (x + direction * p * w * 0.012, high, r),
        }
    }

    /// The light of the moment: brightening through a dawn, fading through a dusk, warmer or
    /// cooler, and a soft vignette.
    fn grade(&mut self) {
        let p = self.p;
        let (level, tint, amount) = match self.time {
            Time::Dawn => (lerp(0.8, 1.04, p), [1.0, 0.55, 0.5], 0.1 * (1.0 - p)),
            Time::Dusk => (lerp(1.03, 0.74, p), [1.0, 0.45, 0.2], 0.12 * p),
            Time::Night => (lerp(0.94, 1.0, p), [0.3, 0.4, 1.0], 0.05),
            Time::Day => (lerp(1.0, 0.93, p), [1.0, 0.85, 0.6], 0.06 * p),
        };
        let (w, h) = (self.w, self.h);
        self.canvas.map(|x, y, colour| {
            let dx = x / w - 0.5;
            let dy = y / h - 0.5;
            let vignette = 1.0 - 0.55 * (dx * dx + dy * dy);
            let graded = mix(scale(colour, level), scale(tint, level), amount);
            scale(graded, vignette)
        });
    }
}

#[cfg(test)]
mod tests;
