//! `importRepo`, structure-aware: the input is a list of blocks (see `split_blocks`); the first
//! is the MST root. The target signs a commit over it and writes a CAR whose CIDs are right, so
//! the fuzzer reaches the tree and record checks rather than the hash check. Sometimes the CAR
//! lies about its root, or the signature is checked against another key.
//!
//! Properties: never panics; a refused import leaves the store's root as it was; an accepted
//! one exports a CAR whose tree lists exactly the imported record count.
#![no_main]

use berth::car::{CarReader, CarWriter};
use berth::crypto::{Curve, Keypair};
use berth::data::cbor_cid;
use berth::repo::{MemoryBlockStore, Repo};
use berth::store::actor::ActorStore;
use berth_fuzz::{DID, commit_over, key, split_blocks};
use libfuzzer_sys::fuzz_target;
use std::sync::Mutex;

static STORE: Mutex<Option<ActorStore>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let blocks = split_blocks(rest, 256);
    let Some(first) = blocks.first() else {
        return;
    };
    let (commit_cid, commit) = commit_over(cbor_cid(first));
    let root = if flags & 1 == 1 {
        cbor_cid(first)
    } else {
        commit_cid
    };
    let mut car = CarWriter::new(Vec::new(), &[root]).expect("writing to memory");
    car.write_block(&commit_cid, &commit)
        .expect("writing to memory");
    for b in &blocks {
        car.write_block(&cbor_cid(b), b).expect("writing to memory");
    }
    let car = car.finish().expect("writing to memory");

    let mut guard = STORE.lock().unwrap_or_else(|e| e.into_inner());
    let store = guard.get_or_insert_with(|| ActorStore::open_in_memory(DID).expect("a store"));
    let before = store.root().expect("reading the root");
    let other = Keypair::from_private_bytes(Curve::K256, &[7; 32]).expect("a key");
    let check_key = match flags & 6 {
        0 => None,
        2 => Some(other.public_key()),
        _ => Some(key().public_key()),
    };
    let reader = CarReader::new(std::io::Cursor::new(&car)).expect("our CAR parses");
    match store.import_car(reader, check_key.as_ref()) {
        Err(_) => assert_eq!(store.root().expect("reading the root"), before),
        Ok(summary) => {
            assert_ne!(flags & 6, 2, "a commit signed by another key was accepted");
            let exported = store.export_car(Vec::new(), None).expect("export");
            let mut reader = CarReader::new(std::io::Cursor::new(exported)).expect("parses");
            assert_eq!(reader.roots(), &[summary.commit]);
            let mut mem = MemoryBlockStore::new();
            while let Some((cid, bytes)) = reader.next_block().expect("our blocks") {
                mem.put(cid, bytes);
            }
            let repo = Repo::load(&mem, summary.commit).expect("the imported commit loads");
            let entries = repo.mst().entries(&mem).expect("the imported tree walks");
            assert_eq!(entries.len() as u64, summary.records);
        }
    }
});
