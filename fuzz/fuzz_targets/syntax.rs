//! Every string syntax parser: never panics, and a parsed value prints as text that parses
//! back to the same text.
#![no_main]

use berth::syntax::{
    AtIdentifier, AtUri, CidString, Datetime, Did, Handle, Language, Nsid, RecordKey, Tid, Uri,
};
use libfuzzer_sys::fuzz_target;
use std::str::FromStr;

fn roundtrip<T: FromStr + AsRef<str>>(s: &str) {
    if let Ok(v) = s.parse::<T>() {
        let printed = v.as_ref().to_string();
        let again = printed
            .parse::<T>()
            .unwrap_or_else(|_| panic!("{printed:?} (from {s:?}) does not parse again"));
        assert_eq!(again.as_ref(), printed, "printing is not stable for {s:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    roundtrip::<Did>(s);
    roundtrip::<Handle>(s);
    roundtrip::<Nsid>(s);
    roundtrip::<AtUri>(s);
    roundtrip::<AtIdentifier>(s);
    roundtrip::<RecordKey>(s);
    roundtrip::<Tid>(s);
    roundtrip::<Datetime>(s);
    roundtrip::<Language>(s);
    roundtrip::<CidString>(s);
    roundtrip::<Uri>(s);
    let _ = berth::data::parse_blessed_cid(s);
    let _ = berth::auth::header::parse_authorization(Some(s));
    let _ = berth::jwt::decode_unverified(s);
});
