//! `com.atproto.sync.subscribeRepos`: the firehose over WebSocket.
//!
//! One task per subscriber: replay stored events after the cursor, then the live tail. The live
//! receiver is taken before the replay starts and events already replayed are skipped by `seq`,
//! so there is no gap and no duplicate between the two. A subscriber more than
//! `PDS_MAX_SUBSCRIPTION_BUFFER` frames behind gets `ConsumerTooSlow` and is closed; others are
//! unaffected (frames are shared, each subscriber only holds a position in the ring).

use crate::sequencer::Sequencer;
use crate::sequencer::frames::{error_frame, info_frame};
use crate::server::{AppState, XrpcRoutes};
use crate::xrpc::{XrpcError, XrpcQuery};
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use futures_util::SinkExt;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

/// Stored events read per replay page.
const PAGE: usize = 500;

pub fn routes() -> XrpcRoutes {
    XrpcRoutes::new().subscription("com.atproto.sync.subscribeRepos", subscribe_repos)
}

#[derive(Deserialize)]
struct Params {
    cursor: Option<i64>,
}

async fn subscribe_repos(
    State(state): State<AppState>,
    XrpcQuery(params): XrpcQuery<Params>,
    ws: WebSocketUpgrade,
) -> Result<Response, XrpcError> {
    let pds = state.pds()?;
    let sequencer = pds.sequencer.clone();
    let backfill = pds.config.subscription.repo_backfill_limit;
    // Subscribers send nothing worth reading: a small read buffer. Frames are written in
    // batches (see `stream`), so a moderate write buffer: memory per subscriber stays small.
    let ws = ws
        .read_buffer_size(4 * 1024)
        .write_buffer_size(32 * 1024)
        .max_message_size(64 * 1024);
    Ok(ws.on_upgrade(move |socket| async move {
        if let Err(e) = stream(socket, sequencer, params.cursor, backfill).await {
            tracing::debug!("firehose subscriber ended: {e}");
        }
    }))
}

/// Why a subscription ended early (all are normal for a network stream).
#[derive(Debug, thiserror::Error)]
enum StreamEnd {
    #[error("client went away: {0}")]
    Socket(#[from] axum::Error),
    #[error("sequencer: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("task: {0}")]
    Join(#[from] tokio::task::JoinError),
}

async fn stream(
    mut socket: WebSocket,
    sequencer: Arc<Sequencer>,
    cursor: Option<i64>,
    backfill: Duration,
) -> Result<(), StreamEnd> {
    let mut live = sequencer.subscribe();
    let _counted = sequencer.stats.subscriber();
    let mut last = 0i64;
    if let Some(cursor) = cursor {
        // Events of writes acknowledged before we connected are stored first, so the replay
        // holds them (and the backfill window sees them).
        sequencer.caught_up().await;
        let s = sequencer.clone();
        let max = tokio::task::spawn_blocking(move || s.max_seq()).await??;
        if cursor > max {
            return close_with_error(socket, "FutureCursor", "Cursor in the future.").await;
        }
        last = cursor.max(0);
        // The backfill window: replay starts no earlier than its first event.
        let window_start = chrono::Utc::now()
            - chrono::Duration::from_std(backfill).unwrap_or(chrono::Duration::days(1));
        let since = crate::syntax::Datetime::from(window_start).to_string();
        let s = sequencer.clone();
        let first_in_window =
            tokio::task::spawn_blocking(move || s.first_seq_since(&since)).await??;
        let first_after_cursor = last + 1;
        match first_in_window {
            Some(first) if first > first_after_cursor && cursor > 0 => {
                send(
                    &mut socket,
                    info_frame(
                        "OutdatedCursor",
                        "Requested cursor exceeded limit. Possibly missing events",
                    ),
                )
                .await?;
                last = first - 1;
            }
            Some(first) if first > first_after_cursor => last = first - 1,
            None => last = max,
            _ => {}
        }
        loop {
            let s = sequencer.clone();
            let page = tokio::task::spawn_blocking(move || s.replay(last, PAGE)).await??;
            let n = page.len();
            for frame in page {
                last = frame.seq;
                socket.feed(Message::Binary(frame.bytes.clone())).await?;
            }
            socket.flush().await?;
            if n < PAGE {
                break;
            }
        }
    }
    let mut sent = Vec::new();
    loop {
        tokio::select! {
            received = live.recv() => match received {
                Ok(frame) => {
                    // Everything already queued goes out in one write: a subscriber that is
                    // behind catches up with few syscalls instead of one per frame.
                    let mut next = Some(frame);
                    while let Some(frame) = next.take() {
                        if frame.seq > last {
                            last = frame.seq;
                            socket.feed(Message::Binary(frame.bytes.clone())).await?;
                            sent.push(frame.at);
                        }
                        match live.try_recv() {
                            Ok(f) => next = Some(f),
                            Err(TryRecvError::Empty) => {}
                            Err(TryRecvError::Lagged(_)) => {
                                return close_with_error(
                                    socket,
                                    "ConsumerTooSlow",
                                    "Stream consumer too slow",
                                )
                                .await;
                            }
                            Err(TryRecvError::Closed) => break,
                        }
                    }
                    socket.flush().await?;
                    // Sequenced -> written to the socket, per frame (`/metrics`).
                    let now = std::time::Instant::now();
                    for at in sent.drain(..) {
                        sequencer.stats.record(now.saturating_duration_since(at));
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    return close_with_error(
                        socket,
                        "ConsumerTooSlow",
                        "Stream consumer too slow",
                    )
                    .await;
                }
                Err(RecvError::Closed) => {
                    let _ = socket.send(Message::Close(None)).await;
                    return Ok(());
                }
            },
            // Clients send nothing meaningful; read only to notice when they leave.
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn send(socket: &mut WebSocket, bytes: Vec<u8>) -> Result<(), StreamEnd> {
    socket
        .send(Message::Binary(bytes.into()))
        .await
        .map_err(StreamEnd::from)
}

/// An error frame, then close with 1008 (policy) and the error name, as the reference.
async fn close_with_error(
    mut socket: WebSocket,
    error: &str,
    message: &str,
) -> Result<(), StreamEnd> {
    send(&mut socket, error_frame(error, message)).await?;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close_code::POLICY,
            reason: error.to_string().into(),
        })))
        .await;
    Ok(())
}
