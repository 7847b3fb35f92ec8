pub mod identity;
pub mod server;
