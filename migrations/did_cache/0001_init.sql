-- Resolved DID documents, as the reference PDS keeps them (did_cache.sqlite).
-- updated_at is milliseconds since the Unix epoch at the last successful fetch.
CREATE TABLE did_doc (
    did TEXT PRIMARY KEY NOT NULL,
    doc TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
