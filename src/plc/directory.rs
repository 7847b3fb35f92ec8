//! A PLC directory server (the `plc.directory` HTTP API) over one SQLite file, `plc.sqlite`.
//!
//! Routes: `POST /{did}` (submit an operation), `GET /{did}` (DID document), `/{did}/data`,
//! `/{did}/log`, `/{did}/log/audit`, `/{did}/log/last`, `/export` (JSON lines) and `/_health`.
//! Errors are `{"message": ...}` with the reference directory's status codes and wording:
//! 400 for a rejected operation or bad query, 404 `DID not registered: <did>`, 410
//! `DID not available: <did>` for a tombstoned DID.
//!
//! Invariants:
//! - An operation is appended only after [`SignedOp::check_constraints`] and
//!   [`assure_valid_next_op`] accept it against the DID's active log, and the nullification of
//!   the forked-off tail and the insert commit in one transaction, under one lock, so the
//!   stored log always replays ([`super::validate_audit_log`]) to the stored flags.
//! - A rejected operation changes nothing.
//! - `createdAt` strictly increases within a DID (a clock tie or step back is bumped by 1 ms),
//!   because the recovery rules compare times and a replay must see the same order.
//! - `seq` strictly increases across the whole directory and is never reused.
//!
//! This module is a self-contained server with its own store, so it owns its SQL rather than
//! going through `crate::store` (which holds the PDS's per-account stores).

use super::audit::{IndexedOp, assure_valid_next_op, parse_created_at};
use super::operation::{LogEntry, SignedOp};
use super::{PlcError, operation::parse_prev};
use crate::store::sqlite::{self, Durability, PLC_MIGRATIONS};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Largest request body accepted: an op is at most 7,500 bytes of DAG-CBOR, and its JSON is
/// not much larger, so this only stops abuse.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most lines one `/export` page returns (and the default), as the reference directory.
const MAX_EXPORT_COUNT: u32 = 1000;

/// The time source: the wall clock in production, a controllable one in tests.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Shared state of the directory: the database and the clock.
#[derive(Clone)]
pub struct DirectoryState {
    db: Arc<Mutex<Connection>>,
    clock: Clock,
}

impl std::fmt::Debug for DirectoryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirectoryState")
    }
}

impl DirectoryState {
    /// Opens (creating if needed) the directory database at `path`.
    pub fn open(path: &Path) -> Result<DirectoryState, crate::store::StoreError> {
        let conn = sqlite::open(path, PLC_MIGRATIONS, Durability::Full)?;
        Ok(DirectoryState::from_connection(conn))
    }

    /// A directory in memory (tests).
    pub fn in_memory() -> Result<DirectoryState, crate::store::StoreError> {
        Ok(DirectoryState::from_connection(sqlite::open_in_memory(
            PLC_MIGRATIONS,
        )?))
    }

    fn from_connection(conn: Connection) -> DirectoryState {
        DirectoryState {
            db: Arc::new(Mutex::new(conn)),
            clock: Arc::new(Utc::now),
        }
    }

    /// Replaces the clock (tests of the recovery window).
    pub fn with_clock(mut self, clock: Clock) -> DirectoryState {
        self.clock = clock;
        self
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &Clock) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let db = self.db.clone();
        let clock = self.clock.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = db
                .lock()
                .map_err(|_| ApiError::internal("database lock poisoned by an earlier panic"))?;
            f(&mut conn, &clock)
        })
        .await
        .map_err(|e| ApiError::internal(format!("database task failed: {e}")))?
    }
}

/// An error answer: status plus `{"message": ...}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    fn not_registered(did: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("DID not registered: {did}"))
    }
    fn not_available(did: &str) -> ApiError {
        ApiError::new(StatusCode::GONE, format!("DID not available: {did}"))
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> ApiError {
        tracing::error!(error = %e, "plc directory database error");
        ApiError::internal(format!("database error: {e}"))
    }
}

impl From<PlcError> for ApiError {
    fn from(e: PlcError) -> ApiError {
        ApiError::bad_request(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "message": self.message }))).into_response()
    }
}

/// The directory's routes.
pub fn router(state: DirectoryState) -> Router {
    Router::new()
        .route("/_health", get(health))
        .route("/export", get(export))
        .route("/{did}", get(resolve).post(submit))
        .route("/{did}/data", get(data))
        .route("/{did}/log", get(log))
        .route("/{did}/log/audit", get(audit_log))
        .route("/{did}/log/last", get(last_op))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves a directory backed by `db_path` on `listener` until the task is dropped.
pub async fn serve_plc(listener: tokio::net::TcpListener, db_path: &Path) -> anyhow::Result<()> {
    let state = DirectoryState::open(db_path)
        .map_err(|e| anyhow::anyhow!("opening PLC database {}: {e}", db_path.display()))?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, db = %db_path.display(), "PLC directory listening");
    }
    axum::serve(listener, router(state)).await?;
    Ok(())
}

async fn health(State(state): State<DirectoryState>) -> Response {
    let check = state
        .with_db(|conn, _| Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
        .await;
    match check {
        Ok(_) => axum::Json(json!({ "version": env!("CARGO_PKG_VERSION") })).into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                json!({ "version": env!("CARGO_PKG_VERSION"), "error": "Service Unavailable" }),
            ),
        )
            .into_response(),
    }
}

/// Formats a time as the directory stores and serves it (`YYYY-MM-DDTHH:mm:ss.sssZ`).
fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Drops sub-millisecond precision, which the stored text can't hold.
fn to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

fn corrupt(what: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("stored operation is corrupt: {what}"))
}

fn parse_stored_op(text: &str) -> Result<SignedOp, ApiError> {
    let value: Value = serde_json::from_str(text).map_err(corrupt)?;
    SignedOp::from_json(&value).map_err(corrupt)
}

/// The active (non-nullified) operations of `did`, oldest first.
fn load_active(conn: &Connection, did: &str) -> Result<Vec<IndexedOp>, ApiError> {
    let mut stmt = conn.prepare_cached(
        "SELECT cid, operation, created_at FROM operation
         WHERE did = ?1 AND nullified = 0 ORDER BY seq",
    )?;
    let rows = stmt.query_map([did], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (cid, op, created_at) = row?;
        out.push(IndexedOp {
            op: parse_stored_op(&op)?,
            cid: parse_prev(&cid).map_err(corrupt)?,
            created_at: parse_created_at(&created_at).map_err(corrupt)?,
        });
    }
    Ok(out)
}

/// The newest active operation of `did` as JSON, if the DID is registered.
fn load_last(conn: &Connection, did: &str) -> Result<Option<SignedOp>, ApiError> {
    let text: Option<String> = conn
        .query_row(
            "SELECT operation FROM operation
             WHERE did = ?1 AND nullified = 0 ORDER BY seq DESC LIMIT 1",
            [did],
            |r| r.get(0),
        )
        .optional()?;
    text.as_deref().map(parse_stored_op).transpose()
}

async fn submit(
    State(state): State<DirectoryState>,
    UrlPath(did): UrlPath<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let op = SignedOp::from_json_slice(&body)?;
    op.check_constraints()?;
    state
        .with_db(move |conn, clock| {
            let tx = conn.transaction()?;
            let active = load_active(&tx, &did)?;
            let mut at = to_millis(clock());
            if let Some(newest) = active.last()
                && at <= newest.created_at
            {
                at = newest.created_at + TimeDelta::milliseconds(1);
            }
            let next = assure_valid_next_op(&did, &active, &op, at)?;
            let cid = op.cid()?.to_string();
            for undone in active.get(next.nullify_from..).unwrap_or_default() {
                tx.execute(
                    "UPDATE operation SET nullified = 1 WHERE did = ?1 AND cid = ?2",
                    params![did, undone.cid.to_string()],
                )?;
            }
            let inserted = tx.execute(
                "INSERT INTO operation (did, cid, operation, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (did, cid) DO NOTHING",
                params![did, cid, op.to_json().to_string(), format_time(at)],
            )?;
            if inserted == 0 {
                return Err(ApiError::bad_request(format!(
                    "operation {cid} is already in the log of {did}"
                )));
            }
            tx.commit()?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::OK.into_response())
}

/// The current data of an active DID, or the 404 / 410 answer.
async fn current_data(
    state: &DirectoryState,
    did: String,
) -> Result<super::DocumentData, ApiError> {
    state
        .with_db(move |conn, _| {
            let last = load_last(conn, &did)?.ok_or_else(|| ApiError::not_registered(&did))?;
            let st = last.state().ok_or_else(|| ApiError::not_available(&did))?;
            Ok(st.to_document_data(&did))
        })
        .await
}

async fn resolve(
    State(state): State<DirectoryState>,
    UrlPath(did): UrlPath<String>,
) -> Result<Response, ApiError> {
    let data = current_data(&state, did).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/did+ld+json")],
        data.to_did_document().to_string(),
    )
        .into_response())
}

async fn data(
    State(state): State<DirectoryState>,
    UrlPath(did): UrlPath<String>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(current_data(&state, did).await?).into_response())
}

async fn log(
    State(state): State<DirectoryState>,
    UrlPath(did): UrlPath<String>,
) -> Result<Response, ApiError> {
    let ops = state
        .with_db(move |conn, _| {
            let active = load_active(conn, &did)?;
            if active.is_empty() {
                return Err(ApiError::not_registered(&did));
            }
            Ok(active.iter().map(|o| o.op.to_json()).collect::<Vec<_>>())
        })
        .await?;
    Ok(axum::Json(ops).into_response())
}

async fn audit_log(
    State(state): State<DirectoryState>,
    UrlPath(did): UrlPath<String>,
) -> Result<Response, ApiError> {
    let entries = state
        .with_db(move |conn, _| {
            let mut stmt = conn.prepare_cached(
                "SELECT cid, operation, nullified, created_at FROM operation
                 WHERE did = ?1 ORDER BY seq",
            )?;
            let rows = stmt.query_map([&did], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (cid, op, nullified, created_at) = row?;
                out.push(
                    LogEntry {
                        did: did.clone(),
                        operation: parse_stored_op(&op)?,
                        cid,
                        nullified: nullified != 0,
                        created_at,
                    }
                    .to_json(),
                );
            }
            if out.is_empty() {
                return Err(ApiError::not_registered(&did));
            }
            Ok(out)
        })
        .await?;
    Ok(axum::Json(entries).into_response())
}

async fn last_op(
    State(state): State<DirectoryState>,
    UrlPath(did): UrlPath<String>,
) -> Result<Response, ApiError> {
    let op = state
        .with_db(move |conn, _| {
            load_last(conn, &did)?.ok_or_else(|| ApiError::not_registered(&did))
        })
        .await?;
    Ok(axum::Json(op.to_json()).into_response())
}

/// Where an export page starts.
enum After {
    /// `after=<seq>`: the sequenced format, in seq order.
    Seq(i64),
    /// `after=<timestamp>` or none: the legacy format, in createdAt order.
    Time(Option<String>),
}

async fn export(
    State(state): State<DirectoryState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let count = match query.get("count") {
        None => MAX_EXPORT_COUNT,
        Some(c) => match c.parse::<u32>() {
            Ok(n) if n >= 1 => n.min(MAX_EXPORT_COUNT),
            _ => return Err(ApiError::bad_request("Invalid count parameter")),
        },
    };
    let after = match query.get("after") {
        None => After::Time(None),
        Some(a) if !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()) => After::Seq(
            a.parse::<i64>()
                .map_err(|_| ApiError::bad_request("Invalid after parameter"))?,
        ),
        Some(a) => {
            let t = DateTime::parse_from_rfc3339(a)
                .map_err(|_| ApiError::bad_request("Invalid after parameter"))?;
            After::Time(Some(format_time(t.with_timezone(&Utc))))
        }
    };
    let lines = state
        .with_db(move |conn, _| {
            let rows = match &after {
                After::Seq(seq) => conn
                    .prepare_cached(
                        "SELECT seq, did, cid, operation, nullified, created_at FROM operation
                         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                    )?
                    .query_map(params![seq, count], export_row)?
                    .collect::<Result<Vec<_>, _>>()?,
                After::Time(t) => conn
                    .prepare_cached(
                        "SELECT seq, did, cid, operation, nullified, created_at FROM operation
                         WHERE created_at > ?1 ORDER BY created_at, seq LIMIT ?2",
                    )?
                    .query_map(params![t.as_deref().unwrap_or_default(), count], export_row)?
                    .collect::<Result<Vec<_>, _>>()?,
            };
            let mut lines = Vec::new();
            for (seq, did, cid, op, nullified, created_at) in rows {
                let operation = parse_stored_op(&op)?.to_json();
                let line = match after {
                    After::Seq(_) => json!({
                        "type": "sequenced_op",
                        "did": did,
                        "operation": operation,
                        "cid": cid,
                        "createdAt": created_at,
                        "seq": seq,
                    }),
                    After::Time(_) => json!({
                        "did": did,
                        "operation": operation,
                        "cid": cid,
                        "nullified": nullified != 0,
                        "createdAt": created_at,
                    }),
                };
                lines.push(line.to_string());
            }
            Ok(lines)
        })
        .await?;
    Ok((
        [(header::CONTENT_TYPE, "application/jsonlines")],
        lines.join("\n"),
    )
        .into_response())
}

type ExportRow = (i64, String, String, String, i64, String);

fn export_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ExportRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}
