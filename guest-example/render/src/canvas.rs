//! A floating-point drawing surface with anti-aliased primitives.
//!
//! Drawing happens in `f32` (0 to 1 per channel) so that layers of translucent shapes do not
//! accumulate 8-bit rounding; the result is quantised once, in [`Canvas::to_image`]. Every
//! shape's edge is anti-aliased by the pixel coverage it would have, estimated from the
//! distance of the pixel centre to the edge.

use crate::Image;
use crate::util::{fmax, fmin};

/// A colour: red, green, blue, each 0 to 1.
pub(crate) type Rgb = [f32; 3];

/// Mixes `a` towards `b` by `t` (0 gives `a`, 1 gives `b`).
pub(crate) fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

/// `colour` with every channel multiplied by `factor`.
pub(crate) fn scale(colour: Rgb, factor: f32) -> Rgb {
    [colour[0] * factor, colour[1] * factor, colour[2] * factor]
}

/// The colour of the sky gradient of [`Canvas::sky`] at height `y`.
pub(crate) fn sky_colour(y: f32, horizon: f32, top: Rgb, bottom: Rgb) -> Rgb {
    let t = (y / fmax(horizon, 1.0)).clamp(0.0, 1.0);
    mix(top, bottom, t * t)
}

/// A point (x, y) in pixels, y downwards.
pub(crate) type Point = (f32, f32);

/// The surface pictures are drawn on.
pub(crate) struct Canvas {
    /// Width in pixels.
    pub w: usize,
    /// Height in pixels.
    pub h: usize,
    px: Vec<Rgb>,
}

impl Canvas {
    /// A black canvas of `w` × `h` pixels.
    pub fn new(w: usize, h: usize) -> Self {
        Self {
            w,
            h,
            px: vec![[0.0; 3]; w * h],
        }
    }

    /// The colour at (`x`, `y`), which must be inside the canvas.
    #[cfg(test)]
    pub fn get(&self, x: usize, y: usize) -> Rgb {
        self.px[y * self.w + x]
    }

    /// Quantises the canvas to 8 bits per channel.
    pub fn to_image(&self) -> Image {
        let mut pixels = Vec::with_capacity(self.px.len() * 3);
        for p in &self.px {
            for &c in p {
                pixels.push((c.clamp(0.0, 1.0) * 255.0 + 0.5) as u8);
            }
        }
        Image {
            width: self.w as u32,
            height: self.h as u32,
            pixels,
        }
    }

    /// Paints `colour` over the pixel at (`x`, `y`) with opacity `alpha`.
    pub fn blend(&mut self, x: usize, y: usize, colour: Rgb, alpha: f32) {
        if alpha <= 0.0 || x >= self.w || y >= self.h {
            return;
        }
        let alpha = fmin(alpha, 1.0);
        let p = &mut self.px[y * self.w + x];
        for (channel, target) in p.iter_mut().zip(colour) {
            *channel += (target - *channel) * alpha;
        }
    }

    /// Adds `colour * amount` to the pixel at (`x`, `y`): light, rather than paint.
    fn add(&mut self, x: usize, y: usize, colour: Rgb, amount: f32) {
        if amount <= 0.0 || x >= self.w || y >= self.h {
            return;
        }
        let p = &mut self.px[y * self.w + x];
        for (channel, light) in p.iter_mut().zip(colour) {
            *channel = fmin(*channel + light * amount, 1.0);
        }
    }

    /// Applies `f` to every pixel, with its centre's position.
    pub fn map(&mut self, mut f: impl FnMut(f32, f32, Rgb) -> Rgb) {
        for y in 0..self.h {
            for x in 0..self.w {
                let i = y * self.w + x;
                self.px[i] = f(x as f32 + 0.5, y as f32 + 0.5, self.px[i]);
            }
        }
    }

    /// The pixel range `[low, high)` covering the span `[a, b]`, clipped to `0..limit`.
    fn span(a: f32, b: f32, limit: usize) -> (usize, usize) {
        let low = fmax(a.floor(), 0.0) as usize;
        let high = (fmax(b.ceil(), 0.0) as usize).min(limit);
        (low.min(limit), high)
    }

    /// Fills the canvas with a vertical gradient from `top` at row 0 to `bottom` at `horizon`
    /// and below, eased so the colour changes fastest near the horizon, as a sky's glow does.
    pub fn sky(&mut self, horizon: f32, top: Rgb, bottom: Rgb) {
        for y in 0..self.h {
            let colour = sky_colour(y as f32 + 0.5, horizon, top, bottom);
            self.px[y * self.w..(y + 1) * self.w].fill(colour);
        }
    }

    /// An anti-aliased disc.
    pub fn disc(&mut self, cx: f32, cy: f32, r: f32, colour: Rgb, alpha: f32) {
        let (x0, x1) = Self::span(cx - r - 1.0, cx + r + 1.0, self.w);
        let (y0, y1) = Self::span(cy - r - 1.0, cy + r + 1.0, self.h);
        for y in y0..y1 {
            for x in x0..x1 {
                let dx = x as f32 + 0.5 - cx;
                let dy = y as f32 + 0.5 - cy;
                let d = (dx * dx + dy * dy).sqrt();
                let coverage = (r - d + 0.5).clamp(0.0, 1.0);
                self.blend(x, y, colour, alpha * coverage);
            }
        }
    }

    /// Light falling off from (`cx`, `cy`) to nothing at distance `r`, added to the picture.
    pub fn glow(&mut self, cx: f32, cy: f32, r: f32, colour: Rgb, strength: f32) {
        let (x0, x1) = Self::span(cx - r, cx + r, self.w);
        let (y0, y1) = Self::span(cy - r, cy + r, self.h);
        for y in y0..y1 {
            for x in x0..x1 {
                let dx = (x as f32 + 0.5 - cx) / r;
                let dy = (y as f32 + 0.5 - cy) / r;
                let d2 = dx * dx + dy * dy;
                if d2 < 1.0 {
                    // (1 - d)^2 with d = sqrt(d2): a bright core and a long soft tail.
                    let falloff = 1.0 - d2.sqrt();
                    self.add(x, y, colour, strength * falloff * falloff);
                }
            }
        }
    }

    /// A soft-edged ellipse, the building block of clouds.
    pub fn soft_ellipse(&mut self, cx: f32, cy: f32, rx: f32, ry: f32, colour: Rgb, alpha: f32) {
        let (x0, x1) = Self::span(cx - rx, cx + rx, self.w);
        let (y0, y1) = Self::span(cy - ry, cy + ry, self.h);
        for y in y0..y1 {
            for x in x0..x1 {
                let dx = (x as f32 + 0.5 - cx) / rx;
                let dy = (y as f32 + 0.5 - cy) / ry;
                let d2 = dx * dx + dy * dy;
                if d2 < 1.0 {
                    let edge = 1.0 - d2;
                    self.blend(x, y, colour, alpha * fmin(edge * 3.0, 1.0));
                }
            }
        }
    }

    /// An axis-aligned rectangle; edges falling inside a pixel cover it partially.
    pub fn rect(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, colour: Rgb, alpha: f32) {
        let (px0, px1) = Self::span(x0, x1, self.w);
        let (py0, py1) = Self::span(y0, y1, self.h);
        for y in py0..py1 {
            let cover_y = (fmin(y1, y as f32 + 1.0) - fmax(y0, y as f32)).clamp(0.0, 1.0);
            for x in px0..px1 {
                let cover_x = (fmin(x1, x as f32 + 1.0) - fmax(x0, x as f32)).clamp(0.0, 1.0);
                self.blend(x, y, colour, alpha * cover_x * cover_y);
            }
        }
    }

    /// A convex polygon given by its corners in either winding order.
    pub fn convex(&mut self, points: &[Point], colour: Rgb, alpha: f32) {
        if points.len() < 3 {
            return;
        }
        // The sign of the area tells the winding, so every edge normal can be made to point in.
        let mut area = 0.0;
        for (i, &(ax, ay)) in points.iter().enumerate() {
            let (bx, by) = points[(i + 1) % points.len()];
            area += ax * by - bx * ay;
        }
        let inward = if area >= 0.0 { 1.0 } else { -1.0 };
        let edges: Vec<(f32, f32, f32)> = points
            .iter()
            .enumerate()
            .filter_map(|(i, &(ax, ay))| {
                let (bx, by) = points[(i + 1) % points.len()];
                let (ex, ey) = (bx - ax, by - ay);
                let len = (ex * ex + ey * ey).sqrt();
                // A zero-length edge has no direction and bounds nothing.
                (len > 0.0).then(|| {
                    let (nx, ny) = (-ey * inward / len, ex * inward / len);
                    (nx, ny, -(nx * ax + ny * ay))
                })
            })
            .collect();
        let (min_x, max_x) = points.iter().fold((f32::MAX, f32::MIN), |(lo, hi), p| {
            (fmin(lo, p.0), fmax(hi, p.0))
        });
        let (min_y, max_y) = points.iter().fold((f32::MAX, f32::MIN), |(lo, hi), p| {
            (fmin(lo, p.1), fmax(hi, p.1))
        });
        let (x0, x1) = Self::span(min_x - 1.0, max_x + 1.0, self.w);
        let (y0, y1) = Self::span(min_y - 1.0, max_y + 1.0, self.h);
        for y in y0..y1 {
            let py = y as f32 + 0.5;
            for x in x0..x1 {
                let px = x as f32 + 0.5;
                let inside = edges
                    .iter()
                    .map(|&(nx, ny, c)| nx * px + ny * py + c)
                    .fold(f32::MAX, f32::min);
                self.blend(x, y, colour, alpha * (inside + 0.5).clamp(0.0, 1.0));
            }
        }
    }

    /// A straight stroke of `width` pixels from `a` to `b`.
    pub fn line(&mut self, a: Point, b: Point, width: f32, colour: Rgb, alpha: f32) {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = (dx * dx + dy * dy).sqrt();
        if len <= 0.0 {
            return;
        }
        let (nx, ny) = (-dy / len * width / 2.0, dx / len * width / 2.0);
        self.convex(
            &[
                (a.0 + nx, a.1 + ny),
                (b.0 + nx, b.1 + ny),
                (b.0 - nx, b.1 - ny),
                (a.0 - nx, a.1 - ny),
            ],
            colour,
            alpha,
        );
    }

    /// Paints everything below the curve `top(x)` (x at pixel centres), down to the bottom of the
    /// canvas, with the colour `colour(depth)` where depth is the distance below the curve in
    /// pixels. The pixel the curve crosses is covered partially.
    pub fn fill_below(
        &mut self,
        top: impl Fn(f32) -> f32,
        colour: impl Fn(f32) -> Rgb,
        alpha: f32,
    ) {
        for x in 0..self.w {
            let edge = top(x as f32 + 0.5);
            let (y0, _) = Self::span(edge, edge, self.h);
            for y in y0..self.h {
                let coverage = (y as f32 + 1.0 - edge).clamp(0.0, 1.0);
                let depth = fmax(y as f32 + 0.5 - edge, 0.0);
                self.blend(x, y, colour(depth), alpha * coverage);
            }
        }
    }

    /// Draws a glyph-like coverage mask: `coverage(x, y)` for the pixels of a box at
    /// (`left`, `top`), as `ab_glyph` hands them out.
    pub fn mask(&mut self, left: i32, top: i32, x: u32, y: u32, coverage: f32, colour: Rgb) {
        let (px, py) = (left + x as i32, top + y as i32);
        if px >= 0 && py >= 0 {
            self.blend(px as usize, py as usize, colour, coverage);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHITE: Rgb = [1.0, 1.0, 1.0];

    #[test]
    fn shapes_cover_their_inside_fully_and_their_edges_partially() {
        let mut canvas = Canvas::new(20, 20);
        canvas.rect(2.0, 2.0, 6.5, 6.0, WHITE, 1.0);
        assert_eq!(canvas.get(3, 3), WHITE);
        assert!((canvas.get(6, 3)[0] - 0.5).abs() < 1e-6);
        assert_eq!(canvas.get(7, 3), [0.0; 3]);

        let mut canvas = Canvas::new(20, 20);
        canvas.disc(10.0, 10.0, 5.0, WHITE, 1.0);
        assert_eq!(canvas.get(10, 10), WHITE);
        assert_eq!(canvas.get(0, 0), [0.0; 3]);

        let mut canvas = Canvas::new(20, 20);
        canvas.convex(&[(0.0, 0.0), (0.0, 20.0), (20.0, 20.0)], WHITE, 1.0);
        assert_eq!(canvas.get(2, 17), WHITE);
        assert_eq!(canvas.get(17, 2), [0.0; 3]);
        // The same triangle wound the other way is the same triangle.
        let mut other = Canvas::new(20, 20);
        other.convex(&[(20.0, 20.0), (0.0, 20.0), (0.0, 0.0)], WHITE, 1.0);
        assert_eq!(canvas.to_image(), other.to_image());
    }

    #[test]
    fn shapes_outside_the_canvas_are_clipped_without_panicking() {
        let mut canvas = Canvas::new(8, 8);
        canvas.disc(-50.0, 100.0, 10.0, WHITE, 1.0);
        canvas.rect(-5.0, -5.0, 100.0, 2.0, WHITE, 0.5);
        canvas.glow(4.0, 4.0, 100.0, WHITE, 1.0);
        canvas.line((-10.0, -10.0), (30.0, 30.0), 2.0, WHITE, 1.0);
        canvas.fill_below(|_| -3.0, |_| WHITE, 1.0);
        canvas.fill_below(|_| 50.0, |_| WHITE, 1.0);
        canvas.mask(-3, -3, 1, 1, 1.0, WHITE);
        assert_eq!(canvas.get(7, 7), WHITE);
    }
}
