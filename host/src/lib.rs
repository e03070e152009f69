//! # vidpipe-host
//!
//! The host of vidpipe: it runs video-pipeline stages (storyboard → keyframes → clips → video) as
//! sandboxed WebAssembly components that reach the world only through the WIT interfaces in
//! `wit/` — typed database operations, a project's artifact folders, and logging.
//!
//! Data flows one way: CLI → [`pipeline`] → [`runner`] → [`runtime`] (a fresh store per run,
//! with a [`capabilities::StageContext`] bound to one project) → guest → [`capabilities`] →
//! storage ([`db`], [`artifacts`], [`home`]). The guest never sees a path, a connection or
//! another project. A module imports only from modules below it in the table (equal ranks not
//! from each other), and everything from the vocabulary at its end; the `layering` test holds
//! the crate to it. [`home`] is storage but opens every project, so it ranks above the
//! capabilities: a capability reaches only its own run's session and folders.
//!
//! | module | room | owns |
//! |---|---|---|
//! | [`pipeline`] | pipeline | manifests, running stages in order, resume |
//! | [`runner`] | runner | one stage run: record, run, commit or discard, publish |
//! | [`runtime`] | runtime | engines, the instance pool, plugin loading and checks, limits, one run's store |
//! | [`cache`] | runtime | the on-disk cache of compiled plugins, keyed and authenticated |
//! | [`home`] | storage | the home folder: database + artifact root, project locks, crash roll-forward |
//! | [`capabilities`] | capabilities | one room per WIT interface (`db`, `artifacts`, `log`): its `Host` impl, its per-run state, its limits; the one `bindgen!` |
//! | [`db`] | storage | connections (pragmas), migrations, typed queries, per-run staged writes |
//! | [`artifacts`] | storage | the cap-std root, per-project `Dir`s, name checks, staged writes, durable publish |
//! | [`limits`] | vocabulary | how a limit is declared (each room declares its own) |
//! | [`input`], [`text`], [`digest`] | vocabulary | reading user files, making guest text safe to print, SHA-256 |
//!
//! Where things go: a new WIT capability is a room under `capabilities/`; a new limit is a
//! `LimitSpec` in the room that enforces it, listed in `runtime::limits::ALL`; a new CLI command
//! is a file under `host/cli/src/commands/`.

pub mod artifacts;
pub mod cache;
pub mod capabilities;
pub mod db;
pub mod digest;
pub mod home;
pub mod input;
#[cfg(test)]
mod layering;
pub mod limits;
pub mod pipeline;
pub mod runner;
pub mod runtime;
pub mod text;

pub use capabilities::bindings::Contract;
