//! SQLite plumbing: migrations apply once, in order, and every file in `migrations/` is embedded.

use berth::store::sqlite::{self, ACTOR_MIGRATIONS, Durability};

#[test]
fn every_migration_file_is_embedded_in_order() {
    let dir = format!("{}/migrations/actor", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    assert_eq!(
        files.len(),
        ACTOR_MIGRATIONS.len(),
        "a migration file is not listed in ACTOR_MIGRATIONS"
    );
    for (i, (file, m)) in files.iter().zip(ACTOR_MIGRATIONS).enumerate() {
        assert_eq!(m.version as usize, i + 1);
        assert_eq!(*file, format!("{:04}_{}.sql", m.version, m.name));
        assert_eq!(
            std::fs::read_to_string(format!("{dir}/{file}")).unwrap(),
            m.sql
        );
    }
}

#[test]
fn open_applies_migrations_once_and_uses_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/store.sqlite");
    {
        let conn = sqlite::open(&path, ACTOR_MIGRATIONS, Durability::Full).unwrap();
        let v: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, ACTOR_MIGRATIONS.len() as u32);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        conn.execute(
            "INSERT INTO account_pref (name, value_json) VALUES ('x', '{}')",
            [],
        )
        .unwrap();
    }
    // Reopening keeps data and does not re-run migrations (which would fail on CREATE TABLE).
    let conn = sqlite::open(&path, ACTOR_MIGRATIONS, Durability::Full).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM account_pref", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn refuses_a_database_from_a_newer_berth() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    drop(sqlite::open(&path, ACTOR_MIGRATIONS, Durability::Off).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let err = sqlite::open(&path, ACTOR_MIGRATIONS, Durability::Off).unwrap_err();
    assert!(err.to_string().contains("999"), "{err}");
}

#[test]
fn a_background_thread_checkpoints_what_the_writer_commits() {
    pages_reach_the_file(|conn, path| {
        sqlite::checkpoint_in_background(conn, path, 16).unwrap();
    });
}

#[test]
fn the_shared_thread_checkpoints_what_each_writer_commits() {
    for _ in 0..2 {
        pages_reach_the_file(|conn, path| {
            sqlite::checkpoint_on_shared_thread(conn, path, 16).unwrap();
        });
    }
}

#[test]
fn a_log_under_constant_writes_still_starts_over() {
    for shared in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite");
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        // Small pages keep the log small if it never restarts (as it did not before).
        conn.execute_batch(
            "PRAGMA page_size = 512; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (x BLOB)",
        )
        .unwrap();
        if shared {
            sqlite::checkpoint_on_shared_thread(&mut conn, &path, 16).unwrap();
        } else {
            sqlite::checkpoint_in_background(&mut conn, &path, 16).unwrap();
        }
        // The log header counts the times the log started over from its first frame.
        let wal = dir.path().join("store.sqlite-wal");
        let restarts = || {
            let header = std::fs::read(&wal).unwrap();
            u32::from_be_bytes(header[12..16].try_into().unwrap())
        };
        let insert = |i: usize| {
            conn.execute("INSERT INTO t (x) VALUES (?1)", [vec![i as u8; 100]])
                .unwrap();
        };
        // Commits come far faster than a checkpoint's fsyncs, so once they are under way a
        // checkpoint that only runs beside the writer almost never finds the log fully copied,
        // which a restart needs (0 or 1 restarts in 20,000 commits here; ~200 with the writer
        // finishing the copy).
        (0..2_000).for_each(insert);
        let first = restarts();
        for i in 0..20_000 {
            insert(i);
            if i % 100 == 0 && restarts() >= first + 10 {
                break;
            }
        }
        assert!(
            restarts() >= first + 10,
            "shared {shared}: the log started over {} times",
            restarts() - first
        );
    }
}

/// Writes ~150 pages through a connection whose own checkpoints are off after `start` has
/// set up a helper, and waits until they reach the database file: only the helper's thread
/// can have moved them there.
fn pages_reach_the_file(start: impl Fn(&mut rusqlite::Connection, &std::path::Path)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    let mut conn = sqlite::open(&path, ACTOR_MIGRATIONS, Durability::Off).unwrap();
    conn.execute_batch("PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (x BLOB)")
        .unwrap();
    start(&mut conn, &path);
    let before = std::fs::metadata(&path).unwrap().len();
    for _ in 0..200 {
        conn.execute("INSERT INTO t (x) VALUES (?1)", [vec![7u8; 3000]])
            .unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    // 200 rows of 3,000 bytes take ~150 pages once checkpointed.
    while std::fs::metadata(&path).unwrap().len() < before + 100 * 4096 {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint reached the database file"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 200);
}

#[test]
fn auto_checkpoints_can_be_left_to_an_external_tool() {
    let dir = tempfile::tempdir().unwrap();
    let off = sqlite::Tuning {
        durability: Durability::Off,
        auto_checkpoint: false,
    };
    let autocheckpoint = |conn: &rusqlite::Connection| -> i64 {
        conn.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap()
    };
    let external = sqlite::open(&dir.path().join("a.sqlite"), ACTOR_MIGRATIONS, off).unwrap();
    assert_eq!(autocheckpoint(&external), 0);
    let own = sqlite::open(
        &dir.path().join("b.sqlite"),
        ACTOR_MIGRATIONS,
        Durability::Off,
    )
    .unwrap();
    assert_eq!(autocheckpoint(&own), 4000);
}
