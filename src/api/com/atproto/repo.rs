//! `com.atproto.repo.*`: record writes and reads.

use crate::api::auth::AccessAuth;
use crate::api::limits::Caller;
use crate::data::Cid;
use crate::pds::repo::{OpResult, WriteOp, WriteOptions, WriteOutcome};
use crate::server::AppState;
use crate::server::XrpcRoutes;
use crate::xrpc::{NoOutput, RECORD_BODY_LIMIT, XrpcError, XrpcJson, XrpcQuery};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> XrpcRoutes {
    XrpcRoutes::new()
        .procedure("com.atproto.repo.createRecord", create_record)
        .procedure("com.atproto.repo.putRecord", put_record)
        .procedure("com.atproto.repo.deleteRecord", delete_record)
        .procedure("com.atproto.repo.applyWrites", apply_writes)
        .query("com.atproto.repo.getRecord", get_record)
        .query("com.atproto.repo.listRecords", list_records)
        .query("com.atproto.repo.describeRepo", describe_repo)
        .procedure("com.atproto.repo.importRepo", import_repo)
        .procedure("com.atproto.repo.uploadBlob", upload_blob)
        .query("com.atproto.repo.listMissingBlobs", list_missing_blobs)
}

type RecordJson<T> = XrpcJson<T, RECORD_BODY_LIMIT>;

fn parse_cid(field: &str, s: &str) -> Result<Cid, XrpcError> {
    Cid::try_from(s).map_err(|e| XrpcError::invalid_request(format!("Invalid {field}: {e}")))
}

/// `swapCommit`: absent = no check; a CID = the repo must be at that commit.
fn swap_commit(v: Option<String>) -> Result<Option<Cid>, XrpcError> {
    v.map(|s| parse_cid("swapCommit", &s)).transpose()
}

/// `swapRecord`: absent = no check; `null` = must not exist; a CID = must be at it.
fn swap_record(v: Option<Option<String>>) -> Result<Option<Option<Cid>>, XrpcError> {
    v.map(|inner| inner.map(|s| parse_cid("swapRecord", &s)).transpose())
        .transpose()
}

fn double_option<'de, D>(d: D) -> Result<Option<Option<String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRecordInput {
    repo: String,
    collection: String,
    rkey: Option<String>,
    validate: Option<bool>,
    record: Value,
    swap_commit: Option<String>,
}

async fn create_record(
    State(state): State<AppState>,
    caller: Caller,
    auth: AccessAuth,
    XrpcJson(input): RecordJson<CreateRecordInput>,
) -> Result<Json<Value>, XrpcError> {
    auth.require_standard()?;
    let opts = WriteOptions {
        validate: input.validate,
        swap_commit: swap_commit(input.swap_commit)?,
        dedupe_backlinks: true,
        missing_delete_is_noop: false,
        rate_limit_bypass: caller.bypass,
    };
    let op = WriteOp::Create {
        collection: input.collection,
        rkey: input.rkey,
        value: input.record,
    };
    let outcome = state
        .pds()?
        .write_records(&auth.did, &input.repo, vec![op], opts)
        .await?;
    Ok(Json(single_result(&outcome)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutRecordInput {
    repo: String,
    collection: String,
    rkey: String,
    validate: Option<bool>,
    record: Value,
    #[serde(default, deserialize_with = "double_option")]
    swap_record: Option<Option<String>>,
    swap_commit: Option<String>,
}

async fn put_record(
    State(state): State<AppState>,
    caller: Caller,
    auth: AccessAuth,
    XrpcJson(input): RecordJson<PutRecordInput>,
) -> Result<Json<Value>, XrpcError> {
    auth.require_standard()?;
    let opts = WriteOptions {
        validate: input.validate,
        swap_commit: swap_commit(input.swap_commit)?,
        rate_limit_bypass: caller.bypass,
        ..WriteOptions::default()
    };
    let op = WriteOp::Put {
        collection: input.collection,
        rkey: input.rkey,
        value: input.record,
        swap_record: swap_record(input.swap_record)?,
    };
    let outcome = state
        .pds()?
        .write_records(&auth.did, &input.repo, vec![op], opts)
        .await?;
    Ok(Json(single_result(&outcome)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteRecordInput {
    repo: String,
    collection: String,
    rkey: String,
    #[serde(default, deserialize_with = "double_option")]
    swap_record: Option<Option<String>>,
    swap_commit: Option<String>,
}

async fn delete_record(
    State(state): State<AppState>,
    caller: Caller,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<DeleteRecordInput>,
) -> Result<Json<Value>, XrpcError> {
    auth.require_standard()?;
    let opts = WriteOptions {
        swap_commit: swap_commit(input.swap_commit)?,
        missing_delete_is_noop: true,
        rate_limit_bypass: caller.bypass,
        ..WriteOptions::default()
    };
    let op = WriteOp::Delete {
        collection: input.collection,
        rkey: input.rkey,
        swap_record: swap_record(input.swap_record)?,
    };
    let outcome = state
        .pds()?
        .write_records(&auth.did, &input.repo, vec![op], opts)
        .await?;
    let mut out = json!({});
    if let Some(commit) = outcome.commit_json() {
        out["commit"] = commit;
    }
    Ok(Json(out))
}

/// `{uri, cid, commit?, validationStatus?}` for createRecord / putRecord.
fn single_result(outcome: &WriteOutcome) -> Value {
    let (uri, cid, validation) = match outcome.results.first() {
        Some(
            OpResult::Create {
                uri,
                cid,
                validation,
            }
            | OpResult::Update {
                uri,
                cid,
                validation,
            },
        ) => (uri.clone(), Some(*cid), *validation),
        Some(OpResult::NoOp {
            uri,
            cid,
            validation,
        }) => (uri.clone(), *cid, *validation),
        _ => (String::new(), None, None),
    };
    let mut out = json!({ "uri": uri });
    if let Some(cid) = cid {
        out["cid"] = json!(cid.to_string());
    }
    if let Some(commit) = outcome.commit_json() {
        out["commit"] = commit;
    }
    if let Some(v) = validation {
        out["validationStatus"] = json!(v.as_str());
    }
    out
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplyWritesInput {
    repo: String,
    validate: Option<bool>,
    writes: Vec<Value>,
    swap_commit: Option<String>,
}

async fn apply_writes(
    State(state): State<AppState>,
    caller: Caller,
    auth: AccessAuth,
    XrpcJson(input): RecordJson<ApplyWritesInput>,
) -> Result<Json<Value>, XrpcError> {
    auth.require_standard()?;
    if input.writes.len() > crate::pds::repo::MAX_WRITES {
        return Err(XrpcError::invalid_request(format!(
            "Too many writes. Max: {}",
            crate::pds::repo::MAX_WRITES
        )));
    }
    let ops = input
        .writes
        .into_iter()
        .enumerate()
        .map(|(i, w)| parse_write(i, w))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = WriteOptions {
        validate: input.validate,
        swap_commit: swap_commit(input.swap_commit)?,
        rate_limit_bypass: caller.bypass,
        ..WriteOptions::default()
    };
    let outcome = state
        .pds()?
        .write_records(&auth.did, &input.repo, ops, opts)
        .await?;
    let results: Vec<Value> = outcome.results.iter().map(OpResult::to_json).collect();
    let mut out = json!({ "results": results });
    if let Some(commit) = outcome.commit_json() {
        out["commit"] = commit;
    }
    Ok(Json(out))
}

/// One `applyWrites` entry: a closed union on `$type`.
fn parse_write(i: usize, w: Value) -> Result<WriteOp, XrpcError> {
    #[derive(Deserialize)]
    struct Entry {
        #[serde(rename = "$type")]
        kind: String,
        collection: String,
        rkey: Option<String>,
        value: Option<Value>,
    }
    let bad = |m: &str| XrpcError::invalid_request(format!("Input/writes/{i} {m}"));
    let e: Entry = serde_json::from_value(w).map_err(|e| bad(&e.to_string()))?;
    let rkey = |r: Option<String>| r.ok_or_else(|| bad("must have the property \"rkey\""));
    let value = |v: Option<Value>| v.ok_or_else(|| bad("must have the property \"value\""));
    Ok(match e.kind.as_str() {
        "com.atproto.repo.applyWrites#create" => WriteOp::Create {
            collection: e.collection,
            rkey: e.rkey,
            value: value(e.value)?,
        },
        "com.atproto.repo.applyWrites#update" => WriteOp::Update {
            collection: e.collection,
            rkey: rkey(e.rkey)?,
            value: value(e.value)?,
        },
        "com.atproto.repo.applyWrites#delete" => WriteOp::Delete {
            collection: e.collection,
            rkey: rkey(e.rkey)?,
            swap_record: None,
        },
        other => {
            return Err(bad(&format!(
                "$type must be one of com.atproto.repo.applyWrites#create, #update, #delete (got {other})"
            )));
        }
    })
}

#[derive(Deserialize)]
struct GetRecordParams {
    repo: String,
    collection: String,
    rkey: String,
    cid: Option<String>,
}

async fn get_record(
    State(state): State<AppState>,
    XrpcQuery(q): XrpcQuery<GetRecordParams>,
) -> Result<impl IntoResponse, XrpcError> {
    let body = state
        .pds()?
        .get_record(&q.repo, &q.collection, &q.rkey, q.cid.as_deref())
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body))
}

#[derive(Deserialize)]
struct ListRecordsParams {
    repo: String,
    collection: String,
    limit: Option<i64>,
    cursor: Option<String>,
    reverse: Option<bool>,
}

async fn list_records(
    State(state): State<AppState>,
    XrpcQuery(q): XrpcQuery<ListRecordsParams>,
) -> Result<Json<Value>, XrpcError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(XrpcError::invalid_request(
            "limit must be between 1 and 100",
        ));
    }
    let out = state
        .pds()?
        .list_records(
            &q.repo,
            &q.collection,
            limit as usize,
            q.cursor,
            q.reverse.unwrap_or(false),
        )
        .await?;
    Ok(Json(out))
}

/// `importRepo`: a CAR body up to `PDS_MAX_REPO_IMPORT_SIZE`; full access tokens only.
async fn import_repo(
    State(state): State<AppState>,
    auth: AccessAuth,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<NoOutput, XrpcError> {
    auth.require_full()?;
    let pds = state.pds()?;
    let limit = usize::try_from(pds.config.service.repo_import_limit()).unwrap_or(usize::MAX);
    let car = crate::xrpc::read_body(&headers, body, limit).await?;
    pds.import_repo(&auth.did, car).await?;
    Ok(NoOutput)
}

#[derive(Deserialize)]
struct RepoParam {
    repo: String,
}

async fn describe_repo(
    State(state): State<AppState>,
    XrpcQuery(q): XrpcQuery<RepoParam>,
) -> Result<Json<Value>, XrpcError> {
    Ok(Json(state.pds()?.describe_repo(&q.repo).await?))
}

// ---------------------------------------------------------------------------------------------
// Blobs: uploadBlob, listMissingBlobs (the service side is `pds::blobs`).

/// `uploadBlob`: any MIME type; the body is streamed to the blob store, never buffered whole.
async fn upload_blob(
    State(state): State<AppState>,
    auth: AccessAuth,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, XrpcError> {
    auth.require_standard()?;
    let pds = state.pds()?;
    let limit = pds.config.service.blob_upload_limit;
    // A declared length over the limit is refused before a byte is stored; a body without
    // one (chunked) is cut off by the upload pipeline as soon as it passes the limit.
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(XrpcError::payload_too_large(format!(
            "request body exceeds {limit} bytes"
        )));
    }
    // Required, as for any XRPC input, though sniffing may override it.
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| ct.split(';').next().unwrap_or("").trim().to_string())
        .ok_or_else(|| {
            XrpcError::invalid_request("Request encoding (Content-Type) required but not provided")
        })?;
    let blob = pds
        .upload_blob(&auth.did, body.into_data_stream(), Some(&content_type))
        .await?;
    Ok(Json(json!({
        "blob": {
            "$type": "blob",
            "ref": {"$link": blob.cid.to_string()},
            "mimeType": blob.mime_type,
            "size": blob.size,
        }
    })))
}

#[derive(Deserialize)]
struct ListMissingBlobsParams {
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn list_missing_blobs(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcQuery(q): XrpcQuery<ListMissingBlobsParams>,
) -> Result<Json<Value>, XrpcError> {
    auth.require_standard()?;
    let limit = q.limit.unwrap_or(500);
    if !(1..=1000).contains(&limit) {
        return Err(XrpcError::invalid_request(
            "limit must be between 1 and 1000",
        ));
    }
    let missing = state
        .pds()?
        .list_missing_blobs(&auth.did, limit as usize, q.cursor)
        .await?;
    let cursor = missing.last().map(|(cid, _)| cid.to_string());
    let blobs: Vec<Value> = missing
        .into_iter()
        .map(|(cid, uri)| json!({"cid": cid.to_string(), "recordUri": uri}))
        .collect();
    let mut out = json!({ "blobs": blobs });
    if let Some(c) = cursor {
        out["cursor"] = json!(c);
    }
    Ok(Json(out))
}
