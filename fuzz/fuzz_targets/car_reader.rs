//! The CAR reader on arbitrary bytes: never panics, never loops, and every block it yields
//! matches its CID.
#![no_main]

use berth::car::CarReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(mut reader) = CarReader::new(std::io::Cursor::new(bytes)) else {
        return;
    };
    let _ = reader.roots();
    let mut n = 0usize;
    while let Ok(Some((cid, block))) = reader.next_block() {
        berth::data::verify_cid(&cid, &block).expect("the reader checks every block");
        n += 1;
        assert!(n <= bytes.len(), "more blocks than input bytes");
    }
});
