//! XRPC handlers, one module per NSID group (`com/atproto/server.rs` serves
//! `com.atproto.server.*`). Handlers are thin: parse, authenticate, call a `pds` service,
//! shape the response.

pub mod app;
pub mod auth;
pub mod com;
pub mod limits;
