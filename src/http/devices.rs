//! The signed-in user's TOTP devices: `GET /me/devices`, `POST /me/devices`
//! (a pending device, for the password), `POST /me/devices/{id}/confirm`
//! (its first code) and `DELETE /me/devices/{id}` (for the password or a
//! current code). Secrets are shown once, when a device is added; never in
//! a listing.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Error;
use super::extract::{Bearer, JsonObject};
use super::openapi::{ErrorBody, PasswordField};
use crate::db::credentials::{self, Credential};
use crate::service::{AppState, Client, DeviceRemoval};

/// The device routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_devices, add_device))
        .routes(routes!(confirm_device))
        .routes(routes!(remove_device))
}

/// Whether a device's codes are accepted yet.
#[derive(Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStatus {
    /// Codes are accepted for login.
    Active,
    /// Added, waiting for its first code; not accepted for login.
    Pending,
}

/// A device as its owner sees it (never its secret).
#[derive(Serialize, ToSchema)]
pub struct DeviceInfo {
    /// For the `{id}` of the other device routes.
    id: i64,
    /// The user's name for it.
    #[schema(example = "work phone")]
    label: String,
    status: DeviceStatus,
    /// The enrollment of /signup or /enable-mfa.
    default: bool,
    /// `SHA1`, `SHA256` or `SHA512`.
    #[schema(example = "SHA1")]
    algorithm: &'static str,
    #[schema(example = 6)]
    digits: u32,
    /// Seconds per code.
    #[schema(example = 30)]
    period: u64,
    /// Unix seconds.
    created_at: i64,
    /// When its first code was accepted (Unix seconds).
    confirmed_at: Option<i64>,
    /// When a code from it was last accepted (Unix seconds).
    last_used_at: Option<i64>,
    /// How far its clock was off at its last accepted code, in seconds
    /// (positive: fast).
    clock_drift_seconds: i64,
    /// A pending device can be confirmed until then (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
}

impl From<&Credential> for DeviceInfo {
    fn from(c: &Credential) -> DeviceInfo {
        DeviceInfo {
            id: c.id,
            label: c.label.clone(),
            status: match c.counts() {
                true => DeviceStatus::Active,
                false => DeviceStatus::Pending,
            },
            default: c.is_default,
            algorithm: c.params.algorithm.as_str(),
            digits: c.params.digits,
            period: c.params.period,
            created_at: c.created_at,
            confirmed_at: c.confirmed_at,
            last_used_at: c.last_used_at,
            clock_drift_seconds: c.drift_steps * c.params.period as i64,
            expires_at: c.pending_expires_at,
        }
    }
}

/// Body of a 200 from GET /me/devices.
#[derive(Serialize, ToSchema)]
pub struct DevicesResponse {
    /// Oldest first; expired pending devices are left out.
    devices: Vec<DeviceInfo>,
}

/// Body of POST /me/devices.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "documents the body; read field by field by JsonObject"
)]
pub struct AddDeviceRequest {
    /// A name for the device, unique among the user's devices: 1–64
    /// characters once trimmed, no control characters.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$",
        example = "work phone"
    )]
    label: String,
    #[schema(inline)]
    password: PasswordField,
}

/// Body of a 201 from POST /me/devices: shown once.
#[derive(Serialize, ToSchema)]
pub struct AddedDeviceResponse {
    id: i64,
    label: String,
    status: DeviceStatus,
    algorithm: &'static str,
    digits: u32,
    period: u64,
    /// `otpauth://` URI for the authenticator app.
    provisioning_uri: String,
    /// The secret in base32, for typing into an app by hand.
    #[schema(example = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")]
    secret: String,
    /// The provisioning URI as a PNG QR image, as a `data:` URI.
    #[schema(example = "data:image/png;base64,iVBORw0KGgo…")]
    qr_code: String,
    /// Seconds left to confirm it (15 minutes).
    #[schema(example = 900)]
    expires_in: i64,
}

/// Body of POST /me/devices/{id}/confirm.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "documents the body; read field by field by JsonObject"
)]
pub struct ConfirmDeviceRequest {
    /// The current code shown by the new device.
    #[schema(min_length = 1, max_length = 64, example = "123456")]
    token: String,
}

/// Body of a 200 from POST /me/devices/{id}/confirm.
#[derive(Serialize, ToSchema)]
pub struct ConfirmedDeviceResponse {
    #[schema(example = "Device confirmed")]
    message: &'static str,
    id: i64,
    /// Ten new single-use codes, shown once: only when this device turned
    /// MFA on.
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_codes: Option<Vec<String>>,
}

/// Body of DELETE /me/devices/{id}: the account's `password`, or `token`, a
/// current TOTP code from any active device; at least one (both: both must
/// be right).
#[derive(ToSchema)]
#[schema(min_properties = 1)]
#[expect(
    dead_code,
    reason = "documents the body; read field by field by JsonObject"
)]
pub struct RemoveDeviceRequest {
    #[schema(inline)]
    password: Option<PasswordField>,
    #[schema(min_length = 1, max_length = 64, example = "123456")]
    token: Option<String>,
}

/// The `{id}` of a device route; anything that is not a number is no device.
fn device_id(path: Result<Path<String>, PathRejection>) -> Result<i64, Error> {
    path.ok()
        .and_then(|Path(id)| id.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or(Error::DeviceNotFound)
}

#[utoipa::path(get, path = "/me/devices", tag = "devices", security(("bearer" = [])),
    responses(
        (status = 200, description = "The user's devices, without their secrets", body = DevicesResponse),
        (status = 401, description = "No valid session token (`unauthorized`)", body = ErrorBody, headers(("WWW-Authenticate" = String))),
    ))]
async fn list_devices(
    State(app): State<AppState>,
    Bearer(hash): Bearer,
) -> Result<Json<DevicesResponse>, Error> {
    let me = app.signed_in(&hash).await?;
    let devices =
        credentials::list_for_user(app.db.reader(), me.session.user_id, app.clock.now()).await?;
    Ok(Json(DevicesResponse {
        devices: devices.iter().map(DeviceInfo::from).collect(),
    }))
}

#[utoipa::path(post, path = "/me/devices", tag = "devices", security(("bearer" = [])),
    request_body = AddDeviceRequest,
    responses(
        (status = 201, description = "A pending device: scan the QR code (or type the secret), then confirm it with its first code within 15 minutes", body = AddedDeviceResponse, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 401, description = "No valid session token (`unauthorized`) or wrong password (`invalid_credentials`)", body = ErrorBody),
        (status = 409, description = "Label taken (`device_label_taken`) or 10 devices already (`too_many_devices`)", body = ErrorBody),
        (status = 429, description = "Locked out after too many wrong passwords (`too_many_attempts`)", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds until the lock ends"))),
    ))]
async fn add_device(
    State(app): State<AppState>,
    client: Client,
    Bearer(hash): Bearer,
    body: JsonObject,
) -> Result<
    (
        StatusCode,
        [(axum::http::HeaderName, &'static str); 1],
        Json<AddedDeviceResponse>,
    ),
    Error,
> {
    let me = app.signed_in(&hash).await?;
    let password = body.password()?;
    let label = body.label("label")?;
    app.check_password(&me.username, &password, &client).await?;
    let added = app
        .add_device(me.subject(), &me.session.username, &label, &client)
        .await?;
    let png = crate::qr::png(&added.provisioning_uri)?;
    let qr_code = format!(
        "data:image/png;base64,{}",
        data_encoding::BASE64.encode(&png)
    );
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(AddedDeviceResponse {
            id: added.id,
            label,
            status: DeviceStatus::Pending,
            algorithm: added.params.algorithm.as_str(),
            digits: added.params.digits,
            period: added.params.period,
            provisioning_uri: added.provisioning_uri,
            secret: added.secret,
            qr_code,
            expires_in: added.expires_in,
        }),
    ))
}

#[utoipa::path(post, path = "/me/devices/{id}/confirm", tag = "devices", security(("bearer" = [])),
    request_body = ConfirmDeviceRequest,
    params(("id" = i64, Path, description = "A device id from GET /me/devices")),
    responses(
        (status = 200, description = "The device is active; with `recovery_codes` when it turned MFA on", body = ConfirmedDeviceResponse),
        (status = 401, description = "No valid session token (`unauthorized`)", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 404, description = "No such device of this user, or it expired (`device_not_found`)", body = ErrorBody),
        (status = 409, description = "Already confirmed (`device_confirmed`)", body = ErrorBody),
        (status = 422, description = "Wrong code (`invalid_code`); or the app ignored the device's algorithm, digits or period (`authenticator_ignored_parameters`)", body = ErrorBody),
    ))]
async fn confirm_device(
    State(app): State<AppState>,
    client: Client,
    Bearer(hash): Bearer,
    id: Result<Path<String>, PathRejection>,
    body: JsonObject,
) -> Result<Json<ConfirmedDeviceResponse>, Error> {
    let me = app.signed_in(&hash).await?;
    let token = body.token("token")?;
    let id = device_id(id)?;
    let recovery_codes = app.confirm_device(me.subject(), id, token, &client).await?;
    Ok(Json(ConfirmedDeviceResponse {
        message: "Device confirmed",
        id,
        recovery_codes,
    }))
}

#[utoipa::path(delete, path = "/me/devices/{id}", tag = "devices", security(("bearer" = [])),
    request_body = RemoveDeviceRequest,
    params(("id" = i64, Path, description = "A device id from GET /me/devices")),
    responses(
        (status = 204, description = "The device is removed; its codes no longer work"),
        (status = 401, description = "No valid session token (`unauthorized`), neither password nor token (`proof_required`), wrong password (`invalid_credentials`) or wrong code (`invalid_otp`)", body = ErrorBody),
        (status = 404, description = "No such device of this user (`device_not_found`)", body = ErrorBody),
        (status = 409, description = "It is the last active device (`last_device`): use /disable-mfa", body = ErrorBody),
        (status = 429, description = "Locked out after too many failures (`too_many_attempts`)", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds until the lock ends"))),
    ))]
async fn remove_device(
    State(app): State<AppState>,
    client: Client,
    Bearer(hash): Bearer,
    id: Result<Path<String>, PathRejection>,
    body: JsonObject,
) -> Result<StatusCode, Error> {
    let me = app.signed_in(&hash).await?;
    let password = body.optional_password()?;
    let token = body.optional_token("token")?;
    let proof = DeviceRemoval::new(password, token).ok_or(Error::ProofRequired)?;
    let id = device_id(id)?;
    app.remove_device(me.subject(), &me.username, id, proof, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
