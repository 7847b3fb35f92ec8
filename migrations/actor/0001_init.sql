-- Per-account repository store (actors/<xx>/<did>/store.sqlite).
-- Follows the reference PDS's actor store (same tables and meanings, so its data can be taken
-- over by a migration), with binary CIDs for blocks and records keyed by path, which keeps the
-- number of B-trees a commit touches small.

-- Exactly one row: the repo's current commit.
CREATE TABLE repo_root (
    did TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    rev TEXT NOT NULL,
    indexed_at TEXT NOT NULL
) STRICT;

-- Every repo block (commits, MST nodes, records), tagged with the rev that first wrote it.
CREATE TABLE repo_block (
    id INTEGER PRIMARY KEY,
    cid BLOB NOT NULL UNIQUE,
    repo_rev TEXT NOT NULL,
    size INTEGER NOT NULL,
    content BLOB NOT NULL
) STRICT;
CREATE INDEX repo_block_repo_rev ON repo_block (repo_rev, cid);

-- The current records, one row per path; keyed by path so a write touches two B-trees.
-- The AT URI is at://<did>/<collection>/<rkey>, derived rather than stored.
CREATE TABLE record (
    collection TEXT NOT NULL,
    rkey TEXT NOT NULL,
    cid TEXT NOT NULL,
    repo_rev TEXT NOT NULL,
    indexed_at TEXT NOT NULL,
    takedown_ref TEXT,
    PRIMARY KEY (collection, rkey)
) STRICT, WITHOUT ROWID;
CREATE INDEX record_cid ON record (cid);

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
