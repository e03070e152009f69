//! Clips joined into one MP4 without re-encoding: each clip's pictures are read out of its MP4
//! (with Mozilla's `mp4parse`, which Firefox uses on untrusted files) and muxed again, one
//! after another. That is only sound when every clip is in the same codec, was coded with the
//! same parameter sets (H.264) or sequence header (AV1) — the same size, profile, frame rate
//! and encoder settings — and starts with a sync picture, which references nothing before it;
//! [`join_clips`] checks all of it, so a mismatch is an error naming the clip, never a video
//! that decodes as garbage.
//!
//! One limit remains: the H.264 encoder numbers every IDR picture 0 (`idr_pic_id`), and H.264
//! asks two IDR pictures in a row to differ, which they do not where a one-frame H.264 clip
//! is followed by another clip. Decoders that find pictures by their first macroblock (ffmpeg
//! and Chromium do) show both; renumbering would mean rewriting and re-aligning each slice
//! header.

use std::io::Cursor;

use mp4parse::unstable::{CheckedInteger, create_sample_table};
use mp4parse::{SampleEntry, TrackType, VideoCodecSpecific};

use super::Codec;
use crate::RenderError;

#[cfg(test)]
#[path = "join_tests.rs"]
mod tests;

fn decode_error(message: impl std::fmt::Display) -> RenderError {
    RenderError::Decode(format!("MP4: {message}"))
}

/// A clip read out of an MP4: its coded pictures in decoding order, as Annex-B access units
/// (H.264) or temporal units (AV1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mp4Clip {
    codec: Codec,
    width: u32,
    height: u32,
    fps: u32,
    /// The sequence and picture parameter sets of its `avcC` box, as NAL units (H.264), or
    /// its whole `av1C` box (AV1).
    parameter_sets: Vec<Vec<u8>>,
    /// Each picture, and whether it is a sync (IDR or key) picture.
    samples: Vec<(Vec<u8>, bool)>,
}

impl Mp4Clip {
    /// Its codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Its width and height in pixels.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Its frames per second.
    pub fn fps(&self) -> u32 {
        self.fps
    }

    /// How many pictures it has.
    pub fn frames(&self) -> u32 {
        u32::try_from(self.samples.len()).unwrap_or(u32::MAX)
    }

    /// Its coded pictures in decoding order, each in Annex-B form and whether it is a sync
    /// picture.
    pub fn pictures(&self) -> impl Iterator<Item = (&[u8], bool)> {
        self.samples
            .iter()
            .map(|(data, sync)| (data.as_slice(), *sync))
    }

    /// Why this clip cannot follow `first` in a video without re-encoding, if it cannot: a
    /// phrase such as "is 24 fps, not 12 like the first clip, so it cannot be joined to it
    /// without re-encoding".
    pub fn mismatch(&self, first: &Mp4Clip) -> Option<String> {
        let differs = if self.codec != first.codec {
            format!("is {}, not {} like the first clip", self.codec, first.codec)
        } else if self.size() != first.size() {
            format!(
                "is {}x{}, not {}x{} like the first clip",
                self.width, self.height, first.width, first.height
            )
        } else if self.fps != first.fps {
            format!("is {} fps, not {} like the first clip", self.fps, first.fps)
        } else if self.parameter_sets != first.parameter_sets {
            "was encoded with other settings than the first clip".to_owned()
        } else {
            return None;
        };
        Some(format!(
            "{differs}, so it cannot be joined to it without re-encoding"
        ))
    }
}

/// Reads an MP4 holding one H.264 or AV1 video track at a constant, whole frame rate whose
/// first picture is a sync picture. Anything else (another codec, several video tracks, a variable
/// frame rate, reordered frames, a sample or NAL unit running past its end) is an error.
pub fn read_clip(bytes: &[u8]) -> Result<Mp4Clip, RenderError> {
    let context = mp4parse::read_mp4(&mut Cursor::new(bytes)).map_err(decode_error)?;
    let mut videos = context
        .tracks
        .iter()
        .filter(|t| t.track_type == TrackType::Video);
    let (Some(track), None) = (videos.next(), videos.next()) else {
        return Err(decode_error("a clip must have exactly one video track"));
    };
    let entry = match track.stsd.as_ref().map(|d| d.descriptions.as_slice()) {
        Some([SampleEntry::Video(entry)]) => entry,
        _ => {
            return Err(decode_error(
                "the video track has no single video sample entry",
            ));
        }
    };
    let (codec, length_size, parameter_sets) = match &entry.codec_specific {
        VideoCodecSpecific::AVCConfig(avcc) => {
            let (length_size, sets) = parse_avcc(avcc)?;
            (Codec::H264, length_size, sets)
        }
        VideoCodecSpecific::AV1Config(av1c) if av1c.raw_config.len() > 4 => {
            (Codec::Av1, 0, vec![av1c.raw_config.to_vec()])
        }
        VideoCodecSpecific::AV1Config(_) => {
            return Err(decode_error(
                "the AV1 clip's av1C box holds no sequence header; the stage joins only clips \
                 that carry it there",
            ));
        }
        _ => return Err(decode_error("the video is neither H.264 nor AV1")),
    };
    let table = create_sample_table(track, CheckedInteger(0))
        .ok_or_else(|| decode_error("the video track's sample table is incomplete"))?;
    let decode_times: Vec<i64> = table.iter().map(|t| t.start_decode.0).collect();
    let fps = frame_rate(track, &decode_times)?;
    // Samples follow one another in the file without overlapping, so together they are no
    // larger than it (start codes can at most quadruple them); with the parameter sets put in
    // front of sync pictures that lack them, what is read stays within this budget, so a
    // crafted file cannot make it balloon.
    let mut budget = bytes.len().saturating_mul(4).saturating_add(16 << 20);
    let mut end_of_last = 0u64;
    let mut samples = Vec::with_capacity(table.len());
    for (i, indice) in table.iter().enumerate() {
        if indice.start_composition.0 != indice.start_decode.0 {
            return Err(decode_error(
                "the clip reorders frames (B frames are not joined)",
            ));
        }
        let (start, end) = (indice.start_offset.0, indice.end_offset.0);
        if start < end_of_last || end <= start {
            return Err(decode_error(format!(
                "sample {i} is empty or overlaps the one before it"
            )));
        }
        end_of_last = end;
        let data = usize::try_from(start)
            .ok()
            .zip(usize::try_from(end).ok())
            .and_then(|(start, end)| bytes.get(start..end))
            .ok_or_else(|| decode_error(format!("sample {i} lies outside the file")))?;
        let sample = match codec {
            Codec::H264 => {
                let sample = to_annex_b(data, length_size).ok_or_else(|| {
                    decode_error(format!("sample {i} has a NAL unit past its end"))
                })?;
                // The parameter sets may live only in `avcC`: put them in front of every sync
                // picture, as an Annex-B stream needs.
                let params = parameter_sets
                    .iter()
                    .flat_map(|nal| [&[0, 0, 0, 1][..], nal]);
                with_prefix(sample, indice.sync && !has_sps(data, length_size), params)
            }
            // Likewise the sequence header may live only in `av1C` (after its 4 bytes).
            Codec::Av1 => with_prefix(
                data.to_vec(),
                indice.sync && !has_sequence_header(data),
                parameter_sets.iter().map(|c| &c[4..]),
            ),
        };
        budget = budget
            .checked_sub(sample.len())
            .ok_or_else(|| decode_error("the clip's samples add up to more than it holds"))?;
        samples.push((sample, indice.sync));
    }
    if !samples.first().is_some_and(|s| s.1) {
        return Err(decode_error("a clip must start with a sync picture"));
    }
    Ok(Mp4Clip {
        codec,
        width: u32::from(entry.width),
        height: u32::from(entry.height),
        fps,
        parameter_sets,
        samples,
    })
}

/// Joins clips into one fast-start MP4, in order, copying their coded pictures. Every clip
/// must match the first in size, frame rate and parameter sets.
pub fn join_clips(clips: &[Mp4Clip]) -> Result<Vec<u8>, RenderError> {
    let Some(first) = clips.first() else {
        return Err(RenderError::InvalidSize(
            "there are no clips to join".into(),
        ));
    };
    for (clip, number) in clips.iter().zip(1..).skip(1) {
        if let Some(differs) = clip.mismatch(first) {
            return Err(RenderError::InvalidSize(format!("clip {number} {differs}")));
        }
    }
    let samples = clips.iter().flat_map(|c| c.samples.iter().cloned());
    super::mux(first.codec, (first.width, first.height, first.fps), samples)
}

/// The NAL length size and the parameter sets of an `AVCDecoderConfigurationRecord`.
fn parse_avcc(avcc: &[u8]) -> Result<(usize, Vec<Vec<u8>>), RenderError> {
    let bad = || decode_error("the avcC box is malformed");
    let (&version, rest) = avcc.split_first().ok_or_else(bad)?;
    let length_size = usize::from(rest.get(3).ok_or_else(bad)? & 3) + 1;
    if version != 1 || length_size == 3 {
        return Err(bad());
    }
    let mut at = 5;
    let mut sets = Vec::new();
    for mask in [0x1f, 0xff] {
        let count = avcc.get(at).ok_or_else(bad)? & mask;
        at += 1;
        for _ in 0..count {
            let len = avcc.get(at..at + 2).ok_or_else(bad)?;
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            sets.push(avcc.get(at + 2..at + 2 + len).ok_or_else(bad)?.to_vec());
            at += 2 + len;
        }
    }
    Ok((length_size, sets))
}

/// The track's frame rate: a whole number of frames per second, 1 to 240, at which every
/// sample is decoded at `i / fps` s from the first, to within a tick of the time scale (a
/// muxer rounds each time stamp to its clock: at 90 kHz, 7 fps is 12857 or 12858 ticks a
/// frame). A lone sample's rate is its duration's.
fn frame_rate(track: &mp4parse::Track, decode_times: &[i64]) -> Result<u32, RenderError> {
    let timescale = i128::from(track.timescale.map_or(0, |t| t.0));
    let varies = || decode_error("the clip's frame rate is not constant");
    let (count, last) = (decode_times.len(), decode_times.last().copied());
    // Over how many ticks `count - 1` frames are spread (or one frame lasts).
    let (frames, span) = match (count, last) {
        (0, _) | (_, None) => return Err(decode_error("the clip has no pictures")),
        (1, _) => match track.stts.as_ref().map(|s| s.samples.as_slice()) {
            Some([only]) => (1, i128::from(only.sample_delta)),
            _ => return Err(varies()),
        },
        (n, Some(last)) => (n as i128 - 1, i128::from(last)),
    };
    let fps = (span > 0 && timescale > 0)
        .then(|| (2 * frames * timescale + span) / (2 * span))
        .filter(|fps| (1..=240).contains(fps))
        .ok_or_else(|| {
            decode_error(format!(
                "{frames} frame(s) in {span}/{timescale} s is not a whole rate from 1 to 240 fps"
            ))
        })?;
    for (i, &at) in (0i128..).zip(decode_times) {
        // |at - i·timescale/fps| ≤ 1 tick, in integers.
        if (i128::from(at) * fps - i * timescale).abs() > fps {
            return Err(varies());
        }
    }
    if count == 1 && (span * fps - timescale).abs() > fps {
        return Err(varies());
    }
    Ok(u32::try_from(fps).unwrap_or(u32::MAX))
}

/// Length-prefixed NAL units to Annex-B (a 4-byte start code before each); `None` if a
/// length runs past the end.
fn to_annex_b(mut data: &[u8], length_size: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() + 16);
    while !data.is_empty() {
        let (len, rest) = data.split_at_checked(length_size)?;
        let len = len.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b));
        let (nal, rest) = rest.split_at_checked(len)?;
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
        data = rest;
    }
    Some(out)
}

/// `sample`, after the `prefix` pieces if `needed`.
fn with_prefix<'a>(
    sample: Vec<u8>,
    needed: bool,
    prefix: impl Iterator<Item = &'a [u8]>,
) -> Vec<u8> {
    if !needed {
        return sample;
    }
    let mut out: Vec<u8> = prefix.flatten().copied().collect();
    out.extend_from_slice(&sample);
    out
}

/// Whether length-prefixed NAL units hold a sequence parameter set.
fn has_sps(mut data: &[u8], length_size: usize) -> bool {
    while let Some((len, rest)) = data.split_at_checked(length_size) {
        let len = len.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b));
        let Some((nal, rest)) = rest.split_at_checked(len) else {
            return false;
        };
        if nal.first().is_some_and(|h| h & 0x1f == 7) {
            return true;
        }
        data = rest;
    }
    false
}

/// Whether a temporal unit holds a sequence header OBU (type 1). OBUs without a size field
/// end the search, as they end the unit.
fn has_sequence_header(mut data: &[u8]) -> bool {
    while let Some(&header) = data.first() {
        if (header >> 3) & 0x0f == 1 {
            return true;
        }
        let start = 1 + usize::from(header & 0x04 != 0);
        let Some(next) = (header & 0x02 != 0)
            .then(|| leb128(data.get(start..)?))
            .flatten()
            .and_then(|(size, leb)| (start + leb).checked_add(size))
        else {
            return false;
        };
        let Some(rest) = data.get(next..) else {
            return false;
        };
        data = rest;
    }
    false
}

/// An unsigned LEB128 number and how many bytes it took (at most 8, as AV1 allows); `None`
/// past 2^32 − 1 (AV1's limit), whatever the width of `usize`.
pub(super) fn leb128(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().take(8).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let value = u32::try_from(value).ok()?;
            return Some((usize::try_from(value).ok()?, i + 1));
        }
    }
    None
}
