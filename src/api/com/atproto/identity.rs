//! `com.atproto.identity.*`: handles, and the identity steps of a migration in.

use crate::api::auth::AccessAuth;
use crate::api::limits::Caller;
use crate::pds::rate_limits;
use crate::server::AppState;
use crate::server::XrpcRoutes;
use crate::xrpc::{NoOutput, XrpcError, XrpcJson, XrpcQuery};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> XrpcRoutes {
    XrpcRoutes::new()
        .query("com.atproto.identity.resolveHandle", resolve_handle)
        .procedure("com.atproto.identity.updateHandle", update_handle)
        // PLC operation signing for migrations (end of file).
        .procedure(
            "com.atproto.identity.requestPlcOperationSignature",
            request_plc_operation_signature,
        )
        .procedure("com.atproto.identity.signPlcOperation", sign_plc_operation)
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
    caller: Caller,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<HandleParam>,
) -> Result<NoOutput, XrpcError> {
    caller.check(
        &state,
        rate_limits::did_limits("com.atproto.identity.updateHandle"),
        auth.did.as_str(),
    )?;
    state.pds()?.update_handle(&auth.did, &input.handle).await?;
    Ok(NoOutput)
}

// ----- PLC operation signing: requestPlcOperationSignature, signPlcOperation ---------------
// Full access, taken-down sessions included (so a taken-down account can still move away), as
// the reference. The service is `pds::email_flows`.

// ----- migration: DID credentials and PLC operations ----------------------------------------

async fn request_plc_operation_signature(
    State(state): State<AppState>,
    auth: AccessAuth,
) -> Result<NoOutput, XrpcError> {
    auth.require_full_or_takendown()?;
    state
        .pds()?
        .request_plc_operation_signature(&auth.did)
        .await?;
    Ok(NoOutput)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignPlcOperationInput {
    token: Option<String>,
    rotation_keys: Option<Vec<String>>,
    also_known_as: Option<Vec<String>>,
    verification_methods: Option<std::collections::BTreeMap<String, String>>,
    services: Option<std::collections::BTreeMap<String, crate::plc::document::Service>>,
}

async fn sign_plc_operation(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<SignPlcOperationInput>,
) -> Result<Json<Value>, XrpcError> {
    auth.require_full_or_takendown()?;
    let Some(token) = input.token else {
        return Err(XrpcError::invalid_request(
            "email confirmation token required to sign PLC operations",
        ));
    };
    let fields = crate::pds::email_flows::PlcOperationFields {
        rotation_keys: input.rotation_keys,
        also_known_as: input.also_known_as,
        verification_methods: input.verification_methods,
        services: input.services,
    };
    let operation = state
        .pds()?
        .sign_plc_operation(&auth.did, &token, fields)
        .await?;
    Ok(Json(json!({ "operation": operation })))
}

async fn get_recommended_did_credentials(
    State(state): State<AppState>,
    auth: AccessAuth,
) -> Result<Json<Value>, XrpcError> {
    auth.require_standard()?;
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
) -> Result<NoOutput, XrpcError> {
    auth.require_standard()?;
    state
        .pds()?
        .submit_plc_operation(&auth.did, &input.operation)
        .await?;
    Ok(NoOutput)
}
