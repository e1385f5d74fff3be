//! `POST /qrcode/{username}`: the enrollment QR image, for the account's
//! password, only until the first TOTP code is accepted (after that it would
//! let a password alone clone the second factor).

use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Error;
use super::extract::JsonObject;
use super::openapi::{ErrorBody, PasswordField};
use crate::auth::totp;
use crate::db::credentials;
use crate::domain::{Password, Username, password};
use crate::service::{AppState, Client};

/// `POST /qrcode/{username}`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(qrcode))
}

/// Body of /qrcode.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "documents the body; read field by field by JsonObject"
)]
pub struct QrcodeRequest {
    #[schema(inline)]
    password: PasswordField,
}

/// Image format of the QR code (query parameter `format`).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[expect(
    dead_code,
    reason = "documents the query parameter; parsed by parse_format"
)]
pub enum QrFormat {
    /// PNG image (the default).
    Png,
    /// SVG image.
    Svg,
}

enum Format {
    Png,
    Svg,
}

fn parse_format(query: Option<&str>) -> Result<Format, Error> {
    let mut format = Format::Png;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "format" {
            format = match value {
                "png" => Format::Png,
                "svg" => Format::Svg,
                _ => return Err(Error::invalid("format", "must be png or svg")),
            };
        }
    }
    Ok(format)
}

#[utoipa::path(post, path = "/qrcode/{username}", tag = "accounts", request_body = QrcodeRequest,
    params(
        ("username" = String, Path, description = "The account (case-insensitive)"),
        ("format" = inline(Option<QrFormat>), Query, description = "`png` (default) or `svg`"),
    ),
    responses(
        (status = 200, description = "The provisioning URI as a QR image; only until the first code is accepted",
            content((Vec<u8> = "image/png"), (String = "image/svg+xml")),
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 401, description = "Unknown user or wrong password (`invalid_credentials`)", body = ErrorBody),
        (status = 409, description = "MFA not enabled (`mfa_disabled`) or already confirmed (`mfa_confirmed`)", body = ErrorBody),
        (status = 429, description = "Locked out after too many failures (`too_many_attempts`)", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds until the lock ends"))),
    ))]
async fn qrcode(
    State(app): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    RawQuery(query): RawQuery,
    client: Client,
    body: JsonObject,
) -> Result<Response, Error> {
    let format = parse_format(query.as_deref())?;
    let password = Password::parse(body.string("password")?)
        .ok_or(Error::invalid("password", password::RULE))?;
    // A name that can't exist is answered like an unknown one.
    let username = path
        .ok()
        .and_then(|Path(name)| Username::parse(&name))
        .ok_or(Error::InvalidCredentials)?;
    let user = app.check_password(&username, &password, &client).await?;
    // Only the default enrollment (of /signup or /enable-mfa) has a QR code
    // here, and only until its first code; devices added by POST /me/devices
    // show theirs in that answer.
    let credential = match credentials::find_default(app.db.reader(), user.id).await? {
        Some(c) if c.confirmed_at.is_none() => c,
        Some(_) => return Err(Error::MfaConfirmed),
        None if user.mfa_enabled => return Err(Error::MfaConfirmed),
        None => return Err(Error::MfaNotEnabled),
    };
    let secret = app
        .sealer
        .open(
            user.id,
            &credential.sealed.nonce,
            &credential.sealed.ciphertext,
        )
        .map_err(|e| Error::Internal(e.into()))?;
    let uri = totp::provisioning_uri(&app.issuer, &user.username, &secret, &credential.params);
    let (content_type, image) = match format {
        Format::Png => ("image/png", crate::qr::png(&uri)?),
        Format::Svg => ("image/svg+xml", crate::qr::svg(&uri)?.into_bytes()),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        image,
    )
        .into_response())
}
