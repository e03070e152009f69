//! What stands in the picture: a lighthouse and its beam, houses, trees, buildings, a pier,
//! a boat and lanterns, each only when the words ask for it.

use std::f32::consts::PI;

use super::{BEAM, Painter, Time};
use crate::canvas::{mix, scale};
use crate::palette::{FIRE, hsl};
use crate::util::{cos, lerp, sin};

impl Painter {
    /// A dark cliff rising from the sea on one side, for the lighthouse to stand on.
    pub(super) fn headland(&mut self, left: bool) {
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
    pub(super) fn tower(&mut self, left: bool) {
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
    pub(super) fn houses(&mut self, left: bool) {
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
    pub(super) fn trees(&mut self) {
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
    pub(super) fn buildings(&mut self) {
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
    pub(super) fn pier(&mut self, left: bool) {
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
    pub(super) fn boat(&mut self) {
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
    pub(super) fn lanterns(&mut self, left: bool) {
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
}
