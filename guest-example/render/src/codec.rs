//! PNG and animated PNG (APNG) coding through the `png` crate.
//!
//! Encoders write to any [`Write`], so a stage can stream an animation into an artifact writer
//! frame by frame instead of holding the whole file, or all its frames, in memory.

use std::io::{Cursor, Write};

use png::{BitDepth, ColorType, Compression, Transformations};

use crate::{Image, RenderError};

fn encode_error(error: png::EncodingError) -> RenderError {
    RenderError::Encode(error.to_string())
}

fn decode_error(error: png::DecodingError) -> RenderError {
    RenderError::Decode(error.to_string())
}

/// Writes `image` to `out` as an RGB8 PNG.
pub fn encode_png<W: Write>(image: &Image, out: W) -> Result<(), RenderError> {
    let mut encoder = png::Encoder::new(out, image.width(), image.height());
    encoder.set_color(ColorType::Rgb);
    encoder.set_depth(BitDepth::Eight);
    // The trade the clips make (see `ApngEncoder::new`): fdeflate's fast mode encodes the
    // demo's keyframes about 3.4 times faster than the default zlib level, natively, for about
    // 30 % more bytes; under Wasm the gain is larger, as miniz's match search is the code
    // Cranelift compiles least well.
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

/// Decodes the frames of an animated PNG as the clips stage writes them — RGB8, every frame the
/// whole picture, all shown for the same time — handing each to `each` in turn. Returns the
/// frame count and the delay of a frame (numerator, denominator, in seconds).
pub fn decode_apng_frames(
    bytes: &[u8],
    mut each: impl FnMut(&Image) -> Result<(), RenderError>,
) -> Result<(u32, (u16, u16)), RenderError> {
    let decoder = png::Decoder::new(Cursor::new(bytes));
    let mut reader = decoder.read_info().map_err(decode_error)?;
    let info = reader.info();
    let (width, height) = (info.width, info.height);
    crate::byte_len(width, height)?;
    let frames = info
        .animation_control
        .ok_or_else(|| RenderError::Decode("not an animated PNG".to_owned()))?
        .num_frames;
    if info.color_type != ColorType::Rgb || info.bit_depth != BitDepth::Eight {
        return Err(RenderError::Decode(format!(
            "the frames are {:?} {:?}, not 8-bit RGB",
            info.color_type, info.bit_depth
        )));
    }
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| RenderError::Decode(format!("a {width}x{height} image is too large")))?;
    let mut buffer = vec![0; size];
    let mut delay = None;
    for index in 0..frames {
        reader.next_frame(&mut buffer).map_err(decode_error)?;
        let control = reader
            .info()
            .frame_control
            .ok_or_else(|| RenderError::Decode(format!("frame {index} has no frame control")))?;
        if (
            control.width,
            control.height,
            control.x_offset,
            control.y_offset,
        ) != (width, height, 0, 0)
        {
            return Err(RenderError::Decode(format!(
                "frame {index} covers {}x{} at ({}, {}), not the whole {width}x{height} picture",
                control.width, control.height, control.x_offset, control.y_offset
            )));
        }
        let this = (control.delay_num, control.delay_den);
        match delay {
            None => delay = Some(this),
            Some(first) if first != this => {
                return Err(RenderError::Decode(format!(
                    "frame {index} is shown for {}/{} s, the first for {}/{} s",
                    this.0, this.1, first.0, first.1
                )));
            }
            Some(_) => {}
        }
        let pixels = buffer[..width as usize * height as usize * 3].to_vec();
        each(&Image::from_rgb(width, height, pixels)?)?;
    }
    Ok((frames, delay.unwrap_or((1, 1))))
}

/// An animated PNG being written: a fixed number of RGB8 frames shown at a fixed rate, looping
/// forever. Every frame is compressed and written out as soon as it is given.
///
/// The first frame is also the PNG's default image, so viewers without APNG support show it.
pub struct ApngEncoder<W: Write> {
    writer: png::Writer<W>,
    width: u32,
    height: u32,
    frames: u32,
    written: u32,
}

impl<W: Write> ApngEncoder<W> {
    /// Starts an animation of `frames` frames (at least 1) of `width` × `height` pixels, shown
    /// at `fps` frames per second (1 to 65535), and writes its header to `out`.
    pub fn new(
        out: W,
        width: u32,
        height: u32,
        frames: u32,
        fps: u32,
    ) -> Result<Self, RenderError> {
        crate::byte_len(width, height)?;
        if frames == 0 {
            return Err(RenderError::InvalidSize(
                "an animation needs at least 1 frame".to_owned(),
            ));
        }
        let delay_den = u16::try_from(fps)
            .ok()
            .filter(|&fps| fps > 0)
            .ok_or_else(|| {
                RenderError::InvalidSize(format!(
                    "{fps} frames per second is out of range (1 to 65535)"
                ))
            })?;
        let mut encoder = png::Encoder::new(out, width, height);
        encoder.set_color(ColorType::Rgb);
        encoder.set_depth(BitDepth::Eight);
        // Every frame of a clip differs (the camera zooms), so each is compressed in full;
        // fdeflate's fast mode is about 20 times faster than the default zlib level for about
        // 15 % more bytes, which turns a clip stage of minutes into one of seconds.
        encoder.set_compression(Compression::Fast);
        encoder.set_animated(frames, 0).map_err(encode_error)?;
        // Each frame lasts 1/fps seconds.
        encoder
            .set_frame_delay(1, delay_den)
            .map_err(encode_error)?;
        let writer = encoder.write_header().map_err(encode_error)?;
        Ok(Self {
            writer,
            width,
            height,
            frames,
            written: 0,
        })
    }

    /// Compresses `image` as the next frame and writes it out.
    pub fn write_frame(&mut self, image: &Image) -> Result<(), RenderError> {
        if (image.width(), image.height()) != (self.width, self.height) {
            return Err(RenderError::InvalidSize(format!(
                "a {}x{} frame does not fit a {}x{} animation",
                image.width(),
                image.height(),
                self.width,
                self.height
            )));
        }
        if self.written == self.frames {
            return Err(RenderError::InvalidSize(format!(
                "the animation already has all its {} frames",
                self.frames
            )));
        }
        self.writer
            .write_image_data(image.pixels())
            .map_err(encode_error)?;
        self.written += 1;
        Ok(())
    }

    /// How many frames have been written so far.
    pub fn frames_written(&self) -> u32 {
        self.written
    }

    /// Ends the file; fails if fewer frames were written than announced.
    pub fn finish(self) -> Result<(), RenderError> {
        if self.written != self.frames {
            return Err(RenderError::InvalidSize(format!(
                "the animation was announced with {} frames but got {}",
                self.frames, self.written
            )));
        }
        self.writer.finish().map_err(encode_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Motion, Position, frame, keyframe};

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
    fn an_apng_round_trips_with_its_frame_count_and_delays() {
        let (start, end) = (gradient(32, 16, 0), gradient(32, 16, 200));
        let frames = 5;
        let mut bytes = Vec::new();
        let mut encoder = ApngEncoder::new(&mut bytes, 32, 16, frames, 12).expect("starts");
        let mut expected = Vec::new();
        for i in 0..frames {
            let t = i as f32 / (frames - 1) as f32;
            let image = frame(&start, &end, t, &Motion::default()).expect("blends");
            encoder.write_frame(&image).expect("writes");
            expected.push(image);
        }
        assert_eq!(encoder.frames_written(), frames);
        encoder.finish().expect("finishes");

        let mut reader = png::Decoder::new(Cursor::new(&bytes[..]))
            .read_info()
            .expect("a PNG");
        let control = reader.info().animation_control.expect("an animated PNG");
        assert_eq!((control.num_frames, control.num_plays), (frames, 0));
        let mut buffer = vec![0; reader.output_buffer_size().expect("small")];
        for image in &expected {
            reader.next_frame(&mut buffer).expect("a frame");
            let fctl = reader.info().frame_control.expect("frame control");
            assert_eq!((fctl.delay_num, fctl.delay_den), (1, 12));
            assert_eq!((fctl.width, fctl.height), (32, 16));
            assert_eq!(&buffer[..image.pixels().len()], image.pixels());
        }
        assert!(reader.next_frame(&mut buffer).is_err(), "no sixth frame");
        // The default image is the first frame.
        assert!(decode_png(&bytes).expect("decodes") == expected[0]);
    }

    #[test]
    fn a_one_frame_apng_is_valid_and_a_zero_frame_one_is_refused() {
        let image = gradient(8, 8, 7);
        let mut bytes = Vec::new();
        let mut encoder = ApngEncoder::new(&mut bytes, 8, 8, 1, 1).expect("starts");
        encoder.write_frame(&image).expect("writes");
        assert!(
            encoder.write_frame(&image).is_err(),
            "only one frame was announced"
        );
        encoder.finish().expect("finishes");
        let reader = png::Decoder::new(Cursor::new(&bytes[..]))
            .read_info()
            .expect("a PNG");
        assert_eq!(
            reader.info().animation_control.map(|c| c.num_frames),
            Some(1)
        );
        assert!(decode_png(&bytes).expect("decodes") == image);

        assert!(matches!(
            ApngEncoder::new(Vec::new(), 8, 8, 0, 12),
            Err(RenderError::InvalidSize(_))
        ));
        assert!(ApngEncoder::new(Vec::new(), 8, 8, 1, 0).is_err());
        assert!(ApngEncoder::new(Vec::new(), 8, 8, 1, 70_000).is_err());
    }

    #[test]
    fn an_apng_finished_early_or_fed_a_wrong_size_frame_is_an_error() {
        let mut encoder = ApngEncoder::new(Vec::new(), 8, 8, 3, 12).expect("starts");
        assert!(encoder.write_frame(&gradient(9, 8, 0)).is_err());
        encoder.write_frame(&gradient(8, 8, 0)).expect("writes");
        assert!(encoder.finish().is_err());
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
