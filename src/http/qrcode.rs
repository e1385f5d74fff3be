//! `POST /qrcode/{username}`: the enrollment QR image, for the account's
//! password, only until the first TOTP code is accepted (after that it would
//! let a password alone clone the second factor).

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::Error;
use super::extract::JsonObject;
use crate::auth::totp;
use crate::db::credentials;
use crate::domain::{Password, Username, password};
use crate::service::AppState;

/// `POST /qrcode/{username}`.
pub fn router() -> Router<AppState> {
    Router::new().route("/qrcode/{username}", post(qrcode))
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

async fn qrcode(
    State(app): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    RawQuery(query): RawQuery,
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
    let user = app.check_password(&username, &password).await?;
    let credential = credentials::find_for_user(app.db.reader(), user.id)
        .await?
        .ok_or(Error::MfaNotEnabled)?;
    if credential.confirmed_at.is_some() {
        return Err(Error::MfaConfirmed);
    }
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
