-- Account database (<data dir>/account.sqlite): accounts, sign-in secrets and the server-wide
-- tables (invite codes, email tokens). Same tables and meanings as the reference PDS's account
-- DB, so its data can be taken over column for column; names are snake_case.
--
-- Timestamps are UTC text `YYYY-MM-DDTHH:MM:SS.mmmZ`: fixed width, so text order is time order
-- and SQL may compare them directly.
--
-- Foreign keys (enabled on every connection) cascade from `actor`: deleting an actor removes
-- everything that belongs to it, and nothing can be stored for an unknown DID.
-- Reserved signing keys are files under the actors directory, not rows (src/account/reserved_keys.rs).

-- Every account this PDS hosts. `handle` is NULL when the account has none (shown as
-- handle.invalid); stored lower-cased, so the UNIQUE constraint is case-insensitive uniqueness.
CREATE TABLE actor (
    did TEXT PRIMARY KEY,
    handle TEXT UNIQUE CHECK (handle = lower(handle)),
    created_at TEXT NOT NULL,
    takedown_ref TEXT,
    deactivated_at TEXT,
    -- Informational only, as in the reference: nothing deletes the account at this time.
    delete_after TEXT
) STRICT;
CREATE INDEX actor_created_at_did ON actor (created_at, did);

-- Sign-in details of an actor that signs in here (an actor can exist without one).
-- Emails are stored lower-cased, so UNIQUE is case-insensitive uniqueness.
CREATE TABLE account (
    did TEXT PRIMARY KEY REFERENCES actor (did) ON DELETE CASCADE,
    email TEXT NOT NULL UNIQUE CHECK (email = lower(email)),
    -- "<salt hex>:<scrypt hex>", see src/account/password.rs.
    password_scrypt TEXT NOT NULL,
    email_confirmed_at TEXT,
    invites_disabled INTEGER NOT NULL DEFAULT 0 CHECK (invites_disabled IN (0, 1))
) STRICT;

-- A mirror of each actor store's head commit, for listRepos without opening every store.
CREATE TABLE repo_root (
    did TEXT PRIMARY KEY REFERENCES actor (did) ON DELETE CASCADE,
    cid TEXT NOT NULL,
    rev TEXT NOT NULL,
    indexed_at TEXT NOT NULL
) STRICT;

-- App passwords: the key is (did, name); the hash uses a per-DID salt (password.rs).
CREATE TABLE app_password (
    did TEXT NOT NULL REFERENCES actor (did) ON DELETE CASCADE,
    name TEXT NOT NULL,
    password_scrypt TEXT NOT NULL,
    created_at TEXT NOT NULL,
    privileged INTEGER NOT NULL DEFAULT 0 CHECK (privileged IN (0, 1)),
    PRIMARY KEY (did, name)
) STRICT, WITHOUT ROWID;

-- Live refresh tokens, by JWT id. `next_id` is set once the token has been rotated (it then
-- only lives out its grace period). A token issued through an app password names it, and the
-- foreign key makes revoking the app password revoke its tokens (a NULL name is not checked).
CREATE TABLE refresh_token (
    id TEXT PRIMARY KEY,
    did TEXT NOT NULL REFERENCES actor (did) ON DELETE CASCADE,
    expires_at TEXT NOT NULL,
    next_id TEXT,
    app_password_name TEXT,
    FOREIGN KEY (did, app_password_name) REFERENCES app_password (did, name) ON DELETE CASCADE
) STRICT;
CREATE INDEX refresh_token_did ON refresh_token (did);
CREATE INDEX refresh_token_next_id ON refresh_token (next_id);

-- Invite codes. `for_account` is a DID or "admin"; a code is usable while not disabled, its
-- owner is not taken down, and fewer than `available_uses` uses are recorded.
CREATE TABLE invite_code (
    code TEXT PRIMARY KEY,
    available_uses INTEGER NOT NULL CHECK (available_uses >= 0),
    disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    for_account TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
CREATE INDEX invite_code_for_account ON invite_code (for_account);

-- Who used which code: kept after the user is deleted (it is the invite history).
CREATE TABLE invite_code_use (
    code TEXT NOT NULL REFERENCES invite_code (code) ON DELETE CASCADE,
    used_by TEXT NOT NULL,
    used_at TEXT NOT NULL,
    PRIMARY KEY (code, used_by)
) STRICT, WITHOUT ROWID;

-- One outstanding email token per (purpose, account); requesting again replaces it.
CREATE TABLE email_token (
    purpose TEXT NOT NULL CHECK (purpose IN
        ('confirm_email', 'update_email', 'reset_password', 'delete_account', 'plc_operation')),
    did TEXT NOT NULL REFERENCES actor (did) ON DELETE CASCADE,
    token TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    PRIMARY KEY (purpose, did),
    UNIQUE (purpose, token)
) STRICT;
