//! The vidpipe stage plugins, built as `wasm32-wasip2` components by this crate's build script.
//!
//! Building this crate runs a nested `cargo build --release --target wasm32-wasip2` of the
//! plugin packages into `<target dir>/wasm-guests`, so depending on it is enough to have fresh
//! plugins. It exposes, for each plugin, `<NAME>_PATH` (the absolute path of its `.wasm`) and,
//! for the example stages, the component bytes themselves:
//!
//! - [`STORYBOARD`] / [`STORYBOARD_PATH`]: the `storyboard` stage.
//! - [`KEYFRAMES`] / [`KEYFRAMES_PATH`]: the `keyframes` stage (a start and an end keyframe
//!   image per scene).
//! - [`CLIPS`] / [`CLIPS_PATH`]: the `clips` stage (an H.264 or AV1 MP4 clip per scene, from
//!   its keyframes).
//! - [`ASSEMBLE`] / [`ASSEMBLE_PATH`]: the `assemble` stage (the clips joined into the final
//!   video, a contact sheet and a manifest).
//! - [`FAULTY_STAGE_PATH`]: the `faulty-stage` test plugin (fails, traps, loops, hoards memory
//!   or probes artifact-name escapes, by its `mode` config).
//! - [`OTHER_WORLD_PATH`]: the `other-world` test plugin, a component of another world.
//! - [`BENCH_STAGE_PATH`]: the `bench-stage` plugin `vidpipe-bench` measures against native
//!   code (rows, batches of rows, artifact writes and reads, a no-op).
//! - [`ENCODE_BENCH_PATH`]: the `encode-bench` plugin `vidpipe-bench` times the video encoders
//!   in (the demo's frames, only the encoder on the clock).

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

/// The component of the example stage a manifest names `builtin:NAME`, if there is one.
pub fn builtin(name: &str) -> Option<&'static [u8]> {
    match name {
        "storyboard" => Some(STORYBOARD),
        "keyframes" => Some(KEYFRAMES),
        "clips" => Some(CLIPS),
        "assemble" => Some(ASSEMBLE),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The preamble of a binary component: magic, version 0x0d, layer 1 (core modules have
    /// layer 0).
    const COMPONENT_PREAMBLE: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

    #[test]
    fn the_embedded_stages_are_components() {
        for bytes in [STORYBOARD, KEYFRAMES, CLIPS, ASSEMBLE] {
            assert!(bytes.starts_with(&COMPONENT_PREAMBLE));
        }
    }

    #[test]
    fn every_plugin_path_is_an_absolute_path_to_a_component() {
        for path in [
            STORYBOARD_PATH,
            KEYFRAMES_PATH,
            CLIPS_PATH,
            ASSEMBLE_PATH,
            BENCH_STAGE_PATH,
            ENCODE_BENCH_PATH,
            FAULTY_STAGE_PATH,
            OTHER_WORLD_PATH,
        ] {
            assert!(std::path::Path::new(path).is_absolute(), "{path}");
            let bytes = std::fs::read(path).expect("the plugin was built");
            assert!(bytes.starts_with(&COMPONENT_PREAMBLE), "{path}");
        }
    }

    #[test]
    fn the_embedded_bytes_are_the_built_files() {
        for (path, bytes) in [
            (STORYBOARD_PATH, STORYBOARD),
            (KEYFRAMES_PATH, KEYFRAMES),
            (CLIPS_PATH, CLIPS),
            (ASSEMBLE_PATH, ASSEMBLE),
        ] {
            let on_disk = std::fs::read(path).expect("the plugin was built");
            assert!(on_disk == bytes, "{path}");
        }
    }
}
