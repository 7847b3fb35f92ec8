//! config: the server's typed configuration, read from `PDS_*` environment variables.
//!
//! Variable names, meanings and defaults follow the reference PDS (`@atproto/pds`
//! `src/config/env.ts`, `config.ts`, `secrets.ts`; summarised in `REFERENCE_PDS.md` §9), so an
//! existing `pds.env` works unchanged.
//!
//! Invariants:
//! - A [`Config`] is always complete and consistent: every cross-variable rule (exactly one
//!   blobstore, "both or neither" pairs, a valid service DID, a parseable rotation key) is
//!   checked once in [`Config::from_vars`], so no other module re-validates configuration.
//! - Every error names the variable at fault ([`ConfigError::var`]). Values of secret variables
//!   are never quoted in errors, and secrets are wrapped in [`Secret`], whose `Debug` prints
//!   `[redacted]`, so logging a `Config` is safe.
//! - Parsing is strict where the reference is loose: a boolean must be `true`/`false`/`1`/`0`
//!   and a number must parse, because a typo silently becoming `false` (e.g. for
//!   `PDS_INVITE_REQUIRED`) is worse than a failed start. Empty values count as unset, as in
//!   the reference (`envStr` treats `""` as undefined).
//! - Features berth does not implement (entryway mode, KMS rotation keys) are refused with an
//!   error rather than ignored.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::crypto::{Curve, Keypair};
use crate::store::sqlite::Durability;
use crate::syntax::Did;

/// A configuration problem, always naming the variable (or env-file line) at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("{0} is required")]
    Required(&'static str),
    /// A variable's value does not parse. `value` is already quoted and truncated, or a
    /// placeholder for secrets.
    #[error("{var}: {value} is not {expected}")]
    Invalid {
        var: &'static str,
        value: String,
        expected: &'static str,
    },
    /// A rule between variables is broken (`message` names them all; `var` is the first).
    #[error("{message}")]
    Conflict { var: &'static str, message: String },
    /// A line of an env file could not be parsed.
    #[error("{path}:{line}: {reason}")]
    EnvFile {
        path: String,
        line: usize,
        reason: String,
    },
}

impl ConfigError {
    /// The variable at fault (for env-file errors, the file path).
    pub fn var(&self) -> &str {
        match self {
            ConfigError::Required(var)
            | ConfigError::Invalid { var, .. }
            | ConfigError::Conflict { var, .. } => var,
            ConfigError::EnvFile { path, .. } => path,
        }
    }
}

/// A secret value: `Debug` and `Display` never show it; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Secret<T> {
        Secret(value)
    }

    /// The secret itself. Named loudly so that uses are easy to audit.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The whole server configuration. Grouped like the reference's `ServerConfig`.
#[derive(Debug, Clone)]
pub struct Config {
    pub service: ServiceConfig,
    pub db: DatabaseConfig,
    pub blobstore: BlobstoreConfig,
    pub identity: IdentityConfig,
    pub invites: InviteConfig,
    /// `PDS_EMAIL_SMTP_URL` + `PDS_EMAIL_FROM_ADDRESS`; `None` when email is not configured.
    pub email: Option<EmailConfig>,
    /// `PDS_MODERATION_EMAIL_SMTP_URL` + `PDS_MODERATION_EMAIL_ADDRESS`.
    pub moderation_email: Option<EmailConfig>,
    pub subscription: SubscriptionConfig,
    /// `PDS_BSKY_APP_VIEW_URL` + `PDS_BSKY_APP_VIEW_DID`.
    pub bsky_app_view: Option<AppViewConfig>,
    /// `PDS_MOD_SERVICE_URL` + `PDS_MOD_SERVICE_DID`.
    pub mod_service: Option<ServiceRef>,
    /// `PDS_REPORT_SERVICE_URL` + `PDS_REPORT_SERVICE_DID`; defaults to the mod service.
    pub report_service: Option<ServiceRef>,
    pub rate_limits: RateLimitConfig,
    /// `PDS_CRAWLERS`: relay base URLs to ping with `requestCrawl`.
    pub crawlers: Vec<String>,
    pub fetch: FetchConfig,
    pub secrets: SecretsConfig,
}

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// `PDS_HOSTNAME` (default `localhost`), lowercase, without scheme or port.
    pub hostname: String,
    /// `PDS_PORT` (default 2583).
    pub port: u16,
    /// `https://<hostname>`, or `http://localhost:<port>` when the hostname is `localhost`.
    /// No trailing slash.
    pub public_url: String,
    /// `PDS_SERVICE_DID` (default `did:web:<hostname>`): the `aud` of session JWTs.
    pub did: Did,
    /// `PDS_SERVICE_NAME` (default `<hostname> PDS`).
    pub name: String,
    /// `PDS_VERSION` (default this crate's version): returned by `/xrpc/_health`.
    pub version: String,
    /// `PDS_DEV_MODE` (default false): allows a non-https public URL.
    pub dev_mode: bool,
    pub home_url: Option<String>,
    pub logo_url: Option<String>,
    pub privacy_policy_url: Option<String>,
    pub terms_of_service_url: Option<String>,
    pub support_url: Option<String>,
    /// `PDS_CONTACT_EMAIL_ADDRESS`: describeServer's `contact.email`.
    pub contact_email: Option<String>,
    /// `PDS_ACCEPTING_REPO_IMPORTS` (default true).
    pub accepting_repo_imports: bool,
    /// `PDS_BLOB_UPLOAD_LIMIT` in bytes (default 5 MiB).
    pub blob_upload_limit: u64,
    /// `PDS_MAX_REPO_IMPORT_SIZE` in bytes; unset means [`Self::blob_upload_limit`] applies
    /// (see [`ServiceConfig::repo_import_limit`]).
    pub max_repo_import_size: Option<u64>,
    /// `PDS_BLOB_GC_TEMP_AGE_SECS` (berth only; default 3600): how old an unreferenced
    /// temporary upload must be before blob garbage collection deletes it.
    pub blob_gc_temp_age: Duration,
    /// `PDS_BLOB_GC_INTERVAL_SECS` (berth only; default 3600, 0 = off): how often the server
    /// collects blob garbage; `None` when off.
    pub blob_gc_interval: Option<Duration>,
}

impl ServiceConfig {
    /// The effective importRepo body limit.
    pub fn repo_import_limit(&self) -> u64 {
        self.max_repo_import_size.unwrap_or(self.blob_upload_limit)
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `PDS_DATA_DIRECTORY`; when unset the database paths are relative to the working
    /// directory, as in the reference.
    pub data_directory: Option<PathBuf>,
    /// `PDS_ACCOUNT_DB_LOCATION` (default `<data>/account.sqlite`).
    pub account_db: PathBuf,
    /// `PDS_SEQUENCER_DB_LOCATION` (default `<data>/sequencer.sqlite`).
    pub sequencer_db: PathBuf,
    /// `PDS_DID_CACHE_DB_LOCATION` (default `<data>/did_cache.sqlite`).
    pub did_cache_db: PathBuf,
    /// `PDS_ACTOR_STORE_DIRECTORY` (default `<data>/actors`).
    pub actor_store_directory: PathBuf,
    /// `PDS_SQLITE_DISABLE_WAL_AUTO_CHECKPOINT` (default false): the per-repo stores and the
    /// sequencer leave WAL checkpoints to an external tool (Litestream, say).
    pub disable_wal_auto_checkpoint: bool,
    /// `PDS_SQLITE_SYNCHRONOUS` (berth only): `normal` (the default) or `full`, for the
    /// per-repo stores and the sequencer. `normal` is what the reference runs with (its
    /// better-sqlite3 build sets `SQLITE_DEFAULT_WAL_SYNCHRONOUS=1`): a commit survives a
    /// crash of the process but the last ones may be lost to a power cut. `full` fsyncs every
    /// commit. Account rows (sign-ups, keys, handles) are always written with `full`.
    pub repo_durability: Durability,
}

/// Exactly one blobstore is configured.
#[derive(Debug, Clone)]
pub enum BlobstoreConfig {
    Disk {
        /// `PDS_BLOBSTORE_DISK_LOCATION`.
        location: PathBuf,
        /// `PDS_BLOBSTORE_DISK_TMP_LOCATION` (default `<location>/tempt`, as the reference).
        tmp_location: PathBuf,
    },
    S3(S3Config),
}

#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub force_path_style: bool,
    /// Access key id and secret (both or neither; neither means ambient credentials).
    pub credentials: Option<S3Credentials>,
    /// `PDS_BLOBSTORE_S3_UPLOAD_TIMEOUT_MS` (default 20 s).
    pub upload_timeout: Duration,
    /// `PDS_BLOBSTORE_S3_REQUEST_TIMEOUT_MS` (default unset).
    pub request_timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret<String>,
}

#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// `PDS_DID_PLC_URL` (default `https://plc.directory`), no trailing slash.
    pub plc_url: String,
    /// `PDS_DID_CACHE_STALE_TTL` ms (default 1 h).
    pub cache_stale_ttl: Duration,
    /// `PDS_DID_CACHE_MAX_TTL` ms (default 1 day).
    pub cache_max_ttl: Duration,
    /// `PDS_ID_RESOLVER_TIMEOUT` ms (default 3 s).
    pub resolver_timeout: Duration,
    /// `PDS_RECOVERY_DID_KEY`: a did:key placed first in new accounts' rotation keys.
    pub recovery_did_key: Option<String>,
    /// `PDS_SERVICE_HANDLE_DOMAINS`: each starts with `.` and is lowercase. Default
    /// `.<hostname>`, or `.test` when the hostname is `localhost` (as the reference).
    pub service_handle_domains: Vec<String>,
    /// `PDS_HANDLE_BACKUP_NAMESERVERS`.
    pub handle_backup_nameservers: Vec<String>,
    /// `PDS_ENABLE_DID_DOC_WITH_SESSION` (default false).
    pub enable_did_doc_with_session: bool,
}

#[derive(Debug, Clone)]
pub struct InviteConfig {
    /// `PDS_INVITE_REQUIRED`: true unless explicitly false.
    pub required: bool,
    /// `PDS_INVITE_INTERVAL` ms between routinely granted codes (unset: none).
    pub interval: Option<Duration>,
    /// `PDS_INVITE_EPOCH` ms (default 0).
    pub epoch: Duration,
}

#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// The SMTP URL may carry a password, so it is a secret.
    pub smtp_url: Secret<String>,
    pub from_address: String,
    /// `PDS_EMAIL_DISABLE_CONFIRMATION_LINK` (only meaningful for the account email).
    pub disable_confirmation_link: bool,
}

#[derive(Debug, Clone)]
pub struct SubscriptionConfig {
    /// `PDS_MAX_SUBSCRIPTION_BUFFER` (default 500): frames queued per firehose subscriber.
    pub max_buffer: usize,
    /// `PDS_REPO_BACKFILL_LIMIT_MS` (default 1 day): how far back a cursor may reach.
    pub repo_backfill_limit: Duration,
}

#[derive(Debug, Clone)]
pub struct AppViewConfig {
    pub url: String,
    pub did: Did,
    /// `PDS_BSKY_APP_VIEW_CDN_URL_PATTERN`.
    pub cdn_url_pattern: Option<String>,
}

/// A remote atproto service: base URL and DID.
#[derive(Debug, Clone)]
pub struct ServiceRef {
    pub url: String,
    pub did: Did,
}

#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// `PDS_RATE_LIMITS_ENABLED` (default false).
    pub enabled: bool,
    /// `PDS_RATE_LIMIT_BYPASS_KEY`, compared to the `x-ratelimit-bypass` header.
    pub bypass_key: Option<Secret<String>>,
    /// `PDS_RATE_LIMIT_BYPASS_IPS`, CIDR suffixes stripped (exact IPs only, as the reference).
    pub bypass_ips: Vec<std::net::IpAddr>,
}

#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// `PDS_DISABLE_SSRF_PROTECTION` (default: the dev-mode value).
    pub disable_ssrf_protection: bool,
    /// `PDS_FETCH_MAX_RESPONSE_SIZE` (default 512 KiB).
    pub max_response_size: u64,
}

#[derive(Debug, Clone)]
pub struct SecretsConfig {
    /// `PDS_JWT_SECRET` (required): HS256 key for session tokens (its UTF-8 bytes).
    pub jwt_secret: Secret<String>,
    /// `PDS_ADMIN_PASSWORD` (required): admin Basic auth.
    pub admin_password: Secret<String>,
    /// `PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX` (required). `Keypair`'s `Debug` shows only
    /// the public key.
    pub plc_rotation_key: Keypair,
    /// `PDS_DPOP_SECRET` (optional, 32-byte hex).
    pub dpop_secret: Option<Secret<String>>,
}

/// Default values the reference uses.
pub mod defaults {
    pub const PORT: u16 = 2583;
    pub const HOSTNAME: &str = "localhost";
    pub const PLC_URL: &str = "https://plc.directory";
    pub const BLOB_UPLOAD_LIMIT: u64 = 5 * 1024 * 1024;
    /// Blob garbage collection: the temporary-upload grace period and the interval, seconds.
    pub const BLOB_GC_SECS: u64 = 3600;
    pub const DID_CACHE_STALE_TTL_MS: u64 = 60 * 60 * 1000;
    pub const DID_CACHE_MAX_TTL_MS: u64 = 24 * 60 * 60 * 1000;
    pub const ID_RESOLVER_TIMEOUT_MS: u64 = 3000;
    pub const MAX_SUBSCRIPTION_BUFFER: usize = 500;
    pub const REPO_BACKFILL_LIMIT_MS: u64 = 24 * 60 * 60 * 1000;
    pub const S3_UPLOAD_TIMEOUT_MS: u64 = 20_000;
    pub const FETCH_MAX_RESPONSE_SIZE: u64 = 512 * 1024;
}

/// Variables whose values are never quoted in errors.
const SECRET_VARS: &[&str] = &[
    "PDS_JWT_SECRET",
    "PDS_ADMIN_PASSWORD",
    "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX",
    "PDS_DPOP_SECRET",
    "PDS_BLOBSTORE_S3_SECRET_ACCESS_KEY",
    "PDS_EMAIL_SMTP_URL",
    "PDS_MODERATION_EMAIL_SMTP_URL",
    "PDS_RATE_LIMIT_BYPASS_KEY",
];

/// Read access to the variables with the reference's "empty means unset" rule and typed,
/// variable-naming errors.
struct Vars<'a>(&'a HashMap<String, String>);

impl Vars<'_> {
    fn str(&self, var: &'static str) -> Option<String> {
        self.0
            .get(var)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    fn required(&self, var: &'static str) -> Result<String, ConfigError> {
        self.str(var).ok_or(ConfigError::Required(var))
    }

    fn invalid(&self, var: &'static str, expected: &'static str) -> ConfigError {
        let value = if SECRET_VARS.contains(&var) {
            "(value hidden)".to_owned()
        } else {
            let raw = self.str(var).unwrap_or_default();
            let shown: String = raw.chars().take(64).collect();
            format!("{shown:?}")
        };
        ConfigError::Invalid {
            var,
            value,
            expected,
        }
    }

    fn bool(&self, var: &'static str) -> Result<Option<bool>, ConfigError> {
        match self.str(var).as_deref() {
            None => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(_) => Err(self.invalid(var, "a boolean (true or false)")),
        }
    }

    fn u64(&self, var: &'static str) -> Result<Option<u64>, ConfigError> {
        self.str(var)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| self.invalid(var, "a non-negative integer"))
            })
            .transpose()
    }

    fn millis(&self, var: &'static str) -> Result<Option<Duration>, ConfigError> {
        Ok(self.u64(var)?.map(Duration::from_millis))
    }

    fn url(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        self.str(var)
            .map(|v| {
                if is_http_url(&v) {
                    Ok(v.trim_end_matches('/').to_owned())
                } else {
                    Err(self.invalid(var, "an http(s) URL"))
                }
            })
            .transpose()
    }

    fn did(&self, var: &'static str) -> Result<Option<Did>, ConfigError> {
        self.str(var)
            .map(|v| {
                v.parse::<Did>()
                    .map_err(|_| self.invalid(var, "a valid DID"))
            })
            .transpose()
    }

    /// Comma-separated list (the reference's `envList`), entries trimmed, empties dropped.
    fn list(&self, var: &'static str) -> Vec<String> {
        self.str(var)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Both set or both unset.
    fn pair(
        &self,
        a: &'static str,
        b: &'static str,
    ) -> Result<Option<(String, String)>, ConfigError> {
        match (self.str(a), self.str(b)) {
            (Some(x), Some(y)) => Ok(Some((x, y))),
            (None, None) => Ok(None),
            (Some(_), None) => Err(ConfigError::Conflict {
                var: b,
                message: format!("{b} is required when {a} is set"),
            }),
            (None, Some(_)) => Err(ConfigError::Conflict {
                var: a,
                message: format!("{a} is required when {b} is set"),
            }),
        }
    }
}

fn is_http_url(v: &str) -> bool {
    let rest = v
        .strip_prefix("https://")
        .or_else(|| v.strip_prefix("http://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace))
}

impl Config {
    /// Builds the configuration from variables (usually the process environment).
    pub fn from_vars(env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let v = Vars(env);

        if v.str("PDS_ENTRYWAY_URL").is_some() {
            return Err(ConfigError::Conflict {
                var: "PDS_ENTRYWAY_URL",
                message: "PDS_ENTRYWAY_URL: entryway mode is not supported by berth".into(),
            });
        }

        // --- service ---
        let hostname = v
            .str("PDS_HOSTNAME")
            .unwrap_or_else(|| defaults::HOSTNAME.to_owned())
            .to_ascii_lowercase();
        if !is_plain_hostname(&hostname) {
            return Err(v.invalid("PDS_HOSTNAME", "a bare hostname (no scheme, port or path)"));
        }
        let port = match v.str("PDS_PORT") {
            None => defaults::PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(v.invalid("PDS_PORT", "a port")),
            },
        };
        let public_url = if hostname == "localhost" {
            format!("http://localhost:{port}")
        } else {
            format!("https://{hostname}")
        };
        let dev_mode = v.bool("PDS_DEV_MODE")?.unwrap_or(false);
        // The reference refuses to start when its OAuth resource URL is not https outside dev
        // mode; failing here gives the operator the reason instead of a later surprise.
        if !dev_mode && !public_url.starts_with("https://") {
            return Err(ConfigError::Conflict {
                var: "PDS_HOSTNAME",
                message: format!(
                    "PDS_HOSTNAME: {hostname:?} gives the non-https public URL {public_url}; \
                     set PDS_DEV_MODE=true for local development"
                ),
            });
        }
        let did = match v.did("PDS_SERVICE_DID")? {
            Some(d) => d,
            None => format!("did:web:{hostname}")
                .parse::<Did>()
                .map_err(|_| v.invalid("PDS_HOSTNAME", "usable in did:web:<hostname>"))?,
        };
        let blob_upload_limit = v
            .u64("PDS_BLOB_UPLOAD_LIMIT")?
            .unwrap_or(defaults::BLOB_UPLOAD_LIMIT);
        let service = ServiceConfig {
            name: v
                .str("PDS_SERVICE_NAME")
                .unwrap_or_else(|| format!("{hostname} PDS")),
            version: v
                .str("PDS_VERSION")
                .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned()),
            home_url: v.url("PDS_HOME_URL")?,
            logo_url: v.url("PDS_LOGO_URL")?,
            privacy_policy_url: v.url("PDS_PRIVACY_POLICY_URL")?,
            terms_of_service_url: v.url("PDS_TERMS_OF_SERVICE_URL")?,
            support_url: v.url("PDS_SUPPORT_URL")?,
            contact_email: v.str("PDS_CONTACT_EMAIL_ADDRESS"),
            accepting_repo_imports: v.bool("PDS_ACCEPTING_REPO_IMPORTS")?.unwrap_or(true),
            blob_upload_limit,
            max_repo_import_size: v.u64("PDS_MAX_REPO_IMPORT_SIZE")?,
            blob_gc_temp_age: Duration::from_secs(
                v.u64("PDS_BLOB_GC_TEMP_AGE_SECS")?
                    .unwrap_or(defaults::BLOB_GC_SECS),
            ),
            blob_gc_interval: match v
                .u64("PDS_BLOB_GC_INTERVAL_SECS")?
                .unwrap_or(defaults::BLOB_GC_SECS)
            {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
            hostname: hostname.clone(),
            port,
            public_url,
            did,
            dev_mode,
        };

        // --- databases ---
        let data_directory = v.str("PDS_DATA_DIRECTORY").map(PathBuf::from);
        let in_data = |name: &str| match &data_directory {
            Some(dir) => dir.join(name),
            None => PathBuf::from(name),
        };
        let db = DatabaseConfig {
            account_db: v
                .str("PDS_ACCOUNT_DB_LOCATION")
                .map_or_else(|| in_data("account.sqlite"), PathBuf::from),
            sequencer_db: v
                .str("PDS_SEQUENCER_DB_LOCATION")
                .map_or_else(|| in_data("sequencer.sqlite"), PathBuf::from),
            did_cache_db: v
                .str("PDS_DID_CACHE_DB_LOCATION")
                .map_or_else(|| in_data("did_cache.sqlite"), PathBuf::from),
            actor_store_directory: v
                .str("PDS_ACTOR_STORE_DIRECTORY")
                .map_or_else(|| in_data("actors"), PathBuf::from),
            disable_wal_auto_checkpoint: v
                .bool("PDS_SQLITE_DISABLE_WAL_AUTO_CHECKPOINT")?
                .unwrap_or(false),
            repo_durability: match v
                .str("PDS_SQLITE_SYNCHRONOUS")
                .map(|s| s.to_ascii_lowercase())
                .as_deref()
            {
                None | Some("normal") => Durability::Normal,
                Some("full") => Durability::Full,
                Some(_) => return Err(v.invalid("PDS_SQLITE_SYNCHRONOUS", "normal or full")),
            },
            data_directory,
        };

        // --- blobstore: exactly one of disk or S3 ---
        let blobstore = match (
            v.str("PDS_BLOBSTORE_DISK_LOCATION"),
            v.str("PDS_BLOBSTORE_S3_BUCKET"),
        ) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Conflict {
                    var: "PDS_BLOBSTORE_DISK_LOCATION",
                    message: "set only one of PDS_BLOBSTORE_DISK_LOCATION and \
                              PDS_BLOBSTORE_S3_BUCKET"
                        .into(),
                });
            }
            (None, None) => {
                return Err(ConfigError::Conflict {
                    var: "PDS_BLOBSTORE_DISK_LOCATION",
                    message: "PDS_BLOBSTORE_DISK_LOCATION or PDS_BLOBSTORE_S3_BUCKET is required"
                        .into(),
                });
            }
            (Some(disk), None) => {
                let location = PathBuf::from(disk);
                BlobstoreConfig::Disk {
                    tmp_location: v
                        .str("PDS_BLOBSTORE_DISK_TMP_LOCATION")
                        .map_or_else(|| location.join("tempt"), PathBuf::from),
                    location,
                }
            }
            (None, Some(bucket)) => BlobstoreConfig::S3(S3Config {
                bucket,
                region: v.str("PDS_BLOBSTORE_S3_REGION"),
                endpoint: v.url("PDS_BLOBSTORE_S3_ENDPOINT")?,
                force_path_style: v
                    .bool("PDS_BLOBSTORE_S3_FORCE_PATH_STYLE")?
                    .unwrap_or(false),
                credentials: v
                    .pair(
                        "PDS_BLOBSTORE_S3_ACCESS_KEY_ID",
                        "PDS_BLOBSTORE_S3_SECRET_ACCESS_KEY",
                    )?
                    .map(|(id, secret)| S3Credentials {
                        access_key_id: id,
                        secret_access_key: Secret(secret),
                    }),
                upload_timeout: v
                    .millis("PDS_BLOBSTORE_S3_UPLOAD_TIMEOUT_MS")?
                    .unwrap_or(Duration::from_millis(defaults::S3_UPLOAD_TIMEOUT_MS)),
                request_timeout: v.millis("PDS_BLOBSTORE_S3_REQUEST_TIMEOUT_MS")?,
            }),
        };

        // --- identity ---
        let service_handle_domains = {
            let listed = v.list("PDS_SERVICE_HANDLE_DOMAINS");
            if listed.is_empty() {
                if hostname == "localhost" {
                    vec![".test".to_owned()]
                } else {
                    vec![format!(".{hostname}")]
                }
            } else {
                let mut out = Vec::with_capacity(listed.len());
                for d in listed {
                    let d = d.to_ascii_lowercase();
                    // The reference compares with `endsWith(domain)`, so a domain without the
                    // leading dot would let `evilexample.com` match `example.com`.
                    if !d.starts_with('.') || d.len() < 2 || !is_plain_hostname(&d[1..]) {
                        return Err(v.invalid(
                            "PDS_SERVICE_HANDLE_DOMAINS",
                            "a comma-separated list of domains each starting with '.'",
                        ));
                    }
                    out.push(d);
                }
                out
            }
        };
        let identity = IdentityConfig {
            plc_url: v
                .url("PDS_DID_PLC_URL")?
                .unwrap_or_else(|| defaults::PLC_URL.to_owned()),
            cache_stale_ttl: v
                .millis("PDS_DID_CACHE_STALE_TTL")?
                .unwrap_or(Duration::from_millis(defaults::DID_CACHE_STALE_TTL_MS)),
            cache_max_ttl: v
                .millis("PDS_DID_CACHE_MAX_TTL")?
                .unwrap_or(Duration::from_millis(defaults::DID_CACHE_MAX_TTL_MS)),
            resolver_timeout: v
                .millis("PDS_ID_RESOLVER_TIMEOUT")?
                .unwrap_or(Duration::from_millis(defaults::ID_RESOLVER_TIMEOUT_MS)),
            recovery_did_key: match v.str("PDS_RECOVERY_DID_KEY") {
                Some(k) if !k.starts_with("did:key:") => {
                    return Err(v.invalid("PDS_RECOVERY_DID_KEY", "a did:key"));
                }
                other => other,
            },
            service_handle_domains,
            handle_backup_nameservers: v.list("PDS_HANDLE_BACKUP_NAMESERVERS"),
            enable_did_doc_with_session: v
                .bool("PDS_ENABLE_DID_DOC_WITH_SESSION")?
                .unwrap_or(false),
        };

        let invites = InviteConfig {
            required: v.bool("PDS_INVITE_REQUIRED")?.unwrap_or(true),
            interval: v.millis("PDS_INVITE_INTERVAL")?,
            epoch: v.millis("PDS_INVITE_EPOCH")?.unwrap_or(Duration::ZERO),
        };

        let email = v
            .pair("PDS_EMAIL_SMTP_URL", "PDS_EMAIL_FROM_ADDRESS")?
            .map(|(url, from)| -> Result<EmailConfig, ConfigError> {
                Ok(EmailConfig {
                    smtp_url: Secret(url),
                    from_address: from,
                    disable_confirmation_link: v
                        .bool("PDS_EMAIL_DISABLE_CONFIRMATION_LINK")?
                        .unwrap_or(false),
                })
            })
            .transpose()?;
        let moderation_email = v
            .pair(
                "PDS_MODERATION_EMAIL_SMTP_URL",
                "PDS_MODERATION_EMAIL_ADDRESS",
            )?
            .map(|(url, from)| EmailConfig {
                smtp_url: Secret(url),
                from_address: from,
                disable_confirmation_link: false,
            });

        let subscription = SubscriptionConfig {
            max_buffer: match v.u64("PDS_MAX_SUBSCRIPTION_BUFFER")? {
                None => defaults::MAX_SUBSCRIPTION_BUFFER,
                Some(n) => usize::try_from(n)
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| v.invalid("PDS_MAX_SUBSCRIPTION_BUFFER", "a positive size"))?,
            },
            repo_backfill_limit: v
                .millis("PDS_REPO_BACKFILL_LIMIT_MS")?
                .unwrap_or(Duration::from_millis(defaults::REPO_BACKFILL_LIMIT_MS)),
        };

        // The reference requires the AppView DID whenever its URL is set.
        let bsky_app_view = match v.url("PDS_BSKY_APP_VIEW_URL")? {
            None => None,
            Some(url) => Some(AppViewConfig {
                url,
                did: v
                    .did("PDS_BSKY_APP_VIEW_DID")?
                    .ok_or(ConfigError::Required("PDS_BSKY_APP_VIEW_DID"))?,
                cdn_url_pattern: v.str("PDS_BSKY_APP_VIEW_CDN_URL_PATTERN"),
            }),
        };
        let mod_service = service_ref(&v, "PDS_MOD_SERVICE_URL", "PDS_MOD_SERVICE_DID")?;
        let report_service = service_ref(&v, "PDS_REPORT_SERVICE_URL", "PDS_REPORT_SERVICE_DID")?
            .or_else(|| mod_service.clone());

        let mut bypass_ips = Vec::new();
        for entry in v.list("PDS_RATE_LIMIT_BYPASS_IPS") {
            let addr = entry
                .split_once('/')
                .map_or(entry.as_str(), |(addr, _)| addr);
            bypass_ips.push(addr.parse().map_err(|_| ConfigError::Invalid {
                var: "PDS_RATE_LIMIT_BYPASS_IPS",
                value: format!("{:?}", entry.chars().take(64).collect::<String>()),
                expected: "a list of IP addresses",
            })?);
        }
        let rate_limits = RateLimitConfig {
            enabled: v.bool("PDS_RATE_LIMITS_ENABLED")?.unwrap_or(false),
            bypass_key: v.str("PDS_RATE_LIMIT_BYPASS_KEY").map(Secret),
            bypass_ips,
        };

        let mut crawlers = Vec::new();
        for c in v.list("PDS_CRAWLERS") {
            if !is_http_url(&c) {
                return Err(ConfigError::Invalid {
                    var: "PDS_CRAWLERS",
                    value: format!("{:?}", c.chars().take(64).collect::<String>()),
                    expected: "an http(s) URL",
                });
            }
            crawlers.push(c.trim_end_matches('/').to_owned());
        }

        let fetch = FetchConfig {
            disable_ssrf_protection: v.bool("PDS_DISABLE_SSRF_PROTECTION")?.unwrap_or(dev_mode),
            max_response_size: v
                .u64("PDS_FETCH_MAX_RESPONSE_SIZE")?
                .unwrap_or(defaults::FETCH_MAX_RESPONSE_SIZE),
        };

        // --- secrets ---
        let jwt_secret = Secret(v.required("PDS_JWT_SECRET")?);
        let admin_password = Secret(v.required("PDS_ADMIN_PASSWORD")?);
        let hex = v.str("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX");
        let kms = v.str("PDS_PLC_ROTATION_KEY_KMS_KEY_ID");
        let plc_rotation_key = match (hex, kms) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Conflict {
                    var: "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX",
                    message: "set only one of PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX and \
                              PDS_PLC_ROTATION_KEY_KMS_KEY_ID"
                        .into(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Conflict {
                    var: "PDS_PLC_ROTATION_KEY_KMS_KEY_ID",
                    message: "PDS_PLC_ROTATION_KEY_KMS_KEY_ID: KMS keys are not supported; \
                              use PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX"
                        .into(),
                });
            }
            (None, None) => {
                return Err(ConfigError::Required(
                    "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX",
                ));
            }
            (Some(hex), None) => Keypair::from_private_hex(Curve::K256, &hex).map_err(|_| {
                v.invalid(
                    "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX",
                    "a 32-byte secp256k1 private key in hex",
                )
            })?,
        };
        let dpop_secret = match v.str("PDS_DPOP_SECRET") {
            Some(s) if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) => {
                return Err(v.invalid("PDS_DPOP_SECRET", "32 bytes in hex"));
            }
            other => other.map(Secret),
        };
        let secrets = SecretsConfig {
            jwt_secret,
            admin_password,
            plc_rotation_key,
            dpop_secret,
        };

        Ok(Config {
            service,
            db,
            blobstore,
            identity,
            invites,
            email,
            moderation_email,
            subscription,
            bsky_app_view,
            mod_service,
            report_service,
            rate_limits,
            crawlers,
            fetch,
            secrets,
        })
    }

    /// From the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_vars(&process_env())
    }

    /// From an env file (like the reference distro's `pds.env`) overlaid by the process
    /// environment: a variable set in the real environment wins over the file.
    pub fn from_env_file(path: &Path) -> Result<Config, ConfigError> {
        Config::from_env_file_and_vars(path, &process_env())
    }

    /// [`Config::from_env_file`] with an explicit overlay instead of the process environment:
    /// every variable in `env` wins over the file.
    pub fn from_env_file_and_vars(
        path: &Path,
        env: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::EnvFile {
            path: path.display().to_string(),
            line: 0,
            reason: e.to_string(),
        })?;
        let mut vars = parse_env_file(&text).map_err(|(line, reason)| ConfigError::EnvFile {
            path: path.display().to_string(),
            line,
            reason,
        })?;
        vars.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
        Config::from_vars(&vars)
    }

    /// A complete development configuration rooted at `data_dir` (dev mode, localhost, a disk
    /// blobstore, fresh random secrets), for tests and local experiments. `overrides` are
    /// applied on top, as if they were environment variables.
    pub fn for_testing(data_dir: &Path, overrides: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut vars = HashMap::new();
        let dir = data_dir.display().to_string();
        vars.insert("PDS_DEV_MODE".into(), "true".into());
        vars.insert("PDS_DATA_DIRECTORY".into(), dir.clone());
        vars.insert(
            "PDS_BLOBSTORE_DISK_LOCATION".into(),
            data_dir.join("blocks").display().to_string(),
        );
        vars.insert("PDS_JWT_SECRET".into(), random_hex());
        vars.insert("PDS_ADMIN_PASSWORD".into(), random_hex());
        vars.insert(
            "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX".into(),
            Keypair::generate(Curve::K256).to_private_hex(),
        );
        for (k, val) in overrides {
            vars.insert((*k).to_owned(), (*val).to_owned());
        }
        Config::from_vars(&vars)
    }
}

fn random_hex() -> String {
    // A throwaway k256 scalar is a convenient source of 32 CSPRNG bytes.
    Keypair::generate(Curve::K256).to_private_hex()
}

fn service_ref(
    v: &Vars<'_>,
    url_var: &'static str,
    did_var: &'static str,
) -> Result<Option<ServiceRef>, ConfigError> {
    match v.pair(url_var, did_var)? {
        None => Ok(None),
        Some(_) => Ok(Some(ServiceRef {
            url: v.url(url_var)?.ok_or(ConfigError::Required(url_var))?,
            did: v.did(did_var)?.ok_or(ConfigError::Required(did_var))?,
        })),
    }
}

/// A hostname without scheme, port, path or whitespace: letters, digits, `-` and `.`.
fn is_plain_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && !h.starts_with('.')
        && !h.ends_with('.')
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The process environment; variables that are not valid Unicode are skipped (no `PDS_*`
/// value we read can be non-Unicode and still valid).
fn process_env() -> HashMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Parses an env file: `KEY=value` lines, `#` comment lines, blank lines, an optional
/// `export ` prefix, and values optionally wrapped in matching single or double quotes (the
/// quotes are removed; inside double quotes `\n`, `\"` and `\\` are unescaped). An unquoted
/// value ends at ` #` (an inline comment). Later lines win. Errors give the 1-based line.
pub fn parse_env_file(text: &str) -> Result<HashMap<String, String>, (usize, String)> {
    let mut out = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some((key, value)) = line.split_once('=') else {
            return Err((line_no, "expected KEY=value".into()));
        };
        let key = key.trim();
        let key_ok = !key.is_empty()
            && !key.starts_with(|c: char| c.is_ascii_digit())
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !key_ok {
            return Err((line_no, format!("invalid variable name {key:?}")));
        }
        let value = value.trim();
        let value = if let Some(rest) = value.strip_prefix('"') {
            let Some(end) = rest.rfind('"') else {
                return Err((line_no, format!("{key}: unterminated double quote")));
            };
            unescape_double_quoted(&rest[..end])
        } else if let Some(rest) = value.strip_prefix('\'') {
            let Some(end) = rest.rfind('\'') else {
                return Err((line_no, format!("{key}: unterminated single quote")));
            };
            rest[..end].to_owned()
        } else {
            match value.find(" #") {
                Some(pos) => value[..pos].trim_end().to_owned(),
                None => value.to_owned(),
            }
        };
        out.insert(key.to_owned(), value);
    }
    Ok(out)
}

fn unescape_double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}
