//! `app.bsky.*` methods served locally (the rest belong to the AppView).

pub mod actor;
