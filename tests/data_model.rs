//! Data-model conformance: the interop vectors (exact CBOR bytes and CIDs, valid and invalid
//! JSON) plus round-trip and no-panic properties.

use berth::data::{self, Cid, Ipld, cbor, json};
use data_encoding::BASE64_NOPAD;
use proptest::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;

fn fixture(name: &str) -> Vec<Value> {
    let path = format!(
        "{}/tests/fixtures/interop-tests/data-model/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let Value::Array(cases) = serde_json::from_str(&text).expect("fixture is JSON") else {
        panic!("{path}: expected an array")
    };
    cases
}

#[test]
fn fixtures_encode_to_exact_cbor_and_cid() {
    let cases = fixture("data-model-fixtures.json");
    assert_eq!(cases.len(), 3);
    for case in cases {
        let expected_cbor = BASE64_NOPAD
            .decode(case["cbor_base64"].as_str().unwrap().as_bytes())
            .unwrap();
        let expected_cid = case["cid"].as_str().unwrap();

        let value = json::from_json(&case["json"]).expect("fixture JSON is valid data");
        let bytes = cbor::encode(&value).unwrap();
        assert_eq!(
            bytes, expected_cbor,
            "CBOR bytes differ for {}",
            case["json"]
        );
        assert_eq!(data::cbor_cid(&bytes).to_string(), expected_cid);

        // And back: CBOR -> value -> JSON gives the fixture's JSON.
        let decoded = cbor::decode_canonical(&expected_cbor).unwrap();
        assert_eq!(decoded, value);
        assert_eq!(json::to_json(&decoded), case["json"]);
    }
}

#[test]
fn valid_json_is_accepted() {
    let cases = fixture("data-model-valid.json");
    assert_eq!(cases.len(), 5);
    for case in cases {
        let value = json::from_json(&case["json"])
            .unwrap_or_else(|e| panic!("{} rejected: {e}", case["note"]));
        // Valid values also encode and decode to themselves.
        let bytes = cbor::encode(&value).unwrap();
        assert_eq!(cbor::decode_canonical(&bytes).unwrap(), value);
    }
}

#[test]
fn invalid_json_is_rejected() {
    let cases = fixture("data-model-invalid.json");
    assert_eq!(cases.len(), 12);
    for case in cases {
        // Records are objects at the top level; the first case is a bare string.
        let result = json::object_from_json(&case["json"]);
        assert!(result.is_err(), "{} was accepted", case["note"]);
    }
}

#[test]
fn integer_like_float_becomes_integer() {
    let v = json::from_json_str(r#"{"a": 123.0}"#).unwrap();
    assert_eq!(
        v,
        Ipld::Map(BTreeMap::from([("a".into(), Ipld::Integer(123))]))
    );
}

#[test]
fn out_of_range_integers_are_rejected() {
    assert!(json::from_json_str(r#"{"a": 9223372036854775808}"#).is_err());
    assert!(json::from_json_str(r#"{"a": 9223372036854775807}"#).is_ok());
    assert!(json::from_json_str(r#"{"a": -9223372036854775808}"#).is_ok());
    // CBOR can carry u64::MAX; atproto cannot.
    let bytes = [0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    assert!(cbor::decode(&bytes).is_err());
}

#[test]
fn cbor_floats_are_rejected() {
    // 0xfb = float64 1.5
    let bytes = [0xa1, 0x61, 0x61, 0xfb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0];
    let err = cbor::decode(&bytes).unwrap_err();
    assert!(err.to_string().contains("float"), "{err}");
}

#[test]
fn non_canonical_cbor_is_rejected_by_strict_decode() {
    // {"b": 1, "a": 2}: keys out of canonical order.
    let bytes = [0xa2, 0x61, 0x62, 0x01, 0x61, 0x61, 0x02];
    assert!(cbor::decode_canonical(&bytes).is_err());
    // 1 encoded with a needless one-byte head.
    assert!(cbor::decode_canonical(&[0x18, 0x01]).is_err());
    // Trailing bytes.
    assert!(cbor::decode(&[0x01, 0x01]).is_err());
}

#[test]
fn blob_refs_are_found() {
    let v = json::from_json_str(
        r#"{"embed": {"images": [{"image": {"$type": "blob", "ref": {"$link":
        "bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity"}, "mimeType": "image/jpeg",
        "size": 10000}}]}}"#,
    )
    .unwrap();
    let refs = data::blob_refs(&v);
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].size, 10000);
    assert_eq!(refs[0].cid.codec(), data::RAW);
}

#[test]
fn blessed_cids() {
    assert!(
        data::parse_blessed_cid("bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a")
            .is_ok()
    );
    assert!(
        data::parse_blessed_cid("bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity")
            .is_ok()
    );
    // CIDv0
    assert!(data::parse_blessed_cid("QmY7Yh4UquoXHLPFo2XbhXkhBvFoPwmQUSa92pxnxjQuPU").is_err());
    assert!(data::parse_blessed_cid("not a cid").is_err());
    let c = data::cbor_cid(b"x");
    assert!(data::verify_cid(&c, b"x").is_ok());
    assert!(data::verify_cid(&c, b"y").is_err());
}

/// Strategy for arbitrary valid data-model values.
fn arb_ipld() -> impl Strategy<Value = Ipld> {
    let leaf = prop_oneof![
        Just(Ipld::Null),
        any::<bool>().prop_map(Ipld::Bool),
        any::<i64>().prop_map(|i| Ipld::Integer(i.into())),
        ".{0,20}".prop_map(Ipld::String),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Ipld::Bytes),
        any::<[u8; 32]>().prop_map(|b| Ipld::Link(data::cbor_cid(&b))),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Ipld::List),
            // Keys avoid `$` so random maps do not collide with $type/$link rules.
            proptest::collection::btree_map("[a-zA-Z0-9_]{0,10}", inner, 0..8).prop_map(Ipld::Map),
        ]
    })
}

/// Strategy for any `Ipld` the encoders take, valid atproto data or not: integers beyond 64
/// bits, floats, map keys of every length class (byte length, not chars, decides order) and
/// strings and bytes around each CBOR head size.
fn arb_any_ipld() -> impl Strategy<Value = Ipld> {
    let sized = || prop_oneof![0usize..30, 250usize..260, 65530usize..65540];
    let leaf = prop_oneof![
        Just(Ipld::Null),
        any::<bool>().prop_map(Ipld::Bool),
        any::<i64>().prop_map(|i| Ipld::Integer(i.into())),
        any::<u64>().prop_map(|i| Ipld::Integer(i.into())),
        (-3i128..3).prop_map(|d| Ipld::Integer(-(1i128 << 64) + d)),
        (-3i128..3).prop_map(|d| Ipld::Integer((1i128 << 64) + d)),
        any::<f64>().prop_map(Ipld::Float),
        ".{0,30}".prop_map(Ipld::String),
        sized().prop_map(|n| Ipld::String("é".repeat(n / 2))),
        sized().prop_map(|n| Ipld::Bytes(vec![7; n])),
        any::<[u8; 32]>().prop_map(|b| Ipld::Link(data::cbor_cid(&b))),
    ];
    let key = prop_oneof![
        "[a-c]{0,3}",
        ".{20,30}",
        (20usize..30).prop_map(|n| "ü".repeat(n))
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Ipld::List),
            proptest::collection::btree_map(key.clone(), inner, 0..10).prop_map(Ipld::Map),
        ]
    })
}

proptest! {
    /// berth's own `Ipld` writer gives exactly `serde_ipld_dagcbor`'s bytes, or its error.
    #[test]
    fn direct_encoder_matches_serde_ipld_dagcbor(value in arb_any_ipld()) {
        let ours = cbor::ipld_to_vec(&value).map_err(|e| e.to_string());
        let theirs = serde_ipld_dagcbor::to_vec(&value).map_err(|e| e.to_string());
        prop_assert_eq!(ours.is_ok(), theirs.is_ok());
        if let (Ok(ours), Ok(theirs)) = (ours, theirs) {
            prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn cbor_round_trips(value in arb_ipld()) {
        let bytes = cbor::encode(&value).unwrap();
        let back = cbor::decode_canonical(&bytes).unwrap();
        prop_assert_eq!(&back, &value);
        // Canonical: re-encoding is byte-identical, so the CID is stable.
        prop_assert_eq!(cbor::encode(&back).unwrap(), bytes);
    }

    #[test]
    fn json_round_trips(value in arb_ipld()) {
        let j = json::to_json(&value);
        let back = json::from_json(&j).unwrap();
        prop_assert_eq!(back, value);
    }

    #[test]
    fn cbor_decoder_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = cbor::decode(&bytes);
        let _ = cbor::decode_canonical(&bytes);
    }

    #[test]
    fn cbor_decoder_never_panics_on_mutated_values(
        value in arb_ipld(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = cbor::encode(&value).unwrap();
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= b;
        }
        let _ = cbor::decode(&bytes);
        let truncated = &bytes[..cut.index(bytes.len() + 1)];
        let _ = cbor::decode(truncated);
    }

    #[test]
    fn json_converter_never_panics(s in "\\PC{0,200}") {
        let _ = json::from_json_str(&s);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    // 100k nested arrays: must be refused without overflowing the stack.
    let mut bytes = vec![0x81u8; 100_000];
    bytes.push(0x01);
    assert!(cbor::decode(&bytes).is_err());
    let s = "[".repeat(100_000) + &"]".repeat(100_000);
    assert!(json::from_json_str(&s).is_err());
}

#[test]
fn cid_round_trip_in_json() {
    let c: Cid = data::cbor_cid(b"hello");
    let v = Ipld::Link(c);
    assert_eq!(json::to_json(&v)["$link"], c.to_string());
}
