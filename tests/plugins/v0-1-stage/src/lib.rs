//! `v0-1-stage`: a stage built against `wit/since_v0.1.0/`, the frozen `vidpipe:plugin@0.1.0`.
//! It calls every function of every 0.1.0 interface (and some that must fail, checking their
//! error case), so that a host that still links 0.1.0 is shown to run 0.1.0 plugins unchanged:
//! rows, artifacts, writers finished and dropped, errors by case, logs and progress. With
//! `fail = CODE` (an error case's name) it returns an error of that case itself.

// The export glue wit-bindgen generates is FFI and has to be unsafe; it is confined here.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit/since_v0.1.0",
        world: "stage",
    });

    use super::OldStage;
    export!(OldStage with_types_in crate::bindings);
}

use bindings::vidpipe::plugin::{artifacts, db, log, types};
use types::{ArtifactKind, ArtifactRef, Error, ErrorCode};

struct OldStage;

fn wrong(message: String) -> Error {
    Error {
        code: ErrorCode::Conflict,
        message,
    }
}

impl bindings::Guest for OldStage {
    fn run(config: Vec<(String, String)>) -> Result<String, Error> {
        if let Some((_, name)) = config.iter().find(|(k, _)| k == "fail") {
            let code = match name.as_str() {
                "not-found" => ErrorCode::NotFound,
                "invalid-input" => ErrorCode::InvalidInput,
                "conflict" => ErrorCode::Conflict,
                "limit-exceeded" => ErrorCode::LimitExceeded,
                "io" => ErrorCode::Io,
                "busy" => ErrorCode::Busy,
                _ => return Err(wrong(format!("no error case {name:?}"))),
            };
            return Err(Error {
                code,
                message: "asked to fail".to_owned(),
            });
        }
        let project = db::get_project()?;
        let run = db::get_run()?;
        log::log(
            log::Level::Info,
            &format!("a 0.1.0 stage on {}", project.name),
        );

        let new = |index: u32| db::NewScene {
            index,
            title: format!("Old {index}"),
            description: "made by a 0.1.0 plugin".to_owned(),
            duration_ms: 1000,
        };
        let ids = db::create_scenes(&[new(0), new(1)])?;
        let third = db::create_scene(&new(2))?;
        let changed = db::update_scene(
            &third.id,
            &db::SceneUpdate {
                title: Some("Old two, renamed".to_owned()),
                description: None,
                duration_ms: Some(1500),
            },
        )?;
        let page = db::list_scenes(None, 10)?;
        let fetched = db::get_scene(&ids[0])?;
        log::progress(1, 3, "scenes");

        let bytes = b"an image from 0.1.0".to_vec();
        let writer = artifacts::create(ArtifactKind::Keyframe, "old.png")?;
        writer.write(&bytes)?;
        let info = artifacts::Writer::finish(writer)?;
        let clip_writer = artifacts::create(ArtifactKind::Clip, "old.mp4")?;
        clip_writer.write(b"a clip from 0.1.0")?;
        artifacts::Writer::finish(clip_writer)?;
        let keyframe = db::create_keyframe(&db::NewKeyframe {
            scene_id: fetched.id.clone(),
            position: db::KeyframePosition::Start,
            prompt: "old".to_owned(),
            image: ArtifactRef {
                kind: ArtifactKind::Keyframe,
                name: "old.png".to_owned(),
            },
        })?;
        let keyframe = db::update_keyframe(
            &keyframe.id,
            &db::KeyframeUpdate {
                prompt: Some("older".to_owned()),
                image: None,
            },
        )?;
        let clip = db::create_video_clip(&db::NewVideoClip {
            scene_id: fetched.id.clone(),
            video: ArtifactRef {
                kind: ArtifactKind::Clip,
                name: "old.mp4".to_owned(),
            },
            duration_ms: 1000,
            frame_rate: 12,
        })?;
        let clip = db::update_video_clip(
            &clip.id,
            &db::VideoClipUpdate {
                video: None,
                duration_ms: None,
                frame_rate: Some(24),
            },
        )?;
        log::progress(2, 3, "media");

        let read = artifacts::read(ArtifactKind::Keyframe, "old.png", 0, 1024)?;
        let stat = artifacts::stat(ArtifactKind::Keyframe, "old.png")?;
        let listed = artifacts::list(ArtifactKind::Keyframe, None, 10)?;
        let keyframes = db::list_keyframes(Some(&fetched.id), None, 10)?;
        let clips = db::list_video_clips(None, None, 10)?;
        let again = db::get_keyframe(&keyframe.id)?;
        let clip_again = db::get_video_clip(&clip.id)?;
        // A 0.1.0 error case, as 0.1.0 names it.
        let missing = match db::get_scene("00000000-0000-7000-8000-000000000000") {
            Err(Error {
                code: ErrorCode::NotFound,
                ..
            }) => "not-found",
            Err(_) => return Err(wrong("a missing scene gave another error".to_owned())),
            Ok(_) => return Err(wrong("a missing scene was found".to_owned())),
        };
        // Deleting an artifact a keyframe still names is a conflict.
        let referenced = match artifacts::delete(ArtifactKind::Keyframe, "old.png") {
            Err(Error {
                code: ErrorCode::Conflict,
                ..
            }) => "conflict",
            _ => {
                return Err(wrong(
                    "deleting a referenced artifact was not a conflict".to_owned(),
                ));
            }
        };
        // A writer dropped unfinished publishes nothing; a deleted artifact is gone.
        let abandoned = artifacts::create(ArtifactKind::Output, "abandoned.txt")?;
        abandoned.write(b"never finished")?;
        drop(abandoned);
        let scratch = artifacts::create(ArtifactKind::Output, "scratch.txt")?;
        scratch.write(b"deleted before the end")?;
        artifacts::Writer::finish(scratch)?;
        artifacts::delete(ArtifactKind::Output, "scratch.txt")?;
        let outputs = artifacts::list(ArtifactKind::Output, None, 10)?;
        if !outputs.items.is_empty() {
            return Err(wrong(format!("outputs left: {}", outputs.items.len())));
        }
        log::progress(3, 3, "checked");

        let consistent = read == bytes
            && stat.sha256 == info.sha256
            && listed.items.len() == 1
            && keyframes.items.len() == 1
            && again.prompt == "older"
            && clip_again.frame_rate == 24
            && clips.items.len() == 1
            && changed.duration_ms == 1500;
        if !consistent {
            return Err(wrong(
                "what was read back differs from what was written".to_owned(),
            ));
        }
        Ok(format!(
            "0.1.0 stage {} on {}: {} scenes ({}), keyframe {} of {} bytes, missing scene {missing}, referenced artifact {referenced}",
            run.stage,
            project.name,
            page.items.len(),
            page.items
                .iter()
                .map(|s| s.title.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            info.sha256,
            info.size,
        ))
    }
}
