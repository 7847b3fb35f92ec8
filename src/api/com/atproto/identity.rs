//! `com.atproto.identity.*`: handles, and the identity steps of a migration in.

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
        .query(
            "com.atproto.identity.getRecommendedDidCredentials",
            get_recommended_did_credentials,
        )
        .procedure(
            "com.atproto.identity.submitPlcOperation",
            submit_plc_operation,
        )
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

// ----- migration: DID credentials and PLC operations ----------------------------------------

/// Standard sessions: password or app password (the reference lets app passwords submit
/// PLC operations too).
fn require_standard(auth: &AccessAuth) -> Result<(), XrpcError> {
    use crate::auth::AuthScope;
    match auth.claims.scope {
        AuthScope::Access | AuthScope::AppPassPrivileged | AuthScope::AppPass => Ok(()),
        _ => Err(XrpcError::invalid_token("Bad token scope")),
    }
}

async fn get_recommended_did_credentials(
    State(state): State<AppState>,
    auth: AccessAuth,
) -> Result<Json<Value>, XrpcError> {
    require_standard(&auth)?;
    Ok(Json(
        state.pds()?.recommended_did_credentials(&auth.did).await?,
    ))
}

#[derive(Deserialize)]
struct SubmitPlcOperationInput {
    operation: Value,
}

async fn submit_plc_operation(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<SubmitPlcOperationInput>,
) -> Result<Json<Value>, XrpcError> {
    require_standard(&auth)?;
    state
        .pds()?
        .submit_plc_operation(&auth.did, &input.operation)
        .await?;
    Ok(Json(json!({})))
}
