//! twofactor: password login with TOTP two-factor authentication.

pub mod admin;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod qr;
pub mod service;
pub mod startup;
pub mod telemetry;
