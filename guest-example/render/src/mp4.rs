//! H.264 in MP4: RGB frames in, a fast-start MP4 (moov before mdat) out, in pure Rust, the same
//! bytes natively and under wasm32-wasip2.
//!
//! The encoder is `rusty_h264-encoder` (High profile, CABAC, 8×8 transform, constant QP, P
//! frames only) built without `std`: its `std` build reads dozens of environment variables that
//! change the output and starts threads, neither of which a deterministic sandboxed stage wants.
//! The muxer is `muxide`. Neither signals colour, so the sequence parameter set is rewritten
//! with a VUI: square pixels, BT.709 primaries, transfer and matrix, limited range, the frame
//! rate, and no frame reordering (players then show each frame as soon as it is decoded).
//!
//! The colour conversion is BT.709 limited range, in integers, chroma sited left (H.264's
//! default): a browser shows the frames the renderer drew, to within coding error.

use rusty_h264_common::nal::{emulation_prevent_into, emulation_unprevent, split_annex_b};
use rusty_h264_common::{BitWriter, Profile, YuvFrame};
use rusty_h264_encoder::{Encoder, EncoderConfig, Preset};

use crate::{Image, RenderError};

/// The QP the demo encodes at: about 45 dB Y-PSNR for its frames at about 140 kbit/s.
pub const DEFAULT_QP: u8 = 28;

/// Reference frames each P frame may predict from.
const REFERENCE_FRAMES: u32 = 3;

fn encode_error(what: &str, e: impl std::fmt::Display) -> RenderError {
    RenderError::Encode(format!("{what}: {e}"))
}

/// One access unit: a picture's NAL units (header and payload each, no start code).
struct AccessUnit {
    nals: Vec<Vec<u8>>,
    idr: bool,
    has_slice: bool,
}

/// An MP4 being encoded: frames are converted and handed to the encoder as they come; the
/// encoded pictures are kept (they are small) until [`Mp4Encoder::finish`] muxes them.
pub struct Mp4Encoder {
    encoder: Encoder,
    width: u32,
    height: u32,
    fps: u32,
    frames: u32,
    units: Vec<AccessUnit>,
}

impl Mp4Encoder {
    /// Starts a `width`×`height` video at `fps` frames per second, coded at constant `qp`
    /// (0 to 51; lower is better and bigger). Sizes must be even.
    pub fn new(width: u32, height: u32, fps: u32, qp: u8) -> Result<Self, RenderError> {
        crate::byte_len(width, height)?;
        if !width.is_multiple_of(2) || !height.is_multiple_of(2) || width < 16 || height < 16 {
            return Err(RenderError::InvalidSize(format!(
                "an H.264 video must be at least 16x16 with even sides, not {width}x{height}"
            )));
        }
        if !(1..=240).contains(&fps) || qp > 51 {
            return Err(RenderError::InvalidSize(format!(
                "the frame rate must be 1 to 240 and the QP 0 to 51, not {fps} and {qp}"
            )));
        }
        let mut cfg = EncoderConfig::new(width as usize, height as usize);
        cfg.profile = Profile::High;
        cfg.cabac = true;
        cfg.transform_8x8 = true;
        cfg.preset = Preset::Fast;
        cfg.qp = qp;
        cfg.bitrate = 0;
        cfg.framerate = fps as f32;
        cfg.gop_size = 4 * fps;
        cfg.min_keyint = fps;
        cfg.scenecut = 40;
        cfg.lookahead = 24;
        cfg.mbtree = true;
        cfg.bframes = 0;
        cfg.num_ref_frames = REFERENCE_FRAMES;
        let encoder = Encoder::new(cfg).map_err(|e| encode_error("cannot start H.264", e))?;
        Ok(Mp4Encoder {
            encoder,
            width,
            height,
            fps,
            frames: 0,
            units: Vec::new(),
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
        let stream = self.encoder.encode(&to_i420(image));
        self.frames += 1;
        split_access_units(&stream, &mut self.units, self.fps);
        Ok(())
    }

    /// How many frames were pushed.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Flushes the encoder and returns the whole MP4.
    pub fn finish(mut self) -> Result<Vec<u8>, RenderError> {
        let rest = self.encoder.flush();
        split_access_units(&rest, &mut self.units, self.fps);
        if self.units.len() != self.frames as usize || self.frames == 0 {
            return Err(RenderError::Encode(format!(
                "{} frames were encoded into {} pictures",
                self.frames,
                self.units.len()
            )));
        }
        let mut mp4 = Vec::new();
        let mut muxer = muxide::api::MuxerBuilder::new(&mut mp4)
            .video(
                muxide::api::VideoCodec::H264,
                self.width,
                self.height,
                f64::from(self.fps),
            )
            .with_fast_start(true)
            .build()
            .map_err(|e| encode_error("cannot start the MP4", e))?;
        let mut sample = Vec::new();
        for (i, unit) in self.units.iter().enumerate() {
            sample.clear();
            for nal in &unit.nals {
                sample.extend_from_slice(&[0, 0, 0, 1]);
                sample.extend_from_slice(nal);
            }
            // muxide's clock is 90 kHz, in which a frame of 1/fps s is a whole number of ticks
            // for every common rate; the last frame lasts as long as the one before it.
            muxer
                .write_video(i as f64 / f64::from(self.fps), &sample, unit.idr)
                .map_err(|e| encode_error("cannot write a video sample", e))?;
        }
        muxer
            .finish()
            .map_err(|e| encode_error("cannot finish the MP4", e))?;
        Ok(mp4)
    }
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

/// Splits an Annex-B stream into access units (H.264 7.4.1.2.3). With mb-tree on, one call of
/// the encoder returns a whole lookahead window, so the unit being filled carries over between
/// calls: a parameter set or SEI after a picture's slice, or a slice whose first macroblock is
/// 0, starts the next unit. Sequence parameter sets get the VUI (see [`sps_with_vui`]).
fn split_access_units(stream: &[u8], units: &mut Vec<AccessUnit>, fps: u32) {
    for nal in split_annex_b(stream) {
        let Some(&header) = nal.first() else { continue };
        let ty = header & 0x1f;
        let slice = ty == 1 || ty == 5;
        // first_mb_in_slice is ue(v); 0 is the single bit 1.
        let first_mb_zero = slice && nal.get(1).is_some_and(|b| b & 0x80 != 0);
        let open_has_slice = units.last().is_some_and(|u| u.has_slice);
        if units.is_empty() || (open_has_slice && (matches!(ty, 6..=9) || first_mb_zero)) {
            units.push(AccessUnit {
                nals: Vec::new(),
                idr: false,
                has_slice: false,
            });
        }
        if let Some(unit) = units.last_mut() {
            unit.idr |= ty == 5;
            unit.has_slice |= slice;
            unit.nals.push(if ty == 7 {
                sps_with_vui(nal, fps).unwrap_or_else(|| nal.to_vec())
            } else {
                nal.to_vec()
            });
        }
    }
}

/// The sequence parameter set `nal` (header and payload) with a VUI in place of none; `None`
/// if it already has one or cannot be read.
fn sps_with_vui(nal: &[u8], fps: u32) -> Option<Vec<u8>> {
    let rbsp = emulation_unprevent(nal.get(1..)?);
    let last = rbsp.iter().rposition(|&b| b != 0)?;
    // The bit index of the stop bit, and of the vui_parameters_present_flag before it.
    let stop = last * 8 + 7 - rbsp[last].trailing_zeros() as usize;
    let bit = |i: usize| rbsp[i / 8] >> (7 - i % 8) & 1 == 1;
    if stop == 0 || bit(stop - 1) {
        return None;
    }
    let mut w = BitWriter::new();
    // The encoder also sets constraint_set1_flag ("conforms to Main") on a High profile SPS
    // whose PPS turns the 8×8 transform on, which Main forbids: clear the constraint flags.
    let constraints_end = if rbsp[0] >= 100 { 16 } else { 8 };
    (0..constraints_end).for_each(|i| w.write_bit(i < 8 && bit(i)));
    (constraints_end..stop - 1).for_each(|i| w.write_bit(bit(i)));
    w.write_bit(true); // vui_parameters_present_flag
    w.write_bit(true); // aspect_ratio_info_present_flag
    w.write_bits(1, 8); // aspect_ratio_idc: 1:1
    w.write_bit(false); // overscan_info_present_flag
    w.write_bit(true); // video_signal_type_present_flag
    w.write_bits(5, 3); // video_format: unspecified
    w.write_bit(false); // video_full_range_flag: limited range
    w.write_bit(true); // colour_description_present_flag
    (0..3).for_each(|_| w.write_bits(1, 8)); // primaries, transfer, matrix: BT.709
    w.write_bit(false); // chroma_loc_info_present_flag (left, the default)
    w.write_bit(true); // timing_info_present_flag
    w.write_bits(1, 32); // num_units_in_tick
    w.write_bits(2 * fps, 32); // time_scale: two ticks a frame
    w.write_bit(true); // fixed_frame_rate_flag
    (0..3).for_each(|_| w.write_bit(false)); // no HRD parameters, no pic_struct
    w.write_bit(true); // bitstream_restriction_flag
    w.write_bit(true); // motion_vectors_over_pic_boundaries_flag
    // max_bytes_per_pic_denom and max_bits_per_mb_denom (0: no limit), the longest motion
    // vectors, max_num_reorder_frames 0 (P frames only), max_dec_frame_buffering.
    [0, 0, 15, 15, 0, REFERENCE_FRAMES]
        .into_iter()
        .for_each(|v| w.write_ue(v));
    w.rbsp_trailing_bits();
    let mut out = vec![nal[0]];
    emulation_prevent_into(&w.into_bytes(), &mut out);
    Some(out)
}
