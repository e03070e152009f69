//! Artifact names: whatever a guest passes, `validate_name` either refuses it or accepts a
//! single plain path component that shows as what it is.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vidpipe_host::artifacts::{MAX_NAME_BYTES, validate_name};

fuzz_target!(|name: &str| {
    if validate_name(name).is_ok() {
        assert!(!name.is_empty() && name.len() <= MAX_NAME_BYTES);
        assert!(name != "." && name != ".." && !name.starts_with('.'));
        assert!(!name.contains(['/', '\\', '\0']));
        assert!(!name.chars().any(vidpipe_host::text::is_unsafe), "{name:?}");
        assert_eq!(name.trim(), name);
    }
});
