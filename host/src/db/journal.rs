//! The publish journal: file moves a committed run still owes, cleared once done, and the
//! damage marked when a move cannot be completed.

use rusqlite::{Connection, OptionalExtension, params};

use super::rows::*;
use super::{Result, execute_cached, query_row_cached, write_transaction};

/// A file move a committed run still owes: `staged` → `name`, or a removal when `staged` is `None`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JournalEntry {
    /// The run that committed it.
    pub run_id: String,
    /// The project the file belongs to.
    pub project_id: String,
    /// The folder.
    pub kind: super::Kind,
    /// The final name.
    pub name: String,
    /// The staged file to rename onto `name`, or `None` to remove `name`.
    pub staged: Option<String>,
}

/// Every pending journal entry of one project (optionally of one run only), except those
/// marked damaged ([`damaged_journal`]).
pub fn pending_journal(
    conn: &Connection,
    project_id: &str,
    run_id: Option<&str>,
) -> Result<Vec<JournalEntry>> {
    let mut st = conn.prepare_cached(
        "SELECT run_id, project_id, kind, name, staged FROM publish_journal
         WHERE project_id = ?1 AND (?2 IS NULL OR run_id = ?2) AND damaged IS NULL
         ORDER BY run_id, kind, name",
    )?;
    let rows = st.query_map(params![project_id, run_id], |r| {
        Ok(JournalEntry {
            run_id: r.get(0)?,
            project_id: r.get(1)?,
            kind: r.get(2)?,
            name: r.get(3)?,
            staged: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The committed artifact `kind/name` of a project, if there is one.
pub fn artifact_row(
    conn: &Connection,
    project_id: &str,
    kind: super::Kind,
    name: &str,
) -> Result<Option<Artifact>> {
    Ok(query_row_cached(
        conn,
        &format!(
            "SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE project_id = ?1 AND kind = ?2 AND name = ?3"
        ),
        params![project_id, kind, name],
        artifact_from_row,
    )
    .optional()?)
}

/// Forgets journal entries once their file moves are durable, in one transaction.
pub fn clear_journal(conn: &mut Connection, entries: &[JournalEntry]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    write_transaction(conn, |tx| {
        for entry in entries {
            execute_cached(
                tx,
                "DELETE FROM publish_journal WHERE run_id = ?1 AND kind = ?2 AND name = ?3",
                params![entry.run_id, entry.kind, entry.name],
            )?;
        }
        Ok(())
    })
}

/// Marks a journal entry damaged: its staged file is gone and the file in place is not the
/// artifact its row describes, so the move can never be finished. The entry stays, with why,
/// for `project show` to report and for the stage to be run again; recovery skips it.
pub fn mark_journal_damaged(conn: &mut Connection, entry: &JournalEntry, why: &str) -> Result<()> {
    write_transaction(conn, |tx| {
        execute_cached(
            tx,
            "UPDATE publish_journal SET damaged = ?4 WHERE run_id = ?1 AND kind = ?2 AND name = ?3",
            params![entry.run_id, entry.kind, entry.name, why],
        )?;
        Ok(())
    })
}

/// A journal entry marked damaged, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Damage {
    /// The entry.
    pub entry: JournalEntry,
    /// What was found.
    pub why: String,
}

/// The journal entries of a project marked damaged by [`mark_journal_damaged`].
pub fn damaged_journal(conn: &Connection, project_id: &str) -> Result<Vec<Damage>> {
    let mut st = conn.prepare_cached(
        "SELECT run_id, project_id, kind, name, staged, damaged FROM publish_journal
         WHERE project_id = ?1 AND damaged IS NOT NULL ORDER BY run_id, kind, name",
    )?;
    let rows = st.query_map([project_id], |r| {
        Ok(Damage {
            entry: JournalEntry {
                run_id: r.get(0)?,
                project_id: r.get(1)?,
                kind: r.get(2)?,
                name: r.get(3)?,
                staged: r.get(4)?,
            },
            why: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
