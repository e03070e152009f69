//! `vidpipe-render`: the pictures of the example pipeline, drawn procedurally and
//! deterministically.
//!
//! The keyframes stage turns each scene's words into two stills ([`keyframe`]), the clips stage
//! blends them into a video ([`frame`], [`Mp4Encoder`]) and the assemble stage joins the clips
//! ([`join_clips`]). Everything here is plain Rust that
//! builds natively and for `wasm32-wasip2`, and touches no clock, randomness or environment:
//! the same input always gives the same bytes, on every platform. To keep that promise across
//! platforms the drawing code uses only IEEE-exact float operations (`+ - * /`, `sqrt`,
//! rounding) and its own sine approximation, never the platform's `sin`, `exp` or `powf`.
//!
//! - [`palette`]: 5 colours derived from a stable hash of the scene's lowercase words, biased by
//!   words such as `night`, `storm`, `sea`, `gold`, `dawn`, `fire` or `forest`.
//! - [`keyframe`]: a sky gradient, a sun or moon, hills or waves, a few shapes whose number, size
//!   and place come from the words, and the scene title as real text (DejaVu Sans Bold, bundled
//!   in `fonts/` with its licence) on a dark translucent band. The start and end keyframes of a
//!   scene differ: the sun moves, the camera drifts, the light changes.
//! - [`frame`]: one in-between frame, a cross-fade plus a gentle zoom with bilinear sampling.
//! - [`encode_png`] and [`decode_png`]: RGB8 PNG through the `png` crate, written to any
//!   [`std::io::Write`] so a stage can stream them in chunks.
//! - [`Mp4Encoder`]: frames to H.264 (High profile) or AV1 (main profile), BT.709, in a
//!   fast-start MP4, in pure Rust.
//! - [`read_clip`] and [`join_clips`]: MP4 clips joined into one by copying their coded
//!   pictures (no re-encoding), after checking that they share their parameter sets.
//! - [`contact_sheet`]: every scene's keyframes, shrunk, in a grid with their titles.

mod canvas;
mod codec;
mod motion;
mod mp4;
mod palette;
mod scene;
mod sheet;
mod text;
mod util;

use std::fmt;

pub use codec::{PNG_SIGNATURE, decode_png, encode_png};
pub use motion::{Motion, frame};
pub use mp4::{
    Codec, DEFAULT_AV1_QUANTIZER, DEFAULT_QP, Mp4Clip, Mp4Encoder, join_clips, read_clip,
};
pub use palette::{Palette, palette};
pub use scene::{Position, keyframe, scenery};
pub use sheet::{SheetRow, contact_sheet, shrink};
pub use text::caption_band;

/// The largest width or height of an [`Image`]; it bounds the memory a single image may take
/// (at most 8192 × 8192 × 3 bytes = 192 MiB).
pub const MAX_DIMENSION: u32 = 8192;

/// An RGB image with 8 bits per channel, rows top to bottom, pixels left to right.
#[derive(Clone, PartialEq, Eq)]
pub struct Image {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Image {
    /// A black image of `width` × `height` pixels; both must be 1 to [`MAX_DIMENSION`].
    pub fn new(width: u32, height: u32) -> Result<Self, RenderError> {
        let len = byte_len(width, height)?;
        Ok(Self {
            width,
            height,
            pixels: vec![0; len],
        })
    }

    /// An image over `pixels`, which must hold exactly `width * height * 3` bytes.
    pub fn from_rgb(width: u32, height: u32, pixels: Vec<u8>) -> Result<Self, RenderError> {
        let len = byte_len(width, height)?;
        if pixels.len() != len {
            return Err(RenderError::InvalidSize(format!(
                "a {width}x{height} RGB image needs {len} bytes, not {}",
                pixels.len()
            )));
        }
        Ok(Self {
            width,
            height,
            pixels,
        })
    }

    /// Its width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Its height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Its pixels: `width * height` RGB triples, row by row.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Its pixels, to be changed in place.
    pub(crate) fn pixels_mut(&mut self) -> &mut [u8] {
        &mut self.pixels
    }

    /// The pixel at (`x`, `y`), or `None` outside the image.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        Some([self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]])
    }
}

impl fmt::Debug for Image {
    // Dumping hundreds of kilobytes of pixels helps nobody reading a failed assertion.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Image")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

/// The number of bytes of a `width` × `height` RGB image, if both are in range.
fn byte_len(width: u32, height: u32) -> Result<usize, RenderError> {
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(RenderError::InvalidSize(format!(
            "{width}x{height} is not a valid image size; width and height must be 1 to \
             {MAX_DIMENSION}"
        )));
    }
    Ok(width as usize * height as usize * 3)
}

/// Why rendering, encoding or decoding failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// An image size, frame count or frame rate is out of range, or images do not match.
    InvalidSize(String),
    /// An encoder (PNG, H.264, AV1 or MP4) failed, usually because the underlying writer failed.
    Encode(String),
    /// The bytes are not a PNG or MP4 this crate can read.
    Decode(String),
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidSize(message) => write!(f, "invalid size: {message}"),
            Self::Encode(message) => write!(f, "cannot encode: {message}"),
            Self::Decode(message) => write!(f, "cannot decode: {message}"),
        }
    }
}

impl std::error::Error for RenderError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_checks_its_size_and_its_byte_count() {
        assert!(Image::new(0, 10).is_err());
        assert!(Image::new(10, MAX_DIMENSION + 1).is_err());
        let image = Image::new(4, 3).expect("a small image");
        assert_eq!(image.pixels().len(), 36);
        assert_eq!(image.pixel(3, 2), Some([0, 0, 0]));
        assert_eq!(image.pixel(4, 0), None);
        assert!(Image::from_rgb(2, 2, vec![0; 11]).is_err());
        let image = Image::from_rgb(2, 1, vec![1, 2, 3, 4, 5, 6]).expect("6 bytes for 2x1");
        assert_eq!(image.pixel(1, 0), Some([4, 5, 6]));
    }
}
