//! The account database (`<data dir>/account.sqlite`): accounts, their handles and emails,
//! passwords and app passwords, refresh tokens, invite codes and email tokens. Schema in
//! `migrations/account/`; same tables and meanings as the reference PDS's account DB.
//!
//! Synchronous (rusqlite); the server calls it from `spawn_blocking`. Every method that writes
//! runs in one `BEGIN IMMEDIATE` transaction, so writers on different connections serialise and
//! each check-then-write below is race-free across connections and processes.
//!
//! # Invariants
//! - Handle uniqueness is case-insensitive: handles are stored lower-cased under a UNIQUE
//!   constraint. Emails likewise.
//! - Account creation is atomic: the invite code's availability is checked and its use recorded
//!   in the same transaction as the account rows, so a code is never used more times than it
//!   allows, even by concurrent sign-ups on different connections.
//! - Nothing is stored for an unknown DID, and deleting an account removes every row that
//!   belongs to it (foreign keys cascade from `actor`), except the invite history.
//! - Revoking an app password revokes the refresh tokens issued through it (foreign key), and a
//!   takedown or password change revokes all of the account's refresh tokens.
//! - A consumed email token cannot be used again, and an expired one is never accepted.
//!
//! # Refresh-token rotation
//! As the reference's `rotateRefreshToken` ([`AccountStore::rotate_refresh_token`]):
//! 1. An unknown (revoked) token yields nothing: the caller answers "Token has been revoked".
//! 2. The account's expired tokens are deleted.
//! 3. The old token's expiry is shortened to `min(its expiry, now + 2 h)` ([`REFRESH_GRACE`])
//!    and its successor's id is recorded in `next_id`. If that leaves it expired, nothing is
//!    issued.
//! 4. Presenting the old token again within the grace period yields the **same** successor id
//!    (idempotent for racing clients); the grace period does not restart.
//! 5. The successor keeps the old token's app-password name (and so its scope).
//!
//! One deliberate difference: revoking a token also revokes the tokens it was rotated from, so
//! a logged-out session cannot be revived by replaying an older token inside its grace period.

use super::StoreError;
use super::sqlite::{self, ACCOUNT_MIGRATIONS, Durability};
use crate::account::password::{self, PasswordError};
use crate::account::{self as acct, EMAIL_TOKEN_TTL, REFRESH_GRACE};
use crate::data::Cid;
use crate::syntax::{Datetime, Did, Handle};
use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Row, Transaction, TransactionBehavior, params,
};
use std::path::Path;
use std::str::FromStr;

/// How long an account created deactivated (bring-your-own DID, i.e. a migration) is marked to
/// be kept before `delete_after` (informational, as in the reference).
pub const DEACTIVATED_SIGNUP_DELETE_AFTER: TimeDelta = TimeDelta::days(3);

/// Attempts at drawing a random invite code or email token that is not already in use.
const UNIQUE_DRAW_ATTEMPTS: usize = 5;

/// Why an account-database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("handle is already taken")]
    HandleTaken,
    #[error("email address is already in use")]
    EmailTaken,
    #[error("an account with this DID already exists")]
    AccountExists,
    #[error("invite code is invalid, disabled or used up")]
    InvalidInviteCode,
    #[error("an app password with this name already exists")]
    AppPasswordNameTaken,
    #[error("email token is invalid")]
    InvalidEmailToken,
    #[error("email token has expired")]
    ExpiredEmailToken,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for AccountError {
    fn from(e: rusqlite::Error) -> Self {
        AccountError::Store(StoreError::Sqlite(e))
    }
}

/// Maps a constraint violation to the typed error it means; anything else stays a store error.
/// The pre-checks inside each transaction normally catch these first; this is the backstop.
fn constraint_error(e: rusqlite::Error) -> AccountError {
    let message = match &e {
        rusqlite::Error::SqliteFailure(f, msg) if f.code == ErrorCode::ConstraintViolation => {
            msg.as_deref().unwrap_or("")
        }
        _ => return e.into(),
    };
    if message.contains("actor.handle") {
        AccountError::HandleTaken
    } else if message.contains("account.email") {
        AccountError::EmailTaken
    } else if message.contains("actor.did") || message.contains("account.did") {
        AccountError::AccountExists
    } else if message.contains("app_password.") {
        AccountError::AppPasswordNameTaken
    } else if message.contains("FOREIGN KEY") {
        AccountError::NotFound("account")
    } else {
        e.into()
    }
}

/// Where an account stands, as `com.atproto.sync.getRepoStatus` and sessions report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    Active,
    Deactivated,
    Takendown,
}

/// An account: the `actor` row and, when it signs in here, its `account` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub did: Did,
    /// `None` when the account has no handle (shown as `handle.invalid`).
    pub handle: Option<Handle>,
    pub created_at: DateTime<Utc>,
    pub takedown_ref: Option<String>,
    pub deactivated_at: Option<DateTime<Utc>>,
    pub delete_after: Option<DateTime<Utc>>,
    /// Lower-cased. `None` for an actor without sign-in details.
    pub email: Option<String>,
    pub email_confirmed_at: Option<DateTime<Utc>>,
    pub invites_disabled: bool,
}

impl Account {
    /// Takedown wins over deactivation, as in the reference.
    pub fn status(&self) -> AccountStatus {
        if self.takedown_ref.is_some() {
            AccountStatus::Takendown
        } else if self.deactivated_at.is_some() {
            AccountStatus::Deactivated
        } else {
            AccountStatus::Active
        }
    }

    pub fn is_active(&self) -> bool {
        self.status() == AccountStatus::Active
    }
}

/// A refresh-token row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// The JWT id (`jti`).
    pub id: String,
    pub did: Did,
    pub expires_at: DateTime<Utc>,
    /// Set once rotated: the successor's id.
    pub next_id: Option<String>,
    /// The app password that issued it, if any (it carries that password's scope).
    pub app_password_name: Option<String>,
}

/// The outcome of a successful rotation: mint a refresh JWT with `jti = next_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub did: Did,
    pub next_id: String,
    pub app_password_name: Option<String>,
}

/// An app password as listed (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPassword {
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub privileged: bool,
}

/// A newly created app password: the only time its secret is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedAppPassword {
    pub name: String,
    /// `xxxx-xxxx-xxxx-xxxx`.
    pub password: String,
    pub created_at: DateTime<Utc>,
    pub privileged: bool,
}

/// Which secret a login matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginMethod {
    /// The account password: full access.
    Password,
    /// An app password: `com.atproto.appPass`, or `appPassPrivileged` when privileged.
    AppPassword { name: String, privileged: bool },
}

/// The stored hashes a login is checked against. Reading them is cheap; checking them runs
/// scrypt, so callers can do that outside any lock ([`LoginSecrets::check`]).
#[derive(Debug, Clone)]
pub struct LoginSecrets {
    did: Did,
    password_scrypt: Option<String>,
    /// (name, privileged, hash) of each app password.
    app_passwords: Vec<(String, bool, String)>,
}

impl LoginSecrets {
    /// Which secret `password` is: the account password, an app password, or neither.
    pub fn check(&self, password: &str) -> Result<Option<LoginMethod>, AccountError> {
        if self
            .password_scrypt
            .as_deref()
            .is_some_and(|stored| password::verify_password(password, stored))
        {
            return Ok(Some(LoginMethod::Password));
        }
        Ok(self
            .check_app_password(password)?
            .map(|(name, privileged)| LoginMethod::AppPassword { name, privileged }))
    }

    /// Which app password `password` is, as `(name, privileged)`. The per-DID salt means one
    /// scrypt run, then a constant-time comparison with each stored hash.
    pub fn check_app_password(
        &self,
        password: &str,
    ) -> Result<Option<(String, bool)>, AccountError> {
        if self.app_passwords.is_empty() {
            return Ok(None);
        }
        let hash = match password::hash_app_password(self.did.as_str(), password) {
            Ok(hash) => hash,
            // Too long to be any app password.
            Err(PasswordError::TooLong { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut found = None;
        // Compare against every row, not stopping at a match, so timing does not depend on
        // which app password matched.
        for (name, privileged, stored) in &self.app_passwords {
            if password::constant_time_eq(hash.as_bytes(), stored.as_bytes()) && found.is_none() {
                found = Some((name.clone(), *privileged));
            }
        }
        Ok(found)
    }
}

/// The head commit mirrored from an actor store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRootRow {
    pub cid: Cid,
    pub rev: String,
    pub indexed_at: DateTime<Utc>,
}

/// One entry of `listRepos`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRepo {
    pub account: Account,
    pub root: RepoRootRow,
}

/// An invite code with its recorded uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteCode {
    pub code: String,
    pub available_uses: u32,
    pub disabled: bool,
    /// A DID or `"admin"`.
    pub for_account: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub uses: Vec<InviteCodeUse>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteCodeUse {
    pub used_by: String,
    pub used_at: DateTime<Utc>,
}

/// What to mint in [`AccountStore::create_invite_codes`].
#[derive(Debug, Clone)]
pub struct NewInviteCodes<'a> {
    /// The service hostname, the codes' prefix.
    pub hostname: &'a str,
    /// A DID, or [`acct::ADMIN_INVITE_ACCOUNT`].
    pub for_account: &'a str,
    pub created_by: &'a str,
    pub count: usize,
    pub available_uses: u32,
    /// Routine codes of an account whose invites are disabled are minted disabled.
    pub disabled: bool,
}

/// What email tokens are for; each account holds at most one token per purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmailTokenPurpose {
    ConfirmEmail,
    UpdateEmail,
    ResetPassword,
    DeleteAccount,
    PlcOperation,
}

impl EmailTokenPurpose {
    /// The stored (and reference) name.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailTokenPurpose::ConfirmEmail => "confirm_email",
            EmailTokenPurpose::UpdateEmail => "update_email",
            EmailTokenPurpose::ResetPassword => "reset_password",
            EmailTokenPurpose::DeleteAccount => "delete_account",
            EmailTokenPurpose::PlcOperation => "plc_operation",
        }
    }
}

/// A new refresh token to store.
#[derive(Debug, Clone)]
pub struct NewRefreshToken<'a> {
    pub id: &'a str,
    pub expires_at: DateTime<Utc>,
    pub app_password_name: Option<&'a str>,
}

/// Everything [`AccountStore::create_account`] writes in its one transaction.
#[derive(Debug, Clone)]
pub struct NewAccount<'a> {
    pub did: &'a Did,
    pub handle: &'a Handle,
    /// Normalised (trimmed, lower-cased) before storing.
    pub email: &'a str,
    /// From [`password::hash_password`].
    pub password_scrypt: &'a str,
    /// Checked and consumed atomically with the account rows.
    pub invite_code: Option<&'a str>,
    /// Bring-your-own-DID sign-ups (migrations) start deactivated.
    pub deactivated: bool,
    /// The session issued at sign-up, stored with the account.
    pub refresh_token: Option<NewRefreshToken<'a>>,
    /// The new repo's head, mirrored into `repo_root`.
    pub repo_root: Option<(&'a Cid, &'a str)>,
}

/// The account database.
pub struct AccountStore {
    conn: Connection,
    durability: Durability,
}

impl AccountStore {
    /// Opens (creating and migrating if needed) the database at `path`, fully durable.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, Durability::Full)
    }

    pub fn open_with(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        Ok(AccountStore {
            conn: sqlite::open(path, ACCOUNT_MIGRATIONS, durability)?,
            durability,
        })
    }

    /// A read-only handle on a database [`AccountStore::open`] has set up: for the reads on
    /// every request, which then never queue behind a write.
    pub fn open_reader(path: &Path) -> Result<Self, StoreError> {
        Ok(AccountStore {
            conn: sqlite::open_reader(path)?,
            durability: Durability::Off,
        })
    }

    pub fn open_in_memory() -> Result<Self, StoreError> {
        Ok(AccountStore {
            conn: sqlite::open_in_memory(ACCOUNT_MIGRATIONS)?,
            durability: Durability::Off,
        })
    }

    fn write(&mut self) -> Result<Transaction<'_>, AccountError> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    // ----- accounts -------------------------------------------------------------------------

    /// Creates an account: `actor` and `account` rows, the invite use, the sign-up refresh token
    /// and the repo-root mirror, all or nothing.
    pub fn create_account(&mut self, new: &NewAccount<'_>) -> Result<Account, AccountError> {
        let now = Utc::now();
        let handle = new.handle.normalize();
        let email = acct::normalize_email(new.email);
        let tx = self.write()?;
        if exists(&tx, "SELECT 1 FROM actor WHERE did = ?1", new.did.as_str())? {
            return Err(AccountError::AccountExists);
        }
        if exists(
            &tx,
            "SELECT 1 FROM actor WHERE handle = ?1",
            handle.as_str(),
        )? {
            return Err(AccountError::HandleTaken);
        }
        if exists(&tx, "SELECT 1 FROM account WHERE email = ?1", &email)? {
            return Err(AccountError::EmailTaken);
        }
        if let Some(code) = new.invite_code {
            ensure_invite_available(&tx, code)?;
        }
        let (deactivated_at, delete_after) = if new.deactivated {
            (
                Some(time_text(now)),
                Some(time_text(now + DEACTIVATED_SIGNUP_DELETE_AFTER)),
            )
        } else {
            (None, None)
        };
        tx.execute(
            "INSERT INTO actor (did, handle, created_at, deactivated_at, delete_after)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                new.did.as_str(),
                handle.as_str(),
                time_text(now),
                deactivated_at,
                delete_after
            ],
        )
        .map_err(constraint_error)?;
        tx.execute(
            "INSERT INTO account (did, email, password_scrypt) VALUES (?1, ?2, ?3)",
            params![new.did.as_str(), email, new.password_scrypt],
        )
        .map_err(constraint_error)?;
        if let Some(code) = new.invite_code {
            tx.execute(
                "INSERT INTO invite_code_use (code, used_by, used_at) VALUES (?1, ?2, ?3)",
                params![code, new.did.as_str(), time_text(now)],
            )?;
        }
        if let Some(token) = &new.refresh_token {
            insert_refresh_token(&tx, new.did, token)?;
        }
        if let Some((cid, rev)) = new.repo_root {
            upsert_root(&tx, new.did, cid, rev, now)?;
        }
        let account = load_account(&tx, "a.did = ?1", new.did.as_str())?
            .ok_or(AccountError::NotFound("account"))?;
        tx.commit()?;
        Ok(account)
    }

    /// The account with this DID, in any state (the caller decides what deactivated or
    /// taken-down accounts may do).
    pub fn get_account(&self, did: &Did) -> Result<Option<Account>, AccountError> {
        load_account(&self.conn, "a.did = ?1", did.as_str())
    }

    /// The account with this handle, compared case-insensitively.
    pub fn get_account_by_handle(&self, handle: &Handle) -> Result<Option<Account>, AccountError> {
        load_account(&self.conn, "a.handle = ?1", handle.normalize().as_str())
    }

    /// The account with this email, compared case-insensitively.
    pub fn get_account_by_email(&self, email: &str) -> Result<Option<Account>, AccountError> {
        load_account(&self.conn, "c.email = ?1", &acct::normalize_email(email))
    }

    /// The account a login identifier names, as `createSession` reads it: an email if it
    /// contains `@`, else a DID if it starts with `did:`, else a handle. Unparseable → `None`.
    pub fn get_account_by_identifier(
        &self,
        identifier: &str,
    ) -> Result<Option<Account>, AccountError> {
        let identifier = identifier.trim().to_lowercase();
        if identifier.contains('@') {
            self.get_account_by_email(&identifier)
        } else if identifier.starts_with("did:") {
            match Did::from_str(&identifier) {
                Ok(did) => self.get_account(&did),
                Err(_) => Ok(None),
            }
        } else {
            match Handle::from_str(&identifier) {
                Ok(handle) => self.get_account_by_handle(&handle),
                Err(_) => Ok(None),
            }
        }
    }

    /// Checks a login password: the account password first, then the app passwords, as the
    /// reference does. `None` when neither matches (or the account has no password here).
    pub fn check_login(
        &self,
        did: &Did,
        password: &str,
    ) -> Result<Option<LoginMethod>, AccountError> {
        self.login_secrets(did)?.check(password)
    }

    /// The account's stored password hashes, for [`LoginSecrets::check`].
    pub fn login_secrets(&self, did: &Did) -> Result<LoginSecrets, AccountError> {
        let password_scrypt: Option<String> = self
            .conn
            .query_row(
                "SELECT password_scrypt FROM account WHERE did = ?1",
                [did.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        let mut stmt = self
            .conn
            .prepare("SELECT name, privileged, password_scrypt FROM app_password WHERE did = ?1")?;
        let app_passwords = stmt
            .query_map([did.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        Ok(LoginSecrets {
            did: did.clone(),
            password_scrypt,
            app_passwords,
        })
    }

    /// Whether `password` is the account's password.
    pub fn verify_account_password(&self, did: &Did, password: &str) -> Result<bool, AccountError> {
        let stored: Option<String> = self
            .conn
            .query_row(
                "SELECT password_scrypt FROM account WHERE did = ?1",
                [did.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(stored.is_some_and(|stored| password::verify_password(password, &stored)))
    }

    /// Which app password `password` is, as `(name, privileged)`.
    pub fn verify_app_password(
        &self,
        did: &Did,
        password: &str,
    ) -> Result<Option<(String, bool)>, AccountError> {
        self.login_secrets(did)?.check_app_password(password)
    }

    /// Replaces the account password (hash from [`password::hash_password`]) and revokes all of
    /// the account's refresh tokens: a password change ends every session.
    pub fn update_password(
        &mut self,
        did: &Did,
        password_scrypt: &str,
    ) -> Result<(), AccountError> {
        let tx = self.write()?;
        let n = tx.execute(
            "UPDATE account SET password_scrypt = ?2 WHERE did = ?1",
            params![did.as_str(), password_scrypt],
        )?;
        found(n)?;
        tx.execute("DELETE FROM refresh_token WHERE did = ?1", [did.as_str()])?;
        tx.commit()?;
        Ok(())
    }

    /// Sets the handle. `HandleTaken` if another account holds it in any case; setting an
    /// account's own handle again succeeds.
    pub fn update_handle(&mut self, did: &Did, handle: &Handle) -> Result<(), AccountError> {
        let handle = handle.normalize();
        let tx = self.write()?;
        let holder: Option<String> = tx
            .query_row(
                "SELECT did FROM actor WHERE handle = ?1",
                [handle.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        match holder {
            Some(holder) if holder == did.as_str() => return Ok(()),
            Some(_) => return Err(AccountError::HandleTaken),
            None => {}
        }
        let n = tx
            .execute(
                "UPDATE actor SET handle = ?2 WHERE did = ?1",
                params![did.as_str(), handle.as_str()],
            )
            .map_err(constraint_error)?;
        found(n)?;
        tx.commit()?;
        Ok(())
    }

    /// Sets the email (normalised). The new address is unconfirmed, and every outstanding email
    /// token of the account is dropped (they were sent to the old address).
    pub fn update_email(&mut self, did: &Did, email: &str) -> Result<(), AccountError> {
        let email = acct::normalize_email(email);
        let tx = self.write()?;
        let holder: Option<String> = tx
            .query_row("SELECT did FROM account WHERE email = ?1", [&email], |r| {
                r.get(0)
            })
            .optional()?;
        if holder.is_some_and(|h| h != did.as_str()) {
            return Err(AccountError::EmailTaken);
        }
        let n = tx
            .execute(
                "UPDATE account SET email = ?2, email_confirmed_at = NULL WHERE did = ?1",
                params![did.as_str(), email],
            )
            .map_err(constraint_error)?;
        found(n)?;
        tx.execute("DELETE FROM email_token WHERE did = ?1", [did.as_str()])?;
        tx.commit()?;
        Ok(())
    }

    /// Marks the email confirmed now.
    pub fn confirm_email(&mut self, did: &Did) -> Result<(), AccountError> {
        let n = self.conn.execute(
            "UPDATE account SET email_confirmed_at = ?2 WHERE did = ?1",
            params![did.as_str(), time_text(Utc::now())],
        )?;
        found(n)
    }

    /// Deactivates the account now; `delete_after` is stored but never acted upon.
    pub fn deactivate(
        &mut self,
        did: &Did,
        delete_after: Option<DateTime<Utc>>,
    ) -> Result<(), AccountError> {
        let n = self.conn.execute(
            "UPDATE actor SET deactivated_at = ?2, delete_after = ?3 WHERE did = ?1",
            params![
                did.as_str(),
                time_text(Utc::now()),
                delete_after.map(time_text)
            ],
        )?;
        found(n)
    }

    /// Clears deactivation. A taken-down account stays taken down (that is a separate field).
    pub fn activate(&mut self, did: &Did) -> Result<(), AccountError> {
        let n = self.conn.execute(
            "UPDATE actor SET deactivated_at = NULL, delete_after = NULL WHERE did = ?1",
            [did.as_str()],
        )?;
        found(n)
    }

    /// Sets or clears the takedown reference. Taking an account down revokes all of its
    /// refresh tokens in the same transaction.
    pub fn set_takedown(
        &mut self,
        did: &Did,
        takedown_ref: Option<&str>,
    ) -> Result<(), AccountError> {
        let tx = self.write()?;
        let n = tx.execute(
            "UPDATE actor SET takedown_ref = ?2 WHERE did = ?1",
            params![did.as_str(), takedown_ref],
        )?;
        found(n)?;
        if takedown_ref.is_some() {
            tx.execute("DELETE FROM refresh_token WHERE did = ?1", [did.as_str()])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Enables or disables the account's invite codes (admin `disableAccountInvites`). Its
    /// existing codes are disabled or re-enabled with it.
    pub fn set_invites_disabled(&mut self, did: &Did, disabled: bool) -> Result<(), AccountError> {
        let tx = self.write()?;
        let n = tx.execute(
            "UPDATE account SET invites_disabled = ?2 WHERE did = ?1",
            params![did.as_str(), disabled],
        )?;
        found(n)?;
        tx.execute(
            "UPDATE invite_code SET disabled = ?2 WHERE for_account = ?1",
            params![did.as_str(), disabled],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Deletes the account and everything it owns (repo root, sessions, app passwords, email
    /// tokens). Its invite codes are disabled rather than deleted, keeping the invite history.
    /// Returns whether the account existed.
    pub fn delete_account(&mut self, did: &Did) -> Result<bool, AccountError> {
        let tx = self.write()?;
        let n = tx.execute("DELETE FROM actor WHERE did = ?1", [did.as_str()])?;
        tx.execute(
            "UPDATE invite_code SET disabled = 1 WHERE for_account = ?1",
            [did.as_str()],
        )?;
        tx.commit()?;
        Ok(n > 0)
    }

    // ----- repo roots -----------------------------------------------------------------------

    /// Records the account's new head commit (mirror of its actor store).
    ///
    /// Written without an fsync of its own: the actor store is the source of truth, every
    /// commit rewrites the mirror, and the next durable account write syncs it along. Paying a
    /// full fsync here would double the cost of every record write.
    pub fn upsert_repo_root(
        &mut self,
        did: &Did,
        cid: &Cid,
        rev: &str,
    ) -> Result<(), AccountError> {
        self.upsert_repo_roots([(did, cid, rev)])
    }

    /// [`AccountStore::upsert_repo_root`] for many repos in one transaction (in order, so a
    /// repo named twice ends at its last head). Heads of accounts that no longer exist are
    /// skipped.
    pub fn upsert_repo_roots<'a>(
        &mut self,
        roots: impl IntoIterator<Item = (&'a Did, &'a Cid, &'a str)>,
    ) -> Result<(), AccountError> {
        let relax = self.durability == Durability::Full;
        if relax {
            self.conn.execute_batch("PRAGMA synchronous = NORMAL")?;
        }
        let now = Utc::now();
        let written = (|| {
            let tx = self.conn.transaction()?;
            for (did, cid, rev) in roots {
                upsert_root(&tx, did, cid, rev, now)?;
            }
            tx.commit()?;
            Ok(())
        })();
        if relax {
            self.conn.execute_batch("PRAGMA synchronous = FULL")?;
        }
        written
    }

    pub fn get_repo_root(&self, did: &Did) -> Result<Option<RepoRootRow>, AccountError> {
        let row = self
            .conn
            .query_row(
                "SELECT cid, rev, indexed_at FROM repo_root WHERE did = ?1",
                [did.as_str()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(cid, rev, at)| root_row(&cid, rev, &at))
            .transpose()
    }

    /// Accounts with a repo, in `(created_at, did)` order, strictly after `after` (the previous
    /// page's last entry), for `listRepos`.
    pub fn list_repos(
        &self,
        after: Option<(DateTime<Utc>, &Did)>,
        limit: usize,
    ) -> Result<Vec<ListedRepo>, AccountError> {
        let (after_time, after_did) = match after {
            Some((t, d)) => (time_text(t), d.as_str().to_owned()),
            // Sorts before every stored timestamp.
            None => (String::new(), String::new()),
        };
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS}, r.cid, r.rev, r.indexed_at
             FROM actor a LEFT JOIN account c ON c.did = a.did JOIN repo_root r ON r.did = a.did
             WHERE (a.created_at, a.did) > (?1, ?2)
             ORDER BY a.created_at, a.did LIMIT ?3"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![after_time, after_did, limit], |r| {
            Ok((
                RawAccount::from_row(r)?,
                r.get::<_, String>(9)?,
                r.get::<_, String>(10)?,
                r.get::<_, String>(11)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (raw, cid, rev, at) = row?;
            out.push(ListedRepo {
                account: raw.parse()?,
                root: root_row(&cid, rev, &at)?,
            });
        }
        Ok(out)
    }

    // ----- refresh tokens -------------------------------------------------------------------

    /// Stores a refresh token for `did`. `NotFound` if the account (or the named app password)
    /// does not exist.
    pub fn create_refresh_token(
        &mut self,
        did: &Did,
        token: &NewRefreshToken<'_>,
    ) -> Result<(), AccountError> {
        insert_refresh_token(&self.conn, did, token)
    }

    pub fn get_refresh_token(&self, id: &str) -> Result<Option<RefreshToken>, AccountError> {
        get_refresh(&self.conn, id)
    }

    /// Rotates a refresh token (see the module docs for the grace semantics). `candidate_id` is
    /// a fresh id ([`acct::generate_refresh_token_id`]) used unless the token was already
    /// rotated; `next_expires_at` is the successor's expiry. `None`: revoked or expired.
    pub fn rotate_refresh_token(
        &mut self,
        id: &str,
        candidate_id: &str,
        next_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Rotation>, AccountError> {
        let tx = self.write()?;
        let Some(token) = get_refresh(&tx, id)? else {
            return Ok(None);
        };
        tx.execute(
            "DELETE FROM refresh_token WHERE did = ?1 AND expires_at <= ?2",
            params![token.did.as_str(), time_text(now)],
        )?;
        let expires_at = token.expires_at.min(now + REFRESH_GRACE);
        if expires_at <= now {
            // The clean-up above already removed it.
            tx.commit()?;
            return Ok(None);
        }
        let next_id = token
            .next_id
            .clone()
            .unwrap_or_else(|| candidate_id.to_owned());
        tx.execute(
            "UPDATE refresh_token SET expires_at = ?2, next_id = ?3 WHERE id = ?1",
            params![id, time_text(expires_at), next_id],
        )?;
        // On a repeat within the grace period the successor already exists and is kept as is.
        tx.execute(
            "INSERT INTO refresh_token (id, did, expires_at, app_password_name)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (id) DO NOTHING",
            params![
                next_id,
                token.did.as_str(),
                time_text(next_expires_at),
                token.app_password_name
            ],
        )?;
        tx.commit()?;
        Ok(Some(Rotation {
            did: token.did,
            next_id,
            app_password_name: token.app_password_name,
        }))
    }

    /// Revokes one token (`deleteSession`) together with the tokens it was rotated from, which
    /// could otherwise bring it back during their grace period. Returns whether any row went.
    pub fn revoke_refresh_token(&mut self, id: &str) -> Result<bool, AccountError> {
        let n = self.conn.execute(
            "WITH RECURSIVE chain(id) AS (
                 SELECT ?1
                 UNION SELECT t.id FROM refresh_token t JOIN chain ON t.next_id = chain.id
             )
             DELETE FROM refresh_token WHERE id IN chain",
            [id],
        )?;
        Ok(n > 0)
    }

    /// Revokes every refresh token of the account; returns how many.
    pub fn revoke_refresh_tokens(&mut self, did: &Did) -> Result<usize, AccountError> {
        Ok(self
            .conn
            .execute("DELETE FROM refresh_token WHERE did = ?1", [did.as_str()])?)
    }

    // ----- app passwords --------------------------------------------------------------------

    /// Creates an app password and returns its secret (the only time it is available).
    pub fn create_app_password(
        &mut self,
        did: &Did,
        name: &str,
        privileged: bool,
    ) -> Result<CreatedAppPassword, AccountError> {
        let secret = password::generate_app_password();
        let hash = password::hash_app_password(did.as_str(), &secret)?;
        let now = Utc::now();
        let tx = self.write()?;
        if !exists(&tx, "SELECT 1 FROM actor WHERE did = ?1", did.as_str())? {
            return Err(AccountError::NotFound("account"));
        }
        tx.execute(
            "INSERT INTO app_password (did, name, password_scrypt, created_at, privileged)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![did.as_str(), name, hash, time_text(now), privileged],
        )
        .map_err(constraint_error)?;
        tx.commit()?;
        Ok(CreatedAppPassword {
            name: name.to_owned(),
            password: secret,
            created_at: truncate_millis(now),
            privileged,
        })
    }

    /// The account's app passwords, newest first.
    pub fn list_app_passwords(&self, did: &Did) -> Result<Vec<AppPassword>, AccountError> {
        let mut stmt = self.conn.prepare(
            "SELECT name, created_at, privileged FROM app_password WHERE did = ?1
             ORDER BY created_at DESC, name",
        )?;
        let rows = stmt.query_map([did.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, bool>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (name, created_at, privileged) = row?;
            out.push(AppPassword {
                name,
                created_at: parse_time(&created_at)?,
                privileged,
            });
        }
        Ok(out)
    }

    /// Revokes an app password and (by foreign key, same statement) every refresh token issued
    /// through it. Returns whether it existed.
    pub fn revoke_app_password(&mut self, did: &Did, name: &str) -> Result<bool, AccountError> {
        let n = self.conn.execute(
            "DELETE FROM app_password WHERE did = ?1 AND name = ?2",
            params![did.as_str(), name],
        )?;
        Ok(n > 0)
    }

    // ----- invite codes ---------------------------------------------------------------------

    /// Mints `count` codes; returns them.
    pub fn create_invite_codes(
        &mut self,
        spec: &NewInviteCodes<'_>,
    ) -> Result<Vec<String>, AccountError> {
        let now = time_text(Utc::now());
        let tx = self.write()?;
        let mut codes = Vec::with_capacity(spec.count);
        for _ in 0..spec.count {
            let code = draw_unique(|| {
                let code = acct::generate_invite_code(spec.hostname);
                let n = tx.execute(
                    "INSERT INTO invite_code
                         (code, available_uses, disabled, for_account, created_by, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (code) DO NOTHING",
                    params![
                        code,
                        spec.available_uses,
                        spec.disabled,
                        spec.for_account,
                        spec.created_by,
                        now
                    ],
                )?;
                Ok((n > 0).then_some(code))
            })?;
            codes.push(code);
        }
        tx.commit()?;
        Ok(codes)
    }

    pub fn get_invite_code(&self, code: &str) -> Result<Option<InviteCode>, AccountError> {
        Ok(self
            .load_invite_codes("code = ?1", code)?
            .into_iter()
            .next())
    }

    /// The codes minted for an account (or for `"admin"`), oldest first, with their uses.
    pub fn list_invite_codes(&self, for_account: &str) -> Result<Vec<InviteCode>, AccountError> {
        self.load_invite_codes("for_account = ?1", for_account)
    }

    /// `Ok` if the code can be used now; `InvalidInviteCode` otherwise.
    pub fn check_invite_code(&self, code: &str) -> Result<(), AccountError> {
        ensure_invite_available(&self.conn, code)
    }

    /// Disables the given codes and every code of the given accounts (admin
    /// `disableInviteCodes`). Returns how many codes were disabled.
    pub fn disable_invite_codes(
        &mut self,
        codes: &[&str],
        accounts: &[&str],
    ) -> Result<usize, AccountError> {
        let tx = self.write()?;
        let mut n = 0;
        for code in codes {
            n += tx.execute(
                "UPDATE invite_code SET disabled = 1 WHERE code = ?1",
                [code],
            )?;
        }
        for account in accounts {
            n += tx.execute(
                "UPDATE invite_code SET disabled = 1 WHERE for_account = ?1",
                [account],
            )?;
        }
        tx.commit()?;
        Ok(n)
    }

    fn load_invite_codes(
        &self,
        filter: &str,
        value: &str,
    ) -> Result<Vec<InviteCode>, AccountError> {
        let sql = format!(
            "SELECT code, available_uses, disabled, for_account, created_by, created_at
             FROM invite_code WHERE {filter} ORDER BY created_at, code"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([value], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, bool>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        let mut uses_stmt = self.conn.prepare(
            "SELECT used_by, used_at FROM invite_code_use WHERE code = ?1 ORDER BY used_at, used_by",
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (code, available_uses, disabled, for_account, created_by, created_at) = row?;
            let uses = uses_stmt
                .query_map([&code], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?
                .map(|u| {
                    let (used_by, used_at) = u?;
                    Ok(InviteCodeUse {
                        used_by,
                        used_at: parse_time(&used_at)?,
                    })
                })
                .collect::<Result<Vec<_>, AccountError>>()?;
            out.push(InviteCode {
                code,
                available_uses,
                disabled,
                for_account,
                created_by,
                created_at: parse_time(&created_at)?,
                uses,
            });
        }
        Ok(out)
    }

    // ----- email tokens ---------------------------------------------------------------------

    /// Issues a token for `purpose`, replacing any earlier one of the account for that purpose.
    pub fn create_email_token(
        &mut self,
        did: &Did,
        purpose: EmailTokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<String, AccountError> {
        let tx = self.write()?;
        if !exists(&tx, "SELECT 1 FROM actor WHERE did = ?1", did.as_str())? {
            return Err(AccountError::NotFound("account"));
        }
        tx.execute(
            "DELETE FROM email_token WHERE purpose = ?1 AND did = ?2",
            params![purpose.as_str(), did.as_str()],
        )?;
        let token = draw_unique(|| {
            let token = acct::generate_email_token();
            let n = tx.execute(
                "INSERT INTO email_token (purpose, did, token, requested_at)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                params![purpose.as_str(), did.as_str(), token, time_text(now)],
            )?;
            Ok((n > 0).then_some(token))
        })?;
        tx.commit()?;
        Ok(token)
    }

    /// Checks the account's token for `purpose` and deletes it, so it works once.
    /// The input is compared case-insensitively.
    pub fn consume_email_token(
        &mut self,
        did: &Did,
        purpose: EmailTokenPurpose,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AccountError> {
        let token = acct::normalize_email_token(token);
        let tx = self.write()?;
        let requested_at: Option<String> = tx
            .query_row(
                "SELECT requested_at FROM email_token
                 WHERE purpose = ?1 AND did = ?2 AND token = ?3",
                params![purpose.as_str(), did.as_str(), token],
                |r| r.get(0),
            )
            .optional()?;
        let requested_at = requested_at.ok_or(AccountError::InvalidEmailToken)?;
        consume(&tx, purpose, &token, &requested_at, now)?;
        tx.commit()?;
        Ok(())
    }

    /// Like [`Self::consume_email_token`] but found by the token alone (password reset, where
    /// the user has no session); returns whose token it was.
    pub fn consume_email_token_by_value(
        &mut self,
        purpose: EmailTokenPurpose,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Did, AccountError> {
        let token = acct::normalize_email_token(token);
        let tx = self.write()?;
        let found: Option<(String, String)> = tx
            .query_row(
                "SELECT did, requested_at FROM email_token WHERE purpose = ?1 AND token = ?2",
                params![purpose.as_str(), token],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((did, requested_at)) = found else {
            return Err(AccountError::InvalidEmailToken);
        };
        consume(&tx, purpose, &token, &requested_at, now)?;
        tx.commit()?;
        parse_did(&did)
    }

    /// Drops every outstanding email token of the account.
    pub fn delete_email_tokens(&mut self, did: &Did) -> Result<usize, AccountError> {
        Ok(self
            .conn
            .execute("DELETE FROM email_token WHERE did = ?1", [did.as_str()])?)
    }
}

// ----- helpers ------------------------------------------------------------------------------

/// Given the matching token's `requested_at`: check expiry, then delete the token.
fn consume(
    tx: &Transaction<'_>,
    purpose: EmailTokenPurpose,
    token: &str,
    requested_at: &str,
    now: DateTime<Utc>,
) -> Result<(), AccountError> {
    let requested_at = parse_time(requested_at)?;
    if now >= requested_at + EMAIL_TOKEN_TTL {
        return Err(AccountError::ExpiredEmailToken);
    }
    tx.execute(
        "DELETE FROM email_token WHERE purpose = ?1 AND token = ?2",
        params![purpose.as_str(), token],
    )?;
    Ok(())
}

/// Draws random values until `insert` stores one (returns `Some`); collisions are
/// astronomically rare, so a few attempts suffice.
fn draw_unique(
    mut insert: impl FnMut() -> Result<Option<String>, AccountError>,
) -> Result<String, AccountError> {
    for _ in 0..UNIQUE_DRAW_ATTEMPTS {
        if let Some(value) = insert()? {
            return Ok(value);
        }
    }
    Err(StoreError::Corrupt(
        "random codes keep colliding with stored ones; is the random generator broken?".into(),
    )
    .into())
}

fn ensure_invite_available(conn: &Connection, code: &str) -> Result<(), AccountError> {
    let usable: Option<bool> = conn
        .query_row(
            "SELECT ic.disabled = 0
                 AND (SELECT count(*) FROM invite_code_use u WHERE u.code = ic.code)
                     < ic.available_uses
                 AND NOT EXISTS (SELECT 1 FROM actor o
                                 WHERE o.did = ic.for_account AND o.takedown_ref IS NOT NULL)
             FROM invite_code ic WHERE ic.code = ?1",
            [code],
            |r| r.get(0),
        )
        .optional()?;
    if usable == Some(true) {
        Ok(())
    } else {
        Err(AccountError::InvalidInviteCode)
    }
}

fn exists(conn: &Connection, sql: &str, value: &str) -> Result<bool, AccountError> {
    Ok(conn
        .query_row(sql, [value], |_| Ok(()))
        .optional()?
        .is_some())
}

fn insert_refresh_token(
    conn: &Connection,
    did: &Did,
    token: &NewRefreshToken<'_>,
) -> Result<(), AccountError> {
    conn.execute(
        "INSERT INTO refresh_token (id, did, expires_at, app_password_name)
         VALUES (?1, ?2, ?3, ?4)",
        params![
            token.id,
            did.as_str(),
            time_text(token.expires_at),
            token.app_password_name
        ],
    )
    .map_err(constraint_error)?;
    Ok(())
}

fn get_refresh(conn: &Connection, id: &str) -> Result<Option<RefreshToken>, AccountError> {
    let row = conn
        .query_row(
            "SELECT did, expires_at, next_id, app_password_name FROM refresh_token WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            },
        )
        .optional()?;
    row.map(|(did, expires_at, next_id, app_password_name)| {
        Ok(RefreshToken {
            id: id.to_owned(),
            did: parse_did(&did)?,
            expires_at: parse_time(&expires_at)?,
            next_id,
            app_password_name,
        })
    })
    .transpose()
}

fn upsert_root(
    conn: &Connection,
    did: &Did,
    cid: &Cid,
    rev: &str,
    now: DateTime<Utc>,
) -> Result<(), AccountError> {
    // Only for an account that still exists: the sequencer mirrors heads after acknowledging
    // their writes, by which time the account may be gone, and a foreign-key failure would
    // lose the rest of the round's heads with it.
    conn.prepare_cached(
        "INSERT INTO repo_root (did, cid, rev, indexed_at)
         SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM actor WHERE did = ?1)
         ON CONFLICT (did) DO UPDATE SET cid = excluded.cid, rev = excluded.rev,
             indexed_at = excluded.indexed_at",
    )?
    .execute(params![did.as_str(), cid.to_string(), rev, time_text(now)])
    .map_err(constraint_error)?;
    Ok(())
}

fn root_row(cid: &str, rev: String, indexed_at: &str) -> Result<RepoRootRow, AccountError> {
    Ok(RepoRootRow {
        cid: Cid::from_str(cid)
            .map_err(|e| StoreError::Corrupt(format!("repo_root cid {cid:?}: {e}")))?,
        rev,
        indexed_at: parse_time(indexed_at)?,
    })
}

/// The `actor` + `account` columns read into [`RawAccount`], in order (9 columns).
const ACCOUNT_COLUMNS: &str = "a.did, a.handle, a.created_at, a.takedown_ref, a.deactivated_at,
     a.delete_after, c.email, c.email_confirmed_at, c.invites_disabled";

fn load_account(
    conn: &Connection,
    filter: &str,
    value: &str,
) -> Result<Option<Account>, AccountError> {
    let sql = format!(
        "SELECT {ACCOUNT_COLUMNS} FROM actor a LEFT JOIN account c ON c.did = a.did
         WHERE {filter}"
    );
    let raw = conn
        .prepare_cached(&sql)?
        .query_row([value], RawAccount::from_row)
        .optional()?;
    raw.map(RawAccount::parse).transpose()
}

/// An account row as stored, before its text is parsed into typed values.
struct RawAccount {
    did: String,
    handle: Option<String>,
    created_at: String,
    takedown_ref: Option<String>,
    deactivated_at: Option<String>,
    delete_after: Option<String>,
    email: Option<String>,
    email_confirmed_at: Option<String>,
    invites_disabled: Option<bool>,
}

impl RawAccount {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<RawAccount> {
        Ok(RawAccount {
            did: r.get(0)?,
            handle: r.get(1)?,
            created_at: r.get(2)?,
            takedown_ref: r.get(3)?,
            deactivated_at: r.get(4)?,
            delete_after: r.get(5)?,
            email: r.get(6)?,
            email_confirmed_at: r.get(7)?,
            invites_disabled: r.get(8)?,
        })
    }

    fn parse(self) -> Result<Account, AccountError> {
        let opt_time = |t: Option<String>| t.as_deref().map(parse_time).transpose();
        let handle = self
            .handle
            .map(|h| {
                Handle::from_str(&h)
                    .map_err(|e| StoreError::Corrupt(format!("stored handle {h:?}: {e}")))
            })
            .transpose()?;
        Ok(Account {
            did: parse_did(&self.did)?,
            handle,
            created_at: parse_time(&self.created_at)?,
            takedown_ref: self.takedown_ref,
            deactivated_at: opt_time(self.deactivated_at)?,
            delete_after: opt_time(self.delete_after)?,
            email: self.email,
            email_confirmed_at: opt_time(self.email_confirmed_at)?,
            invites_disabled: self.invites_disabled.unwrap_or(false),
        })
    }
}

fn parse_did(s: &str) -> Result<Did, AccountError> {
    Did::from_str(s).map_err(|e| StoreError::Corrupt(format!("stored DID {s:?}: {e}")).into())
}

/// The stored form of a time: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn time_text(t: DateTime<Utc>) -> String {
    Datetime::from_utc(t).as_str().to_owned()
}

fn truncate_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    Datetime::from_utc(t).to_utc()
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, AccountError> {
    Datetime::from_str(s)
        .map(|d| d.to_utc())
        .map_err(|e| StoreError::Corrupt(format!("stored time {s:?}: {e}")).into())
}

/// `Ok` when an update touched a row; an account that does not exist is `NotFound`.
fn found(rows: usize) -> Result<(), AccountError> {
    if rows == 0 {
        return Err(AccountError::NotFound("account"));
    }
    Ok(())
}
