-- Sequence numbers are assigned by the sequencer (the last one + 1) instead of AUTOINCREMENT,
-- and events are no longer indexed by time: each append used to rewrite a page of
-- sqlite_sequence and a leaf of the sequenced_at index, two of its six WAL frames. Times only
-- grow with seq (the store never writes an earlier time than the last), so a time is found by
-- binary search over seq.
--
-- `high_water` keeps the last sequence number ever handed out whenever events are deleted
-- (account deletion), so a number is never reused even if the newest events go.
CREATE TABLE repo_seq_new (
    seq INTEGER PRIMARY KEY,
    did TEXT NOT NULL,
    event_type TEXT NOT NULL, -- 'append' (#commit), 'sync', 'identity', 'account'
    event BLOB NOT NULL,
    invalidated INTEGER NOT NULL DEFAULT 0,
    sequenced_at TEXT NOT NULL
) STRICT;
INSERT INTO repo_seq_new (seq, did, event_type, event, invalidated, sequenced_at)
    SELECT seq, did, event_type, event, invalidated, sequenced_at FROM repo_seq ORDER BY seq;

CREATE TABLE high_water (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
) STRICT;
INSERT INTO high_water (id, seq)
    SELECT 1, seq FROM sqlite_sequence WHERE name = 'repo_seq';

DROP TABLE repo_seq;
ALTER TABLE repo_seq_new RENAME TO repo_seq;
CREATE INDEX repo_seq_did ON repo_seq (did);
