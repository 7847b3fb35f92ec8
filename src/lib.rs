//! berth: an AT Protocol Personal Data Server.
//!
//! The crate is layered; an inner layer never imports an outer one.
//!
//! - **Protocol core** (`syntax`, `crypto`, `data`, `car`, `jwt`): pure functions and types,
//!   exact to the conformance vectors. Knows nothing of HTTP, SQL or the filesystem.
//! - **Repository** (`repo`): the Merkle Search Tree, signed commits and the commit write path,
//!   pure over a block-source trait.
//! - **Storage** (`store`): SQLite files on disk behind small types (the per-account actor store).
//!
//! See `ARCHITECTURE.md` at the repository root for the map.
//!
//! No `unsafe` code here: memory safety rests on the compiler and on the dependencies (the C
//! among them: SQLite, aws-lc under rustls, mimalloc in the binary), which is why `fuzz/` can
//! run without AddressSanitizer.
#![forbid(unsafe_code)]

pub mod account;
pub mod api;
pub mod auth;
pub mod blob;
pub mod car;
pub mod config;
pub mod crawlers;
pub mod crypto;
pub mod data;
pub mod identity;
pub mod jwt;
pub mod lexicon;
pub mod mail;
pub mod pds;
pub mod plc;
pub mod repo;
pub mod sequencer;
pub mod server;
pub mod store;
pub mod syntax;
pub mod tools;
pub mod xrpc;
