//! Validated values that cross the wire: each newtype's `parse` is the only
//! way to build it, so a handler holding one knows its rules hold.

pub mod otp;
pub mod password;
pub mod username;

pub use password::Password;
pub use username::Username;
