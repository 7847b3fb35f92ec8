//! `app.bsky.actor.getPreferences` / `putPreferences`, stored in the account's actor store.
//!
//! Invariants (the reference's policy):
//! - Only the `app.bsky` namespace is served; a put replaces all of it at once.
//! - `personalDetailsPref` (birth date) is private to full-access sessions: others neither see
//!   it nor may write it, and their puts leave a stored one untouched.
//! - `declaredAgePref` is derived, never stored: a get adds it when a birth date is known, a
//!   put drops it silently.

use super::Pds;
use super::actors::store_error;
use crate::store::actor_prefs::StoredPref;
use crate::syntax::Did;
use crate::xrpc::XrpcError;
use chrono::{Datelike, NaiveDate, Utc};
use serde_json::{Value, json};

/// The namespace these methods manage.
pub const NAMESPACE: &str = "app.bsky";
const PERSONAL_DETAILS: &str = "app.bsky.actor.defs#personalDetailsPref";
const DECLARED_AGE: &str = "app.bsky.actor.defs#declaredAgePref";

/// Whether a session of this kind may see and set preference `name`.
fn allowed(name: &str, full_access: bool) -> bool {
    full_access || name != PERSONAL_DETAILS
}

impl Pds {
    /// The account's `app.bsky` preferences, in the order they were put.
    pub async fn get_preferences(
        &self,
        did: &Did,
        full_access: bool,
    ) -> Result<Vec<Value>, XrpcError> {
        let stored = self
            .actors
            .run(did, |st| {
                st.store.preferences(NAMESPACE).map_err(store_error)
            })
            .await?;
        let mut birth_date = None;
        let mut out = Vec::with_capacity(stored.len() + 1);
        for pref in stored {
            let value: Value = serde_json::from_str(&pref.value_json)
                .map_err(|e| XrpcError::internal(format!("stored preference: {e}")))?;
            if pref.name == PERSONAL_DETAILS {
                birth_date = value
                    .get("birthDate")
                    .and_then(Value::as_str)
                    .and_then(parse_birth_date);
            }
            if allowed(&pref.name, full_access) {
                out.push(value);
            }
        }
        if let Some(born) = birth_date {
            let today = Utc::now().date_naive();
            out.push(json!({
                "$type": DECLARED_AGE,
                "isOverAge13": is_over(born, today, 13),
                "isOverAge16": is_over(born, today, 16),
                "isOverAge18": is_over(born, today, 18),
            }));
        }
        Ok(out)
    }

    /// Replaces the account's `app.bsky` preferences with `prefs`.
    pub async fn put_preferences(
        &self,
        did: &Did,
        prefs: Vec<Value>,
        full_access: bool,
    ) -> Result<(), XrpcError> {
        let account = self.account(did).await?;
        if account.takedown_ref.is_some() {
            return Err(super::account_taken_down());
        }
        let mut rows = Vec::with_capacity(prefs.len());
        for pref in prefs {
            let Some(name) = pref.get("$type").and_then(Value::as_str) else {
                return Err(XrpcError::invalid_request("Preference is missing a $type"));
            };
            let name = name.to_string();
            if name == DECLARED_AGE {
                continue;
            }
            rows.push(StoredPref {
                value_json: pref.to_string(),
                name,
            });
        }
        if rows
            .iter()
            .any(|p| !crate::store::actor_prefs::in_namespace(NAMESPACE, &p.name))
        {
            return Err(XrpcError::invalid_request(format!(
                "Some preferences are not in the {NAMESPACE} namespace"
            )));
        }
        if let Some(p) = rows.iter().find(|p| !allowed(&p.name, full_access)) {
            return Err(XrpcError::invalid_request(format!(
                "Do not have authorization to set preferences: {}",
                p.name
            )));
        }
        self.actors
            .run(did, move |st| {
                st.store
                    .put_preferences(NAMESPACE, &rows, |name| !allowed(name, full_access))
                    .map_err(store_error)
            })
            .await
    }
}

/// A `birthDate` (a datetime; its date part is what counts).
fn parse_birth_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()
}

/// Whether someone born on `born` has had their `years`th birthday by `today`.
fn is_over(born: NaiveDate, today: NaiveDate, years: i32) -> bool {
    let mut age = today.year() - born.year();
    if (today.month(), today.day()) < (born.month(), born.day()) {
        age -= 1;
    }
    age >= years
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        let d = |s| parse_birth_date(s).unwrap();
        let today = d("2026-06-15");
        assert!(is_over(d("2008-06-15T00:00:00.000Z"), today, 18));
        assert!(!is_over(d("2008-06-16T00:00:00.000Z"), today, 18));
        assert!(is_over(d("2010-01-01"), today, 16));
        assert!(!is_over(d("2014-01-01"), today, 13));
        assert_eq!(parse_birth_date("soon"), None);
    }
}
