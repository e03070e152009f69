//! One file per command group, each with its clap arguments and an `exec` that calls the
//! library and prints through [`crate::output`].

pub mod cache;
pub mod demo;
pub mod init;
pub mod pipeline;
pub mod plugin;
pub mod project;
pub mod runs;
pub mod stage;
