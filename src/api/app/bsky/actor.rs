//! `app.bsky.actor.getPreferences` / `putPreferences`: private preferences kept on the PDS.

use crate::api::auth::AccessAuth;
use crate::auth::AuthScope;
use crate::server::AppState;
use crate::server::XrpcRoutes;
use crate::xrpc::{NoOutput, XrpcError, XrpcJson};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> XrpcRoutes {
    XrpcRoutes::new()
        .query("app.bsky.actor.getPreferences", get_preferences)
        .procedure("app.bsky.actor.putPreferences", put_preferences)
}

async fn get_preferences(
    State(state): State<AppState>,
    auth: AccessAuth,
) -> Result<Json<Value>, XrpcError> {
    // Standard sessions, and takendown ones (their owners may still take their data away).
    match auth.claims.scope {
        AuthScope::Access
        | AuthScope::AppPassPrivileged
        | AuthScope::AppPass
        | AuthScope::Takendown => {}
        _ => return Err(XrpcError::invalid_token("Bad token scope")),
    }
    let full = auth.claims.scope == AuthScope::Access;
    let preferences = state.pds()?.get_preferences(&auth.did, full).await?;
    Ok(Json(json!({ "preferences": preferences })))
}

#[derive(Deserialize)]
struct PutPreferencesInput {
    preferences: Vec<Value>,
}

async fn put_preferences(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<PutPreferencesInput>,
) -> Result<NoOutput, XrpcError> {
    auth.require_standard()?;
    let full = auth.claims.scope == AuthScope::Access;
    state
        .pds()?
        .put_preferences(&auth.did, input.preferences, full)
        .await?;
    Ok(NoOutput)
}
