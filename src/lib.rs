//! berth: an AT Protocol Personal Data Server.
//!
//! The crate is layered; an inner layer never imports an outer one.
//!
//! - **Protocol core** (`syntax`, `crypto`, `data`, `car`, `jwt`): pure functions and types,
//!   exact to the conformance vectors. Knows nothing of HTTP, SQL or the filesystem.
//!   `repo` holds the Merkle Search Tree (writes, diffs, covering proofs, sync 1.1 inversion).
//!
//! See `ARCHITECTURE.md` at the repository root for the map.

pub mod car;
pub mod crypto;
pub mod data;
pub mod jwt;
pub mod repo;
pub mod syntax;
