//! `POST /signup`: a new account, with TOTP enrolled when `enable_mfa`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Error;
use super::extract::JsonObject;
use super::openapi::{ErrorBody, PasswordField, UsernameField};
use crate::db::{self, users};
use crate::service::{AppState, Client, Subject};

/// `POST /signup`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(signup))
}

/// Body of /signup.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "documents the body; read field by field by JsonObject"
)]
pub struct SignupRequest {
    #[schema(inline)]
    username: UsernameField,
    #[schema(inline)]
    password: PasswordField,
    /// Enroll TOTP now.
    #[schema(default = false, required = false)]
    enable_mfa: bool,
}

/// Body of a 201.
#[derive(Serialize, ToSchema)]
pub struct SignupResponse {
    #[schema(example = "Signup successful")]
    message: &'static str,
    mfa_enabled: bool,
    /// `otpauth://` URI for the authenticator (with `enable_mfa`).
    #[serde(skip_serializing_if = "Option::is_none")]
    provisioning_uri: Option<String>,
    /// Ten single-use codes, shown once (with `enable_mfa`).
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_codes: Option<Vec<String>>,
}

#[utoipa::path(post, path = "/signup", tag = "accounts", request_body = SignupRequest,
    responses(
        (status = 201, description = "Account created", body = SignupResponse),
        (status = 409, description = "Username taken, ignoring case (`user_exists`)", body = ErrorBody),
    ))]
async fn signup(
    State(app): State<AppState>,
    client: Client,
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
    let mut tx = app.db.begin_write().await?;
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
    let subject = Subject {
        username: username.key(),
        user_id: Some(id),
    };
    let detail = Some(format!("mfa={enable_mfa}"));
    app.audit(&mut *tx, &client, subject, "signup", detail)
        .await?;
    let enrollment = match enable_mfa {
        true => {
            let enrollment = app.enroll(&mut tx, id, username.as_str()).await?;
            app.audit(&mut *tx, &client, subject, "mfa.enabled", None)
                .await?;
            Some(enrollment)
        }
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
