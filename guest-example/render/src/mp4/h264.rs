//! H.264 through `rusty_h264-encoder` (High profile, CABAC, 8×8 transform, constant QP, P
//! frames only) built without `std`: its `std` build reads dozens of environment variables that
//! change the output and starts threads, neither of which a deterministic sandboxed stage wants.
//! The encoder does not signal colour, so the sequence parameter set is rewritten with a VUI:
//! square pixels, BT.709 primaries, transfer and matrix, limited range, the frame rate, and no
//! frame reordering (players then show each frame as soon as it is decoded).

use rusty_h264_common::nal::{emulation_prevent_into, emulation_unprevent, split_annex_b};
use rusty_h264_common::{BitWriter, Profile, YuvFrame};
use rusty_h264_encoder::{Encoder, EncoderConfig, Preset};

use super::encode_error;
use crate::RenderError;

/// Reference frames each P frame may predict from.
const REFERENCE_FRAMES: u32 = 3;

/// One access unit: a picture's NAL units (header and payload each, no start code).
struct AccessUnit {
    nals: Vec<Vec<u8>>,
    idr: bool,
    has_slice: bool,
}

/// An H.264 stream being encoded. With mb-tree on, the encoder hands back a whole lookahead
/// window at a time, so pictures are collected as access units until [`H264::finish`].
pub(super) struct H264 {
    encoder: Encoder,
    fps: u32,
    units: Vec<AccessUnit>,
}

impl H264 {
    /// A `width`×`height` stream at `fps`, coded at constant `qp` (0 to 51).
    pub(super) fn new(width: u32, height: u32, fps: u32, qp: u8) -> Result<Self, RenderError> {
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
        Ok(Self {
            encoder,
            fps,
            units: Vec::new(),
        })
    }

    /// Encodes a frame.
    pub(super) fn push(&mut self, frame: &YuvFrame) {
        let stream = self.encoder.encode(frame);
        split_access_units(&stream, &mut self.units, self.fps);
    }

    /// Flushes the encoder; every picture as an Annex-B access unit and whether it is IDR.
    pub(super) fn finish(mut self) -> Vec<(Vec<u8>, bool)> {
        let rest = self.encoder.flush();
        split_access_units(&rest, &mut self.units, self.fps);
        self.units
            .iter()
            .map(|unit| {
                let mut sample = Vec::new();
                for nal in &unit.nals {
                    sample.extend_from_slice(&[0, 0, 0, 1]);
                    sample.extend_from_slice(nal);
                }
                (sample, unit.idr)
            })
            .collect()
    }
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
