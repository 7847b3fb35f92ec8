//! Operator commands behind the `berth` CLI, kept in the library so they are tested like the
//! rest. Each returns a JSON summary that the CLI prints.

pub mod dev;
pub mod migrate;
pub mod repo;
pub mod xrpc_client;
