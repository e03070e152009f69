//! What an artifact name may be — checked for clear errors; safety comes from cap-std — and
//! how a name is shown in an error.

use super::{ArtifactError, ArtifactKind};

/// Longest artifact name, in bytes of UTF-8 (the usual file-system limit for one component).
pub const MAX_NAME_BYTES: usize = 255;

/// Prefix of the host's staged files. Artifact names may not start with a dot, so no artifact
/// name can have this prefix.
pub const STAGED_PREFIX: &str = ".stage-";

/// How many characters of a rejected name an error message shows.
const SHOWN_NAME_CHARS: usize = 64;

/// Checks that `name` is a valid artifact name: a single, plain path component.
///
/// A valid name is 1 to [`MAX_NAME_BYTES`] bytes of UTF-8; is not `.` or `..`; does not start with
/// `.` (a leading dot is reserved for the host's staged files); contains no `/`, `\`, NUL or
/// control character; and has no leading or trailing whitespace.
///
/// This check exists for clear errors. The store's safety comes from cap-std, not from it.
pub fn validate_name(name: &str) -> Result<(), ArtifactError> {
    let reason = if name.is_empty() {
        Some("is empty")
    } else if name.len() > MAX_NAME_BYTES {
        Some("is longer than 255 bytes")
    } else if name == "." || name == ".." {
        Some("is `.` or `..`, which name a directory")
    } else if name.contains('/') {
        Some("contains a path separator `/`")
    } else if name.contains('\\') {
        Some("contains a backslash `\\`")
    } else if name.contains('\0') {
        Some("contains a NUL byte")
    } else if name.chars().any(crate::text::is_unsafe) {
        Some("contains a control character or an invisible format character (a bidi override, say)")
    } else if name.starts_with('.') {
        Some("starts with `.`, which is reserved for the host's staged files")
    } else if name.trim() != name {
        Some("has leading or trailing whitespace")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ArtifactError::InvalidName {
            name: shown(name),
            reason,
        }),
        None => Ok(()),
    }
}

/// Checks that `staged` is a name [`ProjectStore::begin_write`] could have produced.
pub(super) fn validate_staged_name(staged: &str) -> Result<(), ArtifactError> {
    let invalid = || ArtifactError::InvalidName {
        name: shown(staged),
        reason: "is not a staged file name (`.stage-` followed by a plain name)",
    };
    let rest = staged.strip_prefix(STAGED_PREFIX).ok_or_else(invalid)?;
    if staged.len() > MAX_NAME_BYTES || validate_name(rest).is_err() {
        return Err(invalid());
    }
    Ok(())
}

/// Checks a name that may be either an artifact name or a staged file name.
pub(super) fn validate_file_name(file: &str) -> Result<(), ArtifactError> {
    if file.starts_with(STAGED_PREFIX) {
        validate_staged_name(file)
    } else {
        validate_name(file)
    }
}

/// `name` cut to [`SHOWN_NAME_CHARS`] characters, so a 4 KiB name does not flood a message.
pub(super) fn shown(name: &str) -> String {
    match name.char_indices().nth(SHOWN_NAME_CHARS) {
        Some((cut, _)) => format!("{}…", &name[..cut]),
        None => name.to_owned(),
    }
}

/// `kind-folder/name` for error messages, with the name escaped and truncated.
pub(super) fn display_path(kind: ArtifactKind, name: &str) -> String {
    let escaped: String = name.escape_debug().take(SHOWN_NAME_CHARS).collect();
    let ellipsis = if name.escape_debug().nth(SHOWN_NAME_CHARS).is_some() {
        "…"
    } else {
        ""
    };
    format!("{}/{escaped}{ellipsis}", kind.dir_name())
}
