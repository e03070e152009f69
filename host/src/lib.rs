//! # vidpipe-host
//!
//! The host of vidpipe: it runs video-pipeline stages (storyboard → keyframes → clips → video) as
//! sandboxed WebAssembly components that reach the world only through the WIT interfaces in
//! `wit/` — typed database operations, a project's artifact folders, and logging.
//!
//! Data flows one way: CLI → [`runner`] → [`runtime`] (a fresh store per run, with a
//! [`host_api::StageContext`] bound to one project) → guest → [`host_api`] → [`db`] /
//! [`artifacts`]. The guest never sees a path, a connection or another project.
//!
//! | module | owns |
//! |---|---|
//! | [`db`] | connections (pragmas), migrations, typed queries, per-run staged writes |
//! | [`artifacts`] | the cap-std root, per-project `Dir`s, name checks, staged writes, durable publish |
//! | [`runtime`] | wasmtime engine/linker, plugin loading and checks, limits, epoch ticker |
//! | [`cache`] | the on-disk cache of compiled plugins, keyed and authenticated |
//! | `bindings` | the single `bindgen!` |
//! | [`host_api`] | one file per WIT interface, each a `Host` impl over the run's context |
//! | [`home`] | the home folder: database + artifact root, crash roll-forward |
//! | [`runner`] | one stage run: record, run, commit or discard |
//! | [`pipeline`] | manifests, running stages in order, resume |

pub mod artifacts;
pub(crate) mod bindings;
pub mod cache;
pub mod db;
pub mod home;
pub mod host_api;
pub mod input;
pub mod pipeline;
pub mod runner;
pub mod runtime;
pub mod text;

pub use bindings::PACKAGE as WIT_PACKAGE;
