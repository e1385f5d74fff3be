//! `POST /enable-mfa` and `POST /disable-mfa`.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Error;
use super::extract::JsonObject;
use super::openapi::{Credentials, ErrorBody, PasswordField, UsernameField};
use crate::db::{credentials, recovery_codes};
use crate::service::{Accept, AppState, Client, Subject};

/// `POST /enable-mfa`, `POST /disable-mfa`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(enable_mfa))
        .routes(routes!(disable_mfa))
}

/// Body of /disable-mfa.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "documents the body; read field by field by JsonObject"
)]
pub struct DisableMfaRequest {
    #[schema(inline)]
    username: UsernameField,
    #[schema(inline)]
    password: PasswordField,
    /// A current TOTP code or an unused recovery code.
    #[schema(min_length = 1, max_length = 64, example = "123456")]
    token: String,
}

/// Body of a 200 from /enable-mfa.
#[derive(Serialize, ToSchema)]
pub struct EnableMfaResponse {
    #[schema(example = "MFA enabled")]
    message: &'static str,
    mfa_enabled: bool,
    provisioning_uri: String,
    recovery_codes: Vec<String>,
}

/// Body of a 200 from /disable-mfa.
#[derive(Serialize, ToSchema)]
pub struct MessageResponse {
    #[schema(example = "MFA disabled successfully")]
    message: &'static str,
}

#[utoipa::path(post, path = "/enable-mfa", tag = "accounts", request_body = Credentials,
    responses(
        (status = 200, description = "Enrolled: provisioning URI and recovery codes, shown once", body = EnableMfaResponse),
        (status = 401, description = "Unknown user or wrong password (`invalid_credentials`)", body = ErrorBody),
        (status = 409, description = "MFA already enabled (`mfa_already_enabled`)", body = ErrorBody),
        (status = 429, description = "Locked out after too many failures (`too_many_attempts`)", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds until the lock ends"))),
    ))]
async fn enable_mfa(
    State(app): State<AppState>,
    client: Client,
    body: JsonObject,
) -> Result<Json<EnableMfaResponse>, Error> {
    let username = body.username()?;
    let password = body.password()?;
    let user = app.check_password(&username, &password, &client).await?;
    if user.mfa_enabled {
        return Err(Error::MfaAlreadyEnabled);
    }
    let subject = Subject {
        username: username.key(),
        user_id: Some(user.id),
    };
    let mut tx = app.db.begin_write().await?;
    let enrollment = app.enroll(&mut tx, user.id, &user.username).await?;
    app.audit(&mut *tx, &client, subject, "mfa.enabled", None)
        .await?;
    tx.commit().await?;
    Ok(Json(EnableMfaResponse {
        message: "MFA enabled",
        mfa_enabled: true,
        provisioning_uri: enrollment.provisioning_uri,
        recovery_codes: enrollment.recovery_codes,
    }))
}

#[utoipa::path(post, path = "/disable-mfa", tag = "accounts", request_body = DisableMfaRequest,
    responses(
        (status = 200, description = "MFA off; every device (pending ones too) and the recovery codes erased", body = MessageResponse),
        (status = 401, description = "Unknown user or wrong password (`invalid_credentials`); wrong, replayed or spent code (`invalid_otp`)", body = ErrorBody),
        (status = 409, description = "MFA already disabled (`mfa_disabled`)", body = ErrorBody),
        (status = 429, description = "Locked out after too many failures (`too_many_attempts`)", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds until the lock ends"))),
    ))]
async fn disable_mfa(
    State(app): State<AppState>,
    client: Client,
    body: JsonObject,
) -> Result<Json<MessageResponse>, Error> {
    let username = body.username()?;
    let password = body.password()?;
    let token = body.token("token")?;
    let user = app.check_password(&username, &password, &client).await?;
    if !user.mfa_enabled {
        return Err(Error::MfaAlreadyDisabled);
    }
    let subject = Subject {
        username: username.key(),
        user_id: Some(user.id),
    };
    let verified = app
        .check_second_factor(subject, user.id, token, Accept::AnyFactor)
        .await?
        .ok_or(Error::MfaAlreadyDisabled)?;
    let mut settled = app
        .settle_second_factor(subject, verified, Error::InvalidOtpForDisable, &client)
        .await?;
    if !credentials::delete_for_user(&mut settled.tx, user.id).await? {
        return Err(Error::MfaAlreadyDisabled);
    }
    recovery_codes::delete_for_user(&mut settled.tx, user.id).await?;
    app.audit(&mut *settled.tx, &client, subject, "mfa.disabled", None)
        .await?;
    settled.tx.commit().await?;
    if settled.recovery_code_used {
        app.metrics.recovery_code_used();
    }
    Ok(Json(MessageResponse {
        message: "MFA disabled successfully",
    }))
}
