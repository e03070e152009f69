//! PNG coding through the `png` crate: the keyframes, the contact sheet and the poster.
//!
//! The encoder writes to any [`Write`], so a stage can stream an image into an artifact writer
//! in chunks.

use std::io::{Cursor, Write};

use png::{BitDepth, ColorType, Compression, Transformations};

use crate::{Image, RenderError};

/// The eight bytes every PNG file starts with.
pub const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

fn encode_error(error: png::EncodingError) -> RenderError {
    RenderError::Encode(format!("PNG: {error}"))
}

fn decode_error(error: png::DecodingError) -> RenderError {
    RenderError::Decode(format!("PNG: {error}"))
}

/// Writes `image` to `out` as an RGB8 PNG.
pub fn encode_png<W: Write>(image: &Image, out: W) -> Result<(), RenderError> {
    let mut encoder = png::Encoder::new(out, image.width(), image.height());
    encoder.set_color(ColorType::Rgb);
    encoder.set_depth(BitDepth::Eight);
    // fdeflate's fast mode encodes the demo's keyframes about 3.4 times faster than the
    // default zlib level, natively, for about 30 % more bytes; under Wasm the gain is larger,
    // as miniz's match search is the code Cranelift compiles least well.
    encoder.set_compression(Compression::Fast);
    let mut writer = encoder.write_header().map_err(encode_error)?;
    writer
        .write_image_data(image.pixels())
        .map_err(encode_error)?;
    writer.finish().map_err(encode_error)
}

/// Decodes a PNG (of any colour type and bit depth) into an RGB8 image. Alpha is dropped,
/// grey is spread to the three channels, 16-bit samples are cut to 8 bits; of an animated PNG,
/// the default image is read.
pub fn decode_png(bytes: &[u8]) -> Result<Image, RenderError> {
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(Transformations::EXPAND | Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(decode_error)?;
    let (width, height) = (reader.info().width, reader.info().height);
    // Check the size before allocating for it: the header alone may claim gigapixels.
    crate::byte_len(width, height)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| RenderError::Decode(format!("a {width}x{height} image is too large")))?;
    let mut buffer = vec![0; size];
    let info = reader.next_frame(&mut buffer).map_err(decode_error)?;
    if info.bit_depth != BitDepth::Eight {
        return Err(RenderError::Decode(format!(
            "unexpected bit depth {:?} after expansion",
            info.bit_depth
        )));
    }
    let channels = match info.color_type {
        ColorType::Grayscale => 1,
        ColorType::GrayscaleAlpha => 2,
        ColorType::Rgb => 3,
        ColorType::Rgba => 4,
        ColorType::Indexed => {
            return Err(RenderError::Decode(
                "an indexed image was not expanded".to_owned(),
            ));
        }
    };
    let mut pixels = Vec::with_capacity(width as usize * height as usize * 3);
    for row in buffer.chunks(info.line_size).take(height as usize) {
        for px in row.chunks_exact(channels).take(width as usize) {
            if channels < 3 {
                pixels.extend_from_slice(&[px[0], px[0], px[0]]);
            } else {
                pixels.extend_from_slice(&px[..3]);
            }
        }
    }
    Image::from_rgb(width, height, pixels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Position, keyframe};

    fn gradient(width: u32, height: u32, seed: u8) -> Image {
        let mut pixels = Vec::new();
        for y in 0..height {
            for x in 0..width {
                pixels.extend_from_slice(&[x as u8 ^ seed, y as u8, seed]);
            }
        }
        Image::from_rgb(width, height, pixels).expect("the right length")
    }

    #[test]
    fn a_png_round_trips_through_the_decoder() {
        let image =
            keyframe("Harbour", "Boats at night", Position::Start, 96, 54).expect("renders");
        let mut bytes = Vec::new();
        encode_png(&image, &mut bytes).expect("encodes");
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
        let decoded = decode_png(&bytes).expect("decodes");
        assert!(decoded == image);
    }

    #[test]
    fn encoding_the_same_image_twice_gives_identical_bytes() {
        let image = keyframe("Dawn", "Sun over the sea", Position::End, 96, 54).expect("renders");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        encode_png(&image, &mut a).expect("encodes");
        encode_png(&image, &mut b).expect("encodes");
        assert_eq!(a, b);
    }

    #[test]
    fn a_failing_writer_is_an_encode_error() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk full"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let error = encode_png(&gradient(4, 4, 0), Broken).expect_err("fails");
        assert!(
            matches!(&error, RenderError::Encode(m) if m.contains("disk full")),
            "{error}"
        );
    }

    #[test]
    fn grey_and_alpha_pngs_decode_to_rgb_and_garbage_is_refused() {
        let mut bytes = Vec::new();
        let mut encoder = png::Encoder::new(&mut bytes, 2, 1);
        encoder.set_color(ColorType::GrayscaleAlpha);
        encoder.set_depth(BitDepth::Eight);
        let mut writer = encoder.write_header().expect("header");
        writer.write_image_data(&[10, 255, 200, 0]).expect("data");
        writer.finish().expect("finishes");
        let image = decode_png(&bytes).expect("decodes");
        assert_eq!(image.pixels(), [10, 10, 10, 200, 200, 200]);

        assert!(matches!(
            decode_png(b"not a png"),
            Err(RenderError::Decode(_))
        ));
        assert!(decode_png(&bytes[..bytes.len() / 2]).is_err());
    }
}
