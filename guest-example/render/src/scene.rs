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

use crate::canvas::{Canvas, mix, scale, sky_colour};
use crate::palette::{CALM, Colours, DAWN, DUSK, FIRE, FOREST, NIGHT, SEA, hsl, storminess};
use crate::text::{draw_band, draw_title};
use crate::util::{Words, cos, fmax, fmin, lerp, sin};
use crate::{Image, RenderError};

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

    /// The glow of the sun or moon in the sky, wider along the horizon at dawn and dusk.
    fn sky_light(&mut self, sx: f32, sy: f32, sr: f32) {
        let c = self.colours;
        let clear = 1.0 - 0.6 * self.storm;
        let strength = if self.time == Time::Night { 0.25 } else { 0.5 };
        self.canvas
            .glow(sx, sy, sr * 7.0, c.light, strength * clear);
        if matches!(self.time, Time::Dawn | Time::Dusk) {
            self.canvas
                .glow(sx, self.horizon, self.w * 0.55, c.light, 0.3 * clear);
        }
    }

    fn stars(&mut self) {
        let mut rng = self.words.rng(4);
        let count = 50 + rng.below(40);
        let size = self.h / 360.0;
        for _ in 0..count {
            let x = self.w * rng.unit();
            let y = self.horizon * 0.9 * rng.unit();
            let r = size * rng.range(0.45, 1.1);
            let twinkle = lerp(1.0, rng.range(0.4, 1.0), self.p);
            let alpha = rng.range(0.35, 1.0) * twinkle * (1.0 - self.storm);
            self.canvas.disc(x, y, r, [1.0, 1.0, 0.94], alpha);
        }
    }

    fn sun(&mut self, sx: f32, sy: f32, sr: f32) {
        let c = self.colours;
        let alpha = 1.0 - 0.5 * self.storm;
        self.canvas.disc(sx, sy, sr, c.light, alpha);
        if self.time == Time::Night {
            // A crescent: the sky's own colour covers most of the disc.
            let (ox, oy) = (sx + sr * 0.42, sy - sr * 0.2);
            let shadow = sky_colour(oy, self.horizon, c.sky_top, c.sky_horizon);
            self.canvas.disc(ox, oy, sr * 0.92, shadow, 0.94 * alpha);
        } else {
            // A hot white core fading into the disc, rather than a second, visible ring.
            self.canvas.glow(sx, sy, sr, [1.0; 3], 0.55 * alpha);
        }
    }

    fn clouds(&mut self) {
        let c = self.colours;
        let mut rng = self.words.rng(5);
        let count = if self.storm > 0.0 {
            3 + (self.storm * 5.0).round() as u32
        } else {
            rng.below(3)
        };
        let colour = if self.storm > 0.0 {
            mix(c.sky_top, [0.2, 0.22, 0.26], 0.45)
        } else if self.time == Time::Night {
            mix(c.sky_top, c.sky_horizon, 0.7)
        } else {
            mix(c.sky_horizon, [1.0; 3], 0.6)
        };
        let highlight = mix(colour, c.light, 0.35);
        for _ in 0..count {
            let speed = rng.range(0.01, 0.03);
            let cx = self.w * (rng.range(-0.05, 1.05) - speed * self.p);
            let cy = self.horizon * rng.range(0.12, 0.7);
            let size = self.w * rng.range(0.06, 0.13);
            for _ in 0..5 {
                let ox = cx + rng.range(-1.0, 1.0) * size;
                let oy = cy + rng.range(-0.2, 0.2) * size;
                let rx = size * rng.range(0.5, 0.9);
                let ry = rx * rng.range(0.3, 0.45);
                self.canvas
                    .soft_ellipse(ox, oy - ry * 0.25, rx * 0.8, ry * 0.8, highlight, 0.35);
                self.canvas.soft_ellipse(ox, oy, rx, ry, colour, 0.7);
            }
        }
    }

    /// Distant hills, hazy with the sky's colour; on the sea, a few low islands.
    fn far_land(&mut self) {
        let c = self.colours;
        let ridge = self.ridge(6);
        let (w, h, horizon) = (self.w, self.h, self.horizon);
        let shift = self.drift(0.25);
        let sea = self.sea;
        let top = move |x: f32| {
            let r = ridge((x - shift) / w);
            if sea {
                // Only the ridge's highest stretches rise out of the water.
                horizon - h * 0.09 * fmax(r - 0.55, 0.0)
            } else {
                horizon - h * (0.03 + 0.11 * r)
            }
        };
        let haze = mix(c.far, c.sky_horizon, 0.3);
        self.canvas.fill_below(
            top,
            |depth| mix(haze, c.far, fmin(depth / h * 8.0, 1.0)),
            1.0,
        );
    }

    /// Rolling foreground hills.
    fn land(&mut self) {
        let c = self.colours;
        let ridge = self.ridge(7);
        let (w, h, horizon) = (self.w, self.h, self.horizon);
        let shift = self.drift(1.0);
        let top = move |x: f32| horizon + h * (0.06 - 0.09 * ridge((x - shift) / w));
        let lit = mix(c.near, c.light, 0.12);
        let dark = scale(c.near, 0.55);
        self.canvas.fill_below(
            top,
            |depth| mix(lit, dark, fmin(depth / (h * 0.4), 1.0)),
            1.0,
        );
    }

    /// The row of the foreground ground or water surface at `x`.
    fn ground_at(&self, x: f32) -> f32 {
        if self.sea {
            return self.horizon;
        }
        let ridge = self.ridge(7);
        self.horizon + self.h * (0.06 - 0.09 * ridge((x - self.drift(1.0)) / self.w))
    }

    /// The sea: a gradient from the sky's colour to deep water, the sun's glitter, and bands
    /// of waves that move between the start and the end of the scene.
    fn water(&mut self, sx: f32, sr: f32) {
        let c = self.colours;
        let (h, horizon, p) = (self.h, self.horizon, self.p);
        let depth_range = (h - horizon).max(1.0);
        let top = mix(c.sky_horizon, c.near, 0.55);
        let deep = scale(c.near, 0.7);
        self.canvas.fill_below(
            |_| horizon,
            |depth| mix(top, deep, fmin(depth / depth_range, 1.0)),
            1.0,
        );

        // The glitter under the sun: a column widening towards the viewer, in broken stripes.
        let glitter = if self.time == Time::Night { 0.35 } else { 0.55 } * (1.0 - 0.5 * self.storm);
        let light = c.light;
        self.canvas.map(|x, y, colour| {
            if y < horizon {
                return colour;
            }
            let near = (y - horizon) / depth_range;
            let half = sr * (0.8 + 3.0 * near);
            let across = ((x - sx) / half).abs();
            if across >= 1.0 {
                return colour;
            }
            let stripes = 0.5 + 0.5 * sin(y * 0.7 + x * 0.05 + p * 4.0);
            mix(colour, light, glitter * (1.0 - across) * stripes * stripes)
        });

        let mut rng = self.words.rng(8);
        let bands = 7 + (self.storm * 3.0).round() as u32;
        let roughness = 1.0 + 1.2 * self.storm;
        for k in 0..bands {
            let f = (k + 1) as f32 / (bands + 1) as f32;
            // Bands crowd together in the distance, as they would in perspective.
            let base = horizon + depth_range * (0.15 * f + 0.85 * f * f);
            let amp = h * (0.003 + 0.014 * f) * roughness;
            let freq = 2.0 * PI * rng.range(5.0, 9.0) * (1.6 - f) / self.w;
            let phase = rng.range(0.0, 2.0 * PI) + p * rng.range(0.7, 1.2);
            let phase2 = rng.range(0.0, 2.0 * PI) - p * 0.5;
            // Rows grow downwards: subtracting puts the sine's peaks, the crests, on top.
            let wave = move |x: f32| {
                base - amp * (sin(freq * x + phase) + 0.4 * sin(2.3 * freq * x + phase2))
            };
            let shade = scale(mix(top, deep, f), 0.88);
            self.canvas.fill_below(wave, |_| shade, 0.4);
            // Foam on the crests, more of it in a storm.
            let foam = mix(c.sky_horizon, [1.0; 3], 0.6);
            let foam_alpha = 0.2 + 0.4 * self.storm;
            for x in 0..self.canvas.w {
                let fx = x as f32 + 0.5;
                let crest = sin(freq * fx + phase);
                if crest > 0.55 {
                    let y = wave(fx) - 0.5;
                    let strength = (crest - 0.55) / 0.45;
                    let thickness = (amp * 0.5).max(1.0);
                    self.canvas.rect(
                        fx - 0.5,
                        y,
                        fx + 0.5,
                        y + thickness,
                        foam,
                        foam_alpha * strength,
                    );
                }
            }
        }
    }

    /// A dark cliff rising from the sea on one side, for the lighthouse to stand on.
    fn headland(&mut self, left: bool) {
        let c = self.colours;
        let (w, h, horizon) = (self.w, self.h, self.horizon);
        let shift = self.drift(1.0);
        let mirror = |x: f32| if left { x + shift } else { w - x + shift };
        let rock = scale(mix(c.near, c.far, 0.3), 0.5);
        let top = horizon - h * 0.075;
        // Each edge falls more steeply than the one before, so the outline stays convex.
        let outline = [
            (-2.0, top),
            (w * 0.13, top - h * 0.01),
            (w * 0.19, top + h * 0.005),
            (w * 0.235, horizon + h * 0.02),
            (w * 0.27, horizon + h * 0.12),
            (w * 0.29, h + 2.0),
            (-2.0, h + 2.0),
        ];
        let points: Vec<(f32, f32)> = outline.iter().map(|&(x, y)| (mirror(x), y)).collect();
        self.canvas.convex(&points, rock, 1.0);
        // The sea-facing flank catches a little light.
        self.canvas.convex(
            &[
                points[1],
                points[2],
                points[3],
                points[4],
                points[5],
                (mirror(w * 0.18), h + 2.0),
            ],
            mix(rock, c.light, 0.12),
            0.5,
        );
        // A lit rim along the top edge.
        for edge in points[..4].windows(2) {
            self.canvas.line(
                edge[0],
                edge[1],
                (h / 300.0).max(1.0),
                mix(rock, c.light, 0.4),
                0.6,
            );
        }
    }

    /// A striped lighthouse with a lantern room; its lamp is lit and its beam sweeps across the
    /// sky when the words speak of a beam or lamp, or when it is dark or stormy.
    fn tower(&mut self, left: bool) {
        let c = self.colours;
        let (w, h) = (self.w, self.h);
        let mut rng = self.words.rng(9);
        let (x, base) = if self.sea {
            let x = if left { w * 0.08 } else { w * 0.92 };
            (x + self.drift(1.0), self.horizon - h * 0.078)
        } else {
            let x = w * rng.range(0.15, 0.85);
            (x, self.ground_at(x) + h * 0.01)
        };
        let height = h * rng.range(0.26, 0.34);
        let half_bottom = h * 0.03;
        let half_top = h * 0.021;
        let shade = match self.time {
            Time::Night => 0.35,
            Time::Dusk => 0.62,
            Time::Dawn => 0.85,
            Time::Day => 1.0,
        } * (1.0 - 0.25 * self.storm);
        let white = scale(mix([0.96, 0.95, 0.92], c.light, 0.15), shade);
        let red = scale(hsl(2.0, 0.62, 0.45), shade);
        let bands = 5;
        for i in 0..bands {
            let (t0, t1) = (i as f32 / bands as f32, (i + 1) as f32 / bands as f32);
            let (y0, y1) = (base - height * t0, base - height * t1);
            let (h0, h1) = (
                lerp(half_bottom, half_top, t0),
                lerp(half_bottom, half_top, t1),
            );
            let colour = if i % 2 == 0 { white } else { red };
            self.canvas.convex(
                &[(x - h0, y0), (x + h0, y0), (x + h1, y1), (x - h1, y1)],
                colour,
                1.0,
            );
        }
        // Shading on one side gives the tower some roundness.
        self.canvas.convex(
            &[
                (x + half_bottom * 0.25, base),
                (x + half_bottom, base),
                (x + half_top, base - height),
                (x + half_top * 0.25, base - height),
            ],
            [0.0; 3],
            0.22,
        );
        let top = base - height;
        let iron = scale([0.12, 0.12, 0.14], shade.max(0.6));
        let gallery = h * 0.012;
        self.canvas.rect(
            x - half_top * 1.5,
            top - gallery,
            x + half_top * 1.5,
            top,
            iron,
            1.0,
        );
        let room = h * 0.035;
        let lit = self.words.any(BEAM) || self.time != Time::Day || self.storm > 0.0;
        let lamp = if lit {
            mix(c.light, [1.0; 3], 0.3)
        } else {
            scale(white, 0.8)
        };
        self.canvas.rect(
            x - half_top * 0.85,
            top - gallery - room,
            x + half_top * 0.85,
            top - gallery,
            lamp,
            1.0,
        );
        let roof = top - gallery - room;
        self.canvas.convex(
            &[
                (x - half_top * 1.15, roof),
                (x + half_top * 1.15, roof),
                (x, roof - h * 0.03),
            ],
            iron,
            1.0,
        );
        if lit {
            let (lx, ly) = (x, top - gallery - room * 0.5);
            // Away from the cliff, over the water, sweeping during the scene.
            let out = if left { 0.0 } else { PI };
            let sweep = if left { 1.0 } else { -1.0 };
            let angle = out + sweep * (rng.range(-0.05, 0.2) + self.p * 0.12) - sweep * 0.1;
            let length = w * 1.2;
            for (spread, alpha) in [(0.07, 0.16), (0.03, 0.22)] {
                let a = (
                    lx + length * cos(angle - spread),
                    ly + length * sin(angle - spread),
                );
                let b = (
                    lx + length * cos(angle + spread),
                    ly + length * sin(angle + spread),
                );
                self.canvas.convex(&[(lx, ly), a, b], c.light, alpha);
            }
            self.canvas.glow(lx, ly, h * 0.12, c.light, 0.8);
        }
    }

    /// A row of houses with pitched roofs; their windows glow after dark.
    fn houses(&mut self, left: bool) {
        let c = self.colours;
        let (w, h) = (self.w, self.h);
        let mut rng = self.words.rng(10);
        let count = 3 + rng.below(4);
        let lit = self.time != Time::Day || self.words.any(FIRE);
        let start = if left {
            w * rng.range(0.02, 0.1)
        } else {
            w * rng.range(0.5, 0.6)
        };
        let shift = self.drift(if self.sea { 0.35 } else { 1.0 });
        let mut x = start + shift;
        for _ in 0..count {
            let size = h * if self.sea {
                rng.range(0.035, 0.055)
            } else {
                rng.range(0.06, 0.09)
            };
            let wide = size * rng.range(0.9, 1.5);
            let tall = size * rng.range(0.7, 1.1);
            let ground = if self.sea {
                self.horizon + h * 0.004
            } else {
                self.ground_at(x + wide / 2.0) + h * 0.02
            };
            let wall = scale(mix(c.far, c.near, 0.5), rng.range(0.55, 0.85));
            let roof = scale(hsl(rng.range(0.0, 30.0), 0.35, 0.3), 0.8);
            self.canvas
                .rect(x, ground - tall, x + wide, ground, wall, 1.0);
            self.canvas.convex(
                &[
                    (x - size * 0.1, ground - tall),
                    (x + wide + size * 0.1, ground - tall),
                    (x + wide / 2.0, ground - tall - size * 0.45),
                ],
                roof,
                1.0,
            );
            let window = if lit {
                c.light
            } else {
                scale(c.sky_horizon, 0.7)
            };
            let pane = size * 0.16;
            for i in 0..2 {
                let wx = x + wide * (0.28 + 0.44 * i as f32) - pane / 2.0;
                let wy = ground - tall * 0.62;
                self.canvas
                    .rect(wx, wy, wx + pane, wy + pane * 1.3, window, 0.95);
                if lit {
                    self.canvas
                        .glow(wx + pane / 2.0, wy + pane, size * 0.6, c.light, 0.25);
                }
            }
            x += wide + size * rng.range(0.15, 0.5);
        }
    }

    /// Conifers along the hills, larger the nearer they stand.
    fn trees(&mut self) {
        let c = self.colours;
        let (w, h) = (self.w, self.h);
        let mut rng = self.words.rng(11);
        let count = 6 + rng.below(10);
        for _ in 0..count {
            let x = w * rng.range(-0.02, 1.02);
            let near = rng.unit();
            let ground = if self.sea {
                self.horizon
            } else {
                self.ground_at(x) + h * 0.08 * near
            };
            let size = h * (0.07 + 0.1 * near);
            let green = scale(
                mix(c.near, hsl(130.0, 0.35, 0.2), 0.5),
                rng.range(0.5, 0.85),
            );
            self.canvas.rect(
                x - size * 0.05,
                ground - size * 0.25,
                x + size * 0.05,
                ground + size * 0.02,
                scale(hsl(25.0, 0.4, 0.2), 0.8),
                1.0,
            );
            for tier in 0..3 {
                let t = tier as f32;
                let bottom = ground - size * (0.15 + 0.25 * t);
                let half = size * (0.3 - 0.07 * t);
                self.canvas.convex(
                    &[
                        (x - half, bottom),
                        (x + half, bottom),
                        (x, bottom - size * 0.45),
                    ],
                    green,
                    1.0,
                );
            }
        }
    }

    /// A few plain blocks on the land: barns, towers, standing stones.
    fn buildings(&mut self) {
        let c = self.colours;
        let h = self.h;
        let mut rng = self.words.rng(12);
        let count = 1 + rng.below(3);
        for _ in 0..count {
            let x = self.w * rng.range(0.08, 0.85);
            let wide = h * rng.range(0.05, 0.14);
            let tall = h * rng.range(0.06, 0.2);
            let ground = self.ground_at(x + wide / 2.0) + h * 0.03;
            let colour = scale(mix(c.near, c.far, rng.range(0.2, 0.6)), rng.range(0.5, 0.8));
            self.canvas
                .rect(x, ground - tall, x + wide, ground, colour, 1.0);
            // The sunlit side.
            self.canvas.rect(
                x,
                ground - tall,
                x + wide * 0.3,
                ground,
                mix(colour, c.light, 0.25),
                0.6,
            );
        }
    }

    /// A wooden pier running out into the water on posts.
    fn pier(&mut self, left: bool) {
        let (w, h) = (self.w, self.h);
        let mut rng = self.words.rng(13);
        let length = w * rng.range(0.25, 0.45);
        let y = self.horizon + (h - self.horizon) * rng.range(0.25, 0.45);
        let shift = self.drift(0.8);
        let (x0, x1) = if left {
            (-2.0 + shift, length + shift)
        } else {
            (w - length + shift, w + 2.0 + shift)
        };
        let wood = scale(hsl(28.0, 0.35, 0.28), 0.9);
        let posts = 3 + rng.below(4);
        for i in 0..posts {
            let px = lerp(x0, x1, (i as f32 + 0.5) / posts as f32);
            self.canvas.rect(
                px - h * 0.006,
                y,
                px + h * 0.006,
                y + h * 0.07,
                scale(wood, 0.7),
                1.0,
            );
        }
        self.canvas.rect(x0, y - h * 0.012, x1, y, wood, 1.0);
    }

    /// A small boat riding the waves, making way and rocking (more in a storm) during the scene.
    fn boat(&mut self) {
        let c = self.colours;
        let (w, h) = (self.w, self.h);
        let mut rng = self.words.rng(14);
        let bow = if rng.below(2) == 0 { -1.0 } else { 1.0 };
        let depth = rng.range(0.2, 0.45);
        let x = w * rng.range(0.3, 0.7) + bow * self.p * w * 0.02;
        let y = self.horizon + (h - self.horizon) * depth + self.p * h * 0.006 * (1.0 + self.storm);
        let s = h * 0.06 * (1.0 + depth);
        let roll = (0.03 + 0.06 * self.storm) * lerp(-1.0, 1.0, self.p) * rng.range(0.6, 1.0);
        let (rc, rs) = (cos(roll), sin(roll));
        // Boat coordinates (in boat lengths, bow towards +x) to the picture, rolled.
        let at = |bx: f32, by: f32| {
            let (px, py) = (bx * s * bow, by * s);
            (x + px * rc - py * rs, y + px * rs + py * rc)
        };
        let shade = if self.time == Time::Night { 0.45 } else { 1.0 };
        let hull = scale(hsl(8.0, 0.45, 0.3), shade);
        let hull_points = [
            at(-1.0, -0.28),
            at(1.1, -0.32),
            at(0.75, 0.12),
            at(-0.8, 0.12),
        ];
        self.canvas.convex(&hull_points, hull, 1.0);
        let cabin = scale([0.9, 0.88, 0.82], shade);
        self.canvas.convex(
            &[
                at(-0.3, -0.65),
                at(0.15, -0.65),
                at(0.15, -0.29),
                at(-0.3, -0.29),
            ],
            cabin,
            1.0,
        );
        self.canvas.line(
            at(-0.5, -0.28),
            at(-0.5, -1.3),
            (s * 0.05).max(1.0),
            scale([0.2, 0.18, 0.16], shade),
            1.0,
        );
        if self.time != Time::Day || self.storm > 0.0 {
            let (lx, ly) = at(-0.07, -0.47);
            self.canvas.glow(lx, ly, s * 0.9, c.light, 0.45);
        }
    }

    /// Warm lights strung along the shore, bobbing a little.
    fn lanterns(&mut self, left: bool) {
        let (w, h) = (self.w, self.h);
        let mut rng = self.words.rng(15);
        let count = 5 + rng.below(6);
        let warm = hsl(38.0, 1.0, 0.68);
        let (from, to) = if left { (0.03, 0.5) } else { (0.5, 0.97) };
        let shift = self.drift(0.5);
        for i in 0..count {
            let x = w * lerp(from, to, (i as f32 + rng.range(0.2, 0.8)) / count as f32) + shift;
            let bob = sin(self.p * 3.0 + i as f32) * h * 0.004;
            let y = if self.sea {
                self.horizon - h * rng.range(0.0, 0.02)
            } else {
                self.ground_at(x) - h * rng.range(0.01, 0.04)
            } + bob;
            self.canvas.glow(x, y, h * 0.035, warm, 0.5);
            self.canvas
                .disc(x, y, (h * 0.005).max(0.7), mix(warm, [1.0; 3], 0.5), 1.0);
        }
    }

    /// Slanted streaks of rain, falling between the start and the end of the scene.
    fn rain(&mut self) {
        let (w, h) = (self.w, self.h);
        let mut rng = self.words.rng(16);
        let count = 90 + (220.0 * self.storm) as u32;
        let width = (h / 400.0).max(0.8);
        for _ in 0..count {
            let x = w * rng.range(-0.1, 1.05);
            let y = (rng.unit() + self.p * 0.37).rem_euclid(1.0) * h;
            let length = h * rng.range(0.03, 0.06);
            let alpha = rng.range(0.08, 0.22);
            self.canvas.line(
                (x, y),
                (x - length * 0.25, y + length),
                width,
                [0.82, 0.86, 0.9],
                alpha,
            );
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
mod tests {
    use super::*;

    const TITLE: &str = "The lamp wakes";
    const DESCRIPTION: &str = "At dusk the keeper lights the lamp of the lighthouse; a beam of \
                               gold sweeps the sea.";

    fn differing_pixels(a: &Image, b: &Image) -> usize {
        a.pixels()
            .chunks_exact(3)
            .zip(b.pixels().chunks_exact(3))
            .filter(|(x, y)| x != y)
            .count()
    }

    #[test]
    fn the_same_scene_renders_to_identical_bytes() {
        let a = keyframe(TITLE, DESCRIPTION, Position::Start, 320, 180).expect("renders");
        let b = keyframe(TITLE, DESCRIPTION, Position::Start, 320, 180).expect("renders");
        assert!(a == b);
    }

    #[test]
    fn a_keyframe_has_the_requested_dimensions() {
        for (width, height) in [(640, 360), (64, 64), (1, 1), (200, 700)] {
            let image =
                keyframe(TITLE, DESCRIPTION, Position::End, width, height).expect("renders");
            assert_eq!((image.width(), image.height()), (width, height));
            assert_eq!(image.pixels().len(), (width * height * 3) as usize);
        }
        assert!(keyframe(TITLE, DESCRIPTION, Position::End, 0, 10).is_err());
    }

    #[test]
    fn different_scenes_give_clearly_different_images() {
        let scenes = [
            (
                "Harbour",
                "By midnight the boat reaches the harbour; lanterns bob on the quay.",
            ),
            ("Forest", "A green forest in the morning."),
            ("Storm", "A storm at sea, rain and grey swell."),
            ("Road", "A dusty road between fields."),
            ("Dawn", "At dawn the sun rises over a calm sea."),
        ];
        let images: Vec<Image> = scenes
            .iter()
            .map(|(t, d)| keyframe(t, d, Position::Start, 160, 90).expect("renders"))
            .collect();
        for (i, a) in images.iter().enumerate() {
            for b in &images[i + 1..] {
                assert!(differing_pixels(a, b) > 160 * 90 / 2);
            }
        }
    }

    #[test]
    fn the_start_and_end_keyframes_of_a_scene_differ() {
        for (title, description) in [
            (TITLE, DESCRIPTION),
            ("Noon", "A quiet road."),
            ("Night", "Stars over the hills at night."),
        ] {
            let start = keyframe(title, description, Position::Start, 160, 90).expect("renders");
            let end = keyframe(title, description, Position::End, 160, 90).expect("renders");
            assert!(differing_pixels(&start, &end) > 160 * 90 / 4, "{title}");
        }
    }

    #[test]
    fn the_title_draws_real_text_in_the_caption_band() {
        let (width, height) = (320, 180);
        let mut banded = paint(TITLE, DESCRIPTION, Position::Start, width, height).expect("paints");
        draw_band(&mut banded);
        let banded = banded.to_image();
        let titled = keyframe(TITLE, DESCRIPTION, Position::Start, width, height).expect("renders");
        let (top, bottom) = crate::caption_band(height);
        let mut changed = 0;
        let mut bright = 0;
        for y in 0..height {
            for x in 0..width {
                let (a, b) = (banded.pixel(x, y), titled.pixel(x, y));
                if a != b {
                    assert!(
                        (top..bottom).contains(&y),
                        "text outside the band at {x},{y}"
                    );
                    changed += 1;
                }
                if b.is_some_and(|p| p.iter().all(|&c| c > 200)) && (top..bottom).contains(&y) {
                    bright += 1;
                }
            }
        }
        // "The lamp wakes" in white covers hundreds of pixels at this size.
        assert!(changed > 300, "{changed} pixels changed");
        assert!(bright > 150, "{bright} bright pixels");
    }

    #[test]
    fn an_empty_title_leaves_the_scenery_alone() {
        let plain = scenery("", DESCRIPTION, Position::Start, 100, 60).expect("renders");
        let titled = keyframe("  ", DESCRIPTION, Position::Start, 100, 60).expect("renders");
        assert!(plain == titled);
    }
}
