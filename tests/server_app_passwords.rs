//! App passwords, invite codes and reserved signing keys over real HTTP: berth's server and its
//! PLC directory on 127.0.0.1, driven with reqwest. The reference-client version of the app
//! password checks is in tests/interop/.

use reqwest::StatusCode;
use serde_json::{Value, json};

const ADMIN_PASSWORD: &str = "admin:secret"; // a ':' in the password must survive Basic auth

mod common;

use common::TestPds as Harness;

async fn start(env: &[(&str, &str)]) -> Harness {
    let mut vars = vec![("PDS_ADMIN_PASSWORD", ADMIN_PASSWORD)];
    vars.extend_from_slice(env);
    common::start_pds(&vars).await
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    Basic(&'a str, &'a str),
    Raw(&'a str),
}

impl Harness {
    async fn call(&self, req: reqwest::RequestBuilder, auth: Auth<'_>) -> (StatusCode, Value) {
        let req = match auth {
            Auth::None => req,
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
            Auth::Raw(h) => req.header("authorization", h),
        };
        let res = req.send().await.unwrap();
        (res.status(), res.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, nsid: &str, body: Value, auth: Auth<'_>) -> (StatusCode, Value) {
        let req = self
            .http
            .post(format!("{}/xrpc/{nsid}", self.url))
            .json(&body);
        self.call(req, auth).await
    }

    async fn get(&self, nsid: &str, auth: Auth<'_>) -> (StatusCode, Value) {
        let req = self.http.get(format!("{}/xrpc/{nsid}", self.url));
        self.call(req, auth).await
    }

    async fn sign_up(&self, handle: &str, invite: Option<&str>) -> (StatusCode, Value) {
        let mut body = json!({
            "handle": handle,
            "email": format!("{}@example.com", handle.replace('.', "-")),
            "password": "correct horse",
        });
        if let Some(code) = invite {
            body["inviteCode"] = json!(code);
        }
        self.post("com.atproto.server.createAccount", body, Auth::None)
            .await
    }

    async fn login(&self, identifier: &str, password: &str) -> (StatusCode, Value) {
        self.post(
            "com.atproto.server.createSession",
            json!({"identifier": identifier, "password": password}),
            Auth::None,
        )
        .await
    }

    async fn admin_code(&self, uses: i64) -> String {
        let (status, out) = self
            .post(
                "com.atproto.server.createInviteCode",
                json!({"useCount": uses}),
                Auth::Basic("admin", ADMIN_PASSWORD),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{out}");
        out["code"].as_str().unwrap().to_string()
    }
}

/// The `scope` claim of an access JWT (the payload is not verified here; the server did that).
fn scope_of(jwt: &str) -> String {
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(payload.as_bytes())
        .unwrap();
    let claims: Value = serde_json::from_slice(&bytes).unwrap();
    claims["scope"].as_str().unwrap().to_string()
}

fn error_of(res: &(StatusCode, Value)) -> (StatusCode, Option<&str>) {
    (res.0, res.1["error"].as_str())
}

fn is_app_password(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 4
        && groups.iter().all(|g| {
            g.len() == 4
                && g.chars()
                    .all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c))
        })
}

#[tokio::test]
async fn app_password_lifecycle() {
    let h = start(&[]).await;
    let (status, created) = h.sign_up("alice.test", None).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let did = created["did"].as_str().unwrap().to_string();
    let full = created["accessJwt"].as_str().unwrap().to_string();

    // No credentials at all.
    let res = h
        .post(
            "com.atproto.server.createAppPassword",
            json!({"name": "phone"}),
            Auth::None,
        )
        .await;
    assert_eq!(
        error_of(&res),
        (StatusCode::UNAUTHORIZED, Some("AuthMissing"))
    );

    // Create: a fresh xxxx-xxxx-xxxx-xxxx secret, unprivileged by default.
    let (status, phone) = h
        .post(
            "com.atproto.server.createAppPassword",
            json!({"name": "phone"}),
            Auth::Bearer(&full),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{phone}");
    assert_eq!(phone["name"], "phone");
    assert_eq!(phone["privileged"], false);
    let phone_pw = phone["password"].as_str().unwrap().to_string();
    assert!(is_app_password(&phone_pw), "{phone_pw}");
    let created_at = phone["createdAt"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created_at).is_ok() && created_at.ends_with('Z'),
        "{created_at}"
    );

    // The name is unique per account.
    let res = h
        .post(
            "com.atproto.server.createAppPassword",
            json!({"name": "phone"}),
            Auth::Bearer(&full),
        )
        .await;
    assert_eq!(
        error_of(&res),
        (StatusCode::BAD_REQUEST, Some("InvalidRequest"))
    );
    let res = h
        .post(
            "com.atproto.server.createAppPassword",
            json!({"privileged": true}),
            Auth::Bearer(&full),
        )
        .await;
    assert_eq!(
        error_of(&res),
        (StatusCode::BAD_REQUEST, Some("InvalidRequest"))
    );

    let (status, desk) = h
        .post(
            "com.atproto.server.createAppPassword",
            json!({"name": "desk", "privileged": true}),
            Auth::Bearer(&full),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{desk}");
    assert_eq!(desk["privileged"], true);
    let desk_pw = desk["password"].as_str().unwrap().to_string();
    assert_ne!(desk_pw, phone_pw);

    // List: names, times and privilege, never the secret; newest first.
    let (status, list) = h
        .get("com.atproto.server.listAppPasswords", Auth::Bearer(&full))
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let passwords = list["passwords"].as_array().unwrap();
    let names: Vec<&str> = passwords
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["desk", "phone"]);
    assert_eq!(passwords[0]["privileged"], true);
    assert_eq!(passwords[1]["privileged"], false);
    assert!(passwords.iter().all(|p| p.get("password").is_none()));
    assert!(passwords.iter().all(|p| p["createdAt"].is_string()));

    // Log in with each app password: the scope says which kind; getSession works.
    let (status, phone_session) = h.login("alice.test", &phone_pw).await;
    assert_eq!(status, StatusCode::OK, "{phone_session}");
    assert_eq!(phone_session["did"], did.as_str());
    let phone_access = phone_session["accessJwt"].as_str().unwrap().to_string();
    let phone_refresh = phone_session["refreshJwt"].as_str().unwrap().to_string();
    assert_eq!(scope_of(&phone_access), "com.atproto.appPass");
    let (status, me) = h
        .get("com.atproto.server.getSession", Auth::Bearer(&phone_access))
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["did"], did.as_str());

    let (status, desk_session) = h.login("alice-test@example.com", &desk_pw).await;
    assert_eq!(status, StatusCode::OK, "{desk_session}");
    let desk_access = desk_session["accessJwt"].as_str().unwrap().to_string();
    assert_eq!(scope_of(&desk_access), "com.atproto.appPassPrivileged");
    assert_eq!(
        scope_of(full.as_str()),
        "com.atproto.access",
        "the sign-up session has full access"
    );

    // App-password sessions may list but not create app passwords (nor read invite codes).
    for token in [&phone_access, &desk_access] {
        let res = h
            .post(
                "com.atproto.server.createAppPassword",
                json!({"name": "sneaky"}),
                Auth::Bearer(token),
            )
            .await;
        assert_eq!(
            error_of(&res),
            (StatusCode::BAD_REQUEST, Some("InvalidToken"))
        );
        assert_eq!(res.1["message"], "Bad token scope");
        let (status, list) = h
            .get("com.atproto.server.listAppPasswords", Auth::Bearer(token))
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let res = h
            .get(
                "com.atproto.server.getAccountInviteCodes",
                Auth::Bearer(token),
            )
            .await;
        assert_eq!(
            error_of(&res),
            (StatusCode::BAD_REQUEST, Some("InvalidToken"))
        );
    }

    // A refreshed app-password session keeps its scope.
    let (status, refreshed) = h
        .post(
            "com.atproto.server.refreshSession",
            json!({}),
            Auth::Bearer(&phone_refresh),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(
        scope_of(refreshed["accessJwt"].as_str().unwrap()),
        "com.atproto.appPass"
    );
    let phone_refresh = refreshed["refreshJwt"].as_str().unwrap().to_string();

    // A second phone session, to check that revocation reaches every session of the password.
    let (_, phone_session2) = h.login("alice.test", &phone_pw).await;
    let phone_refresh2 = phone_session2["refreshJwt"].as_str().unwrap().to_string();
    let (_, full_session) = h.login("alice.test", "correct horse").await;
    let full_refresh = full_session["refreshJwt"].as_str().unwrap().to_string();

    // Revoke "phone": its sessions can no longer refresh and it no longer logs in.
    let (status, out) = h
        .post(
            "com.atproto.server.revokeAppPassword",
            json!({"name": "phone"}),
            Auth::Bearer(&full),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    for refresh in [&phone_refresh, &phone_refresh2] {
        let res = h
            .post(
                "com.atproto.server.refreshSession",
                json!({}),
                Auth::Bearer(refresh),
            )
            .await;
        assert_eq!(
            error_of(&res),
            (StatusCode::BAD_REQUEST, Some("ExpiredToken"))
        );
    }
    let res = h.login("alice.test", &phone_pw).await;
    assert_eq!(
        error_of(&res),
        (StatusCode::UNAUTHORIZED, Some("AuthenticationRequired"))
    );
    // The account password's session and the other app password are untouched.
    let (status, _) = h
        .post(
            "com.atproto.server.refreshSession",
            json!({}),
            Auth::Bearer(&full_refresh),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = h
        .get("com.atproto.server.listAppPasswords", Auth::Bearer(&full))
        .await;
    assert_eq!(list["passwords"].as_array().unwrap().len(), 1);
    assert_eq!(list["passwords"][0]["name"], "desk");

    // Revoking an unknown name is not an error; an app-password session may revoke (standard
    // access, as the reference).
    let (status, _) = h
        .post(
            "com.atproto.server.revokeAppPassword",
            json!({"name": "never-existed"}),
            Auth::Bearer(&full),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = h
        .post(
            "com.atproto.server.revokeAppPassword",
            json!({"name": "desk"}),
            Auth::Bearer(&desk_access),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = h
        .get("com.atproto.server.listAppPasswords", Auth::Bearer(&full))
        .await;
    assert_eq!(list["passwords"], json!([]));
    let res = h.login("alice.test", &desk_pw).await;
    assert_eq!(res.0, StatusCode::UNAUTHORIZED);

    // Refresh tokens are not access tokens.
    let res = h
        .get(
            "com.atproto.server.listAppPasswords",
            Auth::Bearer(&full_refresh),
        )
        .await;
    assert_eq!(
        error_of(&res),
        (StatusCode::BAD_REQUEST, Some("InvalidToken"))
    );
}

#[tokio::test]
async fn admin_invite_codes_and_invite_required_sign_up() {
    let h = start(&[("PDS_INVITE_REQUIRED", "true")]).await;

    // Admin auth: missing, wrong password, wrong user, wrong scheme, garbage.
    let body = json!({"useCount": 1});
    let refused: [Auth; 5] = [
        Auth::None,
        Auth::Basic("admin", "wrong"),
        Auth::Basic("root", ADMIN_PASSWORD),
        Auth::Bearer(ADMIN_PASSWORD),
        Auth::Raw("Basic !!!"),
    ];
    for auth in refused {
        for nsid in [
            "com.atproto.server.createInviteCode",
            "com.atproto.server.createInviteCodes",
        ] {
            let res = h.post(nsid, body.clone(), auth).await;
            assert_eq!(
                error_of(&res),
                (StatusCode::UNAUTHORIZED, Some("AuthenticationRequired")),
                "{nsid}"
            );
        }
    }

    // createInviteCode: `<hostname>-xxxxx-xxxxx`.
    let code = h.admin_code(1).await;
    let parts: Vec<&str> = code.split('-').collect();
    assert_eq!(parts.len(), 3, "{code}");
    assert_eq!(parts[0], "localhost");
    assert!(parts[1..].iter().all(|p| {
        p.len() == 5
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c))
    }));

    // Bad input: negative uses, a forAccount that is not a DID, a missing useCount.
    for bad in [
        json!({"useCount": -1}),
        json!({"useCount": 1, "forAccount": "not a did"}),
        json!({}),
    ] {
        let res = h
            .post(
                "com.atproto.server.createInviteCode",
                bad.clone(),
                Auth::Basic("admin", ADMIN_PASSWORD),
            )
            .await;
        assert_eq!(
            error_of(&res),
            (StatusCode::BAD_REQUEST, Some("InvalidRequest")),
            "{bad}"
        );
    }

    // Sign-up needs a code, an existing one, with uses left.
    let res = h.sign_up("nocode.test", None).await;
    assert_eq!(
        error_of(&res),
        (StatusCode::BAD_REQUEST, Some("InvalidInviteCode"))
    );
    let res = h
        .sign_up("unknown.test", Some("localhost-aaaaa-bbbbb"))
        .await;
    assert_eq!(
        error_of(&res),
        (StatusCode::BAD_REQUEST, Some("InvalidInviteCode"))
    );
    let (status, bob) = h.sign_up("bob.test", Some(&code)).await;
    assert_eq!(status, StatusCode::OK, "{bob}");
    let bob_did = bob["did"].as_str().unwrap().to_string();
    let bob_access = bob["accessJwt"].as_str().unwrap().to_string();
    let res = h.sign_up("carol.test", Some(&code)).await;
    assert_eq!(
        error_of(&res),
        (StatusCode::BAD_REQUEST, Some("InvalidInviteCode"))
    );

    // createInviteCodes: per account, defaulting to "admin" and one code.
    let (status, out) = h
        .post(
            "com.atproto.server.createInviteCodes",
            json!({"codeCount": 2, "useCount": 2, "forAccounts": [bob_did, "did:web:elsewhere.example"]}),
            Auth::Basic("admin", ADMIN_PASSWORD),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let groups = out["codes"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["account"], bob_did.as_str());
    assert_eq!(groups[1]["account"], "did:web:elsewhere.example");
    assert!(
        groups
            .iter()
            .all(|g| g["codes"].as_array().unwrap().len() == 2)
    );
    let bob_code = groups[0]["codes"][0].as_str().unwrap().to_string();
    let (status, out) = h
        .post(
            "com.atproto.server.createInviteCodes",
            json!({"useCount": 1}),
            Auth::Basic("admin", ADMIN_PASSWORD),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["codes"][0]["account"], "admin");
    assert_eq!(out["codes"][0]["codes"].as_array().unwrap().len(), 1);

    // A two-use code signs up two accounts, then no more.
    assert_eq!(
        h.sign_up("dave.test", Some(&bob_code)).await.0,
        StatusCode::OK
    );
    let (status, erin) = h.sign_up("erin.test", Some(&bob_code)).await;
    assert_eq!(status, StatusCode::OK, "{erin}");
    let erin_did = erin["did"].as_str().unwrap().to_string();
    let res = h.sign_up("frank.test", Some(&bob_code)).await;
    assert_eq!(
        error_of(&res),
        (StatusCode::BAD_REQUEST, Some("InvalidInviteCode"))
    );

    // getAccountInviteCodes: bob's codes with their uses; includeUsed=false hides used ones.
    let (status, out) = h
        .get(
            "com.atproto.server.getAccountInviteCodes",
            Auth::Bearer(&bob_access),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let codes = out["codes"].as_array().unwrap();
    assert_eq!(codes.len(), 2, "{out}");
    let used = codes
        .iter()
        .find(|c| c["code"] == bob_code.as_str())
        .unwrap();
    assert_eq!(used["available"], 2);
    assert_eq!(used["disabled"], false);
    assert_eq!(used["forAccount"], bob_did.as_str());
    assert_eq!(used["createdBy"], "admin");
    assert!(used["createdAt"].is_string());
    let users: Vec<&str> = used["uses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["usedBy"].as_str().unwrap())
        .collect();
    assert_eq!(users.len(), 2);
    assert!(users.contains(&erin_did.as_str()));
    assert!(used["uses"][0]["usedAt"].is_string());
    let (status, out) = h
        .get(
            "com.atproto.server.getAccountInviteCodes?includeUsed=false",
            Auth::Bearer(&bob_access),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let codes = out["codes"].as_array().unwrap();
    assert_eq!(codes.len(), 1);
    assert_ne!(codes[0]["code"], bob_code.as_str());

    let res = h
        .get("com.atproto.server.getAccountInviteCodes", Auth::None)
        .await;
    assert_eq!(
        error_of(&res),
        (StatusCode::UNAUTHORIZED, Some("AuthMissing"))
    );
}

#[tokio::test]
async fn routine_invite_codes_are_minted_up_to_five_unused() {
    // One code earned per millisecond of account life: the cap of five unused is what binds.
    let h = start(&[
        ("PDS_INVITE_REQUIRED", "true"),
        ("PDS_INVITE_INTERVAL", "1"),
    ])
    .await;
    let code = h.admin_code(1).await;
    let (status, acc) = h.sign_up("gina.test", Some(&code)).await;
    assert_eq!(status, StatusCode::OK, "{acc}");
    let did = acc["did"].as_str().unwrap().to_string();
    let access = acc["accessJwt"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    // createAvailable=false mints nothing.
    let (status, out) = h
        .get(
            "com.atproto.server.getAccountInviteCodes?createAvailable=false",
            Auth::Bearer(&access),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["codes"], json!([]));

    let (status, out) = h
        .get(
            "com.atproto.server.getAccountInviteCodes",
            Auth::Bearer(&access),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let codes = out["codes"].as_array().unwrap();
    assert_eq!(codes.len(), 5, "{out}");
    assert!(codes.iter().all(|c| c["createdBy"] == did.as_str()
        && c["forAccount"] == did.as_str()
        && c["available"] == 1));

    // Asking again mints no more while five are unused.
    let (_, again) = h
        .get(
            "com.atproto.server.getAccountInviteCodes",
            Auth::Bearer(&access),
        )
        .await;
    assert_eq!(again["codes"], out["codes"]);

    // Using one lets one more be minted.
    let first = codes[0]["code"].as_str().unwrap();
    assert_eq!(h.sign_up("hank.test", Some(first)).await.0, StatusCode::OK);
    let (_, after) = h
        .get(
            "com.atproto.server.getAccountInviteCodes",
            Auth::Bearer(&access),
        )
        .await;
    assert_eq!(after["codes"].as_array().unwrap().len(), 6, "{after}");
}

#[tokio::test]
async fn reserve_signing_key() {
    let h = start(&[]).await;
    let reserve = |body: Value| h.post("com.atproto.server.reserveSigningKey", body, Auth::None);

    let (status, a) = reserve(json!({"did": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"})).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    let key = a["signingKey"].as_str().unwrap().to_string();
    // A secp256k1 did:key (multicodec 0xe7 → base58btc "zQ3s").
    assert!(key.starts_with("did:key:zQ3s"), "{key}");

    // The same DID gets the same key; another DID another key.
    let (_, again) = reserve(json!({"did": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"})).await;
    assert_eq!(again["signingKey"], key.as_str());
    let (_, other) = reserve(json!({"did": "did:web:example.com"})).await;
    assert!(
        other["signingKey"]
            .as_str()
            .unwrap()
            .starts_with("did:key:zQ3s")
    );
    assert_ne!(other["signingKey"], key.as_str());

    // Without a DID: a fresh key each time.
    let (status, anon1) = reserve(json!({})).await;
    assert_eq!(status, StatusCode::OK, "{anon1}");
    let (_, anon2) = reserve(json!({})).await;
    assert!(
        anon1["signingKey"]
            .as_str()
            .unwrap()
            .starts_with("did:key:zQ3s")
    );
    assert_ne!(anon1["signingKey"], anon2["signingKey"]);

    // Not a DID (and no way out of the key directory).
    for bad in ["../../etc/passwd", "did:plc:../x", "alice.test"] {
        let res = reserve(json!({"did": bad})).await;
        assert_eq!(
            error_of(&res),
            (StatusCode::BAD_REQUEST, Some("InvalidRequest")),
            "{bad}"
        );
    }
}
