//! The email-token flows over real HTTP with a real SMTP server: berth sends through lettre to
//! aiosmtpd (Mailbox handler, a maildir) on 127.0.0.1, and each test reads the token out of the
//! delivered mail, as a user would. Every refused token is checked to change nothing.
//!
//! aiosmtpd comes from `tests/interop/.venv` (see `tests/interop/python/requirements.txt`;
//! `.ci/run` installs it).

use berth::plc::operation::SignedOp;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod common;

// ----- the SMTP sink ------------------------------------------------------------------------

/// aiosmtpd writing every mail into a maildir; killed on drop.
struct SmtpSink {
    child: Child,
    port: u16,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
    /// Mail files already handed out, so each read returns a new mail.
    seen: Mutex<HashSet<PathBuf>>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn venv_python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: the email tests need aiosmtpd. Install it with\n  \
         python3 -m venv tests/interop/.venv && tests/interop/.venv/bin/python -m pip install \
         -r tests/interop/python/requirements.txt\n(.ci/run does this)",
        python.display()
    );
    python
}

impl SmtpSink {
    async fn start() -> SmtpSink {
        let python = venv_python();
        let dir = tempfile::tempdir().unwrap();
        // A path that does not exist yet: aiosmtpd creates tmp/ new/ cur/ itself, while an
        // empty pre-made directory makes every delivery fail.
        let maildir = dir.path().join("maildir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting aiosmtpd with {}: {e}", python.display());
            });
        let mut sink = SmtpSink {
            child,
            port,
            maildir,
            _dir: dir,
            seen: Mutex::new(HashSet::new()),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return sink;
            }
            if let Some(status) = sink.child.try_wait().unwrap() {
                panic!(
                    "aiosmtpd exited ({status}); is it installed in tests/interop/.venv? \
                     pip install -r tests/interop/python/requirements.txt"
                );
            }
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "PDS_EMAIL_SMTP_URL",
                format!("smtp://127.0.0.1:{}", self.port),
            ),
            (
                "PDS_EMAIL_FROM_ADDRESS",
                "noreply@pds.example.com".to_string(),
            ),
        ]
    }

    /// Mail files delivered and not yet handed out.
    fn unseen(&self) -> Vec<PathBuf> {
        let seen = self.seen.lock().unwrap();
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        let mut out: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| !seen.contains(p))
            .collect();
        out.sort();
        out
    }

    /// The next new mail to `to` with `subject` (waiting a little for it); returns its text.
    async fn next_mail(&self, to: &str, subject: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            for path in self.unseen() {
                let text = std::fs::read_to_string(&path).unwrap();
                if header(&text, "To").is_some_and(|t| t.contains(to))
                    && header(&text, "Subject").as_deref() == Some(subject)
                {
                    self.seen.lock().unwrap().insert(path);
                    return text;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no mail to {to} with subject {subject:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The token of the next such mail.
    async fn token(&self, to: &str, subject: &str) -> String {
        let mail = self.next_mail(to, subject).await;
        let (_, body) = mail
            .split_once("\n\n")
            .or(mail.split_once("\r\n\r\n"))
            .unwrap();
        find_token(body).unwrap_or_else(|| panic!("no token in:\n{mail}"))
    }

    fn count(&self) -> usize {
        std::fs::read_dir(self.maildir.join("new")).map_or(0, |d| d.count())
    }
}

fn header(mail: &str, name: &str) -> Option<String> {
    mail.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// The first `XXXXX-XXXXX` of base32 characters.
fn find_token(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let ok = |c: u8| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c);
    (0..b.len().saturating_sub(10)).find_map(|i| {
        let w = &b[i..i + 11];
        let boundary_before = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        let boundary_after = b.get(i + 11).is_none_or(|c| !c.is_ascii_alphanumeric());
        (boundary_before
            && boundary_after
            && w[..5].iter().all(|&c| ok(c))
            && w[5] == b'-'
            && w[6..].iter().all(|&c| ok(c)))
        .then(|| String::from_utf8(w.to_vec()).unwrap())
    })
}

// ----- the PDS ------------------------------------------------------------------------------

struct Env {
    pds: common::TestPds,
    smtp: SmtpSink,
}

struct Account {
    did: String,
    handle: String,
    email: String,
    password: String,
    access: String,
    refresh: String,
}

impl Env {
    async fn start() -> Env {
        let smtp = SmtpSink::start().await;
        let env = smtp.env();
        let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let pds = common::start_pds(&vars).await;
        Env { pds, smtp }
    }

    async fn sign_up(&self, name: &str) -> Account {
        let handle = format!("{name}.test");
        let email = format!("{name}@example.com");
        let (s, v) = self
            .call(
                "com.atproto.server.createAccount",
                None,
                json!({"handle": handle, "email": email, "password": "hunter22"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        Account {
            did: v["did"].as_str().unwrap().to_string(),
            handle,
            email,
            password: "hunter22".into(),
            access: v["accessJwt"].as_str().unwrap().to_string(),
            refresh: v["refreshJwt"].as_str().unwrap().to_string(),
        }
    }

    async fn call(&self, nsid: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let mut req = self
            .pds
            .http
            .post(format!("{}/xrpc/{nsid}", self.pds.url))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        (res.status(), res.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, nsid: &str, token: Option<&str>, query: &str) -> (StatusCode, Value) {
        let mut req = self
            .pds
            .http
            .get(format!("{}/xrpc/{nsid}?{query}", self.pds.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        (res.status(), res.json().await.unwrap_or(Value::Null))
    }

    async fn session(&self, a: &Account) -> Value {
        let (s, v) = self
            .get("com.atproto.server.getSession", Some(&a.access), "")
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    async fn login(&self, identifier: &str, password: &str) -> (StatusCode, Value) {
        self.call(
            "com.atproto.server.createSession",
            None,
            json!({"identifier": identifier, "password": password}),
        )
        .await
    }

    /// Requests and performs an email confirmation.
    async fn confirm(&self, a: &Account) {
        let (s, v) = self
            .call(
                "com.atproto.server.requestEmailConfirmation",
                Some(&a.access),
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let token = self.smtp.token(&a.email, "Email Confirmation").await;
        let (s, v) = self
            .call(
                "com.atproto.server.confirmEmail",
                Some(&a.access),
                json!({"email": a.email, "token": token}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    fn account_db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.pds.dir.path().join("account.sqlite")).unwrap()
    }

    /// Moves the account's outstanding token for `purpose` 16 minutes into the past.
    fn age_token(&self, did: &str, purpose: &str) {
        let db = self.account_db();
        let at: String = db
            .query_row(
                "SELECT requested_at FROM email_token WHERE did = ?1 AND purpose = ?2",
                [did, purpose],
                |r| r.get(0),
            )
            .unwrap();
        let old =
            chrono::DateTime::parse_from_rfc3339(&at).unwrap() - chrono::TimeDelta::minutes(16);
        let old = old
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        db.execute(
            "UPDATE email_token SET requested_at = ?3 WHERE did = ?1 AND purpose = ?2",
            [did, purpose, old.as_str()],
        )
        .unwrap();
    }
}

fn error_name(v: &Value) -> &str {
    v["error"].as_str().unwrap_or("")
}

// ----- email confirmation -------------------------------------------------------------------

#[tokio::test]
async fn email_confirmation_end_to_end() {
    let env = Env::start().await;
    let a = env.sign_up("alice").await;
    assert_eq!(env.session(&a).await["emailConfirmed"], false);

    let (s, v) = env
        .call(
            "com.atproto.server.requestEmailConfirmation",
            Some(&a.access),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mail = env.smtp.next_mail(&a.email, "Email Confirmation").await;
    assert!(
        header(&mail, "From")
            .unwrap()
            .contains("noreply@pds.example.com")
    );
    let token = find_token(mail.split_once("\n\n").unwrap().1).unwrap();

    // A wrong address, then a wrong token: refused, nothing changes.
    let (s, v) = env
        .call(
            "com.atproto.server.confirmEmail",
            Some(&a.access),
            json!({"email": "mallory@example.com", "token": token}),
        )
        .await;
    assert_eq!(
        (s, error_name(&v)),
        (StatusCode::BAD_REQUEST, "InvalidEmail")
    );
    let (s, v) = env
        .call(
            "com.atproto.server.confirmEmail",
            Some(&a.access),
            json!({"email": a.email, "token": "AAAAA-BBBBB"}),
        )
        .await;
    assert_eq!(
        (s, error_name(&v)),
        (StatusCode::BAD_REQUEST, "InvalidToken")
    );
    assert_eq!(env.session(&a).await["emailConfirmed"], false);

    // The token works in any case and with the address in any case.
    let (s, v) = env
        .call(
            "com.atproto.server.confirmEmail",
            Some(&a.access),
            json!({"email": a.email.to_uppercase(), "token": token.to_lowercase()}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(env.session(&a).await["emailConfirmed"], true);

    // Used once.
    let (s, v) = env
        .call(
            "com.atproto.server.confirmEmail",
            Some(&a.access),
            json!({"email": a.email, "token": token}),
        )
        .await;
    assert_eq!(
        (s, error_name(&v)),
        (StatusCode::BAD_REQUEST, "InvalidToken")
    );
}

// ----- password reset -----------------------------------------------------------------------

#[tokio::test]
async fn password_reset_replaces_the_password_and_ends_sessions() {
    let env = Env::start().await;
    let a = env.sign_up("bob").await;

    let (s, v) = env
        .call(
            "com.atproto.server.requestPasswordReset",
            None,
            json!({"email": "nobody@example.com"}),
        )
        .await;
    assert_eq!(
        (s, error_name(&v)),
        (StatusCode::BAD_REQUEST, "InvalidRequest")
    );

    let (s, v) = env
        .call(
            "com.atproto.server.requestPasswordReset",
            None,
            json!({"email": a.email.to_uppercase()}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mail = env
        .smtp
        .next_mail(&a.email, "Password Reset Requested")
        .await;
    assert!(mail.contains(&a.handle), "the mail names the handle");
    let token = find_token(mail.split_once("\n\n").unwrap().1).unwrap();

    let (s, v) = env
        .call(
            "com.atproto.server.resetPassword",
            None,
            json!({"token": "AAAAA-BBBBB", "password": "new-password"}),
        )
        .await;
    assert_eq!(
        (s, error_name(&v)),
        (StatusCode::BAD_REQUEST, "InvalidToken")
    );
    assert_eq!(env.login(&a.handle, &a.password).await.0, StatusCode::OK);

    let (s, v) = env
        .call(
            "com.atproto.server.resetPassword",
            None,
            json!({"token": token, "password": "new-password"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    assert_eq!(
        env.login(&a.handle, &a.password).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (s, v) = env.login(&a.handle, "new-password").await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // The session from before the reset is over.
    let res = env
        .pds
        .http
        .post(format!(
            "{}/xrpc/com.atproto.server.refreshSession",
            env.pds.url
        ))
        .bearer_auth(&a.refresh)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let v: Value = res.json().await.unwrap();
    assert_eq!(error_name(&v), "ExpiredToken", "{v}");

    // And the token was single use.
    let (s, v) = env
        .call(
            "com.atproto.server.resetPassword",
            None,
            json!({"token": token, "password": "third-password"}),
        )
        .await;
    assert_eq!(
        (s, error_name(&v)),
        (StatusCode::BAD_REQUEST, "InvalidToken")
    );
}

// ----- email update -------------------------------------------------------------------------

#[tokio::test]
async fn email_update_needs_a_token_once_confirmed() {
    let env = Env::start().await;
    let a = env.sign_up("carol").await;
    let _other = env.sign_up("dave").await;

    // Unconfirmed: no token, no mail.
    let before = env.smtp.count();
    let (s, v) = env
        .call(
            "com.atproto.server.requestEmailUpdate",
            Some(&a.access),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["tokenRequired"], false);
    assert_eq!(env.smtp.count(), before);

    env.confirm(&a).await;
    let (s, v) = env
        .call(
            "com.atproto.server.requestEmailUpdate",
            Some(&a.access),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["tokenRequired"], true);
    // Sent to the current address.
    let token = env.smtp.token(&a.email, "Email Update Requested").await;

    let (s, v) = env
        .call(
            "com.atproto.server.updateEmail",
            Some(&a.access),
            json!({"email": "carol2@example.com"}),
        )
        .await;
    assert_eq!(
        (s, error_name(&v)),
        (StatusCode::BAD_REQUEST, "TokenRequired")
    );
    let (s, v) = env
        .call(
            "com.atproto.server.updateEmail",
            Some(&a.access),
            json!({"email": "carol2@example.com", "token": "AAAAA-BBBBB"}),
        )
        .await;
    assert_eq!(
        (s, error_name(&v)),
        (StatusCode::BAD_REQUEST, "InvalidToken")
    );
    // Another account's address is refused without burning the token.
    let (s, v) = env
        .call(
            "com.atproto.server.updateEmail",
            Some(&a.access),
            json!({"email": "dave@example.com", "token": token}),
        )
        .await;
    assert_eq!(
        (s, error_name(&v)),
        (StatusCode::BAD_REQUEST, "InvalidRequest")
    );
    let session = env.session(&a).await;
    assert_eq!(session["email"], a.email.as_str());
    assert_eq!(session["emailConfirmed"], true);

    let (s, v) = env
        .call(
            "com.atproto.server.updateEmail",
            Some(&a.access),
            json!({"email": "Carol2@Example.com", "token": token}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let session = env.session(&a).await;
    assert_eq!(session["email"], "carol2@example.com");
    assert_eq!(session["emailConfirmed"], false);
    assert_eq!(
        env.login("carol2@example.com", &a.password).await.0,
        StatusCode::OK
    );
}

// ----- PLC operation signature --------------------------------------------------------------

#[tokio::test]
async fn sign_plc_operation_with_a_mailed_token() {
    let env = Env::start().await;
    let a = env.sign_up("erin").await;
    let plc = &env.pds.pds.plc;
    let last = plc.get_last_op(&a.did).await.unwrap();
    let last_state = last.state().unwrap();

    let (s, v) = env
        .call(
            "com.atproto.identity.requestPlcOperationSignature",
            Some(&a.access),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let token = env
        .smtp
        .token(&a.email, "PLC Update Operation Requested")
        .await;

    let new_aka = json!(["at://erin.elsewhere.example"]);
    let new_services = json!({"atproto_pds": {
        "type": "AtprotoPersonalDataServer", "endpoint": "https://new-pds.example.com"}});

    // No token, a wrong one: refused.
    let (s, v) = env
        .call(
            "com.atproto.identity.signPlcOperation",
            Some(&a.access),
            json!({"alsoKnownAs": new_aka}),
        )
        .await;
    assert_eq!(
        (s, error_name(&v)),
        (StatusCode::BAD_REQUEST, "InvalidRequest")
    );
    let (s, v) = env
        .call(
            "com.atproto.identity.signPlcOperation",
            Some(&a.access),
            json!({"token": "AAAAA-BBBBB", "alsoKnownAs": new_aka}),
        )
        .await;
    assert_eq!(
        (s, error_name(&v)),
        (StatusCode::BAD_REQUEST, "InvalidToken")
    );

    let (s, v) = env
        .call(
            "com.atproto.identity.signPlcOperation",
            Some(&a.access),
            json!({"token": token, "alsoKnownAs": new_aka, "services": new_services}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let op = SignedOp::from_json(&v["operation"]).unwrap();

    // Signed by the PDS rotation key, after the last op.
    let rotation = env
        .pds
        .pds
        .config
        .secrets
        .plc_rotation_key
        .public_key()
        .to_did_key();
    op.verify(std::slice::from_ref(&rotation)).unwrap();
    op.verify(&last_state.rotation_keys).unwrap();
    assert_eq!(op.prev(), Some(last.cid().unwrap().to_string().as_str()));
    op.check_constraints().unwrap();

    // Only the given fields changed.
    let state = op.state().unwrap();
    assert_eq!(state.also_known_as, vec!["at://erin.elsewhere.example"]);
    assert_eq!(
        state.services["atproto_pds"].endpoint,
        "https://new-pds.example.com"
    );
    assert_eq!(state.rotation_keys, last_state.rotation_keys);
    assert_eq!(state.verification_methods, last_state.verification_methods);

    // Not submitted: the directory still has the old op.
    assert_eq!(plc.get_last_op(&a.did).await.unwrap(), last);

    // Single use.
    let (s, v) = env
        .call(
            "com.atproto.identity.signPlcOperation",
            Some(&a.access),
            json!({"token": token}),
        )
        .await;
    assert_eq!(
        (s, error_name(&v)),
        (StatusCode::BAD_REQUEST, "InvalidToken")
    );
}

#[tokio::test]
async fn expired_tokens_are_refused_and_change_nothing() {
    let env = Env::start().await;
    let a = env.sign_up("frank").await;

    let (s, v) = env
        .call(
            "com.atproto.identity.requestPlcOperationSignature",
            Some(&a.access),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let token = env
        .smtp
        .token(&a.email, "PLC Update Operation Requested")
        .await;
    env.age_token(&a.did, "plc_operation");
    let (s, v) = env
        .call(
            "com.atproto.identity.signPlcOperation",
            Some(&a.access),
            json!({"token": token}),
        )
        .await;
    assert_eq!(
        (s, error_name(&v)),
        (StatusCode::BAD_REQUEST, "ExpiredToken")
    );

    env.call(
        "com.atproto.server.requestEmailConfirmation",
        Some(&a.access),
        json!({}),
    )
    .await;
    let token = env.smtp.token(&a.email, "Email Confirmation").await;
    env.age_token(&a.did, "confirm_email");
    let (s, v) = env
        .call(
            "com.atproto.server.confirmEmail",
            Some(&a.access),
            json!({"email": a.email, "token": token}),
        )
        .await;
    assert_eq!(
        (s, error_name(&v)),
        (StatusCode::BAD_REQUEST, "ExpiredToken")
    );
    assert_eq!(env.session(&a).await["emailConfirmed"], false);

    // A new request replaces the stale token with a working one.
    env.confirm(&a).await;
    assert_eq!(env.session(&a).await["emailConfirmed"], true);
}

// ----- account deletion ---------------------------------------------------------------------

fn png(len: usize) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0".to_vec();
    let mut x: u32 = 0x1234_5678;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.push(x as u8);
    }
    out
}

#[tokio::test]
async fn delete_account_with_password_and_token() {
    let env = Env::start().await;
    let a = env.sign_up("grace").await;
    let b = env.sign_up("heidi").await;

    // Some repo content and a stored blob.
    let res = env
        .pds
        .http
        .post(format!("{}/xrpc/com.atproto.repo.uploadBlob", env.pds.url))
        .bearer_auth(&a.access)
        .header("content-type", "image/png")
        .body(png(300))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let blob = res.json::<Value>().await.unwrap()["blob"].clone();
    let (s, v) = env
        .call(
            "com.atproto.repo.createRecord",
            Some(&a.access),
            json!({"repo": a.did, "collection": "app.bsky.feed.post", "record": {
                "$type": "app.bsky.feed.post", "text": "bye", "createdAt": "2026-11-23T10:00:00.000Z",
                "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "", "image": blob}]}}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let did: berth::syntax::Did = a.did.parse().unwrap();
    assert_eq!(env.pds.pds.blobs.list_stored(&did).await.unwrap().len(), 1);
    let actor_dir = berth::store::actor::actor_dir(env.pds.pds.actors.dir(), &a.did);
    assert!(actor_dir.exists());

    let (s, v) = env
        .call(
            "com.atproto.server.requestAccountDelete",
            Some(&a.access),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let token = env.smtp.token(&a.email, "Account Deletion Requested").await;

    // Wrong password, wrong token, another account's DID: refused, the account stays.
    let (s, _) = env
        .call(
            "com.atproto.server.deleteAccount",
            None,
            json!({"did": a.did, "password": "wrong", "token": token}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = env
        .call(
            "com.atproto.server.deleteAccount",
            None,
            json!({"did": a.did, "password": a.password, "token": "AAAAA-BBBBB"}),
        )
        .await;
    assert_eq!(
        (s, error_name(&v)),
        (StatusCode::BAD_REQUEST, "InvalidToken")
    );
    let (s, v) = env
        .call(
            "com.atproto.server.deleteAccount",
            None,
            json!({"did": b.did, "password": b.password, "token": token}),
        )
        .await;
    assert_eq!(
        (s, error_name(&v)),
        (StatusCode::BAD_REQUEST, "InvalidToken")
    );
    assert_eq!(env.login(&a.handle, &a.password).await.0, StatusCode::OK);
    assert!(actor_dir.exists());

    let (s, v) = env
        .call(
            "com.atproto.server.deleteAccount",
            None,
            json!({"did": a.did, "password": a.password, "token": token}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Gone: login, repo files, blobs, repo status.
    assert_eq!(
        env.login(&a.handle, &a.password).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(!actor_dir.exists());
    assert!(
        env.pds
            .pds
            .blobs
            .list_stored(&did)
            .await
            .unwrap()
            .is_empty()
    );
    let (s, v) = env
        .get(
            "com.atproto.sync.getRepoStatus",
            None,
            &format!("did={}", a.did),
        )
        .await;
    assert_eq!(
        (s, error_name(&v)),
        (StatusCode::BAD_REQUEST, "RepoNotFound"),
        "{v}"
    );

    // The firehose log keeps one event for the DID: #account{active:false, status:deleted}.
    let db = rusqlite::Connection::open(&env.pds.pds.config.db.sequencer_db).unwrap();
    let rows: Vec<(String, Vec<u8>)> = db
        .prepare("SELECT event_type, event FROM repo_seq WHERE did = ?1")
        .unwrap()
        .query_map([&a.did], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "account");
    let body = berth::data::cbor::decode(&rows[0].1).unwrap();
    let berth::data::Ipld::Map(m) = body else {
        panic!("event body is not a map")
    };
    assert_eq!(m.get("active"), Some(&berth::data::Ipld::Bool(false)));
    assert_eq!(
        m.get("status"),
        Some(&berth::data::Ipld::String("deleted".into()))
    );

    // The other account is untouched.
    assert_eq!(env.login(&b.handle, &b.password).await.0, StatusCode::OK);
}

// ----- without SMTP -------------------------------------------------------------------------

#[tokio::test]
async fn dev_mode_without_smtp_logs_the_mail_instead() {
    let pds = common::start_pds(&[]).await;
    let res = pds
        .http
        .post(format!("{}/xrpc/com.atproto.server.createAccount", pds.url))
        .json(&json!({"handle": "ivan.test", "email": "ivan@example.com", "password": "hunter22"}))
        .send()
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    let (did, access) = (
        v["did"].as_str().unwrap().to_string(),
        v["accessJwt"].as_str().unwrap().to_string(),
    );
    let res = pds
        .http
        .post(format!(
            "{}/xrpc/com.atproto.identity.requestPlcOperationSignature",
            pds.url
        ))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // The token exists (its mail went to the log).
    let db = rusqlite::Connection::open(pds.dir.path().join("account.sqlite")).unwrap();
    let n: i64 = db
        .query_row(
            "SELECT count(*) FROM email_token WHERE did = ?1 AND purpose = 'plc_operation'",
            [&did],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn the_sink_helpers_find_tokens() {
    assert_eq!(
        find_token("code: ABCDE-23456\n").as_deref(),
        Some("ABCDE-23456")
    );
    assert_eq!(find_token("did:plc:abcde-23456 XABCDE-23456"), None);
}

#[tokio::test]
async fn without_smtp_outside_dev_mode_token_requests_are_refused() {
    let pds = common::start_pds(&[
        ("PDS_DEV_MODE", "false"),
        ("PDS_HOSTNAME", "pds.example.com"),
        ("PDS_SERVICE_HANDLE_DOMAINS", ".test"),
    ])
    .await;
    let res = pds
        .http
        .post(format!("{}/xrpc/com.atproto.server.createAccount", pds.url))
        .json(&json!({"handle": "judy.test", "email": "judy@example.com", "password": "hunter22"}))
        .send()
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    let (did, access) = (
        v["did"].as_str().unwrap().to_string(),
        v["accessJwt"].as_str().unwrap().to_string(),
    );
    for nsid in [
        "com.atproto.identity.requestPlcOperationSignature",
        "com.atproto.server.requestEmailConfirmation",
        "com.atproto.server.requestAccountDelete",
    ] {
        let res = pds
            .http
            .post(format!("{}/xrpc/{nsid}", pds.url))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{nsid}");
        let v: Value = res.json().await.unwrap();
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("PDS_EMAIL_SMTP_URL"),
            "{v}"
        );
    }
    // Refused before any token was made.
    let db = rusqlite::Connection::open(pds.dir.path().join("account.sqlite")).unwrap();
    let n: i64 = db
        .query_row(
            "SELECT count(*) FROM email_token WHERE did = ?1",
            [&did],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0);
}
