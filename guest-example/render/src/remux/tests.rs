use super::*;
use crate::{ApngEncoder, Image};

/// A `frames`-frame clip of solid colours, each frame a shade of `base`.
fn clip(width: u32, height: u32, frames: u32, fps: u32, base: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder =
        ApngEncoder::new(&mut out, width, height, frames, fps).expect("a valid animation");
    for i in 0..frames {
        let shade = base.wrapping_add(i as u8 * 10);
        let pixels = (0..width * height)
            .flat_map(|p| [shade, (p % 251) as u8, 255 - shade])
            .collect();
        let image = Image::from_rgb(width, height, pixels).expect("exact size");
        encoder.write_frame(&image).expect("frame fits");
    }
    encoder.finish().expect("all frames written");
    out
}

/// Every frame of an APNG, decoded by the `png` crate, with its delay.
fn frames(bytes: &[u8]) -> Vec<(Vec<u8>, (u16, u16))> {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let count = reader
        .info()
        .animation_control()
        .expect("animated")
        .num_frames;
    let size = reader.output_buffer_size().expect("small");
    let mut result = Vec::new();
    for _ in 0..count {
        let mut buffer = vec![0; size];
        reader.next_frame(&mut buffer).expect("a frame");
        let control = reader.info().frame_control().expect("fcTL");
        result.push((buffer, (control.delay_num, control.delay_den)));
    }
    result
}

fn join(clips: &[Vec<u8>], width: u32, height: u32) -> Result<Vec<u8>, RenderError> {
    let total = clips
        .iter()
        .map(|c| read_apng_header(&mut c.as_slice()).map(|h| h.frames))
        .sum::<Result<u32, _>>()?;
    let mut joiner = ApngJoiner::new(Vec::new(), width, height, total)?;
    for clip in clips {
        joiner.append(&mut clip.as_slice())?;
    }
    joiner.finish()
}

#[test]
fn the_header_of_a_clip_gives_its_size_and_frame_count() {
    let bytes = clip(8, 6, 5, 12, 0);
    let header = read_apng_header(&mut bytes.as_slice()).expect("an APNG");
    assert_eq!(
        header,
        ApngHeader {
            width: 8,
            height: 6,
            frames: 5
        }
    );
}

#[test]
fn joined_clips_hold_every_frame_of_each_clip_in_order_with_its_delay() {
    let a = clip(8, 6, 3, 12, 0);
    let b = clip(8, 6, 1, 12, 100);
    let c = clip(8, 6, 4, 24, 200);
    let joined = join(&[a.clone(), b.clone(), c.clone()], 8, 6).expect("joins");
    let mut expected = frames(&a);
    expected.extend(frames(&b));
    expected.extend(frames(&c));
    assert_eq!(frames(&joined), expected);
    assert_eq!(expected.len(), 8);
    assert_eq!(expected[7].1, (1, 24));
}

#[test]
fn joining_one_clip_gives_back_its_frames() {
    let a = clip(5, 5, 2, 10, 7);
    let joined = join(std::slice::from_ref(&a), 5, 5).expect("joins");
    assert_eq!(frames(&joined), frames(&a));
}

#[test]
fn a_clip_of_another_size_is_refused() {
    let a = clip(8, 6, 2, 12, 0);
    let b = clip(6, 8, 2, 12, 0);
    let error = join(&[a, b], 8, 6).expect_err("sizes differ");
    assert!(
        error.to_string().contains("6x8 clip does not fit"),
        "{error}"
    );
}

#[test]
fn a_still_png_is_refused() {
    let mut still = Vec::new();
    let image = Image::new(4, 4).expect("valid");
    crate::encode_png(&image, &mut still).expect("encodes");
    let error = read_apng_header(&mut still.as_slice()).expect_err("not animated");
    assert!(error.to_string().contains("not animated"), "{error}");
    let mut joiner = ApngJoiner::new(Vec::new(), 4, 4, 1).expect("valid");
    assert!(joiner.append(&mut still.as_slice()).is_err());
}

#[test]
fn a_corrupt_or_cut_clip_is_refused_not_copied() {
    let a = clip(8, 6, 3, 12, 0);
    // Flip one byte inside the frame data, well past the header chunks.
    let mut corrupt = a.clone();
    let at = corrupt.len() - 30;
    corrupt[at] ^= 0x40;
    let error = join(&[corrupt], 8, 6).expect_err("corrupt");
    assert!(error.to_string().contains("CRC"), "{error}");

    let cut = a[..a.len() / 2].to_vec();
    let error = join(&[cut], 8, 6).expect_err("cut");
    assert!(error.to_string().contains("ends in the middle"), "{error}");

    let error = read_apng_header(&mut &b"GIF89a not a png"[..]).expect_err("not a PNG");
    assert!(error.to_string().contains("signature"), "{error}");
}

#[test]
fn more_or_fewer_frames_than_announced_are_refused() {
    let a = clip(4, 4, 3, 12, 0);
    let mut joiner = ApngJoiner::new(Vec::new(), 4, 4, 2).expect("valid");
    assert!(joiner.append(&mut a.as_slice()).is_err());

    let mut joiner = ApngJoiner::new(Vec::new(), 4, 4, 4).expect("valid");
    joiner.append(&mut a.as_slice()).expect("fits");
    assert_eq!(joiner.frames_written(), 3);
    assert!(joiner.finish().is_err());
}

/// The (start, length) of every chunk of a well-formed PNG.
fn chunks(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut at = 8;
    let mut out = Vec::new();
    while at + 8 <= bytes.len() {
        let len = be_u32(&bytes[at..at + 4]) as usize;
        out.push((at, len));
        at += 12 + len;
    }
    out
}

/// Recomputes the CRC of every chunk at the places the original file had them, so a change
/// reaches the checks behind the CRC instead of stopping at it.
fn fix_crcs(bytes: &mut [u8], layout: &[(usize, usize)]) {
    for &(at, len) in layout {
        let end = at + 8 + len;
        if end + 4 > bytes.len() {
            return;
        }
        let crc = crc32fast::hash(&bytes[at + 4..end]);
        bytes[end..end + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

#[test]
fn arbitrary_bytes_never_panic_the_joiner() {
    let a = clip(4, 4, 2, 12, 0);
    let layout = chunks(&a);
    // Every truncation is an error.
    for len in 0..a.len() {
        let mut joiner = ApngJoiner::new(Vec::new(), 4, 4, 2).expect("valid");
        assert!(joiner.append(&mut &a[..len]).is_err(), "cut at {len}");
    }
    // A bit flip anywhere, with or without fixed-up CRCs, gives an error or a result, and
    // never a panic; with the CRCs left alone it is always an error.
    for at in 8..a.len() {
        for bit in [0x01u8, 0x80] {
            let mut bytes = a.clone();
            bytes[at] ^= bit;
            let mut joiner = ApngJoiner::new(Vec::new(), 4, 4, 2).expect("valid");
            assert!(
                joiner.append(&mut bytes.as_slice()).is_err(),
                "flip at {at}"
            );
            fix_crcs(&mut bytes, &layout);
            let mut joiner = ApngJoiner::new(Vec::new(), 4, 4, 2).expect("valid");
            let _ = joiner.append(&mut bytes.as_slice());
            let _ = read_apng_header(&mut bytes.as_slice());
        }
    }
}

#[test]
fn a_first_frame_that_reverts_to_previous_is_joined_as_one_that_clears() {
    let a = clip(4, 4, 2, 12, 0);
    let mut b = clip(4, 4, 2, 12, 50);
    // Set dispose_op of b's first fcTL (data offset 24) to 2, "previous", and fix its CRC.
    let (at, _) = chunks(&b)
        .into_iter()
        .find(|&(at, _)| &b[at + 4..at + 8] == b"fcTL")
        .expect("an fcTL");
    b[at + 8 + 24] = 2;
    let layout = chunks(&b);
    fix_crcs(&mut b, &layout);
    let joined = join(&[a, b], 4, 4).expect("joins");
    let controls: Vec<u8> = chunks(&joined)
        .into_iter()
        .filter(|&(at, _)| &joined[at + 4..at + 8] == b"fcTL")
        .map(|(at, _)| joined[at + 8 + 24])
        .collect();
    assert_eq!(controls, vec![0, 0, 1, 0]);
}

#[test]
fn colour_space_chunks_and_undefined_operations_are_refused() {
    let a = clip(4, 4, 1, 12, 0);
    // Insert an sRGB chunk right after IHDR (8 + 25 bytes).
    let mut with_srgb = a[..33].to_vec();
    let mut chunk = Vec::new();
    write_chunk(&mut chunk, b"sRGB", &[&[0]]).expect("in memory");
    with_srgb.extend_from_slice(&chunk);
    with_srgb.extend_from_slice(&a[33..]);
    let error = join(&[with_srgb], 4, 4).expect_err("sRGB");
    assert!(error.to_string().contains("sRGB"), "{error}");

    let mut bad = a.clone();
    let (at, _) = chunks(&bad)
        .into_iter()
        .find(|&(at, _)| &bad[at + 4..at + 8] == b"fcTL")
        .expect("an fcTL");
    bad[at + 8 + 25] = 7;
    fix_crcs(&mut bad, &chunks(&a));
    let error = join(&[bad], 4, 4).expect_err("blend 7");
    assert!(error.to_string().contains("blend operation 7"), "{error}");
}
