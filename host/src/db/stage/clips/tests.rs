//! Clips cut into parts: a row per part, listed by scene then part, written in place, deleted
//! from a count up, and kept apart between the sibling shards that write them.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use super::super::tests::{Fixture, fixture, scene, session};
use super::super::{
    KeyframeUpdate, NewKeyframe, NewVideoClip, SceneUpdate, StageSession, VideoClipUpdate,
};
use crate::db::{
    ArtifactRef, DbError, KeyValues, KeyframePosition, Kind, Part, Scene, create_project,
};

/// A published clip artifact `name`, staged by `s`.
fn publish(s: &mut StageSession, name: &str) -> ArtifactRef {
    s.stage_artifact(
        Kind::Clip,
        name,
        &format!(".stage-{name}"),
        1,
        &"c".repeat(64),
    )
    .unwrap();
    ArtifactRef {
        kind: Kind::Clip,
        name: name.to_owned(),
    }
}

fn new_clip(scene: &Scene, video: ArtifactRef) -> NewVideoClip {
    NewVideoClip {
        scene_id: scene.id.clone(),
        video,
        duration_ms: 500,
        frame_rate: 12,
    }
}

/// `(part, count, video name)` of each clip `s` lists for `scene` (every scene if `None`).
fn parts(s: &StageSession, scene: Option<&Scene>) -> Vec<(u32, u32, String)> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        // One row per page: the cursor has to carry the part.
        let page = s
            .list_video_clips(scene.map(|s| s.id.as_str()), cursor.as_deref(), 1)
            .unwrap();
        out.extend(
            page.items
                .iter()
                .map(|c| (c.part.index, c.part.count, c.video.name.clone())),
        );
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

/// A project with two committed scenes.
fn project(f: &mut Fixture) -> (String, Scene, Scene) {
    let p = create_project(&mut f.main, "p", "", &KeyValues::new()).unwrap();
    let mut s = session(f, &p.id);
    let a = s.create_scene(scene(0)).unwrap();
    let b = s.create_scene(scene(1)).unwrap();
    s.commit("scenes").unwrap();
    (p.id, a, b)
}

/// The artifact names the database holds for the project.
fn artifact_names(f: &Fixture, project: &str) -> Vec<String> {
    let mut st = f
        .main
        .prepare("SELECT name FROM artifacts WHERE project_id = ?1 ORDER BY name")
        .unwrap();
    st.query_map([project], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn a_clip_cut_into_parts_has_a_row_per_part_listed_by_scene_then_part_across_pages() {
    let mut f = fixture();
    let (p, a, b) = project(&mut f);
    let mut s = session(&mut f, &p);
    // Written out of order, staged and committed mixed: the listing is by scene, then part.
    let b0 = publish(&mut s, "b.mp4");
    s.put_clip_part(new_clip(&b, b0), 0, 1).unwrap();
    for k in [2, 0] {
        let video = publish(&mut s, &format!("a-{k}.mp4"));
        s.put_clip_part(new_clip(&a, video), k, 3).unwrap();
    }
    s.commit("two parts").unwrap();
    let mut s = session(&mut f, &p);
    let a1 = publish(&mut s, "a-1.mp4");
    s.put_clip_part(new_clip(&a, a1), 1, 3).unwrap();
    let want = vec![
        (0, 3, "a-0.mp4".to_owned()),
        (1, 3, "a-1.mp4".to_owned()),
        (2, 3, "a-2.mp4".to_owned()),
        (0, 1, "b.mp4".to_owned()),
    ];
    assert_eq!(parts(&s, None), want, "staged and committed, merged");
    assert_eq!(parts(&s, Some(&a)), want[..3]);
    s.commit("the third").unwrap();
    let s = session(&mut f, &p);
    assert_eq!(parts(&s, None), want, "as committed");
}

#[test]
fn putting_a_part_again_keeps_its_row_and_deletes_the_file_it_named_before() {
    let mut f = fixture();
    let (p, a, _) = project(&mut f);
    let mut s = session(&mut f, &p);
    let whole = publish(&mut s, "a.mp4");
    let first = s.create_video_clip(new_clip(&a, whole)).unwrap();
    assert_eq!(first.part, Part::WHOLE);
    s.commit("whole").unwrap();
    // Cut in two: part 0 takes the whole clip's row, and its old file goes.
    let mut s = session(&mut f, &p);
    let half = publish(&mut s, "a-part-1-of-2.mp4");
    let (row, discard) = s.put_clip_part(new_clip(&a, half), 0, 2).unwrap();
    assert!(
        discard.is_empty(),
        "a.mp4 was committed: nothing staged to discard"
    );
    assert_eq!(row.id, first.id, "the part's row stays the same row");
    assert_eq!(row.part, Part { index: 0, count: 2 });
    assert!(s.artifact(Kind::Clip, "a.mp4").unwrap().is_none());
    s.commit("cut").unwrap();
    assert_eq!(artifact_names(&f, &p), ["a-part-1-of-2.mp4"]);
    // A file written and then replaced within one run is handed back to be discarded.
    let mut s = session(&mut f, &p);
    let v1 = publish(&mut s, "v1.mp4");
    s.put_clip_part(new_clip(&a, v1), 0, 2).unwrap();
    let v2 = publish(&mut s, "v2.mp4");
    let (_, discard) = s.put_clip_part(new_clip(&a, v2), 0, 2).unwrap();
    assert_eq!(discard, [(Kind::Clip, ".stage-v1.mp4".to_owned())]);
    // A whole clip cannot be created where parts are.
    let other = publish(&mut s, "x.mp4");
    assert!(matches!(
        s.create_video_clip(new_clip(&a, other)),
        Err(DbError::Conflict(_))
    ));
}

#[test]
fn deleting_clip_parts_from_a_count_removes_those_parts_and_the_files_only_they_named() {
    let mut f = fixture();
    let (p, a, b) = project(&mut f);
    let mut s = session(&mut f, &p);
    let mut ids = Vec::new();
    for k in 0..4 {
        let video = publish(&mut s, &format!("a-{k}.mp4"));
        ids.push(s.put_clip_part(new_clip(&a, video), k, 4).unwrap().0.id);
    }
    // Scene 1's clip names a file a part of scene 0 names too: that file stays.
    let shared = ArtifactRef {
        kind: Kind::Clip,
        name: "a-3.mp4".into(),
    };
    s.create_video_clip(new_clip(&b, shared)).unwrap();
    s.commit("four parts").unwrap();

    let mut s = session(&mut f, &p);
    let staged = publish(&mut s, "a-2-new.mp4");
    s.put_clip_part(new_clip(&a, staged), 2, 4).unwrap();
    let discard = s.delete_clip_parts(&a.id, 2).unwrap();
    assert_eq!(
        discard,
        [(Kind::Clip, ".stage-a-2-new.mp4".to_owned())],
        "the part this run wrote goes with its staged file"
    );
    assert_eq!(
        parts(&s, Some(&a)),
        [(0, 4, "a-0.mp4".to_owned()), (1, 4, "a-1.mp4".to_owned())]
    );
    assert!(matches!(
        s.get_video_clip(&ids[3]),
        Err(DbError::NotFound(_))
    ));
    assert!(
        s.delete_clip_parts(&a.id, 2).unwrap().is_empty(),
        "idempotent"
    );
    s.commit("cut back").unwrap();
    assert_eq!(
        artifact_names(&f, &p),
        ["a-0.mp4", "a-1.mp4", "a-3.mp4"],
        "a-2 went with its part; a-3 stays for scene 1's clip"
    );
    let s = session(&mut f, &p);
    assert_eq!(parts(&s, Some(&a)).len(), 2);
    assert_eq!(parts(&s, Some(&b)), [(0, 1, "a-3.mp4".to_owned())]);
}

#[test]
fn a_clip_deleted_and_put_again_in_one_run_commits_as_its_new_row() {
    let mut f = fixture();
    let (p, a, _) = project(&mut f);
    let mut s = session(&mut f, &p);
    for k in 0..2 {
        let video = publish(&mut s, &format!("a-{k}.mp4"));
        s.put_clip_part(new_clip(&a, video), k, 2).unwrap();
    }
    s.commit("two").unwrap();
    let mut s = session(&mut f, &p);
    s.delete_clip_parts(&a.id, 0).unwrap();
    assert!(parts(&s, Some(&a)).is_empty());
    let video = publish(&mut s, "a.mp4");
    s.put_clip_part(new_clip(&a, video), 0, 1).unwrap();
    assert_eq!(parts(&s, Some(&a)), [(0, 1, "a.mp4".to_owned())]);
    s.commit("whole again").unwrap();
    let s = session(&mut f, &p);
    assert_eq!(parts(&s, Some(&a)), [(0, 1, "a.mp4".to_owned())]);
    assert_eq!(artifact_names(&f, &p), ["a.mp4"]);
}

#[test]
fn a_part_out_of_range_is_invalid_input_and_changes_nothing() {
    let mut f = fixture();
    let (p, a, _) = project(&mut f);
    let mut s = session(&mut f, &p);
    let video = publish(&mut s, "a.mp4");
    for (index, count) in [(0, 0), (1, 1), (0, 17), (16, 16)] {
        let r = s.put_clip_part(new_clip(&a, video.clone()), index, count);
        assert!(
            matches!(&r, Err(DbError::InvalidInput(m)) if m.contains("no part")),
            "part {index} of {count}: {r:?}"
        );
    }
    assert!(parts(&s, None).is_empty());
    assert!(matches!(
        s.list_video_clips(None, Some("3"), 10),
        Err(DbError::InvalidInput(_))
    ));
}

/// Asserts that `r` is refused as out of scope, with a message containing `what`.
fn refused<T: std::fmt::Debug>(r: Result<T, DbError>, what: &str) {
    match r {
        Err(DbError::OutOfScope(m)) => assert!(m.contains(what), "{what}: {m}"),
        other => panic!("{what}: expected out-of-scope, got {other:?}"),
    }
}

#[test]
fn a_shard_doing_one_part_writes_only_that_part_and_deletes_only_the_parts_past_its_cut() {
    let mut f = fixture();
    let (p, a, _) = project(&mut f);
    let mut setup = session(&mut f, &p);
    let v0 = publish(&mut setup, "a-0.mp4");
    let zero = setup.put_clip_part(new_clip(&a, v0), 0, 3).unwrap().0;
    setup.commit("part 0").unwrap();

    let mut shard = session(&mut f, &p);
    shard.set_scope(Some(a.id.clone()));
    shard.set_part(Some(Part { index: 1, count: 3 }));
    assert_eq!(shard.part(), Some(Part { index: 1, count: 3 }));
    let video = publish(&mut shard, "a-1.mp4");
    refused(
        shard.put_clip_part(new_clip(&a, video.clone()), 0, 3),
        "clip part 1 is not this shard's part 2/3",
    );
    refused(
        shard.put_clip_part(new_clip(&a, video.clone()), 1, 4),
        "cut into at most 3 parts",
    );
    refused(
        shard.create_video_clip(new_clip(&a, video.clone())),
        "put-clip-part",
    );
    refused(
        shard.update_video_clip(
            &zero.id,
            VideoClipUpdate {
                duration_ms: Some(9),
                ..Default::default()
            },
        ),
        "updating a video clip",
    );
    // Before it wrote its part, only the parts past the stage's cut (3 and up) are not a
    // sibling's: part 0 is an earlier sibling's, part 2 a later one's.
    for first in [0, 1, 2] {
        refused(shard.delete_clip_parts(&a.id, first), "never a sibling's");
    }
    shard.delete_clip_parts(&a.id, 3).unwrap();
    // Its own part, cut into 2 (a scene too short for 3): then part 2 and up are past its cut.
    shard.put_clip_part(new_clip(&a, video), 1, 2).unwrap();
    refused(shard.delete_clip_parts(&a.id, 1), "as part 2 of 2");
    shard.delete_clip_parts(&a.id, 2).unwrap();
    // A count of 1 is no part at all: the whole of the work.
    shard.set_part(Some(Part::WHOLE));
    assert_eq!(shard.part(), None);
}

#[test]
fn a_shard_doing_one_part_writes_neither_its_scene_nor_its_keyframes_nor_another_parts_files() {
    let mut f = fixture();
    let (p, a, _) = project(&mut f);
    let mut setup = session(&mut f, &p);
    let v0 = publish(&mut setup, "a-0.mp4");
    let v1 = publish(&mut setup, "a-1.mp4");
    setup.put_clip_part(new_clip(&a, v0), 0, 2).unwrap();
    setup.put_clip_part(new_clip(&a, v1), 1, 2).unwrap();
    setup
        .stage_artifact(Kind::Keyframe, "a.png", ".stage-a.png", 1, &"k".repeat(64))
        .unwrap();
    let image = ArtifactRef {
        kind: Kind::Keyframe,
        name: "a.png".to_owned(),
    };
    let start = setup
        .create_keyframe(NewKeyframe {
            scene_id: a.id.clone(),
            position: KeyframePosition::Start,
            prompt: "p".to_owned(),
            image: image.clone(),
        })
        .unwrap();
    setup.commit("setup").unwrap();

    let mut shard = session(&mut f, &p);
    shard.set_scope(Some(a.id.clone()));
    shard.set_part(Some(Part { index: 1, count: 2 }));
    refused(
        shard.update_scene(
            &a.id,
            SceneUpdate {
                title: Some("t".to_owned()),
                ..Default::default()
            },
        ),
        "updating a scene: this shard does part 2/2",
    );
    refused(
        shard.create_keyframe(NewKeyframe {
            scene_id: a.id.clone(),
            position: KeyframePosition::End,
            prompt: "p".to_owned(),
            image: image.clone(),
        }),
        "creating a keyframe: this shard does part 2/2",
    );
    refused(
        shard.update_keyframe(
            &start.id,
            KeyframeUpdate {
                prompt: Some("q".to_owned()),
                ..Default::default()
            },
        ),
        "updating a keyframe",
    );
    let stage = |s: &mut StageSession, kind, name: &str| {
        s.stage_artifact(kind, name, &format!(".stage-x-{name}"), 1, &"d".repeat(64))
    };
    refused(
        stage(&mut shard, Kind::Clip, "a-0.mp4"),
        "clip part 1 of this scene refers to it",
    );
    refused(
        stage(&mut shard, Kind::Keyframe, "a.png"),
        "a keyframe of this scene refers to it",
    );
    // Its own part's file, and a new name, are its own.
    stage(&mut shard, Kind::Clip, "a-1.mp4").unwrap();
    stage(&mut shard, Kind::Clip, "a-1-new.mp4").unwrap();
    shard.commit("part 2").unwrap();
}

#[test]
fn sibling_parts_of_one_scene_commit_side_by_side_without_conflict() {
    let mut f = fixture();
    let (p, a, _) = project(&mut f);
    let mut shards: Vec<StageSession> = (0..2)
        .map(|k| {
            let mut s = session(&mut f, &p);
            s.set_scope(Some(a.id.clone()));
            s.set_part(Some(Part { index: k, count: 2 }));
            s
        })
        .collect();
    // Both stage before either commits, as shards running at once do.
    for (k, s) in (0u32..).zip(shards.iter_mut()) {
        let video = publish(s, &format!("a-{k}.mp4"));
        s.put_clip_part(new_clip(&a, video), k, 2).unwrap();
        if k == 0 {
            s.delete_clip_parts(&a.id, 2).unwrap();
        }
    }
    for s in shards.iter_mut().rev() {
        s.commit("part").unwrap();
    }
    let s = session(&mut f, &p);
    assert_eq!(
        parts(&s, Some(&a)),
        [(0, 2, "a-0.mp4".to_owned()), (1, 2, "a-1.mp4".to_owned())]
    );
}
