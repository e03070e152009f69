//! Pipeline manifests: the parser never panics, always names the file in its errors, and what it
//! accepts is a well-formed pipeline.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vidpipe_host::pipeline::{MAX_STAGES, Manifest, check_stage_name};

fuzz_target!(|text: &str| {
    let path = Path::new("/nonexistent/fuzz.toml");
    match Manifest::parse(path, text) {
        Ok(m) => {
            assert!(!m.stages.is_empty() && m.stages.len() <= MAX_STAGES);
            for (i, s) in m.stages.iter().enumerate() {
                assert!(check_stage_name(&s.name).is_ok());
                assert!(m.stages[..i].iter().all(|t| t.name != s.name));
                assert!(!s.limits.timeout.is_zero());
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains("fuzz.toml"), "{message}");
            assert!(message.len() < 4096, "{} bytes", message.len());
        }
    }
});
