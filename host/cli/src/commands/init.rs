//! `vidpipe init`: creates the home, or migrates an existing one.

use vidpipe_host::home::Home;

use crate::Globals;
use crate::failure::Failure;
use crate::output::say;

/// Creates or migrates the home; refuses one this user cannot write, saying why.
pub fn exec(globals: &Globals) -> Result<(), Failure> {
    let home = Home::init(&globals.home)?;
    say!("vidpipe home ready at {}", home.path().display());
    Ok(())
}
