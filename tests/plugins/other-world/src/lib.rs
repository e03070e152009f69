//! `other-world`: a valid component of a world other than vidpipe's `stage`.
//!
//! It exports `greet` instead of `run` and imports nothing from vidpipe, so a host that checks a
//! plugin's world before running it must refuse it cleanly rather than fail at instantiation.

// The export glue wit-bindgen generates is FFI and has to be unsafe; it is confined to this
// module so the rest of the crate stays under the workspace's `unsafe_code = "deny"`.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        inline: r#"
            package test:other;

            world greeter {
                export greet: func(name: string) -> string;
            }
        "#,
        world: "greeter",
    });

    use super::Greeter;
    export!(Greeter with_types_in crate::bindings);
}

/// The greeting `greet` returns for `name`.
pub fn greeting(name: &str) -> String {
    format!("Hello, {name}!")
}

struct Greeter;

impl bindings::Guest for Greeter {
    fn greet(name: String) -> String {
        greeting(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_greeting_names_the_caller() {
        assert_eq!(greeting("vidpipe"), "Hello, vidpipe!");
    }
}
