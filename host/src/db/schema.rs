//! The schema, as an ordered list of migrations.
//!
//! `PRAGMA user_version` records how many migrations a database has had. A migration is never
//! edited once released: a change to the schema is a new entry at the end of [`MIGRATIONS`].

/// Every migration, oldest first. Index `i` moves a database from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    MIGRATION_1,
    MIGRATION_2,
    MIGRATION_3,
    MIGRATION_4,
    MIGRATION_5,
    MIGRATION_6,
    MIGRATION_7,
];

/// Version 1: projects, runs, artifacts, scenes, keyframes, video clips and the publish journal.
///
/// Ids are UUIDs in text form; times are milliseconds since the Unix epoch. Tables are STRICT so
/// that a wrong type is refused rather than silently stored. Every row of a project hangs off it
/// with `ON DELETE CASCADE`; keyframes and clips also carry `project_id` so that composite foreign
/// keys can prove they point at a scene and an artifact *of the same project*.
const MIGRATION_1: &str = r#"
CREATE TABLE projects (
    id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    script      TEXT NOT NULL DEFAULT '',
    settings    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(settings) AND json_type(settings) = 'object'),
    status      TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'running', 'ready', 'failed')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE pipeline_runs (
    id            TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    project_id    TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    stage         TEXT NOT NULL CHECK (length(stage) BETWEEN 1 AND 200),
    plugin_sha256 TEXT NOT NULL CHECK (length(plugin_sha256) = 64),
    config        TEXT NOT NULL CHECK (json_valid(config) AND json_type(config) = 'object'),
    status        TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'interrupted')),
    summary       TEXT,
    error         TEXT,
    pid           INTEGER,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    CHECK ((status IN ('succeeded', 'failed', 'interrupted')) = (finished_at IS NOT NULL)),
    CHECK (status <> 'failed' OR error IS NOT NULL)
) STRICT;
CREATE INDEX pipeline_runs_by_project ON pipeline_runs(project_id, started_at);
CREATE INDEX pipeline_runs_by_status ON pipeline_runs(status) WHERE status IN ('queued', 'running');

CREATE TABLE artifacts (
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('keyframe', 'clip', 'output')),
    name        TEXT NOT NULL CHECK (length(CAST(name AS BLOB)) BETWEEN 1 AND 255 AND substr(name, 1, 1) <> '.'),
    size        INTEGER NOT NULL CHECK (size >= 0),
    sha256      TEXT NOT NULL CHECK (length(sha256) = 64),
    run_id      TEXT REFERENCES pipeline_runs(id) ON DELETE SET NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (project_id, kind, name)
) STRICT, WITHOUT ROWID;

CREATE TABLE scenes (
    id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL CHECK (idx >= 0),
    title       TEXT NOT NULL CHECK (length(title) >= 1),
    description TEXT NOT NULL,
    duration_ms INTEGER NOT NULL CHECK (duration_ms > 0),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (project_id, idx),
    UNIQUE (id, project_id)
) STRICT;

CREATE TABLE keyframes (
    id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    project_id  TEXT NOT NULL,
    scene_id    TEXT NOT NULL,
    position    TEXT NOT NULL CHECK (position IN ('start', 'end')),
    prompt      TEXT NOT NULL,
    image_kind  TEXT NOT NULL CHECK (image_kind IN ('keyframe', 'clip', 'output')),
    image_name  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (scene_id, position),
    FOREIGN KEY (scene_id, project_id) REFERENCES scenes(id, project_id) ON DELETE CASCADE,
    FOREIGN KEY (project_id, image_kind, image_name) REFERENCES artifacts(project_id, kind, name)
) STRICT;
CREATE INDEX keyframes_by_project ON keyframes(project_id);
CREATE INDEX keyframes_by_image ON keyframes(project_id, image_kind, image_name);

CREATE TABLE video_clips (
    id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    project_id  TEXT NOT NULL,
    scene_id    TEXT NOT NULL UNIQUE,
    video_kind  TEXT NOT NULL CHECK (video_kind IN ('keyframe', 'clip', 'output')),
    video_name  TEXT NOT NULL,
    duration_ms INTEGER NOT NULL CHECK (duration_ms > 0),
    frame_rate  INTEGER NOT NULL CHECK (frame_rate BETWEEN 1 AND 1000),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    FOREIGN KEY (scene_id, project_id) REFERENCES scenes(id, project_id) ON DELETE CASCADE,
    FOREIGN KEY (project_id, video_kind, video_name) REFERENCES artifacts(project_id, kind, name)
) STRICT;
CREATE INDEX video_clips_by_project ON video_clips(project_id);
CREATE INDEX video_clips_by_video ON video_clips(project_id, video_kind, video_name);

-- Files a committed run still has to move into place (staged name -> final name), or remove
-- (staged IS NULL). Written in the run's commit transaction, cleared once the renames are durable;
-- whatever remains after a crash is rolled forward by the next process that opens the home.
CREATE TABLE publish_journal (
    run_id      TEXT NOT NULL REFERENCES pipeline_runs(id) ON DELETE CASCADE,
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('keyframe', 'clip', 'output')),
    name        TEXT NOT NULL,
    staged      TEXT CHECK (staged IS NULL OR substr(staged, 1, 7) = '.stage-'),
    PRIMARY KEY (run_id, kind, name)
) STRICT, WITHOUT ROWID;
"#;

/// Version 2: pipeline runs. One `pipelines` row per `vidpipe run`; each stage it runs is a
/// `pipeline_runs` row pointing back at it with its position in the manifest.
const MIGRATION_2: &str = r#"
CREATE TABLE pipelines (
    id           TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    project_id   TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    manifest     TEXT NOT NULL,
    stage_count  INTEGER NOT NULL CHECK (stage_count >= 1),
    status       TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    summary      TEXT,
    error        TEXT,
    pid          INTEGER,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    CHECK ((status <> 'running') = (finished_at IS NOT NULL)),
    CHECK (status NOT IN ('failed', 'interrupted') OR error IS NOT NULL)
) STRICT;
CREATE INDEX pipelines_by_project ON pipelines(project_id, started_at);
CREATE INDEX pipelines_running ON pipelines(status) WHERE status = 'running';

ALTER TABLE pipeline_runs ADD COLUMN pipeline_id TEXT REFERENCES pipelines(id) ON DELETE CASCADE;
ALTER TABLE pipeline_runs ADD COLUMN stage_index INTEGER CHECK (stage_index IS NULL OR stage_index >= 0);
CREATE INDEX pipeline_runs_by_pipeline ON pipeline_runs(pipeline_id, stage_index) WHERE pipeline_id IS NOT NULL;
CREATE INDEX pipeline_runs_by_stage ON pipeline_runs(project_id, stage, started_at);
"#;

/// Version 3: a journal entry whose move can never be finished (its staged file is gone and the
/// file in place is not the artifact its row describes) is kept, marked with what was found,
/// rather than cleared as if the move had happened.
const MIGRATION_3: &str = r#"
ALTER TABLE publish_journal ADD COLUMN damaged TEXT;
"#;

/// Version 4: when a project was last edited (`vidpipe project update`), as the record order
/// of stage runs (the largest `pipeline_runs` rowid then). A pipeline reuses no run at or
/// before it: every run that read the project before the edit is there (rowids only grow
/// while the edit's rows exist), and so, rarely, is a later one whose rowid was handed out
/// again after newer runs were deleted with their project, which then just runs again.
/// 0 for a project never edited since it was created.
const MIGRATION_4: &str = r#"
ALTER TABLE projects ADD COLUMN edit_seq INTEGER NOT NULL DEFAULT 0 CHECK (edit_seq >= 0);
"#;

/// Version 5: shards and observed reads.
///
/// - `scene_id`: a stage that runs once per scene (`for-each = "scene"`) records each shard as
///   a run of its own, naming the scene it was bound to; `NULL` for a run bound to the whole
///   project. No foreign key: the record outlives a scene deleted later, as history.
/// - `reads`: what a succeeded run read, with a digest of each answer as its commit left it
///   (JSON; see `db::reads`); `NULL` for a run that did not succeed or ran before this version.
/// - `reason`: why the run ran ("first run", "scene 3 changed", …).
/// - `pipelines.plan`: for each stage and shard of a pipeline run, whether it ran or was
///   skipped, and why (JSON).
const MIGRATION_5: &str = r#"
ALTER TABLE pipeline_runs ADD COLUMN scene_id TEXT;
ALTER TABLE pipeline_runs ADD COLUMN reads TEXT;
ALTER TABLE pipeline_runs ADD COLUMN reason TEXT;
ALTER TABLE pipelines ADD COLUMN plan TEXT;
CREATE INDEX pipeline_runs_by_shard ON pipeline_runs(project_id, stage, scene_id) WHERE scene_id IS NOT NULL;
"#;

/// Version 6: one index fewer for every run record to write. `pipeline_runs_by_project` only
/// ordered a project's runs by start, which `pipeline_runs_by_stage` (project, stage, start)
/// finds too, leaving a sort of one project's runs; every stage run paid for it in its start
/// record: a page more in the write-ahead log, made durable by its commit.
const MIGRATION_6: &str = r#"
DROP INDEX pipeline_runs_by_project;
"#;

/// Version 7: parts. A per-scene stage may cut each scene's work into parts (`parts = N` in
/// its manifest stage), each run by a shard of its own.
///
/// - `video_clips.part`, `video_clips.parts`: a scene's video is one clip (part 0 of 1, as
///   every clip before this version) or consecutive parts, one clip each, joined in part order.
///   `UNIQUE (scene_id, part)` replaces `scene_id UNIQUE`; the table is rebuilt for it (nothing
///   refers to it: the old one is renamed, copied into the new one and dropped, and its
///   indexes made again).
/// - `pipeline_runs.part`, `pipeline_runs.parts`: the part a shard's run did; `NULL` for a run
///   of a stage not cut into parts.
const MIGRATION_7: &str = r#"
ALTER TABLE video_clips RENAME TO video_clips_v6;
CREATE TABLE video_clips (
    id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    project_id  TEXT NOT NULL,
    scene_id    TEXT NOT NULL,
    video_kind  TEXT NOT NULL CHECK (video_kind IN ('keyframe', 'clip', 'output')),
    video_name  TEXT NOT NULL,
    duration_ms INTEGER NOT NULL CHECK (duration_ms > 0),
    frame_rate  INTEGER NOT NULL CHECK (frame_rate BETWEEN 1 AND 1000),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    part        INTEGER NOT NULL DEFAULT 0,
    parts       INTEGER NOT NULL DEFAULT 1,
    CHECK (parts BETWEEN 1 AND 16 AND part >= 0 AND part < parts),
    UNIQUE (scene_id, part),
    FOREIGN KEY (scene_id, project_id) REFERENCES scenes(id, project_id) ON DELETE CASCADE,
    FOREIGN KEY (project_id, video_kind, video_name) REFERENCES artifacts(project_id, kind, name)
) STRICT;
INSERT INTO video_clips (id, project_id, scene_id, video_kind, video_name, duration_ms, frame_rate, created_at, updated_at)
    SELECT id, project_id, scene_id, video_kind, video_name, duration_ms, frame_rate, created_at, updated_at
    FROM video_clips_v6;
DROP TABLE video_clips_v6;
CREATE INDEX video_clips_by_project ON video_clips(project_id);
CREATE INDEX video_clips_by_video ON video_clips(project_id, video_kind, video_name);

ALTER TABLE pipeline_runs ADD COLUMN part INTEGER;
ALTER TABLE pipeline_runs ADD COLUMN parts INTEGER CHECK ((part IS NULL) = (parts IS NULL) AND (parts IS NULL OR (parts BETWEEN 2 AND 16 AND part >= 0 AND part < parts)));
"#;
