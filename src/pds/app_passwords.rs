//! App passwords: `createAppPassword`, `listAppPasswords`, `revokeAppPassword`.
//!
//! Which session scopes may call these is the handler's check; here the account is re-read so a
//! taken-down account is refused (the reference's `checkTakedown`).

use super::Pds;
use crate::store::account::{Account, AccountError, AppPassword, CreatedAppPassword};
use crate::syntax::Did;
use crate::xrpc::XrpcError;

impl Pds {
    /// `createAppPassword`: a new `xxxx-xxxx-xxxx-xxxx` secret, returned only here.
    pub async fn create_app_password(
        &self,
        did: &Did,
        name: &str,
        privileged: bool,
    ) -> Result<CreatedAppPassword, XrpcError> {
        let (did, name) = (did.clone(), name.to_string());
        self.accounts(move |s| {
            if let Err(e) = usable(s.get_account(&did)?) {
                return Ok(Err(e));
            }
            match s.create_app_password(&did, &name, privileged) {
                Ok(created) => Ok(Ok(created)),
                // The reference fails the insert on the (did, name) key; a 400 says why.
                Err(AccountError::AppPasswordNameTaken) => Ok(Err(XrpcError::invalid_request(
                    "could not create app-specific password: the name is already in use",
                ))),
                Err(e) => Err(e),
            }
        })
        .await?
    }

    /// `listAppPasswords`: names, creation times and privilege, newest first.
    pub async fn list_app_passwords(&self, did: &Did) -> Result<Vec<AppPassword>, XrpcError> {
        let did = did.clone();
        self.accounts(move |s| {
            Ok(match usable(s.get_account(&did)?) {
                Ok(_) => Ok(s.list_app_passwords(&did)?),
                Err(e) => Err(e),
            })
        })
        .await?
    }

    /// `revokeAppPassword`: removes the password and every refresh token issued through it.
    /// An unknown name is not an error (as the reference).
    pub async fn revoke_app_password(&self, did: &Did, name: &str) -> Result<(), XrpcError> {
        let (did, name) = (did.clone(), name.to_string());
        self.accounts(move |s| s.revoke_app_password(&did, &name).map(drop))
            .await
    }

    /// The reference's `checkTakedown`: the token's account, re-read, must exist and not be
    /// taken down.
    pub async fn check_takedown(&self, did: &Did) -> Result<Account, XrpcError> {
        let did = did.clone();
        usable(self.accounts(move |s| s.get_account(&did)).await?)
    }
}

/// The account, if it exists and is not taken down.
pub(super) fn usable(account: Option<Account>) -> Result<Account, XrpcError> {
    match account {
        None => Err(XrpcError::bad_request(
            "AccountNotFound",
            "Account not found",
        )),
        Some(a) if a.takedown_ref.is_some() => Err(super::account_taken_down()),
        Some(a) => Ok(a),
    }
}
