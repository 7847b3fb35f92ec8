//! `berth repo ...`: offline work on one account's repository in a data directory
//! (`<data dir>/actors/...`, the reference PDS's layout): create, write, export, import.

use crate::car::CarReader;
use crate::crypto::{Curve, Keypair, PublicKey};
use crate::data::json;
use crate::repo::{RecordWrite, Repo};
use crate::store::actor::{self, ActorStore};
use crate::store::sqlite::Durability;
use crate::syntax::{Did, Nsid, RecordKey};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, BufWriter};
use std::path::Path;

fn actors_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("actors")
}

fn open_store(data_dir: &Path, did: &Did) -> anyhow::Result<ActorStore> {
    let path = actor::store_path(&actors_dir(data_dir), did.as_str());
    Ok(ActorStore::open(&path, did.as_str(), Durability::Full)?)
}

fn load_repo(store: &ActorStore, did: &Did) -> anyhow::Result<Repo> {
    let root = store
        .root()?
        .with_context(|| format!("{did} has no repository here (run `berth repo init` first)"))?;
    Ok(Repo::load(store, root.cid)?)
}

/// Creates an empty repository with a new secp256k1 signing key.
pub fn init(data_dir: &Path, did: &Did) -> anyhow::Result<Value> {
    let mut store = open_store(data_dir, did)?;
    if store.root()?.is_some() {
        bail!("{did} already has a repository in {}", data_dir.display());
    }
    let key = Keypair::generate(Curve::K256);
    actor::write_signing_key(&actors_dir(data_dir), did.as_str(), &key)?;
    let (repo, genesis) = Repo::create(did.clone(), &key)?;
    store.apply_commit(&genesis)?;
    Ok(json!({
        "did": did.as_str(),
        "signingKey": key.public_key().to_did_key(),
        "commit": repo.commit_cid().to_string(),
        "rev": repo.rev().to_string(),
    }))
}

/// Applies record operations from a JSON-lines file, `batch` operations per commit. Each line
/// is `{"action": "create"|"update"|"delete", "collection", "rkey", "record"}`.
pub fn write(data_dir: &Path, did: &Did, ops_file: &Path, batch: usize) -> anyhow::Result<Value> {
    if batch == 0 || batch > 200 {
        bail!("--batch must be between 1 and 200 (the protocol's limit per commit)");
    }
    let mut store = open_store(data_dir, did)?;
    let key = actor::read_signing_key(&actors_dir(data_dir), did.as_str())?;
    let mut repo = load_repo(&store, did)?;
    let file =
        std::fs::File::open(ops_file).with_context(|| format!("opening {}", ops_file.display()))?;
    let (mut ops, mut commits) = (0u64, 0u64);
    let mut pending = Vec::with_capacity(batch);
    let mut lines = BufReader::new(file).lines().enumerate();
    loop {
        let next = lines.next();
        if let Some((n, line)) = &next {
            let line = line
                .as_ref()
                .map_err(|e| anyhow::anyhow!("reading line {}: {e}", n + 1))?;
            if !line.trim().is_empty() {
                pending.push(parse_op(line).with_context(|| format!("line {}", n + 1))?);
            }
        }
        if pending.len() == batch || (next.is_none() && !pending.is_empty()) {
            let (next_repo, data) = repo.format_commit(&store, &pending, &key)?;
            store.apply_commit(&data)?;
            repo = next_repo;
            ops += pending.len() as u64;
            commits += 1;
            pending.clear();
        }
        if next.is_none() {
            break;
        }
    }
    Ok(json!({
        "commit": repo.commit_cid().to_string(),
        "rev": repo.rev().to_string(),
        "ops": ops,
        "commits": commits,
    }))
}

fn parse_op(line: &str) -> anyhow::Result<RecordWrite> {
    let v: Value = serde_json::from_str(line)?;
    let field = |name: &str| {
        v.get(name)
            .and_then(Value::as_str)
            .with_context(|| format!("missing string field `{name}`"))
    };
    let collection = Nsid::try_from(field("collection")?)?;
    let rkey = RecordKey::try_from(field("rkey")?)?;
    let record = || -> anyhow::Result<_> {
        let r = v.get("record").context("missing `record`")?;
        Ok(json::object_from_json(r)?)
    };
    Ok(match field("action")? {
        "create" => RecordWrite::Create {
            collection,
            rkey,
            record: record()?,
        },
        "update" => RecordWrite::Update {
            collection,
            rkey,
            record: record()?,
        },
        "delete" => RecordWrite::Delete { collection, rkey },
        other => bail!("unknown action {other:?} (create, update or delete)"),
    })
}

/// Writes the repository as a CAR file (all blocks, or those newer than `since`).
pub fn export(
    data_dir: &Path,
    did: &Did,
    out: &Path,
    since: Option<&str>,
) -> anyhow::Result<Value> {
    let store = open_store(data_dir, did)?;
    let root = store
        .root()?
        .with_context(|| format!("{did} has no repository here"))?;
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let writer = store.export_car(BufWriter::new(file), since)?;
    writer
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    Ok(json!({ "commit": root.cid.to_string(), "rev": root.rev }))
}

/// Replaces the account's repository with a verified CAR file. With `signing_key` (a did:key),
/// the commit signature must verify against it.
pub fn import(
    data_dir: &Path,
    did: &Did,
    car: &Path,
    signing_key: Option<&str>,
) -> anyhow::Result<Value> {
    let key = signing_key.map(PublicKey::from_did_key).transpose()?;
    let file = std::fs::File::open(car).with_context(|| format!("opening {}", car.display()))?;
    let reader = CarReader::new(BufReader::new(file))?;
    let mut store = open_store(data_dir, did)?;
    let summary = store.import_car(reader, key.as_ref())?;
    Ok(json!({
        "commit": summary.commit.to_string(),
        "rev": summary.rev,
        "records": summary.records,
        "blocks": summary.blocks,
    }))
}
