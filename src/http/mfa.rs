//! `POST /enable-mfa` and `POST /disable-mfa`.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;

use super::Error;
use super::extract::JsonObject;
use crate::auth::lockout::Factor;
use crate::db::{credentials, recovery_codes};
use crate::service::AppState;

/// `POST /enable-mfa`, `POST /disable-mfa`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/enable-mfa", post(enable_mfa))
        .route("/disable-mfa", post(disable_mfa))
}

/// Body of a 200 from /enable-mfa.
#[derive(Serialize)]
pub struct EnableMfaResponse {
    message: &'static str,
    mfa_enabled: bool,
    provisioning_uri: String,
    recovery_codes: Vec<String>,
}

/// Body of a 200 from /disable-mfa.
#[derive(Serialize)]
pub struct MessageResponse {
    message: &'static str,
}

async fn enable_mfa(
    State(app): State<AppState>,
    body: JsonObject,
) -> Result<Json<EnableMfaResponse>, Error> {
    let username = body.username()?;
    let password = body.password()?;
    let user = app.check_password(&username, &password).await?;
    if user.mfa_enabled {
        return Err(Error::MfaAlreadyEnabled);
    }
    let mut tx = app.db.writer().begin().await?;
    let enrollment = app.enroll(&mut tx, user.id, &user.username).await?;
    tx.commit().await?;
    Ok(Json(EnableMfaResponse {
        message: "MFA enabled",
        mfa_enabled: true,
        provisioning_uri: enrollment.provisioning_uri,
        recovery_codes: enrollment.recovery_codes,
    }))
}

async fn disable_mfa(
    State(app): State<AppState>,
    body: JsonObject,
) -> Result<Json<MessageResponse>, Error> {
    let username = body.username()?;
    let password = body.password()?;
    let token = body.token("token")?;
    let user = app.check_password(&username, &password).await?;
    if !user.mfa_enabled {
        return Err(Error::MfaAlreadyDisabled);
    }
    app.ensure_not_locked(username.key(), Factor::SecondFactor)
        .await?;
    let verified = app
        .verify_second_factor(user.id, token)
        .await?
        .ok_or(Error::MfaAlreadyDisabled)?;
    let mut settled = app
        .settle_second_factor(username.key(), verified, Error::InvalidOtpForDisable)
        .await?;
    if !credentials::delete_for_user(&mut settled.tx, user.id).await? {
        return Err(Error::MfaAlreadyDisabled);
    }
    recovery_codes::delete_for_user(&mut settled.tx, user.id).await?;
    settled.tx.commit().await?;
    Ok(Json(MessageResponse {
        message: "MFA disabled successfully",
    }))
}
