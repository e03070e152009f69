//! [`std::io`] adapters over the host's artifact calls, so encoders and decoders that work on
//! [`Read`] and [`Write`] stream through the artifact store instead of holding whole files.
//!
//! Both adapters keep the host's [`StageError`] when a call fails: the encoder or decoder only
//! sees an [`std::io::Error`], but the stage reports the host's own error, with its code.

use std::io::{self, Read, Write};

use crate::{ErrorCode, StageError};

/// An [`io::Write`] that hands bytes to `send` in chunks of exactly `chunk` bytes (the last
/// one shorter), e.g. to a host artifact writer's `write`.
pub struct ChunkedWriter<F: FnMut(&[u8]) -> Result<(), StageError>> {
    send: F,
    buffer: Vec<u8>,
    chunk: usize,
    written: u64,
    failure: Option<StageError>,
}

impl<F: FnMut(&[u8]) -> Result<(), StageError>> ChunkedWriter<F> {
    /// A writer sending chunks of `chunk` bytes (at least 1) to `send`.
    pub fn new(chunk: usize, send: F) -> Self {
        let chunk = chunk.max(1);
        Self {
            send,
            buffer: Vec::with_capacity(chunk),
            chunk,
            written: 0,
            failure: None,
        }
    }

    fn flush_buffer(&mut self) -> Result<(), StageError> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        if self.buffer.is_empty() {
            return Ok(());
        }
        if let Err(e) = (self.send)(&self.buffer) {
            self.failure = Some(e.clone());
            return Err(e);
        }
        self.written += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }

    /// Sends what is buffered and returns the number of bytes sent in all.
    pub fn finish(mut self) -> Result<u64, StageError> {
        self.flush_buffer()?;
        Ok(self.written)
    }

    /// The host's error, if a `send` failed; say it rather than the encoder's I/O error.
    pub fn take_failure(&mut self) -> Option<StageError> {
        self.failure.take()
    }
}

impl<F: FnMut(&[u8]) -> Result<(), StageError>> Write for ChunkedWriter<F> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Some(failure) = &self.failure {
            return Err(io::Error::other(failure.to_string()));
        }
        let room = self.chunk - self.buffer.len();
        let n = room.min(data.len());
        self.buffer.extend_from_slice(&data[..n]);
        if self.buffer.len() == self.chunk {
            self.flush_buffer()
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Chunks go out when full or at `finish`; a flush in between would send short ones.
        Ok(())
    }
}

/// An [`io::Read`] over ranged reads: `fetch(offset, length)` returns at most `length` bytes
/// from `offset`, and nothing at the end, as the host's `artifacts.read` does.
pub struct RangedReader<F: FnMut(u64, u32) -> Result<Vec<u8>, StageError>> {
    fetch: F,
    request: u32,
    offset: u64,
    buffer: Vec<u8>,
    position: usize,
    failure: Option<StageError>,
}

impl<F: FnMut(u64, u32) -> Result<Vec<u8>, StageError>> RangedReader<F> {
    /// A reader asking `fetch` for `request` bytes (at least 1) at a time.
    pub fn new(request: u32, fetch: F) -> Self {
        Self {
            fetch,
            request: request.max(1),
            offset: 0,
            buffer: Vec::new(),
            position: 0,
            failure: None,
        }
    }

    /// How many bytes have been fetched so far.
    pub fn fetched(&self) -> u64 {
        self.offset
    }

    /// The host's error, if a `fetch` failed; say it rather than the decoder's I/O error.
    pub fn take_failure(&mut self) -> Option<StageError> {
        self.failure.take()
    }
}

impl<F: FnMut(u64, u32) -> Result<Vec<u8>, StageError>> Read for RangedReader<F> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.position == self.buffer.len() {
            if out.is_empty() {
                return Ok(0);
            }
            match (self.fetch)(self.offset, self.request) {
                Ok(bytes) => {
                    if bytes.len() > self.request as usize {
                        let error = StageError::new(
                            ErrorCode::Io,
                            format!(
                                "the host returned {} bytes for a read of at most {}",
                                bytes.len(),
                                self.request
                            ),
                        );
                        self.failure = Some(error.clone());
                        return Err(io::Error::other(error.to_string()));
                    }
                    self.offset += bytes.len() as u64;
                    self.buffer = bytes;
                    self.position = 0;
                }
                Err(e) => {
                    self.failure = Some(e.clone());
                    return Err(io::Error::other(e.to_string()));
                }
            }
        }
        let n = out.len().min(self.buffer.len() - self.position);
        out[..n].copy_from_slice(&self.buffer[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

/// The error to report when an encoder or decoder working through an adapter failed: the
/// host's own error if there was one, else `io` with the codec's message.
pub fn stage_error(failure: Option<StageError>, codec_error: impl std::fmt::Display) -> StageError {
    failure.unwrap_or_else(|| StageError::new(ErrorCode::Io, codec_error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chunked_writer_sends_full_chunks_then_the_rest() {
        let mut sent: Vec<Vec<u8>> = Vec::new();
        let mut writer = ChunkedWriter::new(4, |chunk: &[u8]| {
            sent.push(chunk.to_vec());
            Ok(())
        });
        writer.write_all(b"abcdefghij").expect("writes");
        assert_eq!(writer.finish(), Ok(10));
        assert_eq!(
            sent,
            vec![b"abcd".to_vec(), b"efgh".to_vec(), b"ij".to_vec()]
        );
    }

    #[test]
    fn a_failed_send_is_kept_and_every_later_write_fails() {
        let mut writer = ChunkedWriter::new(2, |_: &[u8]| {
            Err(StageError::new(
                ErrorCode::LimitExceeded,
                "artifact too big",
            ))
        });
        assert!(writer.write_all(b"abc").is_err());
        assert!(writer.write_all(b"d").is_err());
        let failure = writer.take_failure().expect("kept");
        assert_eq!(failure.code, ErrorCode::LimitExceeded);
    }

    #[test]
    fn the_ranged_reader_reads_everything_in_requests_of_its_size() {
        let data: Vec<u8> = (0..=255).collect();
        let mut requests = Vec::new();
        let mut reader = RangedReader::new(100, |offset, length| {
            requests.push((offset, length));
            let start = (offset as usize).min(data.len());
            let end = (start + length as usize).min(data.len());
            Ok(data[start..end].to_vec())
        });
        let mut all = Vec::new();
        reader.read_to_end(&mut all).expect("reads");
        assert_eq!(all, data);
        assert_eq!(reader.fetched(), 256);
        drop(reader);
        assert_eq!(requests, vec![(0, 100), (100, 100), (200, 100), (256, 100)]);
    }

    #[test]
    fn the_ranged_reader_keeps_the_hosts_error_and_refuses_oversized_answers() {
        let mut reader = RangedReader::new(8, |_, _| {
            Err(StageError::new(ErrorCode::NotFound, "no such clip"))
        });
        let mut byte = [0u8; 1];
        assert!(reader.read(&mut byte).is_err());
        let error = stage_error(reader.take_failure(), "codec says eof");
        assert_eq!(error.code, ErrorCode::NotFound);

        let mut reader = RangedReader::new(2, |_, _| Ok(vec![0; 3]));
        assert!(reader.read(&mut byte).is_err());
        assert_eq!(stage_error(reader.take_failure(), "x").code, ErrorCode::Io);
    }
}
