//! Conformance and property tests for `berth::crypto`.

use berth::crypto::{CryptoError, Curve, KeyEncoding, Keypair, PublicKey};
use data_encoding::{BASE64_NOPAD, HEXLOWER};
use proptest::prelude::*;
use serde::Deserialize;

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/interop-tests/crypto/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Curve orders, big-endian, for building high-S twins (`n - s`).
const K256_N: [u8; 32] = hex32("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141");
const P256_N: [u8; 32] = hex32("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");

const fn hex32(s: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("bad hex"),
        }
    }
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = nibble(b[2 * i]) << 4 | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

fn order(curve: Curve) -> [u8; 32] {
    match curve {
        Curve::K256 => K256_N,
        Curve::P256 => P256_N,
    }
}

/// `a - b` on 256-bit big-endian integers (caller guarantees a >= b).
fn sub_be(a: &[u8; 32], b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = if d < 0 {
            d += 256;
            1
        } else {
            0
        };
        out[i] = d as u8;
    }
    out
}

/// The malleated twin `(r, n - s)` of a signature.
fn flip_s(curve: Curve, sig: &[u8; 64]) -> [u8; 64] {
    let mut out = *sig;
    out[32..].copy_from_slice(&sub_be(&order(curve), &sig[32..]));
    out
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SigFixture {
    comment: String,
    message_base64: String,
    algorithm: String,
    did_doc_suite: String,
    public_key_did: String,
    public_key_multibase: String,
    signature_base64: String,
    valid_signature: bool,
    tags: Vec<String>,
}

#[test]
fn signature_fixtures() {
    let fixtures: Vec<SigFixture> =
        serde_json::from_str(&fixture("signature-fixtures.json")).unwrap();
    assert_eq!(fixtures.len(), 6, "expected all 6 signature fixtures");
    let (mut valid, mut high_s, mut der) = (0, 0, 0);
    for f in &fixtures {
        let msg = BASE64_NOPAD.decode(f.message_base64.as_bytes()).unwrap();
        let sig = BASE64_NOPAD.decode(f.signature_base64.as_bytes()).unwrap();
        let curve = Curve::from_jwt_alg(&f.algorithm).unwrap();

        let from_did = PublicKey::from_did_key(&f.public_key_did).unwrap();
        assert_eq!(from_did.curve(), curve, "{}", f.comment);
        assert_eq!(from_did.to_did_key(), f.public_key_did, "{}", f.comment);

        assert_eq!(
            KeyEncoding::from_did_doc_type(&f.did_doc_suite),
            Some(KeyEncoding::Legacy(curve))
        );
        let from_legacy =
            PublicKey::from_verification_method(&f.did_doc_suite, &f.public_key_multibase).unwrap();
        assert_eq!(from_legacy, from_did, "{}", f.comment);

        for key in [from_did, from_legacy] {
            let res = key.verify(&msg, &sig);
            assert_eq!(res.is_ok(), f.valid_signature, "{}: {res:?}", f.comment);
            if f.tags.iter().any(|t| t == "high-s") {
                assert_eq!(res, Err(CryptoError::HighS), "{}", f.comment);
            } else if f.tags.iter().any(|t| t == "der-encoded") {
                assert_eq!(
                    res,
                    Err(CryptoError::SignatureLength(sig.len())),
                    "{}",
                    f.comment
                );
            }
        }
        if f.tags.iter().any(|t| t == "high-s") {
            high_s += 1;
            // The only thing wrong is S: its low-S twin verifies.
            let twin = flip_s(curve, &sig.clone().try_into().unwrap());
            from_did.verify(&msg, &twin).unwrap();
        } else if f.tags.iter().any(|t| t == "der-encoded") {
            der += 1;
            let msg = from_did.verify(&msg, &sig).unwrap_err().to_string();
            assert!(msg.contains("expected 64"), "{msg}");
            assert!(msg.contains("DER"), "{msg}");
        } else {
            assert!(f.valid_signature);
            valid += 1;
        }
    }
    assert_eq!((valid, high_s, der), (2, 2, 2));
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct K256Vector {
    private_key_bytes_hex: String,
    public_did_key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct P256Vector {
    private_key_bytes_base58: String,
    public_did_key: String,
}

#[test]
fn w3c_didkey_k256() {
    let vectors: Vec<K256Vector> = serde_json::from_str(&fixture("w3c_didkey_K256.json")).unwrap();
    assert_eq!(vectors.len(), 5);
    for v in &vectors {
        let kp = Keypair::from_private_hex(Curve::K256, &v.private_key_bytes_hex).unwrap();
        assert_eq!(kp.public_key().to_did_key(), v.public_did_key);
        assert_eq!(kp.to_private_hex(), v.private_key_bytes_hex);
        let pk = PublicKey::from_did_key(&v.public_did_key).unwrap();
        assert_eq!(pk, kp.public_key());
        assert!(v.public_did_key.starts_with("did:key:zQ3s"));
    }
}

#[test]
fn w3c_didkey_p256() {
    let vectors: Vec<P256Vector> = serde_json::from_str(&fixture("w3c_didkey_P256.json")).unwrap();
    assert_eq!(vectors.len(), 1);
    for v in &vectors {
        let bytes = multibase::Base::Base58Btc
            .decode(&v.private_key_bytes_base58)
            .unwrap();
        let kp = Keypair::from_private_bytes(Curve::P256, &bytes).unwrap();
        assert_eq!(kp.public_key().to_did_key(), v.public_did_key);
        assert_eq!(kp.private_bytes().as_slice(), bytes.as_slice());
        let pk = PublicKey::from_did_key(&v.public_did_key).unwrap();
        assert_eq!(pk, kp.public_key());
        assert!(v.public_did_key.starts_with("did:key:zDna"));
    }
}

#[test]
fn spec_example_keys() {
    for (did, curve) in [
        (
            "did:key:zDnaembgSGUhZULN2Caob4HLJPaxBh92N7rtH21TErzqf8HQo",
            Curve::P256,
        ),
        (
            "did:key:zQ3shqwJEJyMBsBXCWyCBpUBMqxcon9oHB7mCvx4sSpMdLJwc",
            Curve::K256,
        ),
    ] {
        let pk = PublicKey::from_did_key(did).unwrap();
        assert_eq!(pk.curve(), curve);
        assert_eq!(pk.to_did_key(), did);
        assert_eq!(pk.to_string(), did);
        let multikey = did.strip_prefix("did:key:").unwrap();
        assert_eq!(pk.to_multikey(), multikey);
        assert_eq!(PublicKey::from_multikey(multikey).unwrap(), pk);
        assert_eq!(
            PublicKey::from_verification_method("Multikey", multikey).unwrap(),
            pk
        );
    }
}

/// did.md: the same K-256 key in the legacy (uncompressed, no multicodec) and Multikey forms.
#[test]
fn spec_legacy_and_multikey_agree() {
    let legacy =
        "zQYEBzXeuTM9UR3rfvNag6L3RNAs5pQZyYPsomTsgQhsxLdEgCrPTLgFna8yqCnxPpNT7DBk6Ym3dgPKNu86vt9GR";
    let multikey = "zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF";
    let a =
        PublicKey::from_verification_method("EcdsaSecp256k1VerificationKey2019", legacy).unwrap();
    let b = PublicKey::from_verification_method("Multikey", multikey).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.to_legacy_multibase(), legacy);
    assert_eq!(b.to_multikey(), multikey);
}

#[test]
fn did_doc_types() {
    assert_eq!(
        KeyEncoding::from_did_doc_type("EcdsaSecp256r1VerificationKey2019"),
        Some(KeyEncoding::Legacy(Curve::P256))
    );
    assert_eq!(
        KeyEncoding::from_did_doc_type("EcdsaSecp256k1VerificationKey2019"),
        Some(KeyEncoding::Legacy(Curve::K256))
    );
    assert_eq!(
        KeyEncoding::from_did_doc_type("Multikey"),
        Some(KeyEncoding::Multikey)
    );
    assert_eq!(
        KeyEncoding::from_did_doc_type("Ed25519VerificationKey2020"),
        None
    );
    assert!(matches!(
        PublicKey::from_verification_method("JsonWebKey2020", "z"),
        Err(CryptoError::UnknownKeyType(_))
    ));
}

#[test]
fn decoder_errors_are_specific() {
    // ed25519 did:key: valid multibase, wrong codec.
    let err = PublicKey::from_did_key("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK")
        .unwrap_err();
    assert_eq!(err, CryptoError::UnknownMulticodec(0xed));
    assert!(err.to_string().contains("unknown multicodec 0xed"));

    assert_eq!(
        PublicKey::from_did_key("did:web:example.com"),
        Err(CryptoError::NotDidKey)
    );
    assert!(matches!(
        PublicKey::from_multikey("mAAAA"),
        Err(CryptoError::MultibasePrefix(_))
    ));
    assert_eq!(PublicKey::from_multikey("z0OIl"), Err(CryptoError::Base58));
    assert!(matches!(
        PublicKey::from_multikey(&"z".repeat(10_000)),
        Err(CryptoError::EncodedKeyTooLong(10_000))
    ));

    // Multikey with an uncompressed point is refused (the spec mandates compressed).
    let kp = Keypair::generate(Curve::P256);
    let mut bytes = vec![0x80, 0x24];
    bytes.extend_from_slice(&kp.public_key().uncompressed_bytes());
    let s = multibase::encode(multibase::Base::Base58Btc, &bytes);
    assert!(matches!(
        PublicKey::from_multikey(&s),
        Err(CryptoError::PublicKeyLength { len: 65, .. })
    ));
    // ... but the legacy form accepts both.
    let pk = kp.public_key();
    assert_eq!(
        PublicKey::from_legacy_multibase(Curve::P256, &pk.to_legacy_multibase()).unwrap(),
        pk
    );
    let compressed = multibase::encode(multibase::Base::Base58Btc, pk.compressed_bytes());
    assert_eq!(
        PublicKey::from_legacy_multibase(Curve::P256, &compressed).unwrap(),
        pk
    );
    // A point that is not on the curve: x = 0 has no y on secp256k1 (0 + 7 is a non-residue).
    let mut bad = [0u8; 33];
    bad[0] = 0x02;
    assert_eq!(
        PublicKey::from_sec1_bytes(Curve::K256, &bad),
        Err(CryptoError::InvalidPoint(Curve::K256))
    );
}

#[test]
fn private_key_parsing() {
    let hex = "9085d2bef69286a6cbb51623c8fa258629945cd55ca705cc4e66700396894e0c";
    let kp = Keypair::from_private_hex(Curve::K256, hex).unwrap();
    assert_eq!(kp.curve(), Curve::K256);
    assert_eq!(
        Keypair::from_private_hex(Curve::K256, &format!(" {}\n", hex.to_uppercase()))
            .unwrap()
            .to_private_hex(),
        hex
    );
    assert_eq!(
        Keypair::from_private_hex(Curve::K256, &hex[..62]).unwrap_err(),
        CryptoError::PrivateKeyLength(31)
    );
    assert_eq!(
        Keypair::from_private_hex(Curve::K256, &format!("{}zz", &hex[..62])).unwrap_err(),
        CryptoError::PrivateKeyHex
    );
    assert_eq!(
        Keypair::from_private_bytes(Curve::P256, &[1u8; 31]).unwrap_err(),
        CryptoError::PrivateKeyLength(31)
    );
    for curve in [Curve::K256, Curve::P256] {
        assert_eq!(
            Keypair::from_private_bytes(curve, &[0u8; 32]).unwrap_err(),
            CryptoError::PrivateKeyOutOfRange(curve)
        );
        assert_eq!(
            Keypair::from_private_bytes(curve, &order(curve)).unwrap_err(),
            CryptoError::PrivateKeyOutOfRange(curve)
        );
        assert_eq!(
            Keypair::from_private_bytes(curve, &[0xff; 32]).unwrap_err(),
            CryptoError::PrivateKeyOutOfRange(curve)
        );
    }
}

#[test]
fn debug_never_prints_the_secret() {
    for curve in [Curve::K256, Curve::P256] {
        let kp = Keypair::generate(curve);
        let dbg = format!("{kp:?} {kp:#?}");
        assert!(!dbg.contains(&kp.to_private_hex()), "{dbg}");
        assert!(!dbg.to_lowercase().contains(&kp.to_private_hex()), "{dbg}");
        assert!(dbg.contains(&kp.public_key().to_did_key()));
    }
}

#[test]
fn generated_keys_differ_and_round_trip() {
    for curve in [Curve::K256, Curve::P256] {
        let a = Keypair::generate(curve);
        let b = Keypair::generate(curve);
        assert_ne!(a.private_bytes(), b.private_bytes());
        let again = Keypair::from_private_bytes(curve, &a.private_bytes()).unwrap();
        assert_eq!(again.public_key(), a.public_key());
        assert_eq!(
            Keypair::from_private_hex(curve, &a.to_private_hex())
                .unwrap()
                .public_key(),
            a.public_key()
        );
    }
}

#[test]
fn curve_names() {
    assert_eq!(Curve::K256.jwt_alg(), "ES256K");
    assert_eq!(Curve::P256.jwt_alg(), "ES256");
    assert_eq!(Curve::from_jwt_alg("ES256K"), Some(Curve::K256));
    assert_eq!(Curve::from_jwt_alg("ES256"), Some(Curve::P256));
    assert_eq!(Curve::from_jwt_alg("es256"), None);
    assert_eq!(Curve::from_jwt_alg("ES384"), None);
}

#[test]
fn signatures_are_deterministic_and_bound_to_key_and_message() {
    for curve in [Curve::K256, Curve::P256] {
        let kp = Keypair::generate(curve);
        let other = Keypair::generate(curve);
        let sig = kp.sign(b"hello");
        assert_eq!(sig, kp.sign(b"hello"), "RFC 6979 nonces are deterministic");
        let pk = kp.public_key();
        pk.verify(b"hello", sig.as_bytes()).unwrap();
        assert_eq!(
            pk.verify(b"hellp", sig.as_bytes()),
            Err(CryptoError::BadSignature)
        );
        assert_eq!(
            other.public_key().verify(b"hello", sig.as_bytes()),
            Err(CryptoError::BadSignature)
        );
        assert_eq!(
            pk.verify(b"hello", &[0u8; 64]),
            Err(CryptoError::SignatureOutOfRange)
        );
        assert_eq!(
            pk.verify(b"hello", &[0xffu8; 64]),
            Err(CryptoError::SignatureOutOfRange)
        );
        assert_eq!(
            pk.verify(b"hello", &[]),
            Err(CryptoError::SignatureLength(0))
        );
        let mut long = sig.to_bytes().to_vec();
        long.push(0);
        assert_eq!(
            pk.verify(b"hello", &long),
            Err(CryptoError::SignatureLength(65))
        );
    }
}

fn curve_strategy() -> impl Strategy<Value = Curve> {
    prop_oneof![Just(Curve::K256), Just(Curve::P256)]
}

/// A keypair from proptest-chosen bytes; the rare out-of-range scalar is nudged to a valid one.
fn keypair(curve: Curve, seed: [u8; 32]) -> Keypair {
    Keypair::from_private_bytes(curve, &seed).unwrap_or_else(|_| {
        let mut one = [0u8; 32];
        one[31] = 1;
        Keypair::from_private_bytes(curve, &one).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn sign_verify_round_trip(curve in curve_strategy(), seed in any::<[u8; 32]>(),
                              msg in proptest::collection::vec(any::<u8>(), 0..512)) {
        let kp = keypair(curve, seed);
        let sig = kp.sign(&msg);
        // Low-S: s <= n/2, i.e. n - s >= s. Compare big-endian.
        let twin = flip_s(curve, sig.as_bytes());
        prop_assert!(sig.as_bytes()[32..] < twin[32..], "signature is not low-S");
        prop_assert_eq!(kp.public_key().verify(&msg, sig.as_bytes()), Ok(()));
        // And the same key, decoded from its did:key, agrees.
        let pk = PublicKey::from_did_key(&kp.public_key().to_did_key()).unwrap();
        prop_assert_eq!(pk.verify(&msg, sig.as_bytes()), Ok(()));
    }

    #[test]
    fn flipped_s_twin_is_rejected(curve in curve_strategy(), seed in any::<[u8; 32]>(),
                                  msg in proptest::collection::vec(any::<u8>(), 0..256)) {
        let kp = keypair(curve, seed);
        let sig = kp.sign(&msg);
        let twin = flip_s(curve, sig.as_bytes());
        prop_assert_eq!(kp.public_key().verify(&msg, &twin), Err(CryptoError::HighS));
    }

    #[test]
    fn key_encodings_round_trip(curve in curve_strategy(), seed in any::<[u8; 32]>()) {
        let pk = keypair(curve, seed).public_key();
        let did = pk.to_did_key();
        prop_assert_eq!(PublicKey::from_did_key(&did).unwrap(), pk);
        let mk = pk.to_multikey();
        prop_assert_eq!(&format!("did:key:{mk}"), &did);
        prop_assert_eq!(PublicKey::from_multikey(&mk).unwrap(), pk);
        prop_assert_eq!(PublicKey::from_legacy_multibase(curve, &pk.to_legacy_multibase()).unwrap(), pk);
        prop_assert_eq!(PublicKey::from_sec1_bytes(curve, &pk.compressed_bytes()).unwrap(), pk);
        prop_assert_eq!(PublicKey::from_sec1_bytes(curve, &pk.uncompressed_bytes()).unwrap(), pk);
        let prefix = match curve { Curve::K256 => "did:key:zQ3s", Curve::P256 => "did:key:zDn" };
        prop_assert!(did.starts_with(prefix));
    }

    #[test]
    fn string_decoders_never_panic(s in ".{0,200}", curve in curve_strategy()) {
        let _ = PublicKey::from_did_key(&s);
        let _ = PublicKey::from_multikey(&s);
        let _ = PublicKey::from_legacy_multibase(curve, &s);
        let _ = PublicKey::from_verification_method("Multikey", &s);
        let _ = Keypair::from_private_hex(curve, &s);
        let z = format!("z{s}");
        let _ = PublicKey::from_multikey(&z);
        let _ = PublicKey::from_legacy_multibase(curve, &z);
    }

    #[test]
    fn base58_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80),
                                   curve in curve_strategy()) {
        let s = multibase::encode(multibase::Base::Base58Btc, &bytes);
        let _ = PublicKey::from_multikey(&s);
        let _ = PublicKey::from_did_key(&format!("did:key:{s}"));
        let _ = PublicKey::from_legacy_multibase(curve, &s);
        let _ = PublicKey::from_sec1_bytes(curve, &bytes);
        let _ = Keypair::from_private_bytes(curve, &bytes);
        let _ = Keypair::from_private_hex(curve, &HEXLOWER.encode(&bytes));
        // Plausible-looking multikeys: right codec, random point bytes.
        for prefix in [[0xe7u8, 0x01], [0x80, 0x24]] {
            let mut b = prefix.to_vec();
            b.extend_from_slice(&bytes);
            let _ = PublicKey::from_multikey(&multibase::encode(multibase::Base::Base58Btc, &b));
        }
    }

    #[test]
    fn verify_never_panics(curve in curve_strategy(),
                           sig in proptest::collection::vec(any::<u8>(), 0..100),
                           sig64 in any::<[u8; 32]>().prop_flat_map(|a| any::<[u8; 32]>().prop_map(move |b| {
                               let mut s = [0u8; 64]; s[..32].copy_from_slice(&a); s[32..].copy_from_slice(&b); s
                           }))) {
        let pk = keypair(curve, [7u8; 32]).public_key();
        prop_assert!(pk.verify(b"msg", &sig).is_err());
        prop_assert!(pk.verify(b"msg", &sig64).is_err());
    }
}
