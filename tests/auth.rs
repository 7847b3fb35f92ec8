//! Session tokens and Authorization headers, as the reference PDS issues and checks them.

use berth::auth::{
    AuthError, AuthScope, Credentials, TokenIssuer, parse_authorization, verify_admin,
};
use berth::syntax::Did;

fn issuer() -> TokenIssuer {
    TokenIssuer::new("jwt-secret", &"did:web:pds.example".parse().unwrap())
}

fn alice() -> Did {
    "did:plc:ewvi7nxzyoun6zhxrhs64oiz".parse().unwrap()
}

#[test]
fn access_and_refresh_tokens_round_trip_with_reference_claims() {
    let t = issuer()
        .issue(&alice(), AuthScope::Access, None, 1_000)
        .unwrap();
    let access = issuer().verify_access(&t.access_jwt, 1_001).unwrap();
    assert_eq!(access.scope, AuthScope::Access);
    assert_eq!(access.sub, alice().as_str());
    assert_eq!(access.aud, "did:web:pds.example");
    assert_eq!(access.exp - access.iat, 120 * 60);
    let refresh = issuer().verify_refresh(&t.refresh_jwt, 1_001).unwrap();
    assert_eq!(refresh.jti, t.refresh.jti);
    assert_eq!(refresh.exp - refresh.iat, 90 * 24 * 3600);
    // Header typ values are the reference's.
    let typ = |jwt: &str| {
        let header = data_encoding::BASE64URL_NOPAD
            .decode(jwt.split('.').next().unwrap().as_bytes())
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&header).unwrap()["typ"].clone()
    };
    assert_eq!(typ(&t.access_jwt), "at+jwt");
    assert_eq!(typ(&t.refresh_jwt), "refresh+jwt");
}

#[test]
fn tokens_are_not_interchangeable_or_forgeable() {
    let t = issuer()
        .issue(&alice(), AuthScope::AppPass, None, 1_000)
        .unwrap();
    assert!(matches!(
        issuer().verify_access(&t.refresh_jwt, 1_001),
        Err(AuthError::Invalid(_))
    ));
    assert!(matches!(
        issuer().verify_refresh(&t.access_jwt, 1_001),
        Err(AuthError::Invalid(_))
    ));
    let other_secret = TokenIssuer::new("another", &"did:web:pds.example".parse().unwrap());
    assert!(matches!(
        other_secret.verify_access(&t.access_jwt, 1_001),
        Err(AuthError::Invalid(_))
    ));
    let other_pds = TokenIssuer::new("jwt-secret", &"did:web:other.example".parse().unwrap());
    assert!(matches!(
        other_pds.verify_access(&t.access_jwt, 1_001),
        Err(AuthError::Invalid(_))
    ));
    // Expired is its own error (400 ExpiredToken).
    let err = issuer()
        .verify_access(&t.access_jwt, 1_000 + 121 * 60)
        .unwrap_err();
    assert_eq!(err, AuthError::Expired);
    assert_eq!((err.error_name(), err.status()), ("ExpiredToken", 400));
}

#[test]
fn a_remembered_access_token_still_expires_and_its_forgeries_do_not_pass() {
    let issuer = issuer();
    let t = issuer
        .issue(&alice(), AuthScope::Access, None, 1_000)
        .unwrap();
    let first = issuer.verify_access(&t.access_jwt, 1_001).unwrap();
    // The second check is served from memory and must agree.
    assert_eq!(issuer.verify_access(&t.access_jwt, 1_002).unwrap(), first);
    assert_eq!(
        issuer.verify_access(&t.access_jwt, first.exp),
        Err(AuthError::Expired)
    );
    // Same header and claims, another signature: not the remembered text, so checked in full.
    let (signed, _) = t.access_jwt.rsplit_once('.').unwrap();
    let forged = format!("{signed}.{}", "A".repeat(43));
    assert!(matches!(
        issuer.verify_access(&forged, 1_001),
        Err(AuthError::Invalid(_))
    ));
    // Many other tokens later (the memory starts over), the first still verifies.
    for i in 0..1_500 {
        let other = issuer
            .issue(&alice(), AuthScope::Access, None, 2_000 + i)
            .unwrap();
        issuer.verify_access(&other.access_jwt, 2_000 + i).unwrap();
    }
    assert_eq!(issuer.verify_access(&t.access_jwt, 1_003).unwrap(), first);
}

#[test]
fn service_and_pop_claims_are_refused() {
    for extra in [("lxm", "com.atproto.repo.createRecord"), ("cnf", "x")] {
        let mut claims = serde_json::json!({
            "scope": "com.atproto.access", "aud": "did:web:pds.example",
            "sub": alice().as_str(), "iat": 1000, "exp": 99999
        });
        claims[extra.0] = serde_json::json!(extra.1);
        let token = berth::jwt::sign_hs256("at+jwt", &claims, b"jwt-secret").unwrap();
        assert!(
            issuer().verify_access(&token, 1_001).is_err(),
            "{} accepted",
            extra.0
        );
    }
    // A refresh-scoped access token is refused too.
    let claims = serde_json::json!({"scope": "com.atproto.refresh", "aud": "did:web:pds.example",
        "sub": alice().as_str(), "iat": 1000, "exp": 99999});
    let token = berth::jwt::sign_hs256("at+jwt", &claims, b"jwt-secret").unwrap();
    assert!(issuer().verify_access(&token, 1_001).is_err());
}

#[test]
fn authorization_headers_parse_like_the_reference() {
    assert_eq!(parse_authorization(None).unwrap(), None);
    assert_eq!(
        parse_authorization(Some("Bearer abc")).unwrap(),
        Some(Credentials::Bearer("abc".into()))
    );
    assert_eq!(
        parse_authorization(Some("bearer abc")).unwrap(),
        Some(Credentials::Bearer("abc".into()))
    );
    assert_eq!(
        parse_authorization(Some("DPoP abc")).unwrap(),
        Some(Credentials::DPoP("abc".into()))
    );
    let basic = format!("Basic {}", data_encoding::BASE64.encode(b"admin:pa:ss"));
    assert_eq!(
        parse_authorization(Some(&basic)).unwrap(),
        Some(Credentials::Basic {
            username: "admin".into(),
            password: "pa:ss".into()
        })
    );
    for bad in [
        "Bearer",
        "Bearer a b",
        "Token abc",
        "Basic !!!",
        "Basic",
        "",
    ] {
        assert!(parse_authorization(Some(bad)).is_err(), "{bad:?} accepted");
    }
    let huge = format!("Bearer {}", "a".repeat(20_000));
    assert!(parse_authorization(Some(&huge)).is_err());
}

#[test]
fn admin_basic_auth() {
    let ok = Credentials::Basic {
        username: "admin".into(),
        password: "s3cret".into(),
    };
    assert!(verify_admin(&ok, "s3cret").is_ok());
    let wrong = Credentials::Basic {
        username: "admin".into(),
        password: "s3cres".into(),
    };
    assert!(verify_admin(&wrong, "s3cret").is_err());
    let user = Credentials::Basic {
        username: "root".into(),
        password: "s3cret".into(),
    };
    assert!(verify_admin(&user, "s3cret").is_err());
    assert!(verify_admin(&Credentials::Bearer("s3cret".into()), "s3cret").is_err());
}
