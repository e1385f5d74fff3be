use reqwest::StatusCode;
use serde_json::json;

use super::helpers::{PASSWORD, assert_error, assert_error_detail, spawn_app};

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn qrcode_returns_a_png_that_is_not_cached() {
    let Some(app) = spawn_app().await else { return };
    app.signup_mfa("alice", PASSWORD).await;
    let resp = app.qrcode("alice", PASSWORD, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-type"), "image/png");
    assert!(
        header(&resp, "cache-control").contains("no-store"),
        "{:?}",
        resp.headers()
    );
    let bytes = resp.bytes().await.unwrap();
    assert!(bytes.starts_with(PNG_MAGIC), "not a PNG");
    assert!(bytes.len() > 100, "suspiciously small PNG");
}

#[tokio::test]
async fn qrcode_format_png_is_the_same_as_the_default() {
    let Some(app) = spawn_app().await else { return };
    app.signup_mfa("alice", PASSWORD).await;
    let resp = app.qrcode("alice", PASSWORD, Some("png")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-type"), "image/png");
    assert!(resp.bytes().await.unwrap().starts_with(PNG_MAGIC));
}

#[tokio::test]
async fn qrcode_format_svg_returns_an_svg_image() {
    let Some(app) = spawn_app().await else { return };
    app.signup_mfa("alice", PASSWORD).await;
    let resp = app.qrcode("alice", PASSWORD, Some("svg")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        header(&resp, "content-type").starts_with("image/svg+xml"),
        "{:?}",
        resp.headers()
    );
    assert!(header(&resp, "cache-control").contains("no-store"));
    let text = resp.text().await.unwrap();
    assert!(
        text.starts_with("<?xml") || text.contains("<svg"),
        "{}",
        &text[..text.len().min(200)]
    );
}

#[tokio::test]
async fn qrcode_username_is_matched_ignoring_case() {
    let Some(app) = spawn_app().await else { return };
    app.signup_mfa("Alice", PASSWORD).await;
    let resp = app.qrcode("aLICE", PASSWORD, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn qrcode_with_a_wrong_password_is_401_invalid_credentials() {
    let Some(app) = spawn_app().await else { return };
    app.signup_mfa("alice", PASSWORD).await;
    let resp = app.qrcode("alice", "wrong password", None).await;
    assert_error_detail(resp, 401, "invalid_credentials", "Invalid credentials").await;
}

#[tokio::test]
async fn qrcode_for_an_unknown_user_is_identical_to_a_wrong_password() {
    let Some(app) = spawn_app().await else { return };
    app.signup_mfa("alice", PASSWORD).await;
    let wrong = app.qrcode("alice", "wrong password", None).await;
    let (ws, wb) = (wrong.status(), wrong.bytes().await.unwrap());
    for user in ["nobody", "no%20such%20user", "a.b"] {
        let resp = app.qrcode(user, PASSWORD, None).await;
        assert_eq!(resp.status(), ws, "{user}");
        assert_eq!(resp.bytes().await.unwrap(), wb, "{user}");
    }
    assert_eq!(ws, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn qrcode_for_a_user_without_mfa_is_409_mfa_disabled() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let resp = app.qrcode("alice", PASSWORD, None).await;
    assert_error_detail(resp, 409, "mfa_disabled", "MFA is not enabled").await;
}

#[tokio::test]
async fn qrcode_for_a_user_without_mfa_and_a_wrong_password_is_401() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let resp = app.qrcode("alice", "wrong password", None).await;
    assert_error(resp, 401, "invalid_credentials").await;
}

#[tokio::test]
async fn qrcode_after_confirmation_is_409_mfa_confirmed() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.full_login("alice", PASSWORD, &e.secret).await;
    let resp = app.qrcode("alice", PASSWORD, None).await;
    assert_error(resp, 409, "mfa_confirmed").await;
    let resp = app.qrcode("alice", PASSWORD, Some("svg")).await;
    assert_error(resp, 409, "mfa_confirmed").await;
}

#[tokio::test]
async fn qrcode_without_a_password_is_422() {
    let Some(app) = spawn_app().await else { return };
    app.signup_mfa("alice", PASSWORD).await;
    let resp = app.post_json("/qrcode/alice", &json!({})).await;
    let body = assert_error(resp, 422, "invalid_input").await;
    assert!(
        body["detail"].as_str().unwrap().starts_with("password"),
        "{body}"
    );
}

#[tokio::test]
async fn qrcode_without_a_body_is_refused_with_a_4xx() {
    let Some(app) = spawn_app().await else { return };
    app.signup_mfa("alice", PASSWORD).await;
    // The seed's body-less request: no longer enough to see the secret.
    let resp = app
        .client
        .post(app.url("/qrcode/alice"))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert!([400, 415, 422].contains(&status), "status {status}");
    super::helpers::assert_json_content_type(&resp);
}

#[tokio::test]
async fn qrcode_with_an_unknown_format_is_422_naming_format() {
    let Some(app) = spawn_app().await else { return };
    app.signup_mfa("alice", PASSWORD).await;
    for f in ["gif", "jpeg", "SVGZ"] {
        let resp = app.qrcode("alice", PASSWORD, Some(f)).await;
        let body = assert_error(resp, 422, "invalid_input").await;
        assert!(
            body["detail"].as_str().unwrap().starts_with("format"),
            "{f:?}: {body}"
        );
    }
}

#[tokio::test]
async fn qrcode_after_mfa_is_re_enabled_shows_the_new_enrollment() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.full_login("alice", PASSWORD, &e.secret).await;
    app.advance(30);
    let resp = app
        .disable_mfa("alice", PASSWORD, &app.code_now(&e.secret))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        app.enable_mfa("alice", PASSWORD).await.status(),
        StatusCode::OK
    );
    let resp = app.qrcode("alice", PASSWORD, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
}
