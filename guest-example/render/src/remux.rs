//! Joining animated PNGs end to end without re-encoding them: a remux, as a video editor joins
//! clips of the same codec.
//!
//! An APNG is a PNG whose frames are each described by an `fcTL` chunk (size, offset, delay,
//! dispose and blend operations, a sequence number) followed by their compressed pixels: in
//! `IDAT` chunks for the first frame when it doubles as the PNG's default image, in `fdAT`
//! chunks (`IDAT` data behind a sequence number) otherwise. Joining clips of the same size and
//! pixel format therefore needs no decompression at all: copy every clip's `fcTL` and frame
//! data, renumber the sequence, turn `IDAT` into `fdAT` (or back, for the very first frame of
//! the result) and announce the total frame count in the result's `acTL`.
//!
//! The joiner streams: it reads each clip from any [`Read`] and writes to any [`Write`] through
//! a small buffer, so its memory does not grow with the clips. Every input chunk's CRC is
//! checked, and anything the remux cannot carry over exactly is refused rather than guessed:
//! a pixel format other than 8-bit RGB, interlacing, transparency (`tRNS`), palettes, and clips
//! whose first frame does not cover the whole picture, colour-space chunks (`gAMA`, `cHRM`,
//! `sRGB`, `iCCP`, `cICP`) and undefined dispose or blend operations. With those rules a
//! joined frame looks exactly as it did in its own clip: each clip starts with a full, opaque
//! frame, and a first frame's "revert to previous" is written as the "clear" it meant there,
//! so nothing of the previous clip shows through. Other ancillary chunks (text, timestamps)
//! are dropped.

use std::io::{Read, Write};

use crate::RenderError;

/// The eight bytes every PNG starts with.
pub const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

/// The largest chunk length the PNG format allows (2³¹ − 1).
const MAX_CHUNK_LEN: u32 = 0x7fff_ffff;

/// How many bytes of a chunk are copied at a time.
const COPY_BUFFER: usize = 64 * 1024;

/// PNG colour type 2: red, green and blue samples, no alpha.
const COLOUR_RGB: u8 = 2;

fn invalid(message: impl Into<String>) -> RenderError {
    RenderError::Decode(message.into())
}

fn io_error(error: std::io::Error) -> RenderError {
    RenderError::Encode(error.to_string())
}

/// What the first chunks of an animated PNG say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApngHeader {
    /// Width of the picture in pixels.
    pub width: u32,
    /// Height of the picture in pixels.
    pub height: u32,
    /// How many frames its `acTL` announces.
    pub frames: u32,
}

/// Reads the header of an animated 8-bit RGB PNG from `input`: its signature, `IHDR` and
/// `acTL`, stopping there. Fails if the input is not such a file, or is one the joiner cannot
/// carry over (see the module docs).
pub fn read_apng_header(input: &mut impl Read) -> Result<ApngHeader, RenderError> {
    let mut reader = ChunkReader::new(input);
    reader.signature()?;
    let (width, height) = reader.ihdr()?;
    loop {
        let chunk = reader.next_chunk()?;
        match &chunk.kind {
            b"acTL" => {
                let data = reader.small_data(&chunk, 8)?;
                return Ok(ApngHeader {
                    width,
                    height,
                    frames: be_u32(&data[0..4]),
                });
            }
            b"IDAT" | b"IEND" => {
                return Err(invalid(
                    "the PNG is not animated: it has no acTL chunk before its image data",
                ));
            }
            kind => {
                reader.check_ancillary(kind)?;
                reader.skip(&chunk)?;
            }
        }
    }
}

/// An animated PNG being assembled from clips; see the module docs.
pub struct ApngJoiner<W: Write> {
    out: W,
    width: u32,
    height: u32,
    /// The frame count announced in the result's `acTL`.
    frames: u32,
    /// How many `fcTL` chunks have been written.
    frames_started: u32,
    /// The next sequence number of an `fcTL` or `fdAT` chunk.
    sequence: u32,
    buffer: Vec<u8>,
}

impl<W: Write> ApngJoiner<W> {
    /// Starts a `width` × `height` animation of exactly `frames` frames (at least 1), looping
    /// forever, and writes its signature, `IHDR` and `acTL` to `out`.
    pub fn new(mut out: W, width: u32, height: u32, frames: u32) -> Result<Self, RenderError> {
        crate::byte_len(width, height)?;
        if frames == 0 {
            return Err(RenderError::InvalidSize(
                "an animation needs at least 1 frame".to_owned(),
            ));
        }
        out.write_all(&PNG_SIGNATURE).map_err(io_error)?;
        let mut ihdr = Vec::with_capacity(13);
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        // 8 bits per sample, RGB, deflate, adaptive filtering, not interlaced.
        ihdr.extend_from_slice(&[8, COLOUR_RGB, 0, 0, 0]);
        write_chunk(&mut out, b"IHDR", &[&ihdr])?;
        // The frame count, then 0 plays: loop forever.
        write_chunk(
            &mut out,
            b"acTL",
            &[&frames.to_be_bytes(), &0u32.to_be_bytes()],
        )?;
        Ok(Self {
            out,
            width,
            height,
            frames,
            frames_started: 0,
            sequence: 0,
            buffer: vec![0; COPY_BUFFER],
        })
    }

    /// How many frames have been appended so far.
    pub fn frames_written(&self) -> u32 {
        self.frames_started
    }

    /// Appends every frame of the animated PNG read from `input` and returns how many there
    /// were. The clip must have the animation's size and be 8-bit RGB; on an error the output
    /// holds part of the clip and should be discarded.
    pub fn append(&mut self, input: &mut impl Read) -> Result<u32, RenderError> {
        let mut reader = ChunkReader::new(input);
        reader.signature()?;
        let (width, height) = reader.ihdr()?;
        if (width, height) != (self.width, self.height) {
            return Err(RenderError::InvalidSize(format!(
                "a {width}x{height} clip does not fit a {}x{} video",
                self.width, self.height
            )));
        }
        let mut announced = None;
        let mut frames = 0u32;
        // Whether the data chunks being read belong to a frame (an fcTL came before them).
        let mut in_frame = false;
        loop {
            let chunk = reader.next_chunk()?;
            match &chunk.kind {
                b"acTL" => {
                    let data = reader.small_data(&chunk, 8)?;
                    if announced.replace(be_u32(&data[0..4])).is_some() {
                        return Err(invalid("the clip has two acTL chunks"));
                    }
                }
                b"fcTL" => {
                    if announced.is_none() {
                        return Err(invalid("the clip has an fcTL chunk before its acTL"));
                    }
                    let data = reader.small_data(&chunk, 26)?;
                    self.frame_control(&data, frames == 0)?;
                    frames += 1;
                    in_frame = true;
                }
                b"IDAT" if !in_frame => {
                    // The default image is not part of the animation: leave it out.
                    reader.skip(&chunk)?;
                }
                b"IDAT" => self.frame_data(&mut reader, &chunk, 0)?,
                b"fdAT" if !in_frame => {
                    return Err(invalid("the clip has an fdAT chunk before any fcTL"));
                }
                b"fdAT" => self.frame_data(&mut reader, &chunk, 4)?,
                b"IEND" => {
                    reader.skip(&chunk)?;
                    break;
                }
                kind => {
                    reader.check_ancillary(kind)?;
                    reader.skip(&chunk)?;
                }
            }
        }
        match announced {
            None => Err(invalid("the clip is not animated: it has no acTL chunk")),
            Some(announced) if announced != frames => Err(invalid(format!(
                "the clip announces {announced} frames but holds {frames}"
            ))),
            Some(_) => Ok(frames),
        }
    }

    /// The writer, without ending the file: for looking at it after an error.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Ends the file with `IEND` and hands back the writer; fails if the appended clips did
    /// not hold exactly the announced number of frames.
    pub fn finish(mut self) -> Result<W, RenderError> {
        if self.frames_started != self.frames {
            return Err(RenderError::InvalidSize(format!(
                "the video was announced with {} frames but the clips held {}",
                self.frames, self.frames_started
            )));
        }
        write_chunk(&mut self.out, b"IEND", &[])?;
        Ok(self.out)
    }

    /// Checks a clip's `fcTL` and writes it renumbered.
    fn frame_control(&mut self, data: &[u8], first_of_clip: bool) -> Result<(), RenderError> {
        let (w, h, x, y) = (
            be_u32(&data[4..8]),
            be_u32(&data[8..12]),
            be_u32(&data[12..16]),
            be_u32(&data[16..20]),
        );
        let inside = w > 0
            && h > 0
            && u64::from(x) + u64::from(w) <= u64::from(self.width)
            && u64::from(y) + u64::from(h) <= u64::from(self.height);
        if !inside {
            return Err(invalid(format!(
                "a frame of {w}x{h} at ({x}, {y}) does not fit the {}x{} picture",
                self.width, self.height
            )));
        }
        if first_of_clip && (x, y, w, h) != (0, 0, self.width, self.height) {
            return Err(invalid(
                "the clip's first frame does not cover the whole picture, so joining it would \
                 show the previous clip through it",
            ));
        }
        if self.frames_started == self.frames {
            return Err(RenderError::InvalidSize(format!(
                "the clips hold more than the {} frames announced",
                self.frames
            )));
        }
        let (dispose, blend) = (data[24], data[25]);
        if dispose > 2 || blend > 1 {
            return Err(invalid(format!(
                "a frame has dispose operation {dispose} and blend operation {blend}; APNG \
                 defines 0 to 2 and 0 to 1"
            )));
        }
        let mut control = data[4..].to_vec();
        if first_of_clip && dispose == 2 {
            // On a file's first frame "revert to previous" means "clear to background"; once
            // the frame follows another clip it would bring that clip back, so say what it
            // meant.
            control[20] = 1;
        }
        let sequence = self.next_sequence()?;
        write_chunk(&mut self.out, b"fcTL", &[&sequence.to_be_bytes(), &control])?;
        self.frames_started += 1;
        Ok(())
    }

    /// Copies one chunk of frame data (`IDAT`, or `fdAT` whose first `skip` bytes are its old
    /// sequence number) to the output: as `IDAT` for the result's first frame, which is also
    /// its default image, as a renumbered `fdAT` for every other.
    fn frame_data<R: Read>(
        &mut self,
        reader: &mut ChunkReader<'_, R>,
        chunk: &ChunkHeader,
        skip: u32,
    ) -> Result<(), RenderError> {
        if chunk.len < skip {
            return Err(invalid(
                "an fdAT chunk is too short to hold a sequence number",
            ));
        }
        let payload = chunk.len - skip;
        let mut crc_in = crc32fast::Hasher::new();
        crc_in.update(&chunk.kind);
        if skip > 0 {
            let mut sequence = [0u8; 4];
            reader.read_exact(&mut sequence)?;
            crc_in.update(&sequence);
        }
        let mut crc_out = crc32fast::Hasher::new();
        if self.frames_started == 1 {
            write_header(&mut self.out, b"IDAT", payload)?;
            crc_out.update(b"IDAT");
        } else {
            let sequence = self.next_sequence()?.to_be_bytes();
            let len = payload
                .checked_add(4)
                .filter(|&len| len <= MAX_CHUNK_LEN)
                .ok_or_else(|| invalid("an IDAT chunk is too long to become an fdAT chunk"))?;
            write_header(&mut self.out, b"fdAT", len)?;
            crc_out.update(b"fdAT");
            crc_out.update(&sequence);
            self.out.write_all(&sequence).map_err(io_error)?;
        }
        let mut left = payload as usize;
        while left > 0 {
            let n = left.min(self.buffer.len());
            let piece = &mut self.buffer[..n];
            reader.read_exact(piece)?;
            crc_in.update(piece);
            crc_out.update(piece);
            self.out.write_all(piece).map_err(io_error)?;
            left -= n;
        }
        reader.check_crc(crc_in.finalize(), &chunk.kind)?;
        self.out
            .write_all(&crc_out.finalize().to_be_bytes())
            .map_err(io_error)
    }

    fn next_sequence(&mut self) -> Result<u32, RenderError> {
        let sequence = self.sequence;
        self.sequence = sequence
            .checked_add(1)
            .filter(|&next| next <= MAX_CHUNK_LEN)
            .ok_or_else(|| RenderError::InvalidSize("too many chunks for one APNG".to_owned()))?;
        Ok(sequence)
    }
}

fn be_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(word)
}

fn write_header(out: &mut impl Write, kind: &[u8; 4], len: u32) -> Result<(), RenderError> {
    out.write_all(&len.to_be_bytes()).map_err(io_error)?;
    out.write_all(kind).map_err(io_error)
}

/// Writes a whole chunk whose data is the concatenation of `parts`.
fn write_chunk(out: &mut impl Write, kind: &[u8; 4], parts: &[&[u8]]) -> Result<(), RenderError> {
    let len: usize = parts.iter().map(|part| part.len()).sum();
    let len = u32::try_from(len).map_err(|_| invalid("a chunk is too long"))?;
    write_header(out, kind, len)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    for part in parts {
        crc.update(part);
        out.write_all(part).map_err(io_error)?;
    }
    out.write_all(&crc.finalize().to_be_bytes())
        .map_err(io_error)
}

/// A chunk's length and type, read; its data and CRC follow in the input.
struct ChunkHeader {
    len: u32,
    kind: [u8; 4],
}

/// Reads PNG chunks one by one from an input.
struct ChunkReader<'r, R: Read> {
    input: &'r mut R,
}

impl<'r, R: Read> ChunkReader<'r, R> {
    fn new(input: &'r mut R) -> Self {
        Self { input }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), RenderError> {
        self.input.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                invalid("the PNG ends in the middle of a chunk")
            } else {
                RenderError::Decode(format!("reading the PNG failed: {e}"))
            }
        })
    }

    fn signature(&mut self) -> Result<(), RenderError> {
        let mut signature = [0u8; 8];
        self.read_exact(&mut signature)?;
        if signature != PNG_SIGNATURE {
            return Err(invalid("the file does not start with the PNG signature"));
        }
        Ok(())
    }

    /// Reads the `IHDR` chunk, which must come first, and checks the pixel format.
    fn ihdr(&mut self) -> Result<(u32, u32), RenderError> {
        let chunk = self.next_chunk()?;
        if &chunk.kind != b"IHDR" {
            return Err(invalid("the PNG does not start with an IHDR chunk"));
        }
        let data = self.small_data(&chunk, 13)?;
        let (width, height) = (be_u32(&data[0..4]), be_u32(&data[4..8]));
        crate::byte_len(width, height)?;
        let (depth, colour, compression, filter, interlace) =
            (data[8], data[9], data[10], data[11], data[12]);
        if (depth, colour) != (8, COLOUR_RGB) {
            return Err(invalid(format!(
                "the PNG has bit depth {depth} and colour type {colour}; only 8-bit RGB (colour \
                 type 2) can be joined"
            )));
        }
        if (compression, filter, interlace) != (0, 0, 0) {
            return Err(invalid(
                "the PNG is interlaced or uses an unknown compression or filter method",
            ));
        }
        Ok((width, height))
    }

    fn next_chunk(&mut self) -> Result<ChunkHeader, RenderError> {
        let mut header = [0u8; 8];
        self.read_exact(&mut header)?;
        let len = be_u32(&header[0..4]);
        let mut kind = [0u8; 4];
        kind.copy_from_slice(&header[4..8]);
        if len > MAX_CHUNK_LEN {
            return Err(invalid(format!(
                "a chunk claims {len} bytes, more than PNG allows"
            )));
        }
        if !kind.iter().all(u8::is_ascii_alphabetic) {
            return Err(invalid(format!("a chunk has the invalid type {kind:02x?}")));
        }
        Ok(ChunkHeader { len, kind })
    }

    /// Reads the data of a chunk that must be exactly `len` bytes, and checks its CRC.
    fn small_data(&mut self, chunk: &ChunkHeader, len: u32) -> Result<Vec<u8>, RenderError> {
        if chunk.len != len {
            return Err(invalid(format!(
                "the {} chunk has {} bytes, not {len}",
                String::from_utf8_lossy(&chunk.kind),
                chunk.len
            )));
        }
        let mut data = vec![0u8; len as usize];
        self.read_exact(&mut data)?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&chunk.kind);
        crc.update(&data);
        self.check_crc(crc.finalize(), &chunk.kind)?;
        Ok(data)
    }

    /// Reads past a chunk's data, still checking its CRC.
    fn skip(&mut self, chunk: &ChunkHeader) -> Result<(), RenderError> {
        let mut crc = crc32fast::Hasher::new();
        crc.update(&chunk.kind);
        let mut buffer = [0u8; 4096];
        let mut left = chunk.len as usize;
        while left > 0 {
            let n = left.min(buffer.len());
            self.read_exact(&mut buffer[..n])?;
            crc.update(&buffer[..n]);
            left -= n;
        }
        self.check_crc(crc.finalize(), &chunk.kind)
    }

    fn check_crc(&mut self, computed: u32, kind: &[u8; 4]) -> Result<(), RenderError> {
        let mut stored = [0u8; 4];
        self.read_exact(&mut stored)?;
        if u32::from_be_bytes(stored) != computed {
            return Err(invalid(format!(
                "the {} chunk is corrupt: its CRC does not match",
                String::from_utf8_lossy(kind)
            )));
        }
        Ok(())
    }

    /// Refuses chunks the joiner cannot drop without changing the picture: unknown critical
    /// chunks (uppercase first letter), palettes, transparency, and colour-space chunks (the
    /// joined file has none, so dropping them would change the colours).
    fn check_ancillary(&self, kind: &[u8; 4]) -> Result<(), RenderError> {
        const CHANGE_THE_PICTURE: [&[u8; 4]; 6] =
            [b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"cICP"];
        let name = String::from_utf8_lossy(kind);
        if kind[0].is_ascii_uppercase() || CHANGE_THE_PICTURE.contains(&kind) {
            return Err(invalid(format!(
                "the PNG has a {name} chunk, which cannot be carried into a joined video"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
