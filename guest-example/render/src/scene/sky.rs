//! The sky: the glow of the sun or moon, stars, the sun itself, clouds and rain.

use super::{Painter, Time};
use crate::canvas::{mix, sky_colour};
use crate::util::lerp;

impl Painter {
    /// The glow of the sun or moon in the sky, wider along the horizon at dawn and dusk.
    pub(super) fn sky_light(&mut self, sx: f32, sy: f32, sr: f32) {
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

    pub(super) fn stars(&mut self) {
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

    pub(super) fn sun(&mut self, sx: f32, sy: f32, sr: f32) {
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

    pub(super) fn clouds(&mut self) {
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

    /// Slanted streaks of rain, falling between the start and the end of the scene.
    pub(super) fn rain(&mut self) {
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
}
