-- The id of the last journal entry stored here (`sequencer::journal`), written in the
-- transaction that stores the entry's events, so recovery replays exactly the entries after it.
CREATE TABLE journal (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    applied INTEGER NOT NULL
) STRICT;
INSERT INTO journal (id, applied) VALUES (1, 0);
