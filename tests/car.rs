//! CAR v1: the byte-exact reference fixture, round trips, and hostile input.

use berth::car::{self, CarError, CarReader, CarWriter, ReadOptions};
use berth::data::{self, Cid};
use data_encoding::BASE64_NOPAD;
use proptest::prelude::*;
use serde_json::Value;

struct Fixture {
    root: Cid,
    blocks: Vec<(Cid, Vec<u8>)>,
    car: Vec<u8>,
}

fn fixture() -> Fixture {
    let path = format!(
        "{}/tests/fixtures/atproto/car-file-fixtures.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = v.as_array().unwrap();
    assert_eq!(cases.len(), 1);
    let case = &cases[0];
    let b64 = |s: &Value| BASE64_NOPAD.decode(s.as_str().unwrap().as_bytes()).unwrap();
    Fixture {
        root: Cid::try_from(case["root"].as_str().unwrap()).unwrap(),
        blocks: case["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    Cid::try_from(b["cid"].as_str().unwrap()).unwrap(),
                    b64(&b["bytes"]),
                )
            })
            .collect(),
        car: b64(&case["car"]),
    }
}

#[test]
fn writes_the_reference_bytes_exactly() {
    let f = fixture();
    assert_eq!(f.blocks.len(), 5);
    let mem = car::write_to_vec(&[f.root], f.blocks.iter().map(|(c, b)| (c, b.as_slice())));
    assert_eq!(mem, f.car);

    let mut w = CarWriter::new(Vec::new(), &[f.root]).unwrap();
    for (cid, block) in &f.blocks {
        w.write_block(cid, block).unwrap();
    }
    assert_eq!(w.blocks_written(), 5);
    assert_eq!(w.finish().unwrap(), f.car);
}

#[test]
fn reads_the_reference_file() {
    let f = fixture();
    let reader = CarReader::new(f.car.as_slice()).unwrap();
    assert_eq!(reader.roots(), &[f.root]);
    let blocks: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
    assert_eq!(blocks, f.blocks);
    for (cid, bytes) in &blocks {
        assert_eq!(*cid, data::cbor_cid(bytes));
    }
}

#[test]
fn rejects_a_block_that_lies_about_its_cid() {
    let f = fixture();
    let (cid, _) = &f.blocks[0];
    let car = car::write_to_vec(&[f.root], [(cid, b"not the block".as_slice())]);
    let err = CarReader::new(car.as_slice())
        .unwrap()
        .next_block()
        .unwrap_err();
    assert!(matches!(err, CarError::BadBlock { .. }), "{err}");
    // With verification off the same bytes are returned as-is.
    let opts = ReadOptions {
        verify_blocks: false,
        ..Default::default()
    };
    let got = CarReader::with_options(car.as_slice(), opts)
        .unwrap()
        .next_block()
        .unwrap();
    assert_eq!(got.unwrap().1, b"not the block");
}

#[test]
fn truncation_is_an_error_except_at_section_boundaries() {
    let f = fixture();
    // A cut exactly between sections is a valid CAR with fewer blocks; anywhere else is an error.
    let mut boundaries = vec![car::encode_header(&[f.root]).len()];
    for (cid, block) in &f.blocks {
        let mut section = Vec::new();
        car::encode_block(cid, block, &mut section);
        boundaries.push(boundaries.last().unwrap() + section.len());
    }
    assert_eq!(*boundaries.last().unwrap(), f.car.len());
    for cut in 0..=f.car.len() {
        let result = CarReader::new(&f.car[..cut]).and_then(|r| r.collect::<Result<Vec<_>, _>>());
        match boundaries.iter().position(|&b| b == cut) {
            Some(n) => assert_eq!(result.unwrap().len(), n, "cut at {cut}"),
            None => assert!(result.is_err(), "prefix of {cut} bytes was accepted"),
        }
    }
}

#[test]
fn refuses_huge_sections_before_allocating() {
    let f = fixture();
    let mut car = car::encode_header(&[f.root]);
    // Length prefix claiming 2^62 bytes.
    car.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
    let err = CarReader::new(car.as_slice())
        .unwrap()
        .next_block()
        .unwrap_err();
    assert!(matches!(err, CarError::SectionTooLarge { .. }), "{err}");
}

#[test]
fn rejects_bad_headers() {
    // Header with version 2.
    #[derive(serde::Serialize)]
    struct H {
        roots: Vec<Cid>,
        version: u64,
    }
    let body = data::cbor::to_vec(&H {
        roots: vec![data::cbor_cid(b"x")],
        version: 2,
    })
    .unwrap();
    let mut car = vec![body.len() as u8];
    car.extend_from_slice(&body);
    assert!(CarReader::new(car.as_slice()).is_err());
    // No roots.
    assert!(CarReader::new(car::encode_header(&[]).as_slice()).is_err());
    // Empty input.
    assert!(CarReader::new(&[][..]).is_err());
}

fn arb_blocks() -> impl Strategy<Value = Vec<(Cid, Vec<u8>)>> {
    proptest::collection::vec(
        (
            proptest::collection::vec(any::<u8>(), 0..300),
            any::<bool>(),
        ),
        0..20,
    )
    .prop_map(|items| {
        items
            .into_iter()
            .map(|(bytes, raw)| {
                let cid = if raw {
                    data::raw_cid(&bytes)
                } else {
                    data::cbor_cid(&bytes)
                };
                (cid, bytes)
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn round_trips(blocks in arb_blocks()) {
        let root = data::cbor_cid(b"root");
        let mut w = CarWriter::new(Vec::new(), &[root]).unwrap();
        for (c, b) in &blocks {
            w.write_block(c, b).unwrap();
        }
        let bytes = w.finish().unwrap();
        let r = CarReader::new(bytes.as_slice()).unwrap();
        prop_assert_eq!(r.roots(), &[root]);
        let back: Vec<_> = r.collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(back, blocks);
    }

    #[test]
    fn never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(r) = CarReader::new(bytes.as_slice()) {
            for b in r { let _ = b; }
        }
    }

    #[test]
    fn never_panics_on_mutated_cars(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut car = fixture().car;
        for (i, b) in flips {
            let i = i.index(car.len());
            car[i] ^= b;
        }
        if let Ok(r) = CarReader::new(car.as_slice()) {
            for b in r { let _ = b; }
        }
    }
}
