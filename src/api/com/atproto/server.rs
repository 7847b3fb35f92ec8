//! `com.atproto.server.*`: accounts and sessions.

use crate::api::auth::{AccessAuth, RefreshAuth};
use crate::pds::{Session, SignUp};
use crate::server::AppState;
use crate::server::XrpcRoutes;
use crate::store::account::{Account, AccountStatus};
use crate::xrpc::{XrpcError, XrpcJson};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> XrpcRoutes {
    XrpcRoutes::new()
        .procedure("com.atproto.server.createAccount", create_account)
        .procedure("com.atproto.server.createSession", create_session)
        .query("com.atproto.server.getSession", get_session)
        .procedure("com.atproto.server.refreshSession", refresh_session)
        .procedure("com.atproto.server.deleteSession", delete_session)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateAccountInput {
    handle: String,
    email: Option<String>,
    password: Option<String>,
    invite_code: Option<String>,
    did: Option<String>,
    recovery_key: Option<String>,
    plc_op: Option<Value>,
}

async fn create_account(
    State(state): State<AppState>,
    XrpcJson(input): XrpcJson<CreateAccountInput>,
) -> Result<Json<Value>, XrpcError> {
    if input.plc_op.is_some() {
        return Err(XrpcError::invalid_request("Unsupported input: \"plcOp\""));
    }
    if input.did.is_some() {
        // Accounts arriving with their own DID (migration) need service auth; not yet here.
        return Err(XrpcError::invalid_request(
            "Signing up with an existing DID is not supported by this server yet",
        ));
    }
    let (Some(email), Some(password)) = (input.email, input.password) else {
        return Err(XrpcError::invalid_request(
            "Email and password are required",
        ));
    };
    let session = state
        .pds()?
        .create_account(SignUp {
            handle: input.handle,
            email,
            password,
            invite_code: input.invite_code,
            recovery_key: input.recovery_key,
        })
        .await?;
    Ok(Json(json!({
        "accessJwt": session.tokens.access_jwt,
        "refreshJwt": session.tokens.refresh_jwt,
        "handle": handle_of(&session.account),
        "did": session.account.did,
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateSessionInput {
    identifier: String,
    password: String,
}

async fn create_session(
    State(state): State<AppState>,
    XrpcJson(input): XrpcJson<CreateSessionInput>,
) -> Result<Json<Value>, XrpcError> {
    let session = state
        .pds()?
        .create_session(&input.identifier, &input.password)
        .await?;
    Ok(Json(session_json(&session, true)))
}

async fn get_session(
    State(state): State<AppState>,
    auth: AccessAuth,
) -> Result<Json<Value>, XrpcError> {
    let account = state.pds()?.account(&auth.did).await?;
    Ok(Json(account_json(&account, true)))
}

async fn refresh_session(
    State(state): State<AppState>,
    auth: RefreshAuth,
) -> Result<Json<Value>, XrpcError> {
    let session = state.pds()?.refresh_session(&auth.claims.jti).await?;
    if session.account.did != auth.did {
        return Err(XrpcError::invalid_token("Token subject does not match"));
    }
    Ok(Json(session_json(&session, false)))
}

async fn delete_session(
    State(state): State<AppState>,
    auth: RefreshAuth,
) -> Result<Json<Value>, XrpcError> {
    state.pds()?.delete_session(&auth.claims.jti).await?;
    Ok(Json(json!({})))
}

fn handle_of(account: &Account) -> String {
    account
        .handle
        .as_ref()
        .map_or_else(|| "handle.invalid".to_string(), |h| h.to_string())
}

/// `getSession`'s shape: who, email, and hosting status.
fn account_json(account: &Account, with_email: bool) -> Value {
    let mut out = json!({
        "handle": handle_of(account),
        "did": account.did,
        "active": account.is_active(),
    });
    if with_email {
        out["email"] = json!(account.email);
        out["emailConfirmed"] = json!(account.email_confirmed_at.is_some());
        out["emailAuthFactor"] = json!(false);
    }
    if !account.is_active() {
        out["status"] = json!(match account.status() {
            AccountStatus::Active => "active",
            AccountStatus::Deactivated => "deactivated",
            AccountStatus::Takendown => "takendown",
        });
    }
    out
}

fn session_json(session: &Session, with_email: bool) -> Value {
    let mut out = account_json(&session.account, with_email);
    out["accessJwt"] = json!(session.tokens.access_jwt);
    out["refreshJwt"] = json!(session.tokens.refresh_jwt);
    out
}
