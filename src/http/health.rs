//! Liveness (`/healthz`) and readiness (`/readyz`: the database answers).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::Error;
use crate::service::AppState;

/// `GET /healthz`, `GET /readyz`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(app): State<AppState>) -> Result<Json<Value>, Error> {
    app.db.ping().await.map_err(Error::Unavailable)?;
    Ok(Json(json!({ "status": "ready" })))
}
