//! `GET /me` and `POST /logout`, authenticated by a bearer session token.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Error;
use super::extract::Bearer;
use super::openapi::ErrorBody;
use crate::db::sessions;
use crate::service::AppState;

/// `GET /me`, `POST /logout`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(logout))
}

/// Body of a 200 from /me.
#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    #[schema(example = "alice")]
    username: String,
    mfa_enabled: bool,
}

#[utoipa::path(get, path = "/me", tag = "session", security(("bearer" = [])),
    responses(
        (status = 200, description = "The session's user", body = MeResponse),
        (status = 401, description = "No valid session token (`unauthorized`)", body = ErrorBody, headers(("WWW-Authenticate" = String))),
    ))]
async fn me(State(app): State<AppState>, Bearer(hash): Bearer) -> Result<Json<MeResponse>, Error> {
    let user = sessions::find(app.db.reader(), &hash, app.clock.now())
        .await?
        .ok_or(Error::Unauthorized)?;
    Ok(Json(MeResponse {
        username: user.username,
        mfa_enabled: user.mfa_enabled,
    }))
}

#[utoipa::path(post, path = "/logout", tag = "session", security(("bearer" = [])),
    responses(
        (status = 204, description = "The session is ended everywhere"),
        (status = 401, description = "No valid session token (`unauthorized`)", body = ErrorBody, headers(("WWW-Authenticate" = String))),
    ))]
async fn logout(State(app): State<AppState>, Bearer(hash): Bearer) -> Result<StatusCode, Error> {
    match sessions::delete(app.db.writer(), &hash, app.clock.now()).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(Error::Unauthorized),
    }
}
