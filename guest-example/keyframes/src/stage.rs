//! The keyframes stage itself, written against the [`Host`] trait so it runs natively in tests
//! as well as inside the component.

use vidpipe_render::{Position, encode_png, keyframe};
use vidpipe_stage_kit::{ErrorCode, Level, Page, Part, StageError, collect_pages};

use crate::config::Config;

/// The largest chunk handed to one `writer.write` call, so no single host call carries a huge
/// list.
pub const MAX_CHUNK_BYTES: usize = 64 * 1024;

/// How many scenes to ask for per `list-scenes` page; the host may return fewer.
pub const SCENE_PAGE_LIMIT: u32 = 100;

/// How many keyframes to ask for per `list-keyframes` page (a scene has at most two).
pub const KEYFRAME_PAGE_LIMIT: u32 = 10;

/// The longest prompt written to a keyframe row, in characters (before the ellipsis).
pub const MAX_PROMPT_CHARS: usize = 160;

/// A scene of the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scene {
    /// Its id.
    pub id: String,
    /// Its index in the project.
    pub index: u32,
    /// Its title.
    pub title: String,
    /// What happens in it.
    pub description: String,
}

/// A keyframe row that already exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingKeyframe {
    /// Its id.
    pub id: String,
    /// Which end of its scene it shows.
    pub position: Position,
}

/// The host calls the stage makes, in plain Rust types.
pub trait Host {
    /// An artifact being written.
    type Writer;

    /// Which part of its scene's work this run is to do; `None` for all of it.
    fn part(&mut self) -> Option<Part>;
    /// Lists scenes in index order, at most `limit` per page.
    fn list_scenes(&mut self, cursor: Option<&str>, limit: u32) -> Result<Page<Scene>, StageError>;
    /// Lists the keyframes of the scene `scene_id`, at most `limit` per page.
    fn list_keyframes(
        &mut self,
        scene_id: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<ExistingKeyframe>, StageError>;
    /// Creates a keyframe row pointing at the `keyframe` artifact `image`.
    fn create_keyframe(
        &mut self,
        scene_id: &str,
        position: Position,
        prompt: &str,
        image: &str,
    ) -> Result<(), StageError>;
    /// Points the keyframe row `id` at the `keyframe` artifact `image` with a new prompt.
    fn update_keyframe(&mut self, id: &str, prompt: &str, image: &str) -> Result<(), StageError>;
    /// Starts writing the `keyframe` artifact `name`.
    fn create_keyframe_artifact(&mut self, name: &str) -> Result<Self::Writer, StageError>;
    /// Appends `chunk` to the artifact.
    fn write(&mut self, writer: &mut Self::Writer, chunk: &[u8]) -> Result<(), StageError>;
    /// Publishes the artifact.
    fn finish(&mut self, writer: Self::Writer) -> Result<(), StageError>;
    /// Logs `message`.
    fn log(&mut self, level: Level, message: &str);
    /// Reports progress.
    fn progress(&mut self, done: u64, total: u64, message: &str);
}

/// The artifact name of a scene's keyframe: `scene-007-start.png`.
pub fn artifact_name(index: u32, position: Position) -> String {
    format!("scene-{index:03}-{}.png", position_word(position))
}

fn position_word(position: Position) -> &'static str {
    match position {
        Position::Start => "start",
        Position::End => "end",
    }
}

/// The prompt of a keyframe row: which end of the scene it shows and the scene's description
/// (its title if the description is empty), whitespace collapsed and cut at a word to at most
/// [`MAX_PROMPT_CHARS`] characters.
pub fn prompt(scene: &Scene, position: Position) -> String {
    let source = if scene.description.trim().is_empty() {
        &scene.title
    } else {
        &scene.description
    };
    let words: Vec<&str> = source.split_whitespace().collect();
    let mut text = String::new();
    let mut cut = false;
    for word in words {
        let extra = usize::from(!text.is_empty()) + word.chars().count();
        if text.chars().count() + extra > MAX_PROMPT_CHARS {
            cut = true;
            break;
        }
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(word);
    }
    if text.is_empty() && cut {
        // A single enormous word: cut it mid-word rather than give an empty prompt.
        text = source.trim().chars().take(MAX_PROMPT_CHARS).collect();
    }
    if cut {
        text.push('…');
    }
    let opening = match position {
        Position::Start => "Opening frame",
        Position::End => "Closing frame",
    };
    format!("{opening}: {text}")
}

/// Runs the keyframes stage: parses `config`, renders a start and an end keyframe for every
/// scene of the project, publishes them as `keyframe` artifacts, points the scene's keyframe
/// rows at them (creating the rows that do not exist yet) and returns a one-line summary.
///
/// A scene's two keyframes are not cut into parts: a run told to do a part of its scene's work
/// fails before anything is rendered.
pub fn run<H: Host>(host: &mut H, config: &[(String, String)]) -> Result<String, StageError> {
    if let Some(part) = host.part().filter(|part| part.count > 1) {
        return Err(StageError::invalid_input(format!(
            "this shard was given {part} of its scene's work, but the keyframes stage does not \
             cut a scene's work into parts; remove `parts` from its stage in the pipeline \
             manifest"
        )));
    }
    let config = Config::parse(config)?;
    let scenes = collect_pages(|cursor| host.list_scenes(cursor, SCENE_PAGE_LIMIT))
        .map_err(|e| e.context("listing the project's scenes"))?;
    if scenes.is_empty() {
        return Err(StageError::invalid_input(
            "the project has no scenes; run the storyboard stage first to turn the script into \
             scenes",
        ));
    }
    let total = scenes.len() as u64;
    host.log(
        Level::Info,
        &format!(
            "rendering keyframes for {total} scene(s) at {}x{}",
            config.width, config.height
        ),
    );

    for (scene, done) in scenes.iter().zip(1u64..) {
        let context = |what: &str| format!("scene {} ({what})", scene.index);
        let existing =
            collect_pages(|cursor| host.list_keyframes(&scene.id, cursor, KEYFRAME_PAGE_LIMIT))
                .map_err(|e| e.context(&context("listing its keyframes")))?;
        for position in [Position::Start, Position::End] {
            let name = artifact_name(scene.index, position);
            let bytes = render(scene, position, config)
                .map_err(|e| e.context(&context(&format!("rendering {name}"))))?;
            publish(host, &name, &bytes)
                .map_err(|e| e.context(&context(&format!("writing keyframe/{name}"))))?;
            let prompt = prompt(scene, position);
            match existing.iter().find(|k| k.position == position) {
                Some(row) => host.update_keyframe(&row.id, &prompt, &name),
                None => host.create_keyframe(&scene.id, position, &prompt, &name),
            }
            .map_err(|e| {
                e.context(&context(&format!(
                    "recording its {} keyframe",
                    position_word(position)
                )))
            })?;
            host.log(
                Level::Debug,
                &format!(
                    "scene {}: keyframe/{name}, {} bytes",
                    scene.index,
                    bytes.len()
                ),
            );
        }
        host.progress(
            done,
            total,
            &format!("scene {}: {}", scene.index, scene.title),
        );
    }

    let count = scenes.len();
    Ok(format!(
        "{} keyframes for {count} scene{} ({}x{})",
        2 * count,
        if count == 1 { "" } else { "s" },
        config.width,
        config.height
    ))
}

/// Renders one keyframe of `scene` and encodes it as PNG.
fn render(scene: &Scene, position: Position, config: Config) -> Result<Vec<u8>, StageError> {
    // The sizes were checked against the config's ranges, so a failure here is a bug, not bad
    // input; it is still reported rather than trapping.
    let failed = |e: vidpipe_render::RenderError| StageError::new(ErrorCode::Io, e.to_string());
    let image = keyframe(
        &scene.title,
        &scene.description,
        position,
        config.width,
        config.height,
    )
    .map_err(failed)?;
    let mut bytes = Vec::new();
    encode_png(&image, &mut bytes).map_err(failed)?;
    Ok(bytes)
}

/// Writes `bytes` to the `keyframe` artifact `name` in chunks and publishes it.
fn publish<H: Host>(host: &mut H, name: &str, bytes: &[u8]) -> Result<(), StageError> {
    let mut writer = host.create_keyframe_artifact(name)?;
    for chunk in bytes.chunks(MAX_CHUNK_BYTES) {
        host.write(&mut writer, chunk)?;
    }
    host.finish(writer)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use vidpipe_stage_kit::config::owned;

    /// An in-memory host that pages scenes two at a time to exercise the cursor loop.
    #[derive(Default)]
    struct FakeHost {
        scenes: Vec<Scene>,
        /// Keyframe rows by id: (scene id, position, prompt, image).
        keyframes: BTreeMap<String, (String, Position, String, String)>,
        next_id: u32,
        artifacts: BTreeMap<String, Vec<u8>>,
        chunks: Vec<usize>,
        created: usize,
        updated: usize,
        progress: Vec<(u64, u64)>,
        fail_writes: bool,
        part: Option<Part>,
    }

    impl FakeHost {
        fn with_scenes(count: u32) -> Self {
            let scenes = (0..count)
                .map(|index| Scene {
                    id: format!("scene-{index}"),
                    index,
                    title: format!("Scene {index}"),
                    description: format!("A storm at sea, take {index}."),
                })
                .collect();
            Self {
                scenes,
                ..Self::default()
            }
        }
    }

    impl Host for FakeHost {
        type Writer = (String, Vec<u8>);

        fn part(&mut self) -> Option<Part> {
            self.part
        }

        fn list_scenes(
            &mut self,
            cursor: Option<&str>,
            limit: u32,
        ) -> Result<Page<Scene>, StageError> {
            assert!(limit > 0);
            Ok(Page::of_slice(&self.scenes, cursor, 2))
        }

        fn list_keyframes(
            &mut self,
            scene_id: &str,
            cursor: Option<&str>,
            _limit: u32,
        ) -> Result<Page<ExistingKeyframe>, StageError> {
            // One keyframe per page, to exercise this cursor loop too.
            let rows: Vec<ExistingKeyframe> = self
                .keyframes
                .iter()
                .filter(|(_, row)| row.0 == scene_id)
                .map(|(id, row)| ExistingKeyframe {
                    id: id.clone(),
                    position: row.1,
                })
                .collect();
            Ok(Page::of_slice(&rows, cursor, 1))
        }

        fn create_keyframe(
            &mut self,
            scene_id: &str,
            position: Position,
            prompt: &str,
            image: &str,
        ) -> Result<(), StageError> {
            assert!(self.artifacts.contains_key(image), "{image} is published");
            if self
                .keyframes
                .values()
                .any(|row| row.0 == scene_id && row.1 == position)
            {
                return Err(StageError::new(ErrorCode::Conflict, "position taken"));
            }
            self.next_id += 1;
            self.keyframes.insert(
                format!("kf-{}", self.next_id),
                (
                    scene_id.to_owned(),
                    position,
                    prompt.to_owned(),
                    image.to_owned(),
                ),
            );
            self.created += 1;
            Ok(())
        }

        fn update_keyframe(
            &mut self,
            id: &str,
            prompt: &str,
            image: &str,
        ) -> Result<(), StageError> {
            let row = self
                .keyframes
                .get_mut(id)
                .ok_or_else(|| StageError::new(ErrorCode::NotFound, id))?;
            row.2 = prompt.to_owned();
            row.3 = image.to_owned();
            self.updated += 1;
            Ok(())
        }

        fn create_keyframe_artifact(&mut self, name: &str) -> Result<Self::Writer, StageError> {
            Ok((name.to_owned(), Vec::new()))
        }

        fn write(&mut self, writer: &mut Self::Writer, chunk: &[u8]) -> Result<(), StageError> {
            if self.fail_writes {
                return Err(StageError::new(
                    ErrorCode::LimitExceeded,
                    "project quota reached",
                ));
            }
            self.chunks.push(chunk.len());
            writer.1.extend_from_slice(chunk);
            Ok(())
        }

        fn finish(&mut self, writer: Self::Writer) -> Result<(), StageError> {
            self.artifacts.insert(writer.0, writer.1);
            Ok(())
        }

        fn log(&mut self, _level: Level, _message: &str) {}

        fn progress(&mut self, done: u64, total: u64, _message: &str) {
            self.progress.push((done, total));
        }
    }

    #[test]
    fn every_scene_gets_a_start_and_an_end_png_and_two_keyframe_rows() {
        let mut host = FakeHost::with_scenes(3);
        let summary = run(&mut host, &owned(&[("width", "96"), ("height", "64")]))
            .expect("the stage succeeds");
        assert_eq!(summary, "6 keyframes for 3 scenes (96x64)");
        let names: Vec<&str> = host.artifacts.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "scene-000-end.png",
                "scene-000-start.png",
                "scene-001-end.png",
                "scene-001-start.png",
                "scene-002-end.png",
                "scene-002-start.png"
            ]
        );
        for bytes in host.artifacts.values() {
            let image = vidpipe_render::decode_png(bytes).expect("a PNG");
            assert_eq!((image.width(), image.height()), (96, 64));
        }
        assert_eq!(host.created, 6);
        let row = host
            .keyframes
            .values()
            .find(|row| row.0 == "scene-1" && row.1 == Position::End)
            .expect("scene 1 has an end keyframe");
        assert_eq!(row.3, "scene-001-end.png");
        assert_eq!(row.2, "Closing frame: A storm at sea, take 1.");
        assert_eq!(host.progress, [(1, 3), (2, 3), (3, 3)]);
    }

    #[test]
    fn keyframes_are_written_in_chunks_of_at_most_64_kib() {
        let mut host = FakeHost::with_scenes(1);
        run(&mut host, &[]).expect("the stage succeeds");
        assert!(host.chunks.iter().all(|&len| len <= MAX_CHUNK_BYTES));
        let total: usize = host.chunks.iter().sum();
        assert!(
            total > 2 * MAX_CHUNK_BYTES,
            "two 640x360 keyframes take several chunks"
        );
        assert_eq!(total, host.artifacts.values().map(Vec::len).sum::<usize>());
    }

    #[test]
    fn a_second_run_updates_the_rows_and_rewrites_identical_files() {
        let mut host = FakeHost::with_scenes(2);
        run(&mut host, &owned(&[("width", "80"), ("height", "64")])).expect("first run");
        let first = host.artifacts.clone();
        run(&mut host, &owned(&[("width", "80"), ("height", "64")])).expect("second run");
        assert_eq!((host.created, host.updated), (4, 4));
        assert_eq!(host.keyframes.len(), 4);
        assert!(host.artifacts == first, "rendering is deterministic");
    }

    #[test]
    fn a_project_without_scenes_is_told_to_run_the_storyboard_first() {
        let error = run(&mut FakeHost::default(), &[]).expect_err("nothing to draw");
        assert_eq!(error.code, ErrorCode::InvalidInput);
        assert!(
            error.message.contains("run the storyboard stage"),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_bad_config_fails_before_anything_is_written() {
        let mut host = FakeHost::with_scenes(1);
        let error = run(&mut host, &owned(&[("colour", "red")])).expect_err("refused");
        assert_eq!(error.code, ErrorCode::InvalidInput);
        assert!(error.message.contains("known keys: height, width"));
        assert!(host.artifacts.is_empty());
    }

    #[test]
    fn a_failed_write_keeps_the_host_code_and_names_the_file() {
        let mut host = FakeHost {
            fail_writes: true,
            ..FakeHost::with_scenes(1)
        };
        let error = run(&mut host, &[]).expect_err("the write fails");
        assert_eq!(error.code, ErrorCode::LimitExceeded);
        assert_eq!(
            error.message,
            "scene 0 (writing keyframe/scene-000-start.png): project quota reached"
        );
    }

    #[test]
    fn a_shard_given_a_part_of_its_scene_is_refused_naming_the_manifest_setting() {
        let mut host = FakeHost {
            part: Some(Part { index: 1, count: 3 }),
            ..FakeHost::with_scenes(1)
        };
        let error = run(&mut host, &[]).expect_err("keyframes are not cut into parts");
        assert_eq!(error.code, ErrorCode::InvalidInput);
        assert!(error.message.contains("part 2/3"), "{}", error.message);
        assert!(
            error.message.contains("remove `parts` from its stage"),
            "{}",
            error.message
        );
        assert!(host.artifacts.is_empty() && host.keyframes.is_empty());

        // Part 1 of 1 is all of the work.
        host.part = Some(Part::WHOLE);
        run(&mut host, &[]).expect("the whole of the work");
        assert_eq!(host.created, 2);
    }

    #[test]
    fn the_prompt_is_a_short_form_of_the_description() {
        let scene = |description: &str| Scene {
            id: "s".to_owned(),
            index: 0,
            title: "The title".to_owned(),
            description: description.to_owned(),
        };
        assert_eq!(
            prompt(&scene("  Rain\n streaks  the glass. "), Position::Start),
            "Opening frame: Rain streaks the glass."
        );
        assert_eq!(
            prompt(&scene(""), Position::End),
            "Closing frame: The title"
        );
        let long = prompt(&scene(&"lighthouse ".repeat(40)), Position::Start);
        assert!(long.ends_with("lighthouse…"), "{long}");
        assert!(long.chars().count() <= "Opening frame: ".len() + MAX_PROMPT_CHARS + 1);
        let word = prompt(&scene(&"x".repeat(500)), Position::Start);
        assert_eq!(
            word.chars().count(),
            "Opening frame: ".len() + MAX_PROMPT_CHARS + 1
        );
    }
}
