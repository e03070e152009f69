use super::*;

const TITLE: &str = "The lamp wakes";
const DESCRIPTION: &str = "At dusk the keeper lights the lamp of the lighthouse; a beam of \
                           gold sweeps the sea.";

fn differing_pixels(a: &Image, b: &Image) -> usize {
    a.pixels()
        .chunks_exact(3)
        .zip(b.pixels().chunks_exact(3))
        .filter(|(x, y)| x != y)
        .count()
}

#[test]
fn the_same_scene_renders_to_identical_bytes() {
    let a = keyframe(TITLE, DESCRIPTION, Position::Start, 320, 180).expect("renders");
    let b = keyframe(TITLE, DESCRIPTION, Position::Start, 320, 180).expect("renders");
    assert!(a == b);
}

#[test]
fn a_keyframe_has_the_requested_dimensions() {
    for (width, height) in [(640, 360), (64, 64), (1, 1), (200, 700)] {
        let image = keyframe(TITLE, DESCRIPTION, Position::End, width, height).expect("renders");
        assert_eq!((image.width(), image.height()), (width, height));
        assert_eq!(image.pixels().len(), (width * height * 3) as usize);
    }
    assert!(keyframe(TITLE, DESCRIPTION, Position::End, 0, 10).is_err());
}

#[test]
fn different_scenes_give_clearly_different_images() {
    let scenes = [
        (
            "Harbour",
            "By midnight the boat reaches the harbour; lanterns bob on the quay.",
        ),
        ("Forest", "A green forest in the morning."),
        ("Storm", "A storm at sea, rain and grey swell."),
        ("Road", "A dusty road between fields."),
        ("Dawn", "At dawn the sun rises over a calm sea."),
    ];
    let images: Vec<Image> = scenes
        .iter()
        .map(|(t, d)| keyframe(t, d, Position::Start, 160, 90).expect("renders"))
        .collect();
    for (i, a) in images.iter().enumerate() {
        for b in &images[i + 1..] {
            assert!(differing_pixels(a, b) > 160 * 90 / 2);
        }
    }
}

#[test]
fn the_start_and_end_keyframes_of_a_scene_differ() {
    for (title, description) in [
        (TITLE, DESCRIPTION),
        ("Noon", "A quiet road."),
        ("Night", "Stars over the hills at night."),
    ] {
        let start = keyframe(title, description, Position::Start, 160, 90).expect("renders");
        let end = keyframe(title, description, Position::End, 160, 90).expect("renders");
        assert!(differing_pixels(&start, &end) > 160 * 90 / 4, "{title}");
    }
}

#[test]
fn the_title_draws_real_text_in_the_caption_band() {
    let (width, height) = (320, 180);
    let mut banded = paint(TITLE, DESCRIPTION, Position::Start, width, height).expect("paints");
    draw_band(&mut banded);
    let banded = banded.to_image();
    let titled = keyframe(TITLE, DESCRIPTION, Position::Start, width, height).expect("renders");
    let (top, bottom) = crate::caption_band(height);
    let mut changed = 0;
    let mut bright = 0;
    for y in 0..height {
        for x in 0..width {
            let (a, b) = (banded.pixel(x, y), titled.pixel(x, y));
            if a != b {
                assert!(
                    (top..bottom).contains(&y),
                    "text outside the band at {x},{y}"
                );
                changed += 1;
            }
            if b.is_some_and(|p| p.iter().all(|&c| c > 200)) && (top..bottom).contains(&y) {
                bright += 1;
            }
        }
    }
    // "The lamp wakes" in white covers hundreds of pixels at this size.
    assert!(changed > 300, "{changed} pixels changed");
    assert!(bright > 150, "{bright} bright pixels");
}

#[test]
fn an_empty_title_leaves_the_scenery_alone() {
    let plain = scenery("", DESCRIPTION, Position::Start, 100, 60).expect("renders");
    let titled = keyframe("  ", DESCRIPTION, Position::Start, 100, 60).expect("renders");
    assert!(plain == titled);
}
