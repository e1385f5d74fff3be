//! Request extractors whose rejections use our error format: a JSON object
//! body read field by field (so a `detail` can name the field without ever
//! echoing its value, as serde's messages would), and the bearer token.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde_json::{Map, Value};

use super::error::Error;
use crate::auth::tokens::{self, TokenKey};
use crate::domain::{Password, Username, password, username};
use crate::service::{AppState, Client};

/// Longest string accepted for a code or token field.
const MAX_TOKEN_FIELD: usize = 64;

/// Longest device label, in characters.
pub const MAX_LABEL: usize = 64;

/// A request body that is a JSON object.
pub struct JsonObject(Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(Error::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| match rejection {
                BytesRejection::FailedToBufferBody(_) if is_length_limit(&rejection) => {
                    Error::PayloadTooLarge
                }
                _ => Error::BadRequest,
            })?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(map)),
            Ok(_) => Err(Error::invalid("body", "must be a JSON object")),
            Err(_) => Err(Error::BadRequest),
        }
    }
}

fn is_length_limit(rejection: &BytesRejection) -> bool {
    rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE
}

fn is_json(value: Option<&header::HeaderValue>) -> bool {
    let Some(mime) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = mime.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

impl JsonObject {
    /// A required string field.
    pub fn string(&self, field: &'static str) -> Result<&str, Error> {
        match self.0.get(field) {
            None => Err(Error::invalid(field, "is required")),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(Error::invalid(field, "must be a string")),
        }
    }

    /// The `username` field, validated.
    pub fn username(&self) -> Result<Username, Error> {
        Username::parse(self.string("username")?).ok_or(Error::invalid("username", username::RULE))
    }

    /// The `password` field, validated.
    pub fn password(&self) -> Result<Password, Error> {
        Password::parse(self.string("password")?).ok_or(Error::invalid("password", password::RULE))
    }

    /// A password field other than `password`, validated.
    pub fn password_named(&self, field: &'static str) -> Result<Password, Error> {
        Password::parse(self.string(field)?).ok_or(Error::invalid(field, password::RULE))
    }

    /// Whether the body has `field` with a value other than `null`.
    fn present(&self, field: &str) -> bool {
        self.0.get(field).is_some_and(|v| !v.is_null())
    }

    /// An optional code or token field (absent or `null`: `None`).
    pub fn optional_token(&self, field: &'static str) -> Result<Option<&str>, Error> {
        match self.present(field) {
            true => self.token(field).map(Some),
            false => Ok(None),
        }
    }

    /// The optional `password` field, validated (absent or `null`: `None`).
    pub fn optional_password(&self) -> Result<Option<Password>, Error> {
        match self.present("password") {
            true => self.password().map(Some),
            false => Ok(None),
        }
    }

    /// A device label: 1 to 64 characters once trimmed, none of them a
    /// control character.
    pub fn label(&self, field: &'static str) -> Result<String, Error> {
        let label = self.string(field)?.trim();
        let count = label.chars().count();
        if count == 0 || count > MAX_LABEL || label.chars().any(char::is_control) {
            return Err(Error::invalid(
                field,
                "must be 1 to 64 printable characters",
            ));
        }
        Ok(label.to_owned())
    }

    /// A code or token field: a non-empty string of bounded length.
    pub fn token(&self, field: &'static str) -> Result<&str, Error> {
        let s = self.string(field)?;
        // Characters, as the OpenAPI document (JSON Schema maxLength) counts them.
        if s.is_empty() || s.chars().count() > MAX_TOKEN_FIELD {
            return Err(Error::invalid(field, "must be 1 to 64 characters"));
        }
        Ok(s)
    }

    /// An optional boolean field.
    pub fn bool_or(&self, field: &'static str, default: bool) -> Result<bool, Error> {
        match self.0.get(field) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(Error::invalid(field, "must be a boolean")),
        }
    }
}

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, std::convert::Infallible> {
        let addr = parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|info| app.trusted_proxies.client(info.0, &parts.headers));
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect());
        Ok(Client { addr, user_agent })
    }
}

/// How the store finds the bearer token in `Authorization`.
pub struct Bearer(pub TokenKey);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(Error::Unauthorized)?;
        let (scheme, token) = value.split_once(' ').ok_or(Error::Unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Error::Unauthorized);
        }
        tokens::parse(token.trim())
            .map(Bearer)
            .ok_or(Error::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_recognised() {
        let ok = |s: &'static str| is_json(Some(&header::HeaderValue::from_static(s)));
        assert!(ok("application/json"));
        assert!(ok("application/json; charset=utf-8"));
        assert!(ok("Application/JSON"));
        assert!(!ok("text/plain"));
        assert!(!ok("application/jsonx"));
        assert!(!is_json(None));
    }
}
