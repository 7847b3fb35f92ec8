//! Account rows kept in memory for the lookups that run on every request (`getRecord`,
//! `createRecord`, `describeRepo`, token checks).
//!
//! Invariants:
//! - A write this process makes through [`super::Pds::accounts`] is seen by the next lookup
//!   after it: the closure's end bumps the cache's generation, which drops every entry.
//! - A commit from anywhere else (another process, an operator's `sqlite3`) is seen within
//!   [`EXTERNAL_CHECK`]: lookups read `PRAGMA data_version` on a connection of the cache's own
//!   at most that often, and a change drops every entry. (Reading it on every lookup cost as
//!   much as the account query it saves.) The repo-root mirror that commits write beside
//!   each commit changes no `Account` field, so it only costs a re-read per interval.
//! - A row is kept only if neither the generation nor the version moved while it was read.

use crate::store::account::Account;
use crate::store::sqlite;
use crate::syntax::AtIdentifier;
use rusqlite::Connection;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Entries kept before the cache starts over (an `Account` is a few hundred bytes).
const MAX_ENTRIES: usize = 16_384;

/// How stale a row may be after another process changes `account.sqlite`.
pub const EXTERNAL_CHECK: Duration = Duration::from_millis(50);

pub struct AccountCache {
    path: PathBuf,
    external_check: Duration,
    /// Bumped by every write of this process ([`AccountCache::invalidate`]).
    generation: AtomicU64,
    inner: Mutex<Inner>,
}

struct Inner {
    /// Opened on first use (the database may not exist yet when the cache is made).
    conn: Option<Connection>,
    checked_at: Option<Instant>,
    /// The `data_version` and generation the entries were read under.
    tag: Tag,
    by_did: HashMap<String, Account>,
    /// Normalized handle → DID.
    by_handle: HashMap<String, String>,
}

/// What the database looked like when a row was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    version: Option<i64>,
    generation: u64,
}

/// What [`AccountCache::get`] found.
pub enum Lookup {
    Hit(Account),
    /// Not cached: query the database, then [`AccountCache::insert`] with this tag.
    Miss(Tag),
}

impl AccountCache {
    pub fn new(path: PathBuf) -> Self {
        Self::with_external_check(path, EXTERNAL_CHECK)
    }

    pub fn with_external_check(path: PathBuf, external_check: Duration) -> Self {
        AccountCache {
            path,
            external_check,
            generation: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                conn: None,
                checked_at: None,
                tag: Tag {
                    version: None,
                    generation: 0,
                },
                by_did: HashMap::new(),
                by_handle: HashMap::new(),
            }),
        }
    }

    /// Drops every entry: this process finished a write to `account.sqlite`.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The cached account `ident` names, if still current.
    pub fn get(&self, ident: &AtIdentifier) -> Lookup {
        let generation = self.generation.load(Ordering::Acquire);
        let Ok(mut inner) = self.inner.lock() else {
            // Never kept: a poisoned cache serves nothing.
            return Lookup::Miss(Tag {
                version: None,
                generation: u64::MAX,
            });
        };
        let due = inner
            .checked_at
            .is_none_or(|at| at.elapsed() >= self.external_check);
        let version = if due {
            let version = inner.data_version(&self.path);
            inner.checked_at = Some(Instant::now());
            version
        } else {
            inner.tag.version
        };
        let tag = Tag {
            version,
            generation,
        };
        if version.is_none() || tag != inner.tag {
            inner.by_did.clear();
            inner.by_handle.clear();
            inner.tag = tag;
            return Lookup::Miss(tag);
        }
        let found = match ident {
            AtIdentifier::Did(did) => inner.by_did.get(did.as_str()),
            AtIdentifier::Handle(handle) => inner
                .by_handle
                .get(handle.normalize().as_str())
                .and_then(|did| inner.by_did.get(did)),
        };
        match found {
            Some(account) => Lookup::Hit(account.clone()),
            None => Lookup::Miss(tag),
        }
    }

    /// Keeps `account`, queried after a [`Lookup::Miss`] gave `tag`.
    pub fn insert(&self, tag: Tag, account: &Account) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let current = self.generation.load(Ordering::Acquire);
        if tag.version.is_none() || inner.tag != tag || current != tag.generation {
            return;
        }
        if inner.by_did.len() >= MAX_ENTRIES {
            inner.by_did.clear();
            inner.by_handle.clear();
        }
        if let Some(handle) = &account.handle {
            inner
                .by_handle
                .insert(handle.normalize().to_string(), account.did.to_string());
        }
        inner
            .by_did
            .insert(account.did.to_string(), account.clone());
    }
}

impl Inner {
    fn data_version(&mut self, path: &std::path::Path) -> Option<i64> {
        if self.conn.is_none() {
            self.conn = sqlite::open_reader(path).ok();
        }
        let version = self
            .conn
            .as_ref()?
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)));
        match version {
            Ok(v) => Some(v),
            Err(_) => {
                // Reopen next time rather than trust a connection that failed.
                self.conn = None;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::account::AccountStore;
    use crate::syntax::{Did, Handle};
    use std::str::FromStr;

    fn account(did: &str, handle: &str) -> Account {
        Account {
            did: Did::from_str(did).unwrap(),
            handle: Some(Handle::from_str(handle).unwrap()),
            created_at: chrono::Utc::now(),
            takedown_ref: None,
            deactivated_at: None,
            delete_after: None,
            email: None,
            email_confirmed_at: None,
            invites_disabled: false,
        }
    }

    fn ident(s: &str) -> AtIdentifier {
        AtIdentifier::try_from(s).unwrap()
    }

    fn miss_tag(lookup: Lookup) -> Tag {
        match lookup {
            Lookup::Miss(tag) => tag,
            Lookup::Hit(a) => panic!("unexpected hit: {}", a.did),
        }
    }

    fn is_hit(lookup: Lookup) -> bool {
        matches!(lookup, Lookup::Hit(_))
    }

    /// A database with the account schema, a cache checking it every `check`, and a writer.
    fn setup(check: Duration) -> (tempfile::TempDir, AccountCache, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("account.sqlite");
        drop(AccountStore::open(&path).unwrap());
        let writer = Connection::open(&path).unwrap();
        (dir, AccountCache::with_external_check(path, check), writer)
    }

    #[test]
    fn finds_by_did_and_by_handle_in_any_case() {
        let (_dir, cache, _writer) = setup(EXTERNAL_CHECK);
        let tag = miss_tag(cache.get(&ident("did:plc:aaaa")));
        cache.insert(tag, &account("did:plc:aaaa", "alice.test"));
        assert!(is_hit(cache.get(&ident("did:plc:aaaa"))));
        assert!(is_hit(cache.get(&ident("Alice.TEST"))));
        assert!(!is_hit(cache.get(&ident("bob.test"))));
    }

    #[test]
    fn a_write_of_this_process_drops_every_entry_at_once() {
        let (_dir, cache, _writer) = setup(Duration::from_secs(3600));
        let tag = miss_tag(cache.get(&ident("did:plc:aaaa")));
        cache.insert(tag, &account("did:plc:aaaa", "alice.test"));
        assert!(is_hit(cache.get(&ident("did:plc:aaaa"))));
        cache.invalidate();
        assert!(!is_hit(cache.get(&ident("did:plc:aaaa"))));
        assert!(!is_hit(cache.get(&ident("alice.test"))));
    }

    #[test]
    fn a_commit_from_another_connection_is_seen_at_the_next_check() {
        let (_dir, cache, writer) = setup(Duration::ZERO);
        let tag = miss_tag(cache.get(&ident("did:plc:aaaa")));
        cache.insert(tag, &account("did:plc:aaaa", "alice.test"));
        assert!(is_hit(cache.get(&ident("did:plc:aaaa"))));
        // As an operator's sqlite3 would.
        writer
            .execute_batch("CREATE TABLE unrelated (x); INSERT INTO unrelated VALUES (1);")
            .unwrap();
        assert!(!is_hit(cache.get(&ident("did:plc:aaaa"))));
    }

    #[test]
    fn a_row_read_while_a_write_finished_is_not_kept() {
        let (_dir, cache, writer) = setup(Duration::ZERO);
        let before = miss_tag(cache.get(&ident("did:plc:aaaa")));
        // The account query happens here; this process's write finishes before the insert.
        cache.invalidate();
        cache.insert(before, &account("did:plc:aaaa", "alice.test"));
        assert!(!is_hit(cache.get(&ident("did:plc:aaaa"))));
        // Likewise another connection's commit.
        let before = miss_tag(cache.get(&ident("did:plc:aaaa")));
        writer.execute_batch("CREATE TABLE unrelated (x);").unwrap();
        cache.insert(before, &account("did:plc:aaaa", "alice.test"));
        assert!(!is_hit(cache.get(&ident("did:plc:aaaa"))));
    }
}
