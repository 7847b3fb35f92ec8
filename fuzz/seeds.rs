//! Writes starting corpora for the fuzz targets into `fuzz/corpus/<target>/`: the conformance
//! fixtures in `tests/fixtures/` and repos built with berth itself.
//!
//! Run from the repository root: `cargo run --manifest-path fuzz/Cargo.toml --example seeds`.

use berth::data::Ipld;
use berth::repo::{MemoryBlockStore, RecordWrite, Repo};
use berth::store::actor::ActorStore;
use berth::syntax::Tid;
use berth_fuzz::{DID, did, join_blocks, key};
use std::collections::BTreeMap;
use std::path::Path;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let out = Path::new("fuzz/corpus");
    let fixtures = Path::new("tests/fixtures");
    let mut n = 0usize;
    let mut put = |target: &str, bytes: &[u8]| -> Result<()> {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir)?;
        n += 1;
        std::fs::write(dir.join(format!("seed-{n:05}")), bytes)?;
        Ok(())
    };

    // Syntax: every line of the syntax vectors, valid and invalid.
    for entry in std::fs::read_dir(fixtures.join("interop-tests/syntax"))? {
        let text = std::fs::read_to_string(entry?.path())?;
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            put("syntax", line.as_bytes())?;
        }
    }

    // DAG-CBOR and records: the data-model vectors.
    let dm: serde_json::Value = serde_json::from_slice(&std::fs::read(
        fixtures.join("interop-tests/data-model/data-model-fixtures.json"),
    )?)?;
    for case in dm.as_array().into_iter().flatten() {
        if let Some(b64) = case["cbor_base64"].as_str() {
            put("dag_cbor", &decode_b64(b64)?)?;
        }
        put(
            "record_json",
            &[b"\x00".as_slice(), case["json"].to_string().as_bytes()].concat(),
        )?;
    }
    for file in ["data-model-valid.json", "data-model-invalid.json"] {
        let cases: serde_json::Value = serde_json::from_slice(&std::fs::read(
            fixtures.join("interop-tests/data-model").join(file),
        )?)?;
        for case in cases.as_array().into_iter().flatten() {
            let record = case["json"]["rcrd"].to_string();
            put(
                "record_json",
                &[b"\x01".as_slice(), record.as_bytes()].concat(),
            )?;
        }
    }
    // Typical app.bsky records, for each pick byte that might select them.
    let records = [
        r#"{"$type":"app.bsky.feed.post","text":"hello @alice.test #tag","createdAt":"2026-01-01T00:00:00.000Z","langs":["en"],"facets":[{"index":{"byteStart":6,"byteEnd":17},"features":[{"$type":"app.bsky.richtext.facet#mention","did":"did:plc:ewvi7nxzyoun6zhxrhs64oiz"}]}],"embed":{"$type":"app.bsky.embed.images","images":[{"alt":"","image":{"$type":"blob","ref":{"$link":"bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"},"mimeType":"image/png","size":1234},"aspectRatio":{"width":4,"height":3}}]}}"#,
        r#"{"$type":"app.bsky.feed.like","subject":{"uri":"at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3jzfcijpj2z2a","cid":"bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"},"createdAt":"2026-01-01T00:00:00.000Z"}"#,
        r#"{"$type":"app.bsky.actor.profile","displayName":"Alice","description":"hi","avatar":{"$type":"blob","ref":{"$link":"bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"},"mimeType":"image/jpeg","size":1000}}"#,
        r#"{"$type":"app.bsky.graph.follow","subject":"did:plc:ewvi7nxzyoun6zhxrhs64oiz","createdAt":"2026-01-01T00:00:00.000Z"}"#,
    ];
    for pick in 0..=255u8 {
        let r = records[pick as usize % records.len()];
        put("record_json", &[&[pick][..], r.as_bytes()].concat())?;
    }

    // CARs: the CAR vectors, and a repo exported by berth.
    let cars: serde_json::Value = serde_json::from_slice(&std::fs::read(
        fixtures.join("atproto/car-file-fixtures.json"),
    )?)?;
    for case in cars.as_array().into_iter().flatten() {
        for block in case["blocks"].as_array().into_iter().flatten() {
            if let Some(b64) = block["bytes"].as_str() {
                put("dag_cbor", &decode_b64(b64)?)?;
            }
        }
    }

    // Repos of several sizes: blocks for repo_import (tree root first), CARs for car_reader.
    for size in [0usize, 1, 5, 40, 200] {
        let (repo, genesis) = Repo::create(did(), key())?;
        let mut mem = MemoryBlockStore::new();
        mem.put_many(genesis.new_blocks.clone());
        let mut store = ActorStore::open_in_memory(DID)?;
        store.apply_commit(&genesis)?;
        let mut repo = repo;
        for i in 0..size {
            let mut m = BTreeMap::new();
            m.insert(
                "$type".to_string(),
                Ipld::String("app.bsky.feed.post".into()),
            );
            m.insert("text".to_string(), Ipld::String(format!("post {i}")));
            m.insert(
                "createdAt".to_string(),
                Ipld::String("2026-01-01T00:00:00.000Z".into()),
            );
            let write = RecordWrite::Create {
                collection: "app.bsky.feed.post".parse()?,
                rkey: Tid::new(1_700_000_000_000_000 + i as u64, 0)?
                    .as_str()
                    .parse()?,
                record: Ipld::Map(m),
            };
            let (next, commit) = repo.format_commit(&mem, &[write], key())?;
            mem.put_many(commit.new_blocks.clone());
            store.apply_commit(&commit)?;
            repo = next;
        }
        let nodes = repo.mst().node_blocks(&mem)?;
        let mut blocks: Vec<&[u8]> = nodes.iter().map(|(_, b)| b.as_slice()).collect();
        let node_cids: Vec<_> = nodes.iter().map(|(c, _)| *c).collect();
        let entries = repo.mst().entries(&mem)?;
        for (_, cid) in &entries {
            if let Some(b) = mem.get(cid) {
                blocks.push(b);
            }
        }
        put(
            "repo_import",
            &[&[0u8][..], &join_blocks(blocks.iter().copied())].concat(),
        )?;
        put(
            "repo_import",
            &[&[4u8][..], &join_blocks(blocks.iter().copied())].concat(),
        )?;
        for cid in node_cids.iter().take(4) {
            if let Some(b) = mem.get(cid) {
                put("dag_cbor", b)?;
            }
        }
        store.flush()?;
        let car = store.export_car(Vec::new(), None)?;
        if car.len() < 64 * 1024 {
            put("car_reader", &car)?;
        }
    }

    // Identity: PLC audit logs (each log, and each operation in it).
    for kind in ["valid", "invalid"] {
        let dir = fixtures.join("plc/audit_log").join(kind);
        for entry in std::fs::read_dir(&dir)? {
            let bytes = std::fs::read(entry?.path())?;
            put("identity", &bytes)?;
            if let Ok(serde_json::Value::Array(log)) = serde_json::from_slice(&bytes) {
                for e in log {
                    put("identity", e["operation"].to_string().as_bytes())?;
                }
            }
        }
    }
    let doc = serde_json::json!({
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": DID,
        "alsoKnownAs": ["at://alice.test"],
        "verificationMethod": [{
            "id": format!("{DID}#atproto"),
            "type": "Multikey",
            "controller": DID,
            "publicKeyMultibase": key().public_key().to_multikey(),
        }],
        "service": [{
            "id": "#atproto_pds",
            "type": "AtprotoPersonalDataServer",
            "serviceEndpoint": "https://pds.example.com",
        }],
    });
    put("identity", doc.to_string().as_bytes())?;
    println!("wrote seeds under {}", out.display());
    Ok(())
}

fn decode_b64(s: &str) -> Result<Vec<u8>> {
    let s = s.trim_end_matches('=');
    Ok(data_encoding::BASE64_NOPAD.decode(s.as_bytes())?)
}
