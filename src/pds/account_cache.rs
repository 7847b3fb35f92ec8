//! Account rows kept in memory for the lookups that run on every request (`getRecord`,
//! `createRecord`, `describeRepo`, token checks).
//!
//! Invariant: a cached row is served only while `account.sqlite` is unchanged since it was
//! read. Each lookup reads `PRAGMA data_version` on a read-only connection of the cache's
//! own, which changes whenever any other connection (this process's writer, another process,
//! an operator's `sqlite3`) commits; a change drops every entry. A row is kept only if the
//! version read before its query is still the cache's, and a commit that raced the query is
//! caught by the next lookup's check. The check is one statement on an idle connection, a few
//! times cheaper than the account query with its join.

use crate::store::account::Account;
use crate::store::sqlite;
use crate::syntax::AtIdentifier;
use rusqlite::Connection;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Entries kept before the cache starts over (an `Account` is a few hundred bytes).
const MAX_ENTRIES: usize = 16_384;

pub struct AccountCache {
    path: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    /// Opened on first use (the database may not exist yet when the cache is made).
    conn: Option<Connection>,
    /// The `data_version` the entries were read under.
    version: Option<i64>,
    by_did: HashMap<String, Account>,
    /// Normalized handle → DID.
    by_handle: HashMap<String, String>,
}

/// What [`AccountCache::get`] found.
pub enum Lookup {
    Hit(Account),
    /// Not cached: query the database, then [`AccountCache::insert`] with this version (`None`
    /// when the version could not be read, and the row is not to be kept).
    Miss(Option<i64>),
}

impl AccountCache {
    pub fn new(path: PathBuf) -> Self {
        AccountCache {
            path,
            inner: Mutex::new(Inner {
                conn: None,
                version: None,
                by_did: HashMap::new(),
                by_handle: HashMap::new(),
            }),
        }
    }

    /// The cached account `ident` names, if the database is unchanged since it was read.
    pub fn get(&self, ident: &AtIdentifier) -> Lookup {
        let Ok(mut inner) = self.inner.lock() else {
            return Lookup::Miss(None);
        };
        let version = inner.data_version(&self.path);
        if version.is_none() || version != inner.version {
            inner.by_did.clear();
            inner.by_handle.clear();
            inner.version = version;
            return Lookup::Miss(version);
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
            None => Lookup::Miss(version),
        }
    }

    /// Keeps `account`, queried after a [`Lookup::Miss`] gave `version`.
    pub fn insert(&self, version: Option<i64>, account: &Account) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if version.is_none() || inner.version != version {
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

    fn miss_version(lookup: Lookup) -> Option<i64> {
        match lookup {
            Lookup::Miss(v) => v,
            Lookup::Hit(a) => panic!("unexpected hit: {}", a.did),
        }
    }

    fn is_hit(lookup: Lookup) -> bool {
        matches!(lookup, Lookup::Hit(_))
    }

    /// A database with the account schema, and a writer on it.
    fn setup() -> (tempfile::TempDir, AccountCache, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("account.sqlite");
        drop(AccountStore::open(&path).unwrap());
        let writer = Connection::open(&path).unwrap();
        (dir, AccountCache::new(path), writer)
    }

    #[test]
    fn finds_by_did_and_by_handle_in_any_case() {
        let (_dir, cache, _writer) = setup();
        let version = miss_version(cache.get(&ident("did:plc:aaaa")));
        assert!(version.is_some());
        cache.insert(version, &account("did:plc:aaaa", "alice.test"));
        assert!(is_hit(cache.get(&ident("did:plc:aaaa"))));
        assert!(is_hit(cache.get(&ident("Alice.TEST"))));
        assert!(!is_hit(cache.get(&ident("bob.test"))));
    }

    #[test]
    fn any_commit_to_the_database_drops_every_entry() {
        let (_dir, cache, writer) = setup();
        let version = miss_version(cache.get(&ident("did:plc:aaaa")));
        cache.insert(version, &account("did:plc:aaaa", "alice.test"));
        assert!(is_hit(cache.get(&ident("did:plc:aaaa"))));
        // Another connection, as an operator's sqlite3 would.
        writer
            .execute_batch("CREATE TABLE unrelated (x); INSERT INTO unrelated VALUES (1);")
            .unwrap();
        assert!(!is_hit(cache.get(&ident("did:plc:aaaa"))));
        assert!(!is_hit(cache.get(&ident("alice.test"))));
    }

    #[test]
    fn a_row_read_before_a_commit_is_not_served_after_it() {
        let (_dir, cache, writer) = setup();
        let before = miss_version(cache.get(&ident("did:plc:aaaa")));
        // The account query happens here; a commit lands before the insert.
        writer.execute_batch("CREATE TABLE unrelated (x);").unwrap();
        cache.insert(before, &account("did:plc:aaaa", "alice.test"));
        assert!(!is_hit(cache.get(&ident("did:plc:aaaa"))));
    }
}
