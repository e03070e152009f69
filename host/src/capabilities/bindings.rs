//! The host's `bindgen!`s: Rust types and traits generated from `wit/` (the newest contract)
//! and, in [`v0_1`], from the frozen `wit/since_v0.1.0/`.
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

/// The frozen `vidpipe:plugin@0.1.0`: the same options, so its imports are trappable with the
/// same [`HostError`](crate::capabilities::HostError) and its writer is the same resource.
/// `capabilities::v0_1` implements its traits by adapting each call onto the newest version.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.1.0",
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
}

/// A version of the contract this host implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Contract {
    /// `vidpipe:plugin@0.1.0`, frozen in `wit/since_v0.1.0/`.
    V0_1,
    /// `vidpipe:plugin@0.2.0`, in `wit/`.
    V0_2,
}

impl Contract {
    /// Every version this host implements, oldest first.
    pub const ALL: [Contract; 2] = [Contract::V0_1, Contract::V0_2];
    /// The newest: what `wit/` holds and a new plugin should target.
    pub const NEWEST: Contract = Contract::V0_2;

    /// Its version number, e.g. `0.2.0`.
    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_1 => "0.1.0",
            Contract::V0_2 => "0.2.0",
        }
    }

    /// Its package name, e.g. `vidpipe:plugin@0.2.0`.
    pub fn package(self) -> &'static str {
        match self {
            Contract::V0_1 => "vidpipe:plugin@0.1.0",
            Contract::V0_2 => "vidpipe:plugin@0.2.0",
        }
    }

    /// The version numbered `version`, if this host implements it.
    pub fn from_version(version: &str) -> Option<Contract> {
        Contract::ALL.into_iter().find(|c| c.version() == version)
    }

    /// The versions this host implements, for messages: `vidpipe:plugin@0.1.0 and @0.2.0`.
    pub fn supported() -> String {
        let versions: Vec<String> = Contract::ALL
            .iter()
            .map(|c| format!("@{}", c.version()))
            .collect();
        format!("vidpipe:plugin{}", versions.join(" and "))
    }

    /// The interfaces of this version a stage may import (the same four in every version so
    /// far; a version that adds one lists it here).
    pub fn interfaces(self) -> &'static [&'static str] {
        match self {
            Contract::V0_1 | Contract::V0_2 => &["types", "db", "artifacts", "log"],
        }
    }
}
