//! A one-frame MP4 that lasts one frame. muxide times each sample by the next one's time
//! stamp, and the last by the one before it; a video of a single frame has neither, so muxide
//! gives its sample one tick (1/90000 s) and the movie a duration of 0, which players show as
//! nothing. [`set_single_frame_duration`] writes the real durations into the boxes muxide
//! made: `mvhd`, `tkhd` and `mdhd` (all version 0 for so short a video) and the one `stts`
//! entry.

use crate::RenderError;

fn malformed(what: &str) -> RenderError {
    RenderError::Encode(format!("the muxed MP4 has an unexpected {what} box"))
}

fn word(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn set_word(bytes: &mut [u8], at: usize, value: u32) -> Option<()> {
    bytes
        .get_mut(at..at + 4)?
        .copy_from_slice(&value.to_be_bytes());
    Some(())
}

/// Sets the durations of a one-sample, one-track MP4 to one frame at `fps`.
pub(super) fn set_single_frame_duration(mp4: &mut [u8], fps: u32) -> Result<(), RenderError> {
    let mut movie_timescale = None;
    let mut media_timescale = None;
    walk(mp4, &mut |name, payload| {
        // Every box patched here starts with its version (0) and flags.
        let version_0 = payload.first() == Some(&0);
        let frame = |timescale: u32| (timescale + fps / 2) / fps.max(1);
        let done = match name {
            b"mvhd" if version_0 => word(payload, 12).and_then(|ts| {
                movie_timescale = Some(ts);
                set_word(payload, 16, frame(ts))
            }),
            b"tkhd" if version_0 => movie_timescale.and_then(|ts| set_word(payload, 20, frame(ts))),
            b"mdhd" if version_0 => word(payload, 12).and_then(|ts| {
                media_timescale = Some(ts);
                set_word(payload, 16, frame(ts))
            }),
            // One entry: a count of 1 and the sample's delta.
            b"stts" if word(payload, 4) == Some(1) && word(payload, 8) == Some(1) => {
                media_timescale.and_then(|ts| set_word(payload, 12, frame(ts)))
            }
            b"mvhd" | b"tkhd" | b"mdhd" | b"stts" => None,
            _ => Some(()),
        };
        done.ok_or_else(|| malformed(&String::from_utf8_lossy(name)))
    })
}

/// What [`walk`] calls with each box's name and payload.
type Visit<'a> = dyn FnMut(&[u8; 4], &mut [u8]) -> Result<(), RenderError> + 'a;

/// Calls `visit` on each box's name and payload, descending into the containers on the way to
/// the sample table.
fn walk(mut bytes: &mut [u8], visit: &mut Visit<'_>) -> Result<(), RenderError> {
    while bytes.len() >= 8 {
        let size = word(bytes, 0).map_or(0, |s| s as usize);
        if size < 8 || size > bytes.len() {
            return Err(malformed("sized"));
        }
        let (this, rest) = bytes.split_at_mut(size);
        let name = [this[4], this[5], this[6], this[7]];
        let payload = &mut this[8..];
        if matches!(&name, b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl") {
            walk(payload, visit)?;
        } else {
            visit(&name, payload)?;
        }
        bytes = rest;
    }
    Ok(())
}
