//! The integration suite: a real server on port 0, a fresh SQLite file per
//! test, real HTTP.

mod helpers;

mod bad_input;
mod disable_mfa;
mod enable_mfa;
mod health;
mod lockout;
mod login;
mod login_2fa;
mod process;
mod qrcode;
mod recovery;
mod replay;
mod session;
mod signup;
