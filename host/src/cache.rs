//! The on-disk cache of compiled plugins, so a process that runs a plugin it (or an earlier
//! process) has compiled before skips Cranelift and only deserializes the machine code.
//!
//! Entries live in `HOME/cache/compiled/`, one file per plugin and engine:
//!
//! - **Key.** The file name is the SHA-256 of the component's bytes, wasmtime's
//!   [`Engine::precompile_compatibility_hash`] (its version and every setting that changes the
//!   code it generates) and this crate's version. A different plugin, wasmtime or engine
//!   configuration never finds another's entry.
//! - **Only our own bytes.** Deserializing compiled code is `unsafe` in wasmtime: the bytes are
//!   trusted to be what wasmtime itself produced, and they become executable memory. So every
//!   entry carries a keyed BLAKE3 hash (a MAC) of its name and contents under a random key made for this
//!   home on first use (`HOME/cache/key`, readable by the owner only), and an entry is
//!   deserialized only if its tag verifies. A truncated, corrupt or planted file (one copied
//!   from another home, or another plugin's entry copied over this one's name) fails the check
//!   and the plugin is compiled again, replacing it; so does an entry wasmtime itself refuses.
//! - **Atomic writes.** An entry is written to a temporary file, flushed to disk and renamed
//!   into place, so a crash leaves either no entry or a whole one. Failing to write an entry is
//!   logged and otherwise ignored: the cache only ever saves time.
//!
//! `vidpipe --no-cache` compiles without reading or writing entries; `vidpipe cache clear`
//! removes them.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The first bytes of every entry: what it is and the version of this layout.
const MAGIC: &[u8; 8] = b"VPCWASM2";
/// The length of the keyed BLAKE3 tag after the magic.
const TAG_LEN: usize = 32;
/// The length of the per-home key.
const KEY_LEN: usize = 32;
/// The file extension of entries.
const EXTENSION: &str = "cwasm";
/// Largest entry read: far more than any plugin compiles to.
const MAX_ENTRY_BYTES: u64 = 1 << 30;

/// Why the cache could not be opened or cleared.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache folder or its key could not be created or read.
    #[error("compile cache {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The key file exists but is not a regular file, or could not be read.
    #[error("{0}")]
    Unreadable(String),
    /// The key file exists but is not a key this host wrote.
    #[error("compile cache key {path} is {len} bytes, not {KEY_LEN}; remove the cache folder")]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_owned(),
        source,
    }
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Deserialized from a valid entry.
    Hit,
    /// Compiled, there being no entry; an entry was written (unless writing it failed).
    Miss,
    /// Compiled because the entry was truncated, corrupt, not ours or refused by wasmtime; the
    /// entry was replaced.
    Replaced,
}

/// Machine code for a component, as wasmtime serializes it: the only bytes the host ever hands
/// to wasmtime's (unsafe) deserializer. One is made only by wasmtime itself — compiling in
/// this process, or serializing a component compiled in it — or read back from a cache entry
/// whose tag verified, which was written from one of those.
pub struct Compiled {
    bytes: Vec<u8>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Compiled({} bytes)", self.bytes.len())
    }
}

impl Compiled {
    /// Compiles a component's bytes with `engine`'s settings.
    pub fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Self> {
        Ok(Compiled {
            bytes: engine.precompile_component(wasm)?,
        })
    }

    /// The compiled form of a component already loaded, to load it into another engine.
    pub fn of(component: &Component) -> wasmtime::Result<Self> {
        Ok(Compiled {
            bytes: component.serialize()?,
        })
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether it is empty (it never is when wasmtime made it).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Loads it into `engine`, which may refuse it: compiled for other settings or another
    /// wasmtime, or too big for the engine's instance pool.
    pub fn load(&self, engine: &Engine) -> wasmtime::Result<Component> {
        // SAFETY: wasmtime requires that the bytes were produced by wasmtime's own
        // serialization and were not tampered with since. A `Compiled` holds only such bytes
        // (see the type's docs: the constructors above, and `CompileCache::verify` after the
        // tag check). wasmtime itself still checks the version and configuration recorded in
        // them and refuses an incompatible engine with an error.
        #[allow(unsafe_code)]
        unsafe {
            Component::deserialize(engine, &self.bytes)
        }
    }
}

/// A folder of compiled plugins, bound to one home's key.
#[derive(Clone)]
pub struct CompileCache {
    dir: PathBuf,
    key: [u8; KEY_LEN],
}

impl std::fmt::Debug for CompileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("CompileCache")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The folder of compiled entries under a cache root.
fn entries_dir(root: &Path) -> PathBuf {
    root.join("compiled")
}

impl CompileCache {
    /// Opens the cache rooted at `root` (normally `HOME/cache`), creating the folder and the
    /// home's key on first use.
    pub fn open(root: &Path) -> Result<Self, CacheError> {
        let dir = entries_dir(root);
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let key_path = root.join("key");
        // Read up to a page, so that a key of the wrong length is told as such.
        let read_key = || crate::input::read_file(&key_path, "compile cache key", 4096);
        let key = match read_key() {
            Ok(bytes) => bytes,
            Err(crate::input::InputError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                create_key(&key_path)?;
                read_key().map_err(|e| CacheError::Unreadable(e.to_string()))?
            }
            Err(e) => return Err(CacheError::Unreadable(e.to_string())),
        };
        let key: [u8; KEY_LEN] = key.as_slice().try_into().map_err(|_| CacheError::BadKey {
            path: key_path.clone(),
            len: key.len(),
        })?;
        Ok(Self { dir, key })
    }

    /// The folder holding the entries.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of the entry for the component whose bytes have the SHA-256 `component_sha256`
    /// (lowercase hex, as [`crate::digest::sha256_hex`] gives), compiled by `engine`.
    pub fn entry_path(&self, engine: &Engine, component_sha256: &str) -> PathBuf {
        let mut hasher = Sha256Hasher(Sha256::new());
        hasher.write(b"vidpipe-compile-cache\0");
        hasher.write(env!("CARGO_PKG_VERSION").as_bytes());
        hasher.write(&[0]);
        engine.precompile_compatibility_hash().hash(&mut hasher);
        hasher.write(&[0]);
        hasher.write(component_sha256.as_bytes());
        let name = hex::encode(hasher.0.finalize());
        self.dir.join(format!("{name}.{EXTENSION}"))
    }

    /// The compiled form of the component whose bytes have the SHA-256 `component_sha256`:
    /// read from a valid entry, or made by `compile` and stored. `compile` runs only on a miss,
    /// and its error is returned as is. (The caller hashes the bytes: it needs the digest
    /// anyway, for the run record.)
    pub fn load_or_compile<E>(
        &self,
        engine: &Engine,
        component_sha256: &str,
        compile: impl FnOnce() -> Result<Compiled, E>,
    ) -> Result<(Compiled, CacheOutcome), E> {
        let path = self.entry_path(engine, component_sha256);
        // Bounded, and only a regular file: a FIFO or device planted here must not hang or
        // exhaust the host.
        let entry = crate::input::read_file(&path, "compile cache entry", MAX_ENTRY_BYTES);
        let outcome = match entry {
            Ok(entry) => match self.verify(&path, entry) {
                Ok(compiled) => return Ok((compiled, CacheOutcome::Hit)),
                Err(reason) => {
                    tracing::warn!(
                        entry = %path.display(),
                        "compile cache entry rejected ({reason}); compiling again"
                    );
                    CacheOutcome::Replaced
                }
            },
            Err(crate::input::InputError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                CacheOutcome::Miss
            }
            Err(e) => {
                tracing::warn!("{e}; compiling again");
                CacheOutcome::Replaced
            }
        };
        let compiled = compile()?;
        self.store(&path, &compiled);
        Ok((compiled, outcome))
    }

    /// Replaces the entry of `component_sha256` with `compiled`: for an entry whose tag
    /// verified but which wasmtime then refused to load.
    pub fn replace(&self, engine: &Engine, component_sha256: &str, compiled: &Compiled) {
        self.store(&self.entry_path(engine, component_sha256), compiled);
    }

    /// Checks an entry's magic and tag, and returns its payload if both hold.
    fn verify(&self, path: &Path, mut entry: Vec<u8>) -> Result<Compiled, String> {
        let header = MAGIC.len() + TAG_LEN;
        if entry.len() < header || &entry[..MAGIC.len()] != MAGIC {
            return Err(format!(
                "{} bytes without the entry header; truncated or not an entry",
                entry.len()
            ));
        }
        let (tag, payload) = entry[MAGIC.len()..].split_at(TAG_LEN);
        let mut mac = self.mac(path);
        mac.update(payload);
        let expected: [u8; TAG_LEN] = tag.try_into().map_err(|_| "a short tag".to_owned())?;
        // `blake3::Hash` compares in constant time.
        if mac.finalize() != blake3::Hash::from(expected) {
            return Err(
                "its tag does not verify: corrupt, cut short, or not written by this home"
                    .to_owned(),
            );
        }
        // The tag verifies under this home's secret key, which only `store` below uses, on
        // bytes that came out of wasmtime: these are wasmtime's own bytes, untouched.
        entry.drain(..header);
        Ok(Compiled { bytes: entry })
    }

    /// Writes the entry atomically and durably. Failing to is logged: the cache only saves time.
    fn store(&self, path: &Path, compiled: &Compiled) {
        if let Err(e) = self.write_entry(path, compiled) {
            tracing::warn!(entry = %path.display(), "cannot write compile cache entry: {e}");
        }
    }

    fn write_entry(&self, path: &Path, compiled: &Compiled) -> std::io::Result<()> {
        let payload = &compiled.bytes;
        let mut mac = self.mac(path);
        mac.update(payload);
        let tag = mac.finalize();
        let temp = self
            .dir
            .join(format!(".tmp-{}.{EXTENSION}", uuid::Uuid::new_v4()));
        let result = (|| -> std::io::Result<()> {
            let mut file = fs::File::create(&temp)?;
            file.write_all(MAGIC)?;
            file.write_all(tag.as_bytes())?;
            file.write_all(payload)?;
            file.sync_all()?;
            fs::rename(&temp, path)?;
            fs::File::open(&self.dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }

    /// The MAC of the entry at `path`, begun with its magic and its file name: a valid entry
    /// copied over another plugin's name (same home, same key) does not verify there.
    fn mac(&self, path: &Path) -> blake3::Hasher {
        let mut mac = blake3::Hasher::new_keyed(&self.key);
        mac.update(MAGIC);
        let name = path
            .file_name()
            .map(|n| n.as_encoded_bytes())
            .unwrap_or_default();
        mac.update(&(name.len() as u64).to_be_bytes());
        mac.update(name);
        mac
    }
}

/// Removes every entry (and any leftover temporary file) under the cache root `root` and
/// returns how many files and bytes were removed. The key stays. A missing cache is empty.
pub fn clear(root: &Path) -> Result<(usize, u64), CacheError> {
    let dir = entries_dir(root);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(io_error(&dir)(e)),
    };
    let (mut files, mut bytes) = (0, 0);
    for entry in entries {
        let entry = entry.map_err(io_error(&dir))?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
            continue;
        }
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        fs::remove_file(&path).map_err(io_error(&path))?;
        files += 1;
        bytes += size;
    }
    Ok((files, bytes))
}

/// Creates a new random key at `path`, readable by the owner only. The key is written whole
/// to a temporary file first and then linked into place, so another process never reads a
/// half-written key; losing the race to another process is fine (its key is used).
fn create_key(path: &Path) -> Result<(), CacheError> {
    let mut key = [0u8; KEY_LEN];
    // Two v4 UUIDs: 244 random bits from the operating system's generator.
    key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let temp = path.with_file_name(format!(".key-{}", uuid::Uuid::new_v4()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temp).and_then(|mut file| {
        file.write_all(&key)?;
        file.sync_all()
    });
    let linked = written.and_then(|()| match fs::hard_link(&temp, path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    });
    let _ = fs::remove_file(&temp);
    linked.map_err(io_error(path))
}

/// Feeds [`Hash`] output into SHA-256, so the key does not depend on std's unstable hasher.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        // Only the SHA-256 digest is used.
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component: the binary preamble of an empty one (magic, version 0x0d,
    /// layer 1).
    const EMPTY_COMPONENT: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).expect("engine")
    }

    fn component_bytes() -> Vec<u8> {
        EMPTY_COMPONENT.to_vec()
    }

    fn sha(bytes: &[u8]) -> String {
        crate::digest::sha256_hex(bytes)
    }

    fn compile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Compiled> {
        Compiled::compile(engine, bytes)
    }

    #[test]
    fn the_second_load_is_a_hit_and_a_corrupt_or_cut_entry_is_replaced() {
        let root = tempfile::tempdir().expect("tempdir");
        let cache = CompileCache::open(root.path()).expect("opens");
        let engine = engine();
        let bytes = component_bytes();
        let (_, outcome) = cache
            .load_or_compile(&engine, &sha(&bytes), || compile(&engine, &bytes))
            .expect("compiles");
        assert_eq!(outcome, CacheOutcome::Miss);
        let (hit, outcome) = cache
            .load_or_compile(&engine, &sha(&bytes), || -> wasmtime::Result<Compiled> {
                panic!("a hit must not compile")
            })
            .expect("loads");
        assert_eq!(outcome, CacheOutcome::Hit);
        hit.load(&engine).expect("a hit loads into the engine");

        let path = cache.entry_path(&engine, &sha(&bytes));
        let good = fs::read(&path).expect("entry");
        for broken in [
            good[..good.len() / 2].to_vec(),
            good[..10].to_vec(),
            Vec::new(),
            {
                let mut flipped = good.clone();
                let last = flipped.len() - 1;
                flipped[last] ^= 1;
                flipped
            },
        ] {
            fs::write(&path, &broken).expect("write");
            let (_, outcome) = cache
                .load_or_compile(&engine, &sha(&bytes), || compile(&engine, &bytes))
                .expect("recompiles");
            assert_eq!(outcome, CacheOutcome::Replaced);
            assert_eq!(fs::read(&path).expect("entry"), good, "rewritten whole");
        }
    }

    #[test]
    fn an_entry_from_another_home_is_not_trusted() {
        let (a, b) = (
            tempfile::tempdir().expect("a"),
            tempfile::tempdir().expect("b"),
        );
        let (cache_a, cache_b) = (
            CompileCache::open(a.path()).expect("a"),
            CompileCache::open(b.path()).expect("b"),
        );
        let engine = engine();
        let bytes = component_bytes();
        cache_a
            .load_or_compile(&engine, &sha(&bytes), || compile(&engine, &bytes))
            .expect("compiles");
        // The same plugin and engine give the same file name in both homes...
        let name = cache_a.entry_path(&engine, &sha(&bytes));
        let planted = cache_b.entry_path(&engine, &sha(&bytes));
        assert_eq!(name.file_name(), planted.file_name());
        // ...but home b does not trust home a's bytes.
        fs::copy(&name, &planted).expect("copy");
        let (_, outcome) = cache_b
            .load_or_compile(&engine, &sha(&bytes), || compile(&engine, &bytes))
            .expect("recompiles");
        assert_eq!(outcome, CacheOutcome::Replaced);
    }

    #[test]
    fn another_plugins_entry_copied_over_this_ones_name_is_not_trusted() {
        let root = tempfile::tempdir().expect("tempdir");
        let cache = CompileCache::open(root.path()).expect("opens");
        let engine = engine();
        let a = component_bytes();
        let (sha_a, sha_b) = (sha(&a), sha(b"another plugin"));
        cache
            .load_or_compile(&engine, &sha_a, || compile(&engine, &a))
            .expect("compiles");
        fs::copy(
            cache.entry_path(&engine, &sha_a),
            cache.entry_path(&engine, &sha_b),
        )
        .expect("copy");
        let (_, outcome) = cache
            .load_or_compile(&engine, &sha_b, || compile(&engine, &a))
            .expect("recompiles");
        assert_eq!(outcome, CacheOutcome::Replaced);
    }

    #[test]
    fn the_key_depends_on_the_plugin_and_the_engine_configuration() {
        let root = tempfile::tempdir().expect("tempdir");
        let cache = CompileCache::open(root.path()).expect("opens");
        let engine = engine();
        let mut other_config = wasmtime::Config::new();
        other_config.wasm_component_model(true);
        other_config.epoch_interruption(true);
        let other_engine = Engine::new(&other_config).expect("engine");
        let bytes = component_bytes();
        // Any other bytes are another plugin, valid or not.
        let mut other_bytes = bytes.clone();
        other_bytes.push(0);
        assert_ne!(
            cache.entry_path(&engine, &sha(&bytes)),
            cache.entry_path(&engine, &sha(&other_bytes))
        );
        assert_ne!(
            cache.entry_path(&engine, &sha(&bytes)),
            cache.entry_path(&other_engine, &sha(&bytes))
        );
        // The same home opened again keeps its key.
        let again = CompileCache::open(root.path()).expect("opens");
        assert_eq!(again.key, cache.key);
    }

    #[test]
    fn clearing_removes_entries_and_keeps_the_key() {
        let root = tempfile::tempdir().expect("tempdir");
        assert_eq!(clear(root.path()).expect("empty"), (0, 0));
        let cache = CompileCache::open(root.path()).expect("opens");
        let engine = engine();
        let bytes = component_bytes();
        cache
            .load_or_compile(&engine, &sha(&bytes), || compile(&engine, &bytes))
            .expect("compiles");
        let (files, size) = clear(root.path()).expect("clears");
        assert_eq!(files, 1);
        assert!(size > 0);
        assert!(!cache.entry_path(&engine, &sha(&bytes)).exists());
        assert!(root.path().join("key").exists());
    }

    #[test]
    fn a_compile_error_is_returned_and_nothing_is_cached() {
        let root = tempfile::tempdir().expect("tempdir");
        let cache = CompileCache::open(root.path()).expect("opens");
        let engine = engine();
        let garbage = b"\0asm\x0d\0\x01\0garbage".to_vec();
        let result = cache.load_or_compile(&engine, &sha(&garbage), || compile(&engine, &garbage));
        assert!(result.is_err());
        assert!(!cache.entry_path(&engine, &sha(&garbage)).exists());
    }
}
