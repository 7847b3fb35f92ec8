//! `com.atproto.server.describeServer`: public facts about this PDS, all from configuration.

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use super::AppState;
use super::routes::XrpcRoutes;

pub(super) fn routes() -> XrpcRoutes {
    XrpcRoutes::new().query("com.atproto.server.describeServer", describe_server)
}

async fn describe_server(State(state): State<AppState>) -> Json<Value> {
    let cfg = &state.config;
    // Unset links and contact fields are omitted, leaving `{}` (the reference's undefined
    // values vanish in JSON.stringify the same way).
    let mut links = Map::new();
    if let Some(u) = &cfg.service.privacy_policy_url {
        links.insert("privacyPolicy".into(), json!(u));
    }
    if let Some(u) = &cfg.service.terms_of_service_url {
        links.insert("termsOfService".into(), json!(u));
    }
    let mut contact = Map::new();
    if let Some(e) = &cfg.service.contact_email {
        contact.insert("email".into(), json!(e));
    }
    Json(json!({
        "did": cfg.service.did,
        "availableUserDomains": cfg.identity.service_handle_domains,
        "inviteCodeRequired": cfg.invites.required,
        "blobUploadLimit": cfg.service.blob_upload_limit,
        "links": links,
        "contact": contact,
    }))
}
