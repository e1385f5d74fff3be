//! `POST /signup`: a new account, with TOTP enrolled when `enable_mfa`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;

use super::Error;
use super::extract::JsonObject;
use crate::db::{self, users};
use crate::service::AppState;

/// `POST /signup`.
pub fn router() -> Router<AppState> {
    Router::new().route("/signup", post(signup))
}

/// Body of a 201.
#[derive(Serialize)]
pub struct SignupResponse {
    message: &'static str,
    mfa_enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    provisioning_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_codes: Option<Vec<String>>,
}

async fn signup(
    State(app): State<AppState>,
    body: JsonObject,
) -> Result<(StatusCode, Json<SignupResponse>), Error> {
    let username = body.username()?;
    let password = body.password()?;
    let enable_mfa = body.bool_or("enable_mfa", false)?;

    // A taken name is public anyway (the 409 says so); skip the hash for it.
    if users::find_by_key(app.db.reader(), username.key())
        .await?
        .is_some()
    {
        return Err(Error::UserExists);
    }
    let hash = app.hasher.hash(&password).await?;
    let mut tx = app.db.writer().begin().await?;
    let id = users::insert(
        &mut tx,
        username.as_str(),
        username.key(),
        &hash,
        app.clock.now(),
    )
    .await
    .map_err(|e| {
        if db::is_unique_violation(&e) {
            Error::UserExists
        } else {
            e.into()
        }
    })?;
    let enrollment = match enable_mfa {
        true => Some(app.enroll(&mut tx, id, username.as_str()).await?),
        false => None,
    };
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(SignupResponse {
            message: "Signup successful",
            mfa_enabled: enable_mfa,
            provisioning_uri: enrollment.as_ref().map(|e| e.provisioning_uri.clone()),
            recovery_codes: enrollment.map(|e| e.recovery_codes),
        }),
    ))
}
