use super::*;

fn fresh() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut conn = open(&dir.path().join("vidpipe.db")).expect("open");
    migrate(&mut conn).expect("migrate");
    (dir, conn)
}

#[test]
fn every_connection_reads_back_wal_full_foreign_keys_and_busy_timeout() {
    let (dir, _first) = fresh();
    let conn = open(&dir.path().join("vidpipe.db")).expect("second connection");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    let sync: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .expect("sync");
    let fk: i64 = conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .expect("fk");
    let busy: i64 = conn
        .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
        .expect("busy");
    assert_eq!(mode, "wal");
    assert_eq!(sync, 2, "synchronous=FULL is 2");
    assert_eq!(fk, 1);
    assert_eq!(busy, BUSY_TIMEOUT.as_millis() as i64);
}

#[test]
fn a_cached_statement_is_compiled_once_however_often_its_parameters_are_bound_anew() {
    let (_dir, mut conn) = fresh();
    let project = create_project(&mut conn, "p", "", &KeyValues::new()).expect("project");
    // The journal lookup every project lock makes: its ORDER BY is checked against its
    // `project_id = ?1` term, which used to make SQLite compile it again at every use.
    for _ in 0..4 {
        pending_journal(&conn, &project.id, None).expect("journal");
    }
    let st = conn
        .prepare_cached(
            "SELECT run_id, project_id, kind, name, staged FROM publish_journal
         WHERE project_id = ?1 AND (?2 IS NULL OR run_id = ?2) AND damaged IS NULL
         ORDER BY run_id, kind, name",
        )
        .expect("the same cached statement");
    assert_eq!(st.get_status(rusqlite::StatementStatus::Run), 4);
    assert_eq!(st.get_status(rusqlite::StatementStatus::RePrepare), 0);
}

#[test]
fn migrating_twice_changes_nothing_and_records_the_version() {
    let (_dir, mut conn) = fresh();
    let tables = |c: &Connection| -> Vec<String> {
        let mut st = c
            .prepare("SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY name")
            .expect("prepare");
        st.query_map([], |r| r.get(0))
            .expect("query")
            .map(|r| r.expect("row"))
            .collect()
    };
    let before = tables(&conn);
    migrate(&mut conn).expect("second migrate");
    assert_eq!(tables(&conn), before);
    assert_eq!(
        schema_version(&conn).expect("version"),
        schema::MIGRATIONS.len() as i64
    );
    for table in [
        "projects",
        "scenes",
        "keyframes",
        "video_clips",
        "pipeline_runs",
        "artifacts",
    ] {
        assert!(
            before
                .iter()
                .any(|s| s.contains(&format!("CREATE TABLE {table} "))),
            "{table}"
        );
    }
}

#[test]
fn migrating_a_version_6_database_makes_every_clip_part_0_of_1_and_keeps_its_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut conn = open(&dir.path().join("vidpipe.db")).expect("open");
    for sql in &schema::MIGRATIONS[..6] {
        conn.execute_batch(sql).expect("an older migration");
    }
    conn.pragma_update(None, "user_version", 6)
        .expect("version");
    let project = create_project(&mut conn, "p", "", &KeyValues::new()).expect("project");
    let scene = "00000000-0000-7000-8000-000000000001";
    conn.execute_batch(&format!(
        "INSERT INTO scenes (id, project_id, idx, title, description, duration_ms, created_at, updated_at)
             VALUES ('{scene}', '{p}', 0, 't', 'd', 1000, 1, 1);
         INSERT INTO artifacts (project_id, kind, name, size, sha256, created_at)
             VALUES ('{p}', 'clip', 'scene-000.mp4', 1, '{sha}', 1);
         INSERT INTO video_clips (id, project_id, scene_id, video_kind, video_name, duration_ms, frame_rate, created_at, updated_at)
             VALUES ('00000000-0000-7000-8000-000000000002', '{p}', '{scene}', 'clip', 'scene-000.mp4', 1000, 12, 1, 2);",
        p = project.id,
        sha = "a".repeat(64)
    ))
    .expect("version 6 rows");
    migrate(&mut conn).expect("migrate");
    let (name, part, parts, updated): (String, u32, u32, i64) = conn
        .query_row(
            "SELECT video_name, part, parts, updated_at FROM video_clips",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("the clip");
    assert_eq!(
        (name.as_str(), part, parts, updated),
        ("scene-000.mp4", 0, 1, 2)
    );
    // A scene may now have a second part, but not a second part 0, nor a part past its count.
    let insert = |id: &str, part: u32, parts: u32| {
        conn.execute(
            "INSERT INTO video_clips (id, project_id, scene_id, video_kind, video_name, duration_ms, frame_rate, created_at, updated_at, part, parts)
             VALUES (?1, ?2, ?3, 'clip', 'scene-000.mp4', 1000, 12, 1, 1, ?4, ?5)",
            rusqlite::params![id, project.id, scene, part, parts],
        )
    };
    insert("00000000-0000-7000-8000-000000000003", 1, 2).expect("a second part");
    assert!(insert("00000000-0000-7000-8000-000000000004", 0, 2).is_err());
    assert!(insert("00000000-0000-7000-8000-000000000005", 2, 2).is_err());
    let fk: Vec<String> = conn
        .prepare("PRAGMA foreign_key_check")
        .expect("check")
        .query_map([], |r| r.get(0))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect();
    assert!(fk.is_empty(), "{fk:?}");
}

#[test]
fn a_database_from_a_newer_vidpipe_is_refused() {
    let (_dir, mut conn) = fresh();
    conn.pragma_update(None, "user_version", 99).expect("set");
    let err = migrate(&mut conn).expect_err("too new");
    assert!(matches!(err, DbError::TooNew { found: 99, .. }), "{err}");
}

#[test]
fn foreign_key_and_check_violations_are_refused() {
    let (_dir, mut conn) = fresh();
    let orphan = conn.execute(
        "INSERT INTO scenes (id, project_id, idx, title, description, duration_ms, created_at, updated_at)
         VALUES ('00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000009', 0, 't', 'd', 1, 0, 0)",
        [],
    );
    assert!(matches!(
        DbError::from(orphan.expect_err("fk")),
        DbError::Conflict(_)
    ));
    let project = create_project(&mut conn, "p", "", &KeyValues::new()).expect("project");
    let bad_status = conn.execute(
        "UPDATE projects SET status = 'exploded' WHERE id = ?1",
        [&project.id],
    );
    assert!(bad_status.expect_err("check").to_string().contains("CHECK"));
    let bad_duration = conn.execute(
        "INSERT INTO scenes (id, project_id, idx, title, description, duration_ms, created_at, updated_at)
         VALUES ('00000000-0000-0000-0000-000000000001', ?1, 0, 't', 'd', 0, 0, 0)",
        [&project.id],
    );
    assert!(
        bad_duration
            .expect_err("check")
            .to_string()
            .contains("CHECK")
    );
    let mut fk_check = conn.prepare("PRAGMA foreign_key_check").expect("prepare");
    assert!(!fk_check.exists([]).expect("fk check"), "no orphan rows");
}

#[test]
fn deleting_a_project_cascades_to_its_rows() {
    let (_dir, mut conn) = fresh();
    let project = create_project(&mut conn, "p", "", &KeyValues::new()).expect("project");
    conn.execute(
        "INSERT INTO scenes (id, project_id, idx, title, description, duration_ms, created_at, updated_at)
         VALUES ('00000000-0000-0000-0000-000000000001', ?1, 0, 't', 'd', 1, 0, 0)",
        [&project.id],
    )
    .expect("scene");
    delete_project(&mut conn, &project.id).expect("delete");
    let n: i64 = conn
        .query_row("SELECT count(*) FROM scenes", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 0);
}
