//! Tests of the stage session: staging, reading through the overlay, commits, and a
//! model-based property test of random guest calls.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use super::*;
use crate::db::{
    ArtifactRef, DbError, KeyValues, KeyframePosition, Kind, Scene, create_project, get_run,
    migrate, open, project_detail, start_run,
};
use rusqlite::Connection;

pub(super) struct Fixture {
    _dir: tempfile::TempDir,
    pub(super) path: std::path::PathBuf,
    pub(super) main: Connection,
}

pub(super) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vidpipe.db");
    let mut main = open(&path).expect("open");
    migrate(&mut main).expect("migrate");
    Fixture {
        _dir: dir,
        path,
        main,
    }
}

/// Starts a run of `project` and returns its id.
pub(super) fn start(f: &mut Fixture, project: &str) -> String {
    start_run(
        &mut f.main,
        project,
        "test",
        &"0".repeat(64),
        &KeyValues::new(),
        Default::default(),
    )
    .expect("run")
    .id
}

pub(super) fn session(f: &mut Fixture, project: &str) -> StageSession {
    let run = start(f, project);
    StageSession::open(&f.path, project, &run).expect("session")
}

pub(super) fn scene(index: u32) -> NewScene {
    NewScene {
        index,
        title: format!("scene {index}"),
        description: "d".into(),
        duration_ms: 1000,
    }
}

/// A run of `project` on `spare`, the connection an earlier session gave back.
fn session_on(f: &mut Fixture, spare: Recycled, project: &str) -> StageSession {
    let run = start(f, project);
    StageSession::open_reusing(&f.path, Some(spare), project, &run).expect("session")
}

#[test]
fn a_recycled_connection_carries_nothing_of_its_last_session_into_the_next() {
    let mut f = fixture();
    let a = create_project(&mut f.main, "a", "", &KeyValues::new()).expect("a");
    let b = create_project(&mut f.main, "b", "", &KeyValues::new()).expect("b");
    // A run of project a stages rows and a file, then fails: nothing is committed.
    let mut first = session(&mut f, &a.id);
    first.create_scene(scene(0)).expect("create");
    first
        .stage_artifact(Kind::Output, "a.bin", ".stage-a", 1, &"a".repeat(64))
        .expect("stage");
    // Its deadline has passed; it must not follow the connection into the next session.
    first
        .set_deadline(std::time::Instant::now())
        .expect("deadline");
    let spare = first.recycle().expect("a clean connection comes back");
    // The next run, of project b, on the same connection, sees none of it...
    let mut second = session_on(&mut f, spare, &b.id);
    assert!(second.list_scenes(None, 10).expect("list").items.is_empty());
    assert!(second.staged_files().expect("staged").is_empty());
    second.create_scene(scene(0)).expect("index 0 is free in b");
    second.commit("ok").expect("commit");
    // ...and commits only its own row.
    assert!(
        project_detail(&mut f.main, &a.id)
            .expect("a")
            .scenes
            .is_empty()
    );
    assert_eq!(
        project_detail(&mut f.main, &b.id).expect("b").scenes.len(),
        1
    );
    // A third run of a, after a commit, starts clean too.
    let spare = second.recycle().expect("clean after a commit");
    let mut third = session_on(&mut f, spare, &a.id);
    assert!(third.list_scenes(None, 10).expect("list").items.is_empty());
    assert!(third.staged_files().expect("staged").is_empty());
    third.create_scene(scene(0)).expect("create");
    third.commit("ok").expect("commit");
    assert_eq!(
        project_detail(&mut f.main, &a.id).expect("a").scenes.len(),
        1
    );
}

#[test]
fn a_connection_inside_a_transaction_is_not_recycled() {
    let mut f = fixture();
    let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
    let s = session(&mut f, &p.id);
    s.conn.execute_batch("BEGIN").expect("begin");
    assert!(s.recycle().is_none());
    assert!(session(&mut f, &p.id).recycle().is_some(), "a clean one is");
}

#[test]
fn a_recycled_connection_is_used_only_for_the_database_it_was_opened_on() {
    let mut a = fixture();
    let mut b = fixture();
    let pa = create_project(&mut a.main, "a", "", &KeyValues::new()).expect("a");
    let pb = create_project(&mut b.main, "b", "", &KeyValues::new()).expect("b");
    let run = start(&mut a, &pa.id);
    let spare = StageSession::open(&a.path, &pa.id, &run)
        .expect("session")
        .recycle()
        .expect("recycled");
    // Offered to a session of database b, it is closed and b gets its own connection.
    let run = start(&mut b, &pb.id);
    let mut s = StageSession::open_reusing(&b.path, Some(spare), &pb.id, &run).expect("session");
    s.create_scene(scene(0)).expect("create");
    s.commit("ok").expect("commit");
    assert_eq!(
        project_detail(&mut b.main, &pb.id).expect("b").scenes.len(),
        1
    );
}

#[test]
fn staged_rows_are_invisible_to_others_until_commit_and_then_all_appear() {
    let mut f = fixture();
    let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
    let mut s = session(&mut f, &p.id);
    for i in 0..3 {
        s.create_scene(scene(i)).expect("create");
    }
    s.stage_artifact(Kind::Output, "doc.md", ".stage-x", 3, &"a".repeat(64))
        .expect("stage");
    assert_eq!(
        s.list_scenes(None, 10).expect("list").items.len(),
        3,
        "the stage reads its own writes"
    );
    assert!(
        project_detail(&mut f.main, &p.id)
            .expect("detail")
            .scenes
            .is_empty()
    );
    let journal = s.commit("ok").expect("commit");
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].staged.as_deref(), Some(".stage-x"));
    let detail = project_detail(&mut f.main, &p.id).expect("detail");
    assert_eq!(detail.scenes.len(), 3);
    assert_eq!(detail.artifacts.len(), 1);
    assert_eq!(detail.runs[0].status, crate::db::RunStatus::Succeeded);
}

#[test]
fn a_dropped_session_leaves_no_rows_behind() {
    let mut f = fixture();
    let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
    let mut s = session(&mut f, &p.id);
    s.create_scene(scene(0)).expect("create");
    drop(s);
    let n: i64 = f
        .main
        .query_row("SELECT count(*) FROM scenes", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 0);
}

#[test]
fn another_projects_rows_are_not_found_for_reads_and_updates() {
    let mut f = fixture();
    let a = create_project(&mut f.main, "a", "", &KeyValues::new()).expect("a");
    let b = create_project(&mut f.main, "b", "", &KeyValues::new()).expect("b");
    let mut sa = session(&mut f, &a.id);
    let theirs = sa.create_scene(scene(0)).expect("create");
    sa.commit("ok").expect("commit");
    let mut sb = session(&mut f, &b.id);
    assert!(matches!(
        sb.get_scene(&theirs.id),
        Err(DbError::NotFound(_))
    ));
    assert!(matches!(
        sb.update_scene(&theirs.id, SceneUpdate::default()),
        Err(DbError::NotFound(_))
    ));
    assert!(sb.list_scenes(None, 10).expect("list").items.is_empty());
    let new = NewKeyframe {
        scene_id: theirs.id.clone(),
        position: KeyframePosition::Start,
        prompt: String::new(),
        image: ArtifactRef {
            kind: Kind::Keyframe,
            name: "x.png".into(),
        },
    };
    assert!(matches!(sb.create_keyframe(new), Err(DbError::NotFound(_))));
    assert!(matches!(
        sb.get_scene("not a uuid"),
        Err(DbError::NotFound(_))
    ));
}

#[test]
fn duplicate_scene_indexes_and_dangling_artifact_references_are_refused() {
    let mut f = fixture();
    let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
    let mut s = session(&mut f, &p.id);
    let sc = s.create_scene(scene(0)).expect("create");
    assert!(matches!(
        s.create_scene(scene(0)),
        Err(DbError::Conflict(_))
    ));
    let new = NewKeyframe {
        scene_id: sc.id.clone(),
        position: KeyframePosition::Start,
        prompt: "p".into(),
        image: ArtifactRef {
            kind: Kind::Keyframe,
            name: "missing.png".into(),
        },
    };
    assert!(matches!(
        s.create_keyframe(new.clone()),
        Err(DbError::InvalidInput(_))
    ));
    s.stage_artifact(
        Kind::Keyframe,
        "missing.png",
        ".stage-1",
        1,
        &"b".repeat(64),
    )
    .expect("stage");
    s.create_keyframe(new.clone()).expect("now it exists");
    assert!(matches!(s.create_keyframe(new), Err(DbError::Conflict(_))));
    assert!(matches!(
        s.stage_delete(Kind::Keyframe, "missing.png"),
        Err(DbError::Conflict(_))
    ));
}

/// A staged scene with a start keyframe on staged image `a.png` and an end keyframe on `b.png`.
fn scene_with_two_images(s: &mut StageSession) -> crate::db::Scene {
    let sc = s.create_scene(scene(0)).expect("scene");
    for (name, position) in [
        ("a.png", KeyframePosition::Start),
        ("b.png", KeyframePosition::End),
    ] {
        s.stage_artifact(
            Kind::Keyframe,
            name,
            &format!(".stage-{name}"),
            10,
            &"e".repeat(64),
        )
        .expect("stage");
        s.create_keyframe(NewKeyframe {
            scene_id: sc.id.clone(),
            position,
            prompt: String::new(),
            image: ArtifactRef {
                kind: Kind::Keyframe,
                name: name.into(),
            },
        })
        .expect("keyframe");
    }
    sc
}

#[test]
fn a_scene_deletion_over_the_limits_changes_nothing_and_loses_no_staged_file() {
    let mut f = fixture();
    let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
    let mut s = session(&mut f, &p.id);
    let sc = scene_with_two_images(&mut s);
    // The scene and its two images are three writes; leave room for two.
    s.set_limits(SessionLimits {
        max_writes: s.writes + 2,
        max_bytes: 1 << 20,
        ..SessionLimits::default()
    });
    let err = s.delete_scene(&sc.id).expect_err("over the limit");
    assert!(matches!(err, DbError::LimitExceeded(_)), "{err}");
    assert_eq!(s.get_scene(&sc.id).expect("still there").id, sc.id);
    assert_eq!(
        s.list_keyframes(None, None, 10).expect("list").items.len(),
        2
    );
    let mut staged = s.staged_files().expect("staged");
    staged.sort();
    assert_eq!(
        staged,
        [
            (Kind::Keyframe, ".stage-a.png".to_owned()),
            (Kind::Keyframe, ".stage-b.png".to_owned())
        ]
    );
    // With room, it goes, and hands back both staged files to discard.
    s.set_limits(SessionLimits::default());
    let mut discard = s.delete_scene(&sc.id).expect("delete");
    discard.sort();
    assert_eq!(discard, staged);
    assert!(s.staged_files().expect("staged").is_empty());
    assert!(matches!(s.get_scene(&sc.id), Err(DbError::NotFound(_))));
}

#[test]
fn deleting_a_scene_keeps_an_image_another_scene_still_names() {
    let mut f = fixture();
    let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
    let mut s = session(&mut f, &p.id);
    let first = scene_with_two_images(&mut s);
    let second = s.create_scene(scene(1)).expect("scene");
    s.create_keyframe(NewKeyframe {
        scene_id: second.id.clone(),
        position: KeyframePosition::Start,
        prompt: String::new(),
        image: ArtifactRef {
            kind: Kind::Keyframe,
            name: "a.png".into(),
        },
    })
    .expect("keyframe");
    s.commit("before").expect("commit");
    // In a later run, over committed rows.
    let mut s = session(&mut f, &p.id);
    assert!(s.delete_scene(&first.id).expect("delete").is_empty());
    let names: Vec<String> = s
        .list_artifacts(Kind::Keyframe, None, 10)
        .expect("list")
        .items
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(
        names,
        ["a.png"],
        "b.png went with the scene, a.png is still named"
    );
    s.commit("after").expect("commit");
    let d = project_detail(&mut f.main, &p.id).expect("detail");
    assert_eq!(d.scenes.len(), 1);
    assert_eq!(d.keyframes.len(), 1);
    assert_eq!(d.artifacts.len(), 1);
}

#[test]
fn staging_beyond_the_per_run_limits_is_refused_as_limit_exceeded() {
    let mut f = fixture();
    let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
    let mut s = session(&mut f, &p.id);
    s.set_limits(SessionLimits {
        max_writes: 3,
        max_bytes: 1 << 20,
        ..SessionLimits::default()
    });
    for i in 0..3 {
        s.create_scene(scene(i)).expect("within the limit");
    }
    let err = s.create_scene(scene(3)).expect_err("over the limit");
    assert!(matches!(err, DbError::LimitExceeded(_)), "{err}");
    assert!(err.to_string().contains("limit per run is 3"), "{err}");
    let mut s = session(&mut f, &p.id);
    s.set_limits(SessionLimits {
        max_writes: 100,
        max_bytes: 10,
        ..SessionLimits::default()
    });
    let err = s
        .create_scene(NewScene {
            description: "x".repeat(20),
            ..scene(0)
        })
        .expect_err("too many bytes");
    assert!(matches!(err, DbError::LimitExceeded(_)), "{err}");
}

#[test]
fn database_calls_after_the_deadline_are_interrupted_and_the_commit_is_not() {
    let mut f = fixture();
    let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
    let mut s = session(&mut f, &p.id);
    for i in 0..300 {
        s.create_scene(scene(i)).expect("create");
    }
    s.commit("ok").expect("commit");
    // Reading committed rows is SQLite work, which the deadline cuts short.
    let mut s = session(&mut f, &p.id);
    s.create_scene(scene(300)).expect("create");
    s.set_deadline(std::time::Instant::now()).expect("deadline");
    let err = s.list_scenes(None, 500).expect_err("past the deadline");
    assert!(matches!(err, DbError::Interrupted), "{err}");
    s.commit("ok").expect("the commit is not interrupted");
}

#[test]
fn pages_cover_every_row_exactly_once() {
    let mut f = fixture();
    let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
    let mut s = session(&mut f, &p.id);
    for i in (0..23).rev() {
        s.create_scene(scene(i * 2)).expect("create");
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s.list_scenes(cursor.as_deref(), 5).expect("page");
        seen.extend(page.items.iter().map(|x| x.index));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, (0..23).map(|i| i * 2).collect::<Vec<_>>());
    assert!(matches!(
        s.list_scenes(Some("garbage"), 5),
        Err(DbError::InvalidInput(_))
    ));
    assert!(matches!(
        s.list_scenes(None, 0),
        Err(DbError::InvalidInput(_))
    ));
}

#[test]
fn keyframes_list_in_scene_order_start_before_end_across_pages() {
    let mut f = fixture();
    let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
    let mut s = session(&mut f, &p.id);
    s.stage_artifact(Kind::Keyframe, "k.png", ".stage-k", 1, &"c".repeat(64))
        .expect("stage");
    for i in (0..4).rev() {
        let sc = s.create_scene(scene(i)).expect("scene");
        for position in [KeyframePosition::End, KeyframePosition::Start] {
            s.create_keyframe(NewKeyframe {
                scene_id: sc.id.clone(),
                position,
                prompt: format!("{i}"),
                image: ArtifactRef {
                    kind: Kind::Keyframe,
                    name: "k.png".into(),
                },
            })
            .expect("keyframe");
        }
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s.list_keyframes(None, cursor.as_deref(), 3).expect("page");
        seen.extend(
            page.items
                .iter()
                .map(|k| format!("{}{}", k.prompt, k.position)),
        );
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let expected: Vec<String> = (0..4)
        .flat_map(|i| [format!("{i}start"), format!("{i}end")])
        .collect();
    assert_eq!(seen, expected);
}

#[test]
fn committing_a_run_that_is_no_longer_running_is_refused() {
    let mut f = fixture();
    let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
    let mut s = session(&mut f, &p.id);
    s.create_scene(scene(0)).expect("create");
    let run_id = s.run_id().to_owned();
    crate::db::fail_run(&mut f.main, &run_id, "killed").expect("fail");
    assert!(matches!(s.commit("late"), Err(DbError::Conflict(_))));
    assert_eq!(
        get_run(&f.main, &run_id).expect("run").status,
        crate::db::RunStatus::Failed
    );
    let n: i64 = f
        .main
        .query_row("SELECT count(*) FROM scenes", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 0);
}

#[test]
fn deleting_a_committed_artifact_hides_it_now_and_removes_it_at_commit() {
    let mut f = fixture();
    let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
    let mut s = session(&mut f, &p.id);
    s.stage_artifact(Kind::Output, "a.txt", ".stage-a", 1, &"d".repeat(64))
        .expect("stage");
    s.commit("ok").expect("commit");
    let mut s = session(&mut f, &p.id);
    assert!(s.artifact(Kind::Output, "a.txt").expect("lookup").is_some());
    s.stage_delete(Kind::Output, "a.txt").expect("delete");
    assert!(s.artifact(Kind::Output, "a.txt").expect("lookup").is_none());
    let journal = s.commit("ok").expect("commit");
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].staged, None);
    assert!(
        project_detail(&mut f.main, &p.id)
            .expect("detail")
            .artifacts
            .is_empty()
    );
}

/// Property tests: random sequences of the calls a guest can make, checked against a model.
mod model {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::db::{KeyValues, create_project, migrate, open, project_detail, start_run};

    /// One guest call, with arguments drawn from small ranges so that collisions happen.
    #[derive(Debug, Clone)]
    enum Op {
        Create {
            index: u32,
            title: String,
            duration_ms: u32,
        },
        Update {
            pick: usize,
            title: Option<String>,
            duration_ms: Option<u32>,
        },
        GetForeign,
        GetGarbage(String),
        List {
            limit: u32,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u32..12, "[a-z ]{0,12}", 0u32..3000)
                .prop_map(|(index, title, duration_ms)| Op::Create { index, title, duration_ms }),
            3 => (any::<usize>(), proptest::option::of("[a-z]{0,8}"), proptest::option::of(0u32..3000))
                .prop_map(|(pick, title, duration_ms)| Op::Update { pick, title, duration_ms }),
            1 => Just(Op::GetForeign),
            1 => ".{0,40}".prop_map(Op::GetGarbage),
            1 => (0u32..8).prop_map(|limit| Op::List { limit }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn any_sequence_of_guest_calls_agrees_with_a_model_and_commits_exactly_it(ops in proptest::collection::vec(op(), 1..40)) {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("vidpipe.db");
            let mut main = open(&path).expect("open");
            migrate(&mut main).expect("migrate");
            let mine = create_project(&mut main, "mine", "", &KeyValues::new()).expect("project");
            let other = create_project(&mut main, "other", "", &KeyValues::new()).expect("project");
            let theirs = {
                let run = start_run(&mut main, &other.id, "t", &"0".repeat(64), &KeyValues::new(), Default::default()).expect("run");
                let mut s = StageSession::open(&path, &other.id, &run.id).expect("session");
                let scene = s.create_scene(NewScene { index: 0, title: "theirs".into(), description: String::new(), duration_ms: 1 }).expect("scene");
                s.commit("ok").expect("commit");
                scene.id
            };
            let run = start_run(&mut main, &mine.id, "t", &"0".repeat(64), &KeyValues::new(), Default::default()).expect("run");
            let mut session = StageSession::open(&path, &mine.id, &run.id).expect("session");
            // The model: index -> (id, title, duration).
            let mut model: BTreeMap<u32, (String, String, u32)> = BTreeMap::new();

            for op in ops {
                match op {
                    Op::Create { index, title, duration_ms } => {
                        let result = session.create_scene(NewScene { index, title: title.clone(), description: "d".into(), duration_ms });
                        let valid = !title.trim().is_empty() && duration_ms > 0;
                        match result {
                            Ok(scene) => {
                                prop_assert!(valid && !model.contains_key(&index), "accepted a bad or duplicate scene");
                                model.insert(index, (scene.id, title, duration_ms));
                            }
                            Err(DbError::Conflict(_)) => prop_assert!(model.contains_key(&index)),
                            Err(DbError::InvalidInput(_)) => prop_assert!(!valid),
                            Err(e) => prop_assert!(false, "unexpected error {e}"),
                        }
                    }
                    Op::Update { pick, title, duration_ms } => {
                        if model.is_empty() {
                            continue;
                        }
                        let index = *model.keys().nth(pick % model.len()).expect("non-empty");
                        let entry = model.get_mut(&index).expect("picked");
                        let update = SceneUpdate { title: title.clone(), description: None, duration_ms };
                        let valid = title.as_ref().is_none_or(|t| !t.trim().is_empty()) && duration_ms != Some(0);
                        match session.update_scene(&entry.0, update) {
                            Ok(scene) => {
                                prop_assert!(valid);
                                if let Some(t) = title { entry.1 = t; }
                                if let Some(d) = duration_ms { entry.2 = d; }
                                prop_assert_eq!(&scene.title, &entry.1);
                            }
                            Err(DbError::InvalidInput(_)) => prop_assert!(!valid),
                            Err(e) => prop_assert!(false, "unexpected error {e}"),
                        }
                    }
                    Op::GetForeign => {
                        let err = session.get_scene(&theirs).expect_err("another project's scene");
                        prop_assert!(matches!(err, DbError::NotFound(_)));
                        let err = session.update_scene(&theirs, SceneUpdate::default()).expect_err("another project's scene");
                        prop_assert!(matches!(err, DbError::NotFound(_)));
                    }
                    Op::GetGarbage(id) => {
                        prop_assert!(matches!(session.get_scene(&id), Err(DbError::NotFound(_))));
                    }
                    Op::List { limit } => {
                        let mut seen = Vec::new();
                        let mut cursor = None;
                        loop {
                            match session.list_scenes(cursor.as_deref(), limit) {
                                Ok(page) => {
                                    prop_assert!(page.items.len() <= limit as usize);
                                    seen.extend(page.items.into_iter().map(|s| (s.index, s.title, s.duration_ms)));
                                    match page.next_cursor { Some(c) => cursor = Some(c), None => break }
                                }
                                Err(DbError::InvalidInput(_)) => { prop_assert_eq!(limit, 0); break; }
                                Err(e) => { prop_assert!(false, "unexpected error {e}"); }
                            }
                        }
                        if limit > 0 {
                            let expected: Vec<_> = model.iter().map(|(i, (_, t, d))| (*i, t.clone(), *d)).collect();
                            prop_assert_eq!(seen, expected);
                        }
                    }
                }
            }
            session.commit("ok").expect("commit");
            let committed: Vec<_> = project_detail(&mut main, &mine.id).expect("detail")
                .scenes.into_iter().map(|s| (s.index, s.id, s.title, s.duration_ms)).collect();
            let expected: Vec<_> = model.into_iter().map(|(i, (id, t, d))| (i, id, t, d)).collect();
            prop_assert_eq!(committed, expected);
            let theirs_now = project_detail(&mut main, &other.id).expect("detail").scenes;
            prop_assert_eq!(theirs_now.len(), 1);
            prop_assert_eq!(&theirs_now[0].title, "theirs");
        }
    }
}

/// Property tests of reading through the overlay: a project with committed scenes, artifacts
/// and keyframes, then random guest calls on all of them, checked against a model of what the
/// run should see, and the commit checked against it too.
mod overlay_model {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        CreateScene(u32),
        RetitleScene(usize),
        DeleteScene(usize),
        StageArtifact(u8, u64),
        DeleteArtifact(u8),
        CreateKeyframe(usize, bool, u8),
        Repoint(usize, u8),
        ListScenes(u32),
        ListArtifacts(u32),
        ListKeyframes(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u32..16).prop_map(Op::CreateScene),
            2 => any::<usize>().prop_map(Op::RetitleScene),
            2 => any::<usize>().prop_map(Op::DeleteScene),
            3 => (0u8..5, 0u64..10_000).prop_map(|(n, s)| Op::StageArtifact(n, s)),
            2 => (0u8..5).prop_map(Op::DeleteArtifact),
            3 => (any::<usize>(), any::<bool>(), 0u8..5).prop_map(|(p, e, n)| Op::CreateKeyframe(p, e, n)),
            1 => (any::<usize>(), 0u8..5).prop_map(|(p, n)| Op::Repoint(p, n)),
            1 => (1u32..6).prop_map(Op::ListScenes),
            1 => (1u32..4).prop_map(Op::ListArtifacts),
            1 => (1u32..5).prop_map(Op::ListKeyframes),
        ]
    }

    fn name(n: u8) -> String {
        format!("a{n}.png")
    }

    /// Every page of a listing, joined.
    fn all<T>(mut page: impl FnMut(Option<&str>) -> Result<Page<T>>) -> Vec<T> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let p = page(cursor.as_deref()).expect("page");
            out.extend(p.items);
            match p.next_cursor {
                Some(c) => cursor = Some(c),
                None => return out,
            }
        }
    }

    /// What the run should see: scenes by index (id, title), artifacts by name (size),
    /// keyframes by (scene index, end?) (id, image name).
    #[derive(Debug, Default, Clone, PartialEq)]
    struct Model {
        scenes: BTreeMap<u32, (String, String)>,
        artifacts: BTreeMap<String, u64>,
        keyframes: BTreeMap<(u32, bool), (String, String)>,
    }

    fn apply(
        s: &mut StageSession,
        m: &mut Model,
        op: Op,
    ) -> std::result::Result<(), TestCaseError> {
        match op {
            Op::CreateScene(index) => match s.create_scene(scene(index)) {
                Ok(sc) => {
                    prop_assert!(!m.scenes.contains_key(&index));
                    m.scenes.insert(index, (sc.id, sc.title));
                }
                Err(DbError::Conflict(_)) => prop_assert!(m.scenes.contains_key(&index)),
                Err(e) => prop_assert!(false, "{e}"),
            },
            Op::RetitleScene(pick) if !m.scenes.is_empty() => {
                let index = *m.scenes.keys().nth(pick % m.scenes.len()).expect("some");
                let (id, title) = m.scenes.get_mut(&index).expect("picked");
                *title = format!("{title}+");
                let update = SceneUpdate {
                    title: Some(title.clone()),
                    ..SceneUpdate::default()
                };
                prop_assert_eq!(&s.update_scene(id, update).expect("update").title, title);
            }
            Op::DeleteScene(pick) if !m.scenes.is_empty() => {
                let index = *m.scenes.keys().nth(pick % m.scenes.len()).expect("some");
                let (id, _) = m.scenes.remove(&index).expect("picked");
                s.delete_scene(&id).expect("delete");
                prop_assert!(matches!(s.get_scene(&id), Err(DbError::NotFound(_))));
                // Its keyframes go with it, and so do the images no other keyframe names.
                for end in [false, true] {
                    if let Some((keyframe, image)) = m.keyframes.remove(&(index, end)) {
                        prop_assert!(matches!(
                            s.get_keyframe(&keyframe),
                            Err(DbError::NotFound(_))
                        ));
                        if !m.keyframes.values().any(|(_, other)| *other == image) {
                            m.artifacts.remove(&image);
                        }
                    }
                }
            }
            Op::StageArtifact(n, size) => {
                s.stage_artifact(
                    Kind::Keyframe,
                    &name(n),
                    &format!(".stage-{n}-{size}"),
                    size,
                    &"e".repeat(64),
                )
                .expect("stage");
                m.artifacts.insert(name(n), size);
            }
            Op::DeleteArtifact(n) => {
                let used = m.keyframes.values().any(|(_, image)| *image == name(n));
                match s.stage_delete(Kind::Keyframe, &name(n)) {
                    Ok(_) => {
                        prop_assert!(m.artifacts.remove(&name(n)).is_some() && !used);
                    }
                    Err(DbError::NotFound(_)) => prop_assert!(!m.artifacts.contains_key(&name(n))),
                    Err(DbError::Conflict(_)) => prop_assert!(used),
                    Err(e) => prop_assert!(false, "{e}"),
                }
            }
            Op::CreateKeyframe(pick, end, n) if !m.scenes.is_empty() => {
                let index = *m.scenes.keys().nth(pick % m.scenes.len()).expect("some");
                let position = if end {
                    KeyframePosition::End
                } else {
                    KeyframePosition::Start
                };
                let new = NewKeyframe {
                    scene_id: m.scenes[&index].0.clone(),
                    position,
                    prompt: String::new(),
                    image: ArtifactRef {
                        kind: Kind::Keyframe,
                        name: name(n),
                    },
                };
                match s.create_keyframe(new) {
                    Ok(k) => {
                        prop_assert!(m.artifacts.contains_key(&name(n)));
                        prop_assert!(m.keyframes.insert((index, end), (k.id, name(n))).is_none());
                    }
                    Err(DbError::InvalidInput(_)) => {
                        prop_assert!(!m.artifacts.contains_key(&name(n)))
                    }
                    Err(DbError::Conflict(_)) => {
                        prop_assert!(m.keyframes.contains_key(&(index, end)))
                    }
                    Err(e) => prop_assert!(false, "{e}"),
                }
            }
            Op::Repoint(pick, n) if !m.keyframes.is_empty() => {
                let slot = *m
                    .keyframes
                    .keys()
                    .nth(pick % m.keyframes.len())
                    .expect("some");
                let (id, image) = m.keyframes.get_mut(&slot).expect("picked");
                let update = KeyframeUpdate {
                    prompt: None,
                    image: Some(ArtifactRef {
                        kind: Kind::Keyframe,
                        name: name(n),
                    }),
                };
                match s.update_keyframe(id, update) {
                    Ok(_) => *image = name(n),
                    Err(DbError::InvalidInput(_)) => {
                        prop_assert!(!m.artifacts.contains_key(&name(n)))
                    }
                    Err(e) => prop_assert!(false, "{e}"),
                }
            }
            Op::ListScenes(limit) => {
                let seen: Vec<_> = all(|c| s.list_scenes(c, limit))
                    .into_iter()
                    .map(|x| (x.index, x.title))
                    .collect();
                let want: Vec<_> = m.scenes.iter().map(|(i, (_, t))| (*i, t.clone())).collect();
                prop_assert_eq!(seen, want);
            }
            Op::ListArtifacts(limit) => {
                let seen: Vec<_> = all(|c| s.list_artifacts(Kind::Keyframe, c, limit))
                    .into_iter()
                    .map(|a| (a.name, a.size))
                    .collect();
                let want: Vec<_> = m.artifacts.iter().map(|(n, z)| (n.clone(), *z)).collect();
                prop_assert_eq!(seen, want);
            }
            Op::ListKeyframes(limit) => {
                let seen: Vec<_> = all(|c| s.list_keyframes(None, c, limit))
                    .into_iter()
                    .map(|k| (k.id, k.image.name))
                    .collect();
                let want: Vec<_> = m.keyframes.values().cloned().collect();
                prop_assert_eq!(seen, want);
            }
            _ => {}
        }
        Ok(())
    }

    /// The model of what the database holds for the project now.
    fn committed(f: &mut Fixture, project: &str) -> Model {
        let d = project_detail(&mut f.main, project).expect("detail");
        let index: BTreeMap<String, u32> =
            d.scenes.iter().map(|s| (s.id.clone(), s.index)).collect();
        Model {
            scenes: d
                .scenes
                .iter()
                .map(|s| (s.index, (s.id.clone(), s.title.clone())))
                .collect(),
            artifacts: d
                .artifacts
                .iter()
                .map(|a| (a.name.clone(), a.size))
                .collect(),
            keyframes: d
                .keyframes
                .iter()
                .map(|k| {
                    (
                        (index[&k.scene_id], k.position == KeyframePosition::End),
                        (k.id.clone(), k.image.name.clone()),
                    )
                })
                .collect(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn reads_through_the_overlay_agree_with_a_model_of_committed_and_staged_rows(
            before in proptest::collection::vec(op(), 0..24),
            during in proptest::collection::vec(op(), 1..48),
        ) {
            let mut f = fixture();
            let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
            // An earlier run commits what `before` leaves.
            let mut model = Model::default();
            let mut s = session(&mut f, &p.id);
            for op in before {
                apply(&mut s, &mut model, op)?;
            }
            s.commit("before").expect("commit");
            prop_assert_eq!(committed(&mut f, &p.id), model.clone());
            // This run sees the committed rows under its own, and commits exactly what it saw.
            let mut s = session(&mut f, &p.id);
            for op in during {
                apply(&mut s, &mut model, op)?;
            }
            for op in [Op::ListScenes(3), Op::ListArtifacts(2), Op::ListKeyframes(3)] {
                apply(&mut s, &mut model, op)?;
            }
            s.commit("during").expect("commit");
            prop_assert_eq!(committed(&mut f, &p.id), model);
        }
    }
}

#[test]
fn a_shard_writes_its_own_scene_and_is_refused_every_write_outside_it() {
    let mut f = fixture();
    let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
    // Two committed scenes, each with a keyframe and a clip, written by a whole-project run.
    let mut setup = session(&mut f, &p.id);
    let mine = setup.create_scene(scene(0)).expect("scene 0");
    let other = setup.create_scene(scene(1)).expect("scene 1");
    for (name, kind) in [("a.png", Kind::Keyframe), ("a.mp4", Kind::Clip)] {
        setup
            .stage_artifact(kind, name, &format!(".stage-{name}"), 1, &"a".repeat(64))
            .expect("stage");
    }
    let image = ArtifactRef {
        kind: Kind::Keyframe,
        name: "a.png".into(),
    };
    let video = ArtifactRef {
        kind: Kind::Clip,
        name: "a.mp4".into(),
    };
    let keyframe = |scene: &Scene| NewKeyframe {
        scene_id: scene.id.clone(),
        position: KeyframePosition::Start,
        prompt: "p".into(),
        image: image.clone(),
    };
    let clip = |scene: &Scene| NewVideoClip {
        scene_id: scene.id.clone(),
        video: video.clone(),
        duration_ms: 1000,
        frame_rate: 12,
    };
    let other_keyframe = setup.create_keyframe(keyframe(&other)).expect("keyframe");
    let other_clip = setup.create_video_clip(clip(&other)).expect("clip");
    setup.commit("setup").expect("commit");
    let before = project_detail(&mut f.main, &p.id).expect("detail");

    let mut shard = session(&mut f, &p.id);
    shard.set_scope(Some(mine.id.clone()));
    assert_eq!(shard.scope(), Some(mine.id.as_str()));
    let out_of_scope = |r: Result<(), DbError>, what: &str| match r {
        Err(DbError::OutOfScope(message)) => assert!(
            message.contains(what),
            "{what}: the message says what was refused: {message}"
        ),
        other => panic!("{what}: expected out-of-scope, got {other:?}"),
    };
    // It reads the whole project...
    assert_eq!(shard.list_scenes(None, 10).expect("list").items.len(), 2);
    assert!(shard.get_keyframe(&other_keyframe.id).is_ok());
    // ...but every write to another scene, and every creation or deletion of a scene, is refused.
    out_of_scope(shard.create_scene(scene(2)).map(drop), "creating a scene");
    out_of_scope(shard.delete_scene(&mine.id).map(drop), "deleting a scene");
    out_of_scope(shard.delete_scene(&other.id).map(drop), "deleting a scene");
    out_of_scope(
        shard
            .update_scene(
                &other.id,
                SceneUpdate {
                    title: Some("x".into()),
                    ..Default::default()
                },
            )
            .map(drop),
        "updating a scene",
    );
    out_of_scope(
        shard.create_keyframe(keyframe(&other)).map(drop),
        "creating a keyframe",
    );
    out_of_scope(
        shard
            .update_keyframe(
                &other_keyframe.id,
                KeyframeUpdate {
                    prompt: Some("x".into()),
                    ..Default::default()
                },
            )
            .map(drop),
        "updating a keyframe",
    );
    out_of_scope(
        shard.create_video_clip(clip(&other)).map(drop),
        "creating a video clip",
    );
    out_of_scope(
        shard
            .update_video_clip(
                &other_clip.id,
                VideoClipUpdate {
                    duration_ms: Some(5),
                    ..Default::default()
                },
            )
            .map(drop),
        "updating a video clip",
    );
    // Nor may its own rows name another scene's files: that scene's shard could no longer
    // replace them.
    out_of_scope(
        shard.create_keyframe(keyframe(&mine)).map(drop),
        "referring to artifact keyframe/a.png: a row of scene",
    );
    out_of_scope(
        shard.create_video_clip(clip(&mine)).map(drop),
        "referring to artifact clip/a.mp4: a row of scene",
    );
    // Its own scene's rows, naming its own files, it writes.
    for (name, kind) in [("b.png", Kind::Keyframe), ("b.mp4", Kind::Clip)] {
        shard
            .stage_artifact(kind, name, &format!(".stage-{name}"), 1, &"b".repeat(64))
            .expect("stage");
    }
    let keyframe = |scene: &Scene| NewKeyframe {
        image: ArtifactRef {
            kind: Kind::Keyframe,
            name: "b.png".into(),
        },
        ..keyframe(scene)
    };
    let clip = |scene: &Scene| NewVideoClip {
        video: ArtifactRef {
            kind: Kind::Clip,
            name: "b.mp4".into(),
        },
        ..clip(scene)
    };
    shard
        .update_scene(
            &mine.id,
            SceneUpdate {
                title: Some("mine".into()),
                ..Default::default()
            },
        )
        .expect("its own scene");
    let own = shard
        .create_keyframe(keyframe(&mine))
        .expect("its keyframe");
    shard
        .update_keyframe(
            &own.id,
            KeyframeUpdate {
                prompt: Some("q".into()),
                ..Default::default()
            },
        )
        .expect("its keyframe again");
    shard.create_video_clip(clip(&mine)).expect("its clip");
    shard.commit("shard").expect("commit");
    let after = project_detail(&mut f.main, &p.id).expect("detail");
    // Nothing of the other scene changed.
    let of = |d: &crate::db::ProjectDetail, id: &str| {
        (
            d.scenes.iter().find(|s| s.id == id).cloned(),
            d.keyframes
                .iter()
                .filter(|k| k.scene_id == id)
                .cloned()
                .collect::<Vec<_>>(),
            d.video_clips
                .iter()
                .filter(|c| c.scene_id == id)
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(of(&before, &other.id), of(&after, &other.id));
    assert_eq!(after.scenes.len(), 2);
    let (scene0, keyframes0, clips0) = of(&after, &mine.id);
    assert_eq!(scene0.expect("scene 0").title, "mine");
    assert_eq!((keyframes0.len(), clips0.len()), (1, 1));
}

#[test]
fn each_kind_of_read_changes_its_digest_when_what_it_read_changes_and_only_then() {
    use crate::db::Read;
    use crate::db::reads::digest;
    let mut f = fixture();
    let p = create_project(&mut f.main, "p", "script", &KeyValues::new()).expect("project");
    // Another project, with a scene of its own, whose changes no read of p sees.
    let elsewhere =
        create_project(&mut f.main, "elsewhere", "its script", &KeyValues::new()).expect("other");
    let mut there = session(&mut f, &elsewhere.id);
    there.create_scene(scene(0)).expect("its scene");
    there.commit("there").expect("commit");
    let mut s = session(&mut f, &p.id);
    let a = s.create_scene(scene(0)).expect("scene a");
    let b = s.create_scene(scene(1)).expect("scene b");
    for (name, kind) in [
        ("a.png", Kind::Keyframe),
        ("b.png", Kind::Keyframe),
        ("a.mp4", Kind::Clip),
    ] {
        s.stage_artifact(kind, name, &format!(".stage-{name}"), 1, &"a".repeat(64))
            .expect("stage");
    }
    let image = |name: &str| ArtifactRef {
        kind: Kind::Keyframe,
        name: name.into(),
    };
    let keyframe = |scene: &Scene, name: &str| NewKeyframe {
        scene_id: scene.id.clone(),
        position: KeyframePosition::Start,
        prompt: "p".into(),
        image: image(name),
    };
    let ka = s.create_keyframe(keyframe(&a, "a.png")).expect("ka");
    let kb = s.create_keyframe(keyframe(&b, "b.png")).expect("kb");
    let ca = s
        .create_video_clip(NewVideoClip {
            scene_id: a.id.clone(),
            video: ArtifactRef {
                kind: Kind::Clip,
                name: "a.mp4".into(),
            },
            duration_ms: 1000,
            frame_rate: 12,
        })
        .expect("clip");
    s.commit("setup").expect("commit");

    let reads = [
        Read::Project,
        Read::Scene(a.id.clone()),
        Read::Keyframe(ka.id.clone()),
        Read::Clip(ca.id.clone()),
        Read::Scenes,
        Read::Keyframes(Some(a.id.clone())),
        Read::Keyframes(None),
        Read::Clips(Some(a.id.clone())),
        Read::Clips(None),
        Read::Artifacts(Kind::Keyframe),
        Read::Artifact(Kind::Keyframe, "a.png".into()),
        Read::Scene(uuid::Uuid::now_v7().to_string()),
    ];
    let snapshot = |conn: &Connection| -> Vec<String> {
        reads
            .iter()
            .map(|r| digest(conn, &p.id, r).expect("digest"))
            .collect()
    };
    let mut last = snapshot(&f.main);
    let sha = "b".repeat(64);
    // Each change, and the reads (by position in `reads`) whose answer it changes.
    let changes: Vec<(String, Vec<usize>)> = vec![
        // Times and statuses are not what a stage reads.
        (
            "UPDATE scenes SET updated_at = updated_at + 7; UPDATE projects SET status = 'failed', updated_at = 1".into(),
            vec![],
        ),
        ("UPDATE projects SET script = 'a new script'".into(), vec![0]),
        (format!("UPDATE scenes SET title = 'x' WHERE id = '{}'", a.id), vec![1, 4]),
        (format!("UPDATE scenes SET title = 'y' WHERE id = '{}'", b.id), vec![4]),
        (format!("UPDATE keyframes SET prompt = 'x' WHERE id = '{}'", ka.id), vec![2, 5, 6]),
        (format!("UPDATE keyframes SET prompt = 'y' WHERE id = '{}'", kb.id), vec![6]),
        (format!("UPDATE video_clips SET frame_rate = 30 WHERE id = '{}'", ca.id), vec![3, 7, 8]),
        (format!("UPDATE artifacts SET sha256 = '{sha}' WHERE name = 'a.png'"), vec![9, 10]),
        (format!("UPDATE artifacts SET sha256 = '{sha}' WHERE name = 'b.png'"), vec![9]),
        // Clip artifacts are not among the reads.
        (format!("UPDATE artifacts SET sha256 = '{sha}' WHERE name = 'a.mp4'"), vec![]),
        // Another project's rows are never read.
        (format!("UPDATE projects SET script = 'other' WHERE id = '{}'", elsewhere.id), vec![]),
        (format!("UPDATE scenes SET title = 'other' WHERE project_id = '{}'", elsewhere.id), vec![]),
        // Deleting scene b takes its keyframe with it.
        (format!("DELETE FROM scenes WHERE id = '{}'", b.id), vec![4, 6]),
    ];
    for (sql, changed) in changes {
        f.main.execute_batch(&sql).expect(&sql);
        assert!(f.main.changes() > 0, "{sql} changes a row");
        let now = snapshot(&f.main);
        let differ: Vec<usize> = (0..reads.len()).filter(|&i| now[i] != last[i]).collect();
        assert_eq!(differ, changed, "{sql}");
        last = now;
    }
}

#[test]
fn a_run_records_what_its_guest_read_with_digests_of_the_committed_answers() {
    use crate::db::Read;
    let mut f = fixture();
    let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
    let mut s = session(&mut f, &p.id);
    let a = s.create_scene(scene(0)).expect("scene");
    // Noted reads (what the guest asked), including of its own writes; malformed ids never
    // name a row and are not noted.
    s.observe(Read::Scenes);
    s.observe(Read::Scene(a.id.clone()));
    s.observe(Read::Scene("not an id".into()));
    s.observe(Read::Scenes);
    assert_eq!(s.reads().map(|r| r.len()), Some(2));
    let run = s.run_id().to_owned();
    s.commit("done").expect("commit");
    let recorded = crate::db::run_reads(&f.main, &run)
        .expect("read")
        .expect("recorded");
    assert_eq!(
        recorded.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>(),
        vec![Read::Scene(a.id.clone()), Read::Scenes]
    );
    // As committed, nothing has changed since.
    assert_eq!(
        crate::db::reads::first_changed(&f.main, &p.id, &recorded).expect("check"),
        None
    );
    f.main
        .execute_batch("UPDATE scenes SET description = 'changed'")
        .expect("edit");
    assert_eq!(
        crate::db::reads::first_changed(&f.main, &p.id, &recorded).expect("check"),
        Some(Read::Scene(a.id.clone()))
    );

    // A run that reads more than MAX_READS different things records none: never reused.
    let mut big = session(&mut f, &p.id);
    for _ in 0..=MAX_READS {
        big.observe(Read::Scene(uuid::Uuid::now_v7().to_string()));
    }
    assert!(big.reads().is_none());
    let run = big.run_id().to_owned();
    big.commit("done").expect("commit");
    assert_eq!(crate::db::run_reads(&f.main, &run).expect("read"), None);
}

#[test]
fn a_run_whose_reads_changed_under_it_records_none_and_is_never_reused() {
    use crate::db::Read;
    let mut f = fixture();
    let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
    let mut setup = session(&mut f, &p.id);
    let a = setup.create_scene(scene(0)).expect("scene");
    setup.commit("setup").expect("commit");
    // A run reads scene a; another run of the project (a shard running beside it) then
    // commits a change to it before this one commits.
    let mut s = session(&mut f, &p.id);
    s.observe(Read::Scene(a.id.clone()));
    s.observe(Read::Scenes);
    f.main
        .execute_batch(&format!(
            "UPDATE scenes SET title = 'changed meanwhile' WHERE id = '{}'",
            a.id
        ))
        .expect("concurrent change");
    let run = s.run_id().to_owned();
    s.commit("done").expect("the commit itself succeeds");
    assert_eq!(
        get_run(&f.main, &run).expect("run").status,
        crate::db::RunStatus::Succeeded
    );
    assert_eq!(crate::db::run_reads(&f.main, &run).expect("read"), None);
}

/// A session of a shard bound to `scene` of `project`: its run's record names the scene.
fn shard_session(f: &mut Fixture, project: &str, scene: &str) -> StageSession {
    let origin = crate::db::Origin {
        scene: Some(scene),
        ..Default::default()
    };
    let run = start_run(
        &mut f.main,
        project,
        "shard",
        &"0".repeat(64),
        &KeyValues::new(),
        origin,
    )
    .expect("run")
    .id;
    let mut s = StageSession::open(&f.path, project, &run).expect("session");
    s.set_scope(Some(scene.to_owned()));
    s
}

fn is_conflict<T: std::fmt::Debug>(r: Result<T>, what: &str) {
    match r {
        Err(DbError::Conflict(m)) => assert!(m.contains("nothing was committed"), "{what}: {m}"),
        other => panic!("{what}: expected a conflict, got {other:?}"),
    }
}

fn titled(title: &str) -> SceneUpdate {
    SceneUpdate {
        title: Some(title.into()),
        ..Default::default()
    }
}

#[test]
fn runs_of_one_project_committing_in_turn_never_lose_an_update_nor_bring_back_a_deleted_row() {
    let mut f = fixture();
    let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
    let mut setup = session(&mut f, &p.id);
    let s0 = setup.create_scene(scene(0)).expect("scene 0");
    let s1 = setup.create_scene(scene(1)).expect("scene 1");
    let s2 = setup.create_scene(scene(2)).expect("scene 2");
    setup
        .stage_artifact(Kind::Keyframe, "k.png", ".stage-k", 1, &"a".repeat(64))
        .expect("stage");
    let image = ArtifactRef {
        kind: Kind::Keyframe,
        name: "k.png".into(),
    };
    let k0 = setup
        .create_keyframe(NewKeyframe {
            scene_id: s0.id.clone(),
            position: KeyframePosition::Start,
            prompt: "first".into(),
            image: image.clone(),
        })
        .expect("keyframe");
    setup.commit("setup").expect("commit");
    let title_of = |f: &mut Fixture, id: &str| {
        project_detail(&mut f.main, &p.id)
            .expect("detail")
            .scenes
            .into_iter()
            .find(|s| s.id == id)
            .map(|s| s.title)
    };

    // Two runs change the same scene, both from what was committed when they started; the
    // one that commits second would overwrite the first's change with a row it never saw.
    let mut a = session(&mut f, &p.id);
    let mut b = session(&mut f, &p.id);
    a.update_scene(&s0.id, titled("by a")).expect("a");
    b.update_scene(&s0.id, titled("by b")).expect("b");
    b.commit("b").expect("b commits");
    is_conflict(a.commit("a"), "a second update of a scene");
    assert_eq!(title_of(&mut f, &s0.id).as_deref(), Some("by b"));
    assert_eq!(
        get_run(&f.main, a.run_id()).expect("run").status,
        crate::db::RunStatus::Running,
        "nothing of a is committed, not even its record: the runner records it failed"
    );

    // A shard changes scene 1 while a whole-project run deletes it: the deletion commits
    // first, and the shard's update must not bring the scene back.
    let mut shard = shard_session(&mut f, &p.id, &s1.id);
    let mut deleter = session(&mut f, &p.id);
    shard.update_scene(&s1.id, titled("kept?")).expect("shard");
    deleter.delete_scene(&s1.id).expect("delete");
    deleter.commit("deleter").expect("the deletion commits");
    is_conflict(shard.commit("shard"), "an update of a deleted scene");
    assert_eq!(title_of(&mut f, &s1.id), None, "scene 1 stays deleted");

    // The other way round: the update commits first, then a deletion made without seeing it.
    let mut updater = session(&mut f, &p.id);
    let mut deleter = session(&mut f, &p.id);
    updater
        .update_scene(&s2.id, titled("updated"))
        .expect("update");
    deleter.delete_scene(&s2.id).expect("delete");
    updater.commit("updater").expect("the update commits");
    is_conflict(deleter.commit("deleter"), "a deletion of a changed scene");
    assert_eq!(title_of(&mut f, &s2.id).as_deref(), Some("updated"));

    // Keyframes (and, by the same code, clips) likewise.
    let mut a = session(&mut f, &p.id);
    let mut b = session(&mut f, &p.id);
    for (s, prompt) in [(&mut a, "a"), (&mut b, "b")] {
        s.update_keyframe(
            &k0.id,
            KeyframeUpdate {
                prompt: Some(prompt.into()),
                ..Default::default()
            },
        )
        .expect("update");
    }
    a.commit("a").expect("a commits");
    is_conflict(b.commit("b"), "a second update of a keyframe");

    // Two new scenes at one index: the second finds it taken at commit.
    let mut a = session(&mut f, &p.id);
    let mut b = session(&mut f, &p.id);
    a.create_scene(scene(7)).expect("a");
    b.create_scene(scene(7)).expect("b");
    a.commit("a").expect("a commits");
    is_conflict(b.commit("b"), "a second scene at one index");

    // A new clip of a scene another run deleted meanwhile.
    let s7 = project_detail(&mut f.main, &p.id)
        .expect("detail")
        .scenes
        .into_iter()
        .find(|s| s.index == 7)
        .expect("scene 7");
    let mut shard = shard_session(&mut f, &p.id, &s7.id);
    let mut deleter = session(&mut f, &p.id);
    // Its own image: a shard may not name another scene's.
    shard
        .stage_artifact(
            Kind::Keyframe,
            "late.png",
            ".stage-late.png",
            1,
            &"l".repeat(64),
        )
        .expect("stage");
    shard
        .create_keyframe(NewKeyframe {
            scene_id: s7.id.clone(),
            position: KeyframePosition::End,
            prompt: "late".into(),
            image: ArtifactRef {
                kind: Kind::Keyframe,
                name: "late.png".into(),
            },
        })
        .expect("keyframe");
    deleter.delete_scene(&s7.id).expect("delete");
    deleter.commit("deleter").expect("commits");
    is_conflict(shard.commit("shard"), "a keyframe of a deleted scene");
    let detail = project_detail(&mut f.main, &p.id).expect("detail");
    assert!(detail.keyframes.iter().all(|k| k.scene_id != s7.id));
    let check: String = f
        .main
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(check, "ok");
}

#[test]
fn a_run_changing_a_row_twice_within_a_millisecond_still_moves_it_on() {
    let mut f = fixture();
    let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
    let mut setup = session(&mut f, &p.id);
    let s0 = setup.create_scene(scene(0)).expect("scene");
    setup.commit("setup").expect("commit");
    // Many quick updates, each committed: each one's `updated_at` is later than the last, so
    // a run that saw any earlier one is told it changed.
    let mut last = s0.updated_at;
    for i in 0..20 {
        let mut s = session(&mut f, &p.id);
        let stale = session(&mut f, &p.id);
        let updated = s.update_scene(&s0.id, titled(&format!("t{i}"))).expect("u");
        assert!(updated.updated_at > last);
        last = updated.updated_at;
        let mut stale = stale;
        stale.update_scene(&s0.id, titled("stale")).expect("stale");
        s.commit("s").expect("commit");
        is_conflict(stale.commit("stale"), "a stale update");
    }
}

#[test]
fn a_shard_replaces_or_deletes_only_its_own_scenes_artifacts() {
    let mut f = fixture();
    let p = create_project(&mut f.main, "p", "", &KeyValues::new()).expect("project");
    let sha = "a".repeat(64);
    let mut setup = session(&mut f, &p.id);
    let s0 = setup.create_scene(scene(0)).expect("scene 0");
    let s1 = setup.create_scene(scene(1)).expect("scene 1");
    for (kind, name) in [
        (Kind::Keyframe, "k0.png"),
        (Kind::Keyframe, "k1.png"),
        (Kind::Keyframe, "both.png"),
        (Kind::Output, "final.mp4"),
    ] {
        setup
            .stage_artifact(kind, name, &format!(".stage-{name}"), 1, &sha)
            .expect("stage");
    }
    let frame = |scene: &Scene, position, name: &str| NewKeyframe {
        scene_id: scene.id.clone(),
        position,
        prompt: "p".into(),
        image: ArtifactRef {
            kind: Kind::Keyframe,
            name: name.into(),
        },
    };
    setup
        .create_keyframe(frame(&s0, KeyframePosition::Start, "k0.png"))
        .expect("k0");
    setup
        .create_keyframe(frame(&s1, KeyframePosition::Start, "k1.png"))
        .expect("k1");
    setup
        .create_keyframe(frame(&s0, KeyframePosition::End, "both.png"))
        .expect("both 0");
    setup
        .create_keyframe(frame(&s1, KeyframePosition::End, "both.png"))
        .expect("both 1");
    setup.commit("setup").expect("commit");
    // A shard of scene 1 leaves a file no row names.
    let mut side = shard_session(&mut f, &p.id, &s1.id);
    side.stage_artifact(Kind::Output, "side1.json", ".stage-side1", 1, &sha)
        .expect("its own file");
    side.commit("side").expect("commit");

    let mut shard = shard_session(&mut f, &p.id, &s0.id);
    let refused = |r: Result<Option<String>>, what: &str| match r {
        Err(DbError::OutOfScope(m)) => assert!(m.contains(what), "{m}"),
        other => panic!("{what}: expected out-of-scope, got {other:?}"),
    };
    // Its own scene's image, and a new name, it may write.
    shard
        .stage_artifact(Kind::Keyframe, "k0.png", ".stage-k0b", 2, &sha)
        .expect("its scene's image");
    shard
        .stage_artifact(Kind::Keyframe, "new.png", ".stage-new", 2, &sha)
        .expect("a new name");
    // Another scene's image, one both scenes name, a file of the whole project, another
    // shard's own file: refused, to write and to delete.
    refused(
        shard.stage_artifact(Kind::Keyframe, "k1.png", ".stage-x", 2, &sha),
        "a row of scene",
    );
    refused(
        shard.stage_artifact(Kind::Keyframe, "both.png", ".stage-x", 2, &sha),
        "a row of scene",
    );
    refused(
        shard.stage_artifact(Kind::Output, "final.mp4", ".stage-x", 2, &sha),
        "no run of this scene wrote it",
    );
    refused(
        shard.stage_artifact(Kind::Output, "side1.json", ".stage-x", 2, &sha),
        "no run of this scene wrote it",
    );
    refused(shard.stage_delete(Kind::Output, "final.mp4"), "deleting");
    refused(shard.stage_delete(Kind::Output, "side1.json"), "deleting");
    assert!(
        shard
            .touch_artifact(Kind::Keyframe, "k1.png", "replacing")
            .is_err()
    );
    // Its sibling of scene 1 may replace its own file.
    let mut sibling = shard_session(&mut f, &p.id, &s1.id);
    sibling
        .stage_artifact(Kind::Output, "side1.json", ".stage-side1b", 3, &sha)
        .expect("its own file again");
    // The sibling takes the same new name and commits first: the second commit conflicts.
    sibling
        .stage_artifact(Kind::Keyframe, "new.png", ".stage-new1", 2, &sha)
        .expect("a new name");
    sibling.commit("sibling").expect("commit");
    is_conflict(shard.commit("shard"), "the same new name");

    // A file of its own that another scene's row comes to name while it runs: refused at commit.
    let mut shard = shard_session(&mut f, &p.id, &s1.id);
    shard
        .stage_artifact(Kind::Output, "side1.json", ".stage-side1c", 4, &sha)
        .expect("its own file");
    let mut other = session(&mut f, &p.id);
    other
        .stage_artifact(Kind::Keyframe, "k1.png", ".stage-k1b", 1, &sha)
        .expect("stage");
    other.commit("other").expect("commit");
    let mut renamer = session(&mut f, &p.id);
    renamer
        .update_keyframe(
            &project_detail(&mut f.main, &p.id)
                .expect("detail")
                .keyframes
                .into_iter()
                .find(|k| k.scene_id == s0.id && k.position == KeyframePosition::Start)
                .expect("k0")
                .id,
            KeyframeUpdate {
                image: Some(ArtifactRef {
                    kind: Kind::Output,
                    name: "side1.json".into(),
                }),
                ..Default::default()
            },
        )
        .expect("scene 0's keyframe now names side1.json");
    renamer.commit("renamer").expect("commit");
    match shard.commit("shard") {
        Err(DbError::OutOfScope(m)) => assert!(m.contains("a row of scene"), "{m}"),
        other => panic!("expected out-of-scope at commit, got {other:?}"),
    }
}
