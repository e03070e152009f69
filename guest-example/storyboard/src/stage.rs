//! The storyboard stage itself, written against the [`Host`] trait so it runs natively in tests
//! as well as inside the component.

use std::collections::BTreeMap;

use vidpipe_stage_kit::{Level, Page, StageError, collect_pages};

use crate::config::Config;
use crate::render::{Scene, render, seconds_text, total_duration_ms};
use crate::script::split_scenes;

/// The largest chunk handed to one `writer.write` call, so no single host call carries a huge
/// list.
pub const MAX_CHUNK_BYTES: usize = 64 * 1024;

/// How many scenes to ask for per `list-scenes` page; the host may return fewer.
pub const SCENE_PAGE_LIMIT: u32 = 100;

/// What the stage needs to know about the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// The project's name.
    pub name: String,
    /// The project's script.
    pub script: String,
}

/// A scene that already exists in the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingScene {
    /// Its id.
    pub id: String,
    /// Its index and content.
    pub scene: Scene,
}

/// The host calls the stage makes, in plain Rust types.
pub trait Host {
    /// An artifact being written.
    type Writer;

    /// Reads the run's project.
    fn project(&mut self) -> Result<Project, StageError>;
    /// Lists existing scenes in index order, at most `limit` per page.
    fn list_scenes(
        &mut self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<ExistingScene>, StageError>;
    /// Creates a scene.
    fn create_scene(&mut self, scene: &Scene) -> Result<(), StageError>;
    /// Overwrites the title, description and duration of the scene with id `id`.
    fn update_scene(&mut self, id: &str, scene: &Scene) -> Result<(), StageError>;
    /// Deletes the scene with id `id`, with its keyframes and clip.
    fn delete_scene(&mut self, id: &str) -> Result<(), StageError>;
    /// Starts writing the `output` artifact `name`.
    fn create_output(&mut self, name: &str) -> Result<Self::Writer, StageError>;
    /// Appends `chunk` to the artifact.
    fn write(&mut self, writer: &mut Self::Writer, chunk: &[u8]) -> Result<(), StageError>;
    /// Publishes the artifact.
    fn finish(&mut self, writer: Self::Writer) -> Result<(), StageError>;
    /// Logs `message`.
    fn log(&mut self, level: Level, message: &str);
    /// Reports progress.
    fn progress(&mut self, done: u64, total: u64, message: &str);
}

/// Runs the storyboard stage: parses `config`, turns the project's script into scenes, writes
/// them to the database, publishes the storyboard document and returns a one-line summary.
///
/// Scenes are matched by position: the scene at an index the script still has is updated in
/// place if its text or duration changed and left alone (not even rewritten) if not, so that
/// later stages see exactly which scenes an edit touched; scenes past the end of the script
/// are deleted, with their keyframes and clips.
pub fn run<H: Host>(host: &mut H, config: &[(String, String)]) -> Result<String, StageError> {
    let config = Config::parse(config)?;
    let project = host
        .project()
        .map_err(|e| e.context("reading the project"))?;
    if project.script.trim().is_empty() {
        return Err(StageError::invalid_input(format!(
            "project `{}` has an empty script; write a script (paragraphs separated by blank lines) \
             before running the storyboard stage",
            project.name
        )));
    }

    let texts = split_scenes(&project.script);
    let count = texts.len();
    if count > config.max_scenes as usize {
        return Err(StageError::invalid_input(format!(
            "the script has {count} paragraphs but max-scenes is {}; raise max-scenes (at most \
             1000) or merge paragraphs",
            config.max_scenes
        )));
    }
    let scenes: Vec<Scene> = texts
        .into_iter()
        .zip(0u32..)
        .map(|(text, index)| Scene {
            index,
            title: text.title,
            description: text.description,
            duration_ms: config.scene_duration_ms,
        })
        .collect();
    host.log(
        Level::Info,
        &format!(
            "storyboard for `{}`: {count} scene(s) from the script",
            project.name
        ),
    );

    let existing = existing_scenes(host)?;
    let total = count as u64;
    let (mut created, mut updated, mut unchanged) = (0usize, 0usize, 0usize);
    for (scene, done) in scenes.iter().zip(1u64..) {
        match existing.get(&scene.index) {
            Some(old) if old.scene == *scene => unchanged += 1,
            Some(old) => {
                host.update_scene(&old.id, scene)
                    .map_err(|e| e.context(&format!("updating scene {}", scene.index)))?;
                updated += 1;
                host.log(
                    Level::Debug,
                    &format!("updated scene {}: {}", scene.index, scene.title),
                );
            }
            None => {
                host.create_scene(scene)
                    .map_err(|e| e.context(&format!("creating scene {}", scene.index)))?;
                created += 1;
                host.log(
                    Level::Debug,
                    &format!("created scene {}: {}", scene.index, scene.title),
                );
            }
        }
        host.progress(
            done,
            total,
            &format!("scene {done} of {total}: {}", scene.title),
        );
    }
    // Scenes past the end of the script: the paragraphs they came from are gone.
    let mut deleted = 0usize;
    for (index, old) in existing.range(count as u32..) {
        host.delete_scene(&old.id)
            .map_err(|e| e.context(&format!("deleting scene {index}")))?;
        deleted += 1;
        host.log(
            Level::Debug,
            &format!("deleted scene {index}: {}", old.scene.title),
        );
    }

    let document = render(config.format, &project.name, &scenes);
    publish(host, &config.output, document.as_bytes())?;

    let total_ms = total_duration_ms(&scenes);
    host.log(
        Level::Info,
        &format!(
            "{created} scene(s) created, {updated} updated, {unchanged} unchanged, {deleted} deleted; wrote output/{} ({} bytes)",
            config.output,
            document.len()
        ),
    );
    Ok(format!(
        "{count} scene{}, {} s total, output/{}",
        if count == 1 { "" } else { "s" },
        seconds_text(total_ms),
        config.output
    ))
}

/// Every existing scene by index, following the cursor through all pages.
fn existing_scenes<H: Host>(host: &mut H) -> Result<BTreeMap<u32, ExistingScene>, StageError> {
    let scenes = collect_pages(|cursor| host.list_scenes(cursor, SCENE_PAGE_LIMIT))
        .map_err(|e| e.context("listing the project's scenes"))?;
    Ok(scenes
        .into_iter()
        .map(|existing| (existing.scene.index, existing))
        .collect())
}

/// Writes `bytes` to the `output` artifact `name` in chunks and publishes it.
fn publish<H: Host>(host: &mut H, name: &str, bytes: &[u8]) -> Result<(), StageError> {
    let context = || format!("writing output artifact `{name}`");
    let mut writer = host
        .create_output(name)
        .map_err(|e| e.context(&context()))?;
    for chunk in bytes.chunks(MAX_CHUNK_BYTES) {
        host.write(&mut writer, chunk)
            .map_err(|e| e.context(&context()))?;
    }
    host.finish(writer).map_err(|e| e.context(&context()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vidpipe_stage_kit::ErrorCode;
    use vidpipe_stage_kit::config::owned;

    /// An in-memory host that pages scenes two at a time to exercise the cursor loop.
    #[derive(Default)]
    struct FakeHost {
        name: String,
        script: String,
        scenes: BTreeMap<u32, (String, Scene)>,
        next_id: u32,
        created: Vec<u32>,
        updated: Vec<u32>,
        deleted: Vec<u32>,
        list_calls: usize,
        chunks: Vec<usize>,
        published: Vec<(String, Vec<u8>)>,
        logs: Vec<(Level, String)>,
        progress: Vec<(u64, u64)>,
        repeat_cursor: bool,
    }

    impl FakeHost {
        fn with_script(script: &str) -> Self {
            Self {
                name: "Test Film".to_owned(),
                script: script.to_owned(),
                ..Self::default()
            }
        }

        fn seed(&mut self, indices: &[u32]) {
            for &index in indices {
                let scene = Scene {
                    index,
                    title: format!("old {index}"),
                    description: "old".to_owned(),
                    duration_ms: 1,
                };
                self.scenes.insert(index, (format!("seed-{index}"), scene));
            }
        }

        fn document(&self) -> String {
            let (_, bytes) = self.published.last().expect("a document was published");
            String::from_utf8(bytes.clone()).expect("UTF-8 document")
        }
    }

    impl Host for FakeHost {
        type Writer = (String, Vec<u8>);

        fn project(&mut self) -> Result<Project, StageError> {
            Ok(Project {
                name: self.name.clone(),
                script: self.script.clone(),
            })
        }

        fn list_scenes(
            &mut self,
            cursor: Option<&str>,
            limit: u32,
        ) -> Result<Page<ExistingScene>, StageError> {
            self.list_calls += 1;
            assert!(limit > 0);
            let start: u32 = match cursor {
                None | Some("stuck") => 0,
                Some(c) => c.parse().expect("our own cursor"),
            };
            let items: Vec<ExistingScene> = self
                .scenes
                .range(start..)
                .take(2)
                .map(|(_, (id, scene))| ExistingScene {
                    id: id.clone(),
                    scene: scene.clone(),
                })
                .collect();
            let next_cursor = if self.repeat_cursor {
                Some("stuck".to_owned())
            } else {
                items
                    .last()
                    .filter(|last| self.scenes.range(last.scene.index + 1..).next().is_some())
                    .map(|last| (last.scene.index + 1).to_string())
            };
            Ok(Page { items, next_cursor })
        }

        fn create_scene(&mut self, scene: &Scene) -> Result<(), StageError> {
            if self.scenes.contains_key(&scene.index) {
                return Err(StageError::new(ErrorCode::Conflict, "duplicate index"));
            }
            self.next_id += 1;
            self.scenes.insert(
                scene.index,
                (format!("new-{}", self.next_id), scene.clone()),
            );
            self.created.push(scene.index);
            Ok(())
        }

        fn update_scene(&mut self, id: &str, scene: &Scene) -> Result<(), StageError> {
            let entry = self
                .scenes
                .values_mut()
                .find(|(existing, _)| existing == id)
                .ok_or_else(|| StageError::new(ErrorCode::NotFound, id))?;
            entry.1 = scene.clone();
            self.updated.push(scene.index);
            Ok(())
        }

        fn delete_scene(&mut self, id: &str) -> Result<(), StageError> {
            let index = self
                .scenes
                .iter()
                .find(|(_, (existing, _))| existing == id)
                .map(|(&index, _)| index)
                .ok_or_else(|| StageError::new(ErrorCode::NotFound, id))?;
            self.scenes.remove(&index);
            self.deleted.push(index);
            Ok(())
        }

        fn create_output(&mut self, name: &str) -> Result<Self::Writer, StageError> {
            if name.contains('/') {
                return Err(StageError::invalid_input(format!("bad name `{name}`")));
            }
            Ok((name.to_owned(), Vec::new()))
        }

        fn write(&mut self, writer: &mut Self::Writer, chunk: &[u8]) -> Result<(), StageError> {
            self.chunks.push(chunk.len());
            writer.1.extend_from_slice(chunk);
            Ok(())
        }

        fn finish(&mut self, writer: Self::Writer) -> Result<(), StageError> {
            self.published.push(writer);
            Ok(())
        }

        fn log(&mut self, level: Level, message: &str) {
            self.logs.push((level, message.to_owned()));
        }

        fn progress(&mut self, done: u64, total: u64, _message: &str) {
            self.progress.push((done, total));
        }
    }

    const SCRIPT: &str = "Dawn breaks. Birds sing.\n\nA car speeds away!\n\n# Finale\nThe end.";

    #[test]
    fn a_fresh_project_gets_one_scene_per_paragraph_and_a_markdown_storyboard() {
        let mut host = FakeHost::with_script(SCRIPT);
        let summary = run(&mut host, &[]).expect("the stage succeeds");
        assert_eq!(summary, "3 scenes, 12.0 s total, output/storyboard.md");
        assert_eq!(host.created, [0, 1, 2]);
        assert!(host.updated.is_empty());
        let titles: Vec<_> = host
            .scenes
            .values()
            .map(|(_, s)| s.title.as_str())
            .collect();
        assert_eq!(titles, ["Dawn breaks", "A car speeds away!", "Finale"]);
        assert!(host.scenes.values().all(|(_, s)| s.duration_ms == 4_000));
        assert_eq!(host.progress, [(1, 3), (2, 3), (3, 3)]);
        assert_eq!(host.published.len(), 1);
        assert_eq!(host.published[0].0, "storyboard.md");
        let doc = host.document();
        assert!(doc.starts_with("# Storyboard: Test Film\n"), "{doc}");
        assert!(doc.contains("## Scene 3 — Finale\n\n*Duration: 4.0 s*\n\nThe end.\n"));
    }

    #[test]
    fn existing_scenes_are_updated_and_missing_ones_created_across_pages() {
        let mut host = FakeHost::with_script(&"Para.\n\n".repeat(7));
        host.seed(&[0, 1, 2, 4, 5]);
        run(&mut host, &owned(&[("seconds-per-scene", "1.5")])).expect("succeeds");
        assert!(host.list_calls >= 3, "paged {} times", host.list_calls);
        assert_eq!(host.updated, [0, 1, 2, 4, 5]);
        assert_eq!(host.created, [3, 6]);
        for index in [0, 4] {
            assert_eq!(host.scenes[&index].0, format!("seed-{index}"));
        }
        assert!(host.scenes.values().all(|(_, s)| s.duration_ms == 1_500));
        assert!(host.scenes.values().all(|(_, s)| s.title == "Para"));
    }

    #[test]
    fn scenes_past_the_end_of_the_script_are_deleted_and_the_rest_kept_by_position() {
        let mut host = FakeHost::with_script("One.\n\nTwo.");
        host.seed(&[0, 1, 2, 7]);
        run(&mut host, &[]).expect("succeeds");
        assert_eq!(host.deleted, [2, 7]);
        assert_eq!(host.updated, [0, 1]);
        assert!(host.created.is_empty());
        let kept: Vec<(&str, &str)> = host
            .scenes
            .values()
            .map(|(id, s)| (id.as_str(), s.title.as_str()))
            .collect();
        assert_eq!(kept, [("seed-0", "One"), ("seed-1", "Two")]);
    }

    #[test]
    fn a_rerun_on_the_same_script_rewrites_no_scene_and_an_edit_rewrites_only_its_own() {
        let mut host = FakeHost::with_script(SCRIPT);
        run(&mut host, &[]).expect("first run");
        let first = host.scenes.clone();
        host.created.clear();
        run(&mut host, &[]).expect("second run");
        assert!(host.created.is_empty() && host.updated.is_empty() && host.deleted.is_empty());
        assert_eq!(host.scenes, first);

        host.script = SCRIPT.replace("A car speeds away!", "A bus crawls by.");
        run(&mut host, &[]).expect("after an edit");
        assert_eq!(host.updated, [1], "only the edited paragraph's scene");
        assert_eq!(host.scenes[&1].1.title, "A bus crawls by");
        assert_eq!(host.scenes[&1].0, first[&1].0, "updated in place");
        assert!(host.logs.iter().any(|(_, m)| m.contains("2 unchanged")));
    }

    #[test]
    fn an_empty_script_is_invalid_input() {
        for script in ["", "  \n\t\n  "] {
            let mut host = FakeHost::with_script(script);
            let error = run(&mut host, &[]).expect_err("must refuse");
            assert_eq!(error.code, ErrorCode::InvalidInput);
            assert!(error.message.contains("empty script"), "{}", error.message);
        }
    }

    #[test]
    fn a_bad_config_fails_before_touching_the_project() {
        let mut host = FakeHost::with_script(SCRIPT);
        let error = run(&mut host, &owned(&[("colour", "red")])).expect_err("must refuse");
        assert_eq!(error.code, ErrorCode::InvalidInput);
        assert_eq!(host.list_calls, 0);
    }

    #[test]
    fn more_paragraphs_than_max_scenes_is_invalid_input() {
        let mut host = FakeHost::with_script(SCRIPT);
        let error = run(&mut host, &owned(&[("max-scenes", "2")])).expect_err("must refuse");
        assert_eq!(error.code, ErrorCode::InvalidInput);
        assert!(error.message.contains("3 paragraphs"), "{}", error.message);
        assert!(host.created.is_empty());
    }

    #[test]
    fn json_format_publishes_a_parseable_document_under_its_default_name() {
        let mut host = FakeHost::with_script(SCRIPT);
        let summary = run(&mut host, &owned(&[("format", "json")])).expect("succeeds");
        assert_eq!(summary, "3 scenes, 12.0 s total, output/storyboard.json");
        let value: serde_json::Value = serde_json::from_str(&host.document()).expect("valid JSON");
        assert_eq!(value["project"], "Test Film");
        assert_eq!(value["scenes"][1]["title"], "A car speeds away!");
        assert_eq!(value["scenes"][2]["index"], 2);
        assert_eq!(value["total_duration_ms"], 12_000);
    }

    #[test]
    fn a_single_scene_summary_is_singular() {
        let mut host = FakeHost::with_script("Only one.");
        let summary = run(&mut host, &owned(&[("seconds-per-scene", "2.25")])).expect("succeeds");
        assert_eq!(summary, "1 scene, 2.3 s total, output/storyboard.md");
    }

    #[test]
    fn large_documents_are_written_in_chunks_of_at_most_64_kib() {
        let paragraph = format!("{}.", "word ".repeat(2_000));
        let script = vec![paragraph; 100].join("\n\n");
        let mut host = FakeHost::with_script(&script);
        run(&mut host, &[]).expect("succeeds");
        let written: usize = host.chunks.iter().sum();
        assert!(host.chunks.len() > 1);
        assert!(host.chunks.iter().all(|&n| n > 0 && n <= MAX_CHUNK_BYTES));
        assert_eq!(written, host.document().len());
    }

    #[test]
    fn a_host_error_keeps_its_code_and_gains_context() {
        let mut host = FakeHost::with_script(SCRIPT);
        let error = run(&mut host, &owned(&[("output", "a/b")])).expect_err("must fail");
        assert_eq!(error.code, ErrorCode::InvalidInput);
        assert!(
            error.message.starts_with("writing output artifact `a/b`: "),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_repeated_cursor_stops_the_listing_instead_of_looping() {
        let mut host = FakeHost::with_script(SCRIPT);
        host.repeat_cursor = true;
        let error = run(&mut host, &[]).expect_err("must fail");
        // The shared `collect_pages` reports a repeated cursor as a conflict.
        assert_eq!(error.code, ErrorCode::Conflict);
        let listing = "listing the project's scenes: the host returned the page cursor `stuck`";
        assert!(error.message.starts_with(listing), "{error}");
        assert_eq!(host.list_calls, 2);
    }

    #[test]
    fn running_twice_gives_the_same_document_and_leaves_the_scenes_alone() {
        let mut host = FakeHost::with_script(SCRIPT);
        run(&mut host, &[]).expect("first run");
        let first = host.document();
        run(&mut host, &[]).expect("second run");
        assert_eq!(host.document(), first);
        assert_eq!(host.created, [0, 1, 2]);
        assert!(
            host.updated.is_empty(),
            "unchanged scenes are not rewritten"
        );
    }
}
