-- Per-account repository store (actors/<xx>/<did>/store.sqlite).
-- Mirrors the reference PDS's actor store so its data can be taken over, with binary CIDs
-- for blocks (they are looked up on every MST read).

-- Exactly one row: the repo's current commit.
CREATE TABLE repo_root (
    did TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    rev TEXT NOT NULL,
    indexed_at TEXT NOT NULL
) STRICT;

-- Every repo block (commits, MST nodes, records), tagged with the rev that first wrote it.
CREATE TABLE repo_block (
    cid BLOB PRIMARY KEY,
    repo_rev TEXT NOT NULL,
    size INTEGER NOT NULL,
    content BLOB NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX repo_block_repo_rev ON repo_block (repo_rev, cid);

-- The current records, one row per path.
CREATE TABLE record (
    uri TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    collection TEXT NOT NULL,
    rkey TEXT NOT NULL,
    repo_rev TEXT NOT NULL,
    indexed_at TEXT NOT NULL,
    takedown_ref TEXT
) STRICT;
CREATE INDEX record_cid ON record (cid);
CREATE INDEX record_collection_rkey ON record (collection, rkey);
CREATE INDEX record_repo_rev ON record (repo_rev);

CREATE TABLE blob (
    cid TEXT PRIMARY KEY,
    mime_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    temp_key TEXT,
    width INTEGER,
    height INTEGER,
    created_at TEXT NOT NULL,
    takedown_ref TEXT
) STRICT;
CREATE INDEX blob_temp_key ON blob (temp_key);

CREATE TABLE record_blob (
    blob_cid TEXT NOT NULL,
    record_uri TEXT NOT NULL,
    PRIMARY KEY (blob_cid, record_uri)
) STRICT, WITHOUT ROWID;
CREATE INDEX record_blob_record_uri ON record_blob (record_uri);

CREATE TABLE backlink (
    uri TEXT NOT NULL,
    path TEXT NOT NULL,
    link_to TEXT NOT NULL,
    PRIMARY KEY (uri, path)
) STRICT, WITHOUT ROWID;
CREATE INDEX backlink_path_link_to ON backlink (path, link_to);

CREATE TABLE account_pref (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    value_json TEXT NOT NULL
) STRICT;
