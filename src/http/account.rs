//! Changes a signed-in user makes to their own credentials:
//! `POST /me/recovery-codes` (a new set, voiding the old one) and
//! `POST /change-password` (which ends the user's other sessions).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Error;
use super::extract::{Bearer, JsonObject};
use super::openapi::{ErrorBody, PasswordField};
use crate::service::{AppState, Client};

/// `POST /me/recovery-codes`, `POST /change-password`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(regenerate_recovery_codes))
        .routes(routes!(change_password))
}

/// Body of POST /me/recovery-codes.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "documents the body; read field by field by JsonObject"
)]
pub struct RecoveryCodesRequest {
    #[schema(inline)]
    password: PasswordField,
    /// A current TOTP code from any active device (not a recovery code).
    #[schema(min_length = 1, max_length = 64, example = "123456")]
    token: String,
}

/// Body of a 200 from POST /me/recovery-codes.
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodesResponse {
    #[schema(example = "New recovery codes; the old ones no longer work")]
    message: &'static str,
    /// Ten single-use codes, shown once.
    recovery_codes: Vec<String>,
}

/// Body of POST /change-password: the `current_password`; the
/// `new_password` (8–256 characters, not too easy to guess: checked against
/// zxcvbn's lists of common passwords, words, names and patterns); with MFA
/// on, `token`: a current TOTP code or an unused recovery code.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "documents the body; read field by field by JsonObject"
)]
pub struct ChangePasswordRequest {
    #[schema(inline)]
    current_password: PasswordField,
    #[schema(inline)]
    new_password: PasswordField,
    #[schema(min_length = 1, max_length = 64, example = "123456")]
    token: Option<String>,
}

/// Body of a 200 from POST /change-password.
#[derive(Serialize, ToSchema)]
pub struct ChangePasswordResponse {
    #[schema(example = "Password changed")]
    message: &'static str,
    /// How many other sessions were ended.
    sessions_ended: u64,
}

#[utoipa::path(post, path = "/me/recovery-codes", tag = "account", security(("bearer" = [])),
    request_body = RecoveryCodesRequest,
    responses(
        (status = 200, description = "A new set of recovery codes; every older code is void", body = RecoveryCodesResponse, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 401, description = "No valid session token (`unauthorized`), wrong password (`invalid_credentials`) or wrong code (`invalid_otp`)", body = ErrorBody),
        (status = 409, description = "MFA is off (`mfa_disabled`)", body = ErrorBody),
        (status = 429, description = "Locked out after too many failures (`too_many_attempts`)", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds until the lock ends"))),
    ))]
async fn regenerate_recovery_codes(
    State(app): State<AppState>,
    client: Client,
    Bearer(hash): Bearer,
    body: JsonObject,
) -> Result<
    (
        [(axum::http::HeaderName, &'static str); 1],
        Json<RecoveryCodesResponse>,
    ),
    Error,
> {
    let me = app.signed_in(&hash).await?;
    let password = body.password()?;
    let token = body.token("token")?;
    let codes = app
        .regenerate_recovery_codes(&me, &password, token, &client)
        .await?;
    Ok((
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(RecoveryCodesResponse {
            message: "New recovery codes; the old ones no longer work",
            recovery_codes: codes,
        }),
    ))
}

#[utoipa::path(post, path = "/change-password", tag = "account", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Password changed; every other session of the user is ended", body = ChangePasswordResponse),
        (status = 401, description = "No valid session token (`unauthorized`), wrong current password (`invalid_credentials`) or wrong code (`invalid_otp`)", body = ErrorBody),
        (status = 422, description = "A field breaks a rule (`invalid_input`, e.g. `token` missing with MFA on) or the new password is too easy to guess (`weak_password`, `detail` says why)", body = ErrorBody),
        (status = 429, description = "Locked out after too many failures (`too_many_attempts`)", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds until the lock ends"))),
    ))]
async fn change_password(
    State(app): State<AppState>,
    client: Client,
    Bearer(hash): Bearer,
    body: JsonObject,
) -> Result<Json<ChangePasswordResponse>, Error> {
    let me = app.signed_in(&hash).await?;
    let current = body.password_named("current_password")?;
    let new = body.password_named("new_password")?;
    let token = body.optional_token("token")?;
    let ended = app
        .change_password(&me, &current, &new, token, &client)
        .await?;
    Ok(Json(ChangePasswordResponse {
        message: "Password changed",
        sessions_ended: ended,
    }))
}
