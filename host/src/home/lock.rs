//! Project locks: one advisory lock file per project, held by whoever runs stages on it; the
//! marker files beside it (staged files left behind, a recovery under way); and the boot id that
//! tells a lock file written before the last restart.

use std::path::PathBuf;

use super::{Home, HomeError, recovery};
use crate::db;

/// How long taking a project's lock without `--wait` keeps trying before the project is
/// reported busy: longer than any moment another process holds it for without running a stage
/// (recovery on open gives up rather than wait on the database while it holds a lock).
pub const LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The lock of one project, held while stages run on it; released on drop.
///
/// The lock file also records the boot of the machine in which the project's leftover staged
/// files were last swept (see [`ProjectLock::swept_this_boot`]).
#[derive(Debug)]
pub struct ProjectLock {
    file: std::fs::File,
}

impl ProjectLock {
    /// Whether the project's staged files were swept since the machine last started. A run's start
    /// record is written without an fsync of its own (see [`db::with_normal_sync`]), so a
    /// power cut can lose it while keeping the staged files the run had synced: such files
    /// belong to no run that recovery could find, and only a restart can orphan them. So the
    /// first holder of the lock in each boot sweeps them. Without a boot id (not Linux) every
    /// holder does.
    pub(super) fn swept_this_boot(&self) -> bool {
        use std::os::unix::fs::FileExt;
        let Some(boot) = boot_id() else {
            return false;
        };
        let mut recorded = [0u8; 64];
        match self.file.read_at(&mut recorded, 0) {
            Ok(n) => recorded[..n] == *boot.as_bytes(),
            Err(_) => false,
        }
    }

    /// Records that the project's staged files were swept in this boot. Best effort: losing
    /// the record costs one more sweep.
    pub(super) fn mark_swept(&self) {
        use std::os::unix::fs::FileExt;
        if let Some(boot) = boot_id() {
            let written = self
                .file
                .set_len(0)
                .and_then(|()| self.file.write_all_at(boot.as_bytes(), 0));
            if let Err(e) = written {
                tracing::debug!("could not record the sweep in the lock file: {e}");
            }
        }
    }
}

/// This boot of the machine, as Linux names it (a random UUID made at startup).
fn boot_id() -> Option<&'static str> {
    static BOOT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BOOT.get_or_init(|| {
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let id = id.trim();
        (!id.is_empty() && id.len() <= 64).then(|| id.to_owned())
    })
    .as_deref()
}

impl Home {
    pub(super) fn lock_path(&self, project_id: &str) -> Result<PathBuf, HomeError> {
        // A canonical UUID is a safe file name; anything else never reaches the filesystem.
        let id = db::parse_id("project", project_id)?;
        Ok(self.path.join("locks").join(format!("{id}.lock")))
    }

    fn open_lock(&self, project_id: &str) -> Result<std::fs::File, HomeError> {
        let path = self.lock_path(project_id)?;
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|source| HomeError::Lock {
                project: project_id.to_owned(),
                source,
            })
    }

    pub(super) fn try_lock(&self, project_id: &str) -> Result<Option<ProjectLock>, HomeError> {
        let file = self.open_lock(project_id)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(ProjectLock { file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(source)) => Err(HomeError::Lock {
                project: project_id.to_owned(),
                source,
            }),
        }
    }

    /// Says that staged files of the project may have been left behind (a commit whose outcome
    /// is not settled yet, a staged file that could not be removed), by creating
    /// `locks/<project>.leftovers`: the next process to open the home or take the project's
    /// lock sweeps them, whatever the database says. Call it holding the project's lock. Best
    /// effort: if even this fails, the files are swept after the machine next restarts.
    pub fn leave_staged_files(&self, project_id: &str) {
        let marked = self.leftovers_path(project_id).and_then(|path| {
            std::fs::write(&path, b"").map_err(|source| HomeError::Lock {
                project: project_id.to_owned(),
                source,
            })
        });
        if let Err(e) = marked {
            tracing::warn!(
                project = project_id,
                "staged files may stay behind until the machine restarts: {e}"
            );
        }
    }

    /// See [`Home::leave_staged_files`].
    pub(super) fn leftovers_path(&self, project_id: &str) -> Result<PathBuf, HomeError> {
        Ok(self.lock_path(project_id)?.with_extension("leftovers"))
    }

    /// Takes the project's lock, which every stage run on it holds. Without `wait`, a project
    /// somebody else holds is [`HomeError::Busy`]; with it, this blocks until they finish.
    /// The lock is released when the returned guard is dropped, or when the process dies.
    /// Whoever held it before may have died holding it, so the project is recovered (as
    /// [`Home::open`] does) before the lock is handed out.
    pub fn lock_project(&mut self, project_id: &str, wait: bool) -> Result<ProjectLock, HomeError> {
        let lock = match self.try_lock_for_a_while(project_id)? {
            Some(lock) => lock,
            None if !wait => return Err(HomeError::Busy(project_id.to_owned())),
            None => {
                tracing::info!(
                    project = project_id,
                    "waiting for another vidpipe process to finish with the project"
                );
                let file = self.open_lock(project_id)?;
                file.lock().map_err(|source| HomeError::Lock {
                    project: project_id.to_owned(),
                    source,
                })?;
                ProjectLock { file }
            }
        };
        self.recover_locked(project_id, &lock)?;
        Ok(lock)
    }

    /// [`Home::try_lock`], trying again for up to [`LOCK_GRACE`]: another process may hold
    /// the lock only for a moment (finishing a run), and for as long as a live process says it
    /// is recovering the project (which can take longer: moving many files into place). The
    /// grace period starts again whenever that marker is seen, so a recovery that removes its
    /// marker a moment before it lets go of the lock is waited for too.
    fn try_lock_for_a_while(&self, project_id: &str) -> Result<Option<ProjectLock>, HomeError> {
        let mut deadline = std::time::Instant::now() + LOCK_GRACE;
        loop {
            if let Some(lock) = self.try_lock(project_id)? {
                return Ok(Some(lock));
            }
            let now = std::time::Instant::now();
            if self.being_recovered(project_id)? {
                deadline = now + LOCK_GRACE;
            } else if now >= deadline {
                return Ok(None);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// The file a process recovering a project on opening the home keeps while it holds the
    /// project's lock for that: `locks/<project>.recovering`, holding its pid.
    pub(super) fn recovering_path(&self, project_id: &str) -> Result<PathBuf, HomeError> {
        Ok(self.lock_path(project_id)?.with_extension("recovering"))
    }

    /// Whether a live process says it is recovering the project.
    fn being_recovered(&self, project_id: &str) -> Result<bool, HomeError> {
        let Ok(text) = std::fs::read_to_string(self.recovering_path(project_id)?) else {
            return Ok(false);
        };
        Ok(text
            .trim()
            .parse::<u32>()
            .is_ok_and(|pid| pid != std::process::id() && recovery::alive(pid)))
    }
}
