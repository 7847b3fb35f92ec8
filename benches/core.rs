//! Protocol-core costs: signing, verifying, encoding a record, writing and reading CARs.
//! Run: `cargo bench --bench core`. Prints a table; asserts nothing about time.

mod util;

use berth::car::{self, CarReader, CarWriter};
use berth::crypto::{Curve, Keypair};
use berth::data::{self, cbor, json};

/// A typical app.bsky.feed.post: text, langs, a facet and an image embed.
const POST: &str = r#"{
  "$type": "app.bsky.feed.post",
  "text": "Trying out berth, a PDS in Rust. Fast, light, and your account moves with you.",
  "createdAt": "2026-11-23T08:00:00.000Z",
  "langs": ["en"],
  "facets": [{"index": {"byteStart": 11, "byteEnd": 16},
              "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://example.com"}]}],
  "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "a harbour",
    "image": {"$type": "blob", "ref": {"$link": "bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity"},
              "mimeType": "image/jpeg", "size": 123456}}]}
}"#;

fn main() {
    let t = util::Table::new("berth protocol core (per operation)");

    let msg = b"a commit's unsigned bytes would go here";
    let k = Keypair::generate(Curve::K256);
    let k_sig = k.sign(msg);
    let k_pub = k.public_key();
    let p = Keypair::generate(Curve::P256);
    let p_sig = p.sign(msg);
    let p_pub = p.public_key();
    t.row("k256 sign", 1, || k.sign(msg));
    t.row("k256 verify", 1, || {
        k_pub.verify(msg, k_sig.as_ref()).is_ok()
    });
    t.row("p256 sign", 1, || p.sign(msg));
    t.row("p256 verify", 1, || {
        p_pub.verify(msg, p_sig.as_ref()).is_ok()
    });

    let post = json::from_json_str(POST).expect("bench record is valid");
    t.row("post: CBOR encode + CID", 1, || {
        let bytes = cbor::encode(&post).expect("encodes");
        data::cbor_cid(&bytes)
    });
    let post_bytes = cbor::encode(&post).expect("encodes");
    t.row("post: CBOR decode (validated)", 1, || {
        cbor::decode(&post_bytes)
    });
    let post_json: serde_json::Value = serde_json::from_str(POST).expect("json");
    t.row("post: JSON value -> CBOR + CID", 1, || {
        let v = json::from_json(&post_json).expect("valid");
        data::cbor_cid(&cbor::encode(&v).expect("encodes"))
    });

    // 10k record-sized blocks, as in a small repo export.
    let blocks: Vec<_> = (0..10_000u32)
        .map(|i| {
            let mut b = post_bytes.clone();
            b.extend_from_slice(&i.to_be_bytes());
            (data::cbor_cid(&b), b)
        })
        .collect();
    let root = blocks[0].0;
    t.row("CAR write, 10k blocks (per block)", 10_000, || {
        let mut w = CarWriter::new(Vec::with_capacity(4 << 20), &[root]).expect("header");
        for (cid, b) in &blocks {
            w.write_block(cid, b).expect("in-memory write");
        }
        w.finish().expect("flush")
    });
    let file = car::write_to_vec(&[root], blocks.iter().map(|(c, b)| (c, b.as_slice())));
    t.row("CAR read + verify, 10k blocks (per block)", 10_000, || {
        CarReader::new(file.as_slice()).expect("header").count()
    });
}
