use super::*;
use crate::mp4::Codec;
use crate::{Image, Mp4Encoder};

/// A `frames`-frame clip of a moving gradient, `w`×`h` at `fps` and `qp`, starting at frame
/// `from` of the motion.
fn clip(w: u32, h: u32, fps: u32, qp: u8, from: u32, frames: u32) -> Vec<u8> {
    clip_in(Codec::H264, (w, h, fps, qp), from, frames)
}

fn clip_in(codec: Codec, (w, h, fps, qp): (u32, u32, u32, u8), from: u32, frames: u32) -> Vec<u8> {
    let mut encoder = Mp4Encoder::with_codec(codec, w, h, fps, qp).expect("starts");
    for t in from..from + frames {
        let mut pixels = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                pixels.extend([
                    (x * 4 + t * 3) as u8,
                    (y * 5) as u8,
                    ((x + y + t) * 2) as u8,
                ]);
            }
        }
        encoder
            .push(&Image::from_rgb(w, h, pixels).expect("an image"))
            .expect("encodes");
    }
    assert_eq!(encoder.frames(), frames);
    encoder.finish().expect("an MP4")
}

#[test]
fn an_encoded_clip_reads_back_with_its_size_rate_and_pictures() {
    let bytes = clip(64, 48, 12, 28, 0, 30);
    assert_eq!(&bytes[4..8], b"ftyp");
    let read = read_clip(&bytes).expect("reads");
    assert_eq!(read.size(), (64, 48));
    assert_eq!(read.fps(), 12);
    assert_eq!(read.frames(), 30);
    assert!(read.samples[0].1, "starts with an IDR picture");
    assert_eq!(read.parameter_sets.len(), 2, "one SPS and one PPS");
    assert_eq!(read.parameter_sets[0][0] & 0x1f, 7);
    assert_eq!(read.parameter_sets[1][0] & 0x1f, 8);
}

#[test]
fn joined_clips_hold_the_very_pictures_of_each_clip_in_order() {
    let (a, b) = (clip(64, 48, 12, 28, 0, 13), clip(64, 48, 12, 28, 13, 7));
    let (a, b) = (read_clip(&a).expect("a"), read_clip(&b).expect("b"));
    let joined = join_clips(&[a.clone(), b.clone()]).expect("joins");
    let back = read_clip(&joined).expect("reads the join");
    assert_eq!(back.frames(), 20);
    assert_eq!(back.fps(), 12);
    let expected: Vec<_> = a.samples.iter().chain(&b.samples).cloned().collect();
    assert!(
        back.samples == expected,
        "the coded pictures are copied, not re-encoded"
    );
    assert_eq!(
        join_clips(&[a, b]).expect("joins again"),
        joined,
        "deterministic"
    );
}

#[test]
fn clips_that_cannot_be_joined_without_re_encoding_are_refused_naming_the_clip() {
    let base = read_clip(&clip(64, 48, 12, 28, 0, 3)).expect("reads");
    for (other, says) in [
        (
            clip(64, 48, 12, 20, 0, 3),
            "clip 2 was encoded with other settings",
        ),
        (clip(64, 48, 24, 28, 0, 3), "clip 2 is 24 fps, not 12"),
        (clip(32, 48, 12, 28, 0, 3), "clip 2 is 32x48, not 64x48"),
    ] {
        let other = read_clip(&other).expect("reads");
        let error = join_clips(&[base.clone(), other]).expect_err("refused");
        assert!(error.to_string().contains(says), "{error}");
    }
    assert!(join_clips(&[]).is_err());
}

#[test]
fn damaged_or_foreign_files_are_errors_never_panics() {
    for good in [
        clip(32, 32, 12, 30, 0, 4),
        clip_in(Codec::Av1, (32, 32, 12, 100), 0, 4),
    ] {
        damage(&good);
    }
}

fn damage(good: &[u8]) {
    assert!(read_clip(b"").is_err());
    assert!(read_clip(b"\x89PNG\r\n\x1a\n not an mp4").is_err());
    for cut in (0..good.len()).step_by(7) {
        let _ = read_clip(&good[..cut]);
    }
    for at in (0..good.len()).step_by(3) {
        let mut bad = good.to_vec();
        bad[at] ^= 0xa5;
        if let Ok(read) = read_clip(&bad) {
            // What still parses still joins or is refused, without a panic.
            let _ = join_clips(&[read]);
        }
    }
}

#[test]
fn obu_sizes_past_four_gigabytes_or_the_end_never_loop_or_wrap() {
    // A frame OBU whose LEB128 size is 2^32 − 6 + 2^32 (five bytes, bits past 32 set).
    assert_eq!(leb128(&[0xfa, 0xff, 0xff, 0xff, 0x1f]), None);
    assert_eq!(
        leb128(&[0xfa, 0xff, 0xff, 0xff, 0x0f]),
        Some((0xffff_fffa, 5))
    );
    assert!(!has_sequence_header(&[0x32, 0xfa, 0xff, 0xff, 0xff, 0x1f]));
    assert!(!has_sequence_header(&[
        0x32, 0xfa, 0xff, 0xff, 0xff, 0x0f, 0x0a
    ]));
    // A frame OBU of one byte, then a sequence header.
    assert!(has_sequence_header(&[0x32, 0x01, 0x00, 0x0a, 0x00]));
    // A zero-length NAL unit is skipped, not read as the next one's header.
    assert!(!has_sps(&[0, 0, 0, 0, 0x67], 4));
    assert!(has_sps(&[0, 0, 0, 0, 0, 0, 0, 1, 0x67], 4));
}

#[test]
fn a_rate_that_does_not_divide_the_clock_reads_back_exactly() {
    // At 90 kHz a frame of 7 fps is 12857 or 12858 ticks.
    for fps in [7, 11, 23, 29, 59] {
        let read = read_clip(&clip(32, 32, fps, 30, 0, 9)).expect("reads");
        assert_eq!((read.fps(), read.frames()), (fps, 9));
        let one = read_clip(&clip(32, 32, fps, 30, 0, 1)).expect("reads one frame");
        assert_eq!(one.fps(), fps);
    }
}

#[test]
fn avcc_records_and_length_prefixed_units_are_read_strictly() {
    // Version 1, High, level 3.0, 4-byte lengths, one SPS [0x67, 1], one PPS [0x68].
    let avcc = [1, 100, 0, 30, 0xff, 0xe1, 0, 2, 0x67, 1, 1, 0, 1, 0x68];
    assert_eq!(
        parse_avcc(&avcc).expect("reads"),
        (4, vec![vec![0x67, 1], vec![0x68]])
    );
    assert!(
        parse_avcc(&avcc[..avcc.len() - 1]).is_err(),
        "a set runs past the end"
    );
    assert!(
        parse_avcc(&[2, 100, 0, 30, 0xff, 0xe0, 0]).is_err(),
        "version 2"
    );
    assert_eq!(
        to_annex_b(&[0, 0, 0, 2, 0x65, 9, 0, 0, 0, 1, 0x06], 4),
        Some(vec![0, 0, 0, 1, 0x65, 9, 0, 0, 0, 1, 0x06])
    );
    assert_eq!(to_annex_b(&[0, 0, 0, 9, 0x65], 4), None);
    assert_eq!(to_annex_b(&[0, 0], 4), None);
}

#[test]
fn a_one_frame_clip_lasts_one_frame_and_still_joins() {
    let one = clip(64, 48, 12, 28, 0, 1);
    let read = read_clip(&one).expect("reads");
    assert_eq!((read.frames(), read.fps()), (1, 12));
    let context = mp4parse::read_mp4(&mut Cursor::new(&one)).expect("parses");
    let track = &context.tracks[0];
    assert_eq!(track.duration.map(|d| d.0), Some(7500), "1/12 s at 90 kHz");
    let joined = join_clips(&[read.clone(), read]).expect("joins");
    assert_eq!(read_clip(&joined).expect("reads").frames(), 2);
}

#[test]
fn av1_clips_read_back_join_without_re_encoding_and_never_mix_with_h264() {
    let a = clip_in(Codec::Av1, (64, 48, 12, 100), 0, 14);
    let b = clip_in(Codec::Av1, (64, 48, 12, 100), 14, 6);
    assert_eq!(&a[4..8], b"ftyp");
    let (a, b) = (read_clip(&a).expect("a"), read_clip(&b).expect("b"));
    assert_eq!(
        (a.codec(), a.size(), a.fps(), a.frames()),
        (Codec::Av1, (64, 48), 12, 14)
    );
    assert!(a.samples[0].1, "starts with a key frame");
    for (data, _) in &a.samples {
        assert_ne!(data[0] >> 3 & 0x0f, 2, "no temporal delimiter is stored");
    }
    let joined = join_clips(&[a.clone(), b.clone()]).expect("joins");
    let back = read_clip(&joined).expect("reads the join");
    let expected: Vec<_> = a.samples.iter().chain(&b.samples).cloned().collect();
    assert!(
        back.samples == expected,
        "the coded pictures are copied, not re-encoded"
    );

    let h264 = read_clip(&clip(64, 48, 12, 28, 0, 2)).expect("reads");
    let error = join_clips(&[h264, a]).expect_err("refused");
    assert!(
        error.to_string().contains("clip 2 is AV1, not H.264"),
        "{error}"
    );
    // AV1 codes its quantiser per frame, not in the sequence header: such clips still join.
    let coarser = read_clip(&clip_in(Codec::Av1, (64, 48, 12, 160), 0, 2)).expect("reads");
    assert_eq!(
        join_clips(&[b.clone(), coarser])
            .map(|j| read_clip(&j).map(|c| c.frames()))
            .ok(),
        Some(Ok(8))
    );
    let smaller = read_clip(&clip_in(Codec::Av1, (32, 48, 12, 100), 0, 2)).expect("reads");
    let error = join_clips(&[b, smaller]).expect_err("refused");
    assert!(error.to_string().contains("is 32x48, not 64x48"), "{error}");
}

#[test]
fn codecs_are_named_and_bounded() {
    assert_eq!(Codec::from_name("h264"), Some(Codec::H264));
    assert_eq!(Codec::from_name("av1"), Some(Codec::Av1));
    assert_eq!(Codec::from_name("H264"), None);
    assert_eq!(Codec::H264.quantizers(), 0..=51);
    assert!(Mp4Encoder::with_codec(Codec::H264, 64, 48, 12, 52).is_err());
    assert!(Mp4Encoder::with_codec(Codec::Av1, 64, 48, 12, 255).is_ok());
    assert!(Mp4Encoder::with_codec(Codec::Av1, 65, 48, 12, 100).is_err());
}
