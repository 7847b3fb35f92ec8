//! `did:plc`: operations, audit-log validation, a directory client and a directory server.
//!
//! Layers, inner to outer:
//! - [`operation`]: the signed operation formats (`plc_operation`, `plc_tombstone`, legacy
//!   `create`), their DAG-CBOR encoding, signing, strict signature verification, CIDs and DID
//!   derivation. Pure: no HTTP, no SQL, no clock.
//! - [`audit`]: the rules that decide whether an operation may follow a log (signature by a
//!   rotation key of `prev`, the 72 h recovery window in which a higher-authority key may fork
//!   history and nullify later operations) and replay of a whole audit log. Pure; the caller
//!   passes the time.
//! - [`document`]: the DID's current state (`/data`) and its rendering as a W3C DID document.
//! - [`client`]: HTTP client for a PLC directory (what a PDS needs to create and update DIDs).
//! - [`directory`]: a PLC directory server over SQLite.
//!
//! Invariants:
//! - An operation's CID and a genesis operation's DID are computed from the canonical DAG-CBOR
//!   encoding of the typed operation; parsing rejects unknown fields, so the typed value encodes
//!   to exactly the bytes that were signed (an op with extra fields could not be re-encoded
//!   faithfully, so it is refused rather than mis-hashed).
//! - Signatures are verified strictly: base64url without `=` padding and with zero trailing
//!   bits, exactly 64 raw bytes (`r‖s`), low-S.
//! - Nothing reachable from request or file input panics; every failure is a [`PlcError`]
//!   whose message says what is wrong.

pub mod audit;
pub mod client;
pub mod directory;
pub mod document;
pub mod operation;

pub use audit::{AuditOutcome, IndexedOp, NextOp, assure_valid_next_op, validate_audit_log};
pub use client::{PlcClient, PlcClientError};
pub use directory::{DirectoryState, router, serve_plc};
pub use document::{DocumentData, Service};
pub use operation::{LegacyCreate, LogEntry, PlcOperation, PlcTombstone, SignedOp, UnsignedOp};

/// Maximum size of a signed operation in DAG-CBOR, from the spec.
pub const MAX_OP_BYTES: usize = 7500;

/// How long after an operation a higher-authority rotation key may still nullify it
/// (inclusive: exactly 72 h is still in time).
pub const RECOVERY_WINDOW_MS: i64 = 72 * 60 * 60 * 1000;

/// Why an operation or a log is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlcError {
    /// The JSON does not have the shape of an operation (or a log entry).
    #[error("improperly formatted operation: {0}")]
    Malformed(String),
    /// The DAG-CBOR encoding of the signed operation exceeds [`MAX_OP_BYTES`].
    #[error("operation too large: {0} bytes ({MAX_OP_BYTES} bytes maximum in DAG-CBOR encoding)")]
    TooLarge(usize),
    /// The operation is well formed but breaks a directory limit (entry counts, lengths, keys).
    #[error("{0}")]
    Constraint(String),
    /// No allowed rotation key verifies the signature (or the signature encoding is not strict).
    #[error("invalid signature: {0}")]
    InvalidSignature(String),
    /// `prev` does not name an operation the new one may follow.
    #[error("operations not correctly ordered: {0}")]
    Misordered(String),
    /// The signed genesis operation does not hash to the DID.
    #[error(
        "hash of genesis operation does not match DID identifier: expected {expected}, got {did}"
    )]
    GenesisHash { did: String, expected: String },
    /// A fork that would nullify an operation older than [`RECOVERY_WINDOW_MS`].
    #[error(
        "recovery operation occurred outside of the allowed 72 hr recovery window: {lapsed_ms} ms after the first nullified operation"
    )]
    LateRecovery { lapsed_ms: i64 },
    /// An audit log's recorded facts (DID, CID, nullified flag, order) disagree with the replay.
    #[error("audit log: {0}")]
    AuditLog(String),
}
