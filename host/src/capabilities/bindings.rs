//! The one `bindgen!` of the host: Rust types and traits generated from `wit/`.
//!
//! Imports are trappable, so a host function can end the stage with a trap (a violated limit)
//! as well as return a WIT error; `types.error` maps to [`HostError`], which carries either.
//! They are synchronous: none of them waits on anything but local disk and SQLite, whose
//! work the run's deadline cuts short (see `db::stage::StageSession::set_deadline`).
//! The export `run` is called asynchronously, so that a run can be abandoned at its deadline
//! even while the guest is blocked in one of WASI's waits (see `runtime::Runtime::call`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "stage",
    imports: { default: trappable },
    exports: { default: async },
    trappable_error_type: {
        "vidpipe:plugin/types.error" => crate::capabilities::HostError,
    },
    with: {
        "vidpipe:plugin/artifacts.writer": crate::capabilities::artifacts::WriterState,
    },
});

pub use vidpipe::plugin::{artifacts, db, log, types};

/// The WIT package version this host implements.
pub const PACKAGE: &str = "vidpipe:plugin@0.1.0";
/// The interfaces of [`PACKAGE`] a stage may import.
pub const INTERFACES: [&str; 4] = ["types", "db", "artifacts", "log"];
