//! Cursors and ids a guest passes to the `db` and `artifacts` interfaces: whatever the string,
//! a session answers with rows of its own project or with `not-found` / `invalid-input`, never
//! with a database error or a panic.
#![no_main]

use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use vidpipe_host::db::stage::{NewScene, SceneUpdate, StageSession};
use vidpipe_host::db::{self, DbError, KeyValues, Kind};

/// One session on a database holding a project with a few committed scenes, for the process.
fn session() -> &'static Mutex<StageSession> {
    static SESSION: OnceLock<Mutex<StageSession>> = OnceLock::new();
    SESSION.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("vidpipe-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("vidpipe.db");
        let mut conn = db::open(&path).expect("open");
        db::migrate(&mut conn).expect("migrate");
        let project =
            db::create_project(&mut conn, "fuzz", "", &KeyValues::new()).expect("project");
        let run = db::start_run(
            &mut conn,
            &project.id,
            "seed",
            &"0".repeat(64),
            &KeyValues::new(),
            db::Origin::default(),
        )
        .expect("run");
        let mut seed = StageSession::open(&path, &project.id, &run.id).expect("session");
        for index in 0..3 {
            seed.create_scene(NewScene {
                index,
                title: format!("scene {index}"),
                description: String::new(),
                duration_ms: 1000,
            })
            .expect("scene");
        }
        seed.commit("seeded").expect("commit");
        let run = db::start_run(
            &mut conn,
            &project.id,
            "fuzz",
            &"0".repeat(64),
            &KeyValues::new(),
            db::Origin::default(),
        )
        .expect("run");
        Mutex::new(StageSession::open(&path, &project.id, &run.id).expect("session"))
    })
}

fn expected(result: Result<(), DbError>) {
    match result {
        Ok(()) | Err(DbError::NotFound(_) | DbError::InvalidInput(_)) => {}
        Err(e) => panic!("a guest string reached the database as an error: {e}"),
    }
}

fuzz_target!(|input: (u8, u32, &str)| {
    let (call, limit, text) = input;
    let Ok(mut s) = session().lock() else { return };
    let id = Some(text);
    match call % 9 {
        0 => expected(s.list_scenes(id, limit).map(drop)),
        1 => expected(s.list_keyframes(None, id, limit).map(drop)),
        2 => expected(s.list_keyframes(id, None, limit).map(drop)),
        3 => expected(s.list_video_clips(None, id, limit).map(drop)),
        4 => expected(s.list_artifacts(Kind::Output, id, limit).map(drop)),
        5 => expected(s.get_scene(text).map(drop)),
        6 => expected(s.get_keyframe(text).map(drop)),
        7 => expected(s.get_video_clip(text).map(drop)),
        _ => expected(s.update_scene(text, SceneUpdate::default()).map(drop)),
    }
});
