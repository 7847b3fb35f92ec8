//! `GET /metrics`: operator numbers in the Prometheus text format, behind admin Basic auth
//! (`admin:<PDS_ADMIN_PASSWORD>`). For now the firehose: live subscribers and the time from
//! an event being sequenced to its frame being written to each subscriber's socket.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::fmt::Write;

use super::AppState;
use crate::api::auth::require_admin;
use crate::sequencer::stats::BUCKET_BOUNDS_US;

pub(super) async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = require_admin(&state, &headers) {
        return e.into_response();
    }
    let Some(pds) = state.pds.as_ref() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no PDS").into_response();
    };
    let s = pds.sequencer.stats.snapshot();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP berth_firehose_subscribers Connected subscribeRepos clients.\n\
         # TYPE berth_firehose_subscribers gauge\n\
         berth_firehose_subscribers {}",
        s.subscribers
    );
    let _ = writeln!(
        out,
        "# HELP berth_firehose_delivery_seconds From an event being sequenced to its frame \
         being written to a live subscriber's socket.\n\
         # TYPE berth_firehose_delivery_seconds histogram"
    );
    let mut cumulative = 0u64;
    for (bound, count) in BUCKET_BOUNDS_US.iter().zip(&s.buckets) {
        cumulative += count;
        let _ = writeln!(
            out,
            "berth_firehose_delivery_seconds_bucket{{le=\"{}\"}} {cumulative}",
            *bound as f64 / 1e6
        );
    }
    let _ = writeln!(
        out,
        "berth_firehose_delivery_seconds_bucket{{le=\"+Inf\"}} {}\n\
         berth_firehose_delivery_seconds_sum {}\n\
         berth_firehose_delivery_seconds_count {}",
        s.delivered,
        s.total_us as f64 / 1e6,
        s.delivered
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
