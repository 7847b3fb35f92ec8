//! A record as a client sends it: JSON → data model → lexicon validation, for every record type
//! berth knows (the first input byte picks one). Never panics; a record that validates encodes
//! to DAG-CBOR that decodes and validates again.
#![no_main]

use berth::data::{cbor, json};
use berth::lexicon::{Catalog, ValidationMode, check_write};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return;
    };
    let catalog = Catalog::builtin();
    let records: Vec<String> = catalog
        .docs()
        .filter(|d| catalog.record(d.id.as_str()).is_some())
        .map(|d| d.id.as_str().to_string())
        .collect();
    let collection = &records[pick as usize % records.len()];
    let Ok(record) = json::from_json(&value) else {
        return;
    };
    let rkey = if pick & 0x80 != 0 {
        "self"
    } else {
        "3jzfcijpj2z2a"
    };
    for mode in [ValidationMode::Required, ValidationMode::Optional] {
        if let Ok(Some(_)) = check_write(catalog, mode, collection, rkey, &record) {
            let bytes = cbor::ipld_to_vec(&record).expect("a valid record encodes");
            let back = cbor::decode_canonical(&bytes).expect("our encoding is canonical");
            check_write(catalog, mode, collection, rkey, &back)
                .expect("a valid record still validates after encoding");
        }
    }
});
