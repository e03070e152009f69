//! AV1, the royalty-free codec, through `rav1e` built without its default features: pure Rust
//! (no assembly), single-threaded (no rayon), so it runs inside the sandbox and gives the same
//! bytes natively and under wasm32-wasip2.
//!
//! Settings: speed preset 10 (the fastest: AV1 is much slower to encode than H.264 even so),
//! constant quantiser, low latency (no frame reordering, so each packet is the next frame),
//! key frames every 4 s at most. The colour is the H.264 path's: the same BT.709 limited-range
//! 4:2:0 conversion, chroma sited left (AV1's "vertical" position), and all of it signalled in
//! the sequence header.

use rav1e::prelude::{
    ChromaSamplePosition, ChromaSampling, ColorDescription, ColorPrimaries, Config, Context,
    EncoderConfig, EncoderStatus, FrameType, MatrixCoefficients, PixelRange, Rational,
    SpeedSettings, TransferCharacteristics,
};

use super::join::leb128;
use crate::RenderError;

/// The OBU type AV1-in-MP4 says not to store in samples.
const OBU_TEMPORAL_DELIMITER: u8 = 2;

fn encode_error(what: &str, e: impl std::fmt::Display) -> RenderError {
    RenderError::Encode(format!("{what}: {e}"))
}

/// An AV1 stream being encoded; each packet is a frame's temporal unit.
pub(super) struct Av1 {
    context: Context<u8>,
    width: usize,
}

impl Av1 {
    /// A `width`×`height` stream at `fps`, coded at constant `quantizer` (0 to 255).
    pub(super) fn new(
        width: u32,
        height: u32,
        fps: u32,
        quantizer: u8,
    ) -> Result<Self, RenderError> {
        let encoder = EncoderConfig {
            width: width as usize,
            height: height as usize,
            time_base: Rational::new(1, u64::from(fps)),
            bit_depth: 8,
            chroma_sampling: ChromaSampling::Cs420,
            chroma_sample_position: ChromaSamplePosition::Vertical,
            pixel_range: PixelRange::Limited,
            color_description: Some(ColorDescription {
                color_primaries: ColorPrimaries::BT709,
                transfer_characteristics: TransferCharacteristics::BT709,
                matrix_coefficients: MatrixCoefficients::BT709,
            }),
            speed_settings: SpeedSettings::from_preset(10),
            quantizer: usize::from(quantizer),
            min_quantizer: quantizer,
            bitrate: 0,
            low_latency: true,
            min_key_frame_interval: u64::from(fps),
            max_key_frame_interval: 4 * u64::from(fps),
            ..EncoderConfig::default()
        };
        let context = Config::new()
            .with_encoder_config(encoder)
            .with_threads(1)
            .new_context()
            .map_err(|e| encode_error("cannot start AV1", e))?;
        Ok(Self {
            context,
            width: width as usize,
        })
    }

    /// Encodes a frame of I420 planes; the packets ready so far go to `samples`.
    pub(super) fn push(
        &mut self,
        (y, u, v): (&[u8], &[u8], &[u8]),
        samples: &mut Vec<(Vec<u8>, bool)>,
    ) -> Result<(), RenderError> {
        let mut frame = self.context.new_frame();
        let strides = [self.width, self.width / 2, self.width / 2];
        for ((plane, data), stride) in frame.planes.iter_mut().zip([y, u, v]).zip(strides) {
            plane.copy_from_raw_u8(data, stride, 1);
        }
        self.context
            .send_frame(frame)
            .map_err(|e| encode_error("cannot encode an AV1 frame", e))?;
        self.drain(samples)
    }

    /// Flushes the encoder; the rest of the packets go to `samples`.
    pub(super) fn finish(&mut self, samples: &mut Vec<(Vec<u8>, bool)>) -> Result<(), RenderError> {
        self.context.flush();
        self.drain(samples)
    }

    fn drain(&mut self, samples: &mut Vec<(Vec<u8>, bool)>) -> Result<(), RenderError> {
        loop {
            match self.context.receive_packet() {
                Ok(packet) => samples.push((
                    without_temporal_delimiters(&packet.data),
                    packet.frame_type == FrameType::KEY,
                )),
                Err(EncoderStatus::Encoded) => {}
                Err(EncoderStatus::NeedMoreData | EncoderStatus::LimitReached) => return Ok(()),
                Err(e) => return Err(encode_error("AV1 encoding failed", e)),
            }
        }
    }
}

/// A temporal unit's OBUs without its temporal delimiters (AV1-ISOBMFF 2.4: a sample should
/// not hold them). Every OBU rav1e writes carries its size; one that does not, or that runs
/// past the end, ends the walk and the rest is kept as it is.
fn without_temporal_delimiters(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    while let Some(&header) = data.first() {
        let has_extension = header & 0x04 != 0;
        let has_size = header & 0x02 != 0;
        let header_len = 1 + usize::from(has_extension);
        let Some((size, leb_len)) = has_size.then(|| leb128(data.get(header_len..)?)).flatten()
        else {
            break;
        };
        let Some(len) = (header_len + leb_len)
            .checked_add(size)
            .filter(|&n| n <= data.len())
        else {
            break;
        };
        if (header >> 3) & 0x0f != OBU_TEMPORAL_DELIMITER {
            out.extend_from_slice(&data[..len]);
        }
        data = &data[len..];
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporal_delimiters_are_dropped_and_other_obus_kept() {
        // A temporal delimiter (type 2, size 0), then a frame OBU (type 6) of 2 bytes.
        let unit = [0x12, 0x00, 0x32, 0x02, 0xaa, 0xbb];
        assert_eq!(without_temporal_delimiters(&unit), [0x32, 0x02, 0xaa, 0xbb]);
        // An OBU running past the end is kept as it is, not cut.
        assert_eq!(
            without_temporal_delimiters(&[0x32, 0x05, 1]),
            [0x32, 0x05, 1]
        );
        assert_eq!(leb128(&[0x80, 0x01]), Some((128, 2)));
        assert_eq!(leb128(&[0x80; 9]), None);
    }
}
