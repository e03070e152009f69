//! Putting a project back in order after whatever its last lock holder left: the journaled file
//! moves of committed runs rolled forward, unfinished runs marked `interrupted`, their staged
//! files removed.
//!
//! # The outcome is the database's
//!
//! A run committed if and only if the database says so once it has recovered. Recovery
//! therefore works in this order:
//!
//! 1. Roll the journal forward: a committed run's staged files are moved into place, all of a
//!    project's moves with one fsync per folder, and their entries cleared in one transaction.
//!    A staged file that is gone was moved already, unless the file in place is not the
//!    artifact its row describes: then the entry is marked damaged (never cleared as if done).
//! 2. Mark runs still `running` as `interrupted`. This write is what settles a commit whose
//!    outcome an I/O error left unknown: if the database does not show that commit now, this
//!    transaction supersedes it in the write-ahead log for good.
//! 3. Only then remove staged files: until step 2 a commit might still have become visible,
//!    and its files must be there to roll forward.
//!
//! # Recovery never makes anyone wait
//!
//! On opening a home, recovery looks only at projects whose recorded processes are all gone,
//! takes each one's lock only if it is free, and while it holds the lock it does not wait for
//! the database (another process's commit): it gives up instead and leaves the project to be
//! recovered by the next process that takes its lock to run a stage, which always recovers it
//! first ([`Home::lock_project`]). A user's run therefore never finds a project busy because
//! someone was recovering it for longer than a moment (and taking the lock retries for
//! [`super::LOCK_GRACE`]).

use std::collections::BTreeSet;

use super::{Home, HomeError, ProjectLock, doing};
use crate::artifacts::{ArtifactError, ArtifactKind, ProjectStore};
use crate::db::{self, DbError, JournalEntry, wait};

/// How long recovery on opening a home lets SQLite wait for a lock while it holds a project's.
const IMPATIENT_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(50);

/// What carrying out one journal entry came to.
enum Applied {
    /// The folder changed (a rename, a removal) or may still hold an undurable change: it
    /// needs an fsync before the entry is cleared.
    Changed(ArtifactKind),
    /// Nothing was left to do in the folder.
    Nothing,
    /// The move can never be finished; why.
    Damaged(String),
}

/// Whether the process `pid` exists (on this machine).
pub(super) fn alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

impl Home {
    /// Recovers every project that needs it whose processes are all gone. See the module docs.
    pub(super) fn recover(&mut self) -> Result<(), HomeError> {
        let mut projects = db::projects_needing_recovery(&self.conn)?;
        // Projects whose staged files were left behind ([`Home::leave_staged_files`]).
        for project_id in self.projects_with_leftovers() {
            if !projects.iter().any(|(id, _)| *id == project_id) {
                projects.push((project_id, Vec::new()));
            }
        }
        for (project_id, pids) in projects {
            if pids.iter().any(|&pid| alive(pid)) {
                continue; // Its run is live, or just finishing: it is theirs.
            }
            // One broken project must not stop every command on the home: report and go on.
            if let Err(e) = self.recover_project(&project_id) {
                tracing::warn!(project = %project_id, "left the project to be recovered later: {e}");
            }
        }
        Ok(())
    }

    /// The projects with a `locks/<project>.leftovers` file.
    fn projects_with_leftovers(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.path.join("locks")) else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| {
                let name = entry.ok()?.file_name();
                let id = name.to_str()?.strip_suffix(".leftovers")?;
                db::parse_id("project", id).ok()
            })
            .collect()
    }

    fn recover_project(&mut self, project_id: &str) -> Result<(), HomeError> {
        let Some(lock) = self.try_lock(project_id)? else {
            return Ok(()); // Somebody is running it; it is theirs to finish.
        };
        // Whoever wants the project while this runs waits rather than finds it busy. A marker
        // left by a process that died recovering names a dead pid, and is ignored.
        let marker = self.recovering_path(project_id)?;
        if let Err(e) = std::fs::write(&marker, std::process::id().to_string()) {
            tracing::debug!("could not say the project is being recovered: {e}");
        }
        let recovered = self.recover_project_locked(project_id, &lock);
        let _ = std::fs::remove_file(&marker);
        recovered
    }

    fn recover_project_locked(
        &mut self,
        project_id: &str,
        lock: &ProjectLock,
    ) -> Result<(), HomeError> {
        // Holding the lock blocks whoever wants to run the project next: do not wait, not even
        // for SQLite's own busy timeout.
        self.conn
            .busy_timeout(IMPATIENT_BUSY_TIMEOUT)
            .map_err(DbError::from)?;
        let recovered = wait::impatiently(|| self.recover_locked(project_id, lock));
        self.conn
            .busy_timeout(db::BUSY_TIMEOUT)
            .map_err(DbError::from)?;
        recovered
    }

    /// Puts a project whose lock we hold back in order (see the module docs). Cheap when there
    /// is nothing to do, so it runs every time the lock is taken.
    pub(super) fn recover_locked(
        &mut self,
        project_id: &str,
        lock: &ProjectLock,
    ) -> Result<(), HomeError> {
        let published = match self.finish_publishes(project_id, None) {
            // Recorded as damaged (and said so): the project goes on without those files, and
            // the runs that made them are no longer taken as done.
            Err(HomeError::Damaged { count, .. }) => count,
            published => published?,
        };
        let interrupted = db::mark_interrupted(&mut self.conn, project_id)
            .map_err(doing("mark the project's unfinished runs interrupted"))?;
        // Staged files outlive their run only when it did not end: it was interrupted, or its
        // commit was left unsettled (and is settled now, above), or a removal failed (both
        // recorded by a `.leftovers` file), or a power cut lost its start record (then the
        // machine has restarted since the last sweep).
        let first_this_boot = !lock.swept_this_boot();
        let leftovers = self.leftovers_path(project_id)?;
        let left = leftovers.exists();
        let swept = if interrupted + published > 0 || first_this_boot || left {
            self.project_store(project_id)?.sweep_staged()?
        } else {
            0
        };
        if first_this_boot {
            lock.mark_swept();
        }
        if left {
            std::fs::remove_file(&leftovers).map_err(|source| HomeError::Lock {
                project: project_id.to_owned(),
                source,
            })?;
        }
        if interrupted + swept > 0 {
            tracing::warn!(
                project = %project_id,
                "recovered from an interrupted run: {interrupted} record(s) marked interrupted, \
                 {swept} staged file(s) removed"
            );
        }
        Ok(())
    }

    /// Carries out the journaled file moves of a project's committed runs (all, or those of
    /// `run_id`): every rename and removal, then one fsync per folder they touched, then their
    /// entries cleared in one transaction. Call it holding the project's lock. On an error
    /// nothing is cleared, and carrying the entries out again is always safe. Returns how many
    /// entries were settled.
    pub fn finish_publishes(
        &mut self,
        project_id: &str,
        run_id: Option<&str>,
    ) -> Result<usize, HomeError> {
        let entries = db::pending_journal(&self.conn, project_id, run_id)?;
        self.publish(project_id, &entries)
    }

    /// [`Home::finish_publishes`] of journal entries already in hand: those a run's commit has
    /// just returned.
    pub fn publish(
        &mut self,
        project_id: &str,
        entries: &[JournalEntry],
    ) -> Result<usize, HomeError> {
        if entries.is_empty() {
            return Ok(0);
        }
        let store = self.project_store(project_id)?;
        let mut touched = BTreeSet::new();
        let mut settled = Vec::with_capacity(entries.len());
        let mut failure: Option<HomeError> = None;
        let mut damaged: Vec<String> = Vec::new();
        for entry in entries {
            match self.apply(&store, entry) {
                Ok(Applied::Changed(kind)) => {
                    touched.insert(kind);
                    settled.push(entry.clone());
                }
                Ok(Applied::Nothing) => settled.push(entry.clone()),
                Ok(Applied::Damaged(why)) => {
                    tracing::error!(
                        project = %project_id,
                        run = %entry.run_id,
                        "artifact {}/{} is damaged: {why}",
                        entry.kind,
                        crate::text::printable(&entry.name, 300)
                    );
                    if let Err(e) = db::mark_journal_damaged(&mut self.conn, entry, &why) {
                        failure = Some(doing("record a damaged artifact")(e));
                        break;
                    }
                    damaged.push(format!(
                        "{}/{} (run {}): {why}",
                        entry.kind,
                        crate::text::printable(&entry.name, 300),
                        entry.run_id
                    ));
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        // Even after a failure, make what was done durable as far as it goes.
        for kind in touched {
            if let Err(e) = store.sync(kind) {
                failure.get_or_insert(e.into());
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        // Not made durable on its own: entries a power cut brings back are carried out again,
        // and finding their files already in place, settle at once.
        db::with_normal_sync(&mut self.conn, |conn| db::clear_journal(conn, &settled)).map_err(
            doing("record that the files of committed runs are in place"),
        )?;
        if let Some(first) = damaged.first() {
            return Err(HomeError::Damaged {
                count: damaged.len(),
                first: first.clone(),
            });
        }
        Ok(settled.len())
    }

    /// Carries out one journaled move without syncing its folder, unless a later commit has
    /// superseded it: a staged file whose artifact row now belongs to another run is
    /// discarded instead of moved, and a removal of a name that a later run published again
    /// is skipped. So replaying entries in any order, any number of times, leaves every file
    /// matching its row.
    fn apply(&self, store: &ProjectStore, entry: &JournalEntry) -> Result<Applied, HomeError> {
        let kind: ArtifactKind = entry.kind.into();
        let row = db::artifact_row(&self.conn, &entry.project_id, entry.kind, &entry.name)?;
        let ours = row
            .as_ref()
            .is_some_and(|r| r.run_id.as_deref() == Some(entry.run_id.as_str()));
        match (&entry.staged, row) {
            (Some(staged), Some(row)) if ours => {
                match store.move_into_place(kind, staged, &entry.name) {
                    Ok(()) => Ok(Applied::Changed(kind)),
                    // The staged file is gone: moved before, by a run that then stopped before
                    // clearing the journal — if the file in place is that artifact.
                    Err(ArtifactError::NotFound { .. }) => {
                        match store.hash_file(kind, &entry.name) {
                            Ok((size, sha256)) if size == row.size && sha256 == row.sha256 => {
                                Ok(Applied::Changed(kind))
                            }
                            Ok((size, _)) => Ok(Applied::Damaged(format!(
                                "its staged file is gone and the file in place ({size} bytes) is not \
                             the artifact its row describes ({} bytes, sha256 {})",
                                row.size, row.sha256
                            ))),
                            Err(ArtifactError::NotFound { .. }) => Ok(Applied::Damaged(
                                "both its staged file and the file in place are gone".to_owned(),
                            )),
                            Err(e) => Err(e.into()),
                        }
                    }
                    Err(e) => Err(e.into()),
                }
            }
            (Some(staged), _) => {
                store.discard(kind, staged)?;
                Ok(Applied::Changed(kind))
            }
            (None, None) => {
                store.remove_entry(kind, &entry.name)?;
                Ok(Applied::Changed(kind))
            }
            (None, Some(_)) => Ok(Applied::Nothing),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::db::KeyValues;
    use crate::home::LOCK_GRACE;

    /// A home with one project, and the path of its keyframes folder.
    fn home_with_project() -> (tempfile::TempDir, std::path::PathBuf, String) {
        let dir = tempfile::tempdir().unwrap();
        let mut home = Home::init(&dir.path().join("home")).unwrap();
        let id = home.create_project("p", "", &KeyValues::new()).unwrap().id;
        let keyframes = home.path().join("projects").join(&id).join("keyframes");
        (dir, keyframes, id)
    }

    /// Plants what a run that left no record would leave: a synced staged file.
    fn plant(folder: &std::path::Path) -> std::path::PathBuf {
        let staged = folder.join(format!(".stage-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&staged, b"orphan").unwrap();
        staged
    }

    #[test]
    fn staged_files_a_power_cut_orphaned_are_swept_by_the_first_lock_holder_after_a_restart() {
        let (dir, keyframes, id) = home_with_project();
        let mut home = Home::open(&dir.path().join("home")).unwrap();
        drop(home.lock_project(&id, false).unwrap());
        // Within one boot the folders are not listed at every lock: nothing can orphan a
        // staged file without a record but a power cut (or the notes tested below).
        let kept = plant(&keyframes);
        drop(home.lock_project(&id, false).unwrap());
        assert!(kept.exists());
        // The lock file says which boot last swept; make it an earlier one.
        let lock_file = home.path().join("locks").join(format!("{id}.lock"));
        std::fs::write(&lock_file, "an-earlier-boot").unwrap();
        drop(home.lock_project(&id, false).unwrap());
        assert!(!kept.exists(), "swept after the restart");
        let orphan = plant(&keyframes);
        drop(home.lock_project(&id, false).unwrap());
        assert!(orphan.exists(), "swept once per boot");
    }

    #[test]
    fn staged_files_left_behind_are_swept_by_the_next_process_to_open_the_home() {
        let (dir, keyframes, id) = home_with_project();
        let path = dir.path().join("home");
        let home = {
            let mut home = Home::open(&path).unwrap();
            let lock = home.lock_project(&id, false).unwrap();
            let left = plant(&keyframes);
            home.leave_staged_files(&id);
            drop(lock);
            drop(home);
            left
        };
        assert!(home.exists());
        let marker = path.join("locks").join(format!("{id}.leftovers"));
        assert!(marker.exists());
        // Opening the home, as even a reading command does, recovers the project.
        drop(Home::open(&path).unwrap());
        assert!(!home.exists(), "the staged file left behind is gone");
        assert!(!marker.exists(), "and so is the note");
    }

    #[test]
    fn a_process_recovering_a_project_makes_others_wait_rather_than_find_it_busy() {
        let (dir, _keyframes, id) = home_with_project();
        let path = dir.path().join("home");
        let mut home = Home::open(&path).unwrap();
        // Another process (this test's parent stands in: alive, and not us) holds the lock
        // and says it is recovering.
        let lock_file = path.join("locks").join(format!("{id}.lock"));
        let held = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_file)
            .unwrap();
        held.lock().unwrap();
        let marker = path.join("locks").join(format!("{id}.recovering"));
        std::fs::write(&marker, std::os::unix::process::parent_id().to_string()).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(LOCK_GRACE * 2);
            let _ = std::fs::remove_file(&marker);
            // A recovering process removes its marker a moment before it lets go of the lock
            // (here a long moment): whoever waits must not call the project busy in between.
            std::thread::sleep(LOCK_GRACE / 4);
            drop(held);
        });
        let started = std::time::Instant::now();
        let lock = home.lock_project(&id, false);
        assert!(lock.is_ok(), "waited instead of refusing: {:?}", lock.err());
        assert!(started.elapsed() >= LOCK_GRACE * 2);
        release.join().unwrap();
        // Without the marker, a held lock is busy after the grace period.
        drop(lock);
        let held = std::fs::OpenOptions::new()
            .write(true)
            .open(&lock_file)
            .unwrap();
        held.lock().unwrap();
        assert!(matches!(
            home.lock_project(&id, false),
            Err(HomeError::Busy(_))
        ));
    }
}
