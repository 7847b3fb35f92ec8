//! The account database on real SQLite files: passwords in the reference's scrypt format,
//! handle and email uniqueness, invites (including a concurrent race), refresh rotation with
//! its grace period, app passwords, email tokens and migrations on reopen.

use berth::account::password::{self, MAX_LOGIN_PASSWORD_LEN, MAX_PASSWORD_LEN, PasswordError};
use berth::account::{self, ADMIN_INVITE_ACCOUNT, EMAIL_TOKEN_TTL, REFRESH_GRACE};
use berth::data::Cid;
use berth::store::account::{
    AccountError, AccountStatus, AccountStore, EmailTokenPurpose, LoginMethod, NewAccount,
    NewInviteCodes, NewRefreshToken,
};
use berth::syntax::{Did, Handle};
use chrono::{TimeDelta, Utc};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Barrier};

const DID_A: &str = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
const DID_B: &str = "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb";
const DID_C: &str = "did:plc:cccccccccccccccccccccccc";

/// Produced by Node's `crypto.scrypt('correct horse ü', '00112233445566778899aabbccddeeff', 64)`,
/// exactly as the reference PDS stores `passwordScrypt`.
const NODE_ACCOUNT_HASH: &str = "00112233445566778899aabbccddeeff:1aa134fe24d1b2ec3b14b6ba788a3887\
c95c0b36cb66eb857018ce0eab3eaf7f84afa4a1390df8c8c8c305b3658d0e5895dfba83eac0abc301769baadbeab7a0";
const NODE_ACCOUNT_PASSWORD: &str = "correct horse ü";

/// Node: app password `abcd-efgh-ijkl-mnop` for DID_A, salt = hex(sha256(did)[0..16]).
const NODE_APP_HASH: &str = "099e4ea96cd62c05a232331859d20c97:fd2bbf28c4711cd8d02ea6a9af381222\
ef64fa9654f065196498e87aeb668370e1accd55a4a2cf56b303904d22367493a14af2bda8d630abaa594676edbca564";
const NODE_APP_PASSWORD: &str = "abcd-efgh-ijkl-mnop";

fn did(s: &str) -> Did {
    Did::from_str(s).unwrap()
}

fn handle(s: &str) -> Handle {
    Handle::from_str(s).unwrap()
}

fn db_path(dir: &Path) -> PathBuf {
    dir.join("account.sqlite")
}

fn open(dir: &Path) -> AccountStore {
    AccountStore::open(&db_path(dir)).unwrap()
}

/// A sign-up with a cheap placeholder hash (scrypt is exercised by the password tests).
fn new_account<'a>(did: &'a Did, handle: &'a Handle, email: &'a str) -> NewAccount<'a> {
    NewAccount {
        did,
        handle,
        email,
        password_scrypt: NODE_ACCOUNT_HASH,
        invite_code: None,
        deactivated: false,
        refresh_token: None,
        repo_root: None,
    }
}

fn create(store: &mut AccountStore, d: &str, h: &str, email: &str) {
    let (d, h) = (did(d), handle(h));
    store.create_account(&new_account(&d, &h, email)).unwrap();
}

// ----- passwords -------------------------------------------------------------------------------

#[test]
fn password_round_trip_and_wrong_password() {
    let hash = password::hash_password("hunter2 ✓").unwrap();
    let (salt, hex) = hash.split_once(':').unwrap();
    assert_eq!(salt.len(), 32);
    assert_eq!(hex.len(), 128);
    assert!(password::verify_password("hunter2 ✓", &hash));
    assert!(!password::verify_password("hunter2", &hash));
    assert!(!password::verify_password("", &hash));
    // Fresh salt every time.
    assert_ne!(hash, password::hash_password("hunter2 ✓").unwrap());

    // What berth writes is what the reference would compute from the same salt text, so the
    // reference verifies it too.
    let params = scrypt::Params::new(14, 8, 1).unwrap();
    let mut out = [0u8; 64];
    scrypt::scrypt("hunter2 ✓".as_bytes(), salt.as_bytes(), &params, &mut out).unwrap();
    assert_eq!(hex, data_encoding::HEXLOWER.encode(&out));
    assert!(
        salt.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
}

#[test]
fn hash_built_by_hand_in_the_reference_format_verifies() {
    // Independent of the hasher: the hex salt *text* is the scrypt salt; N=2^14, r=8, p=1, 64.
    let salt = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let params = scrypt::Params::new(14, 8, 1).unwrap();
    let mut out = [0u8; 64];
    scrypt::scrypt(b"p@ssw0rd", salt.as_bytes(), &params, &mut out).unwrap();
    let stored = format!("{salt}:{}", data_encoding::HEXLOWER.encode(&out));
    assert!(password::verify_password("p@ssw0rd", &stored));
    assert!(!password::verify_password("p@ssw0rD", &stored));

    // And hashes made by Node itself (the reference's runtime).
    assert!(password::verify_password(
        NODE_ACCOUNT_PASSWORD,
        NODE_ACCOUNT_HASH
    ));
    assert_eq!(
        password::hash_app_password(DID_A, NODE_APP_PASSWORD).unwrap(),
        NODE_APP_HASH
    );
}

#[test]
fn malformed_stored_hashes_fail_without_panic() {
    let good_hex = NODE_ACCOUNT_HASH.split_once(':').unwrap().1;
    let cases = [
        String::new(),
        "no-colon-at-all".to_owned(),
        ":".to_owned(),
        "salt:".to_owned(),
        "salt:zz".to_owned(),
        "salt:abcd".to_owned(),
        format!("00112233445566778899aabbccddeeff:{}", &good_hex[..126]),
        format!("00112233445566778899aabbccddeeff:{good_hex}00"),
        format!(
            "00112233445566778899aabbccddeeff:{}",
            good_hex.to_uppercase()
        ),
        format!("00112233445566778899aabbccddeeff:{good_hex}:extra"),
        "💥:💥".to_owned(),
    ];
    for stored in &cases {
        assert!(
            !password::verify_password(NODE_ACCOUNT_PASSWORD, stored),
            "{stored:?}"
        );
    }
}

#[test]
fn password_length_limits() {
    assert!(password::hash_password(&"a".repeat(MAX_PASSWORD_LEN)).is_ok());
    assert_eq!(
        password::hash_password(&"a".repeat(MAX_PASSWORD_LEN + 1)),
        Err(PasswordError::TooLong {
            max: MAX_PASSWORD_LEN
        })
    );
    // Refused before hashing: a 100 MB attempt returns at once.
    let huge = "a".repeat(100 * 1024 * 1024);
    let start = std::time::Instant::now();
    assert!(password::hash_password(&huge).is_err());
    assert!(!password::verify_password(&huge, NODE_ACCOUNT_HASH));
    assert!(password::hash_app_password(DID_A, &huge).is_err());
    assert!(start.elapsed() < std::time::Duration::from_secs(1));
    // A login may be up to 512 characters (older passwords).
    let long = "b".repeat(MAX_LOGIN_PASSWORD_LEN);
    let params = scrypt::Params::new(14, 8, 1).unwrap();
    let mut out = [0u8; 64];
    let salt = "ffeeddccbbaa99887766554433221100";
    scrypt::scrypt(long.as_bytes(), salt.as_bytes(), &params, &mut out).unwrap();
    let stored = format!("{salt}:{}", data_encoding::HEXLOWER.encode(&out));
    assert!(password::verify_password(&long, &stored));
}

#[test]
fn generated_secrets_have_the_reference_shapes() {
    let p = password::generate_app_password();
    assert_eq!(p.len(), 19);
    assert_eq!(p.split('-').count(), 4);
    assert!(
        p.chars()
            .all(|c| c == '-' || c.is_ascii_lowercase() || ('2'..='7').contains(&c))
    );

    let code = account::generate_invite_code("pds.example.com");
    let rest = code.strip_prefix("pds-example-com-").unwrap();
    let (a, b) = rest.split_once('-').unwrap();
    assert_eq!((a.len(), b.len()), (5, 5));

    let token = account::generate_email_token();
    assert_eq!(token.len(), 11);
    assert_eq!(&token[5..6], "-");
    assert_eq!(token, token.to_ascii_uppercase());
}

// ----- accounts, handles, emails ---------------------------------------------------------------

#[test]
fn handles_are_unique_case_insensitively() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let (a, b) = (did(DID_A), did(DID_B));
    let alice = handle("Alice.Test");
    let created = store
        .create_account(&new_account(&a, &alice, "Alice@Example.com"))
        .unwrap();
    assert_eq!(created.handle, Some(handle("alice.test")));
    assert_eq!(created.email.as_deref(), Some("alice@example.com"));
    assert_eq!(created.status(), AccountStatus::Active);

    let shout = handle("ALICE.TEST");
    let err = store
        .create_account(&new_account(&b, &shout, "other@example.com"))
        .unwrap_err();
    assert!(matches!(err, AccountError::HandleTaken), "{err:?}");
    // The failed sign-up left nothing behind.
    assert!(store.get_account(&b).unwrap().is_none());

    let found = store
        .get_account_by_handle(&handle("aLiCe.TeSt"))
        .unwrap()
        .unwrap();
    assert_eq!(found.did, a);
    for identifier in ["ALICE@example.COM", "Alice.Test", DID_A] {
        let found = store.get_account_by_identifier(identifier).unwrap();
        assert_eq!(found.map(|f| f.did), Some(a.clone()), "{identifier}");
    }
    assert!(
        store
            .get_account_by_identifier("nobody.test")
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_account_by_identifier("not a handle")
            .unwrap()
            .is_none()
    );
}

#[test]
fn emails_and_dids_are_unique() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    create(&mut store, DID_A, "alice.test", "alice@example.com");
    let (a, b) = (did(DID_A), did(DID_B));
    let h = handle("bob.test");
    let err = store
        .create_account(&new_account(&b, &h, "ALICE@example.com"))
        .unwrap_err();
    assert!(matches!(err, AccountError::EmailTaken), "{err:?}");
    let err = store
        .create_account(&new_account(&a, &h, "bob@example.com"))
        .unwrap_err();
    assert!(matches!(err, AccountError::AccountExists), "{err:?}");

    create(&mut store, DID_B, "bob.test", "bob@example.com");
    let err = store.update_email(&b, "Alice@Example.com").unwrap_err();
    assert!(matches!(err, AccountError::EmailTaken), "{err:?}");
    store.confirm_email(&b).unwrap();
    assert!(
        store
            .get_account(&b)
            .unwrap()
            .unwrap()
            .email_confirmed_at
            .is_some()
    );
    store.update_email(&b, "Bob2@Example.com").unwrap();
    let bob = store.get_account(&b).unwrap().unwrap();
    assert_eq!(bob.email.as_deref(), Some("bob2@example.com"));
    assert_eq!(bob.email_confirmed_at, None, "a new address is unconfirmed");
}

#[test]
fn update_handle() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    create(&mut store, DID_A, "alice.test", "alice@example.com");
    create(&mut store, DID_B, "bob.test", "bob@example.com");
    let (a, b) = (did(DID_A), did(DID_B));

    let err = store.update_handle(&b, &handle("Alice.TEST")).unwrap_err();
    assert!(matches!(err, AccountError::HandleTaken), "{err:?}");
    // Re-setting one's own handle (in any case) is fine.
    store.update_handle(&a, &handle("ALICE.test")).unwrap();

    store.update_handle(&a, &handle("Alice2.Test")).unwrap();
    assert_eq!(
        store.get_account(&a).unwrap().unwrap().handle,
        Some(handle("alice2.test"))
    );
    assert!(
        store
            .get_account_by_handle(&handle("alice.test"))
            .unwrap()
            .is_none()
    );
    // The old handle is free again.
    store.update_handle(&b, &handle("alice.test")).unwrap();

    let err = store
        .update_handle(&did(DID_C), &handle("carol.test"))
        .unwrap_err();
    assert!(matches!(err, AccountError::NotFound(_)), "{err:?}");
}

#[test]
fn login_checks_account_password_then_app_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let a = did(DID_A);
    let h = handle("alice.test");
    let mut new = new_account(&a, &h, "alice@example.com");
    let hash = password::hash_password("account pw").unwrap();
    new.password_scrypt = &hash;
    store.create_account(&new).unwrap();

    assert_eq!(
        store.check_login(&a, "account pw").unwrap(),
        Some(LoginMethod::Password)
    );
    assert_eq!(store.check_login(&a, "nope").unwrap(), None);
    assert_eq!(store.check_login(&did(DID_B), "account pw").unwrap(), None);

    let app = store.create_app_password(&a, "phone", true).unwrap();
    assert_eq!(
        store.check_login(&a, &app.password).unwrap(),
        Some(LoginMethod::AppPassword {
            name: "phone".into(),
            privileged: true
        })
    );

    // An app password row copied from a reference account.sqlite works unchanged.
    let raw = rusqlite::Connection::open(db_path(dir.path())).unwrap();
    raw.execute(
        "INSERT INTO app_password (did, name, password_scrypt, created_at, privileged)
         VALUES (?1, 'from-reference', ?2, '2024-01-01T00:00:00.000Z', 0)",
        [DID_A, NODE_APP_HASH],
    )
    .unwrap();
    assert_eq!(
        store.check_login(&a, NODE_APP_PASSWORD).unwrap(),
        Some(LoginMethod::AppPassword {
            name: "from-reference".into(),
            privileged: false
        })
    );

    store.update_password(&a, NODE_ACCOUNT_HASH).unwrap();
    assert_eq!(store.check_login(&a, "account pw").unwrap(), None);
    assert_eq!(
        store.check_login(&a, NODE_ACCOUNT_PASSWORD).unwrap(),
        Some(LoginMethod::Password)
    );
}

#[test]
fn status_changes_and_takedown_revokes_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    create(&mut store, DID_A, "alice.test", "alice@example.com");
    let a = did(DID_A);
    let later = Utc::now() + TimeDelta::days(30);
    store.deactivate(&a, Some(later)).unwrap();
    let acc = store.get_account(&a).unwrap().unwrap();
    assert_eq!(acc.status(), AccountStatus::Deactivated);
    assert!(acc.delete_after.is_some());
    store.activate(&a).unwrap();
    assert!(store.get_account(&a).unwrap().unwrap().is_active());

    let exp = Utc::now() + account::REFRESH_TOKEN_TTL;
    for id in ["t1", "t2"] {
        store
            .create_refresh_token(
                &a,
                &NewRefreshToken {
                    id,
                    expires_at: exp,
                    app_password_name: None,
                },
            )
            .unwrap();
    }
    store.set_takedown(&a, Some("mod-123")).unwrap();
    let acc = store.get_account(&a).unwrap().unwrap();
    assert_eq!(acc.status(), AccountStatus::Takendown);
    assert_eq!(acc.takedown_ref.as_deref(), Some("mod-123"));
    assert!(store.get_refresh_token("t1").unwrap().is_none());
    assert!(store.get_refresh_token("t2").unwrap().is_none());
    store.set_takedown(&a, None).unwrap();
    assert!(store.get_account(&a).unwrap().unwrap().is_active());

    // Password change ends every session too.
    store
        .create_refresh_token(
            &a,
            &NewRefreshToken {
                id: "t3",
                expires_at: exp,
                app_password_name: None,
            },
        )
        .unwrap();
    store.update_password(&a, NODE_ACCOUNT_HASH).unwrap();
    assert!(store.get_refresh_token("t3").unwrap().is_none());

    let err = store
        .create_refresh_token(
            &did(DID_B),
            &NewRefreshToken {
                id: "t4",
                expires_at: exp,
                app_password_name: None,
            },
        )
        .unwrap_err();
    assert!(matches!(err, AccountError::NotFound(_)), "{err:?}");
}

#[test]
fn signup_with_everything_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let codes = store
        .create_invite_codes(&NewInviteCodes {
            hostname: "pds.test",
            for_account: ADMIN_INVITE_ACCOUNT,
            created_by: ADMIN_INVITE_ACCOUNT,
            count: 1,
            available_uses: 5,
            disabled: false,
        })
        .unwrap();
    let a = did(DID_A);
    let h = handle("alice.test");
    let cid = Cid::from_str("bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm").unwrap();
    let store_token = NewRefreshToken {
        id: "signup-token",
        expires_at: Utc::now() + account::REFRESH_TOKEN_TTL,
        app_password_name: None,
    };
    let acc = store
        .create_account(&NewAccount {
            invite_code: Some(&codes[0]),
            deactivated: true,
            refresh_token: Some(store_token),
            repo_root: Some((&cid, "3l3qo2vutsw2b")),
            ..new_account(&a, &h, "alice@example.com")
        })
        .unwrap();
    assert_eq!(acc.status(), AccountStatus::Deactivated);
    assert!(acc.delete_after.is_some());
    assert!(store.get_refresh_token("signup-token").unwrap().is_some());
    let root = store.get_repo_root(&a).unwrap().unwrap();
    assert_eq!((root.cid, root.rev.as_str()), (cid, "3l3qo2vutsw2b"));
    let code = store.get_invite_code(&codes[0]).unwrap().unwrap();
    assert_eq!(code.uses.len(), 1);
    assert_eq!(code.uses[0].used_by, DID_A);

    let own = store
        .create_invite_codes(&NewInviteCodes {
            hostname: "pds.test",
            for_account: DID_A,
            created_by: ADMIN_INVITE_ACCOUNT,
            count: 2,
            available_uses: 1,
            disabled: false,
        })
        .unwrap();
    store.create_app_password(&a, "app", false).unwrap();
    store
        .create_email_token(&a, EmailTokenPurpose::DeleteAccount, Utc::now())
        .unwrap();

    assert!(store.delete_account(&a).unwrap());
    assert!(!store.delete_account(&a).unwrap());
    assert!(store.get_account(&a).unwrap().is_none());
    assert!(store.get_repo_root(&a).unwrap().is_none());
    assert!(store.get_refresh_token("signup-token").unwrap().is_none());
    assert!(store.list_app_passwords(&a).unwrap().is_empty());
    // The deleted account's own codes no longer work; the invite history stays.
    assert!(matches!(
        store.check_invite_code(&own[0]),
        Err(AccountError::InvalidInviteCode)
    ));
    assert_eq!(
        store
            .get_invite_code(&codes[0])
            .unwrap()
            .unwrap()
            .uses
            .len(),
        1
    );
    // Handle and email are free again.
    create(&mut store, DID_B, "alice.test", "alice@example.com");
}

#[test]
fn list_repos_pages_in_creation_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let cid = Cid::from_str("bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm").unwrap();
    for (i, d) in [DID_A, DID_B, DID_C].iter().enumerate() {
        create(
            &mut store,
            d,
            &format!("user{i}.test"),
            &format!("u{i}@example.com"),
        );
        store
            .upsert_repo_root(&did(d), &cid, "3l3qo2vutsw2b")
            .unwrap();
    }
    let all = store.list_repos(None, 10).unwrap();
    assert_eq!(all.len(), 3);
    let first = store.list_repos(None, 2).unwrap();
    let last = &first[1].account;
    let rest = store
        .list_repos(Some((last.created_at, &last.did)), 2)
        .unwrap();
    let mut seen: Vec<_> = first
        .iter()
        .chain(&rest)
        .map(|r| r.account.did.clone())
        .collect();
    assert_eq!(seen.len(), 3);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3);
}

#[test]
fn root_mirror_skips_a_deleted_account_and_keeps_the_rest_of_the_round() {
    // The sequencer mirrors a round's heads after acknowledging its writes, so an account
    // deleted in between must not fail the batch for the other accounts of the round.
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let old = Cid::from_str("bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm").unwrap();
    let new = Cid::from_str("bafyreib2rxk3rybk3aobmv5cjuql3bm2twh4jo5uxgf5ydzpxwjvicwmcy").unwrap();
    create(&mut store, DID_A, "alice.test", "alice@example.com");
    create(&mut store, DID_B, "bob.test", "bob@example.com");
    store
        .upsert_repo_roots([
            (&did(DID_A), &old, "3l3qo2vutsw2a"),
            (&did(DID_B), &old, "3l3qo2vutsw2a"),
        ])
        .unwrap();
    assert!(store.delete_account(&did(DID_B)).unwrap());
    store
        .upsert_repo_roots([
            (&did(DID_B), &new, "3l3qo2vutsw2b"),
            (&did(DID_A), &new, "3l3qo2vutsw2b"),
            (&did(DID_C), &new, "3l3qo2vutsw2b"),
        ])
        .unwrap();
    let a = store.get_repo_root(&did(DID_A)).unwrap().unwrap();
    assert_eq!((a.cid, a.rev.as_str()), (new, "3l3qo2vutsw2b"));
    assert!(store.get_repo_root(&did(DID_B)).unwrap().is_none());
    assert!(store.get_repo_root(&did(DID_C)).unwrap().is_none());
    // A new account with the deleted one's DID (moving back) starts without a stale row.
    create(&mut store, DID_B, "bob2.test", "bob2@example.com");
    assert!(store.get_repo_root(&did(DID_B)).unwrap().is_none());
}

// ----- invites ---------------------------------------------------------------------------------

#[test]
fn invite_uses_run_out_and_disabled_codes_fail() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let codes = store
        .create_invite_codes(&NewInviteCodes {
            hostname: "pds.example.com",
            for_account: ADMIN_INVITE_ACCOUNT,
            created_by: ADMIN_INVITE_ACCOUNT,
            count: 2,
            available_uses: 2,
            disabled: false,
        })
        .unwrap();
    assert_eq!(codes.len(), 2);
    assert_ne!(codes[0], codes[1]);
    let listed = store.list_invite_codes(ADMIN_INVITE_ACCOUNT).unwrap();
    assert_eq!(listed.len(), 2);

    let dids = [did(DID_A), did(DID_B), did(DID_C)];
    let handles = [handle("a.test"), handle("b.test"), handle("c.test")];
    let emails = ["a@x.test", "b@x.test", "c@x.test"];
    for i in 0..2 {
        store
            .create_account(&NewAccount {
                invite_code: Some(&codes[0]),
                ..new_account(&dids[i], &handles[i], emails[i])
            })
            .unwrap();
    }
    let err = store
        .create_account(&NewAccount {
            invite_code: Some(&codes[0]),
            ..new_account(&dids[2], &handles[2], emails[2])
        })
        .unwrap_err();
    assert!(matches!(err, AccountError::InvalidInviteCode), "{err:?}");
    assert!(store.get_account(&dids[2]).unwrap().is_none());

    let err = store
        .create_account(&NewAccount {
            invite_code: Some("pds-example-com-nope0-nope0"),
            ..new_account(&dids[2], &handles[2], emails[2])
        })
        .unwrap_err();
    assert!(matches!(err, AccountError::InvalidInviteCode), "{err:?}");

    store.check_invite_code(&codes[1]).unwrap();
    assert_eq!(store.disable_invite_codes(&[&codes[1]], &[]).unwrap(), 1);
    assert!(matches!(
        store.check_invite_code(&codes[1]),
        Err(AccountError::InvalidInviteCode)
    ));

    // A code owned by a taken-down account is unusable; disabling the account's invites
    // disables its codes.
    let own = store
        .create_invite_codes(&NewInviteCodes {
            hostname: "pds.example.com",
            for_account: DID_A,
            created_by: DID_A,
            count: 1,
            available_uses: 1,
            disabled: false,
        })
        .unwrap();
    store.check_invite_code(&own[0]).unwrap();
    store.set_takedown(&dids[0], Some("t")).unwrap();
    assert!(store.check_invite_code(&own[0]).is_err());
    store.set_takedown(&dids[0], None).unwrap();
    store.check_invite_code(&own[0]).unwrap();
    store.set_invites_disabled(&dids[0], true).unwrap();
    assert!(store.check_invite_code(&own[0]).is_err());
    assert!(
        store
            .get_account(&dids[0])
            .unwrap()
            .unwrap()
            .invites_disabled
    );
    assert_eq!(store.list_invite_codes(DID_A).unwrap().len(), 1);
}

#[test]
fn concurrent_use_of_a_one_use_code_succeeds_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let mut store = AccountStore::open(&path).unwrap();
    const ROUNDS: usize = 5;
    let codes = store
        .create_invite_codes(&NewInviteCodes {
            hostname: "pds.test",
            for_account: ADMIN_INVITE_ACCOUNT,
            created_by: ADMIN_INVITE_ACCOUNT,
            count: ROUNDS,
            available_uses: 1,
            disabled: false,
        })
        .unwrap();
    drop(store);

    for (round, code) in codes.iter().enumerate() {
        let barrier = Arc::new(Barrier::new(2));
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let (path, code, barrier) = (path.clone(), code.clone(), barrier.clone());
                std::thread::spawn(move || {
                    // Each thread has its own connection, as two server workers would.
                    let mut store = AccountStore::open(&path).unwrap();
                    let d = did(&format!("did:plc:r{round}t{t}aaaaaaaaaaaaaaaaaaaa"));
                    let h = handle(&format!("r{round}t{t}.test"));
                    let email = format!("r{round}t{t}@example.com");
                    barrier.wait();
                    store.create_account(&NewAccount {
                        invite_code: Some(&code),
                        ..new_account(&d, &h, &email)
                    })
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 1, "round {round}: {results:?}");
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Err(AccountError::InvalidInviteCode))),
            "round {round}: {results:?}"
        );
    }
    let store = AccountStore::open(&path).unwrap();
    for code in &codes {
        assert_eq!(store.get_invite_code(code).unwrap().unwrap().uses.len(), 1);
    }
}

// ----- refresh tokens --------------------------------------------------------------------------

#[test]
fn refresh_rotation_with_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    create(&mut store, DID_A, "alice.test", "alice@example.com");
    let a = did(DID_A);
    let t0 = Utc::now();
    let ttl = account::REFRESH_TOKEN_TTL;
    store
        .create_refresh_token(
            &a,
            &NewRefreshToken {
                id: "first",
                expires_at: t0 + ttl,
                app_password_name: None,
            },
        )
        .unwrap();

    let r1 = store
        .rotate_refresh_token("first", "second", t0 + ttl, t0)
        .unwrap()
        .unwrap();
    assert_eq!((r1.did.as_str(), r1.next_id.as_str()), (DID_A, "second"));
    let old = store.get_refresh_token("first").unwrap().unwrap();
    assert_eq!(old.next_id.as_deref(), Some("second"));
    let grace_end = t0 + REFRESH_GRACE;
    assert!((old.expires_at - grace_end).abs() < TimeDelta::milliseconds(2));
    assert!(store.get_refresh_token("second").unwrap().is_some());

    // Reuse within the grace period: the same successor, and the grace does not restart.
    let t1 = t0 + TimeDelta::minutes(90);
    let r2 = store
        .rotate_refresh_token("first", "other", t1 + ttl, t1)
        .unwrap()
        .unwrap();
    assert_eq!(r2.next_id, "second");
    assert!(store.get_refresh_token("other").unwrap().is_none());
    let old = store.get_refresh_token("first").unwrap().unwrap();
    assert!((old.expires_at - grace_end).abs() < TimeDelta::milliseconds(2));

    // After the grace period the old token is dead (and cleaned up); the new one works.
    let t2 = t0 + REFRESH_GRACE + TimeDelta::seconds(1);
    assert!(
        store
            .rotate_refresh_token("first", "third", t2 + ttl, t2)
            .unwrap()
            .is_none()
    );
    assert!(store.get_refresh_token("first").unwrap().is_none());
    let r3 = store
        .rotate_refresh_token("second", "third", t2 + ttl, t2)
        .unwrap()
        .unwrap();
    assert_eq!(r3.next_id, "third");

    // Unknown tokens and tokens past their own expiry yield nothing.
    assert!(
        store
            .rotate_refresh_token("never-issued", "x", t2 + ttl, t2)
            .unwrap()
            .is_none()
    );
    store
        .create_refresh_token(
            &a,
            &NewRefreshToken {
                id: "short",
                expires_at: t2 + TimeDelta::minutes(1),
                app_password_name: None,
            },
        )
        .unwrap();
    let t3 = t2 + TimeDelta::minutes(2);
    assert!(
        store
            .rotate_refresh_token("short", "y", t3 + ttl, t3)
            .unwrap()
            .is_none()
    );
}

#[test]
fn revoking_a_token_also_revokes_its_predecessors() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    create(&mut store, DID_A, "alice.test", "alice@example.com");
    let a = did(DID_A);
    let now = Utc::now();
    let exp = now + account::REFRESH_TOKEN_TTL;
    store
        .create_refresh_token(
            &a,
            &NewRefreshToken {
                id: "t1",
                expires_at: exp,
                app_password_name: None,
            },
        )
        .unwrap();
    store.rotate_refresh_token("t1", "t2", exp, now).unwrap();
    store.rotate_refresh_token("t2", "t3", exp, now).unwrap();
    // Logging out with the newest token: replaying t1 or t2 must not bring the session back.
    assert!(store.revoke_refresh_token("t3").unwrap());
    for id in ["t1", "t2", "t3"] {
        assert!(store.get_refresh_token(id).unwrap().is_none(), "{id}");
        assert!(
            store
                .rotate_refresh_token(id, "again", exp, now)
                .unwrap()
                .is_none()
        );
    }
    assert!(!store.revoke_refresh_token("t3").unwrap());

    for id in ["u1", "u2"] {
        store
            .create_refresh_token(
                &a,
                &NewRefreshToken {
                    id,
                    expires_at: exp,
                    app_password_name: None,
                },
            )
            .unwrap();
    }
    assert_eq!(store.revoke_refresh_tokens(&a).unwrap(), 2);
}

// ----- app passwords ---------------------------------------------------------------------------

#[test]
fn app_passwords_create_list_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    create(&mut store, DID_A, "alice.test", "alice@example.com");
    let a = did(DID_A);

    let phone = store.create_app_password(&a, "phone", false).unwrap();
    let laptop = store.create_app_password(&a, "laptop", true).unwrap();
    assert_ne!(phone.password, laptop.password);
    let err = store.create_app_password(&a, "phone", true).unwrap_err();
    assert!(matches!(err, AccountError::AppPasswordNameTaken), "{err:?}");
    let err = store
        .create_app_password(&did(DID_B), "phone", true)
        .unwrap_err();
    assert!(matches!(err, AccountError::NotFound(_)), "{err:?}");

    let listed = store.list_app_passwords(&a).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].created_at >= w[1].created_at)
    );
    let laptop_listed = listed.iter().find(|p| p.name == "laptop").unwrap();
    assert!(laptop_listed.privileged);
    assert_eq!(laptop_listed.created_at, laptop.created_at);

    // Sessions issued through each app password, and one through the account password.
    let exp = Utc::now() + account::REFRESH_TOKEN_TTL;
    for (id, name) in [
        ("via-phone", Some("phone")),
        ("via-laptop", Some("laptop")),
        ("via-password", None),
    ] {
        store
            .create_refresh_token(
                &a,
                &NewRefreshToken {
                    id,
                    expires_at: exp,
                    app_password_name: name,
                },
            )
            .unwrap();
    }
    // Rotation keeps the app password's name (its scope).
    let rotated = store
        .rotate_refresh_token("via-phone", "via-phone-2", exp, Utc::now())
        .unwrap()
        .unwrap();
    assert_eq!(rotated.app_password_name.as_deref(), Some("phone"));
    let err = store
        .create_refresh_token(
            &a,
            &NewRefreshToken {
                id: "via-nothing",
                expires_at: exp,
                app_password_name: Some("no-such-app-password"),
            },
        )
        .unwrap_err();
    assert!(matches!(err, AccountError::NotFound(_)), "{err:?}");

    assert!(store.revoke_app_password(&a, "phone").unwrap());
    assert!(!store.revoke_app_password(&a, "phone").unwrap());
    assert!(store.get_refresh_token("via-phone").unwrap().is_none());
    assert!(store.get_refresh_token("via-phone-2").unwrap().is_none());
    assert!(store.get_refresh_token("via-laptop").unwrap().is_some());
    assert!(store.get_refresh_token("via-password").unwrap().is_some());
    assert_eq!(store.check_login(&a, &phone.password).unwrap(), None);
    assert_eq!(
        store.check_login(&a, &laptop.password).unwrap(),
        Some(LoginMethod::AppPassword {
            name: "laptop".into(),
            privileged: true
        })
    );
    let names: Vec<_> = store
        .list_app_passwords(&a)
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["laptop"]);
}

// ----- email tokens ----------------------------------------------------------------------------

#[test]
fn email_tokens_are_consumed_once_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    create(&mut store, DID_A, "alice.test", "alice@example.com");
    create(&mut store, DID_B, "bob.test", "bob@example.com");
    let (a, b) = (did(DID_A), did(DID_B));
    let now = Utc::now();
    let purpose = EmailTokenPurpose::ConfirmEmail;

    let token = store.create_email_token(&a, purpose, now).unwrap();
    // Another account or purpose cannot use it.
    let err = store
        .consume_email_token(&b, purpose, &token, now)
        .unwrap_err();
    assert!(matches!(err, AccountError::InvalidEmailToken), "{err:?}");
    let err = store
        .consume_email_token(&a, EmailTokenPurpose::DeleteAccount, &token, now)
        .unwrap_err();
    assert!(matches!(err, AccountError::InvalidEmailToken), "{err:?}");
    // Case-insensitive, surrounding space ignored; then gone.
    let typed = format!(" {} ", token.to_lowercase());
    store.consume_email_token(&a, purpose, &typed, now).unwrap();
    let err = store
        .consume_email_token(&a, purpose, &token, now)
        .unwrap_err();
    assert!(matches!(err, AccountError::InvalidEmailToken), "{err:?}");

    // Re-requesting replaces the earlier token.
    let old = store.create_email_token(&a, purpose, now).unwrap();
    let new = store.create_email_token(&a, purpose, now).unwrap();
    assert!(store.consume_email_token(&a, purpose, &old, now).is_err());
    // Expiry: valid just before 15 minutes, refused at 15 minutes.
    let err = store
        .consume_email_token(&a, purpose, &new, now + EMAIL_TOKEN_TTL)
        .unwrap_err();
    assert!(matches!(err, AccountError::ExpiredEmailToken), "{err:?}");
    store
        .consume_email_token(
            &a,
            purpose,
            &new,
            now + EMAIL_TOKEN_TTL - TimeDelta::seconds(1),
        )
        .unwrap();

    // Password reset finds the account by the token alone.
    let reset = store
        .create_email_token(&b, EmailTokenPurpose::ResetPassword, now)
        .unwrap();
    let found = store
        .consume_email_token_by_value(EmailTokenPurpose::ResetPassword, &reset, now)
        .unwrap();
    assert_eq!(found, b);
    assert!(
        store
            .consume_email_token_by_value(EmailTokenPurpose::ResetPassword, &reset, now)
            .is_err()
    );

    // Changing the email drops every outstanding token.
    let plc = store
        .create_email_token(&a, EmailTokenPurpose::PlcOperation, now)
        .unwrap();
    store.update_email(&a, "alice2@example.com").unwrap();
    assert!(
        store
            .consume_email_token(&a, EmailTokenPurpose::PlcOperation, &plc, now)
            .is_err()
    );
    let err = store
        .create_email_token(&did(DID_C), purpose, now)
        .unwrap_err();
    assert!(matches!(err, AccountError::NotFound(_)), "{err:?}");
}

// ----- migrations ------------------------------------------------------------------------------

#[test]
fn reopening_applies_migrations_without_error_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path());
        create(&mut store, DID_A, "alice.test", "alice@example.com");
    }
    for _ in 0..2 {
        let store = open(dir.path());
        assert!(store.get_account(&did(DID_A)).unwrap().is_some());
    }
    let raw = rusqlite::Connection::open(db_path(dir.path())).unwrap();
    let version: u32 = raw
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        version,
        berth::store::sqlite::ACCOUNT_MIGRATIONS
            .last()
            .unwrap()
            .version
    );
    // In-memory stores get the same schema.
    let mut mem = AccountStore::open_in_memory().unwrap();
    create(&mut mem, DID_A, "alice.test", "alice@example.com");
}

#[test]
fn reserved_signing_keys_are_files_and_stable() {
    use berth::account::reserved_keys;
    let dir = tempfile::tempdir().unwrap();
    let name = did(DID_A);
    assert!(reserved_keys::get(dir.path(), &name).unwrap().is_none());
    let k1 = reserved_keys::reserve(dir.path(), &name).unwrap();
    let k2 = reserved_keys::reserve(dir.path(), &name).unwrap();
    assert_eq!(k1.private_bytes(), k2.private_bytes());
    let got = reserved_keys::get(dir.path(), &name).unwrap().unwrap();
    assert_eq!(got.private_bytes(), k1.private_bytes());
    assert!(dir.path().join("reserved_keys").join(DID_A).is_file());
    reserved_keys::remove(dir.path(), &name).unwrap();
    reserved_keys::remove(dir.path(), &name).unwrap();
    assert!(reserved_keys::get(dir.path(), &name).unwrap().is_none());
}
