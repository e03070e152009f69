//! A vidpipe home: the folder holding `vidpipe.db` and `projects/<uuid>/…`.
//!
//! ```text
//! HOME/
//!   vidpipe.db (+ -wal, -shm)     the database; outside every plugin-reachable folder
//!   projects/<project uuid>/
//!     keyframes/  clips/  output/ artifacts, reached only through cap-std Dirs
//! ```
//!
//! Opening a home migrates the schema and rolls forward any file moves that a committed run
//! left unfinished when its process died (see [`crate::db::stage`]).

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::artifacts::{ArtifactError, ArtifactRoot, ProjectStore};
use crate::db::{self, DbError, JournalEntry};

/// Why a home could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// A database failure.
    #[error(transparent)]
    Db(#[from] DbError),
    /// An artifact store failure.
    #[error(transparent)]
    Artifacts(#[from] ArtifactError),
    /// The home folder itself could not be created.
    #[error("could not create the home folder {path}: {source}")]
    Create {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The home does not exist and creating it was not asked for.
    #[error("{0} is not a vidpipe home (no vidpipe.db); run `vidpipe init` first")]
    Missing(PathBuf),
}

/// An open home: the database connection of this process and the artifact root.
pub struct Home {
    path: PathBuf,
    conn: Connection,
    artifacts: ArtifactRoot,
}

impl std::fmt::Debug for Home {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Home")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Home {
    /// Creates the home if needed, migrates it and finishes interrupted publishes. Idempotent.
    pub fn init(path: &Path) -> Result<Self, HomeError> {
        std::fs::create_dir_all(path).map_err(|source| HomeError::Create {
            path: path.to_owned(),
            source,
        })?;
        Self::open_existing(path)
    }

    /// Opens an existing home; refuses a folder without a database rather than creating one.
    pub fn open(path: &Path) -> Result<Self, HomeError> {
        if !path.join("vidpipe.db").is_file() {
            return Err(HomeError::Missing(path.to_owned()));
        }
        Self::open_existing(path)
    }

    fn open_existing(path: &Path) -> Result<Self, HomeError> {
        let mut conn = db::open(&path.join("vidpipe.db"))?;
        db::migrate(&mut conn)?;
        let artifacts = ArtifactRoot::open(&path.join("projects"))?;
        let home = Home {
            path: path.to_owned(),
            conn,
            artifacts,
        };
        home.finish_publishes(None)?;
        Ok(home)
    }

    /// The home folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.path.join("vidpipe.db")
    }

    /// This process's connection.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// This process's connection, mutably (for transactions).
    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The artifact root.
    pub fn artifacts(&self) -> &ArtifactRoot {
        &self.artifacts
    }

    /// Creates a project row and its folders. The folders come first: a crash in between leaves
    /// an empty folder no row points at, never a row without its folders.
    pub fn create_project(
        &self,
        name: &str,
        script: &str,
        settings: &db::KeyValues,
    ) -> Result<db::Project, HomeError> {
        // Validate before touching the disk, so bad input writes nothing.
        let probe_id = uuid::Uuid::new_v4();
        db::projects::check_new_project(name, script)?;
        self.artifacts.create_project(probe_id)?;
        match db::create_project_with_id(
            &self.conn,
            &probe_id.hyphenated().to_string(),
            name,
            script,
            settings,
        ) {
            Ok(p) => Ok(p),
            Err(e) => {
                // Best effort: the folder is empty and unreferenced.
                let _ = self.artifacts.remove_project(probe_id);
                Err(e.into())
            }
        }
    }

    /// Opens the artifact folders of a project.
    pub fn project_store(&self, project_id: &str) -> Result<ProjectStore, HomeError> {
        let id = uuid::Uuid::parse_str(project_id).map_err(|_| {
            DbError::InvalidInput(format!("project id {project_id:?} is not a UUID"))
        })?;
        Ok(self.artifacts.project(id)?)
    }

    /// Carries out the file moves of committed runs (all, or those of `run_id`) and clears them
    /// from the journal. Safe to repeat and to race with another process doing the same: a
    /// staged file already moved by someone else is simply gone.
    pub fn finish_publishes(&self, run_id: Option<&str>) -> Result<usize, HomeError> {
        let entries = db::pending_journal(&self.conn, run_id)?;
        for entry in &entries {
            self.apply(entry)?;
            db::clear_journal_entry(&self.conn, entry)?;
        }
        Ok(entries.len())
    }

    fn apply(&self, entry: &JournalEntry) -> Result<(), HomeError> {
        let store = self.project_store(&entry.project_id)?;
        let kind = entry.kind.into();
        match &entry.staged {
            Some(staged) => match store.publish(kind, staged, &entry.name) {
                Ok(()) => Ok(()),
                // Moved already (by us before a crash, or by another process rolling forward).
                Err(ArtifactError::NotFound { .. }) => Ok(()),
                Err(e) => Err(e.into()),
            },
            None => Ok(store.remove(kind, &entry.name)?),
        }
    }
}
