//! What the example stages share that does not depend on their WIT bindings, so stage logic
//! can be written and tested natively:
//!
//! - [`StageError`] and [`ErrorCode`], mirroring the WIT `error` record;
//! - [`ArtifactKind`], [`Level`] and [`Page`], plain twins of WIT types every stage uses, and
//!   [`Part`], the twin of the WIT `part-of` the per-scene stages are told;
//! - [`config`]: strict parsing of a stage's key/value configuration;
//! - [`io`]: [`std::io`] adapters over the host's ranged reads and chunked writes, so encoders
//!   and decoders stream through the artifact store.

use std::fmt;

pub mod config;
pub mod io;

/// Writes, in a stage crate, the conversions between its wit-bindgen types and this crate's
/// plain ones: `from_wit_error`, `to_wit_error`, `from_wit_kind`, `to_wit_kind` and
/// `to_wit_level`.
///
/// wit-bindgen generates the WIT types anew in every crate that calls `generate!`, so the
/// conversions cannot be ordinary functions here; this macro keeps them written once.
///
/// ```ignore
/// vidpipe_stage_kit::wit_conversions!(
///     types = bindings::vidpipe::plugin::types,
///     log = bindings::vidpipe::plugin::log,
/// );
/// ```
#[macro_export]
macro_rules! wit_conversions {
    (types = $($types:ident)::+, log = $($log:ident)::+ $(,)?) => {
        /// The plain twin of a WIT error.
        #[allow(dead_code)]
        fn from_wit_error(error: $($types)::+::Error) -> $crate::StageError {
            use $($types)::+::ErrorCode as Wit;
            let code = match error.code {
                Wit::NotFound => $crate::ErrorCode::NotFound,
                Wit::InvalidInput => $crate::ErrorCode::InvalidInput,
                Wit::Conflict => $crate::ErrorCode::Conflict,
                Wit::LimitExceeded => $crate::ErrorCode::LimitExceeded,
                Wit::Io => $crate::ErrorCode::Io,
                Wit::Busy => $crate::ErrorCode::Busy,
                Wit::OutOfScope => $crate::ErrorCode::OutOfScope,
            };
            $crate::StageError::new(code, error.message)
        }

        /// The WIT twin of a stage error.
        #[allow(dead_code)]
        fn to_wit_error(error: $crate::StageError) -> $($types)::+::Error {
            use $($types)::+::ErrorCode as Wit;
            let code = match error.code {
                $crate::ErrorCode::NotFound => Wit::NotFound,
                $crate::ErrorCode::InvalidInput => Wit::InvalidInput,
                $crate::ErrorCode::Conflict => Wit::Conflict,
                $crate::ErrorCode::LimitExceeded => Wit::LimitExceeded,
                $crate::ErrorCode::Io => Wit::Io,
                $crate::ErrorCode::Busy => Wit::Busy,
                $crate::ErrorCode::OutOfScope => Wit::OutOfScope,
            };
            $($types)::+::Error {
                code,
                message: error.message,
            }
        }

        /// The plain twin of a WIT artifact kind.
        #[allow(dead_code)]
        fn from_wit_kind(kind: $($types)::+::ArtifactKind) -> $crate::ArtifactKind {
            use $($types)::+::ArtifactKind as Wit;
            match kind {
                Wit::Keyframe => $crate::ArtifactKind::Keyframe,
                Wit::Clip => $crate::ArtifactKind::Clip,
                Wit::Output => $crate::ArtifactKind::Output,
            }
        }

        /// The WIT twin of an artifact kind.
        #[allow(dead_code)]
        fn to_wit_kind(kind: $crate::ArtifactKind) -> $($types)::+::ArtifactKind {
            use $($types)::+::ArtifactKind as Wit;
            match kind {
                $crate::ArtifactKind::Keyframe => Wit::Keyframe,
                $crate::ArtifactKind::Clip => Wit::Clip,
                $crate::ArtifactKind::Output => Wit::Output,
            }
        }

        /// The WIT twin of a log level.
        #[allow(dead_code)]
        fn to_wit_level(level: $crate::Level) -> $($log)::+::Level {
            use $($log)::+::Level as Wit;
            match level {
                $crate::Level::Debug => Wit::Debug,
                $crate::Level::Info => Wit::Info,
                $crate::Level::Warn => Wit::Warn,
            }
        }
    };
}

/// The folder of an artifact; the WIT `artifact-kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactKind {
    /// Still images.
    Keyframe,
    /// Video clips.
    Clip,
    /// Final results.
    Output,
}

impl ArtifactKind {
    /// The folder's name, as in `clip/scene-000.mp4`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keyframe => "keyframe",
            Self::Clip => "clip",
            Self::Output => "output",
        }
    }
}

/// How important a log message is; the WIT log `level` the stages use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Detail useful when debugging the stage.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected that the stage worked around.
    Warn,
}

/// The most parts a scene's work may be cut into (`parts` in a manifest stage).
pub const MAX_PARTS: u32 = 16;

/// Which part of its scene's work a shard does, or of its scene's video a clip holds: part
/// `index` (from 0) of `count`; the WIT `part-of`. A clip made whole is part 0 of 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Part {
    /// This part, from 0.
    pub index: u32,
    /// How many parts there are: 1 to [`MAX_PARTS`].
    pub count: u32,
}

impl Part {
    /// All of it: part 0 of 1.
    pub const WHOLE: Part = Part { index: 0, count: 1 };

    /// Part `index` of `count`, if that is one: `index < count <= MAX_PARTS`.
    pub fn new(index: u32, count: u32) -> Option<Part> {
        (index < count && count <= MAX_PARTS).then_some(Part { index, count })
    }

    /// Whether this is all of the work (a count of 1), not a part of it.
    pub fn is_whole(self) -> bool {
        self.count == 1
    }
}

impl fmt::Display for Part {
    /// `part 2/3`, counted from 1.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "part {}/{}", self.index + 1, self.count)
    }
}

/// One page of a listing; the shape of every WIT `*-page` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// The cursor of the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Default for Page<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            next_cursor: None,
        }
    }
}

impl<T: Clone> Page<T> {
    /// The page of at most `per_page` items of `items` that starts at `cursor`, a cursor being
    /// the decimal index of the first item: how the example stages' in-memory test hosts page.
    /// An unparsable cursor starts past the end (an empty last page).
    pub fn of_slice(items: &[T], cursor: Option<&str>, per_page: usize) -> Self {
        let start = cursor
            .map_or(0, |c| c.parse().unwrap_or(usize::MAX))
            .min(items.len());
        let end = start.saturating_add(per_page.max(1)).min(items.len());
        Page {
            items: items[start..end].to_vec(),
            next_cursor: (end < items.len()).then(|| end.to_string()),
        }
    }
}

/// Collects every item of a paged listing: calls `fetch(cursor)` from the first page until a
/// page has no next cursor. Fails if a cursor repeats, so a confused host cannot keep the stage
/// looping.
pub fn collect_pages<T>(
    mut fetch: impl FnMut(Option<&str>) -> Result<Page<T>, StageError>,
) -> Result<Vec<T>, StageError> {
    let mut items = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = fetch(cursor.as_deref())?;
        items.extend(page.items);
        match page.next_cursor {
            None => return Ok(items),
            Some(next) => {
                if !seen.insert(next.clone()) {
                    return Err(StageError::new(
                        ErrorCode::Conflict,
                        format!("the host returned the page cursor `{next}` twice"),
                    ));
                }
                cursor = Some(next);
            }
        }
    }
}

/// Why the stage failed; maps one to one onto the WIT `error-code` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// An id or name does not exist in the project.
    NotFound,
    /// The configuration, the script or the project's rows are unusable.
    InvalidInput,
    /// The project's existing state contradicts what the stage would write.
    Conflict,
    /// A limit of the run was reached.
    LimitExceeded,
    /// The host's storage failed.
    Io,
    /// The host's database was busy.
    Busy,
    /// The stage wrote outside its scope (a shard writing another scene's rows).
    OutOfScope,
}

impl ErrorCode {
    /// The WIT spelling of the code, as shown in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not-found",
            Self::InvalidInput => "invalid-input",
            Self::Conflict => "conflict",
            Self::LimitExceeded => "limit-exceeded",
            Self::Io => "io",
            Self::Busy => "busy",
            Self::OutOfScope => "out-of-scope",
        }
    }
}

/// A failure of the stage: a machine-readable code plus a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageError {
    /// What kind of failure this is.
    pub code: ErrorCode,
    /// What went wrong, naming the offending value.
    pub message: String,
}

impl StageError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// An `invalid-input` error.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    /// The same error with `context` put in front of its message, keeping the code.
    pub fn context(self, context: &str) -> Self {
        Self {
            code: self.code,
            message: format!("{context}: {}", self.message),
        }
    }
}

impl fmt::Display for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for StageError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_collected_in_order_until_the_last() {
        let pages = [(None, vec![1, 2], Some("a")), (Some("a"), vec![3], None)];
        let all = collect_pages(|cursor| {
            let (_, items, next) = pages
                .iter()
                .find(|(at, _, _)| *at == cursor)
                .ok_or_else(|| StageError::invalid_input("unknown cursor"))?;
            Ok(Page {
                items: items.clone(),
                next_cursor: next.map(str::to_owned),
            })
        });
        assert_eq!(all, Ok(vec![1, 2, 3]));
    }

    #[test]
    fn a_slice_pages_by_index_cursors() {
        let items = [1, 2, 3, 4, 5];
        let first = Page::of_slice(&items, None, 2);
        assert_eq!(first.items, vec![1, 2]);
        assert_eq!(first.next_cursor.as_deref(), Some("2"));
        let last = Page::of_slice(&items, Some("4"), 2);
        assert_eq!((last.items, last.next_cursor), (vec![5], None));
        assert!(Page::of_slice(&items, Some("junk"), 2).items.is_empty());
        let all = collect_pages(|cursor| Ok(Page::of_slice(&items, cursor, 2)));
        assert_eq!(all, Ok(items.to_vec()));
    }

    #[test]
    fn a_repeated_cursor_ends_the_listing_with_an_error() {
        let error = collect_pages(|_| {
            Ok(Page {
                items: vec![0u8],
                next_cursor: Some("again".to_owned()),
            })
        })
        .expect_err("loops");
        assert_eq!(error.code, ErrorCode::Conflict);
    }

    #[test]
    fn a_part_is_numbered_from_0_below_its_count_and_shown_from_1() {
        assert_eq!(Part::new(1, 3), Some(Part { index: 1, count: 3 }));
        assert_eq!(Part::new(0, 1), Some(Part::WHOLE));
        assert_eq!(Part::new(3, 3), None);
        assert_eq!(Part::new(0, 0), None);
        assert_eq!(Part::new(0, MAX_PARTS + 1), None);
        assert_eq!(Part { index: 1, count: 3 }.to_string(), "part 2/3");
        assert!(Part::WHOLE.is_whole() && !Part { index: 0, count: 2 }.is_whole());
    }

    #[test]
    fn an_error_shows_its_wit_code_and_keeps_it_through_context() {
        let e = StageError::invalid_input("no scenes").context("keyframes");
        assert_eq!(e.code, ErrorCode::InvalidInput);
        assert_eq!(e.to_string(), "invalid-input: keyframes: no scenes");
    }
}
