//! The title caption: real text, rasterised with `ab_glyph` from the bundled DejaVu Sans Bold
//! (see `fonts/LICENSE-DejaVu.txt`), on a dark translucent band near the bottom of the picture.

use ab_glyph::{Font, FontRef, GlyphId, PxScale, ScaleFont, point};

use crate::RenderError;
use crate::canvas::{Canvas, Rgb};

/// DejaVu Sans Bold, bundled so rendering depends on nothing installed on the machine.
static FONT: &[u8] = include_bytes!("../fonts/DejaVuSans-Bold.ttf");

/// What a title too long for the picture ends with after it is cut.
const ELLIPSIS: char = '…';

/// Titles are cut to this many characters before measuring, so a pathological title costs no
/// more than a long one (fewer fit on even the widest picture).
const MAX_TITLE_CHARS: usize = 300;

/// The font scale of a caption on a picture `height` pixels high, before any shrinking.
fn base_scale(height: u32) -> f32 {
    (height as f32 * 0.085).clamp(9.0, 96.0)
}

/// The smallest scale a long title is shrunk to before it is cut instead.
fn min_scale(height: u32) -> f32 {
    (base_scale(height) * 0.62).max(8.0)
}

/// The rows `[top, bottom)` of the caption band of a picture `height` pixels high.
///
/// Exposed so that in-between frames can keep the caption still while the picture moves.
pub fn caption_band(height: u32) -> (u32, u32) {
    let band = (base_scale(height) * 1.55).round() as u32;
    let margin = (height as f32 * 0.05).round() as u32;
    let bottom = height.saturating_sub(margin);
    (bottom.saturating_sub(band), bottom)
}

/// A title laid out on one line: its glyphs with positions relative to the start of the
/// baseline, and its advance width.
struct Line {
    glyphs: Vec<ab_glyph::Glyph>,
    width: f32,
}

fn font() -> Result<FontRef<'static>, RenderError> {
    FontRef::try_from_slice(FONT)
        .map_err(|e| RenderError::InvalidSize(format!("the bundled font is unreadable: {e}")))
}

/// Lays `text` out at `scale`, with kerning; control characters are skipped.
fn layout(font: &FontRef<'_>, text: &str, scale: f32) -> Line {
    let scaled = font.as_scaled(PxScale::from(scale));
    let mut glyphs = Vec::new();
    let mut x = 0.0;
    let mut previous: Option<GlyphId> = None;
    for c in text.chars().filter(|c| !c.is_control()) {
        let id = scaled.glyph_id(c);
        if let Some(previous) = previous {
            x += scaled.kern(previous, id);
        }
        glyphs.push(id.with_scale_and_position(scale, point(x, 0.0)));
        x += scaled.h_advance(id);
        previous = Some(id);
    }
    Line { glyphs, width: x }
}

/// The text and scale a title is drawn with so it fits in `max_width` pixels: the base scale if
/// it fits, else the largest scale down to the minimum at which it fits, else the minimum scale
/// with the title cut at a character and ended with an ellipsis.
pub(crate) fn fit_title(
    title: &str,
    height: u32,
    max_width: f32,
) -> Result<(String, f32), RenderError> {
    let font = font()?;
    let title: String = title.trim().chars().take(MAX_TITLE_CHARS).collect();
    let (base, min) = (base_scale(height), min_scale(height));
    let mut scale = base;
    while scale >= min {
        if layout(&font, &title, scale).width <= max_width {
            return Ok((title, scale));
        }
        scale -= 1.0;
    }
    let chars: Vec<char> = title.chars().collect();
    // Cut the longest prefix that fits with its ellipsis; the width grows with the prefix, so a
    // binary search finds it.
    let (mut fits, mut too_long) = (0, chars.len());
    while too_long - fits > 1 {
        let middle = (fits + too_long) / 2;
        if layout(&font, &cut(&chars, middle), min).width <= max_width {
            fits = middle;
        } else {
            too_long = middle;
        }
    }
    Ok((cut(&chars, fits), min))
}

/// The first `n` characters of `chars`, trimmed, with an ellipsis.
fn cut(chars: &[char], n: usize) -> String {
    let mut text: String = chars[..n].iter().collect();
    text.truncate(text.trim_end().len());
    text.push(ELLIPSIS);
    text
}

/// Darkens the caption band: a translucent black strip across the picture whose top and bottom
/// edges fade over a few pixels.
pub(crate) fn draw_band(canvas: &mut Canvas) {
    let (top, bottom) = caption_band(canvas.h as u32);
    let fade = ((bottom - top) as f32 * 0.12).max(1.0);
    for y in top..bottom {
        let from_edge = (y - top).min(bottom - 1 - y) as f32 + 0.5;
        let alpha = 0.58 * (from_edge / fade).min(1.0);
        for x in 0..canvas.w {
            canvas.blend(x, y as usize, [0.0, 0.0, 0.0], alpha);
        }
    }
}

/// Draws `title` centred in the caption band, white with a soft dark shadow.
pub(crate) fn draw_title(canvas: &mut Canvas, title: &str) -> Result<(), RenderError> {
    let height = canvas.h as u32;
    let (text, scale) = fit_title(title, height, canvas.w as f32 * 0.9)?;
    if text.is_empty() {
        return Ok(());
    }
    let font = font()?;
    let line = layout(&font, &text, scale);
    // Centre the capital letters, not ascent to descent: titles are mostly capitals and
    // lowercase without descenders, and that is what looks centred.
    let cap_height = font
        .outline_glyph(font.glyph_id('H').with_scale(scale))
        .map_or(scale * 0.63, |glyph| glyph.px_bounds().height());
    let (top, bottom) = caption_band(height);
    let baseline = ((top + bottom) as f32 / 2.0 + cap_height / 2.0).round();
    let left = ((canvas.w as f32 - line.width) / 2.0).round();
    let shadow = (scale / 18.0).max(1.0).round() as i32;
    for (offset, colour, alpha) in [(shadow, [0.0, 0.0, 0.0], 0.7), (0, [0.98, 0.97, 0.93], 1.0)] {
        draw_line(canvas, &font, &line, left, baseline, offset, colour, alpha);
    }
    Ok(())
}

/// Draws `text` on one line at `scale`, its first glyph at `left` and its baseline at
/// `baseline`, in `colour`; a text wider than `max_width` is cut at a character and ended with
/// an ellipsis. Returns the width drawn.
pub(crate) fn draw_label(
    canvas: &mut Canvas,
    text: &str,
    left: f32,
    baseline: f32,
    scale: f32,
    max_width: f32,
    colour: Rgb,
) -> Result<f32, RenderError> {
    let font = font()?;
    let text: String = text.trim().chars().take(MAX_TITLE_CHARS).collect();
    let mut line = layout(&font, &text, scale);
    if line.width > max_width {
        let chars: Vec<char> = text.chars().collect();
        let (mut fits, mut too_long) = (0, chars.len());
        while too_long - fits > 1 {
            let middle = (fits + too_long) / 2;
            if layout(&font, &cut(&chars, middle), scale).width <= max_width {
                fits = middle;
            } else {
                too_long = middle;
            }
        }
        line = layout(&font, &cut(&chars, fits), scale);
    }
    draw_line(canvas, &font, &line, left, baseline, 0, colour, 1.0);
    Ok(line.width)
}

#[allow(clippy::too_many_arguments)]
fn draw_line(
    canvas: &mut Canvas,
    font: &FontRef<'_>,
    line: &Line,
    left: f32,
    baseline: f32,
    offset: i32,
    colour: Rgb,
    alpha: f32,
) {
    for glyph in &line.glyphs {
        let mut glyph = glyph.clone();
        glyph.position = point(glyph.position.x + left, glyph.position.y + baseline);
        if let Some(outlined) = font.outline_glyph(glyph) {
            let bounds = outlined.px_bounds();
            let (x0, y0) = (bounds.min.x as i32 + offset, bounds.min.y as i32 + offset);
            outlined.draw(|x, y, coverage| canvas.mask(x0, y0, x, y, coverage * alpha, colour));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caption_band_lies_near_the_bottom_of_the_picture() {
        for height in [1, 8, 64, 360, 1080] {
            let (top, bottom) = caption_band(height);
            assert!(top < bottom || height < 8, "{height}: {top}..{bottom}");
            assert!(bottom <= height);
        }
        let (top, bottom) = caption_band(360);
        assert!(top > 270 && bottom < 360, "{top}..{bottom}");
    }

    #[test]
    fn a_short_title_keeps_its_size_and_its_text() {
        let (text, scale) = fit_title("  Dawn  ", 360, 576.0).expect("the font loads");
        assert_eq!(text, "Dawn");
        assert_eq!(scale, base_scale(360));
    }

    #[test]
    fn a_longer_title_is_shrunk_to_fit() {
        let title = "The keeper climbs the spiral stairs at dusk";
        let font = font().expect("the font loads");
        assert!(layout(&font, title, base_scale(360)).width > 576.0);
        let (text, scale) = fit_title(title, 360, 576.0).expect("the font loads");
        assert_eq!(text, title);
        assert!(scale < base_scale(360));
        assert!(layout(&font, &text, scale).width <= 576.0);
    }

    #[test]
    fn a_very_long_title_is_cut_with_an_ellipsis_and_fits() {
        let title = "word ".repeat(500);
        let (text, scale) = fit_title(&title, 360, 576.0).expect("the font loads");
        assert!(
            text.starts_with("word word") && text.ends_with('…'),
            "{text}"
        );
        assert_eq!(scale, min_scale(360));
        let font = font().expect("the font loads");
        assert!(layout(&font, &text, scale).width <= 576.0);
        // Not cut needlessly short: the cut text fills most of the width.
        assert!(layout(&font, &text, scale).width > 500.0, "{text}");
    }
}
