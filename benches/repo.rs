//! Repository engine at scale. Run: `cargo bench --bench repo` (REPO_BENCH_RECORDS overrides
//! the default 100,000). Each phase runs in a fresh child process so its peak RSS is its own:
//!
//! - commits: N single-record commits into one on-disk repo (synchronous=OFF: the cost of the
//!   work, excluding fsync), then 2,000 more with synchronous=FULL for comparison;
//! - grouped: N single-record commits into another repo, stored by a writer that has up to
//!   16 commits queued and lands them in one SQLite transaction (`ActorStore::apply_commits`);
//! - export: the N-record repo written as a CAR file;
//! - import: that CAR verified and imported into a fresh store.
//!
//! Prints a table; asserts nothing about time.

use berth::car::CarReader;
use berth::crypto::{Curve, Keypair};
use berth::data::json;
use berth::repo::{RecordWrite, Repo};
use berth::store::actor::ActorStore;
use berth::store::sqlite::Durability;
use berth::syntax::{Nsid, RecordKey, Tid};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const DID: &str = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--phase") {
        let dir = PathBuf::from(&args[i + 2]);
        let n: u64 = args[i + 3].parse().expect("record count");
        match args[i + 1].as_str() {
            "commits" => phase_commits(&dir, n),
            "grouped" => phase_grouped(&dir, n),
            "export" => phase_export(&dir),
            "import" => phase_import(&dir),
            other => panic!("unknown phase {other}"),
        }
        return;
    }
    let n: u64 = std::env::var("REPO_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("temp dir");
    println!("\nberth repository engine, {n} records (each phase in its own process)");
    println!(
        "{:<52} {:>12} {:>14} {:>12}",
        "phase", "wall", "rate", "peak RSS"
    );
    println!("{}", "-".repeat(94));
    for phase in ["commits", "grouped", "export", "import"] {
        let out = Command::new(std::env::current_exe().expect("own path"))
            .args(["--phase", phase])
            .arg(dir.path())
            .arg(n.to_string())
            .output()
            .expect("child runs");
        assert!(
            out.status.success(),
            "{phase}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
}

fn row(name: &str, secs: f64, rate: String) {
    println!(
        "{name:<52} {:>10.3} s {rate:>14} {:>9} MiB",
        secs,
        peak_rss_kib() / 1024
    );
}

/// Peak resident set size of this process so far.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) this process has used, in seconds.
fn cpu_secs() -> f64 {
    // /proc/self/schedstat: first field is nanoseconds on CPU.
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |ns| ns / 1e9)
}

fn store_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name).join("store.sqlite")
}

fn post(i: u64) -> RecordWrite {
    let record = json::from_json(&serde_json::json!({
        "$type": "app.bsky.feed.post",
        "text": format!("post number {i}: a typical short post with a few words in it"),
        "createdAt": "2026-11-23T08:00:00.000Z",
        "langs": ["en"],
    }))
    .expect("valid record");
    RecordWrite::Create {
        collection: Nsid::try_from("app.bsky.feed.post").expect("nsid"),
        rkey: RecordKey::from(Tid::now()),
        record,
    }
}

fn phase_commits(dir: &Path, n: u64) {
    let key = Keypair::generate(Curve::K256);
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(dir.join("key.hex"), key.to_private_hex()).expect("key");
    let mut store = ActorStore::open(&store_path(dir, "src"), DID, Durability::Off).expect("open");
    let (mut repo, genesis) = Repo::create(DID.parse().expect("did"), &key).expect("genesis");
    store.apply_commit(&genesis).expect("genesis stored");

    let (t, cpu) = (Instant::now(), cpu_secs());
    let (mut in_format, mut in_store) = (0f64, 0f64);
    for i in 0..n {
        let t0 = Instant::now();
        let (next, data) = repo
            .format_commit(&store, &[post(i)], &key)
            .expect("commit");
        let t1 = Instant::now();
        store.apply_commit(&data).expect("stored");
        in_store += t1.elapsed().as_secs_f64();
        in_format += (t1 - t0).as_secs_f64();
        repo = next;
    }
    let (wall, cpu) = (t.elapsed().as_secs_f64(), cpu_secs() - cpu);
    row(
        &format!("{n} single-record commits (sync=OFF)"),
        wall,
        format!("{:.0}/s", n as f64 / wall),
    );
    println!(
        "{:<52} {:>12.1} µs",
        "  CPU per commit",
        cpu / n as f64 * 1e6
    );
    println!(
        "{:<52} {:>12.1} µs",
        "  building the commit (MST, sign)",
        in_format / n as f64 * 1e6
    );
    println!(
        "{:<52} {:>12.1} µs",
        "  storing it (one SQLite transaction)",
        in_store / n as f64 * 1e6
    );

    // The same with fsync on every commit, on the same repo, for comparison.
    drop(store);
    let mut store = ActorStore::open(&store_path(dir, "src"), DID, Durability::Full).expect("open");
    let m = 2_000u64.min(n);
    let t = Instant::now();
    for i in 0..m {
        let (next, data) = repo
            .format_commit(&store, &[post(n + i)], &key)
            .expect("commit");
        store.apply_commit(&data).expect("stored");
        repo = next;
    }
    let wall = t.elapsed().as_secs_f64();
    row(
        &format!("{m} more commits (sync=FULL, fsync each)"),
        wall,
        format!("{:.0}/s", m as f64 / wall),
    );
}

fn phase_grouped(dir: &Path, n: u64) {
    const GROUP: usize = 16;
    let key = Keypair::generate(Curve::K256);
    let mut store =
        ActorStore::open(&store_path(dir, "grouped"), DID, Durability::Off).expect("open");
    let (mut repo, genesis) = Repo::create(DID.parse().expect("did"), &key).expect("genesis");
    store.apply_commit(&genesis).expect("genesis stored");
    let (t, cpu) = (Instant::now(), cpu_secs());
    let mut queued = Vec::with_capacity(GROUP);
    for i in 0..n {
        // Each commit is built on the previous one, as a writer does while earlier ones are
        // still queued for storage.
        let (next, data) = repo
            .format_commit(&PendingBlocks(&store, &queued), &[post(i)], &key)
            .expect("commit");
        queued.push(data);
        repo = next;
        if queued.len() == GROUP || i + 1 == n {
            store
                .apply_commits(&queued, berth::store::actor_index::BlobCheck::Require)
                .expect("stored");
            queued.clear();
        }
    }
    let (wall, cpu) = (t.elapsed().as_secs_f64(), cpu_secs() - cpu);
    row(
        &format!("{n} single-record commits, {GROUP} per transaction"),
        wall,
        format!("{:.0}/s", n as f64 / wall),
    );
    println!(
        "{:<52} {:>12.1} µs",
        "  CPU per commit",
        cpu / n as f64 * 1e6
    );
}

/// The store plus blocks of commits built but not yet stored.
struct PendingBlocks<'a>(&'a ActorStore, &'a [berth::repo::CommitData]);

impl berth::repo::BlockSource for PendingBlocks<'_> {
    fn get_block(&self, cid: &berth::data::Cid) -> Result<Option<Vec<u8>>, berth::repo::RepoError> {
        for c in self.1.iter().rev() {
            if let Some(b) = c.new_blocks.get(cid) {
                return Ok(Some(b.to_vec()));
            }
        }
        self.0.get_block(cid)
    }
}

fn phase_export(dir: &Path) {
    let store = ActorStore::open(&store_path(dir, "src"), DID, Durability::Off).expect("open");
    let records = store.record_count().expect("count");
    let t = Instant::now();
    let file = std::fs::File::create(dir.join("repo.car")).expect("car file");
    let w = store
        .export_car(std::io::BufWriter::new(file), None)
        .expect("export");
    drop(w);
    let wall = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(dir.join("repo.car")).expect("size").len();
    row(
        &format!("export {records} records ({} MiB CAR)", size >> 20),
        wall,
        format!("{:.0} rec/s", records as f64 / wall),
    );
}

fn phase_import(dir: &Path) {
    let key = Keypair::from_private_hex(
        Curve::K256,
        &std::fs::read_to_string(dir.join("key.hex")).expect("key"),
    )
    .expect("key parses");
    let mut store = ActorStore::open(&store_path(dir, "dst"), DID, Durability::Off).expect("open");
    let t = Instant::now();
    let file = std::fs::File::open(dir.join("repo.car")).expect("car");
    let reader = CarReader::new(std::io::BufReader::new(file)).expect("header");
    let summary = store
        .import_car(reader, Some(&key.public_key()))
        .expect("import");
    let wall = t.elapsed().as_secs_f64();
    row(
        &format!("verified import {} records", summary.records),
        wall,
        format!("{:.0} rec/s", summary.records as f64 / wall),
    );
}
