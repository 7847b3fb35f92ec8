-- PLC directory store (plc.sqlite): every operation ever accepted, nullified ones included.

-- One row per accepted operation. `seq` is the export cursor: assigned in acceptance order,
-- strictly increasing and never reused (AUTOINCREMENT), so `/export?after=<seq>` pages are
-- stable. Within one DID, seq order is log order and created_at strictly increases.
CREATE TABLE operation (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    did TEXT NOT NULL,
    -- CIDv1 base32 of the signed DAG-CBOR.
    cid TEXT NOT NULL,
    -- The signed operation as JSON (its canonical field set; re-encodes to the same CID).
    operation TEXT NOT NULL,
    -- 1 when a recovery fork has undone this operation.
    nullified INTEGER NOT NULL DEFAULT 0 CHECK (nullified IN (0, 1)),
    -- YYYY-MM-DDTHH:mm:ss.sssZ (fixed width, so text order is time order).
    created_at TEXT NOT NULL,
    UNIQUE (did, cid)
) STRICT;

CREATE INDEX operation_did_seq ON operation (did, seq);
CREATE INDEX operation_created_at ON operation (created_at, seq);
