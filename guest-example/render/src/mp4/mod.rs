//! Video in MP4: RGB frames in, a fast-start MP4 (moov before mdat) out, in pure Rust, the
//! same bytes natively and under wasm32-wasip2, as H.264 ([`h264`]) or AV1 ([`av1`]), muxed by
//! `muxide`.
//!
//! The colour conversion is BT.709 limited range, in integers, chroma sited left (H.264's
//! default, AV1's "vertical" position), signalled in the stream: a browser shows the frames the
//! renderer drew, to within coding error.

use std::fmt;

use rusty_h264_common::YuvFrame;

use crate::{Image, RenderError};

mod av1;
mod duration;
mod h264;
mod join;

pub use join::{Mp4Clip, join_clips, read_clip};

/// The H.264 QP the demo encodes at: about 44 dB Y-PSNR for its frames at about 130 kbit/s.
pub const DEFAULT_QP: u8 = 28;

/// The AV1 quantiser (rav1e's scale, 0 to 255) that gives about the H.264 default's quality.
pub const DEFAULT_AV1_QUANTIZER: u8 = 100;

fn encode_error(what: &str, e: impl std::fmt::Display) -> RenderError {
    RenderError::Encode(format!("{what}: {e}"))
}

/// A codec [`Mp4Encoder`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// H.264 High profile: plays everywhere.
    H264,
    /// AV1 main profile: royalty-free and smaller, much slower to encode.
    Av1,
}

impl Codec {
    /// Its name in configuration and manifests: `h264` or `av1`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::Av1 => "av1",
        }
    }

    /// The codec named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        [Codec::H264, Codec::Av1]
            .into_iter()
            .find(|c| c.name() == name)
    }

    /// The constant quantisers it takes: 0 (best, biggest) to 51 for H.264, to 255 for AV1.
    pub fn quantizers(self) -> std::ops::RangeInclusive<u8> {
        match self {
            Codec::H264 => 0..=51,
            Codec::Av1 => 0..=255,
        }
    }

    /// Its default quantiser.
    pub fn default_quantizer(self) -> u8 {
        match self {
            Codec::H264 => DEFAULT_QP,
            Codec::Av1 => DEFAULT_AV1_QUANTIZER,
        }
    }

    fn muxide(self) -> muxide::api::VideoCodec {
        match self {
            Codec::H264 => muxide::api::VideoCodec::H264,
            Codec::Av1 => muxide::api::VideoCodec::Av1,
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::H264 => "H.264",
            Codec::Av1 => "AV1",
        })
    }
}

/// The codec's encoder (boxed: both are large, and of very different sizes).
enum Stream {
    H264(Box<h264::H264>),
    Av1(Box<av1::Av1>),
}

/// An MP4 being encoded: frames are converted and handed to the encoder as they come; the
/// coded pictures are kept (they are small) until [`Mp4Encoder::finish`] muxes them.
pub struct Mp4Encoder {
    stream: Stream,
    codec: Codec,
    width: u32,
    height: u32,
    fps: u32,
    frames: u32,
    /// AV1 packets as they come out (H.264 pictures are kept by its stream).
    samples: Vec<(Vec<u8>, bool)>,
}

impl Mp4Encoder {
    /// Starts a `width`×`height` H.264 video at `fps` frames per second, coded at constant
    /// `qp` (0 to 51; lower is better and bigger). Sizes must be even.
    pub fn new(width: u32, height: u32, fps: u32, qp: u8) -> Result<Self, RenderError> {
        Self::with_codec(Codec::H264, width, height, fps, qp)
    }

    /// Starts a `width`×`height` video in `codec` at `fps` frames per second, coded at
    /// constant `quantizer` (see [`Codec::quantizers`]). Sizes must be even.
    pub fn with_codec(
        codec: Codec,
        width: u32,
        height: u32,
        fps: u32,
        quantizer: u8,
    ) -> Result<Self, RenderError> {
        crate::byte_len(width, height)?;
        if !width.is_multiple_of(2) || !height.is_multiple_of(2) || width < 16 || height < 16 {
            return Err(RenderError::InvalidSize(format!(
                "an {codec} video must be at least 16x16 with even sides, not {width}x{height}"
            )));
        }
        let quantizers = codec.quantizers();
        if !(1..=240).contains(&fps) || !quantizers.contains(&quantizer) {
            return Err(RenderError::InvalidSize(format!(
                "the frame rate must be 1 to 240 and the {codec} quantiser {} to {}, not {fps} \
                 and {quantizer}",
                quantizers.start(),
                quantizers.end()
            )));
        }
        let stream = match codec {
            Codec::H264 => Stream::H264(Box::new(h264::H264::new(width, height, fps, quantizer)?)),
            Codec::Av1 => Stream::Av1(Box::new(av1::Av1::new(width, height, fps, quantizer)?)),
        };
        Ok(Mp4Encoder {
            stream,
            codec,
            width,
            height,
            fps,
            frames: 0,
            samples: Vec::new(),
        })
    }

    /// Encodes the next frame.
    pub fn push(&mut self, image: &Image) -> Result<(), RenderError> {
        if (image.width(), image.height()) != (self.width, self.height) {
            return Err(RenderError::InvalidSize(format!(
                "a {}x{} frame in a {}x{} video",
                image.width(),
                image.height(),
                self.width,
                self.height
            )));
        }
        let frame = to_i420(image);
        match &mut self.stream {
            Stream::H264(stream) => stream.push(&frame),
            Stream::Av1(stream) => {
                stream.push((&frame.y, &frame.u, &frame.v), &mut self.samples)?
            }
        }
        self.frames += 1;
        Ok(())
    }

    /// How many frames were pushed.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Flushes the encoder and returns the whole MP4.
    pub fn finish(mut self) -> Result<Vec<u8>, RenderError> {
        let samples = match self.stream {
            Stream::H264(stream) => stream.finish(),
            Stream::Av1(mut stream) => {
                stream.finish(&mut self.samples)?;
                self.samples
            }
        };
        if samples.len() != self.frames as usize || self.frames == 0 {
            return Err(RenderError::Encode(format!(
                "{} frames were encoded into {} pictures",
                self.frames,
                samples.len()
            )));
        }
        mux(self.codec, (self.width, self.height, self.fps), samples)
    }
}

/// Muxes coded pictures (each with whether it is a sync picture) into a fast-start MP4 at
/// `fps`: Annex-B access units for H.264, temporal units without temporal delimiters for AV1.
/// The first must be a sync picture carrying the parameter sets (or sequence header).
pub(crate) fn mux(
    codec: Codec,
    (width, height, fps): (u32, u32, u32),
    samples: impl IntoIterator<Item = (Vec<u8>, bool)>,
) -> Result<Vec<u8>, RenderError> {
    let mut mp4 = Vec::new();
    let mut muxer = muxide::api::MuxerBuilder::new(&mut mp4)
        .video(codec.muxide(), width, height, f64::from(fps))
        .with_fast_start(true)
        .build()
        .map_err(|e| encode_error("cannot start the MP4", e))?;
    let mut count = 0;
    for (i, (sample, idr)) in samples.into_iter().enumerate() {
        // muxide's clock is 90 kHz, in which a frame of 1/fps s is a whole number of ticks
        // for every common rate; the last frame lasts as long as the one before it.
        muxer
            .write_video(i as f64 / f64::from(fps), &sample, idr)
            .map_err(|e| encode_error("cannot write a video sample", e))?;
        count += 1;
    }
    muxer
        .finish()
        .map_err(|e| encode_error("cannot finish the MP4", e))?;
    if count == 1 {
        duration::set_single_frame_duration(&mut mp4, fps)?;
    }
    Ok(mp4)
}

/// RGB8 to I420, BT.709 limited range, in integers (the same everywhere). Chroma is the
/// [1 2 1] average of three columns over two rows, sited left as H.264 assumes.
fn to_i420(image: &Image) -> YuvFrame {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let px = image.pixels();
    let mut f = YuvFrame::black(w, h);
    let rgb = |x: usize, y: usize| [0, 1, 2].map(|c| i32::from(px[(y * w + x) * 3 + c]));
    for y in 0..h {
        for x in 0..w {
            let [r, g, b] = rgb(x, y);
            // 16 + 219/255 × (0.2126 R + 0.7152 G + 0.0722 B), × 65536.
            f.y[y * w + x] = (((11966 * r + 40254 * g + 4064 * b + 32768) >> 16) + 16) as u8;
        }
    }
    let cw = w / 2;
    for cy in 0..h / 2 {
        for cx in 0..cw {
            let (mut r, mut g, mut b) = (0, 0, 0);
            for dy in 0..2 {
                for (dx, weight) in [(-1i32, 1), (0, 2), (1, 1)] {
                    let x = (2 * cx as i32 + dx).clamp(0, w as i32 - 1) as usize;
                    let [pr, pg, pb] = rgb(x, 2 * cy + dy);
                    (r, g, b) = (r + weight * pr, g + weight * pg, b + weight * pb);
                }
            }
            // r, g and b are 8 times the average; the shift divides by 8 as well.
            let u = (-6595 * r - 22189 * g + 28784 * b + (1 << 18)) >> 19;
            let v = (28784 * r - 26145 * g - 2639 * b + (1 << 18)) >> 19;
            f.u[cy * cw + cx] = (u + 128).clamp(16, 240) as u8;
            f.v[cy * cw + cx] = (v + 128).clamp(16, 240) as u8;
        }
    }
    f
}
