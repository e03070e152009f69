//! Write transactions that wait for the database instead of failing because someone else is
//! committing.
//!
//! SQLite lets one writer at a time hold the write lock (in WAL mode, a POSIX lock on byte 120
//! of the `-shm` file). A fixed busy timeout turns any longer commit elsewhere into
//! "database is locked", and cannot tell a holder that is working from one that is stopped
//! (SIGSTOP, Ctrl-Z) and will never let go. [`write_transaction`] instead retries
//! `BEGIN IMMEDIATE` for as long as the holder is a live process that is running, says so when
//! the wait gets long, and gives up with a clear [`DbError::HeldByStopped`] when the holder has
//! been stopped for [`STOPPED_GRACE`]. The holder is found in `/proc/locks`; where that cannot
//! be read, the wait is bounded by [`MAX_WAIT`].

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};

use super::{DbError, Result};

/// How long a writer waits before it says it is waiting.
pub const SAY_AFTER: Duration = Duration::from_secs(2);
/// How long a writer waits for a holder that is stopped before it gives up.
pub const STOPPED_GRACE: Duration = Duration::from_secs(10);
/// The longest a writer waits whoever holds the lock (a holder that never lets go).
pub const MAX_WAIT: Duration = Duration::from_secs(600);

thread_local! {
    /// Set while [`impatiently`] runs: writers give up at once when the database is locked.
    static IMPATIENT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every [`write_transaction`] of this thread giving up (with [`DbError::Busy`])
/// as soon as the connection's own busy timeout has passed, instead of waiting: for work done
/// while holding something others may be waiting for, such as a project's lock.
pub fn impatiently<T>(f: impl FnOnce() -> T) -> T {
    /// Puts the flag back however `f` ends, unwinding included.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            IMPATIENT.with(|flag| flag.set(self.0));
        }
    }
    let _restore = Restore(IMPATIENT.with(|flag| flag.replace(true)));
    f()
}

/// How long one attempt to take the write lock waits inside SQLite before the holder is looked
/// at again. Shorter than [`super::BUSY_TIMEOUT`], which readers keep (they wait only on a
/// recovery or a checkpoint, and have no holder to look at).
const WRITE_RETRY: Duration = Duration::from_millis(200);

/// Runs `f` in a `BEGIN IMMEDIATE` transaction on `conn` and commits it, waiting for the write
/// lock as the module docs say. An error from `f` rolls the transaction back; an error of the
/// `COMMIT` itself is [`DbError::CommitFailed`], since that transaction may be durable anyway.
pub fn write_transaction<T>(
    conn: &mut Connection,
    f: impl FnOnce(&Transaction<'_>) -> Result<T>,
) -> Result<T> {
    if IMPATIENT.with(std::cell::Cell::get) {
        // The caller has set the connection's timeout for this.
        return wait_and_commit(conn, f);
    }
    conn.busy_timeout(WRITE_RETRY)?;
    let result = wait_and_commit(conn, f);
    let restored = conn.busy_timeout(super::BUSY_TIMEOUT);
    let value = result?;
    restored?;
    Ok(value)
}

fn wait_and_commit<T>(
    conn: &mut Connection,
    f: impl FnOnce(&Transaction<'_>) -> Result<T>,
) -> Result<T> {
    let started = Instant::now();
    let mut said = false;
    let mut stopped_since: Option<Instant> = None;
    loop {
        match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => {
                let value = f(&tx)?;
                tx.commit()
                    .map_err(|e| DbError::CommitFailed(Box::new(e.into())))?;
                if said {
                    tracing::info!(
                        "got the database's write lock after {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                }
                return Ok(value);
            }
            Err(e) if is_busy(&e) => {}
            Err(e) => return Err(e.into()),
        }
        let waited = started.elapsed();
        let holder = conn.path().and_then(|p| lock_holder(Path::new(p)));
        if IMPATIENT.with(std::cell::Cell::get) {
            return Err(DbError::Busy {
                waited,
                holder: holder.map(|h| h.pid),
            });
        }
        match holder {
            Some(Holder { pid, stopped: true }) => {
                let since = *stopped_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= STOPPED_GRACE {
                    return Err(DbError::HeldByStopped {
                        pid,
                        command: command_of(pid),
                    });
                }
            }
            _ => stopped_since = None,
        }
        if waited >= MAX_WAIT {
            return Err(DbError::Busy {
                waited,
                holder: holder.map(|h| h.pid),
            });
        }
        if waited >= SAY_AFTER && !said {
            said = true;
            let who = holder.map_or_else(
                || "another process".to_owned(),
                |h| format!("process {} ({})", h.pid, command_of(h.pid)),
            );
            tracing::warn!("waiting for {who} to finish committing to the database…");
        }
        // The connection's own busy timeout ([`WRITE_RETRY`]) has already waited a little;
        // this spaces the checks of who holds the lock.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `e` means another connection holds a lock we need.
pub fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// The process holding the write lock of a WAL database, and whether it is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    /// Its process id.
    pub pid: u32,
    /// Whether it is stopped (by a signal or a debugger) rather than running or sleeping.
    pub stopped: bool,
}

/// Byte of the `-shm` file SQLite's WAL write lock covers (`WALINDEX_LOCK_OFFSET` + 0).
const WAL_WRITE_LOCK_BYTE: u64 = 120;

/// Who holds the write lock of the WAL database at `db`, from `/proc/locks`; `None` if nobody
/// does or it cannot be told (no `/proc`, no `-shm` file).
pub fn lock_holder(db: &Path) -> Option<Holder> {
    use std::os::unix::fs::MetadataExt;
    let mut shm = db.as_os_str().to_owned();
    shm.push("-shm");
    let meta = std::fs::metadata(&shm).ok()?;
    // A lock taken or dropped by anyone between two reads of `/proc/locks` can make the second
    // skip a line (see [`read_locks`]); one that is held shows in one of a few tries.
    let pid = (0..3).find_map(|_| holder_in(&read_locks()?, meta.dev(), meta.ino()))?;
    Some(Holder {
        pid,
        stopped: is_stopped(pid),
    })
}

/// The text of `/proc/locks`, in as few reads as the kernel allows. It is a `seq_file`: each
/// `read` returns up to a page of whole lines, and the next one resumes by line number, so a
/// lock that goes away in between shifts the rest and a line is skipped. Reading a byte at a
/// time, or a 32-byte probe first as `read_to_string` does, made that happen to the lock being
/// looked for when other processes were busy locking.
fn read_locks() -> Option<String> {
    use std::io::Read;
    let mut file = std::fs::File::open("/proc/locks").ok()?;
    let mut text = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return String::from_utf8(text).ok(),
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// The pid of the POSIX lock on [`WAL_WRITE_LOCK_BYTE`] of the file `dev`/`ino`, in the text of
/// `/proc/locks` (`1: POSIX  ADVISORY  WRITE 1234 fe:01:5678 120 120`).
///
/// `/proc/locks` names the device of the file's superblock, which differs from what `stat`
/// says on btrfs subvolumes and some overlay filesystems: when no lock names the exact device,
/// a lock of the same inode on a single device is taken instead. A holder outside this
/// process's pid namespace shows as pid 0, which names nobody.
fn holder_in(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) = (
        ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff),
        (dev & 0xff) | ((dev >> 12) & !0xff),
    );
    let device = format!("{major:02x}:{minor:02x}");
    let inode = ino.to_string();
    // (device, pid) of every write-lock holder of an inode numbered `ino`.
    let holders: Vec<(&str, u32)> = locks
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // Ignore "->" lines (waiters), which have an extra field.
            let [_, "POSIX", _, _, pid, id, start, end] = fields.as_slice() else {
                return None;
            };
            let covers = start.parse::<u64>().ok()? <= WAL_WRITE_LOCK_BYTE
                && (*end == "EOF" || end.parse::<u64>().ok()? >= WAL_WRITE_LOCK_BYTE);
            let (dev, file_ino) = id.rsplit_once(':')?;
            (covers && file_ino == inode).then_some((dev, pid.parse().ok()?))
        })
        .collect();
    let exact = holders.iter().find(|(dev, _)| *dev == device);
    let pid = match (exact, holders.as_slice()) {
        (Some(&(_, pid)), _) => pid,
        (None, [(_, pid)]) => *pid,
        (None, _) => return None,
    };
    (pid != 0).then_some(pid)
}

/// Whether process `pid` is stopped (state `T` or `t` in `/proc/<pid>/stat`).
fn is_stopped(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The command name is in parentheses and may hold spaces; the state follows the last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state == "T" || state == "t")
}

/// The command line of `pid`, shortened, for messages.
fn command_of(pid: u32) -> String {
    let line = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            String::from_utf8_lossy(&bytes)
                .split('\0')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    if line.is_empty() {
        "command unknown".to_owned()
    } else {
        crate::text::printable(&line, 120)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_lock_holder_is_read_from_proc_locks() {
        let locks = "\
1: POSIX  ADVISORY  READ 77 fe:01:555 128 128
2: POSIX  ADVISORY  WRITE 4242 fe:01:555 120 120
2: -> POSIX  ADVISORY  WRITE 99 fe:01:555 120 120
3: FLOCK  ADVISORY  WRITE 12 fe:01:556 0 EOF
";
        let dev = (0xfe << 8) | 0x01;
        assert_eq!(holder_in(locks, dev, 555), Some(4242));
        assert_eq!(holder_in(locks, dev, 556), None, "flock is not SQLite's");
        assert_eq!(holder_in(locks, dev, 557), None);
    }

    #[test]
    fn a_holder_on_a_device_stat_names_differently_is_still_found_but_pid_zero_is_nobody() {
        // btrfs subvolume: /proc/locks names the superblock's device (00:2a), stat another.
        let locks = "1: POSIX  ADVISORY  WRITE 4242 00:2a:555 120 120
2: POSIX  ADVISORY  WRITE 0 00:2b:777 120 120
3: POSIX  ADVISORY  WRITE 10 00:2c:888 120 120
4: POSIX  ADVISORY  WRITE 11 00:2d:888 120 120
";
        let dev = (0xfe << 8) | 0x01;
        assert_eq!(holder_in(locks, dev, 555), Some(4242));
        assert_eq!(holder_in(locks, dev, 777), None, "another pid namespace");
        assert_eq!(
            holder_in(locks, dev, 888),
            None,
            "two devices: cannot tell which"
        );
        let exact = 0x2d; // device 00:2d
        assert_eq!(holder_in(locks, exact, 888), Some(11));
    }

    #[test]
    fn a_writer_waits_for_a_live_holder_and_then_commits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vidpipe.db");
        let mut a = super::super::open(&path).expect("open");
        let mut b = super::super::open(&path).expect("open");
        a.execute_batch("CREATE TABLE t (x INTEGER)")
            .expect("table");
        let holder = a
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .expect("lock");
        assert_eq!(
            lock_holder(&path),
            Some(Holder {
                pid: std::process::id(),
                stopped: false
            }),
            "{:?} in /proc/locks:\n{}",
            std::fs::metadata(dir.path().join("vidpipe.db-shm")).map(|m| {
                use std::os::unix::fs::MetadataExt;
                (m.dev(), m.ino())
            }),
            std::fs::read_to_string("/proc/locks").unwrap_or_default()
        );
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                write_transaction(&mut b, |tx| Ok(tx.execute("INSERT INTO t VALUES (1)", [])?))
            });
            std::thread::sleep(Duration::from_millis(1500));
            holder.commit().expect("release");
            assert_eq!(waiter.join().expect("joins").expect("committed"), 1);
        });
    }
}
