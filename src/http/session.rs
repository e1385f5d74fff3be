//! `GET /me` and `POST /logout`, authenticated by a bearer session token.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use super::Error;
use super::extract::Bearer;
use crate::db::sessions;
use crate::service::AppState;

/// `GET /me`, `POST /logout`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/me", get(me))
        .route("/logout", post(logout))
}

/// Body of a 200 from /me.
#[derive(Serialize)]
pub struct MeResponse {
    username: String,
    mfa_enabled: bool,
}

async fn me(State(app): State<AppState>, Bearer(hash): Bearer) -> Result<Json<MeResponse>, Error> {
    let user = sessions::find(app.db.reader(), &hash, app.clock.now())
        .await?
        .ok_or(Error::Unauthorized)?;
    Ok(Json(MeResponse {
        username: user.username,
        mfa_enabled: user.mfa_enabled,
    }))
}

async fn logout(State(app): State<AppState>, Bearer(hash): Bearer) -> Result<StatusCode, Error> {
    match sessions::delete(app.db.writer(), &hash, app.clock.now()).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(Error::Unauthorized),
    }
}
