//! `com.atproto.server.*`: accounts and sessions.

use crate::account::ADMIN_INVITE_ACCOUNT;
use crate::api::auth::{AccessAuth, RefreshAuth, require_admin};
use crate::api::limits::Caller;
use crate::pds::rate_limits;
use crate::pds::{Session, SignUp};
use crate::server::AppState;
use crate::server::XrpcRoutes;
use crate::store::account::{Account, AccountStatus, InviteCode};
use crate::syntax::Did;
use crate::xrpc::{NoOutput, XrpcError, XrpcJson, XrpcQuery};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> XrpcRoutes {
    XrpcRoutes::new()
        .procedure("com.atproto.server.createAccount", create_account)
        .procedure("com.atproto.server.createSession", create_session)
        .query("com.atproto.server.getSession", get_session)
        .procedure("com.atproto.server.refreshSession", refresh_session)
        .procedure("com.atproto.server.deleteSession", delete_session)
        .procedure("com.atproto.server.createAppPassword", create_app_password)
        .query("com.atproto.server.listAppPasswords", list_app_passwords)
        .procedure("com.atproto.server.revokeAppPassword", revoke_app_password)
        .procedure("com.atproto.server.createInviteCode", create_invite_code)
        .procedure("com.atproto.server.createInviteCodes", create_invite_codes)
        .query(
            "com.atproto.server.getAccountInviteCodes",
            get_account_invite_codes,
        )
        .procedure("com.atproto.server.reserveSigningKey", reserve_signing_key)
        .procedure("com.atproto.server.deactivateAccount", deactivate_account)
        .procedure("com.atproto.server.activateAccount", activate_account)
        .query(
            "com.atproto.server.checkAccountStatus",
            check_account_status,
        )
        // Email-token flows (end of file).
        .procedure(
            "com.atproto.server.requestEmailConfirmation",
            request_email_confirmation,
        )
        .procedure("com.atproto.server.confirmEmail", confirm_email)
        .procedure(
            "com.atproto.server.requestEmailUpdate",
            request_email_update,
        )
        .procedure("com.atproto.server.updateEmail", update_email)
        .procedure(
            "com.atproto.server.requestPasswordReset",
            request_password_reset,
        )
        .procedure("com.atproto.server.resetPassword", reset_password)
        .procedure(
            "com.atproto.server.requestAccountDelete",
            request_account_delete,
        )
        .procedure("com.atproto.server.deleteAccount", delete_account)
        .query("com.atproto.server.getServiceAuth", get_service_auth)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DeactivateInput {
    delete_after: Option<String>,
}

async fn deactivate_account(
    State(state): State<AppState>,
    auth: AccessAuth,
    body: axum::body::Bytes,
) -> Result<NoOutput, XrpcError> {
    auth.require_full_or_takendown()?;
    // The input is optional: an empty body means no deleteAfter.
    let input: DeactivateInput = if body.is_empty() {
        DeactivateInput::default()
    } else {
        serde_json::from_slice(&body).map_err(crate::xrpc::json_body_error)?
    };
    let delete_after = input
        .delete_after
        .map(|s| {
            DateTime::parse_from_rfc3339(&s)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|e| XrpcError::invalid_request(format!("Invalid deleteAfter: {e}")))
        })
        .transpose()?;
    state
        .pds()?
        .deactivate_account(&auth.did, delete_after)
        .await?;
    Ok(NoOutput)
}

async fn activate_account(
    State(state): State<AppState>,
    auth: AccessAuth,
) -> Result<NoOutput, XrpcError> {
    auth.require_full()?;
    state.pds()?.activate_account(&auth.did).await?;
    Ok(NoOutput)
}

async fn check_account_status(
    State(state): State<AppState>,
    auth: AccessAuth,
) -> Result<Json<Value>, XrpcError> {
    Ok(Json(state.pds()?.check_account_status(&auth.did).await?))
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
    headers: HeaderMap,
    XrpcJson(input): XrpcJson<CreateAccountInput>,
) -> Result<Json<Value>, XrpcError> {
    if input.plc_op.is_some() {
        return Err(XrpcError::invalid_request("Unsupported input: \"plcOp\""));
    }
    if input.did.is_some() {
        return create_account_with_did(state, headers, input).await;
    }
    let (Some(email), Some(password)) = (input.email, input.password) else {
        return Err(XrpcError::invalid_request(
            "Email and password are required",
        ));
    };
    let (session, did_doc) = state
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
        "didDoc": did_doc,
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
    caller: Caller,
    XrpcJson(input): XrpcJson<CreateSessionInput>,
) -> Result<Json<Value>, XrpcError> {
    let key = format!("{}-{}", input.identifier.to_lowercase(), caller.ip);
    caller.check(&state, &rate_limits::CREATE_SESSION, &key)?;
    let session = state
        .pds()?
        .create_session(&input.identifier, &input.password)
        .await?;
    Ok(Json(session_json(&session)))
}

async fn get_session(
    State(state): State<AppState>,
    auth: AccessAuth,
) -> Result<Json<Value>, XrpcError> {
    let account = state.pds()?.account(&auth.did).await?;
    Ok(Json(account_json(&account)))
}

async fn refresh_session(
    State(state): State<AppState>,
    auth: RefreshAuth,
) -> Result<Json<Value>, XrpcError> {
    let session = state.pds()?.refresh_session(&auth.claims.jti).await?;
    if session.account.did != auth.did {
        return Err(XrpcError::invalid_token("Token subject does not match"));
    }
    Ok(Json(session_json(&session)))
}

async fn delete_session(
    State(state): State<AppState>,
    auth: RefreshAuth,
) -> Result<NoOutput, XrpcError> {
    state.pds()?.delete_session(&auth.claims.jti).await?;
    Ok(NoOutput)
}

fn handle_of(account: &Account) -> String {
    account
        .handle
        .as_ref()
        .map_or_else(|| "handle.invalid".to_string(), |h| h.to_string())
}

/// `getSession`'s shape: who, email, and hosting status (no `didDoc`: the reference adds it only
/// with `PDS_ENABLE_DID_DOC_WITH_SESSION`, no `emailAuthFactor`: it never sends one).
fn account_json(account: &Account) -> Value {
    let mut out = json!({
        "handle": handle_of(account),
        "did": account.did,
        "active": account.is_active(),
        "emailConfirmed": account.email_confirmed_at.is_some(),
    });
    if let Some(email) = &account.email {
        out["email"] = json!(email);
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

fn session_json(session: &Session) -> Value {
    let mut out = account_json(&session.account);
    out["accessJwt"] = json!(session.tokens.access_jwt);
    out["refreshJwt"] = json!(session.tokens.refresh_jwt);
    out
}

// ----- scopes and admin auth ----------------------------------------------------------------

/// Datetimes as the reference writes them (`toISOString()`: milliseconds, `Z`).
fn iso(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

// ----- app passwords ------------------------------------------------------------------------

#[derive(Deserialize)]
struct CreateAppPasswordInput {
    name: String,
    privileged: Option<bool>,
}

async fn create_app_password(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<CreateAppPasswordInput>,
) -> Result<Json<Value>, XrpcError> {
    auth.require_full()?;
    let created = state
        .pds()?
        .create_app_password(&auth.did, &input.name, input.privileged.unwrap_or(false))
        .await?;
    Ok(Json(json!({
        "name": created.name,
        "password": created.password,
        "createdAt": iso(&created.created_at),
        "privileged": created.privileged,
    })))
}

async fn list_app_passwords(
    State(state): State<AppState>,
    auth: AccessAuth,
) -> Result<Json<Value>, XrpcError> {
    auth.require_standard()?;
    let passwords = state.pds()?.list_app_passwords(&auth.did).await?;
    let passwords: Vec<Value> = passwords
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "createdAt": iso(&p.created_at),
                "privileged": p.privileged,
            })
        })
        .collect();
    Ok(Json(json!({ "passwords": passwords })))
}

#[derive(Deserialize)]
struct RevokeAppPasswordInput {
    name: String,
}

async fn revoke_app_password(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<RevokeAppPasswordInput>,
) -> Result<NoOutput, XrpcError> {
    auth.require_standard()?;
    state
        .pds()?
        .revoke_app_password(&auth.did, &input.name)
        .await?;
    Ok(NoOutput)
}

// ----- invite codes -------------------------------------------------------------------------

/// A Lexicon `integer` that must fit the store's unsigned counts.
fn count_param<T: TryFrom<i64>>(value: i64, field: &str) -> Result<T, XrpcError> {
    T::try_from(value)
        .map_err(|_| XrpcError::invalid_request(format!("Input/{field} is out of range")))
}

fn did_param(value: &str, field: &str) -> Result<String, XrpcError> {
    value
        .parse::<Did>()
        .map(|d| d.to_string())
        .map_err(|_| XrpcError::invalid_request(format!("Input/{field} must be a valid did")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateInviteCodeInput {
    use_count: i64,
    for_account: Option<String>,
}

async fn create_invite_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    XrpcJson(input): XrpcJson<CreateInviteCodeInput>,
) -> Result<Json<Value>, XrpcError> {
    require_admin(&state, &headers)?;
    let uses = count_param(input.use_count, "useCount")?;
    let account = match &input.for_account {
        Some(a) => did_param(a, "forAccount")?,
        None => ADMIN_INVITE_ACCOUNT.to_string(),
    };
    let minted = state
        .pds()?
        .create_invite_codes(vec![account], 1, uses)
        .await?;
    let code = minted
        .into_iter()
        .next()
        .and_then(|(_, codes)| codes.into_iter().next())
        .ok_or_else(|| XrpcError::internal("no invite code was minted"))?;
    Ok(Json(json!({ "code": code })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateInviteCodesInput {
    code_count: Option<i64>,
    use_count: i64,
    for_accounts: Option<Vec<String>>,
}

async fn create_invite_codes(
    State(state): State<AppState>,
    headers: HeaderMap,
    XrpcJson(input): XrpcJson<CreateInviteCodesInput>,
) -> Result<Json<Value>, XrpcError> {
    require_admin(&state, &headers)?;
    let uses = count_param(input.use_count, "useCount")?;
    let count = count_param(input.code_count.unwrap_or(1), "codeCount")?;
    let accounts = match &input.for_accounts {
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, a)| did_param(a, &format!("forAccounts/{i}")))
            .collect::<Result<Vec<_>, _>>()?,
        None => vec![ADMIN_INVITE_ACCOUNT.to_string()],
    };
    let minted = state
        .pds()?
        .create_invite_codes(accounts, count, uses)
        .await?;
    let codes: Vec<Value> = minted
        .into_iter()
        .map(|(account, codes)| json!({ "account": account, "codes": codes }))
        .collect();
    Ok(Json(json!({ "codes": codes })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetAccountInviteCodesParams {
    include_used: Option<bool>,
    create_available: Option<bool>,
}

async fn get_account_invite_codes(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcQuery(params): XrpcQuery<GetAccountInviteCodesParams>,
) -> Result<Json<Value>, XrpcError> {
    auth.require_full()?;
    let codes = state
        .pds()?
        .account_invite_codes(
            &auth.did,
            params.include_used.unwrap_or(true),
            params.create_available.unwrap_or(true),
        )
        .await?;
    let codes: Vec<Value> = codes.iter().map(invite_code_json).collect();
    Ok(Json(json!({ "codes": codes })))
}

/// `com.atproto.server.defs#inviteCode`.
fn invite_code_json(code: &InviteCode) -> Value {
    let uses: Vec<Value> = code
        .uses
        .iter()
        .map(|u| json!({ "usedBy": u.used_by, "usedAt": iso(&u.used_at) }))
        .collect();
    json!({
        "code": code.code,
        "available": code.available_uses,
        "disabled": code.disabled,
        "forAccount": code.for_account,
        "createdBy": code.created_by,
        "createdAt": iso(&code.created_at),
        "uses": uses,
    })
}

// ----- signing keys -------------------------------------------------------------------------

#[derive(Deserialize)]
struct ReserveSigningKeyInput {
    did: Option<String>,
}

async fn reserve_signing_key(
    State(state): State<AppState>,
    XrpcJson(input): XrpcJson<ReserveSigningKeyInput>,
) -> Result<Json<Value>, XrpcError> {
    let did = input
        .did
        .map(|d| {
            d.parse::<Did>()
                .map_err(|_| XrpcError::invalid_request("Input/did must be a valid did"))
        })
        .transpose()?;
    let signing_key = state.pds()?.reserve_signing_key(did).await?;
    Ok(Json(json!({ "signingKey": signing_key })))
}

// ----- email-token flows: confirmation, email update, password reset, deletion -------------
// The services are in `pds::email_flows`; scopes are the reference's (standard for email
// confirmation, full for the email update and deletion request, none where the token or the
// password is the proof).

async fn request_email_confirmation(
    State(state): State<AppState>,
    caller: Caller,
    auth: AccessAuth,
) -> Result<NoOutput, XrpcError> {
    auth.require_standard()?;
    caller.check(
        &state,
        rate_limits::did_limits("com.atproto.server.requestEmailConfirmation"),
        auth.did.as_str(),
    )?;
    state.pds()?.request_email_confirmation(&auth.did).await?;
    Ok(NoOutput)
}

#[derive(Deserialize)]
struct ConfirmEmailInput {
    email: String,
    token: String,
}

async fn confirm_email(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<ConfirmEmailInput>,
) -> Result<NoOutput, XrpcError> {
    auth.require_standard()?;
    state
        .pds()?
        .confirm_email(&auth.did, &input.email, &input.token)
        .await?;
    Ok(NoOutput)
}

async fn request_email_update(
    State(state): State<AppState>,
    caller: Caller,
    auth: AccessAuth,
) -> Result<Json<Value>, XrpcError> {
    auth.require_full()?;
    caller.check(
        &state,
        rate_limits::did_limits("com.atproto.server.requestEmailUpdate"),
        auth.did.as_str(),
    )?;
    let token_required = state.pds()?.request_email_update(&auth.did).await?;
    Ok(Json(json!({ "tokenRequired": token_required })))
}

#[derive(Deserialize)]
struct UpdateEmailInput {
    email: String,
    token: Option<String>,
    // `emailAuthFactor` is accepted and ignored, as by the reference.
}

async fn update_email(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<UpdateEmailInput>,
) -> Result<NoOutput, XrpcError> {
    auth.require_full()?;
    state
        .pds()?
        .update_email(&auth.did, &input.email, input.token.as_deref())
        .await?;
    Ok(NoOutput)
}

#[derive(Deserialize)]
struct RequestPasswordResetInput {
    email: String,
}

async fn request_password_reset(
    State(state): State<AppState>,
    XrpcJson(input): XrpcJson<RequestPasswordResetInput>,
) -> Result<NoOutput, XrpcError> {
    state.pds()?.request_password_reset(&input.email).await?;
    Ok(NoOutput)
}

#[derive(Deserialize)]
struct ResetPasswordInput {
    token: String,
    password: String,
}

async fn reset_password(
    State(state): State<AppState>,
    XrpcJson(input): XrpcJson<ResetPasswordInput>,
) -> Result<NoOutput, XrpcError> {
    state
        .pds()?
        .reset_password(&input.token, &input.password)
        .await?;
    Ok(NoOutput)
}

async fn request_account_delete(
    State(state): State<AppState>,
    caller: Caller,
    auth: AccessAuth,
) -> Result<NoOutput, XrpcError> {
    auth.require_full()?;
    caller.check(
        &state,
        rate_limits::did_limits("com.atproto.server.requestAccountDelete"),
        auth.did.as_str(),
    )?;
    state.pds()?.request_account_delete(&auth.did).await?;
    Ok(NoOutput)
}

#[derive(Deserialize)]
struct DeleteAccountInput {
    did: String,
    password: String,
    token: String,
}

async fn delete_account(
    State(state): State<AppState>,
    XrpcJson(input): XrpcJson<DeleteAccountInput>,
) -> Result<NoOutput, XrpcError> {
    let did: Did = input
        .did
        .parse()
        .map_err(|_| XrpcError::invalid_request("Input/did must be a valid did"))?;
    state
        .pds()?
        .delete_account_with_token(&did, &input.password, &input.token)
        .await?;
    Ok(NoOutput)
}

// ----- migration: service auth and bring-your-own-DID sign-up -------------------------------

#[derive(Deserialize)]
struct GetServiceAuthParams {
    aud: String,
    exp: Option<i64>,
    lxm: Option<String>,
}

async fn get_service_auth(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcQuery(params): XrpcQuery<GetServiceAuthParams>,
) -> Result<Json<Value>, XrpcError> {
    let token = state
        .pds()?
        .get_service_auth(
            &auth.did,
            auth.claims.scope,
            &params.aud,
            params.exp,
            params.lxm.as_deref(),
        )
        .await?;
    Ok(Json(json!({ "token": token })))
}

/// `createAccount` with `did`: the bearer token must be a service JWT from that DID for this
/// method and addressed to us (the old PDS mints it with `getServiceAuth`).
async fn create_account_with_did(
    state: AppState,
    headers: HeaderMap,
    input: CreateAccountInput,
) -> Result<Json<Value>, XrpcError> {
    let did_text = input.did.unwrap_or_default();
    let did: Did = did_text
        .parse()
        .map_err(|_| XrpcError::invalid_request("Input/did must be a valid did"))?;
    let pds = state.pds()?;
    let missing = || {
        XrpcError::authentication_required(format!(
            "Missing auth to create account with did: {did_text}"
        ))
    };
    // No credentials at all is the reference's "missing auth"; bad credentials say why.
    if !headers.contains_key(axum::http::header::AUTHORIZATION) {
        return Err(missing());
    }
    let issuer = pds
        .verify_service_jwt(&headers, Some(crate::pds::service_auth::CREATE_ACCOUNT))
        .await?;
    if issuer != did {
        return Err(missing());
    }
    let (Some(email), Some(password)) = (input.email, input.password) else {
        return Err(XrpcError::invalid_request(
            "Email and password are required",
        ));
    };
    let (session, did_doc) = pds
        .create_account_with_did(
            &did,
            SignUp {
                handle: input.handle,
                email,
                password,
                invite_code: input.invite_code,
                recovery_key: input.recovery_key,
            },
        )
        .await?;
    let mut out = json!({
        "accessJwt": session.tokens.access_jwt,
        "refreshJwt": session.tokens.refresh_jwt,
        "handle": handle_of(&session.account),
        "did": session.account.did,
    });
    if let Some(doc) = did_doc {
        out["didDoc"] = serde_json::to_value(&doc).unwrap_or(Value::Null);
    }
    Ok(Json(out))
}
