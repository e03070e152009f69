//! SHA-256 in lowercase hex: how plugins, compiled code and artifacts are named by content.

use sha2::{Digest, Sha256};

/// SHA-256 of `bytes` in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
