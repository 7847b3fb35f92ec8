-- The firehose log (sequencer.sqlite), as the reference PDS's: every event of
-- com.atproto.sync.subscribeRepos with its sequence number. `event` is the DAG-CBOR body without
-- `seq` and `time`, which are added when a frame is sent.
CREATE TABLE repo_seq (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    did TEXT NOT NULL,
    event_type TEXT NOT NULL, -- 'append' (#commit), 'sync', 'identity', 'account'
    event BLOB NOT NULL,
    invalidated INTEGER NOT NULL DEFAULT 0,
    sequenced_at TEXT NOT NULL
) STRICT;
CREATE INDEX repo_seq_did ON repo_seq (did);
CREATE INDEX repo_seq_sequenced_at ON repo_seq (sequenced_at);
