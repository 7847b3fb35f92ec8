//! `com.atproto.sync.*`: reading repositories and blobs, for relays, app views and migrations.
//! Public methods; a valid access token (or admin Basic credentials) only matters to let an
//! account read its own data while it is deactivated or taken down (the reference's
//! `assertRepoAvailability`, in `pds::sync`). Invalid credentials are an error, never anonymity.

use crate::api::auth::auth_error;
use crate::auth::{Credentials, parse_authorization, verify_admin};
use crate::data::Cid;
use crate::pds::sync::SyncReader;
use crate::server::{AppState, XrpcRoutes};
use crate::syntax::{Did, Nsid, RecordKey, Tid};
use crate::xrpc::{XrpcError, XrpcQuery};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

pub fn routes() -> XrpcRoutes {
    XrpcRoutes::new()
        .query("com.atproto.sync.getBlob", get_blob)
        .query("com.atproto.sync.getRepo", get_repo)
        .query("com.atproto.sync.getCheckout", get_checkout)
        .query("com.atproto.sync.getHead", get_head)
        .query("com.atproto.sync.getLatestCommit", get_latest_commit)
        .query("com.atproto.sync.getRecord", get_record)
        .query("com.atproto.sync.getBlocks", get_blocks)
        .query("com.atproto.sync.getRepoStatus", get_repo_status)
        .query("com.atproto.sync.listRepos", list_repos)
        .query("com.atproto.sync.listBlobs", list_blobs)
}

/// Who the caller is: a Bearer access token's account, the admin (Basic), or anonymous when
/// no `Authorization` header is sent.
fn sync_reader(state: &AppState, headers: &HeaderMap) -> Result<SyncReader, XrpcError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(SyncReader::Anonymous);
    };
    let value = value
        .to_str()
        .map_err(|_| XrpcError::invalid_token("Malformed authorization header"))?;
    match parse_authorization(Some(value)).map_err(auth_error)? {
        Some(Credentials::Bearer(token)) => {
            let claims = state
                .pds()?
                .tokens
                .verify_access(&token, chrono::Utc::now().timestamp())
                .map_err(auth_error)?;
            let did = claims
                .sub
                .parse()
                .map_err(|_| XrpcError::invalid_token("Malformed token"))?;
            Ok(SyncReader::Account(did))
        }
        Some(credentials) => {
            verify_admin(&credentials, state.config.secrets.admin_password.expose())
                .map_err(auth_error)?;
            Ok(SyncReader::Admin)
        }
        None => Ok(SyncReader::Anonymous),
    }
}

/// `getBlob`'s bypass is "the viewer is the owner": the admin reads as the owner would.
fn blob_viewer<'a>(reader: &'a SyncReader, did: &'a Did) -> Option<&'a Did> {
    match reader {
        SyncReader::Anonymous => None,
        SyncReader::Account(d) => Some(d),
        SyncReader::Admin => Some(did),
    }
}

fn parse_did(s: &str) -> Result<Did, XrpcError> {
    s.parse()
        .map_err(|_| XrpcError::invalid_request(format!("Invalid did: {s}")))
}

fn parse_cid(s: &str) -> Result<Cid, XrpcError> {
    Cid::try_from(s).map_err(|e| XrpcError::invalid_request(format!("Invalid cid: {e}")))
}

#[derive(Deserialize)]
struct GetBlobParams {
    did: String,
    cid: String,
}

/// `getBlob`: streams the blob with the reference's defensive headers, so a browser that is
/// sent straight here neither renders nor sniffs it.
async fn get_blob(
    State(state): State<AppState>,
    headers: HeaderMap,
    XrpcQuery(q): XrpcQuery<GetBlobParams>,
) -> Result<Response, XrpcError> {
    let (did, cid) = (parse_did(&q.did)?, parse_cid(&q.cid)?);
    let reader = sync_reader(&state, &headers)?;
    let blob = state
        .pds()?
        .get_blob(&did, &cid, blob_viewer(&reader, &did))
        .await?;
    let content_type = HeaderValue::from_str(&blob.mime_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{cid}\""))
        .map_err(|e| XrpcError::internal(format!("content-disposition: {e}")))?;
    let mut resp = Body::from_stream(blob.content.body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(blob.content.size));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CONTENT_DISPOSITION, disposition);
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    Ok(resp)
}

fn parse_since(since: Option<&str>) -> Result<Option<Tid>, XrpcError> {
    since
        .map(|s| {
            s.parse::<Tid>()
                .map_err(|_| XrpcError::invalid_request(format!("Invalid since: {s}")))
        })
        .transpose()
}

/// A `limit` of 1–1000 (default 500), as `listRepos` and `listBlobs` take.
fn page_limit(limit: Option<i64>) -> Result<usize, XrpcError> {
    let limit = limit.unwrap_or(500);
    if !(1..=1000).contains(&limit) {
        return Err(XrpcError::invalid_request(
            "limit must be between 1 and 1000",
        ));
    }
    Ok(limit as usize)
}

/// A CAR response body.
fn car_response(body: Body) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.ipld.car"),
    );
    resp
}

#[derive(Deserialize)]
struct DidParams {
    did: String,
}

#[derive(Deserialize)]
struct GetRepoParams {
    did: String,
    since: Option<String>,
}

/// `getRepo`: the whole repo (or the blocks after `since`) as a streamed CAR.
async fn get_repo(
    State(state): State<AppState>,
    headers: HeaderMap,
    XrpcQuery(q): XrpcQuery<GetRepoParams>,
) -> Result<Response, XrpcError> {
    let did = parse_did(&q.did)?;
    let since = parse_since(q.since.as_deref())?;
    let reader = sync_reader(&state, &headers)?;
    let stream = state.pds()?.export_repo(&did, since, &reader).await?;
    Ok(car_response(Body::from_stream(stream)))
}

/// `getCheckout` (deprecated): `getRepo` without `since`.
async fn get_checkout(
    State(state): State<AppState>,
    headers: HeaderMap,
    XrpcQuery(q): XrpcQuery<DidParams>,
) -> Result<Response, XrpcError> {
    let did = parse_did(&q.did)?;
    let reader = sync_reader(&state, &headers)?;
    let stream = state.pds()?.export_repo(&did, None, &reader).await?;
    Ok(car_response(Body::from_stream(stream)))
}

/// `getHead` (deprecated): `{root}`.
async fn get_head(
    State(state): State<AppState>,
    headers: HeaderMap,
    XrpcQuery(q): XrpcQuery<DidParams>,
) -> Result<Json<Value>, XrpcError> {
    let did = parse_did(&q.did)?;
    let reader = sync_reader(&state, &headers)?;
    let root = state
        .pds()?
        .latest_commit(&did, &reader)
        .await?
        .ok_or_else(|| {
            XrpcError::bad_request(
                "HeadNotFound",
                format!("Could not find root for DID: {did}"),
            )
        })?;
    Ok(Json(json!({"root": root.cid.to_string()})))
}

/// `getLatestCommit`: `{cid, rev}`.
async fn get_latest_commit(
    State(state): State<AppState>,
    headers: HeaderMap,
    XrpcQuery(q): XrpcQuery<DidParams>,
) -> Result<Json<Value>, XrpcError> {
    let did = parse_did(&q.did)?;
    let reader = sync_reader(&state, &headers)?;
    let root = state
        .pds()?
        .latest_commit(&did, &reader)
        .await?
        .ok_or_else(|| {
            XrpcError::bad_request(
                "RepoNotFound",
                format!("Could not find root for DID: {did}"),
            )
        })?;
    Ok(Json(json!({"cid": root.cid.to_string(), "rev": root.rev})))
}

#[derive(Deserialize)]
struct GetRecordParams {
    did: String,
    collection: String,
    rkey: String,
}

/// `sync.getRecord`: the commit, the MST proof and the record (if present) as a CAR.
async fn get_record(
    State(state): State<AppState>,
    headers: HeaderMap,
    XrpcQuery(q): XrpcQuery<GetRecordParams>,
) -> Result<Response, XrpcError> {
    let did = parse_did(&q.did)?;
    let collection = Nsid::try_from(q.collection.as_str())
        .map_err(|e| XrpcError::invalid_request(format!("Invalid collection: {e}")))?;
    let rkey = RecordKey::try_from(q.rkey.as_str())
        .map_err(|e| XrpcError::invalid_request(format!("Invalid record key: {e}")))?;
    let reader = sync_reader(&state, &headers)?;
    let car = state
        .pds()?
        .record_proof(&did, &collection, &rkey, &reader)
        .await?;
    Ok(car_response(Body::from(car)))
}

#[derive(Deserialize)]
struct GetBlocksParams {
    did: String,
    cids: Vec<String>,
}

/// `getBlocks`: the named blocks as a CAR with no roots.
async fn get_blocks(
    State(state): State<AppState>,
    headers: HeaderMap,
    XrpcQuery(q): XrpcQuery<GetBlocksParams>,
) -> Result<Response, XrpcError> {
    let did = parse_did(&q.did)?;
    let cids = q
        .cids
        .iter()
        .map(|c| parse_cid(c))
        .collect::<Result<Vec<_>, _>>()?;
    let reader = sync_reader(&state, &headers)?;
    let car = state.pds()?.blocks_car(&did, cids, &reader).await?;
    Ok(car_response(Body::from(car)))
}

/// `getRepoStatus`: `{did, active, status?, rev?}`; no authentication at all.
async fn get_repo_status(
    State(state): State<AppState>,
    XrpcQuery(q): XrpcQuery<DidParams>,
) -> Result<Json<Value>, XrpcError> {
    let did = parse_did(&q.did)?;
    let status = state.pds()?.repo_status(&did).await?;
    let mut out = Map::new();
    out.insert("did".into(), json!(status.did.as_str()));
    out.insert("active".into(), json!(status.active));
    if let Some(s) = status.status {
        out.insert("status".into(), json!(s));
    }
    if let Some(rev) = status.rev {
        out.insert("rev".into(), json!(rev));
    }
    Ok(Json(Value::Object(out)))
}

#[derive(Deserialize)]
struct ListReposParams {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `listRepos`: every hosted repo, any status.
async fn list_repos(
    State(state): State<AppState>,
    XrpcQuery(q): XrpcQuery<ListReposParams>,
) -> Result<Json<Value>, XrpcError> {
    let limit = page_limit(q.limit)?;
    let page = state.pds()?.list_repos(limit, q.cursor.as_deref()).await?;
    let repos: Vec<Value> = page
        .repos
        .into_iter()
        .map(|r| {
            let mut v = json!({
                "did": r.did.as_str(),
                "head": r.head.to_string(),
                "rev": r.rev,
                "active": r.active,
            });
            if let Some(s) = r.status {
                v["status"] = json!(s);
            }
            v
        })
        .collect();
    let mut out = json!({ "repos": repos });
    if let Some(c) = page.cursor {
        out["cursor"] = json!(c);
    }
    Ok(Json(out))
}

#[derive(Deserialize)]
struct ListBlobsParams {
    did: String,
    since: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `listBlobs`: `{cids, cursor?}`, the cursor being the last CID.
async fn list_blobs(
    State(state): State<AppState>,
    headers: HeaderMap,
    XrpcQuery(q): XrpcQuery<ListBlobsParams>,
) -> Result<Json<Value>, XrpcError> {
    let did = parse_did(&q.did)?;
    let since = parse_since(q.since.as_deref())?;
    let limit = page_limit(q.limit)?;
    let reader = sync_reader(&state, &headers)?;
    let cids = state
        .pds()?
        .list_blobs(&did, since, limit, q.cursor, &reader)
        .await?;
    let cids: Vec<String> = cids.iter().map(Cid::to_string).collect();
    let cursor = cids.last().cloned();
    let mut out = json!({ "cids": cids });
    if let Some(last) = cursor {
        out["cursor"] = json!(last);
    }
    Ok(Json(out))
}
