//! A user's TOTP devices beyond the default enrollment: adding a pending
//! device (its secret shown once), confirming it with its first code (which
//! refuses a code made with the standard parameters when the device has
//! others: the app ignored them), and removing one.

use zeroize::Zeroizing;

use super::second_factor::ignores_parameters;
use super::{Accept, Client, Services, Subject};
use crate::auth::recovery;
use crate::auth::totp::{self, TotpParams};
use crate::db::credentials::{self, NewDevice};
use crate::db::{self, recovery_codes, users};
use crate::domain::otp::OtpCode;
use crate::domain::{Password, Username};
use crate::http::Error;

/// How long a new device may wait for its first code, in seconds.
pub const PENDING_TTL: i64 = 15 * 60;

/// Most devices (pending ones included) an account may have.
pub const MAX_DEVICES: i64 = 10;

/// A device just added, to show once.
pub struct AddedDevice {
    /// Its id.
    pub id: i64,
    /// Its parameters.
    pub params: TotpParams,
    /// `otpauth://` URI for the authenticator app.
    pub provisioning_uri: String,
    /// The secret in base32, for typing into an app by hand.
    pub secret: String,
    /// Seconds left to confirm it.
    pub expires_in: i64,
}

/// What proves a device removal is wanted by the account's owner: the
/// password, a current TOTP code from a device that counts, or both (then
/// both must be right). [`DeviceRemoval::new`] refuses neither.
pub struct DeviceRemoval<'a> {
    password: Option<Password>,
    code: Option<&'a str>,
}

impl<'a> DeviceRemoval<'a> {
    /// `None` when neither is given.
    pub fn new(password: Option<Password>, code: Option<&'a str>) -> Option<DeviceRemoval<'a>> {
        (password.is_some() || code.is_some()).then_some(DeviceRemoval { password, code })
    }
}

impl Services {
    /// Adds a pending device labelled `label` for `user_id` (whose
    /// registered name is `username`).
    pub async fn add_device(
        &self,
        subject: Subject<'_>,
        username: &str,
        label: &str,
        client: &Client,
    ) -> Result<AddedDevice, Error> {
        let user_id = subject.user_id.ok_or(Error::Unauthorized)?;
        let secret = Zeroizing::new(totp::generate_secret());
        let sealed = self.sealer.seal(user_id, secret.as_slice());
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        users::lock(&mut tx, user_id).await?;
        credentials::purge_expired(&mut *tx, now).await?;
        if credentials::count_all(&mut *tx, user_id).await? >= MAX_DEVICES {
            return Err(Error::TooManyDevices);
        }
        let device = NewDevice {
            user_id,
            label,
            sealed: &sealed,
            params: &self.totp,
            now,
            expires_at: now + PENDING_TTL,
        };
        let id = credentials::insert_pending(&mut tx, &device)
            .await
            .map_err(|e| match db::is_unique_violation(&e) {
                true => Error::DeviceLabelTaken,
                false => e.into(),
            })?;
        let detail = Some(format!("device={id}"));
        self.audit(&mut *tx, client, subject, "device.added", detail)
            .await?;
        tx.commit().await?;
        self.metrics.account_action("device_added");
        Ok(AddedDevice {
            id,
            params: self.totp,
            provisioning_uri: totp::provisioning_uri(
                &self.issuer,
                username,
                secret.as_slice(),
                &self.totp,
            ),
            secret: totp::encode_secret(secret.as_slice()),
            expires_in: PENDING_TTL,
        })
    }

    /// Confirms device `id` with its first code. When this turns MFA on
    /// (no other device counted), returns a new set of recovery codes.
    pub async fn confirm_device(
        &self,
        subject: Subject<'_>,
        id: i64,
        token: &str,
        client: &Client,
    ) -> Result<Option<Vec<String>>, Error> {
        let user_id = subject.user_id.ok_or(Error::Unauthorized)?;
        let now = self.clock.now();
        let device = credentials::find(self.db.reader(), user_id, id, now)
            .await?
            .ok_or(Error::DeviceNotFound)?;
        if device.confirmed_at.is_some() {
            return Err(Error::DeviceAlreadyConfirmed);
        }
        let secret = self.open_secret(&device)?;
        let params = &device.params;
        let at = self.totp_now();
        let step = OtpCode::parse(token, params.digits)
            .and_then(|code| totp::verify(params, &secret, &code, at, self.skew, None));
        let Some(step) = step else {
            if ignores_parameters(params, &secret, token, at, self.skew) {
                let detail = Some(format!("device={id}"));
                let mut tx = self.db.begin_write().await?;
                self.audit(
                    &mut *tx,
                    client,
                    subject,
                    "device.parameters_ignored",
                    detail,
                )
                .await?;
                tx.commit().await?;
                self.metrics.account_action("parameters_ignored");
                return Err(Error::AuthenticatorIgnoredParameters);
            }
            return Err(Error::InvalidConfirmationCode);
        };
        let offset = step as i64 - totp::time_step(params, at) as i64;
        let drift = offset.clamp(-self.max_drift, self.max_drift);
        let step = i64::try_from(step).map_err(|e| Error::Internal(e.into()))?;
        let mut tx = self.db.begin_write().await?;
        users::lock(&mut tx, user_id).await?;
        let was_on = credentials::count_counting(&mut *tx, user_id).await? > 0;
        if !credentials::confirm_pending(&mut tx, user_id, id, step, drift, now).await? {
            return Err(Error::DeviceNotFound);
        }
        let detail = Some(format!("device={id}"));
        self.audit(
            &mut *tx,
            client,
            subject,
            "device.confirmed",
            detail.clone(),
        )
        .await?;
        if device.is_default {
            self.audit(&mut *tx, client, subject, "mfa.confirmed", None)
                .await?;
        }
        let codes = match was_on {
            true => None,
            false => {
                let (codes, stored) = recovery::generate_set();
                recovery_codes::delete_for_user(&mut tx, user_id).await?;
                recovery_codes::insert_set(&mut tx, user_id, &stored).await?;
                self.audit(&mut *tx, client, subject, "mfa.enabled", detail)
                    .await?;
                Some(codes.iter().map(|c| c.display()).collect())
            }
        };
        tx.commit().await?;
        self.metrics.account_action("device_confirmed");
        Ok(codes)
    }

    /// Removes device `id`, proven by the password or a current code. The
    /// last device that counts can't be removed this way (that would turn
    /// MFA off without a second factor): /disable-mfa does that.
    pub async fn remove_device(
        &self,
        subject: Subject<'_>,
        username: &Username,
        id: i64,
        proof: DeviceRemoval<'_>,
        client: &Client,
    ) -> Result<(), Error> {
        let user_id = subject.user_id.ok_or(Error::Unauthorized)?;
        let now = self.clock.now();
        let device = credentials::find(self.db.reader(), user_id, id, now)
            .await?
            .ok_or(Error::DeviceNotFound)?;
        let last = |count: i64| device.counts() && count <= 1;
        if last(credentials::count_counting(self.db.reader(), user_id).await?) {
            return Err(Error::LastDevice);
        }
        if let Some(password) = &proof.password {
            self.check_password(username, password, client).await?;
        }
        let mut tx = match proof.code {
            None => self.db.begin_write().await?,
            Some(token) => {
                let checked = self
                    .check_second_factor(subject, user_id, token, Accept::TotpOnly)
                    .await?
                    .ok_or(Error::InvalidOtp)?;
                self.settle_second_factor(subject, checked, Error::InvalidOtp, client)
                    .await?
                    .tx
            }
        };
        // Counted again under the account's lock: two concurrent removals
        // must not take away both of the last two devices.
        users::lock(&mut tx, user_id).await?;
        let before = credentials::count_counting(&mut *tx, user_id).await?;
        if last(before) {
            return Err(Error::LastDevice);
        }
        if !credentials::delete(&mut tx, user_id, id).await? {
            return Err(Error::DeviceNotFound);
        }
        let detail = Some(format!("device={id}"));
        self.audit(&mut *tx, client, subject, "device.removed", detail)
            .await?;
        tx.commit().await?;
        self.metrics.account_action("device_removed");
        Ok(())
    }
}
