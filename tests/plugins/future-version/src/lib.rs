//! `future-version`: a stage built against `vidpipe:plugin@0.3.0`, a version this host does not
//! implement. Its WIT (in `wit/`) is the current contract with only the version changed, so the
//! host must refuse it by version, before it runs, naming every version it implements.

// The export glue wit-bindgen generates is FFI and has to be unsafe; it is confined here.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "stage",
    });

    use super::FutureStage;
    export!(FutureStage with_types_in crate::bindings);
}

use bindings::vidpipe::plugin::{db, types};

struct FutureStage;

impl bindings::Guest for FutureStage {
    fn run(_config: Vec<(String, String)>) -> Result<String, types::Error> {
        let project = db::get_project()?;
        Ok(format!("a stage from the future ran on {}", project.name))
    }
}
