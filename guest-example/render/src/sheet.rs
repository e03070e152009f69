//! The contact sheet: every scene's start and end keyframes, shrunk, in a grid with the scene's
//! number and title, as a film editor's sheet of stills.

use crate::canvas::{Canvas, Rgb};
use crate::text::draw_label;
use crate::{Image, MAX_DIMENSION, RenderError};

/// The background of the sheet.
const PAPER: Rgb = [0.09, 0.09, 0.11];
/// The colour of the heading and of the scene titles.
const INK: Rgb = [0.93, 0.92, 0.88];
/// The colour of the `start` / `end` marks under the pictures.
const FAINT: Rgb = [0.55, 0.55, 0.58];

/// One row of the sheet: a scene's title and its two keyframes.
#[derive(Debug, Clone, Copy)]
pub struct SheetRow<'a> {
    /// What is written above the pictures, e.g. `1  At dusk the keeper climbs`.
    pub label: &'a str,
    /// The scene's start keyframe.
    pub start: &'a Image,
    /// The scene's end keyframe.
    pub end: &'a Image,
}

/// Draws a contact sheet: `heading` at the top, then one row per scene with its label and its
/// start and end keyframes side by side, each shrunk to `thumb_width` pixels wide (keeping the
/// first start keyframe's aspect ratio; other sizes are stretched to it).
///
/// Fails if there are no rows, or if the sheet would be larger than
/// [`MAX_DIMENSION`](crate::MAX_DIMENSION) in either direction; the error says how many rows
/// fit.
pub fn contact_sheet(
    heading: &str,
    rows: &[SheetRow<'_>],
    thumb_width: u32,
) -> Result<Image, RenderError> {
    let first = rows.first().ok_or_else(|| {
        RenderError::InvalidSize("a contact sheet needs at least one scene".to_owned())
    })?;
    if !(16..=MAX_DIMENSION / 2).contains(&thumb_width) {
        return Err(RenderError::InvalidSize(format!(
            "thumbnails {thumb_width} pixels wide are out of range; use 16 to {}",
            MAX_DIMENSION / 2
        )));
    }
    let thumb_height = (u64::from(thumb_width) * u64::from(first.start.height())
        / u64::from(first.start.width()))
    .max(1);
    let thumb_height = u32::try_from(thumb_height).unwrap_or(u32::MAX);
    let layout = Layout::new(thumb_width, thumb_height);
    let width = layout.width();
    let fit = layout.rows_that_fit();
    let height = layout.height(rows.len());
    if width > MAX_DIMENSION || height.is_none_or(|h| h > MAX_DIMENSION) {
        return Err(RenderError::InvalidSize(format!(
            "{} scenes with thumbnails {thumb_width} pixels wide make a sheet larger than \
             {MAX_DIMENSION} pixels; at most {fit} fit at that width, more with narrower \
             thumbnails",
            rows.len()
        )));
    }
    let height = height.unwrap_or(MAX_DIMENSION);
    let mut canvas = Canvas::new(width as usize, height as usize);
    canvas.rect(0.0, 0.0, width as f32, height as f32, PAPER, 1.0);
    let text_width = (width - 2 * layout.margin) as f32;
    let heading_baseline = (layout.margin + layout.heading) as f32 - layout.heading as f32 * 0.3;
    draw_label(
        &mut canvas,
        heading,
        layout.margin as f32,
        heading_baseline,
        layout.heading as f32 * 0.5,
        text_width,
        INK,
    )?;
    for (i, row) in rows.iter().enumerate() {
        let top = layout.row_top(i);
        let label_baseline = (top + layout.label) as f32 - layout.label as f32 * 0.3;
        draw_label(
            &mut canvas,
            row.label,
            layout.margin as f32,
            label_baseline,
            layout.label as f32 * 0.62,
            text_width,
            INK,
        )?;
        let pictures_top = top + layout.label;
        for (column, (image, mark)) in [(row.start, "start"), (row.end, "end")]
            .into_iter()
            .enumerate()
        {
            let left = layout.margin + column as u32 * (thumb_width + layout.margin);
            let thumb = shrink(image, thumb_width, thumb_height)?;
            paste(&mut canvas, &thumb, left, pictures_top);
            let mark_baseline =
                (pictures_top + thumb_height + layout.mark) as f32 - layout.mark as f32 * 0.25;
            draw_label(
                &mut canvas,
                mark,
                left as f32,
                mark_baseline,
                layout.mark as f32 * 0.7,
                thumb_width as f32,
                FAINT,
            )?;
        }
    }
    Ok(canvas.to_image())
}

/// The sizes of the parts of a sheet, in pixels.
struct Layout {
    thumb_width: u32,
    thumb_height: u32,
    margin: u32,
    /// Height of the heading line.
    heading: u32,
    /// Height of a scene's label line.
    label: u32,
    /// Height of the `start` / `end` line under the pictures.
    mark: u32,
}

impl Layout {
    fn new(thumb_width: u32, thumb_height: u32) -> Self {
        let unit = thumb_width.max(64);
        Self {
            thumb_width,
            thumb_height,
            margin: (unit / 16).max(4),
            heading: (unit / 8).max(12),
            label: (unit / 11).max(10),
            mark: (unit / 16).max(8),
        }
    }

    fn width(&self) -> u32 {
        2 * self.thumb_width + 3 * self.margin
    }

    fn row_height(&self) -> u64 {
        u64::from(self.label)
            + u64::from(self.thumb_height)
            + u64::from(self.mark)
            + u64::from(self.margin)
    }

    /// The sheet's height with `rows` rows, if it fits in a `u32`.
    fn height(&self, rows: usize) -> Option<u32> {
        let rows = u64::try_from(rows).ok()?;
        let height =
            u64::from(self.margin) * 2 + u64::from(self.heading) + rows * self.row_height();
        u32::try_from(height).ok()
    }

    /// The top of row `i`.
    fn row_top(&self, i: usize) -> u32 {
        let top = u64::from(self.margin + self.heading) + i as u64 * self.row_height();
        u32::try_from(top).unwrap_or(u32::MAX)
    }

    /// How many rows fit in a sheet of at most [`MAX_DIMENSION`] pixels.
    fn rows_that_fit(&self) -> u64 {
        let fixed = u64::from(self.margin) * 2 + u64::from(self.heading);
        u64::from(MAX_DIMENSION).saturating_sub(fixed) / self.row_height().max(1)
    }
}

/// `image` scaled to `width` × `height` by averaging the source pixels each target pixel
/// covers (a box filter), in integer arithmetic so the result is the same everywhere.
pub fn shrink(image: &Image, width: u32, height: u32) -> Result<Image, RenderError> {
    let mut out = Image::new(width, height)?;
    let (sw, sh) = (u64::from(image.width()), u64::from(image.height()));
    let (tw, th) = (u64::from(width), u64::from(height));
    // The source range [low, high) of target index `t`, at least one pixel.
    let span = |t: u64, source: u64, target: u64| {
        let low = t * source / target;
        let high = ((t + 1) * source / target).max(low + 1).min(source);
        (low, high)
    };
    let pixels = out.pixels_mut();
    for ty in 0..th {
        let (y0, y1) = span(ty, sh, th);
        for tx in 0..tw {
            let (x0, x1) = span(tx, sw, tw);
            let mut sum = [0u64; 3];
            for y in y0..y1 {
                let row = (y * sw) as usize * 3;
                for x in x0..x1 {
                    let i = row + x as usize * 3;
                    for (c, total) in sum.iter_mut().enumerate() {
                        *total += u64::from(image.pixels()[i + c]);
                    }
                }
            }
            let count = (y1 - y0) * (x1 - x0);
            let o = ((ty * tw + tx) * 3) as usize;
            for (c, total) in sum.iter().enumerate() {
                pixels[o + c] = ((total + count / 2) / count) as u8;
            }
        }
    }
    Ok(out)
}

/// Copies `image` onto the canvas with its top left corner at (`left`, `top`), clipped.
fn paste(canvas: &mut Canvas, image: &Image, left: u32, top: u32) {
    for y in 0..image.height() {
        for x in 0..image.width() {
            if let Some([r, g, b]) = image.pixel(x, y) {
                let colour = [r, g, b].map(|c| f32::from(c) / 255.0);
                canvas.blend((left + x) as usize, (top + y) as usize, colour, 1.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Position, keyframe};

    fn solid(width: u32, height: u32, colour: [u8; 3]) -> Image {
        let pixels = (0..width * height).flat_map(|_| colour).collect();
        Image::from_rgb(width, height, pixels).expect("exact size")
    }

    #[test]
    fn shrinking_averages_the_pixels_each_target_pixel_covers() {
        // Two columns, black and white, shrunk to one pixel: mid grey.
        let image = Image::from_rgb(2, 1, vec![0, 0, 0, 255, 255, 255]).expect("2x1");
        let small = shrink(&image, 1, 1).expect("1x1");
        assert_eq!(small.pixel(0, 0), Some([128, 128, 128]));
        let same = shrink(&solid(7, 5, [10, 20, 30]), 3, 2).expect("3x2");
        assert!(same.pixels().chunks(3).all(|p| p == [10, 20, 30]));
        // Growing repeats pixels instead of failing.
        let grown = shrink(&image, 4, 2).expect("4x2");
        assert_eq!(grown.pixel(0, 1), Some([0, 0, 0]));
        assert_eq!(grown.pixel(3, 0), Some([255, 255, 255]));
    }

    #[test]
    fn the_sheet_shows_each_scene_as_a_row_of_its_two_keyframes() {
        let red = solid(64, 36, [200, 0, 0]);
        let blue = solid(64, 36, [0, 0, 200]);
        let rows = [
            SheetRow {
                label: "1  Red to blue",
                start: &red,
                end: &blue,
            },
            SheetRow {
                label: "2  Blue to red",
                start: &blue,
                end: &red,
            },
        ];
        let sheet = contact_sheet("Demo", &rows, 64).expect("fits");
        let layout = Layout::new(64, 36);
        assert_eq!(sheet.width(), layout.width());
        assert_eq!(Some(sheet.height()), layout.height(2));
        // The middle of each thumbnail has its keyframe's colour.
        for (row, (left_colour, right_colour)) in
            [([200, 0, 0], [0, 0, 200]), ([0, 0, 200], [200, 0, 0])]
                .into_iter()
                .enumerate()
        {
            let y = layout.row_top(row) + layout.label + 18;
            let left_x = layout.margin + 32;
            let right_x = 2 * layout.margin + 64 + 32;
            assert_eq!(sheet.pixel(left_x, y), Some(left_colour), "row {row}");
            assert_eq!(sheet.pixel(right_x, y), Some(right_colour), "row {row}");
        }
    }

    #[test]
    fn the_sheet_of_real_keyframes_is_deterministic_and_has_text() {
        let start = keyframe("Harbour", "boats at dawn", Position::Start, 320, 180).expect("kf");
        let end = keyframe("Harbour", "boats at dawn", Position::End, 320, 180).expect("kf");
        let rows = [SheetRow {
            label: "1  Harbour",
            start: &start,
            end: &end,
        }];
        let a = contact_sheet("The harbour", &rows, 160).expect("fits");
        let b = contact_sheet("The harbour", &rows, 160).expect("fits");
        assert_eq!(a, b);
        // The heading band holds light text on the dark paper.
        let layout = Layout::new(160, 90);
        let bright = (0..layout.heading + layout.margin)
            .flat_map(|y| (0..a.width()).map(move |x| (x, y)))
            .filter(|&(x, y)| a.pixel(x, y).is_some_and(|p| p[0] > 150))
            .count();
        assert!(bright > 20, "{bright} bright pixels in the heading");
    }

    #[test]
    fn a_sheet_too_tall_or_without_scenes_is_refused_with_how_many_fit() {
        let image = solid(16, 9, [1, 2, 3]);
        let row = SheetRow {
            label: "x",
            start: &image,
            end: &image,
        };
        assert!(contact_sheet("none", &[], 320).is_err());
        let rows = vec![row; 100];
        let error = contact_sheet("many", &rows, 320).expect_err("too tall");
        assert!(error.to_string().contains("at most"), "{error}");
        assert!(contact_sheet("small", &rows, 32).is_ok());
        assert!(contact_sheet("tiny", &rows[..1], 8).is_err());
    }
}
