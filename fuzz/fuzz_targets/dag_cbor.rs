//! DAG-CBOR decoding (blocks from CARs, firehose frames, PLC operations): never panics; a
//! value decoded from canonical bytes re-encodes to them, passes or fails data-model
//! validation, and survives the trip through atproto JSON.
#![no_main]

use berth::data::Ipld;
use berth::data::{self, cbor, json};
use libfuzzer_sys::fuzz_target;

fn has_json_reserved_key(v: &Ipld) -> bool {
    match v {
        Ipld::Map(m) => {
            m.contains_key("$link")
                || m.contains_key("$bytes")
                || m.values().any(has_json_reserved_key)
        }
        Ipld::List(items) => items.iter().any(has_json_reserved_key),
        _ => false,
    }
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(value) = cbor::decode(bytes) else {
        return;
    };
    let canonical = cbor::decode_canonical(bytes).is_ok();
    let Ok(encoded) = cbor::ipld_to_vec(&value) else {
        return;
    };
    assert_eq!(canonical, encoded == bytes);
    // Re-encoding is idempotent.
    let again = cbor::decode(&encoded).expect("our own encoding decodes");
    assert_eq!(cbor::ipld_to_vec(&again).expect("re-encodes"), encoded);
    // A CBOR map keyed `$link` or `$bytes` reads back from JSON as a link or bytes: the JSON
    // encoding reserves those keys, so only values without them must survive the trip.
    if data::validate(&value).is_ok() && !has_json_reserved_key(&value) {
        let j = json::to_json(&value);
        if let Ok(back) = json::from_json(&j) {
            assert_eq!(
                cbor::ipld_to_vec(&back).expect("re-encodes"),
                encoded,
                "JSON round trip changed a valid value: {j}"
            );
        }
    }
    let _ = berth::repo::Commit::from_cbor(bytes);
});
