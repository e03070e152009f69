//! Files a user names on the command line or in a manifest (scripts, manifests, plugins), read
//! so that a wrong one gets a clear refusal rather than a hang or an exhausted memory.
//!
//! A FIFO would block the open (and the read) until a writer appears; `/dev/zero` never ends; a
//! directory or a device is not what anyone meant. So a file is looked at before it is opened
//! (opening a device can do something), opened without blocking, checked again on the open
//! handle (the same regular file: no window in which the name could change underneath), and
//! read to at most a stated number of bytes.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why a file a user named could not be used. Always bad input.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be opened or read.
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        /// What the file was meant to be ("script", "pipeline manifest", "plugin").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The name is a directory, a FIFO, a device or a socket.
    #[error("{what} {} is {kind}, not a regular file", path.display())]
    NotAFile {
        /// What the file was meant to be.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What it is instead, e.g. "a directory".
        kind: &'static str,
    },
    /// The file is larger than anything of its kind can be.
    #[error("{what} {} is larger than the limit of {max} bytes", path.display())]
    TooLarge {
        /// What the file was meant to be.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
}

/// Reads the regular file at `path` (following symlinks), refusing anything else and anything
/// longer than `max` bytes. `what` names the file in errors.
pub fn read_file(path: &Path, what: &'static str, max: u64) -> Result<Vec<u8>, InputError> {
    use std::os::unix::fs::MetadataExt;
    let read_error = |source| InputError::Read {
        what,
        path: path.to_owned(),
        source,
    };
    let not_a_file = |kind: &std::fs::FileType| InputError::NotAFile {
        what,
        path: path.to_owned(),
        kind: describe(kind),
    };
    // Look before opening: opening a device can have effects of its own (a tape rewinds).
    let named = std::fs::metadata(path).map_err(read_error)?;
    if !named.is_file() {
        return Err(not_a_file(&named.file_type()));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(read_error)?;
    // And check what was opened is what was looked at: the name may have changed between.
    let opened = file.metadata().map_err(read_error)?;
    if !opened.is_file() {
        return Err(not_a_file(&opened.file_type()));
    }
    if (opened.dev(), opened.ino()) != (named.dev(), named.ino()) {
        return Err(read_error(std::io::Error::other(
            "the file was replaced while it was being opened",
        )));
    }
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > max {
        return Err(InputError::TooLarge {
            what,
            path: path.to_owned(),
            max,
        });
    }
    Ok(bytes)
}

fn describe(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_within_the_limit_is_read_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.txt");
        std::fs::write(&path, b"hello").expect("write");
        assert_eq!(read_file(&path, "script", 5).expect("read"), b"hello");
        let err = read_file(&path, "script", 4).expect_err("too large");
        assert!(err.to_string().contains("limit of 4 bytes"), "{err}");
    }

    #[test]
    fn fifos_devices_and_directories_are_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::RWXU).expect("mkfifo");
        for (path, kind) in [
            (fifo.as_path(), "a FIFO"),
            (Path::new("/dev/zero"), "a character device"),
            (dir.path(), "a directory"),
        ] {
            let err = read_file(path, "script", 1 << 20).expect_err("refused");
            assert!(err.to_string().contains(kind), "{err}");
        }
        let missing = read_file(&dir.path().join("nope"), "script", 1).expect_err("missing");
        assert!(
            missing.to_string().contains("cannot read script"),
            "{missing}"
        );
    }
}
