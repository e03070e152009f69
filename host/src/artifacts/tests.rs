use sha2::{Digest, Sha256};

use super::names::display_path;
use super::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A temporary HOME laid out like the real one, with things worth stealing around the
/// project under test.
struct Home {
    tmp: tempfile::TempDir,
    root: ArtifactRoot,
    id: Uuid,
    store: ProjectStore,
}

const DB_BYTES: &[u8] = b"SQLite format 3\0the real database";
const SIBLING_BYTES: &[u8] = b"another project's keyframe";
const OUTSIDE_BYTES: &[u8] = b"TOP SECRET outside the home";
const HOME_SECRET_BYTES: &[u8] = b"secret in home";

impl Home {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        std::fs::create_dir(&home).unwrap();
        std::fs::write(home.join("vidpipe.db"), DB_BYTES).unwrap();
        std::fs::write(home.join("secret"), HOME_SECRET_BYTES).unwrap();
        std::fs::write(tmp.path().join("outside.txt"), OUTSIDE_BYTES).unwrap();
        let root = ArtifactRoot::open(&home.join("projects")).unwrap();
        let sibling = Uuid::new_v4();
        root.create_project(sibling).unwrap();
        std::fs::write(
            home.join("projects")
                .join(sibling.to_string())
                .join("keyframes/secret.png"),
            SIBLING_BYTES,
        )
        .unwrap();
        let id = Uuid::new_v4();
        let store = root.create_project(id).unwrap();
        Self {
            tmp,
            root,
            id,
            store,
        }
    }

    fn home(&self) -> PathBuf {
        self.tmp.path().join("home")
    }

    fn project_path(&self) -> PathBuf {
        self.home().join("projects").join(self.id.to_string())
    }

    fn kind_path(&self, kind: ArtifactKind) -> PathBuf {
        self.project_path().join(kind.dir_name())
    }

    /// Every entry under the temp dir except the `keyframes` folder of the project under
    /// test: files with their bytes, links with their targets, directories as empty.
    fn snapshot_outside_keyframes(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let skip = self.kind_path(ArtifactKind::Keyframe);
        let mut out = BTreeMap::new();
        let mut stack = vec![self.tmp.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path == skip {
                    continue;
                }
                let meta = std::fs::symlink_metadata(&path).unwrap();
                let value = if meta.is_symlink() {
                    std::fs::read_link(&path)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes()
                } else if meta.is_dir() {
                    stack.push(path.clone());
                    Vec::new()
                } else {
                    std::fs::read(&path).unwrap()
                };
                out.insert(path, value);
            }
        }
        out
    }

    fn staged_entries(&self, kind: ArtifactKind) -> Vec<String> {
        std::fs::read_dir(self.kind_path(kind))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(STAGED_PREFIX))
            .collect()
    }

    fn write_staged(&self, kind: ArtifactKind, bytes: &[u8]) -> StagedArtifact {
        let mut writer = self.store.begin_write(kind, 1 << 20).unwrap();
        writer.write(bytes).unwrap();
        writer.finish().unwrap()
    }

    fn write_published(&self, kind: ArtifactKind, name: &str, bytes: &[u8]) {
        let staged = self.write_staged(kind, bytes);
        self.store.publish(kind, &staged.staged_name, name).unwrap();
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Names a guest might pass to reach outside its kind folder.
fn hostile_names() -> Vec<String> {
    vec![
        "../x".into(),
        "../../vidpipe.db".into(),
        "../../../vidpipe.db".into(),
        "../../../secret".into(),
        "../../../../outside.txt".into(),
        "/etc/passwd".into(),
        "//x".into(),
        "a/../../x".into(),
        "./../../../vidpipe.db".into(),
    ]
}

#[test]
fn artifact_kinds_round_trip_through_their_database_names() {
    for kind in ArtifactKind::ALL {
        assert_eq!(ArtifactKind::parse(kind.as_str()), Some(kind));
        assert_eq!(kind.to_string(), kind.as_str());
    }
    assert_eq!(ArtifactKind::Keyframe.dir_name(), "keyframes");
    assert_eq!(ArtifactKind::Clip.dir_name(), "clips");
    assert_eq!(ArtifactKind::Output.dir_name(), "output");
    assert_eq!(ArtifactKind::parse("keyframes"), None);
    assert_eq!(ArtifactKind::parse(""), None);
}

#[test]
fn validate_name_accepts_ordinary_names() {
    let long = format!("{}.png", "a".repeat(MAX_NAME_BYTES - 4));
    assert_eq!(long.len(), 255);
    // 255 bytes made of two-byte characters.
    let long_unicode = format!("{}x", "é".repeat(127));
    assert_eq!(long_unicode.len(), 255);
    for name in [
        "a.png",
        "scene-01_start.png",
        "café.png",
        "動画 01.mp4",
        "a..b",
        "x.",
        long.as_str(),
        long_unicode.as_str(),
    ] {
        assert!(validate_name(name).is_ok(), "{name:?} should be valid");
    }
}

#[test]
fn validate_name_rejects_the_escape_corpus_and_names_the_reason() {
    let huge = "a".repeat(4096);
    let just_too_long = "a".repeat(256);
    let cases: &[(&str, &str)] = &[
        ("../x", "`/`"),
        ("a/../../x", "`/`"),
        ("/etc/passwd", "`/`"),
        ("//x", "`/`"),
        ("x\0y", "NUL"),
        (".", "`.` or `..`"),
        ("..", "`.` or `..`"),
        ("", "empty"),
        (&huge, "longer than 255 bytes"),
        (&just_too_long, "longer than 255 bytes"),
        ("..\\x", "backslash"),
        ("a\\b", "backslash"),
        (".hidden", "reserved for the host's staged files"),
        (".stage-0123", "reserved for the host's staged files"),
        (" lead", "whitespace"),
        ("trail ", "whitespace"),
        ("trail\u{a0}", "whitespace"),
        ("a\nb", "control character"),
        ("a\u{7f}b", "control character"),
    ];
    for (name, reason) in cases {
        let err = validate_name(name).unwrap_err();
        assert!(
            matches!(err, ArtifactError::InvalidName { .. }),
            "{name:?}: {err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(reason), "{name:?}: {message}");
        assert!(message.len() < 200, "message too long: {message}");
    }
}

#[test]
fn invalid_name_errors_escape_and_truncate_the_name() {
    let message = validate_name(&format!("{}\n", "b".repeat(4096)))
        .unwrap_err()
        .to_string();
    assert!(!message.contains('\n'), "{message}");
    assert!(message.contains('…'), "{message}");
    assert!(message.len() < 200, "{message}");
}

#[test]
fn the_public_methods_reject_invalid_names_before_touching_the_disk() {
    let h = Home::new();
    let kind = ArtifactKind::Keyframe;
    let staged = h.write_staged(kind, b"bytes");
    for name in hostile_names() {
        assert!(matches!(
            h.store.read_at(kind, &name, 0, 10),
            Err(ArtifactError::InvalidName { .. })
        ));
        assert!(matches!(
            h.store.hash_file(kind, &name),
            Err(ArtifactError::InvalidName { .. })
        ));
        assert!(matches!(
            h.store.remove(kind, &name),
            Err(ArtifactError::InvalidName { .. })
        ));
        assert!(matches!(
            h.store.discard(kind, &name),
            Err(ArtifactError::InvalidName { .. })
        ));
        assert!(matches!(
            h.store.publish(kind, &staged.staged_name, &name),
            Err(ArtifactError::InvalidName { .. })
        ));
        assert!(matches!(
            h.store.publish(kind, &name, "x.png"),
            Err(ArtifactError::InvalidName { .. })
        ));
    }
    // A staged name must look like one, even with a dot: `publish` takes no other files.
    assert!(matches!(
        h.store.publish(kind, ".hidden", "x.png"),
        Err(ArtifactError::InvalidName { .. })
    ));
    assert!(matches!(
        h.store.publish(kind, ".stage-../../x", "x.png"),
        Err(ArtifactError::InvalidName { .. })
    ));
}

#[test]
fn safety_does_not_depend_on_validate_name() {
    let h = Home::new();
    let kind = ArtifactKind::Keyframe;
    let staged = h.write_staged(kind, b"staged bytes");
    // Targets for every hostile name exist, so "missing is not an error" cannot hide a
    // successful escape: `../x` and `a/../../x` both mean the project folder's `x`.
    std::fs::write(h.project_path().join("x"), b"project-level file").unwrap();
    std::fs::create_dir(h.kind_path(kind).join("a")).unwrap();
    let before = h.snapshot_outside_keyframes();
    for name in hostile_names() {
        let read = h.store.read_at_unvalidated(kind, &name, 0, 1 << 16);
        assert!(read.is_err(), "read_at {name:?} returned {read:?}");
        let hashed = h.store.hash_file_unvalidated(kind, &name);
        assert!(hashed.is_err(), "hash_file {name:?} returned {hashed:?}");
        let removed = h.store.remove_unvalidated(kind, &name);
        assert!(removed.is_err(), "remove {name:?} succeeded");
        let discarded = h.store.discard_unvalidated(kind, &name);
        assert!(discarded.is_err(), "discard {name:?} succeeded");
        let published = h
            .store
            .publish_unvalidated(kind, &staged.staged_name, &name);
        assert!(published.is_err(), "publish onto {name:?} succeeded");
        let stolen = h.store.publish_unvalidated(kind, &name, "stolen.png");
        assert!(stolen.is_err(), "publish from {name:?} succeeded");
    }
    assert_eq!(h.snapshot_outside_keyframes(), before);
    // Inside the folder nothing moved either: the staged file is still there, untouched.
    assert_eq!(
        h.store.hash_file(kind, &staged.staged_name).unwrap(),
        (staged.size, staged.sha256.clone())
    );
    assert!(h.store.list_files(kind).unwrap().is_empty());
    assert_eq!(
        std::fs::read(h.home().join("vidpipe.db")).unwrap(),
        DB_BYTES
    );
}

#[cfg(unix)]
#[test]
fn planted_symlinks_pointing_outside_are_not_followed() {
    use std::os::unix::fs::symlink;
    let h = Home::new();
    let kind = ArtifactKind::Keyframe;
    let kf = h.kind_path(kind);
    let outside = h.tmp.path().join("outside.txt");
    symlink(&outside, kf.join("abs.png")).unwrap();
    symlink("../../../secret", kf.join("rel.png")).unwrap();
    symlink("../../../vidpipe.db", kf.join("db.png")).unwrap();
    // A relative link that stays inside the folder is refused too: links are never followed.
    h.write_published(kind, "real.png", b"real");
    symlink("real.png", kf.join("inside.png")).unwrap();
    for name in ["abs.png", "rel.png", "db.png", "inside.png"] {
        for result in [
            h.store.read_at(kind, name, 0, 1 << 16).map(|_| ()),
            h.store.hash_file(kind, name).map(|_| ()),
            h.store
                .read_at_unvalidated(kind, name, 0, 1 << 16)
                .map(|_| ()),
        ] {
            let err = result.unwrap_err();
            assert!(
                matches!(&err, ArtifactError::Unsafe { reason, .. } if reason == "is a symbolic link"),
                "{name}: {err:?}"
            );
            assert!(err.to_string().contains("symbolic link"), "{err}");
        }
    }
    assert_eq!(h.store.list_files(kind).unwrap(), vec!["real.png"]);
    // Removing a link removes the link, not its target.
    h.store.remove(kind, "abs.png").unwrap();
    h.store.remove(kind, "db.png").unwrap();
    assert!(std::fs::symlink_metadata(kf.join("abs.png")).is_err());
    assert_eq!(std::fs::read(&outside).unwrap(), OUTSIDE_BYTES);
    assert_eq!(
        std::fs::read(h.home().join("vidpipe.db")).unwrap(),
        DB_BYTES
    );
}

#[cfg(unix)]
#[test]
fn a_symlink_loop_is_refused() {
    use std::os::unix::fs::symlink;
    let h = Home::new();
    let kind = ArtifactKind::Clip;
    let clips = h.kind_path(kind);
    symlink("loop.mp4", clips.join("loop.mp4")).unwrap();
    symlink("pong.mp4", clips.join("ping.mp4")).unwrap();
    symlink("ping.mp4", clips.join("pong.mp4")).unwrap();
    for name in ["loop.mp4", "ping.mp4"] {
        assert!(matches!(
            h.store.read_at(kind, name, 0, 10),
            Err(ArtifactError::Unsafe { .. })
        ));
        assert!(matches!(
            h.store.hash_file(kind, name),
            Err(ArtifactError::Unsafe { .. })
        ));
    }
}

#[cfg(unix)]
#[test]
fn publishing_onto_a_planted_symlink_replaces_the_link_not_its_target() {
    use std::os::unix::fs::symlink;
    let h = Home::new();
    let kind = ArtifactKind::Output;
    let target = h.kind_path(kind).join("final.mp4");
    let outside = h.tmp.path().join("outside.txt");
    symlink(&outside, &target).unwrap();
    let db_link = h.kind_path(kind).join("db.mp4");
    symlink("../../../vidpipe.db", &db_link).unwrap();

    h.write_published(kind, "final.mp4", b"new artifact bytes");
    h.write_published(kind, "db.mp4", b"not a database");

    assert_eq!(std::fs::read(&outside).unwrap(), OUTSIDE_BYTES);
    assert_eq!(
        std::fs::read(h.home().join("vidpipe.db")).unwrap(),
        DB_BYTES
    );
    assert!(std::fs::symlink_metadata(&target).unwrap().is_file());
    assert!(std::fs::symlink_metadata(&db_link).unwrap().is_file());
    assert_eq!(
        h.store.read_at(kind, "final.mp4", 0, 1 << 10).unwrap(),
        b"new artifact bytes"
    );
}

#[cfg(unix)]
#[test]
fn a_planted_hard_link_to_a_file_outside_the_project_is_refused() {
    let h = Home::new();
    let kind = ArtifactKind::Keyframe;
    let kf = h.kind_path(kind);
    std::fs::hard_link(h.tmp.path().join("outside.txt"), kf.join("hard.png")).unwrap();
    std::fs::hard_link(h.home().join("vidpipe.db"), kf.join("db.png")).unwrap();
    for name in ["hard.png", "db.png"] {
        for result in [
            h.store.read_at(kind, name, 0, 1 << 16).map(|_| ()),
            h.store.hash_file(kind, name).map(|_| ()),
        ] {
            let err = result.unwrap_err();
            assert!(
                matches!(&err, ArtifactError::Unsafe { reason, .. } if reason == "has 2 hard links"),
                "{name}: {err:?}"
            );
            assert!(err.to_string().contains("hard links"), "{err}");
        }
    }
}

#[test]
fn entries_that_are_not_regular_files_are_refused() {
    let h = Home::new();
    let kind = ArtifactKind::Keyframe;
    std::fs::create_dir(h.kind_path(kind).join("dir.png")).unwrap();
    let err = h.store.read_at(kind, "dir.png", 0, 10).unwrap_err();
    assert!(
        matches!(&err, ArtifactError::Unsafe { reason, .. } if reason.contains("directory")),
        "{err:?}"
    );
    assert!(matches!(
        h.store.hash_file(kind, "dir.png"),
        Err(ArtifactError::Unsafe { .. })
    ));
    assert!(h.store.list_files(kind).unwrap().is_empty());
}

#[cfg(unix)]
#[test]
fn a_planted_fifo_is_refused_without_blocking() {
    let h = Home::new();
    let kind = ArtifactKind::Clip;
    let fifo = h.kind_path(kind).join("pipe.mp4");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let err = h.store.read_at(kind, "pipe.mp4", 0, 10).unwrap_err();
    assert!(
        matches!(&err, ArtifactError::Unsafe { reason, .. } if reason == "is not a regular file"),
        "{err:?}"
    );
}

#[test]
fn write_finish_publish_round_trips_bytes_size_and_sha256() {
    let h = Home::new();
    let kind = ArtifactKind::Keyframe;
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();

    let mut writer = h.store.begin_write(kind, 1 << 20).unwrap();
    assert!(writer.staged_name().starts_with(STAGED_PREFIX));
    assert_eq!(writer.kind(), kind);
    for chunk in bytes.chunks(7_000) {
        writer.write(chunk).unwrap();
    }
    writer.write(&[]).unwrap();
    assert_eq!(writer.size(), bytes.len() as u64);
    let staged = writer.finish().unwrap();
    assert_eq!(
        staged,
        StagedArtifact {
            kind,
            staged_name: staged.staged_name.clone(),
            size: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
        }
    );

    // Before publish: the name does not exist and the staged file is not listed.
    assert!(matches!(
        h.store.read_at(kind, "frame.png", 0, 10),
        Err(ArtifactError::NotFound { .. })
    ));
    assert!(h.store.list_files(kind).unwrap().is_empty());
    assert_eq!(
        h.store.hash_file(kind, &staged.staged_name).unwrap(),
        (staged.size, staged.sha256.clone())
    );

    h.store
        .publish(kind, &staged.staged_name, "frame.png")
        .unwrap();
    assert_eq!(h.store.list_files(kind).unwrap(), vec!["frame.png"]);
    assert!(h.staged_entries(kind).is_empty());
    assert_eq!(
        h.store.hash_file(kind, "frame.png").unwrap(),
        (bytes.len() as u64, sha256_hex(&bytes))
    );
    assert_eq!(
        h.store.read_at(kind, "frame.png", 0, usize::MAX).unwrap(),
        bytes
    );
    assert_eq!(
        h.store.read_at(kind, "frame.png", 3, 4).unwrap(),
        &bytes[3..7]
    );
    let end = bytes.len() as u64;
    assert_eq!(
        h.store.read_at(kind, "frame.png", end - 5, 100).unwrap(),
        &bytes[bytes.len() - 5..]
    );
    assert!(
        h.store
            .read_at(kind, "frame.png", end, 100)
            .unwrap()
            .is_empty()
    );
    assert!(
        h.store
            .read_at(kind, "frame.png", u64::MAX, 100)
            .unwrap()
            .is_empty()
    );
    assert!(h.store.read_at(kind, "frame.png", 0, 0).unwrap().is_empty());
    // The same name in another folder is a different artifact.
    assert!(matches!(
        h.store.read_at(ArtifactKind::Clip, "frame.png", 0, 10),
        Err(ArtifactError::NotFound { .. })
    ));

    // Publishing again replaces the old artifact.
    h.write_published(kind, "frame.png", b"second version");
    assert_eq!(
        h.store.read_at(kind, "frame.png", 0, 1 << 10).unwrap(),
        b"second version"
    );
    assert_eq!(h.store.list_files(kind).unwrap(), vec!["frame.png"]);
}

#[test]
fn an_empty_artifact_can_be_published() {
    let h = Home::new();
    let kind = ArtifactKind::Output;
    let staged = h.store.begin_write(kind, 0).unwrap().finish().unwrap();
    assert_eq!(staged.size, 0);
    assert_eq!(staged.sha256, sha256_hex(b""));
    h.store.publish(kind, &staged.staged_name, "empty").unwrap();
    assert_eq!(
        h.store.hash_file(kind, "empty").unwrap(),
        (0, sha256_hex(b""))
    );
}

#[test]
fn a_writer_dropped_without_finish_leaves_no_staged_file() {
    let h = Home::new();
    let kind = ArtifactKind::Clip;
    let mut writer = h.store.begin_write(kind, 1 << 20).unwrap();
    writer.write(b"half an artifact").unwrap();
    assert_eq!(h.staged_entries(kind).len(), 1);
    drop(writer);
    assert!(h.staged_entries(kind).is_empty());
    assert!(h.store.list_files(kind).unwrap().is_empty());
}

#[test]
fn max_size_is_enforced_and_a_failed_writer_cannot_be_finished() {
    let h = Home::new();
    let kind = ArtifactKind::Output;

    let mut exact = h.store.begin_write(kind, 10).unwrap();
    exact.write(b"0123456789").unwrap();
    assert_eq!(exact.finish().unwrap().size, 10);

    let mut writer = h.store.begin_write(kind, 10).unwrap();
    writer.write(b"012345").unwrap();
    let err = writer.write(b"67890").unwrap_err();
    assert!(
        matches!(err, ArtifactError::TooLarge { limit: 10 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("10 bytes"), "{err}");
    assert_eq!(writer.size(), 6);
    // Nothing more is accepted, even a chunk that would fit.
    assert!(matches!(
        writer.write(b"6"),
        Err(ArtifactError::TooLarge { limit: 10 })
    ));
    assert_eq!(writer.size(), 6);
    let staged_name = writer.staged_name().to_owned();
    assert!(matches!(
        writer.finish(),
        Err(ArtifactError::TooLarge { limit: 10 })
    ));
    assert!(!h.staged_entries(kind).contains(&staged_name));
}

#[test]
fn sweep_staged_removes_leftovers_and_only_those() {
    let h = Home::new();
    for kind in ArtifactKind::ALL {
        h.write_published(kind, "kept.bin", kind.as_str().as_bytes());
        // A finished but never published file, as a crash would leave it.
        h.write_staged(kind, b"leftover");
    }
    std::fs::write(h.kind_path(ArtifactKind::Clip).join(".other"), b"x").unwrap();
    assert_eq!(h.store.sweep_staged().unwrap(), 3);
    for kind in ArtifactKind::ALL {
        assert!(h.staged_entries(kind).is_empty());
        assert_eq!(h.store.list_files(kind).unwrap(), vec!["kept.bin"]);
        assert_eq!(
            h.store.read_at(kind, "kept.bin", 0, 100).unwrap(),
            kind.as_str().as_bytes()
        );
    }
    assert!(h.kind_path(ArtifactKind::Clip).join(".other").exists());
    assert_eq!(h.store.sweep_staged().unwrap(), 0);
}

#[test]
fn discard_removes_a_staged_file_and_ignores_a_missing_one() {
    let h = Home::new();
    let kind = ArtifactKind::Keyframe;
    let staged = h.write_staged(kind, b"unwanted");
    h.store.discard(kind, &staged.staged_name).unwrap();
    assert!(h.staged_entries(kind).is_empty());
    h.store.discard(kind, &staged.staged_name).unwrap();
    assert!(matches!(
        h.store.publish(kind, &staged.staged_name, "x.png"),
        Err(ArtifactError::NotFound { .. })
    ));
}

#[test]
fn remove_deletes_a_published_file_and_ignores_a_missing_one() {
    let h = Home::new();
    let kind = ArtifactKind::Clip;
    h.write_published(kind, "a.mp4", b"clip");
    h.store.remove(kind, "a.mp4").unwrap();
    assert!(h.store.list_files(kind).unwrap().is_empty());
    h.store.remove(kind, "a.mp4").unwrap();
}

#[test]
fn list_files_is_sorted_and_hides_staged_files_links_and_folders() {
    let h = Home::new();
    let kind = ArtifactKind::Keyframe;
    for name in ["b.png", "a.png", "c.png"] {
        h.write_published(kind, name, name.as_bytes());
    }
    let _pending = h.store.begin_write(kind, 100).unwrap();
    h.write_staged(kind, b"finished, unpublished");
    std::fs::create_dir(h.kind_path(kind).join("folder")).unwrap();
    assert_eq!(
        h.store.list_files(kind).unwrap(),
        vec!["a.png", "b.png", "c.png"]
    );
}

#[test]
fn create_project_is_idempotent_and_creates_the_three_folders() {
    let h = Home::new();
    for kind in ArtifactKind::ALL {
        assert!(h.kind_path(kind).is_dir(), "{kind}");
    }
    h.write_published(ArtifactKind::Clip, "kept.mp4", b"survives");
    let again = h.root.create_project(h.id).unwrap();
    for kind in ArtifactKind::ALL {
        assert!(h.kind_path(kind).is_dir(), "{kind}");
    }
    assert_eq!(
        again
            .read_at(ArtifactKind::Clip, "kept.mp4", 0, 100)
            .unwrap(),
        b"survives"
    );
    let mut entries: Vec<String> = std::fs::read_dir(h.project_path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    entries.sort();
    assert_eq!(entries, vec!["clips", "keyframes", "output"]);
}

#[test]
fn project_opens_an_existing_project_and_recreates_a_missing_folder() {
    let h = Home::new();
    h.write_published(ArtifactKind::Output, "out.mp4", b"out");
    std::fs::remove_dir(h.kind_path(ArtifactKind::Keyframe)).unwrap();
    let store = h.root.project(h.id).unwrap();
    assert!(h.kind_path(ArtifactKind::Keyframe).is_dir());
    assert_eq!(
        store
            .read_at(ArtifactKind::Output, "out.mp4", 0, 10)
            .unwrap(),
        b"out"
    );
    let err = h.root.project(Uuid::new_v4()).unwrap_err();
    assert!(
        matches!(&err, ArtifactError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound),
        "{err:?}"
    );
}

#[cfg(unix)]
#[test]
fn a_project_folder_that_is_a_symlink_is_not_opened() {
    let h = Home::new();
    let alias = Uuid::new_v4();
    std::os::unix::fs::symlink(
        h.id.to_string(),
        h.home().join("projects").join(alias.to_string()),
    )
    .unwrap();
    assert!(h.root.project(alias).is_err());
    assert!(h.root.create_project(alias).is_err());
}

#[cfg(unix)]
#[test]
fn remove_project_deletes_the_tree_without_following_links_out() {
    let h = Home::new();
    h.write_published(ArtifactKind::Keyframe, "a.png", b"a");
    let kf = h.kind_path(ArtifactKind::Keyframe);
    std::os::unix::fs::symlink(h.home(), kf.join("home-link")).unwrap();
    std::os::unix::fs::symlink(h.home().join("vidpipe.db"), kf.join("db.png")).unwrap();
    std::fs::hard_link(h.home().join("secret"), kf.join("hard.png")).unwrap();
    let before: BTreeMap<PathBuf, Vec<u8>> = h
        .snapshot_outside_keyframes()
        .into_iter()
        .filter(|(path, _)| !path.starts_with(h.project_path()))
        .collect();

    h.root.remove_project(h.id).unwrap();
    assert!(!h.project_path().exists());
    assert_eq!(h.snapshot_outside_keyframes(), before);
    // Removing it again is not an error.
    h.root.remove_project(h.id).unwrap();
}

#[test]
fn io_errors_name_the_operation_and_the_relative_path() {
    let err = io_error("open", display_path(ArtifactKind::Keyframe, "x.png"))(io::Error::from(
        io::ErrorKind::PermissionDenied,
    ));
    let message = err.to_string();
    assert!(
        message.starts_with("could not open keyframes/x.png: "),
        "{message}"
    );
    let escaped = display_path(ArtifactKind::Clip, &format!("a\nb{}", "c".repeat(500)));
    assert!(escaped.starts_with("clips/a\\nb"), "{escaped}");
    assert!(escaped.ends_with('…') && escaped.len() < 100, "{escaped}");
}

/// Property tests of name handling: no input panics, and whatever is accepted stays one entry
/// of its folder.
mod name_properties {
    use proptest::prelude::*;

    use super::super::*;

    fn hostile_name() -> impl Strategy<Value = String> {
        let parts = prop_oneof![
            Just("..".to_owned()),
            Just(".".to_owned()),
            Just("/".to_owned()),
            Just("\\".to_owned()),
            Just("\0".to_owned()),
            Just("~".to_owned()),
            "[a-z]{1,5}",
            ".{1,4}",
        ];
        proptest::collection::vec(parts, 0..6).prop_map(|p| p.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn any_name_is_either_refused_or_lands_as_one_file_in_its_folder(name in hostile_name()) {
            let tmp = tempfile::tempdir().expect("tempdir");
            let root = ArtifactRoot::open(&tmp.path().join("projects")).expect("root");
            let id = uuid::Uuid::new_v4();
            let store = root.create_project(id).expect("project");
            match validate_name(&name) {
                Err(ArtifactError::InvalidName { .. }) => {
                    // Refused names are refused by every entry point too.
                    prop_assert!(store.read_at(ArtifactKind::Output, &name, 0, 1).is_err());
                    prop_assert!(store.remove(ArtifactKind::Output, &name).is_err());
                }
                Err(other) => prop_assert!(false, "validate_name returned {other}"),
                Ok(()) => {
                    prop_assert!(!name.contains('/') && name != "." && name != "..");
                    let mut w = store.begin_write(ArtifactKind::Output, 1 << 20).expect("writer");
                    w.write(b"x").expect("write");
                    let staged = w.finish().expect("finish");
                    store.publish(ArtifactKind::Output, &staged.staged_name, &name).expect("publish");
                    let folder = tmp.path().join("projects").join(id.to_string()).join("output");
                    let entries: Vec<_> = std::fs::read_dir(&folder).expect("list")
                        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect();
                    prop_assert_eq!(entries, vec![name.clone()]);
                    prop_assert_eq!(store.read_at(ArtifactKind::Output, &name, 0, 10).expect("read"), b"x".to_vec());
                }
            }
        }
    }
}
