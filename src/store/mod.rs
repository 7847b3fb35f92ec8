//! Storage: SQLite databases on disk behind small, purpose-named types.
//!
//! Invariant: nothing above this module writes SQL; nothing in this module knows HTTP.

pub mod account;
pub mod actor;
pub mod actor_blobs;
pub mod actor_index;
pub mod actor_prefs;
pub mod actor_sync;
pub mod repo_car;
pub mod sequencer;
pub mod sqlite;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("SQLite value: {0}")]
    SqliteValue(#[from] rusqlite::types::FromSqlError),
    #[error(transparent)]
    Car(#[from] crate::car::CarError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("database {path} is at schema version {found}, newer than this berth knows ({known})")]
    SchemaTooNew {
        path: String,
        found: u32,
        known: u32,
    },
    /// The sequencer could not store events (the reason, shared by a group commit's writers).
    #[error("sequencing: {0}")]
    Sequencing(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A record references a blob that can't be committed (client error, not corruption).
    #[error(transparent)]
    BlobRef(Box<actor_index::BlobRefError>),
}
