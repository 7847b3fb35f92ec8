//! Opening SQLite databases one way everywhere, and applying the numbered migrations in
//! `migrations/<db>/NNNN_name.sql`.
//!
//! Each database records the last migration applied in `PRAGMA user_version`; a migration and
//! its version bump commit in one transaction, so a crash mid-migration leaves the old schema.

use super::StoreError;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, mpsc};

/// One schema step, embedded in the binary.
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The per-account repository store's migrations (`migrations/actor/`).
pub const ACTOR_MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "init",
    sql: include_str!("../../migrations/actor/0001_init.sql"),
}];

/// The account database's migrations (`migrations/account/`).
pub const ACCOUNT_MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "init",
    sql: include_str!("../../migrations/account/0001_init.sql"),
}];

/// The PLC directory server's migrations (`migrations/plc/`).
pub const PLC_MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "init",
    sql: include_str!("../../migrations/plc/0001_init.sql"),
}];

/// The firehose log's migrations (`migrations/sequencer/`).
pub const SEQUENCER_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../../migrations/sequencer/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "explicit_seq",
        sql: include_str!("../../migrations/sequencer/0002_explicit_seq.sql"),
    },
    Migration {
        version: 3,
        name: "journal",
        sql: include_str!("../../migrations/sequencer/0003_journal.sql"),
    },
];

/// The DID document cache's migrations (`migrations/did_cache/`).
pub const DID_CACHE_MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "init",
    sql: include_str!("../../migrations/did_cache/0001_init.sql"),
}];

/// How hard SQLite works to make a commit survive power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: an acknowledged commit survives power loss. The default.
    #[default]
    Full,
    /// `synchronous=NORMAL`: survives a process crash, may lose the last commits on power loss.
    Normal,
    /// `synchronous=OFF`: for benchmarks that measure work excluding fsync.
    Off,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
            Durability::Off => "OFF",
        }
    }
}

/// WAL frames after which a database is checkpointed, by its own connection or in the
/// background (SQLite's default is 1,000; see [`configure`]).
pub const CHECKPOINT_FRAMES: i32 = 4000;

/// How a database is opened: its [`Durability`], and whether its connection checkpoints the
/// WAL itself (off with `PDS_SQLITE_DISABLE_WAL_AUTO_CHECKPOINT`, for an external tool such as
/// Litestream to do it). A `Durability` alone means automatic checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    pub durability: Durability,
    pub auto_checkpoint: bool,
}

impl From<Durability> for Tuning {
    fn from(durability: Durability) -> Self {
        Tuning {
            durability,
            auto_checkpoint: true,
        }
    }
}

/// Opens (creating if needed) a database file in WAL mode and brings its schema up to date.
pub fn open(
    path: &Path,
    migrations: &[Migration],
    tuning: impl Into<Tuning>,
) -> Result<Connection, StoreError> {
    let tuning = tuning.into();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn, tuning)?;
    migrate(&mut conn, migrations, &path.display().to_string())?;
    Ok(conn)
}

/// Opens a read-only connection to a database another connection has created and migrated.
/// In WAL mode readers never wait for the writer, so such a connection serves point reads
/// while writes go on.
pub fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    stable_plans(&conn)?;
    conn.execute_batch("PRAGMA cache_size = -2048;")?;
    Ok(conn)
}

/// Opens an in-memory database with the same schema (tests and scratch work).
pub fn open_in_memory(migrations: &[Migration]) -> Result<Connection, StoreError> {
    let mut conn = Connection::open_in_memory()?;
    configure(&conn, Durability::Off.into())?;
    migrate(&mut conn, migrations, ":memory:")?;
    Ok(conn)
}

/// Query plans that don't depend on bound values. Without this SQLite may plan a statement for
/// the parameters it was first run with (a `LEFT JOIN` or `LIKE` on `?1`) and silently
/// re-prepare the cached statement every time the parameters change, which costs as much as
/// not caching it.
fn stable_plans(conn: &Connection) -> Result<(), StoreError> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

fn configure(conn: &Connection, tuning: Tuning) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    stable_plans(conn)?;
    // journal_mode returns a row, so it is read rather than executed.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    // A commit dirties a handful of random B-tree leaves; an 8 MiB page cache keeps a hot
    // repo's interior pages resident, and checkpointing every 4,000 pages (not 1,000) lets
    // pages rewritten by consecutive commits reach the database file once.
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {}; PRAGMA foreign_keys = ON; PRAGMA cache_size = -8192;
         PRAGMA wal_autocheckpoint = {}; PRAGMA journal_size_limit = 67108864;",
        tuning.durability.pragma(),
        if tuning.auto_checkpoint {
            CHECKPOINT_FRAMES
        } else {
            0
        },
    ))?;
    Ok(())
}

/// Moves a WAL database's checkpoints off the connection that writes it, in two steps.
///
/// Once a commit leaves `frames` or more frames in the WAL, a thread with a connection of its
/// own copies them into the database file (`PRAGMA wal_checkpoint(PASSIVE)`, which never
/// blocks the writer), so no commit waits for that copy and its fsyncs. Writes that land while
/// it runs keep the log from being fully copied, and SQLite only restarts a log at the start of
/// a write when every frame is in the database file; so after the thread's copy the writer's
/// next commit copies the few frames left itself (no other write can land meanwhile), and the
/// write after it starts the log again from the top. A later request waits for `frames` more
/// frames, so a log that a long read kept from restarting is not copied again at every commit.
/// The thread ends, closing its connection, when `conn` is dropped.
pub fn checkpoint_in_background(
    conn: &mut Connection,
    path: &Path,
    frames: i32,
) -> Result<(), StoreError> {
    let own = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    own.busy_timeout(std::time::Duration::from_secs(5))?;
    // One pending request is enough: a checkpoint copies everything committed before it.
    let (wake, requests) = mpsc::sync_channel::<Arc<AtomicU8>>(1);
    let label = path.display().to_string();
    std::thread::Builder::new()
        .name("berth-checkpoint".into())
        .spawn(move || {
            while let Ok(phase) = requests.recv() {
                if let Err(e) = copy_log(&own, frames) {
                    tracing::warn!("{label}: checkpoint: {e}");
                }
                phase.store(COPIED, Ordering::Release);
            }
        })?;
    conn.wal_hook(Some(pace_checkpoints(frames, move |phase| {
        // Full means a checkpoint is already asked for; closed means shutting down.
        wake.try_send(phase).is_ok()
    })))?;
    Ok(())
}

/// [`checkpoint_in_background`] for databases too many for a thread each (the per-account
/// stores): one thread, shared by all, takes their requests in turn and opens a connection for
/// each checkpoint. A store deleted meanwhile is skipped (the connection never creates a file).
/// Falls back to automatic checkpoints if the thread can't be started.
pub fn checkpoint_on_shared_thread(
    conn: &mut Connection,
    path: &Path,
    frames: i32,
) -> Result<(), StoreError> {
    type Request = (std::path::PathBuf, i32, Arc<AtomicU8>);
    static QUEUE: OnceLock<Option<mpsc::Sender<Request>>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (send, requests) = mpsc::channel::<Request>();
        let spawned = std::thread::Builder::new()
            .name("berth-checkpoints".into())
            .spawn(move || {
                for (path, frames, phase) in requests {
                    let opened = Connection::open_with_flags(
                        &path,
                        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    );
                    let done = opened.and_then(|c| {
                        c.busy_timeout(std::time::Duration::from_secs(1))?;
                        // Closing this connection never removes the WAL, even if it was the
                        // last one (SQLite also skips that when the file has been replaced).
                        c.set_db_config(
                            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                            true,
                        )?;
                        copy_log(&c, frames)
                    });
                    if let Err(e) = done {
                        tracing::debug!("{}: checkpoint: {e}", path.display());
                    }
                    phase.store(COPIED, Ordering::Release);
                }
            });
        spawned.ok().map(|_| send)
    });
    let Some(send) = queue.clone() else {
        return Ok(());
    };
    let path = path.to_path_buf();
    conn.wal_hook(Some(pace_checkpoints(frames, move |phase| {
        send.send((path.clone(), frames, phase)).is_ok()
    })))?;
    Ok(())
}

/// The thread's side of [`checkpoint_in_background`]: copies the log into the database file
/// without blocking the writer, then again while the writes that landed during a pass are many
/// (a few passes at most), so the copy left to the writer is short.
fn copy_log(conn: &Connection, frames: i32) -> rusqlite::Result<()> {
    let few = i64::from(frames / 32).max(16);
    let mut copied_before = 0;
    let mut passes = 0;
    while passes < 4 {
        let copied: i64 = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(2))?;
        passes += 1;
        if copied - copied_before < few && passes > 1 {
            break;
        }
        copied_before = copied;
    }
    Ok(())
}

/// No checkpoint asked for.
const IDLE: u8 = 0;
/// A thread has been asked to copy the log.
const ASKED: u8 = 1;
/// The thread has copied it; the writer copies what came after.
const COPIED: u8 = 2;

/// The writer's side of [`checkpoint_in_background`]: a WAL hook that asks `request` for a
/// checkpoint (passing the flag the thread sets to [`COPIED`]; `false` means it could not be
/// asked), and finishes the copy at the first commit after it.
fn pace_checkpoints(
    frames: i32,
    request: impl Fn(Arc<AtomicU8>) -> bool + Send + 'static,
) -> impl FnMut(&mut rusqlite::hooks::Wal, i32) -> rusqlite::Result<()> + Send + 'static {
    let phase = Arc::new(AtomicU8::new(IDLE));
    let mut next_request = frames;
    move |wal, in_wal| {
        if in_wal < frames {
            // The log was started again.
            next_request = frames;
        }
        match phase.load(Ordering::Acquire) {
            COPIED => {
                if let Err(e) = wal.checkpoint_v2(rusqlite::wal::CheckpointMode::PASSIVE) {
                    tracing::warn!("checkpoint after a commit: {e}");
                }
                phase.store(IDLE, Ordering::Release);
                next_request = in_wal.saturating_add(frames);
            }
            IDLE if in_wal >= next_request => {
                phase.store(ASKED, Ordering::Release);
                if !request(phase.clone()) {
                    phase.store(IDLE, Ordering::Release);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Applies every migration newer than the database's `user_version`, each in its own transaction.
pub fn migrate(
    conn: &mut Connection,
    migrations: &[Migration],
    label: &str,
) -> Result<(), StoreError> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = migrations.last().map_or(0, |m| m.version);
    if current > known {
        return Err(StoreError::SchemaTooNew {
            path: label.to_string(),
            found: current,
            known,
        });
    }
    for m in migrations.iter().filter(|m| m.version > current) {
        let tx = conn.transaction()?;
        tx.execute_batch(m.sql)?;
        tx.pragma_update(None, "user_version", m.version)?;
        tx.commit()?;
    }
    Ok(())
}
