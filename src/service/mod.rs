//! The flows' shared steps, between HTTP handlers and the database: checking
//! a password under lockout, checking a second factor and settling it in one
//! transaction, enrolling TOTP, managing devices, recovery codes, passwords
//! and sessions, issuing sessions and challenges.

mod account;
mod audit;
mod devices;
mod enrollment;
mod password_check;
mod second_factor;
mod sessions;

use std::sync::Arc;

use crate::auth::crypto::Sealer;
use crate::auth::lockout::Policy;
use crate::auth::password::Hasher;
use crate::auth::totp::TotpParams;
use crate::clock::Clock;
use crate::db::Db;
use crate::http::forwarded::TrustedProxies;
use crate::metrics::Metrics;

pub use account::SignedIn;
pub use audit::{Client, Subject};
pub use devices::{AddedDevice, DeviceRemoval, MAX_DEVICES, PENDING_TTL};
pub use enrollment::Enrollment;
pub use second_factor::{Accept, Accepted, Checked, Refused, Settled, Settlement, Verified};
pub use sessions::{IssuedToken, PreparedChallenge, PreparedSession, Spend};

/// Everything a request handler needs, shared by all requests.
pub struct Services {
    /// Storage.
    pub db: Db,
    /// Password hashing pool.
    pub hasher: Hasher,
    /// Seals TOTP secrets at rest.
    pub sealer: Sealer,
    /// The service's "now".
    pub clock: Clock,
    /// Issuer shown in authenticator apps.
    pub issuer: String,
    /// Parameters of new enrollments.
    pub totp: TotpParams,
    /// Accepted steps either side of now.
    pub skew: u64,
    /// Largest remembered clock drift of a device, in steps.
    pub max_drift: i64,
    /// Lockout schedule.
    pub lockout: Policy,
    /// Session lifetime in seconds.
    pub session_ttl: i64,
    /// `mfa_token` lifetime in seconds.
    pub mfa_token_ttl: i64,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The reverse proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
}

/// Cheap-to-clone handle given to handlers.
pub type AppState = Arc<Services>;
