pub mod identity;
pub mod repo;
pub mod server;
pub mod subscribe_repos;
pub mod sync;
