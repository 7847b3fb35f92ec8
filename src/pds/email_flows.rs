//! The flows that prove control of the account's email address with a mailed token: email
//! confirmation, email update, password reset, account deletion, and signing a PLC operation
//! for a migration (`identity.requestPlcOperationSignature` / `signPlcOperation`).
//!
//! Invariants:
//! - A token is `XXXXX-XXXXX`, one per (account, purpose), valid 15 minutes, compared
//!   case-insensitively, and used once: it is deleted by the step that accepts it
//!   (`store::account`). A wrong token is `InvalidToken`, a stale one `ExpiredToken`, and
//!   either leaves the account exactly as it was.
//! - Every check that can fail without a side effect (password, email shape, address taken)
//!   runs before the token is consumed, so a refused request does not burn the user's token.
//! - Outside dev mode, without SMTP, a request that would mail a token is refused before any
//!   token is created (see `crate::mail`).
//! - Account deletion removes the account rows first (no new sessions, no writes: the write
//!   path needs the account), then its repo files under the account's lock, its blobs, and
//!   finally sequences `#account{deleted}` and drops the account's older events.

use super::Pds;
use crate::account::password;
use crate::mail::templates::{self, Branding};
use crate::mail::{Mail, MailError, Mailer};
use crate::plc::document::Service;
use crate::plc::operation::PlcOperation;
use crate::store::account::{Account, AccountError, EmailTokenPurpose};
use crate::syntax::Did;
use crate::xrpc::XrpcError;
use chrono::Utc;
use serde_json::Value;
use std::collections::BTreeMap;

/// The fields `signPlcOperation` may set; each `None` keeps the last operation's value.
#[derive(Debug, Clone, Default)]
pub struct PlcOperationFields {
    pub rotation_keys: Option<Vec<String>>,
    pub also_known_as: Option<Vec<String>>,
    pub verification_methods: Option<BTreeMap<String, String>>,
    pub services: Option<BTreeMap<String, Service>>,
}

/// Token errors as the reference names them.
fn token_error(e: AccountError) -> XrpcError {
    match e {
        AccountError::InvalidEmailToken => {
            XrpcError::bad_request("InvalidToken", "Token is invalid")
        }
        AccountError::ExpiredEmailToken => {
            XrpcError::bad_request("ExpiredToken", "Token is expired")
        }
        other => super::account_error(other),
    }
}

fn mail_error(e: MailError) -> XrpcError {
    match e {
        MailError::NotConfigured => XrpcError::invalid_request(e.to_string()),
        other => XrpcError::internal(other),
    }
}

fn no_email() -> XrpcError {
    XrpcError::invalid_request("account does not have an email address")
}

fn check_not_takendown(account: &Account) -> Result<(), XrpcError> {
    if account.takedown_ref.is_some() {
        return Err(super::account_taken_down());
    }
    Ok(())
}

impl Pds {
    fn mailer(&self) -> Result<Mailer, XrpcError> {
        let mailer = Mailer::from_config(&self.config).map_err(mail_error)?;
        if !mailer.is_enabled() {
            return Err(mail_error(MailError::NotConfigured));
        }
        Ok(mailer)
    }

    fn branding(&self) -> Branding {
        Branding {
            service_name: self.config.service.name.clone(),
        }
    }

    /// Issues a token for `purpose` and mails what `compose` makes of it to the account.
    async fn mail_token(
        &self,
        account: &Account,
        purpose: EmailTokenPurpose,
        compose: impl FnOnce(&Branding, &str, &str) -> Mail,
    ) -> Result<(), XrpcError> {
        let to = account.email.clone().ok_or_else(no_email)?;
        // Before the token exists: a server that cannot mail refuses without side effects.
        let mailer = self.mailer()?;
        let did = account.did.clone();
        let token = self
            .accounts(move |s| s.create_email_token(&did, purpose, Utc::now()))
            .await?;
        let mail = compose(&self.branding(), &to, &token);
        mailer.send(&mail).await.map_err(mail_error)
    }

    /// Checks and deletes the account's token for `purpose`.
    async fn consume_token(
        &self,
        did: &Did,
        purpose: EmailTokenPurpose,
        token: &str,
    ) -> Result<(), XrpcError> {
        let (did, token) = (did.clone(), token.to_string());
        self.accounts(move |s| Ok(s.consume_email_token(&did, purpose, &token, Utc::now())))
            .await?
            .map_err(token_error)
    }

    // ----- email confirmation -----------------------------------------------------------

    /// `requestEmailConfirmation`: mails a `confirm_email` token.
    pub async fn request_email_confirmation(&self, did: &Did) -> Result<(), XrpcError> {
        let account = self.account(did).await?;
        check_not_takendown(&account)?;
        let link = !self
            .config
            .email
            .as_ref()
            .is_some_and(|e| e.disable_confirmation_link);
        self.mail_token(&account, EmailTokenPurpose::ConfirmEmail, |b, to, t| {
            templates::confirm_email(b, to, t, link)
        })
        .await
    }

    /// `confirmEmail`: the address must be the account's (any case), then the token.
    pub async fn confirm_email(
        &self,
        did: &Did,
        email: &str,
        token: &str,
    ) -> Result<(), XrpcError> {
        let account = self.account(did).await?;
        check_not_takendown(&account)?;
        if account.email.as_deref() != Some(crate::account::normalize_email(email).as_str()) {
            return Err(XrpcError::bad_request("InvalidEmail", "invalid email"));
        }
        self.consume_token(did, EmailTokenPurpose::ConfirmEmail, token)
            .await?;
        let d = did.clone();
        self.accounts(move |s| s.confirm_email(&d)).await
    }

    // ----- email update -----------------------------------------------------------------

    /// `requestEmailUpdate`: a token is needed (and mailed to the current address) only once
    /// the address is confirmed. Returns `tokenRequired`.
    pub async fn request_email_update(&self, did: &Did) -> Result<bool, XrpcError> {
        let account = self.account(did).await?;
        check_not_takendown(&account)?;
        if account.email.is_none() {
            return Err(no_email());
        }
        let token_required = account.email_confirmed_at.is_some();
        if token_required {
            self.mail_token(
                &account,
                EmailTokenPurpose::UpdateEmail,
                templates::update_email,
            )
            .await?;
        }
        Ok(token_required)
    }

    /// `updateEmail`: the new address, with the token when the current one is confirmed. The
    /// new address starts unconfirmed and every outstanding token of the account is dropped.
    pub async fn update_email(
        &self,
        did: &Did,
        email: &str,
        token: Option<&str>,
    ) -> Result<(), XrpcError> {
        if !super::looks_like_email(email.trim()) {
            return Err(XrpcError::invalid_request(
                "This email address is not supported, please use a different email address.",
            ));
        }
        let account = self.account(did).await?;
        check_not_takendown(&account)?;
        let token = match (account.email_confirmed_at.is_some(), token) {
            (true, None) => {
                return Err(XrpcError::bad_request(
                    "TokenRequired",
                    "confirmation token required",
                ));
            }
            (true, Some(t)) => Some(t.to_string()),
            (false, _) => None,
        };
        let (d, email) = (did.clone(), crate::account::normalize_email(email));
        // One closure under the account-store lock: the address check, the token and the
        // update cannot interleave with another request, and a taken address keeps the token.
        self.accounts(move |s| {
            if s.get_account_by_email(&email)?.is_some_and(|a| a.did != d) {
                return Ok(Err(XrpcError::invalid_request(
                    "This email address is already in use, please use a different email address.",
                )));
            }
            if let Some(token) = token
                && let Err(e) =
                    s.consume_email_token(&d, EmailTokenPurpose::UpdateEmail, &token, Utc::now())
            {
                return Ok(Err(token_error(e)));
            }
            s.update_email(&d, &email).map(Ok)
        })
        .await?
    }

    // ----- password reset ---------------------------------------------------------------

    /// `requestPasswordReset`: mails a `reset_password` token naming the handle.
    pub async fn request_password_reset(&self, email: &str) -> Result<(), XrpcError> {
        let email = crate::account::normalize_email(email);
        let account = self
            .accounts(move |s| s.get_account_by_email(&email))
            .await?
            .ok_or_else(no_email)?;
        let handle = account
            .handle
            .as_ref()
            .map_or_else(|| "handle.invalid".to_string(), |h| h.to_string());
        self.mail_token(&account, EmailTokenPurpose::ResetPassword, |b, to, t| {
            templates::reset_password(b, to, &handle, t)
        })
        .await
    }

    /// `resetPassword`: the token alone names the account. The new password replaces the old
    /// one and every session (refresh token) of the account is revoked.
    pub async fn reset_password(&self, token: &str, new_password: &str) -> Result<(), XrpcError> {
        if super::utf16_len(new_password) > password::MAX_PASSWORD_LEN {
            return Err(XrpcError::invalid_request("Password too long"));
        }
        let hash = hash_password(new_password).await?;
        let token = token.to_string();
        self.accounts(move |s| {
            let did = match s.consume_email_token_by_value(
                EmailTokenPurpose::ResetPassword,
                &token,
                Utc::now(),
            ) {
                Ok(did) => did,
                Err(e) => return Ok(Err(token_error(e))),
            };
            s.update_password(&did, &hash).map(Ok)
        })
        .await?
    }

    // ----- account deletion -------------------------------------------------------------

    /// `requestAccountDelete`: mails a `delete_account` token.
    pub async fn request_account_delete(&self, did: &Did) -> Result<(), XrpcError> {
        let account = self.account(did).await?;
        check_not_takendown(&account)?;
        self.mail_token(
            &account,
            EmailTokenPurpose::DeleteAccount,
            templates::delete_account,
        )
        .await
    }

    /// `deleteAccount`: the account password and the `delete_account` token, then the account
    /// is removed here for good (its did:plc is left as it is, as the reference does).
    pub async fn delete_account_with_token(
        &self,
        did: &Did,
        pw: &str,
        token: &str,
    ) -> Result<(), XrpcError> {
        let invalid = || XrpcError::authentication_required("Invalid did or password");
        if super::utf16_len(pw) > password::MAX_LOGIN_PASSWORD_LEN {
            return Err(invalid());
        }
        let d = did.clone();
        if self.accounts(move |s| s.get_account(&d)).await?.is_none() {
            return Err(XrpcError::invalid_request("account not found"));
        }
        let (d, p) = (did.clone(), pw.to_string());
        let accounts = self.accounts.clone();
        let valid = tokio::task::spawn_blocking(move || {
            let store = accounts
                .lock()
                .map_err(|_| XrpcError::internal("account store lock poisoned"))?;
            let secrets = store.login_secrets(&d).map_err(super::account_error)?;
            drop(store);
            // Only the account password: an app password may not delete the account.
            Ok::<_, XrpcError>(
                secrets.check(&p).map_err(super::account_error)?
                    == Some(crate::store::account::LoginMethod::Password),
            )
        })
        .await
        .map_err(|e| XrpcError::internal(format!("password check failed: {e}")))??;
        if !valid {
            return Err(invalid());
        }
        self.consume_token(did, EmailTokenPurpose::DeleteAccount, token)
            .await?;
        self.delete_account_data(did).await
    }

    /// Removes everything this PDS holds for `did`: rows, repo files, blobs, and its events
    /// (replaced by one `#account{active:false, status:"deleted"}`).
    pub async fn delete_account_data(&self, did: &Did) -> Result<(), XrpcError> {
        let d = did.clone();
        self.accounts(move |s| s.delete_account(&d)).await?;

        // Under the account's lock, so no write is half-way through the store being removed;
        // closing it first means nothing reopens the files afterwards.
        let (actors, d) = (self.actors.clone(), did.clone());
        let dir = crate::store::actor::actor_dir(self.actors.dir(), did.as_str());
        tokio::task::spawn_blocking(move || {
            if actors.exists(&d) {
                let state = actors.get(&d)?;
                let _guard = state
                    .lock()
                    .map_err(|_| XrpcError::internal("actor store lock poisoned"))?;
                actors.close(&d);
            }
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(XrpcError::internal(format!("removing the repo: {e}"))),
            }
        })
        .await
        .map_err(|e| XrpcError::internal(format!("repo removal task: {e}")))??;

        match self.blobs.list_stored(did).await {
            Ok(cids) if cids.is_empty() => {}
            Ok(cids) => {
                if let Err(e) = self.blobs.delete_many(did, &cids).await {
                    tracing::warn!(%did, error = %e, "deleting a deleted account's blobs");
                }
            }
            Err(e) => tracing::warn!(%did, error = %e, "listing a deleted account's blobs"),
        }

        let (sequencer, d) = (self.sequencer.clone(), did.to_string());
        match tokio::task::spawn_blocking(move || sequencer.delete_account_events(&d)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(%did, "sequencing the account deletion: {e}"),
            Err(e) => tracing::error!(%did, "sequencing task: {e}"),
        }
        Ok(())
    }

    // ----- PLC operations ---------------------------------------------------------------

    /// `identity.requestPlcOperationSignature`: mails a `plc_operation` token.
    pub async fn request_plc_operation_signature(&self, did: &Did) -> Result<(), XrpcError> {
        let account = self.account(did).await?;
        self.mail_token(
            &account,
            EmailTokenPurpose::PlcOperation,
            templates::plc_operation,
        )
        .await
    }

    /// `identity.signPlcOperation`: consumes the token, then builds an update on the DID's
    /// last operation with each given field replacing the last one's, signs it with the PDS
    /// rotation key and returns it (JSON) without submitting it. The fields are not validated
    /// here, as in the reference: the directory (or the new PDS) judges the operation.
    pub async fn sign_plc_operation(
        &self,
        did: &Did,
        token: &str,
        fields: PlcOperationFields,
    ) -> Result<Value, XrpcError> {
        self.consume_token(did, EmailTokenPurpose::PlcOperation, token)
            .await?;
        if !did.is_plc() {
            return Err(XrpcError::invalid_request(
                "Only did:plc identities have PLC operations",
            ));
        }
        let last = self
            .plc
            .get_last_op(did.as_str())
            .await
            .map_err(|e| XrpcError::upstream_failure(format!("PLC directory: {e}")))?;
        if last.is_tombstone() {
            return Err(XrpcError::invalid_request("Did is tombstoned"));
        }
        let mut next = PlcOperation::update_from(&last)
            .map_err(|e| XrpcError::invalid_request(format!("PLC: {e}")))?;
        if let Some(v) = fields.rotation_keys {
            next.rotation_keys = v;
        }
        if let Some(v) = fields.also_known_as {
            next.also_known_as = v;
        }
        if let Some(v) = fields.verification_methods {
            next.verification_methods = v;
        }
        if let Some(v) = fields.services {
            next.services = v;
        }
        let op = next
            .sign(&self.config.secrets.plc_rotation_key)
            .map_err(|e| XrpcError::invalid_request(format!("PLC: {e}")))?;
        Ok(op.to_json())
    }
}

/// scrypt on a blocking thread: it takes tens of milliseconds and 16 MiB.
async fn hash_password(pw: &str) -> Result<String, XrpcError> {
    let pw = pw.to_string();
    tokio::task::spawn_blocking(move || password::hash_password(&pw))
        .await
        .map_err(|e| XrpcError::internal(format!("password task: {e}")))?
        .map_err(|e| XrpcError::invalid_request(e.to_string()))
}
