//! Land and water: distant hills, the near ground, the sea and its waves, a headland.

use std::f32::consts::PI;

use super::{Painter, Time};
use crate::canvas::{mix, scale};
use crate::util::{fmax, fmin, sin};

impl Painter {
    /// Distant hills, hazy with the sky's colour; on the sea, a few low islands.
    pub(super) fn far_land(&mut self) {
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
    pub(super) fn land(&mut self) {
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
    pub(super) fn ground_at(&self, x: f32) -> f32 {
        if self.sea {
            return self.horizon;
        }
        let ridge = self.ridge(7);
        self.horizon + self.h * (0.06 - 0.09 * ridge((x - self.drift(1.0)) / self.w))
    }

    /// The sea: a gradient from the sky's colour to deep water, the sun's glitter, and bands
    /// of waves that move between the start and the end of the scene.
    pub(super) fn water(&mut self, sx: f32, sr: f32) {
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
}
