//! The one error type of the HTTP layer and its JSON form
//! `{"detail": "...", "code": "..."}`. 5xx bodies are generic; their causes
//! are logged here, never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::password::HashError;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body is not valid JSON.
    #[error("malformed JSON body")]
    BadRequest,
    /// Valid JSON breaking a rule; names the field, never echoes its value.
    #[error("invalid input")]
    InvalidInput {
        /// The offending field.
        field: &'static str,
        /// The rule it breaks.
        problem: &'static str,
    },
    /// Body over the size limit.
    #[error("payload too large")]
    PayloadTooLarge,
    /// Content-Type is not JSON.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// No such route.
    #[error("not found")]
    NotFound,
    /// Route exists, method doesn't.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Unknown user or wrong password (indistinguishable by design).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Signup of a taken username.
    #[error("user exists")]
    UserExists,
    /// /qrcode for an account without MFA.
    #[error("MFA not enabled")]
    MfaNotEnabled,
    /// /disable-mfa for an account without MFA.
    #[error("MFA already disabled")]
    MfaAlreadyDisabled,
    /// /enable-mfa for an account with MFA.
    #[error("MFA already enabled")]
    MfaAlreadyEnabled,
    /// /qrcode after the first code was accepted.
    #[error("MFA confirmed")]
    MfaConfirmed,
    /// Wrong, replayed or spent code on /login-2fa.
    #[error("invalid OTP")]
    InvalidOtp,
    /// Wrong, replayed or spent code on /disable-mfa.
    #[error("invalid OTP for disabling MFA")]
    InvalidOtpForDisable,
    /// Missing, unknown, expired or foreign `mfa_token`.
    #[error("invalid MFA token")]
    InvalidMfaToken,
    /// A code whose step matches the standard SHA1/6/30 parameters instead
    /// of the device's own: the authenticator app ignored them.
    #[error("authenticator ignored parameters")]
    AuthenticatorIgnoredParameters,
    /// A wrong first code when confirming a device.
    #[error("invalid confirmation code")]
    InvalidConfirmationCode,
    /// No such device of this user (or an expired pending one).
    #[error("device not found")]
    DeviceNotFound,
    /// The device has been confirmed already.
    #[error("device already confirmed")]
    DeviceAlreadyConfirmed,
    /// The account already has a device with this label.
    #[error("device label taken")]
    DeviceLabelTaken,
    /// The account has as many devices as allowed.
    #[error("too many devices")]
    TooManyDevices,
    /// Removing the last device that counts would turn MFA off.
    #[error("last device")]
    LastDevice,
    /// Neither the password nor a code given where one is needed.
    #[error("proof required")]
    ProofRequired,
    /// No such session of this user.
    #[error("session not found")]
    SessionNotFound,
    /// A new password too easy to guess.
    #[error("weak password")]
    WeakPassword(crate::auth::strength::Weakness),
    /// No valid bearer token.
    #[error("unauthorized")]
    Unauthorized,
    /// The account is locked out for this factor.
    #[error("too many attempts")]
    TooManyAttempts {
        /// Seconds until the lock ends.
        retry_after: u64,
    },
    /// The password-hashing queue is full.
    #[error("busy")]
    Busy,
    /// The database can't be reached.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// A bug or an unexpected failure; logged, answered generically.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    /// Builds an [`Error::InvalidInput`].
    pub fn invalid(field: &'static str, problem: &'static str) -> Error {
        Error::InvalidInput { field, problem }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            Error::BadRequest => (S::BAD_REQUEST, "bad_request", "Body is not valid JSON"),
            Error::InvalidInput { .. } => (S::UNPROCESSABLE_ENTITY, "invalid_input", ""),
            Error::PayloadTooLarge => (
                S::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Body is larger than 16 KiB",
            ),
            Error::UnsupportedMediaType => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Content-Type must be application/json",
            ),
            Error::NotFound => (S::NOT_FOUND, "not_found", "Not Found"),
            Error::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method Not Allowed",
            ),
            Error::InvalidCredentials => (
                S::UNAUTHORIZED,
                "invalid_credentials",
                "Invalid credentials",
            ),
            Error::UserExists => (S::CONFLICT, "user_exists", "User already exists"),
            Error::MfaNotEnabled => (S::CONFLICT, "mfa_disabled", "MFA is not enabled"),
            Error::MfaAlreadyDisabled => (S::CONFLICT, "mfa_disabled", "MFA is already disabled"),
            Error::MfaAlreadyEnabled => {
                (S::CONFLICT, "mfa_already_enabled", "MFA is already enabled")
            }
            Error::MfaConfirmed => (
                S::CONFLICT,
                "mfa_confirmed",
                "MFA is confirmed; the QR code is no longer available",
            ),
            Error::InvalidOtp => (S::UNAUTHORIZED, "invalid_otp", "Invalid OTP"),
            Error::InvalidOtpForDisable => (
                S::UNAUTHORIZED,
                "invalid_otp",
                "Invalid OTP for disabling MFA",
            ),
            Error::InvalidMfaToken => (
                S::UNAUTHORIZED,
                "invalid_mfa_token",
                "Invalid or expired MFA token; log in again",
            ),
            Error::Unauthorized => (S::UNAUTHORIZED, "unauthorized", "Not authenticated"),
            Error::AuthenticatorIgnoredParameters => (
                S::UNPROCESSABLE_ENTITY,
                "authenticator_ignored_parameters",
                "Your authenticator app ignored the requested algorithm, digits or period and \
                 made a standard SHA1, 6-digit, 30-second code instead, so its codes would be \
                 refused; remove this entry from the app and add it with an app that supports \
                 these parameters",
            ),
            Error::InvalidConfirmationCode => (
                S::UNPROCESSABLE_ENTITY,
                "invalid_code",
                "The code does not match this device; enter the current code from the app",
            ),
            Error::DeviceNotFound => (S::NOT_FOUND, "device_not_found", "Device not found"),
            Error::DeviceAlreadyConfirmed => (
                S::CONFLICT,
                "device_confirmed",
                "Device is already confirmed",
            ),
            Error::DeviceLabelTaken => (
                S::CONFLICT,
                "device_label_taken",
                "You already have a device with this label",
            ),
            Error::TooManyDevices => (
                S::CONFLICT,
                "too_many_devices",
                "You have 10 devices; remove one first",
            ),
            Error::LastDevice => (
                S::CONFLICT,
                "last_device",
                "This is your last device; use /disable-mfa to turn MFA off",
            ),
            Error::SessionNotFound => (S::NOT_FOUND, "session_not_found", "Session not found"),
            Error::ProofRequired => (
                S::UNAUTHORIZED,
                "proof_required",
                "Give the password or a current code (token)",
            ),
            Error::WeakPassword(_) => (S::UNPROCESSABLE_ENTITY, "weak_password", ""),
            Error::TooManyAttempts { .. } => (
                S::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "Too many failed attempts; try again later",
            ),
            Error::Busy => (
                S::SERVICE_UNAVAILABLE,
                "busy",
                "Server is busy; try again shortly",
            ),
            Error::Unavailable(_) => (
                S::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service temporarily unavailable",
            ),
            Error::Internal(_) => (
                S::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Error {
        if crate::db::is_unavailable(&err) {
            Error::Unavailable(err)
        } else {
            Error::Internal(anyhow::Error::new(err).context("database query"))
        }
    }
}

impl From<HashError> for Error {
    fn from(err: HashError) -> Error {
        match err {
            HashError::Busy => Error::Busy,
            HashError::Internal(e) => Error::Internal(e),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let detail = match &self {
            Error::InvalidInput { field, problem } => format!("{field}: {problem}"),
            Error::WeakPassword(weakness) => weakness.message().to_owned(),
            _ => message.to_owned(),
        };
        match &self {
            Error::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed")
            }
            Error::Unavailable(cause) => tracing::warn!(error = %cause, "database unavailable"),
            _ => {}
        }
        let mut response =
            (status, Json(json!({ "detail": detail, "code": code }))).into_response();
        let headers = response.headers_mut();
        match self {
            Error::TooManyAttempts { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            Error::Busy | Error::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Error::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
