//! The PDS's services: what XRPC handlers call. Holds the account database, the session token
//! issuer and the PLC client, and knows where actor stores live.
//!
//! Invariants: SQLite work runs on blocking threads, never on the async runtime's workers; an
//! account row exists only once its repo and (for new DIDs) its PLC genesis are in place, and a
//! failed sign-up removes what it created.

mod account_cache;
/// How soon the server sees a change another process makes to `account.sqlite`.
pub use account_cache::EXTERNAL_CHECK as ACCOUNT_CACHE_EXTERNAL_CHECK;
pub mod actors;
mod app_passwords;
pub mod blob_gc;
pub mod blobs;
pub mod email_flows;
pub mod handle_policy;
mod identity;
mod invites;
mod lifecycle;
mod migration;
mod preferences;
pub mod rate_limits;
mod record_cache;
pub mod repo;
pub mod service_auth;
mod signing_keys;
pub mod sync;

use crate::account::{self as acct, password};
use crate::auth::{AuthScope, SessionTokens, TokenIssuer};
use crate::config::Config;
use crate::crypto::{Curve, Keypair};
use crate::identity::{HandleResolver, IdentityConfig};
use crate::plc::client::PlcClient;
use crate::plc::operation::PlcOperation;
use crate::repo::Repo;
use crate::store::account::{
    Account, AccountError, AccountStore, LoginMethod, NewAccount, NewRefreshToken,
};
use crate::store::actor::{self, ActorStore};
use crate::store::sqlite::Durability;
use crate::syntax::{AtIdentifier, Did, Handle};
use crate::xrpc::XrpcError;
use chrono::Utc;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The PDS's shared services.
pub struct Pds {
    pub config: Arc<Config>,
    accounts: Arc<Mutex<AccountStore>>,
    /// Read-only handles for the account lookups on every request.
    account_readers: AccountReaders,
    /// Accounts looked up by those reads, until the next account-database write.
    account_cache: Arc<account_cache::AccountCache>,
    pub tokens: TokenIssuer,
    pub plc: PlcClient,
    /// Resolves handles on other domains (DNS TXT, then HTTPS), with the SSRF guard on
    /// outside dev mode.
    pub handles: HandleResolver,
    /// Bounds concurrent password hashing (see `create_session`).
    password_checks: tokio::sync::Semaphore,
    actors_dir: PathBuf,
    /// Open actor stores (one per account, the account's write lock).
    pub actors: Arc<actors::Actors>,
    pub blobs: Arc<dyn crate::blob::BlobStore>,
    /// Resolves DIDs (PLC, did:web) through the DID cache.
    pub dids: crate::identity::DidResolver,
    /// Record keys for creates without one.
    tids: crate::syntax::TidClock,
    pub rate_limits: rate_limits::RateLimits,
    /// The firehose log.
    pub sequencer: Arc<crate::sequencer::Sequencer>,
}

/// A few idle read-only handles on the account database, opened on demand.
struct AccountReaders {
    path: PathBuf,
    idle: Mutex<Vec<AccountStore>>,
}

impl AccountReaders {
    /// Handles kept idle; more are opened under a burst and closed after it.
    const KEEP: usize = 8;

    fn with<R>(
        &self,
        f: impl FnOnce(&AccountStore) -> Result<R, AccountError>,
    ) -> Result<R, XrpcError> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let store = match idle {
            Some(store) => store,
            None => AccountStore::open_reader(&self.path)
                .map_err(|e| XrpcError::internal(format!("opening the account database: {e}")))?,
        };
        let out = f(&store).map_err(account_error);
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < Self::KEEP
        {
            idle.push(store);
        }
        out
    }
}

/// What a new account sends.
#[derive(Debug, Clone)]
pub struct SignUp {
    pub handle: String,
    pub email: String,
    pub password: String,
    pub invite_code: Option<String>,
    pub recovery_key: Option<String>,
}

/// A session handed to a client.
#[derive(Debug, Clone)]
pub struct Session {
    pub account: Account,
    pub tokens: SessionTokens,
}

impl Pds {
    /// Opens the databases named by the configuration.
    pub fn open(config: Arc<Config>) -> anyhow::Result<Pds> {
        let accounts = Arc::new(Mutex::new(AccountStore::open(&config.db.account_db)?));
        let tokens = TokenIssuer::new(config.secrets.jwt_secret.expose(), &config.service.did);
        let plc = PlcClient::new(&config.identity.plc_url)?;
        let handles = HandleResolver::new(identity_config(&config))?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let blobs = crate::blob::open_blob_store(&config.blobstore)?;
        let did_cache = crate::identity::DidCache::open(&config.db.did_cache_db)?;
        let dids = crate::identity::DidResolver::new(identity_config(&config), Some(did_cache))?;
        let repo_tuning = crate::store::sqlite::Tuning {
            durability: config.db.repo_durability,
            auto_checkpoint: !config.db.disable_wal_auto_checkpoint,
        };
        Ok(Pds {
            actors: Arc::new(actors::Actors::new(
                config.db.actor_store_directory.clone(),
                repo_tuning,
            )),
            blobs,
            dids,
            tids: crate::syntax::TidClock::new(),
            rate_limits: rate_limits::RateLimits::new(config.rate_limits.enabled),
            sequencer: {
                let sequencer = crate::sequencer::Sequencer::open(
                    &config.db.sequencer_db,
                    repo_tuning,
                    config.subscription.max_buffer,
                )?;
                // Relays hear from us when events flow (at most every 20 minutes each).
                let crawlers = crate::crawlers::Crawlers::new(
                    config.service.hostname.clone(),
                    config.crawlers.clone(),
                )?;
                sequencer.on_sequenced(move || crawlers.notify_of_update());
                // The account table's root mirror (listRepos), one transaction per round.
                let mirror = accounts.clone();
                sequencer.on_heads(move |heads| {
                    let written = match mirror.lock() {
                        Ok(mut accounts) => accounts
                            .upsert_repo_roots(
                                heads.iter().map(|h| (&h.did, &h.cid, h.rev.as_str())),
                            )
                            .map_err(|e| e.to_string()),
                        Err(_) => Err("account store lock poisoned".to_string()),
                    };
                    // The next commit of each account rewrites its row.
                    if let Err(e) = written {
                        tracing::warn!("updating the repo root mirror: {e}");
                    }
                });
                Arc::new(sequencer)
            },
            password_checks: tokio::sync::Semaphore::new(cores),
            handles,
            actors_dir: config.db.actor_store_directory.clone(),
            accounts,
            account_cache: Arc::new(account_cache::AccountCache::new(
                config.db.account_db.clone(),
            )),
            account_readers: AccountReaders {
                path: config.db.account_db.clone(),
                idle: Mutex::new(Vec::new()),
            },
            tokens,
            plc,
            config,
        })
    }

    /// Runs the read `f` on a read-only account-database handle, right here: a point read
    /// costs microseconds, less than the hand-off to a blocking thread, and never waits for
    /// a write (WAL). Use [`Pds::accounts`] for writes and for anything that scans.
    pub fn read_accounts<R>(
        &self,
        f: impl FnOnce(&AccountStore) -> Result<R, AccountError>,
    ) -> Result<R, XrpcError> {
        self.account_readers.with(f)
    }

    /// The account `ident` names (any status), from the cache or a read-only handle.
    pub fn lookup_account(&self, ident: &AtIdentifier) -> Result<Option<Account>, XrpcError> {
        let tag = match self.account_cache.get(ident) {
            account_cache::Lookup::Hit(account) => return Ok(Some(account)),
            account_cache::Lookup::Miss(tag) => tag,
        };
        let account = self.read_accounts(|s| match ident {
            AtIdentifier::Did(did) => s.get_account(did),
            AtIdentifier::Handle(h) => s.get_account_by_handle(h),
        })?;
        if let Some(account) = &account {
            self.account_cache.insert(tag, account);
        }
        Ok(account)
    }

    /// Runs `f` on the account database on a blocking thread.
    pub async fn accounts<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut AccountStore) -> Result<R, AccountError> + Send + 'static,
    ) -> Result<R, XrpcError> {
        let (accounts, cache) = (self.accounts.clone(), self.account_cache.clone());
        tokio::task::spawn_blocking(move || {
            let mut store = accounts
                .lock()
                .map_err(|_| XrpcError::internal("account store lock poisoned"))?;
            let out = f(&mut store).map_err(account_error);
            // Here, not after the await: a request dropped meanwhile must still invalidate.
            cache.invalidate();
            out
        })
        .await
        .map_err(|e| XrpcError::internal(format!("account task failed: {e}")))?
    }

    /// The DID of a local account, by handle (for `/.well-known/atproto-did`).
    pub fn local_handle_resolver(&self) -> impl Fn(&Handle) -> Option<Did> + Send + Sync + 'static {
        let accounts = self.accounts.clone();
        move |handle: &Handle| {
            let store = accounts.lock().ok()?;
            let account = store.get_account_by_handle(handle).ok()??;
            account.is_active().then_some(account.did)
        }
    }

    /// The sign-up checks shared by new and bring-your-own DIDs, in the reference's order:
    /// password length, invite presence, email shape, handle rules (with a known DID, a handle
    /// on another domain must already resolve to it), then availability of handle, email and
    /// invite. Returns the handle and the password's scrypt hash.
    async fn check_sign_up(
        &self,
        input: &SignUp,
        did: Option<&Did>,
    ) -> Result<(Handle, String), XrpcError> {
        // The input's handle must be one as written: the reference's lexicon check, before
        // anything else (a valid one is then normalized and held to the service's rules).
        Handle::try_from(input.handle.as_str())
            .map_err(|e| XrpcError::invalid_request(format!("Invalid handle: {e}")))?;
        if password::MAX_PASSWORD_LEN < utf16_len(&input.password) {
            return Err(XrpcError::invalid_request("Password too long"));
        }
        if self.config.invites.required && input.invite_code.is_none() {
            return Err(XrpcError::bad_request(
                "InvalidInviteCode",
                "No invite code provided",
            ));
        }
        if !looks_like_email(&input.email) {
            return Err(XrpcError::invalid_request(
                "This email address is not supported, please use a different email.",
            ));
        }
        let handle = match (
            handle_policy::check_service_handle(
                &input.handle,
                &self.config.identity.service_handle_domains,
            ),
            did,
        ) {
            (Ok(h), _) => h,
            (Err(handle_policy::HandlePolicyError::UnsupportedDomain(_)), Some(did)) => {
                self.check_external_handle(&input.handle, did).await?
            }
            (Err(e), _) => return Err(XrpcError::bad_request(e.error_name(), e.to_string())),
        };
        {
            let (h, e, code) = (
                handle.clone(),
                input.email.clone(),
                input.invite_code.clone(),
            );
            // InvalidRequest naming the handle or email, as the reference's own check (the
            // store's constraint, for a sign-up racing this one, says HandleNotAvailable).
            let taken = self
                .accounts(move |s| {
                    if s.get_account_by_handle(&h)?.is_some() {
                        return Ok(Some(format!("Handle already taken: {h}")));
                    }
                    if s.get_account_by_email(&e)?.is_some() {
                        return Ok(Some(format!("Email already taken: {e}")));
                    }
                    if let Some(code) = code {
                        s.check_invite_code(&code)?;
                    }
                    Ok(None)
                })
                .await?;
            if let Some(message) = taken {
                return Err(XrpcError::invalid_request(message));
            }
        }
        let password_scrypt = password::hash_password(&input.password)
            .map_err(|e| XrpcError::invalid_request(e.to_string()))?;
        Ok((handle, password_scrypt))
    }

    /// `createAccount` for a new did:plc: checks, repo, PLC genesis, then the account rows.
    /// Returns the session and the new DID's document (which the reference's response holds).
    pub async fn create_account(
        &self,
        input: SignUp,
    ) -> Result<(Session, serde_json::Value), XrpcError> {
        let (handle, password_scrypt) = self.check_sign_up(&input, None).await?;

        // The DID comes from the signed genesis operation.
        let signing_key = Keypair::generate(Curve::K256);
        let mut rotation_keys = Vec::new();
        if let Some(k) = &input.recovery_key {
            rotation_keys.push(k.clone());
        }
        if let Some(k) = &self.config.identity.recovery_did_key {
            rotation_keys.push(k.clone());
        }
        rotation_keys.push(
            self.config
                .secrets
                .plc_rotation_key
                .public_key()
                .to_did_key(),
        );
        let unsigned = PlcOperation::atproto_genesis(
            rotation_keys,
            &signing_key.public_key(),
            &handle,
            &self.config.service.public_url,
        );
        let genesis = unsigned
            .clone()
            .sign(&self.config.secrets.plc_rotation_key)
            .map_err(|e| XrpcError::invalid_request(format!("PLC operation: {e}")))?;
        let did: Did = genesis
            .did()
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| XrpcError::internal("could not derive a DID from the genesis op"))?;
        let did_doc = unsigned.to_document_data(did.as_str()).to_did_document();

        // Repo first, so the account never exists without one.
        let repo_genesis = self
            .create_repo(&did, &signing_key)
            .await
            .inspect_err(|_| {
                self.remove_actor_dir(&did);
            })?;
        if let Err(e) = self.plc.submit(did.as_str(), &genesis).await {
            self.remove_actor_dir(&did);
            return Err(XrpcError::bad_request(
                "InvalidRequest",
                format!("PLC directory refused the DID: {e}"),
            ));
        }

        let tokens = self
            .tokens
            .issue(&did, AuthScope::Access, None, Utc::now().timestamp())
            .map_err(|e| XrpcError::internal(e.to_string()))?;
        let refresh_expiry = refresh_expiry(&tokens);
        let (genesis_cid, genesis_rev) = (repo_genesis.cid, repo_genesis.rev.to_string());
        let result = {
            let (did, handle, email, code, jti) = (
                did.clone(),
                handle.clone(),
                input.email.clone(),
                input.invite_code.clone(),
                tokens.refresh.jti.clone(),
            );
            self.accounts(move |s| {
                s.create_account(&NewAccount {
                    did: &did,
                    handle: &handle,
                    email: &email,
                    password_scrypt: &password_scrypt,
                    invite_code: code.as_deref(),
                    deactivated: false,
                    refresh_token: Some(NewRefreshToken {
                        id: &jti,
                        expires_at: refresh_expiry,
                        app_password_name: None,
                    }),
                    repo_root: Some((&genesis_cid, &genesis_rev)),
                })
            })
            .await
        };
        match result {
            Ok(account) => {
                self.sequence(signup_events(&did, &handle, &repo_genesis))
                    .await;
                Ok((Session { account, tokens }, did_doc))
            }
            Err(e) => {
                // The DID stays registered at the PLC (as the reference, which only tombstones
                // on later failures); the repo is removed so a retry starts clean.
                self.remove_actor_dir(&did);
                Err(e)
            }
        }
    }

    /// `createAccount` with an existing DID (a migration in): the handler has already checked
    /// the caller's service token from `did`. The account starts deactivated, with a signing key
    /// of its own here (the one `reserveSigningKey` set aside for the DID, if any) and an empty
    /// repo that `importRepo` replaces. No PLC operation is sent: the user points the DID here
    /// later (`submitPlcOperation`). Nothing is sequenced, as the reference: relays hear of the
    /// account when it is activated. Returns the session and, when it resolves, the DID
    /// document (which still names the old PDS).
    pub async fn create_account_with_did(
        &self,
        did: &Did,
        input: SignUp,
    ) -> Result<(Session, Option<crate::identity::DidDocument>), XrpcError> {
        // One sign-up per DID at a time, so a concurrent duplicate can never clean up (or
        // overwrite) the files of the one that wins.
        let _claim = SignUpClaim::take(did)
            .ok_or_else(|| XrpcError::bad_request("AlreadyExists", "Account already exists"))?;
        let known = self.read_accounts(|s| s.get_account(did))?.is_some();
        if known || actor::actor_dir(&self.actors_dir, did.as_str()).exists() {
            return Err(XrpcError::bad_request(
                "AlreadyExists",
                "Account already exists",
            ));
        }
        let (handle, password_scrypt) = self.check_sign_up(&input, Some(did)).await?;
        let signing_key = {
            let (actors, d) = (self.actors_dir.clone(), did.clone());
            tokio::task::spawn_blocking(move || acct::reserved_keys::get(&actors, &d))
                .await
                .map_err(|e| XrpcError::internal(format!("key task failed: {e}")))?
                .map_err(|e| XrpcError::internal(format!("reading a reserved key: {e}")))?
                .unwrap_or_else(|| Keypair::generate(Curve::K256))
        };
        let repo_genesis = self
            .create_repo(did, &signing_key)
            .await
            .inspect_err(|_| self.remove_actor_dir(did))?;
        let tokens = self
            .tokens
            .issue(did, AuthScope::Access, None, Utc::now().timestamp())
            .map_err(|e| XrpcError::internal(e.to_string()))?;
        let refresh_expiry = refresh_expiry(&tokens);
        let (genesis_cid, genesis_rev) = (repo_genesis.cid, repo_genesis.rev.to_string());
        let result = {
            let (did, handle, email, code, jti) = (
                did.clone(),
                handle.clone(),
                input.email.clone(),
                input.invite_code.clone(),
                tokens.refresh.jti.clone(),
            );
            self.accounts(move |s| {
                s.create_account(&NewAccount {
                    did: &did,
                    handle: &handle,
                    email: &email,
                    password_scrypt: &password_scrypt,
                    invite_code: code.as_deref(),
                    deactivated: true,
                    refresh_token: Some(NewRefreshToken {
                        id: &jti,
                        expires_at: refresh_expiry,
                        app_password_name: None,
                    }),
                    repo_root: Some((&genesis_cid, &genesis_rev)),
                })
            })
            .await
        };
        let account = result.inspect_err(|_| self.remove_actor_dir(did))?;
        // The reserved key is the account's key now; its reservation file is no longer needed.
        if let Err(e) = acct::reserved_keys::remove(&self.actors_dir, did) {
            tracing::warn!(did = %did, error = %e, "could not remove a used reserved key");
        }
        let did_doc = match self.dids.resolve_fresh(did).await {
            Ok(doc) => Some(doc),
            Err(e) => {
                tracing::debug!(did = %did, error = %e, "migrating sign-up: DID not resolved");
                None
            }
        };
        Ok((Session { account, tokens }, did_doc))
    }

    /// A handle outside our domains for a known DID: valid, an allowed TLD, and resolving to
    /// that DID already.
    async fn check_external_handle(&self, input: &str, did: &Did) -> Result<Handle, XrpcError> {
        let h: Handle =
            input.trim().to_ascii_lowercase().parse().map_err(|e| {
                XrpcError::bad_request("InvalidHandle", format!("Invalid handle: {e}"))
            })?;
        if h.has_disallowed_tld() {
            return Err(XrpcError::bad_request(
                "InvalidHandle",
                "Handle TLD is invalid or disallowed",
            ));
        }
        match self.handles.resolve(&h).await {
            Ok(Some(resolved)) if resolved == *did => Ok(h),
            _ => Err(XrpcError::invalid_request(
                "External handle did not resolve to DID",
            )),
        }
    }

    async fn create_repo(
        &self,
        did: &Did,
        key: &Keypair,
    ) -> Result<crate::repo::CommitData, XrpcError> {
        let (actors, did, key) = (self.actors_dir.clone(), did.clone(), key.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            actor::write_signing_key(&actors, did.as_str(), &key)?;
            let mut store = ActorStore::open(
                &actor::store_path(&actors, did.as_str()),
                did.as_str(),
                Durability::Full,
            )?;
            let (_, genesis) = Repo::create(did.clone(), &key)?;
            store.apply_commit(&genesis)?;
            Ok(genesis)
        })
        .await
        .map_err(|e| XrpcError::internal(format!("repo task failed: {e}")))?
        .map_err(|e| XrpcError::internal(format!("creating the repo failed: {e:#}")))
    }

    fn remove_actor_dir(&self, did: &Did) {
        let dir = actor::actor_dir(&self.actors_dir, did.as_str());
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), error = %e, "could not clean up actor directory");
        }
    }

    /// `createSession`: handle, email or DID plus the account or an app password.
    pub async fn create_session(&self, identifier: &str, pw: &str) -> Result<Session, XrpcError> {
        // One message for unknown accounts and wrong passwords, so logins can't probe accounts.
        let invalid = || XrpcError::authentication_required("Invalid identifier or password");
        if utf16_len(pw) > password::MAX_LOGIN_PASSWORD_LEN {
            return Err(invalid());
        }
        let identifier = identifier.trim().to_ascii_lowercase();
        let found = self
            .accounts(move |s| {
                let Some(account) = s.get_account_by_identifier(&identifier)? else {
                    return Ok(None);
                };
                let secrets = s.login_secrets(&account.did)?;
                Ok(Some((account, secrets)))
            })
            .await?;
        let Some((account, secrets)) = found else {
            return Err(invalid());
        };
        // scrypt runs outside the account-store lock, at most one per core at a time (each run
        // holds a 16 MiB buffer), so logins neither block other account work nor pile up memory.
        let _permit = self
            .password_checks
            .acquire()
            .await
            .map_err(|_| XrpcError::internal("password check limiter closed"))?;
        let pw = pw.to_string();
        let method = tokio::task::spawn_blocking(move || secrets.check(&pw))
            .await
            .map_err(|e| XrpcError::internal(format!("password check failed: {e}")))?
            .map_err(account_error)?;
        let Some(method) = method else {
            return Err(invalid());
        };
        if account.takedown_ref.is_some() {
            return Err(account_taken_down());
        }
        let (scope, app_password) = match method {
            LoginMethod::Password => (AuthScope::Access, None),
            LoginMethod::AppPassword {
                name,
                privileged: true,
            } => (AuthScope::AppPassPrivileged, Some(name)),
            LoginMethod::AppPassword {
                name,
                privileged: false,
            } => (AuthScope::AppPass, Some(name)),
        };
        let tokens = self
            .issue_and_store(&account.did, scope, app_password, None)
            .await?;
        Ok(Session { account, tokens })
    }

    /// `refreshSession`: rotates the refresh token (with the reference's grace window).
    pub async fn refresh_session(&self, jti: &str) -> Result<Session, XrpcError> {
        let (id, candidate) = (jti.to_string(), acct::generate_refresh_token_id());
        let now = Utc::now();
        let rotated = self
            .accounts(move |s| {
                let Some(rotation) =
                    s.rotate_refresh_token(&id, &candidate, now + acct::REFRESH_TOKEN_TTL, now)?
                else {
                    return Ok(None);
                };
                let account = s.get_account(&rotation.did)?;
                let privileged = match &rotation.app_password_name {
                    Some(name) => s
                        .list_app_passwords(&rotation.did)?
                        .into_iter()
                        .find(|p| &p.name == name)
                        .map(|p| p.privileged),
                    None => None,
                };
                Ok(account.map(|a| (a, rotation, privileged)))
            })
            .await?;
        let Some((account, rotation, privileged)) = rotated else {
            return Err(XrpcError::expired_token("Token has been revoked"));
        };
        let scope = match privileged {
            None => AuthScope::Access,
            Some(true) => AuthScope::AppPassPrivileged,
            Some(false) => AuthScope::AppPass,
        };
        // The successor's row was written by the rotation; only the JWTs are minted here.
        let tokens = self
            .tokens
            .issue(
                &account.did,
                scope,
                Some(rotation.next_id),
                Utc::now().timestamp(),
            )
            .map_err(|e| XrpcError::internal(e.to_string()))?;
        Ok(Session { account, tokens })
    }

    /// `deleteSession`: revokes the refresh token.
    pub async fn delete_session(&self, jti: &str) -> Result<(), XrpcError> {
        let id = jti.to_string();
        self.accounts(move |s| s.revoke_refresh_token(&id).map(drop))
            .await
    }

    /// The account behind a verified token.
    pub async fn account(&self, did: &Did) -> Result<Account, XrpcError> {
        self.lookup_account(&AtIdentifier::Did(did.clone()))?
            .ok_or_else(|| XrpcError::bad_request("AccountNotFound", "Account not found"))
    }

    async fn issue_and_store(
        &self,
        did: &Did,
        scope: AuthScope,
        app_password: Option<String>,
        jti: Option<String>,
    ) -> Result<SessionTokens, XrpcError> {
        let tokens = self
            .tokens
            .issue(did, scope, jti, Utc::now().timestamp())
            .map_err(|e| XrpcError::internal(e.to_string()))?;
        let expires = refresh_expiry(&tokens);
        let (did, id) = (did.clone(), tokens.refresh.jti.clone());
        self.accounts(move |s| {
            s.create_refresh_token(
                &did,
                &NewRefreshToken {
                    id: &id,
                    expires_at: expires,
                    app_password_name: app_password.as_deref(),
                },
            )
        })
        .await?;
        Ok(tokens)
    }
}

impl Pds {
    /// Sequences events on a blocking thread. A failure is logged, not returned: the change
    /// they describe has happened; relays catch up on the account's next event or `#sync`.
    pub async fn sequence(&self, events: Vec<crate::sequencer::Event>) {
        let sequencer = self.sequencer.clone();
        let result = tokio::task::spawn_blocking(move || sequencer.sequence(&events)).await;
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!("sequencing events: {e}"),
            Err(e) => tracing::error!("sequencing task: {e}"),
        }
    }
}

/// What a new account announces, in the reference's order: identity, account, the genesis
/// commit, then a `#sync` of it.
fn signup_events(
    did: &Did,
    handle: &Handle,
    genesis: &crate::repo::CommitData,
) -> Vec<crate::sequencer::Event> {
    use crate::sequencer::{Event, frames};
    let d = did.as_str();
    let event = |kind, body| Event {
        did: d.to_string(),
        kind,
        body,
    };
    let mut events = vec![
        event(
            frames::EventKind::Identity,
            frames::identity_body(d, Some(handle.as_str())),
        ),
        event(
            frames::EventKind::Account,
            frames::account_body(d, true, None),
        ),
        event(frames::EventKind::Commit, frames::commit_body(d, genesis)),
    ];
    if let Some(block) = genesis.new_blocks.get(&genesis.cid) {
        events.push(event(
            frames::EventKind::Sync,
            frames::sync_body(d, genesis.rev.as_str(), &genesis.cid, block),
        ));
    }
    events
}

/// Outbound identity lookups: dev mode (or `PDS_DISABLE_SSRF_PROTECTION`) allows loopback and
/// private addresses and plain http, as the reference's dev mode does.
fn identity_config(config: &Config) -> IdentityConfig {
    let relaxed = config.service.dev_mode || config.fetch.disable_ssrf_protection;
    IdentityConfig {
        plc_url: config.identity.plc_url.clone(),
        timeout: config.identity.resolver_timeout,
        stale_ttl: config.identity.cache_stale_ttl,
        max_ttl: config.identity.cache_max_ttl,
        backup_nameservers: config
            .identity
            .handle_backup_nameservers
            .iter()
            .filter_map(|s| s.parse().ok().or_else(|| format!("{s}:53").parse().ok()))
            .collect(),
        allow_private_addresses: relaxed,
        insecure_http: config.service.dev_mode,
        ..IdentityConfig::default()
    }
}

/// When a new refresh token's stored row expires: its JWT's `exp`.
fn refresh_expiry(tokens: &SessionTokens) -> chrono::DateTime<Utc> {
    chrono::DateTime::from_timestamp(tokens.refresh.exp, 0)
        .unwrap_or_else(|| Utc::now() + acct::REFRESH_TOKEN_TTL)
}

/// JavaScript's `.length`, which the reference's password limits count.
fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// The reference's basic email shape check (a full RFC parse is not what it does either).
fn looks_like_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email.len() <= 254
        && !email.chars().any(char::is_whitespace)
}

/// A taken-down account acting: 401, as the reference's auth check answers.
pub(crate) fn account_taken_down() -> XrpcError {
    XrpcError::new(
        axum::http::StatusCode::UNAUTHORIZED,
        "AccountTakedown",
        "Account has been taken down",
    )
}

/// A deactivated account writing: 401, as the reference's auth check answers.
pub(crate) fn account_deactivated() -> XrpcError {
    XrpcError::new(
        axum::http::StatusCode::UNAUTHORIZED,
        "AccountDeactivated",
        "Account is deactivated",
    )
}

/// Account-store errors as the reference names them.
fn account_error(e: AccountError) -> XrpcError {
    match e {
        AccountError::HandleTaken => {
            XrpcError::bad_request("HandleNotAvailable", "Handle already taken")
        }
        AccountError::EmailTaken => XrpcError::bad_request("InvalidRequest", "Email already taken"),
        AccountError::AccountExists => {
            XrpcError::bad_request("AlreadyExists", "Account already exists")
        }
        AccountError::InvalidInviteCode => {
            XrpcError::bad_request("InvalidInviteCode", "Provided invite code not available")
        }
        AccountError::NotFound(what) => {
            XrpcError::bad_request("NotFound", format!("{what} not found"))
        }
        other => XrpcError::internal(other.to_string()),
    }
}

/// Marks a bring-your-own-DID sign-up in progress for one DID; released on drop.
struct SignUpClaim(String);

static SIGN_UPS_IN_FLIGHT: Mutex<std::collections::BTreeSet<String>> =
    Mutex::new(std::collections::BTreeSet::new());

impl SignUpClaim {
    /// `None` while another sign-up for `did` is in progress.
    fn take(did: &Did) -> Option<SignUpClaim> {
        let mut in_flight = SIGN_UPS_IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
        in_flight
            .insert(did.to_string())
            .then(|| SignUpClaim(did.to_string()))
    }
}

impl Drop for SignUpClaim {
    fn drop(&mut self) {
        SIGN_UPS_IN_FLIGHT
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.0);
    }
}
