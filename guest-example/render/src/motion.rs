//! In-between frames: a cross-fade from a scene's start keyframe to its end keyframe while the
//! camera slowly zooms in.

use crate::util::{Words, lerp, smoothstep};
use crate::{Image, RenderError, caption_band};

/// How the camera moves during a scene.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Motion {
    /// How much larger the picture is at the end than at the start: 1.0 keeps it still,
    /// 1.08 zooms in by 8 %. Clamped to 0.5 to 4.
    pub zoom: f32,
    /// The point the camera zooms towards, as fractions of the width and height (0 to 1).
    pub focus: (f32, f32),
    /// Keep the caption band still, cross-fading only, so the title does not grow and slide
    /// with the picture.
    pub steady_caption: bool,
}

impl Default for Motion {
    fn default() -> Self {
        Self {
            zoom: 1.08,
            focus: (0.5, 0.45),
            steady_caption: true,
        }
    }
}

impl Motion {
    /// A gentle zoom (6 to 10 %) towards a point picked by a hash of the scene's words, so
    /// every scene moves a little differently but always the same way.
    pub fn for_scene(title: &str, description: &str) -> Self {
        let mut rng = Words::of(title, description).rng(20);
        Self {
            zoom: rng.range(1.06, 1.10),
            focus: (rng.range(0.3, 0.7), rng.range(0.3, 0.55)),
            steady_caption: true,
        }
    }
}

/// One sample position along an axis: two neighbouring source pixels and the weight of the
/// second, in 256ths.
#[derive(Debug, Clone, Copy)]
struct Tap {
    i0: usize,
    i1: usize,
    weight: u32,
}

/// The fixed-point unit of weights: blending happens in integers, in 256ths, so the inner loops
/// need no float-to-byte conversions.
const ONE: u32 = 256;

/// `fraction` (0 to 1) in 256ths, rounded.
fn to_weight(fraction: f32) -> u32 {
    ((fraction.clamp(0.0, 1.0) * ONE as f32) + 0.5) as u32
}

/// Where each of `out_len` output pixels samples a source of `src_len` pixels when the output
/// is zoomed by `zoom` around `focus` (in output pixels). Positions are mapped through
/// fractions of the length, so a source of another size is stretched to fit.
fn taps(out_len: u32, src_len: u32, focus: f32, zoom: f32) -> Vec<Tap> {
    let last = (src_len - 1) as f32;
    (0..out_len)
        .map(|i| {
            let u = (focus + (i as f32 + 0.5 - focus) / zoom) / out_len as f32;
            let s = (u * src_len as f32 - 0.5).clamp(0.0, last);
            let i0 = s as usize;
            Tap {
                i0,
                i1: (i0 + 1).min(src_len as usize - 1),
                weight: to_weight(s - i0 as f32),
            }
        })
        .collect()
}

/// Two source rows of an image and the weight of the second: one output row's vertical tap.
struct Rows<'a> {
    top: &'a [u8],
    bottom: &'a [u8],
    weight: u32,
}

impl<'a> Rows<'a> {
    fn of(image: &'a Image, tap: Tap) -> Self {
        let stride = image.width() as usize * 3;
        let px = image.pixels();
        Self {
            top: &px[tap.i0 * stride..(tap.i0 + 1) * stride],
            bottom: &px[tap.i1 * stride..(tap.i1 + 1) * stride],
            weight: tap.weight,
        }
    }

    /// Blends the two rows by the tap's weight into `out`, one value per channel in 256ths of
    /// a level (0 to 255 × 256).
    fn blend_into(&self, out: &mut [u32]) {
        let (w1, w0) = (self.weight, ONE - self.weight);
        for ((value, &top), &bottom) in out.iter_mut().zip(self.top).zip(self.bottom) {
            *value = u32::from(top) * w0 + u32::from(bottom) * w1;
        }
    }
}

/// The colour of a blended row (see [`Rows::blend_into`]) at the column tap `x`, in 256ths of
/// a level.
fn sample(row: &[u32], x: Tap) -> [u32; 3] {
    let (i0, i1) = (x.i0 * 3, x.i1 * 3);
    let (w1, w0) = (x.weight, ONE - x.weight);
    match (row.get(i0..i0 + 3), row.get(i1..i1 + 3)) {
        // At most 255 × 256 × 256: no overflow. Rounded back to 256ths.
        (Some(a), Some(b)) => [
            (a[0] * w0 + b[0] * w1 + ONE / 2) / ONE,
            (a[1] * w0 + b[1] * w1 + ONE / 2) / ONE,
            (a[2] * w0 + b[2] * w1 + ONE / 2) / ONE,
        ],
        // Taps are clamped to the source width, so this does not happen.
        _ => [0; 3],
    }
}

/// The in-between frame at `t` (0 = `start`, 1 = `end`; clamped) of a scene: `start` fading
/// into `end` (eased in and out) while the picture zooms linearly from 1 to `motion.zoom`
/// around `motion.focus`, with bilinear sampling.
///
/// The frame has `start`'s size; an `end` of another size is stretched to it.
pub fn frame(start: &Image, end: &Image, t: f32, motion: &Motion) -> Result<Image, RenderError> {
    let (width, height) = (start.width(), start.height());
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let fade = smoothstep(t);
    let zoom_target = if motion.zoom.is_finite() {
        motion.zoom.clamp(0.5, 4.0)
    } else {
        1.0
    };
    let zoom = lerp(1.0, zoom_target, t);
    let fx = motion.focus.0.clamp(0.0, 1.0) * width as f32;
    let fy = motion.focus.1.clamp(0.0, 1.0) * height as f32;

    let (band_top, band_bottom) = if motion.steady_caption {
        caption_band(height)
    } else {
        (0, 0)
    };
    let start_cols = taps(width, start.width(), fx, zoom);
    let end_cols = taps(width, end.width(), fx, zoom);
    let start_rows = taps(height, start.height(), fy, zoom);
    let end_rows = taps(height, end.height(), fy, zoom);
    let (still_start_cols, still_end_cols, still_start_rows, still_end_rows) =
        if band_top < band_bottom {
            (
                taps(width, start.width(), fx, 1.0),
                taps(width, end.width(), fx, 1.0),
                taps(height, start.height(), fy, 1.0),
                taps(height, end.height(), fy, 1.0),
            )
        } else {
            Default::default()
        };

    // Separable bilinear sampling in fixed point, written in place row by row: each output row
    // first blends its two source rows of each keyframe into one row (a straight loop the
    // compiler vectorises, natively and to wasm SIMD128 alike), then samples that row at the
    // column taps and cross-fades.
    let stride = width as usize * 3;
    let mut pixels = vec![0u8; stride * height as usize];
    let mut start_row = vec![0u32; start.width() as usize * 3];
    let mut end_row = vec![0u32; end.width() as usize * 3];
    let (f1, f0) = (to_weight(fade), ONE - to_weight(fade));
    for (y, out) in pixels.chunks_exact_mut(stride).enumerate() {
        let still = (band_top as usize..band_bottom as usize).contains(&y);
        let (sc, ec, sr, er) = if still {
            (
                &still_start_cols,
                &still_end_cols,
                still_start_rows[y],
                still_end_rows[y],
            )
        } else {
            (&start_cols, &end_cols, start_rows[y], end_rows[y])
        };
        Rows::of(start, sr).blend_into(&mut start_row);
        Rows::of(end, er).blend_into(&mut end_row);
        for ((&s, &e), px) in sc.iter().zip(ec).zip(out.chunks_exact_mut(3)) {
            let (a, b) = (sample(&start_row, s), sample(&end_row, e));
            for (c, byte) in px.iter_mut().enumerate() {
                // At most 255 × 256 × 256; divided by 256 × 256, rounded: 0 to 255.
                let level = (a[c] * f0 + b[c] * f1 + ONE * ONE / 2) / (ONE * ONE);
                *byte = u8::try_from(level).unwrap_or(u8::MAX);
            }
        }
    }
    Image::from_rgb(width, height, pixels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Position, keyframe};

    fn keyframes() -> (Image, Image) {
        let title = "Rowing home";
        let description = "A fishing boat fights the swell in a storm.";
        (
            keyframe(title, description, Position::Start, 160, 90).expect("renders"),
            keyframe(title, description, Position::End, 160, 90).expect("renders"),
        )
    }

    #[test]
    fn the_first_frame_is_the_start_keyframe_and_a_still_last_frame_is_the_end_one() {
        let (start, end) = keyframes();
        let motion = Motion::default();
        assert!(frame(&start, &end, 0.0, &motion).expect("blends") == start);
        let still = Motion {
            zoom: 1.0,
            ..motion
        };
        assert!(frame(&start, &end, 1.0, &still).expect("blends") == end);
    }

    #[test]
    fn a_frame_halfway_lies_between_the_keyframes_and_is_reproducible() {
        let (start, end) = keyframes();
        let motion = Motion::for_scene("Rowing home", "swell");
        let middle = frame(&start, &end, 0.5, &motion).expect("blends");
        assert_eq!((middle.width(), middle.height()), (160, 90));
        assert!(middle != start && middle != end);
        assert!(frame(&start, &end, 0.5, &motion).expect("blends") == middle);
    }

    #[test]
    fn the_caption_band_stays_still_while_the_picture_zooms() {
        let (start, _) = keyframes();
        let zoomed = frame(&start, &start, 1.0, &Motion::default()).expect("blends");
        let (top, bottom) = caption_band(90);
        let same = |y: u32| (0..160).all(|x| zoomed.pixel(x, y) == start.pixel(x, y));
        assert!((top..bottom).all(same));
        let moved = (0..90)
            .filter(|y| !(top..bottom).contains(y) && !same(*y))
            .count();
        assert!(
            moved as u32 > (90 - (bottom - top)) * 9 / 10,
            "{moved} rows moved"
        );
    }

    #[test]
    fn out_of_range_inputs_are_clamped_instead_of_failing() {
        let (start, end) = keyframes();
        let wild = Motion {
            zoom: f32::NAN,
            focus: (-3.0, 7.0),
            steady_caption: false,
        };
        assert!(frame(&start, &end, f32::NAN, &wild).expect("blends") == start);
        assert!(frame(&start, &end, -1.0, &wild).expect("blends") == start);
        frame(&start, &end, 9.0, &wild).expect("blends");
    }

    /// The in-between frame computed the plain way, in floats: four taps per keyframe.
    fn float_frame(start: &Image, end: &Image, t: f32, motion: &Motion) -> Vec<u8> {
        let (w, h) = (start.width(), start.height());
        let fade = smoothstep(t);
        let zoom = lerp(1.0, motion.zoom, t);
        let (fx, fy) = (motion.focus.0 * w as f32, motion.focus.1 * h as f32);
        let coordinate = |i: u32, len: u32, focus: f32| {
            let u = (focus + (i as f32 + 0.5 - focus) / zoom) / len as f32;
            let s = (u * len as f32 - 0.5).clamp(0.0, (len - 1) as f32);
            let i0 = s as u32;
            (i0, (i0 + 1).min(len - 1), s - i0 as f32)
        };
        let level = |image: &Image, x: u32, y: u32, c: usize| {
            f32::from(image.pixel(x, y).expect("inside")[c])
        };
        let mut out = Vec::new();
        for y in 0..h {
            let (y0, y1, wy) = coordinate(y, h, fy);
            for x in 0..w {
                let (x0, x1, wx) = coordinate(x, w, fx);
                for c in 0..3 {
                    let bilinear = |image: &Image| {
                        let top = lerp(level(image, x0, y0, c), level(image, x1, y0, c), wx);
                        let bottom = lerp(level(image, x0, y1, c), level(image, x1, y1, c), wx);
                        lerp(top, bottom, wy)
                    };
                    let value = lerp(bilinear(start), bilinear(end), fade);
                    out.push((value + 0.5).clamp(0.0, 255.0) as u8);
                }
            }
        }
        out
    }

    #[test]
    fn fixed_point_frames_agree_with_float_sampling_to_within_rounding() {
        let (start, end) = keyframes();
        let motion = Motion {
            zoom: 1.3,
            focus: (0.4, 0.6),
            steady_caption: false,
        };
        for t in [0.13, 0.5, 0.77] {
            let fixed = frame(&start, &end, t, &motion).expect("blends");
            let float = float_frame(&start, &end, t, &motion);
            let differences: Vec<u32> = fixed
                .pixels()
                .iter()
                .zip(&float)
                .map(|(&a, &b)| u32::from(a.abs_diff(b)))
                .collect();
            let worst = differences.iter().max().copied().unwrap_or(0);
            let mean = differences.iter().sum::<u32>() as f32 / differences.len() as f32;
            assert!(worst <= 2, "t = {t}: a level differs by {worst}");
            assert!(mean < 0.25, "t = {t}: levels differ by {mean} on average");
        }
    }

    #[test]
    fn keyframes_of_different_sizes_are_stretched_to_the_start_size() {
        let small = Image::from_rgb(2, 1, vec![0, 0, 0, 255, 255, 255]).expect("2x1");
        let big = Image::new(40, 30).expect("40x30");
        let still = Motion {
            zoom: 1.0,
            steady_caption: false,
            ..Motion::default()
        };
        let blended = frame(&big, &small, 1.0, &still).expect("blends");
        assert_eq!((blended.width(), blended.height()), (40, 30));
        // The 2×1 end keyframe, black then white, stretched over 40×30.
        for y in 0..30 {
            assert_eq!(blended.pixel(0, y), Some([0, 0, 0]));
            assert_eq!(blended.pixel(39, y), Some([255, 255, 255]));
            assert!((1..40).all(|x| blended.pixel(x - 1, y) <= blended.pixel(x, y)));
        }
        let tiny = frame(&small, &big, 0.5, &Motion::default()).expect("blends");
        assert_eq!((tiny.width(), tiny.height()), (2, 1));
    }
}
