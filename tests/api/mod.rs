//! The integration suite, compiled twice: into `tests/sqlite.rs` (a fresh
//! SQLite file per test) and `tests/postgres.rs` (a fresh database per test
//! in a throwaway PostgreSQL cluster). Real server on port 0, real HTTP.

pub mod backend;
mod helpers;
mod pg;

mod audit;
mod bad_input;
mod change_password;
mod cli;
mod devices;
mod disable_mfa;
mod drift;
mod durability;
mod enable_mfa;
mod forwarded;
mod group_commit;
mod health;
mod key_rotation;
mod lockout;
mod login;
mod login_2fa;
mod login_batch;
mod migrations;
mod multi_instance;
mod observability;
mod operator;
mod outage;
mod pool;
mod process;
mod purge;
mod qrcode;
mod quirks;
mod recovery;
mod recovery_regen;
mod replay;
mod session;
mod session_batch;
mod sessions_list;
mod signup;
mod upgrade;
mod web;
