//! `bulk-stage`: a test plugin that does a lot of deterministic work, so crash and concurrency
//! tests have something big to interrupt.
//!
//! For every scene of the project (written by an earlier stage), or for its one scene when it
//! runs as a shard (`for-each = "scene"`), it publishes artifacts and points rows at them; it
//! also writes `extra-scenes` scenes of its own. Re-running it updates the same rows and
//! replaces the same files, so its end state depends only on its input.
//!
//! | key | meaning | default |
//! | --- | --- | --- |
//! | `kind` | `keyframe` (a start and an end keyframe per scene), `clip` (one clip per scene) or `check` (an output file `check-NNN.txt` per scene holding its clip's frame rate, read from its clip row) | `keyframe` |
//! | `bytes` | size of each artifact | `65536` |
//! | `extra-scenes` | scenes to write at indexes 1000, 1001, … | `0` |
//! | `spin` | busy iterations between artifacts, to stretch the stage out in time | `0` |
//! | `description-bytes` | length of each extra scene's description (a repeated phrase), to make the stage's commit large | `0` (a short phrase) |
//! | `grow-scene`, `grow-mib` | before working on the scene of index `grow-scene`, allocate and touch `grow-mib` MiB (to fail one shard by its memory limit) | none, `0` |
//! | `escape-scene` | first retitle the scene of this index, whichever scene the run is bound to (a shard of another scene is refused: `out-of-scope`) | none |
//! | `sleep-scene`, `sleep-ms` | before working on the scene of index `sleep-scene`, sleep `sleep-ms` ms (to make one shard end late) | none, `0` |
//! | `fail-scene`, `fail-ms` | before working on the scene of index `fail-scene`, sleep `fail-ms` ms and then fail with an `invalid-input` error (to fail one shard late) | none, `0` |
//! | `count-keyframes-of` | clips: read the keyframes of the scene of this index (another scene's, for a shard) and add how many there are to each clip's frame rate, so that the clip depends on them | none |

// The export glue wit-bindgen generates is FFI and has to be unsafe; it is confined here.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "stage",
    });

    use super::BulkStage;
    export!(BulkStage with_types_in crate::bindings);
}

use bindings::vidpipe::plugin::{artifacts, db, log, types};
use types::{ArtifactKind, ArtifactRef, Error, ErrorCode};

/// What the stage was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Keyframes (true) or clips (false).
    pub keyframes: bool,
    /// Neither: check files (`kind = "check"`).
    pub check: bool,
    /// Size of each artifact.
    pub bytes: u32,
    /// Scenes of its own to write.
    pub extra_scenes: u32,
    /// Busy iterations between artifacts.
    pub spin: u64,
    /// Length of each extra scene's description, or 0 for a short phrase.
    pub description_bytes: u32,
    /// The scene index before whose work `grow_mib` MiB are allocated.
    pub grow_scene: Option<u32>,
    /// How many MiB.
    pub grow_mib: u32,
    /// The scene index to retitle first.
    pub escape_scene: Option<u32>,
    /// The scene index before whose work the stage sleeps `sleep_ms`.
    pub sleep_scene: Option<u32>,
    /// How long, in ms.
    pub sleep_ms: u64,
    /// The scene index before whose work the stage sleeps `fail_ms` and then fails.
    pub fail_scene: Option<u32>,
    /// How long, in ms.
    pub fail_ms: u64,
    /// The scene index whose keyframes each clip counts into its frame rate.
    pub count_keyframes_of: Option<u32>,
}

/// Parses the configuration; unknown keys and bad numbers are errors.
pub fn parse(config: &[(String, String)]) -> Result<Config, String> {
    let mut c = Config {
        keyframes: true,
        check: false,
        bytes: 65536,
        extra_scenes: 0,
        spin: 0,
        description_bytes: 0,
        grow_scene: None,
        grow_mib: 0,
        escape_scene: None,
        sleep_scene: None,
        sleep_ms: 0,
        fail_scene: None,
        fail_ms: 0,
        count_keyframes_of: None,
    };
    for (key, value) in config {
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("`{key}` must be a whole number, not {value:?}"))
        };
        match key.as_str() {
            "kind" => match value.as_str() {
                "keyframe" => c.keyframes = true,
                "clip" => c.keyframes = false,
                "check" => (c.keyframes, c.check) = (false, true),
                _ => {
                    return Err(format!(
                        "`kind` must be keyframe, clip or check, not {value:?}"
                    ));
                }
            },
            "bytes" => {
                c.bytes = u32::try_from(number()?).map_err(|_| "`bytes` is too large".to_owned())?
            }
            "extra-scenes" => {
                c.extra_scenes = u32::try_from(number()?)
                    .map_err(|_| "`extra-scenes` is too large".to_owned())?
            }
            "spin" => c.spin = number()?,
            "description-bytes" => {
                c.description_bytes = u32::try_from(number()?)
                    .map_err(|_| "`description-bytes` is too large".to_owned())?
            }
            "sleep-ms" => c.sleep_ms = number()?,
            "fail-ms" => c.fail_ms = number()?,
            "grow-scene" | "grow-mib" | "escape-scene" | "sleep-scene" | "fail-scene"
            | "count-keyframes-of" => {
                let n = u32::try_from(number()?).map_err(|_| format!("`{key}` is too large"))?;
                match key.as_str() {
                    "grow-scene" => c.grow_scene = Some(n),
                    "grow-mib" => c.grow_mib = n,
                    "sleep-scene" => c.sleep_scene = Some(n),
                    "fail-scene" => c.fail_scene = Some(n),
                    "count-keyframes-of" => c.count_keyframes_of = Some(n),
                    _ => c.escape_scene = Some(n),
                }
            }
            _ => {
                return Err(format!(
                    "unknown config key `{key}`; known keys: kind, bytes, extra-scenes, spin, \
                     description-bytes, grow-scene, grow-mib, escape-scene, sleep-scene, sleep-ms, \
                     fail-scene, fail-ms, count-keyframes-of"
                ));
            }
        }
    }
    Ok(c)
}

/// The deterministic content of an artifact: a repeating pattern seeded by its name.
pub fn content(name: &str, len: u32) -> Vec<u8> {
    let mut state = name
        .bytes()
        .fold(0x9E37_79B9u32, |h, b| h.rotate_left(5) ^ u32::from(b));
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

struct BulkStage;

/// The description of an extra scene: a short phrase, or that phrase repeated to `bytes` bytes.
pub fn description(bytes: u32) -> String {
    const PHRASE: &str = "written by bulk-stage";
    if bytes == 0 {
        return PHRASE.to_owned();
    }
    PHRASE.chars().cycle().take(bytes as usize).collect()
}

/// The scenes the run works on: a shard's one scene, or every scene of the project.
fn all_scenes() -> Result<Vec<db::Scene>, Error> {
    if let db::RunScope::Scene(id) = db::scope() {
        return Ok(vec![db::get_scene(&id)?]);
    }
    let mut scenes = Vec::new();
    let mut cursor = None;
    loop {
        let page = db::list_scenes(cursor.as_deref(), 500)?;
        scenes.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(scenes),
        }
    }
}

fn publish(kind: ArtifactKind, name: &str, bytes: u32, spin: u64) -> Result<ArtifactRef, Error> {
    let writer = artifacts::create(kind, name)?;
    for chunk in content(name, bytes).chunks(64 * 1024) {
        writer.write(chunk)?;
    }
    let mut x = 0u64;
    for i in 0..spin {
        x = std::hint::black_box(x.wrapping_add(i));
    }
    artifacts::Writer::finish(writer)?;
    Ok(ArtifactRef {
        kind,
        name: name.to_owned(),
    })
}

impl bindings::Guest for BulkStage {
    fn run(config: Vec<(String, String)>) -> Result<String, Error> {
        let c = parse(&config).map_err(|message| Error {
            code: ErrorCode::InvalidInput,
            message,
        })?;
        let existing = all_scenes()?;
        if let Some(index) = c.escape_scene {
            // Read through the whole project (reads are never out of scope).
            let page = db::list_scenes(None, 500)?;
            if let Some(target) = page.items.iter().find(|s| s.index == index) {
                db::update_scene(
                    &target.id,
                    &db::SceneUpdate {
                        title: Some("retitled by bulk-stage".to_owned()),
                        description: None,
                        duration_ms: None,
                    },
                )?;
            }
        }
        for i in 0..c.extra_scenes {
            let index = 1000 + i;
            let title = format!("extra {index}");
            match existing.iter().find(|s| s.index == index) {
                Some(s) => {
                    db::update_scene(
                        &s.id,
                        &db::SceneUpdate {
                            title: Some(title),
                            description: None,
                            duration_ms: Some(500),
                        },
                    )?;
                }
                None => {
                    db::create_scene(&db::NewScene {
                        index,
                        title,
                        description: description(c.description_bytes),
                        duration_ms: 500,
                    })?;
                }
            }
        }
        // Another scene's keyframes, read through the whole project (reads are never out of
        // scope).
        let mut frame_rate = 24;
        if let Some(index) = c.count_keyframes_of {
            let page = db::list_scenes(None, 500)?;
            if let Some(other) = page.items.iter().find(|s| s.index == index) {
                let seen = db::list_keyframes(Some(&other.id), None, 100)?.items.len();
                frame_rate += u32::try_from(seen).unwrap_or(0);
            }
        }
        let scenes: Vec<db::Scene> = existing.into_iter().filter(|s| s.index < 1000).collect();
        let total = scenes.len() as u64;
        let mut files = 0;
        for (done, scene) in scenes.iter().enumerate() {
            if c.grow_scene == Some(scene.index) {
                let mut block = vec![0u8; c.grow_mib as usize * 1024 * 1024];
                for page in block.chunks_mut(4096) {
                    page[0] = 1;
                }
                std::hint::black_box(&block);
            }
            if c.sleep_scene == Some(scene.index) {
                std::thread::sleep(std::time::Duration::from_millis(c.sleep_ms));
            }
            if c.fail_scene == Some(scene.index) {
                std::thread::sleep(std::time::Duration::from_millis(c.fail_ms));
                return Err(Error {
                    code: ErrorCode::InvalidInput,
                    message: format!("asked to fail at scene {}", scene.index),
                });
            }
            if c.check {
                let clips = db::list_video_clips(Some(&scene.id), None, 10)?.items;
                let rate = clips
                    .first()
                    .map_or_else(|| "none".to_owned(), |c| c.frame_rate.to_string());
                let writer = artifacts::create(
                    ArtifactKind::Output,
                    &format!("check-{:03}.txt", scene.index),
                )?;
                writer.write(rate.as_bytes())?;
                artifacts::Writer::finish(writer)?;
                files += 1;
            } else if c.keyframes {
                let have = db::list_keyframes(Some(&scene.id), None, 10)?.items;
                for (position, end) in [
                    (db::KeyframePosition::Start, "start"),
                    (db::KeyframePosition::End, "end"),
                ] {
                    let image = publish(
                        ArtifactKind::Keyframe,
                        &format!("scene-{:03}-{end}.bin", scene.index),
                        c.bytes,
                        c.spin,
                    )?;
                    files += 1;
                    let prompt = format!("{} ({end})", scene.title);
                    match have.iter().find(|k| k.position == position) {
                        Some(k) => {
                            db::update_keyframe(
                                &k.id,
                                &db::KeyframeUpdate {
                                    prompt: Some(prompt),
                                    image: Some(image),
                                },
                            )?;
                        }
                        None => {
                            db::create_keyframe(&db::NewKeyframe {
                                scene_id: scene.id.clone(),
                                position,
                                prompt,
                                image,
                            })?;
                        }
                    }
                }
            } else {
                let video = publish(
                    ArtifactKind::Clip,
                    &format!("scene-{:03}.bin", scene.index),
                    c.bytes,
                    c.spin,
                )?;
                files += 1;
                let have = db::list_video_clips(Some(&scene.id), None, 10)?.items;
                match have.first() {
                    Some(clip) => {
                        db::update_video_clip(
                            &clip.id,
                            &db::VideoClipUpdate {
                                video: Some(video),
                                duration_ms: Some(scene.duration_ms),
                                frame_rate: Some(frame_rate),
                            },
                        )?;
                    }
                    None => {
                        db::create_video_clip(&db::NewVideoClip {
                            scene_id: scene.id.clone(),
                            video,
                            duration_ms: scene.duration_ms,
                            frame_rate,
                        })?;
                    }
                }
            }
            log::progress(done as u64 + 1, total, &format!("scene {}", scene.index));
        }
        Ok(format!(
            "{files} artifacts for {total} scenes, {} extra scenes",
            c.extra_scenes
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_is_strict() {
        let cfg = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            parse(&cfg(&[("kind", "clip"), ("bytes", "10")])),
            Ok(Config {
                keyframes: false,
                check: false,
                bytes: 10,
                extra_scenes: 0,
                spin: 0,
                description_bytes: 0,
                grow_scene: None,
                grow_mib: 0,
                escape_scene: None,
                sleep_scene: None,
                sleep_ms: 0,
                fail_scene: None,
                fail_ms: 0,
                count_keyframes_of: None,
            })
        );
        assert!(parse(&cfg(&[("kind", "video")])).is_err());
        assert!(parse(&cfg(&[("bytes", "-1")])).is_err());
        assert!(parse(&cfg(&[("colour", "red")])).is_err());
    }

    #[test]
    fn descriptions_have_the_length_asked_for() {
        assert_eq!(description(0), "written by bulk-stage");
        assert_eq!(description(2048).len(), 2048);
    }

    #[test]
    fn content_depends_only_on_the_name() {
        assert_eq!(content("a", 100), content("a", 100));
        assert_ne!(content("a", 100), content("b", 100));
        assert_eq!(content("a", 7).len(), 7);
    }
}
