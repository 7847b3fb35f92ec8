//! `app.*` methods the PDS serves itself.

pub mod bsky;
