//! `vidpipe cache …`: the cache of compiled plugins (HOME/cache).

use clap::Subcommand;
use vidpipe_host::cache;

use crate::Globals;
use crate::failure::Failure;
use crate::output::say;

/// `vidpipe cache` subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Removes every compiled plugin from the cache; the next run of each compiles it again.
    Clear,
}

/// Runs a `vidpipe cache` subcommand.
pub fn exec(globals: &Globals, cmd: CacheCommand) -> Result<(), Failure> {
    match cmd {
        CacheCommand::Clear => {
            crate::setup::check_writable(&globals.home)?;
            let root = globals.home.join("cache");
            let (files, bytes) = cache::clear(&root).map_err(anyhow::Error::from)?;
            say!(
                "removed {files} compiled plugin(s), {:.1} MiB, from {}",
                bytes as f64 / (1024.0 * 1024.0),
                root.display()
            );
            Ok(())
        }
    }
}
