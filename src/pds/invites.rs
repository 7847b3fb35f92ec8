//! Invite codes: admin minting (`createInviteCode(s)`) and an account's own codes
//! (`getAccountInviteCodes`), including the reference's lazily minted routine codes.

use super::Pds;
use super::app_passwords::usable;
use crate::account as acct;
use crate::store::account::{InviteCode, NewInviteCodes};
use crate::syntax::Did;
use crate::xrpc::XrpcError;
use chrono::{DateTime, Utc};

/// Most unused routine codes an account holds at once (the reference's limit).
const MAX_UNUSED_ROUTINE_CODES: usize = 5;

/// Most codes one admin request mints per account; a guard against typos, not a policy.
pub const MAX_CODES_PER_REQUEST: usize = 1000;

impl Pds {
    /// Mints `count` codes of `uses` uses for each of `accounts` (a DID or `"admin"`), created
    /// by the admin. Returns the codes per account, in the order given.
    pub async fn create_invite_codes(
        &self,
        accounts: Vec<String>,
        count: usize,
        uses: u32,
    ) -> Result<Vec<(String, Vec<String>)>, XrpcError> {
        if count > MAX_CODES_PER_REQUEST {
            return Err(XrpcError::invalid_request(format!(
                "codeCount must be at most {MAX_CODES_PER_REQUEST}"
            )));
        }
        let hostname = self.config.service.hostname.clone();
        self.accounts(move |s| {
            let mut out = Vec::with_capacity(accounts.len());
            for account in accounts {
                let codes = s.create_invite_codes(&NewInviteCodes {
                    hostname: &hostname,
                    for_account: &account,
                    created_by: acct::ADMIN_INVITE_ACCOUNT,
                    count,
                    available_uses: uses,
                    disabled: false,
                })?;
                out.push((account, codes));
            }
            Ok(out)
        })
        .await
    }

    /// `getAccountInviteCodes`: the account's enabled codes (optionally only those with uses
    /// left), first minting the routine codes it has earned when invites are required and an
    /// interval is configured.
    pub async fn account_invite_codes(
        &self,
        did: &Did,
        include_used: bool,
        create_available: bool,
    ) -> Result<Vec<InviteCode>, XrpcError> {
        let invites = &self.config.invites;
        let routine = (create_available && invites.required)
            .then_some(invites.interval)
            .flatten()
            .map(|interval| (interval, invites.epoch));
        let hostname = self.config.service.hostname.clone();
        let did = did.clone();
        let codes = self
            .accounts(move |s| {
                let account = match usable(s.get_account(&did)?) {
                    Ok(a) => a,
                    Err(e) => return Ok(Err(e)),
                };
                let mut codes = s.list_invite_codes(did.as_str())?;
                // Counting and minting happen under the store's lock, so two racing requests
                // cannot both mint the same earned codes.
                if let Some((interval, epoch)) = routine {
                    let n = routine_codes_due(&did, account.created_at, &codes, interval, epoch);
                    if n > 0 {
                        s.create_invite_codes(&NewInviteCodes {
                            hostname: &hostname,
                            for_account: did.as_str(),
                            created_by: did.as_str(),
                            count: n,
                            available_uses: 1,
                            disabled: account.invites_disabled,
                        })?;
                        codes = s.list_invite_codes(did.as_str())?;
                    }
                }
                Ok(Ok(codes))
            })
            .await??;
        Ok(codes
            .into_iter()
            .filter(|c| !c.disabled)
            .filter(|c| include_used || c.uses.len() < c.available_uses as usize)
            .collect())
    }
}

/// How many routine codes an account may mint now: one per `interval` of its lifetime since
/// `max(epoch, created_at)`, minus those already minted since then, keeping at most
/// [`MAX_UNUSED_ROUTINE_CODES`] unused.
fn routine_codes_due(
    did: &Did,
    created_at: DateTime<Utc>,
    codes: &[InviteCode],
    interval: std::time::Duration,
    epoch: std::time::Duration,
) -> usize {
    let epoch = DateTime::<Utc>::UNIX_EPOCH + epoch;
    let since = epoch.max(created_at);
    let lifetime = (Utc::now() - since).to_std().unwrap_or_default();
    let interval_ms = interval.as_millis().max(1);
    let earned = usize::try_from(lifetime.as_millis() / interval_ms).unwrap_or(usize::MAX);
    let routine: Vec<&InviteCode> = codes
        .iter()
        .filter(|c| c.created_by == did.as_str() && c.created_at >= since)
        .collect();
    let unused = routine
        .iter()
        .filter(|c| c.uses.len() < c.available_uses as usize)
        .count();
    earned
        .saturating_sub(routine.len())
        .min(MAX_UNUSED_ROUTINE_CODES.saturating_sub(unused))
}
