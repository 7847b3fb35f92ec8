//! `com.atproto.identity.*`: handles.

use crate::api::auth::AccessAuth;
use crate::server::AppState;
use crate::server::XrpcRoutes;
use crate::xrpc::{XrpcError, XrpcJson, XrpcQuery};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> XrpcRoutes {
    XrpcRoutes::new()
        .query("com.atproto.identity.resolveHandle", resolve_handle)
        .procedure("com.atproto.identity.updateHandle", update_handle)
}

#[derive(Deserialize)]
struct HandleParam {
    handle: String,
}

async fn resolve_handle(
    State(state): State<AppState>,
    XrpcQuery(q): XrpcQuery<HandleParam>,
) -> Result<Json<Value>, XrpcError> {
    let did = state.pds()?.resolve_handle(&q.handle).await?;
    Ok(Json(json!({ "did": did })))
}

async fn update_handle(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<HandleParam>,
) -> Result<Json<Value>, XrpcError> {
    state.pds()?.update_handle(&auth.did, &input.handle).await?;
    Ok(Json(json!({})))
}
