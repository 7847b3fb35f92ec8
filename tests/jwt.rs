//! Tests for `berth::jwt`: HS256 session tokens and ES256K/ES256 service-auth tokens.

use berth::crypto::{CryptoError, Curve, Keypair};
use berth::jwt::{
    self, JwtError, MAX_TOKEN_LEN, ServiceClaims, TYP_ACCESS, TYP_REFRESH, check_exp,
    decode_unverified, sign_hs256, sign_service, verify_hs256, verify_hs256_at, verify_service,
};
use data_encoding::BASE64URL_NOPAD;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const SECRET: &[u8] = b"correct horse battery staple";
const NOW: i64 = 1_700_000_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SessionClaims {
    scope: String,
    sub: String,
    aud: String,
    iat: i64,
    exp: i64,
}

fn session(exp: i64) -> SessionClaims {
    SessionClaims {
        scope: "com.atproto.access".into(),
        sub: "did:plc:ewvi7nxzyoun6zhxrhs64oiz".into(),
        aud: "did:web:pds.example.com".into(),
        iat: NOW,
        exp,
    }
}

fn b64(bytes: &[u8]) -> String {
    BASE64URL_NOPAD.encode(bytes)
}

fn segment_json(token: &str, i: usize) -> Value {
    let seg = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&BASE64URL_NOPAD.decode(seg.as_bytes()).unwrap()).unwrap()
}

/// Hand-build a service token with arbitrary header and payload, signed by `kp`.
fn craft(kp: &Keypair, header: &Value, payload: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let sig = kp.sign(input.as_bytes());
    format!("{input}.{}", b64(sig.as_bytes()))
}

fn service_claims() -> ServiceClaims {
    ServiceClaims::new(
        "did:plc:ewvi7nxzyoun6zhxrhs64oiz",
        "did:web:api.bsky.app#bsky_appview",
        Some("app.bsky.feed.getTimeline"),
        NOW,
        60,
    )
}

// ---------------------------------------------------------------------------------------------
// HS256

#[test]
fn hs256_round_trip() {
    let claims = session(NOW + 120);
    let token = sign_hs256(TYP_ACCESS, &claims, SECRET).unwrap();
    assert_eq!(
        segment_json(&token, 0),
        json!({"typ": "at+jwt", "alg": "HS256"})
    );
    let back: SessionClaims = verify_hs256_at(&token, SECRET, TYP_ACCESS, NOW).unwrap();
    assert_eq!(back, claims);
    // Also through the wall-clock entry point, which must not panic for want of a crypto
    // provider (jsonwebtoken 11 with exactly one backend feature).
    let live = session(jwt::now_unix() + 300);
    let token = sign_hs256(TYP_REFRESH, &live, SECRET).unwrap();
    let back: SessionClaims = verify_hs256(&token, SECRET, TYP_REFRESH).unwrap();
    assert_eq!(back, live);
    // Claims come back as any DeserializeOwned, e.g. raw JSON.
    let raw: Value = verify_hs256(&token, SECRET, TYP_REFRESH).unwrap();
    assert_eq!(raw["sub"], "did:plc:ewvi7nxzyoun6zhxrhs64oiz");
}

#[test]
fn hs256_wrong_secret() {
    let token = sign_hs256(TYP_ACCESS, &session(NOW + 120), SECRET).unwrap();
    let err = verify_hs256_at::<Value>(&token, b"another secret", TYP_ACCESS, NOW).unwrap_err();
    assert!(matches!(err, JwtError::Hs256(_)), "{err}");
}

#[test]
fn hs256_wrong_or_missing_typ() {
    let token = sign_hs256(TYP_REFRESH, &session(NOW + 120), SECRET).unwrap();
    let err = verify_hs256_at::<Value>(&token, SECRET, TYP_ACCESS, NOW).unwrap_err();
    assert_eq!(
        err,
        JwtError::WrongTyp {
            expected: "at+jwt".into(),
            found: Some("refresh+jwt".into())
        }
    );
    let token = sign_hs256(TYP_ACCESS, &session(NOW + 120), SECRET).unwrap();
    assert!(verify_hs256_at::<Value>(&token, SECRET, TYP_REFRESH, NOW).is_err());

    // No typ at all (jsonwebtoken defaults it to "JWT").
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = None;
    let token = jsonwebtoken::encode(
        &header,
        &session(NOW + 120),
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    assert_eq!(
        verify_hs256_at::<Value>(&token, SECRET, TYP_ACCESS, NOW).unwrap_err(),
        JwtError::WrongTyp {
            expected: "at+jwt".into(),
            found: None
        }
    );
}

#[test]
fn hs256_alg_none_rejected() {
    let header = b64(br#"{"alg":"none","typ":"at+jwt"}"#);
    let payload = b64(serde_json::to_string(&session(NOW + 120))
        .unwrap()
        .as_bytes());
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
        format!("{header}.{payload}.AAAA"),
    ] {
        assert!(verify_hs256_at::<Value>(&token, SECRET, TYP_ACCESS, NOW).is_err());
    }
    // Also with a real HS256 signature grafted on.
    let good = sign_hs256(TYP_ACCESS, &session(NOW + 120), SECRET).unwrap();
    let sig = good.rsplit('.').next().unwrap();
    let token = format!("{header}.{payload}.{sig}");
    assert!(verify_hs256_at::<Value>(&token, SECRET, TYP_ACCESS, NOW).is_err());
}

#[test]
fn hs256_other_hmac_algs_rejected() {
    for alg in [
        jsonwebtoken::Algorithm::HS384,
        jsonwebtoken::Algorithm::HS512,
    ] {
        let mut header = jsonwebtoken::Header::new(alg);
        header.typ = Some(TYP_ACCESS.into());
        let token = jsonwebtoken::encode(
            &header,
            &session(NOW + 120),
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        let err = verify_hs256_at::<Value>(&token, SECRET, TYP_ACCESS, NOW).unwrap_err();
        assert!(matches!(err, JwtError::Hs256(_)), "{alg:?}: {err}");
    }
}

#[test]
fn hs256_tampered_payload_rejected() {
    let token = sign_hs256(TYP_ACCESS, &session(NOW + 120), SECRET).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let mut evil = session(NOW + 120);
    evil.sub = "did:plc:attacker".into();
    let evil_payload = b64(serde_json::to_string(&evil).unwrap().as_bytes());
    let tampered = format!("{}.{}.{}", parts[0], evil_payload, parts[2]);
    assert!(verify_hs256_at::<Value>(&tampered, SECRET, TYP_ACCESS, NOW).is_err());
}

#[test]
fn hs256_expiry() {
    let exp = NOW + 100;
    let token = sign_hs256(TYP_ACCESS, &session(exp), SECRET).unwrap();
    assert!(verify_hs256_at::<Value>(&token, SECRET, TYP_ACCESS, exp - 1).is_ok());
    assert_eq!(
        verify_hs256_at::<Value>(&token, SECRET, TYP_ACCESS, exp).unwrap_err(),
        JwtError::Expired { exp, now: exp }
    );
    assert!(matches!(
        verify_hs256_at::<Value>(&token, SECRET, TYP_ACCESS, exp + 1000),
        Err(JwtError::Expired { .. })
    ));
    // A token that expired in the past fails the wall-clock variant too.
    let old = sign_hs256(TYP_ACCESS, &session(NOW), SECRET).unwrap();
    assert!(matches!(
        verify_hs256::<Value>(&old, SECRET, TYP_ACCESS),
        Err(JwtError::Expired { .. })
    ));

    // exp is required and must be an integer.
    for claims in [
        json!({"sub": "x"}),
        json!({"sub": "x", "exp": "2000000000"}),
        json!({"sub": "x", "exp": 2.0e9}),
    ] {
        let token = sign_hs256(TYP_ACCESS, &claims, SECRET).unwrap();
        assert_eq!(
            verify_hs256_at::<Value>(&token, SECRET, TYP_ACCESS, NOW).unwrap_err(),
            JwtError::MissingExp
        );
    }
}

#[test]
fn check_exp_boundaries() {
    assert!(check_exp(10, 9).is_ok());
    assert!(check_exp(10, 10).is_err());
    assert!(check_exp(10, 11).is_err());
    assert!(check_exp(i64::MIN, i64::MAX).is_err());
}

#[test]
fn hs256_misc_rejections() {
    assert_eq!(
        sign_hs256(TYP_ACCESS, &session(NOW + 1), b"").unwrap_err(),
        JwtError::EmptySecret
    );
    let token = sign_hs256(TYP_ACCESS, &session(NOW + 120), SECRET).unwrap();
    assert_eq!(
        verify_hs256_at::<Value>(&token, b"", TYP_ACCESS, NOW).unwrap_err(),
        JwtError::EmptySecret
    );
    let huge = "a".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(
        verify_hs256_at::<Value>(&huge, SECRET, TYP_ACCESS, NOW).unwrap_err(),
        JwtError::TooLong(MAX_TOKEN_LEN + 1)
    );
    // Claims of the wrong shape.
    let err = verify_hs256_at::<SessionClaims>(
        &sign_hs256(TYP_ACCESS, &json!({"exp": NOW + 5}), SECRET).unwrap(),
        SECRET,
        TYP_ACCESS,
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, JwtError::Claims(_)), "{err}");
    // A service token is not an HS256 token.
    let kp = Keypair::generate(Curve::P256);
    let st = sign_service(&kp, &service_claims()).unwrap();
    assert!(verify_hs256_at::<Value>(&st, SECRET, "JWT", NOW).is_err());
}

// ---------------------------------------------------------------------------------------------
// ES256K / ES256

#[test]
fn service_round_trip_both_curves() {
    for curve in [Curve::K256, Curve::P256] {
        let kp = Keypair::generate(curve);
        let claims = service_claims();
        let token = sign_service(&kp, &claims).unwrap();
        assert_eq!(token.split('.').count(), 3);
        assert!(!token.contains('='));
        assert_eq!(
            segment_json(&token, 0),
            json!({"typ": "JWT", "alg": curve.jwt_alg()})
        );
        // Literal header bytes, in the documented field order.
        let header = BASE64URL_NOPAD
            .decode(token.split('.').next().unwrap().as_bytes())
            .unwrap();
        assert_eq!(
            String::from_utf8(header).unwrap(),
            format!(r#"{{"typ":"JWT","alg":"{}"}}"#, curve.jwt_alg())
        );

        let back: ServiceClaims = verify_service(&token, &kp.public_key()).unwrap();
        assert_eq!(back, claims);
        back.check(
            NOW + 59,
            "did:web:api.bsky.app#bsky_appview",
            Some("app.bsky.feed.getTimeline"),
        )
        .unwrap();

        let (h, c) = decode_unverified(&token).unwrap();
        assert_eq!(h.alg, curve.jwt_alg());
        assert_eq!(h.typ.as_deref(), Some("JWT"));
        assert_eq!(h.kid, None);
        assert_eq!(c["iss"], "did:plc:ewvi7nxzyoun6zhxrhs64oiz");

        // Signature is 64 bytes.
        let sig = BASE64URL_NOPAD
            .decode(token.rsplit('.').next().unwrap().as_bytes())
            .unwrap();
        assert_eq!(sig.len(), 64);
    }
}

#[test]
fn service_claims_shape() {
    let c = service_claims();
    assert_eq!(c.exp, NOW + 60);
    assert_eq!(c.iat, NOW);
    assert_eq!(c.jti.as_ref().map(String::len), Some(32));
    assert_ne!(c.jti, service_claims().jti, "jti is a random nonce");
    let v = serde_json::to_value(ServiceClaims {
        lxm: None,
        jti: None,
        ..c
    })
    .unwrap();
    assert!(v.get("lxm").is_none() && v.get("jti").is_none());
}

#[test]
fn service_claims_check() {
    let c = service_claims();
    let aud = "did:web:api.bsky.app#bsky_appview";
    let lxm = Some("app.bsky.feed.getTimeline");
    assert!(c.check(NOW, aud, lxm).is_ok());
    assert!(c.check(NOW, aud, None).is_ok());
    assert!(matches!(
        c.check(NOW + 60, aud, lxm),
        Err(JwtError::Expired { .. })
    ));
    assert!(matches!(
        c.check(NOW, "did:web:api.bsky.app", lxm),
        Err(JwtError::AudMismatch { .. })
    ));
    assert!(matches!(
        c.check(NOW, aud, Some("com.atproto.repo.createRecord")),
        Err(JwtError::LxmMismatch { .. })
    ));
    let no_lxm = ServiceClaims { lxm: None, ..c };
    assert_eq!(
        no_lxm.check(NOW, aud, lxm).unwrap_err(),
        JwtError::LxmMismatch {
            expected: "app.bsky.feed.getTimeline".into(),
            found: None
        }
    );
}

#[test]
fn service_token_from_other_key_rejected() {
    for curve in [Curve::K256, Curve::P256] {
        let kp = Keypair::generate(curve);
        let other = Keypair::generate(curve);
        let token = sign_service(&kp, &service_claims()).unwrap();
        assert_eq!(
            verify_service::<Value>(&token, &other.public_key()).unwrap_err(),
            JwtError::Signature(CryptoError::BadSignature)
        );
    }
}

#[test]
fn service_alg_curve_mismatch_rejected() {
    let k = Keypair::generate(Curve::K256);
    let p = Keypair::generate(Curve::P256);
    // Honest token, wrong key type.
    let token = sign_service(&k, &service_claims()).unwrap();
    assert_eq!(
        verify_service::<Value>(&token, &p.public_key()).unwrap_err(),
        JwtError::AlgMismatch {
            alg: "ES256K".into(),
            curve: Curve::P256
        }
    );
    // Header lies about the alg, signature is genuinely from the k256 key.
    let claims = serde_json::to_value(service_claims()).unwrap();
    let token = craft(&k, &json!({"typ": "JWT", "alg": "ES256"}), &claims);
    assert!(matches!(
        verify_service::<Value>(&token, &k.public_key()),
        Err(JwtError::AlgMismatch { .. })
    ));
    // Unknown / absent algs.
    for header in [
        json!({"typ": "JWT", "alg": "none"}),
        json!({"typ": "JWT", "alg": "HS256"}),
        json!({"typ": "JWT", "alg": "es256k"}),
    ] {
        let token = craft(&k, &header, &claims);
        assert!(matches!(
            verify_service::<Value>(&token, &k.public_key()),
            Err(JwtError::UnsupportedAlg(_))
        ));
    }
    let token = craft(&k, &json!({"typ": "JWT"}), &claims);
    assert!(matches!(
        verify_service::<Value>(&token, &k.public_key()),
        Err(JwtError::Json { .. })
    ));
}

/// n - s on P-256 (big-endian).
fn p256_flip_s(sig: &[u8]) -> Vec<u8> {
    let n = data_encoding::HEXLOWER
        .decode(b"ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")
        .unwrap();
    let mut out = sig.to_vec();
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(n[i]) - i16::from(sig[32 + i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[32 + i] = d as u8;
    }
    out
}

#[test]
fn service_high_s_es256_rejected() {
    let kp = Keypair::generate(Curve::P256);
    let token = sign_service(&kp, &service_claims()).unwrap();
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig = BASE64URL_NOPAD.decode(sig.as_bytes()).unwrap();
    let twin = format!("{input}.{}", b64(&p256_flip_s(&sig)));
    assert_eq!(
        verify_service::<Value>(&twin, &kp.public_key()).unwrap_err(),
        JwtError::Signature(CryptoError::HighS)
    );
    // Our low-S originals interoperate with an off-the-shelf ES256 verifier (jsonwebtoken's,
    // which per CRATES.md §2 would also accept the high-S twin, hence the hand-rolled path).
    let key = jsonwebtoken::DecodingKey::from_ec_der(&kp.public_key().compressed_bytes());
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_aud = false;
    assert!(jsonwebtoken::decode::<Value>(&token, &key, &v).is_ok());
}

#[test]
fn service_der_signature_rejected() {
    let kp = Keypair::generate(Curve::P256);
    let token = sign_service(&kp, &service_claims()).unwrap();
    let (input, _) = token.rsplit_once('.').unwrap();
    // A structurally DER-shaped 70-byte blob is refused on length alone.
    let mut der = vec![0x30, 68, 0x02, 32];
    der.extend_from_slice(&[1u8; 32]);
    der.extend_from_slice(&[0x02, 32]);
    der.extend_from_slice(&[1u8; 32]);
    let token = format!("{input}.{}", b64(&der));
    assert_eq!(
        verify_service::<Value>(&token, &kp.public_key()).unwrap_err(),
        JwtError::Signature(CryptoError::SignatureLength(70))
    );
}

#[test]
fn service_typ_and_crit() {
    let kp = Keypair::generate(Curve::K256);
    let claims = serde_json::to_value(service_claims()).unwrap();
    for typ in ["at+jwt", "refresh+jwt", "dpop+jwt", "AT+JWT"] {
        let token = craft(&kp, &json!({"typ": typ, "alg": "ES256K"}), &claims);
        assert!(
            matches!(
                verify_service::<Value>(&token, &kp.public_key()),
                Err(JwtError::WrongTyp { .. })
            ),
            "{typ}"
        );
    }
    // Absent typ and a kid are fine.
    let token = craft(&kp, &json!({"alg": "ES256K", "kid": "#atproto"}), &claims);
    verify_service::<ServiceClaims>(&token, &kp.public_key()).unwrap();
    assert_eq!(
        decode_unverified(&token).unwrap().0.kid.as_deref(),
        Some("#atproto")
    );
    let token = craft(
        &kp,
        &json!({"alg": "ES256K", "typ": "JWT", "crit": ["exp"]}),
        &claims,
    );
    assert_eq!(
        verify_service::<Value>(&token, &kp.public_key()).unwrap_err(),
        JwtError::CritHeader
    );
}

#[test]
fn service_tampered_payload_rejected() {
    let kp = Keypair::generate(Curve::K256);
    let token = sign_service(&kp, &service_claims()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let mut evil = service_claims();
    evil.iss = "did:plc:attacker".into();
    let evil = b64(serde_json::to_string(&evil).unwrap().as_bytes());
    let tampered = format!("{}.{evil}.{}", parts[0], parts[2]);
    assert_eq!(
        verify_service::<Value>(&tampered, &kp.public_key()).unwrap_err(),
        JwtError::Signature(CryptoError::BadSignature)
    );
}

#[test]
fn malformed_service_tokens() {
    let kp = Keypair::generate(Curve::K256);
    let pk = kp.public_key();
    let token = sign_service(&kp, &service_claims()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let (h, p, s) = (parts[0], parts[1], parts[2]);
    type Expect = fn(&JwtError) -> bool;
    let cases: Vec<(String, Expect)> = vec![
        (String::new(), |e| matches!(e, JwtError::Segments(1))),
        (format!("{h}.{p}"), |e| matches!(e, JwtError::Segments(2))),
        (format!("{h}.{p}.{s}.{s}"), |e| {
            matches!(e, JwtError::Segments(4))
        }),
        ("....".into(), |e| matches!(e, JwtError::Segments(5))),
        (format!(".{p}.{s}"), |e| {
            matches!(e, JwtError::EmptySegment("header"))
        }),
        (format!("{h}..{s}"), |e| {
            matches!(e, JwtError::EmptySegment("payload"))
        }),
        (format!("{h}.{p}."), |e| {
            matches!(e, JwtError::EmptySegment("signature"))
        }),
        (format!("{h}=.{p}.{s}"), |e| {
            matches!(e, JwtError::Base64("header"))
        }),
        (format!("{h}.{p}==.{s}"), |e| {
            matches!(e, JwtError::Base64("payload"))
        }),
        (format!("{h}.{p}.{s}="), |e| {
            matches!(e, JwtError::Base64("signature"))
        }),
        (
            format!("{h}.{p}.{}", s.replace('-', "+").replace('_', "/") + "+/"),
            |e| matches!(e, JwtError::Base64("signature")),
        ),
        (format!("{h}.{p}.{s}AAA"), |e| {
            matches!(e, JwtError::Base64("signature"))
        }),
        (format!("{h} .{p}.{s}"), |e| {
            matches!(e, JwtError::Base64("header"))
        }),
        (format!("{}.{p}.{s}", b64(b"not json")), |e| {
            matches!(
                e,
                JwtError::Json {
                    segment: "header",
                    ..
                }
            )
        }),
        (format!("{}.{p}.{s}", b64(b"[1,2]")), |e| {
            matches!(e, JwtError::NotObject("header"))
        }),
        (format!("{h}.{}.{s}", b64(b"\"a string\"")), |e| {
            matches!(e, JwtError::NotObject("payload"))
        }),
        (format!("{h}.{}.{s}", b64(&[0xff, 0xfe])), |e| {
            matches!(
                e,
                JwtError::Json {
                    segment: "payload",
                    ..
                }
            )
        }),
        ("x".repeat(MAX_TOKEN_LEN + 1), |e| {
            matches!(e, JwtError::TooLong(_))
        }),
    ];
    for (bad, expected) in &cases {
        let err = verify_service::<Value>(bad, &pk).unwrap_err();
        assert!(expected(&err), "{bad:.80}: got {err:?}");
        assert!(decode_unverified(bad).is_err(), "{bad:.80}");
        assert!(verify_hs256_at::<Value>(bad, SECRET, TYP_ACCESS, NOW).is_err());
    }
    // Non-canonical trailing bits in the last base64 character are rejected: the 64-byte
    // signature is 86 chars, whose last char carries 4 meaningful bits.
    let last = s.as_bytes()[s.len() - 1];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.iter().position(|&c| c == last).unwrap();
    let sibling = alphabet[idx ^ 1] as char;
    let bad = format!("{h}.{p}.{}{sibling}", &s[..s.len() - 1]);
    assert_eq!(
        verify_service::<Value>(&bad, &pk).unwrap_err(),
        JwtError::Base64("signature")
    );
    // Claims of the wrong shape.
    let token = craft(&kp, &json!({"alg": "ES256K"}), &json!({"iss": 5}));
    assert!(matches!(
        verify_service::<ServiceClaims>(&token, &pk),
        Err(JwtError::Claims(_))
    ));
    // sign_service refuses claims that are not a JSON object.
    assert_eq!(
        sign_service(&kp, &[1, 2, 3]).unwrap_err(),
        JwtError::NotObject("payload")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_strings_never_panic(s in "\\PC{0,300}") {
        let pk = Keypair::generate(Curve::P256).public_key();
        prop_assert!(verify_service::<Value>(&s, &pk).is_err());
        let _ = decode_unverified(&s);
        prop_assert!(verify_hs256_at::<Value>(&s, SECRET, TYP_ACCESS, NOW).is_err());
    }

    #[test]
    fn dotted_base64_junk_never_panics(segs in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..80), 0..6)) {
        let s = segs.iter().map(|b| b64(b)).collect::<Vec<_>>().join(".");
        let pk = Keypair::generate(Curve::K256).public_key();
        prop_assert!(verify_service::<Value>(&s, &pk).is_err());
        let _ = decode_unverified(&s);
        prop_assert!(verify_hs256_at::<Value>(&s, SECRET, TYP_ACCESS, NOW).is_err());
    }

    #[test]
    fn any_single_char_change_is_rejected(pos in any::<prop::sample::Index>(),
                                          c in prop::sample::select(
                                              b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ".to_vec()),
                                          p256 in any::<bool>()) {
        let curve = if p256 { Curve::P256 } else { Curve::K256 };
        let kp = Keypair::generate(curve);
        let service = sign_service(&kp, &service_claims()).unwrap();
        let hs = sign_hs256(TYP_ACCESS, &session(NOW + 120), SECRET).unwrap();
        for token in [&service, &hs] {
            let i = pos.index(token.len());
            prop_assume!(token.as_bytes()[i] != c);
            let mut bytes = token.clone().into_bytes();
            bytes[i] = c;
            let mutated = String::from_utf8(bytes).unwrap();
            if token == &service {
                prop_assert!(verify_service::<Value>(&mutated, &kp.public_key()).is_err(), "{}", mutated);
            } else {
                prop_assert!(verify_hs256_at::<Value>(&mutated, SECRET, TYP_ACCESS, NOW).is_err(), "{}", mutated);
            }
        }
    }
}
