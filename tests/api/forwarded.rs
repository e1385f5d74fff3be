//! `--trusted-proxy`: behind the reverse proxies the operator names, the
//! client recorded in the session list and the audit trail is the one their
//! `X-Forwarded-For` names; without the flag, or from any other peer, the
//! header is ignored and the TCP peer is recorded, so a client cannot forge
//! its address. (Parsing the header hop by hop: `src/http/forwarded.rs`.)

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;

use twofactor::config::Config;

use super::helpers::{PASSWORD, TestApp, assert_ok_json, spawn_app, spawn_app_with};

/// What a client sent itself (`1.2.3.4`) and what the proxy in front of the
/// service appended: the address it was reached from.
const FORWARDED: &str = "1.2.3.4, 203.0.113.7";

/// `app`'s client, sending `X-Forwarded-For: FORWARDED` on every request.
fn forwarding(app: &mut TestApp) {
    let mut headers = HeaderMap::new();
    headers.insert("x-forwarded-for", HeaderValue::from_static(FORWARDED));
    app.client = reqwest::Client::builder()
        .no_proxy()
        .default_headers(headers)
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("http client");
}

/// The client addresses of the current session and of the newest event
/// of the account `bearer` belongs to.
async fn recorded(app: &TestApp, bearer: &str) -> (String, String) {
    let sessions = assert_ok_json(app.sessions(bearer).await).await;
    let current = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap_or_else(|| panic!("no current session in {sessions}"))
        .clone();
    let events = assert_ok_json(app.get_with("/me/events", bearer).await).await;
    let newest = events["events"][0].clone();
    let addr = |v: &Value| {
        v["client_addr"]
            .as_str()
            .unwrap_or_else(|| panic!("no client_addr in {v}"))
            .to_owned()
    };
    (addr(&current), addr(&newest))
}

/// Asserts that the session of `bearer` and its account's newest event
/// have the TCP peer (`127.0.0.1:PORT`), not the forwarded client.
async fn assert_tcp_peer_recorded(app: &TestApp, bearer: &str) {
    let (session, event) = recorded(app, bearer).await;
    for addr in [session, event] {
        assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_client_it_forwarded_for_is_recorded() {
    let Some(mut app) = spawn_app_with(&["--trusted-proxy", "10.0.0.0/8,127.0.0.1"]).await else {
        return;
    };
    forwarding(&mut app);
    app.signup_plain("alice", PASSWORD).await;
    let bearer = app.plain_login("alice", PASSWORD).await;
    assert_eq!(
        recorded(&app, &bearer).await,
        ("203.0.113.7".to_owned(), "203.0.113.7".to_owned())
    );

    // A second-factor login too (on PostgreSQL, the batched write).
    let enrollment = app.signup_mfa("bob", PASSWORD).await;
    let bearer = app.full_login("bob", PASSWORD, &enrollment.secret).await;
    assert_eq!(
        recorded(&app, &bearer).await,
        ("203.0.113.7".to_owned(), "203.0.113.7".to_owned())
    );
}

#[tokio::test]
async fn without_a_trusted_proxy_a_forwarded_header_is_ignored() {
    let Some(mut app) = spawn_app().await else {
        return;
    };
    forwarding(&mut app);
    let enrollment = app.signup_mfa("alice", PASSWORD).await;
    let bearer = app.full_login("alice", PASSWORD, &enrollment.secret).await;
    assert_tcp_peer_recorded(&app, &bearer).await;
}

#[tokio::test]
async fn a_peer_outside_the_trusted_ranges_cannot_forward() {
    let Some(mut app) = spawn_app_with(&["--trusted-proxy", "10.0.0.0/8"]).await else {
        return;
    };
    forwarding(&mut app);
    app.signup_plain("alice", PASSWORD).await;
    let bearer = app.plain_login("alice", PASSWORD).await;
    assert_tcp_peer_recorded(&app, &bearer).await;
}

#[test]
fn a_trusted_proxy_that_is_not_an_address_or_a_range_is_refused_at_start() {
    let parse = |proxy: &str| {
        Config::try_parse_from(["--encryption-key-file", "k", "--trusted-proxy", proxy])
    };
    assert_eq!(parse("10.0.0.0/8, ::1").unwrap().trusted_proxies.len(), 2);
    for bad in ["localhost", "10.0.0.0/33", "10.0.0.1:80", "10.0.0.0/8,"] {
        assert!(parse(bad).is_err(), "{bad}");
    }
}
