//! Configuration from `PDS_*` variables: reference defaults, variable-naming errors, env files,
//! and secrets kept out of `Debug`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use berth::config::{BlobstoreConfig, Config, ConfigError, parse_env_file};

const JWT: &str = "jwt-secret-value-1234";
const ADMIN: &str = "admin-password-value-5678";
const ROTATION_HEX: &str = "9085d2bef69286a6cbb51623c8fa258629945cd55ca705cc4e66700396894e0c";

fn minimal() -> HashMap<String, String> {
    [
        ("PDS_HOSTNAME", "pds.example.com"),
        ("PDS_JWT_SECRET", JWT),
        ("PDS_ADMIN_PASSWORD", ADMIN),
        ("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX", ROTATION_HEX),
        ("PDS_BLOBSTORE_DISK_LOCATION", "/pds/blocks"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn with(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env = minimal();
    for (k, v) in pairs {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    env
}

fn without(var: &str) -> HashMap<String, String> {
    let mut env = minimal();
    env.remove(var);
    env
}

fn err(env: &HashMap<String, String>) -> ConfigError {
    match Config::from_vars(env) {
        Ok(_) => panic!("expected a configuration error"),
        Err(e) => e,
    }
}

#[test]
fn minimal_env_gets_reference_defaults() {
    let c = Config::from_vars(&minimal()).unwrap();
    let s = &c.service;
    assert_eq!(s.hostname, "pds.example.com");
    assert_eq!(s.port, 2583);
    assert_eq!(s.public_url, "https://pds.example.com");
    assert_eq!(s.did.as_str(), "did:web:pds.example.com");
    assert_eq!(s.name, "pds.example.com PDS");
    assert_eq!(s.version, env!("CARGO_PKG_VERSION"));
    assert!(!s.dev_mode);
    assert!(s.accepting_repo_imports);
    assert_eq!(s.blob_upload_limit, 5_242_880);
    assert_eq!(s.max_repo_import_size, None);
    assert_eq!(s.repo_import_limit(), 5_242_880);
    assert_eq!(s.contact_email, None);
    assert_eq!(s.privacy_policy_url, None);

    assert_eq!(c.db.data_directory, None);
    assert_eq!(c.db.account_db, PathBuf::from("account.sqlite"));
    assert_eq!(c.db.sequencer_db, PathBuf::from("sequencer.sqlite"));
    assert_eq!(c.db.did_cache_db, PathBuf::from("did_cache.sqlite"));
    assert_eq!(c.db.actor_store_directory, PathBuf::from("actors"));

    match &c.blobstore {
        BlobstoreConfig::Disk {
            location,
            tmp_location,
        } => {
            assert_eq!(location, &PathBuf::from("/pds/blocks"));
            assert_eq!(tmp_location, &PathBuf::from("/pds/blocks/tempt"));
        }
        other => panic!("expected disk blobstore, got {other:?}"),
    }

    assert_eq!(c.identity.plc_url, "https://plc.directory");
    assert_eq!(c.identity.service_handle_domains, vec![".pds.example.com"]);
    assert_eq!(c.identity.cache_stale_ttl, Duration::from_secs(3600));
    assert_eq!(c.identity.cache_max_ttl, Duration::from_secs(86400));
    assert_eq!(c.identity.resolver_timeout, Duration::from_secs(3));
    assert!(c.invites.required);
    assert_eq!(c.invites.interval, None);
    assert!(c.email.is_none());
    assert!(c.moderation_email.is_none());
    assert_eq!(c.subscription.max_buffer, 500);
    assert!(c.bsky_app_view.is_none());
    assert!(c.mod_service.is_none() && c.report_service.is_none());
    assert!(c.crawlers.is_empty());
    assert!(!c.rate_limits.enabled);
    assert!(!c.fetch.disable_ssrf_protection);
    assert_eq!(c.fetch.max_response_size, 524_288);
    assert_eq!(c.secrets.jwt_secret.expose(), JWT);
    assert_eq!(c.secrets.admin_password.expose(), ADMIN);
    assert_eq!(c.secrets.plc_rotation_key.to_private_hex(), ROTATION_HEX);
}

#[test]
fn data_directory_and_overrides() {
    let c = Config::from_vars(&with(&[
        ("PDS_DATA_DIRECTORY", "/pds"),
        ("PDS_SEQUENCER_DB_LOCATION", "/fast/seq.sqlite"),
        ("PDS_BLOBSTORE_DISK_TMP_LOCATION", "/tmp/blobs"),
    ]))
    .unwrap();
    assert_eq!(c.db.data_directory, Some(PathBuf::from("/pds")));
    assert_eq!(c.db.account_db, PathBuf::from("/pds/account.sqlite"));
    assert_eq!(c.db.sequencer_db, PathBuf::from("/fast/seq.sqlite"));
    assert_eq!(c.db.did_cache_db, PathBuf::from("/pds/did_cache.sqlite"));
    assert_eq!(c.db.actor_store_directory, PathBuf::from("/pds/actors"));
    let BlobstoreConfig::Disk { tmp_location, .. } = &c.blobstore else {
        panic!("disk expected")
    };
    assert_eq!(tmp_location, &PathBuf::from("/tmp/blobs"));
}

#[test]
fn explicit_values_are_used() {
    let c = Config::from_vars(&with(&[
        ("PDS_PORT", "3000"),
        ("PDS_SERVICE_DID", "did:plc:ewvi7nxzyoun6zhxrhs64oiz"),
        ("PDS_SERVICE_NAME", "My PDS"),
        ("PDS_VERSION", "9.9.9"),
        ("PDS_SERVICE_HANDLE_DOMAINS", ".one.test, .Two.test"),
        ("PDS_INVITE_REQUIRED", "false"),
        (
            "PDS_CRAWLERS",
            "https://bsky.network/, https://relay.example.com",
        ),
        ("PDS_BLOB_UPLOAD_LIMIT", "104857600"),
        ("PDS_MAX_REPO_IMPORT_SIZE", "209715200"),
        ("PDS_ACCEPTING_REPO_IMPORTS", "false"),
        ("PDS_DID_PLC_URL", "https://plc.example.com/"),
        ("PDS_DID_CACHE_STALE_TTL", "1000"),
        ("PDS_DID_CACHE_MAX_TTL", "2000"),
        ("PDS_MAX_SUBSCRIPTION_BUFFER", "42"),
        ("PDS_EMAIL_SMTP_URL", "smtps://user:pw@smtp.example.com"),
        ("PDS_EMAIL_FROM_ADDRESS", "admin@example.com"),
        ("PDS_BSKY_APP_VIEW_URL", "https://api.bsky.app"),
        ("PDS_BSKY_APP_VIEW_DID", "did:web:api.bsky.app"),
        ("PDS_PRIVACY_POLICY_URL", "https://example.com/privacy"),
        ("PDS_TERMS_OF_SERVICE_URL", "https://example.com/tos"),
        ("PDS_CONTACT_EMAIL_ADDRESS", "contact@example.com"),
        ("PDS_MOD_SERVICE_URL", "https://mod.example.com"),
        ("PDS_MOD_SERVICE_DID", "did:web:mod.example.com"),
        ("PDS_DEV_MODE", "true"),
    ]))
    .unwrap();
    assert_eq!(c.service.port, 3000);
    assert_eq!(c.service.public_url, "https://pds.example.com");
    assert_eq!(c.service.did.as_str(), "did:plc:ewvi7nxzyoun6zhxrhs64oiz");
    assert_eq!(c.service.name, "My PDS");
    assert_eq!(c.service.version, "9.9.9");
    assert_eq!(
        c.identity.service_handle_domains,
        vec![".one.test", ".two.test"]
    );
    assert!(!c.invites.required);
    assert_eq!(
        c.crawlers,
        vec!["https://bsky.network", "https://relay.example.com"]
    );
    assert_eq!(c.service.repo_import_limit(), 209_715_200);
    assert!(!c.service.accepting_repo_imports);
    assert_eq!(c.identity.plc_url, "https://plc.example.com");
    assert_eq!(c.identity.cache_stale_ttl, Duration::from_millis(1000));
    assert_eq!(c.identity.cache_max_ttl, Duration::from_millis(2000));
    assert_eq!(c.subscription.max_buffer, 42);
    let email = c.email.as_ref().unwrap();
    assert_eq!(email.from_address, "admin@example.com");
    assert_eq!(email.smtp_url.expose(), "smtps://user:pw@smtp.example.com");
    let av = c.bsky_app_view.as_ref().unwrap();
    assert_eq!(av.url, "https://api.bsky.app");
    assert_eq!(av.did.as_str(), "did:web:api.bsky.app");
    assert_eq!(
        c.report_service.as_ref().unwrap().did.as_str(),
        "did:web:mod.example.com",
        "the report service defaults to the mod service"
    );
    assert!(c.fetch.disable_ssrf_protection, "follows dev mode");
}

#[test]
fn localhost_needs_dev_mode_and_uses_http_url() {
    let mut env = without("PDS_HOSTNAME");
    let e = err(&env);
    assert_eq!(e.var(), "PDS_HOSTNAME");
    assert!(e.to_string().contains("PDS_DEV_MODE"), "{e}");

    env.insert("PDS_DEV_MODE".into(), "true".into());
    env.insert("PDS_PORT".into(), "2600".into());
    let c = Config::from_vars(&env).unwrap();
    assert_eq!(c.service.hostname, "localhost");
    assert_eq!(c.service.public_url, "http://localhost:2600");
    assert_eq!(c.service.did.as_str(), "did:web:localhost");
    assert_eq!(c.identity.service_handle_domains, vec![".test"]);
}

#[test]
fn required_variables_are_named() {
    for var in [
        "PDS_JWT_SECRET",
        "PDS_ADMIN_PASSWORD",
        "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX",
    ] {
        let e = err(&without(var));
        assert_eq!(e, ConfigError::Required(var));
        assert_eq!(e.to_string(), format!("{var} is required"));
        // Empty counts as unset.
        let e = err(&with(&[(var, "")]));
        assert_eq!(e, ConfigError::Required(var));
    }
    let e = err(&without("PDS_BLOBSTORE_DISK_LOCATION"));
    assert!(e.to_string().contains("PDS_BLOBSTORE_DISK_LOCATION"), "{e}");
    assert!(e.to_string().contains("PDS_BLOBSTORE_S3_BUCKET"), "{e}");
}

#[test]
fn port_error_message() {
    let e = err(&with(&[("PDS_PORT", "abc")]));
    assert_eq!(e.to_string(), r#"PDS_PORT: "abc" is not a port"#);
    for bad in ["0", "65536", "-1", "80x"] {
        assert_eq!(err(&with(&[("PDS_PORT", bad)])).var(), "PDS_PORT");
    }
}

#[test]
fn invalid_values_name_their_variable() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("PDS_HOSTNAME", "https://pds.example.com")],
            "PDS_HOSTNAME",
        ),
        (&[("PDS_HOSTNAME", "pds.example.com:443")], "PDS_HOSTNAME"),
        (&[("PDS_SERVICE_DID", "not-a-did")], "PDS_SERVICE_DID"),
        (&[("PDS_INVITE_REQUIRED", "yes")], "PDS_INVITE_REQUIRED"),
        (&[("PDS_DEV_MODE", "on")], "PDS_DEV_MODE"),
        (&[("PDS_BLOB_UPLOAD_LIMIT", "-5")], "PDS_BLOB_UPLOAD_LIMIT"),
        (
            &[("PDS_MAX_REPO_IMPORT_SIZE", "big")],
            "PDS_MAX_REPO_IMPORT_SIZE",
        ),
        (&[("PDS_DID_PLC_URL", "plc.directory")], "PDS_DID_PLC_URL"),
        (
            &[("PDS_DID_CACHE_STALE_TTL", "1h")],
            "PDS_DID_CACHE_STALE_TTL",
        ),
        (&[("PDS_DID_CACHE_MAX_TTL", "x")], "PDS_DID_CACHE_MAX_TTL"),
        (
            &[("PDS_MAX_SUBSCRIPTION_BUFFER", "0")],
            "PDS_MAX_SUBSCRIPTION_BUFFER",
        ),
        (
            &[("PDS_CRAWLERS", "https://ok.example, bsky.network")],
            "PDS_CRAWLERS",
        ),
        (
            &[("PDS_SERVICE_HANDLE_DOMAINS", "example.com")],
            "PDS_SERVICE_HANDLE_DOMAINS",
        ),
        (
            &[("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX", "zz")],
            "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX",
        ),
        (
            &[("PDS_PLC_ROTATION_KEY_KMS_KEY_ID", "arn:aws:kms:x")],
            "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX",
        ),
        (
            &[("PDS_BLOBSTORE_S3_BUCKET", "bucket")],
            "PDS_BLOBSTORE_DISK_LOCATION",
        ),
        (
            &[("PDS_EMAIL_SMTP_URL", "smtp://x")],
            "PDS_EMAIL_FROM_ADDRESS",
        ),
        (
            &[("PDS_EMAIL_FROM_ADDRESS", "a@example.com")],
            "PDS_EMAIL_SMTP_URL",
        ),
        (
            &[("PDS_BSKY_APP_VIEW_URL", "https://api.bsky.app")],
            "PDS_BSKY_APP_VIEW_DID",
        ),
        (
            &[
                ("PDS_BSKY_APP_VIEW_URL", "https://api.bsky.app"),
                ("PDS_BSKY_APP_VIEW_DID", "api.bsky.app"),
            ],
            "PDS_BSKY_APP_VIEW_DID",
        ),
        (
            &[("PDS_ENTRYWAY_URL", "https://entryway.example")],
            "PDS_ENTRYWAY_URL",
        ),
        (&[("PDS_DPOP_SECRET", "short")], "PDS_DPOP_SECRET"),
        (
            &[("PDS_RATE_LIMIT_BYPASS_IPS", "10.0.0.1/32, localhost")],
            "PDS_RATE_LIMIT_BYPASS_IPS",
        ),
    ];
    for (pairs, var) in cases {
        let e = err(&with(pairs));
        assert_eq!(e.var(), *var, "{pairs:?} gave {e}");
        assert!(
            e.to_string().contains(var),
            "{pairs:?}: message {e:?} must name {var}"
        );
    }
}

#[test]
fn s3_blobstore() {
    let mut env = without("PDS_BLOBSTORE_DISK_LOCATION");
    env.insert("PDS_BLOBSTORE_S3_BUCKET".into(), "blobs".into());
    env.insert("PDS_BLOBSTORE_S3_REGION".into(), "us-east-1".into());
    env.insert("PDS_BLOBSTORE_S3_ACCESS_KEY_ID".into(), "AKIA".into());
    let e = err(&env);
    assert_eq!(e.var(), "PDS_BLOBSTORE_S3_SECRET_ACCESS_KEY");

    env.insert(
        "PDS_BLOBSTORE_S3_SECRET_ACCESS_KEY".into(),
        "s3-secret-value".into(),
    );
    let c = Config::from_vars(&env).unwrap();
    let BlobstoreConfig::S3(s3) = &c.blobstore else {
        panic!("S3 expected")
    };
    assert_eq!(s3.bucket, "blobs");
    assert_eq!(s3.region.as_deref(), Some("us-east-1"));
    assert_eq!(s3.upload_timeout, Duration::from_secs(20));
    let creds = s3.credentials.as_ref().unwrap();
    assert_eq!(creds.secret_access_key.expose(), "s3-secret-value");
    assert!(!format!("{c:?}").contains("s3-secret-value"));
}

#[test]
fn secret_values_never_appear_in_errors_or_debug() {
    let bad_key = "not-a-key-but-a-secret-looking-string";
    let e = err(&with(&[(
        "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX",
        bad_key,
    )]));
    assert!(!e.to_string().contains(bad_key), "{e}");

    let c = Config::from_vars(&with(&[
        (
            "PDS_EMAIL_SMTP_URL",
            "smtps://user:smtp-pass@smtp.example.com",
        ),
        ("PDS_EMAIL_FROM_ADDRESS", "admin@example.com"),
        ("PDS_RATE_LIMIT_BYPASS_KEY", "bypass-key-value"),
    ]))
    .unwrap();
    let debug = format!("{c:?}");
    for secret in [JWT, ADMIN, ROTATION_HEX, "smtp-pass", "bypass-key-value"] {
        assert!(!debug.contains(secret), "Debug output leaks {secret}");
    }
    assert!(debug.contains("[redacted]"));
    // Non-secret values are still visible, so Debug stays useful.
    assert!(debug.contains("pds.example.com"));
}

#[test]
fn env_file_parsing() {
    let text = "\
# pds.env written by the installer
PDS_HOSTNAME=pds.example.com
export PDS_PORT=3000

PDS_SERVICE_NAME=\"My \\\"quoted\\\" PDS\"
PDS_CONTACT_EMAIL_ADDRESS='ops@example.com'
PDS_CRAWLERS=https://bsky.network # the main relay
PDS_VERSION = 1.2.3
PDS_JWT_SECRET=abc=def
EMPTY=
";
    let vars = parse_env_file(text).unwrap();
    assert_eq!(vars["PDS_HOSTNAME"], "pds.example.com");
    assert_eq!(vars["PDS_PORT"], "3000");
    assert_eq!(vars["PDS_SERVICE_NAME"], "My \"quoted\" PDS");
    assert_eq!(vars["PDS_CONTACT_EMAIL_ADDRESS"], "ops@example.com");
    assert_eq!(vars["PDS_CRAWLERS"], "https://bsky.network");
    assert_eq!(vars["PDS_VERSION"], "1.2.3");
    assert_eq!(vars["PDS_JWT_SECRET"], "abc=def");
    assert_eq!(vars["EMPTY"], "");
    assert_eq!(vars.len(), 8);

    assert_eq!(parse_env_file("A=1\nnot a line\n").unwrap_err().0, 2);
    assert_eq!(parse_env_file("A=\"open\n").unwrap_err().0, 1);
    assert_eq!(parse_env_file("1BAD=x").unwrap_err().0, 1);
    assert_eq!(parse_env_file("BAD-NAME=x").unwrap_err().0, 1);
}

#[test]
fn env_file_is_overridden_by_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pds.env");
    let mut text = String::new();
    for (k, v) in minimal() {
        text.push_str(&format!("{k}={v}\n"));
    }
    text.push_str("PDS_PORT=3000\nPDS_SERVICE_NAME=\"From File\"\n");
    std::fs::write(&path, text).unwrap();

    let c = Config::from_env_file_and_vars(&path, &HashMap::new()).unwrap();
    assert_eq!(c.service.port, 3000);
    assert_eq!(c.service.name, "From File");

    let env: HashMap<String, String> = [("PDS_PORT".to_owned(), "4000".to_owned())].into();
    let c = Config::from_env_file_and_vars(&path, &env).unwrap();
    assert_eq!(c.service.port, 4000);
    assert_eq!(c.service.name, "From File");

    std::fs::write(&path, "PDS_PORT=1\ngarbage\n").unwrap();
    let e = Config::from_env_file_and_vars(&path, &HashMap::new()).unwrap_err();
    assert!(matches!(e, ConfigError::EnvFile { line: 2, .. }), "{e}");

    let missing = dir.path().join("missing.env");
    assert!(Config::from_env_file_and_vars(&missing, &HashMap::new()).is_err());
}

#[test]
fn for_testing_builds_a_dev_config() {
    let dir = tempfile::tempdir().unwrap();
    let c = Config::for_testing(dir.path(), &[("PDS_INVITE_REQUIRED", "false")]).unwrap();
    assert!(c.service.dev_mode);
    assert!(!c.invites.required);
    assert_eq!(c.db.account_db, dir.path().join("account.sqlite"));
}

#[test]
fn repo_durability_defaults_to_the_reference_and_can_be_raised() {
    use berth::store::sqlite::Durability;
    let c = Config::from_vars(&minimal()).unwrap();
    assert_eq!(c.db.repo_durability, Durability::Normal);
    for full in ["full", "FULL", " Full "] {
        let c = Config::from_vars(&with(&[("PDS_SQLITE_SYNCHRONOUS", full)])).unwrap();
        assert_eq!(c.db.repo_durability, Durability::Full, "{full:?}");
    }
    let c = Config::from_vars(&with(&[("PDS_SQLITE_SYNCHRONOUS", "normal")])).unwrap();
    assert_eq!(c.db.repo_durability, Durability::Normal);
    let e = err(&with(&[("PDS_SQLITE_SYNCHRONOUS", "off")]));
    assert_eq!(e.var(), "PDS_SQLITE_SYNCHRONOUS");
    assert!(e.to_string().contains("normal or full"), "{e}");
}
