//! Private account preferences in the actor store's `account_pref` table: one row per
//! preference object, `name` its `$type`, `value_json` the object as JSON text.
//!
//! Invariants:
//! - Preferences belong to a namespace by name: `app.bsky` holds `app.bsky` and every name
//!   starting `app.bsky.` (never `app.bskyx...`).
//! - A put replaces the namespace's preferences in one transaction: readers see the old set or
//!   the new one, never a mix. Rows the caller may not touch (the `keep` predicate) survive.
//! - Reads return rows in insertion order (by `id`), so a put's order is what a get returns.
//!
//! Who may read or write which preference is the caller's policy (`pds::preferences`).

use super::StoreError;
use super::actor::ActorStore;
use rusqlite::params;

/// Whether preference `name` lies in `namespace`.
pub fn in_namespace(namespace: &str, name: &str) -> bool {
    name == namespace
        || name
            .strip_prefix(namespace)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// One stored preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPref {
    /// The preference's `$type`.
    pub name: String,
    /// The whole preference object, as JSON text.
    pub value_json: String,
}

impl ActorStore {
    /// The preferences in `namespace`, oldest first.
    pub fn preferences(&self, namespace: &str) -> Result<Vec<StoredPref>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, value_json FROM account_pref ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok(StoredPref {
                name: r.get(0)?,
                value_json: r.get(1)?,
            })
        })?;
        let mut out = Vec::new();
        for row in rows {
            let pref = row?;
            if in_namespace(namespace, &pref.name) {
                out.push(pref);
            }
        }
        Ok(out)
    }

    /// Replaces the preferences in `namespace` with `prefs` (in order), keeping existing rows
    /// for which `keep(name)` is true. Every new name must lie in `namespace`.
    pub fn put_preferences(
        &mut self,
        namespace: &str,
        prefs: &[StoredPref],
        keep: impl Fn(&str) -> bool,
    ) -> Result<(), StoreError> {
        if let Some(p) = prefs.iter().find(|p| !in_namespace(namespace, &p.name)) {
            return Err(StoreError::Corrupt(format!(
                "preference {:?} is not in the {namespace} namespace",
                p.name
            )));
        }
        let tx = self.conn.transaction()?;
        let doomed: Vec<i64> = {
            let mut stmt = tx.prepare_cached("SELECT id, name FROM account_pref")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
            let mut ids = Vec::new();
            for row in rows {
                let (id, name) = row?;
                if in_namespace(namespace, &name) && !keep(&name) {
                    ids.push(id);
                }
            }
            ids
        };
        for id in doomed {
            tx.execute("DELETE FROM account_pref WHERE id = ?1", [id])?;
        }
        for p in prefs {
            tx.execute(
                "INSERT INTO account_pref (name, value_json) VALUES (?1, ?2)",
                params![p.name, p.value_json],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pref(name: &str, n: u32) -> StoredPref {
        StoredPref {
            name: name.into(),
            value_json: format!(r#"{{"$type":"{name}","n":{n}}}"#),
        }
    }

    #[test]
    fn namespace_rule() {
        assert!(in_namespace("app.bsky", "app.bsky"));
        assert!(in_namespace(
            "app.bsky",
            "app.bsky.actor.defs#adultContentPref"
        ));
        assert!(!in_namespace("app.bsky", "app.bskyx.pref"));
        assert!(!in_namespace("app.bsky", "com.example.pref"));
    }

    #[test]
    fn put_replaces_the_namespace_only() {
        let mut store = ActorStore::open_in_memory("did:plc:prefs").unwrap();
        store
            .put_preferences("com.example", &[pref("com.example.a", 1)], |_| false)
            .unwrap();
        store
            .put_preferences(
                "app.bsky",
                &[pref("app.bsky.x", 1), pref("app.bsky.y", 2)],
                |_| false,
            )
            .unwrap();
        store
            .put_preferences("app.bsky", &[pref("app.bsky.z", 3)], |n| n == "app.bsky.y")
            .unwrap();
        let names: Vec<String> = store
            .preferences("app.bsky")
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["app.bsky.y", "app.bsky.z"]);
        assert_eq!(store.preferences("com.example").unwrap().len(), 1);
        assert!(
            store
                .put_preferences("app.bsky", &[pref("com.example.b", 1)], |_| false)
                .is_err()
        );
        assert_eq!(store.preferences("app.bsky").unwrap().len(), 2);
    }
}
