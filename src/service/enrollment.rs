//! TOTP enrollment: a new sealed secret and a new set of recovery codes.

use crate::db::Conn;
use zeroize::Zeroizing;

use super::Services;
use crate::auth::{recovery, totp};
use crate::db::{self, credentials, recovery_codes};
use crate::http::Error;

/// What the user is shown once at enrollment.
pub struct Enrollment {
    /// `otpauth://` URI for the authenticator app.
    pub provisioning_uri: String,
    /// Ten single-use codes, formatted for display.
    pub recovery_codes: Vec<String>,
}

impl Services {
    /// Enrolls `user_id` inside `conn`'s transaction; 409 if it already has
    /// a credential.
    pub async fn enroll(
        &self,
        conn: &mut Conn,
        user_id: i64,
        username: &str,
    ) -> Result<Enrollment, Error> {
        let secret = Zeroizing::new(totp::generate_secret());
        let sealed = self.sealer.seal(user_id, secret.as_slice());
        credentials::insert(conn, user_id, &sealed, &self.totp, self.clock.now())
            .await
            .map_err(|e| {
                if db::is_unique_violation(&e) {
                    Error::MfaAlreadyEnabled
                } else {
                    e.into()
                }
            })?;
        let (codes, stored) = recovery::generate_set();
        recovery_codes::insert_set(conn, user_id, &stored).await?;
        Ok(Enrollment {
            provisioning_uri: totp::provisioning_uri(
                &self.issuer,
                username,
                secret.as_slice(),
                &self.totp,
            ),
            recovery_codes: codes.iter().map(|c| c.display()).collect(),
        })
    }
}
