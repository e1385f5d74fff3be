//! The OpenAPI document, the offline explorer, metrics and request ids.

use serde_json::Value;

use super::helpers::{spawn_app, wrong_code};

const PASSWORD: &str = "correct horse";

#[tokio::test]
async fn the_openapi_document_describes_every_operation_and_its_field_rules() {
    let Some(app) = spawn_app().await else { return };
    let resp = app.get("/openapi.json").await;
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for (path, method) in [
        ("/signup", "post"),
        ("/qrcode/{username}", "post"),
        ("/login", "post"),
        ("/login-2fa", "post"),
        ("/disable-mfa", "post"),
        ("/enable-mfa", "post"),
        ("/logout", "post"),
        ("/me", "get"),
        ("/me/devices", "get"),
        ("/me/devices", "post"),
        ("/me/devices/{id}/confirm", "post"),
        ("/me/devices/{id}", "delete"),
        ("/me/recovery-codes", "post"),
        ("/change-password", "post"),
        ("/me/sessions", "get"),
        ("/me/sessions/{id}", "delete"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} undocumented"
        );
    }
    let username = &doc["components"]["schemas"]["SignupRequest"]["properties"]["username"];
    assert_eq!(username["maxLength"], 64);
    assert_eq!(username["pattern"], "^[A-Za-z0-9._@+-]+$");
    let login = &doc["paths"]["/login"]["post"]["responses"];
    assert!(login["429"]["headers"]["Retry-After"].is_object());
    assert!(login["422"].is_object() && login["415"].is_object());
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let Some(app) = spawn_app().await else { return };
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let path = path.replace("{username}", "alice").replace("{id}", "1");
        for method in item.as_object().unwrap().keys() {
            let resp = match method.as_str() {
                "get" => app.client.get(app.url(&path)).send().await.unwrap(),
                "post" => app.client.post(app.url(&path)).send().await.unwrap(),
                "delete" => app.client.delete(app.url(&path)).send().await.unwrap(),
                other => panic!("unexpected method {other}"),
            };
            assert!(
                ![404, 405].contains(&resp.status().as_u16()),
                "{method} {path} is documented but not routed"
            );
        }
    }
}

#[tokio::test]
async fn the_explorer_is_served_from_the_binary() {
    let Some(app) = spawn_app().await else { return };
    let page = app.get("/docs/").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"));
    // Every asset comes from this server: no CDN, so it works offline.
    assert!(
        !html.contains("https://"),
        "the explorer page references the network"
    );
    for asset in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-initializer.js",
    ] {
        assert_eq!(
            app.get(&format!("/docs/{asset}")).await.status(),
            200,
            "{asset}"
        );
    }
}

#[tokio::test]
async fn metrics_count_requests_logins_failures_lockouts_and_recovery_codes() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    for _ in 0..5 {
        app.login("bob", "wrong password").await;
    }
    let mfa = app.mfa_token("alice", PASSWORD).await;
    app.login_2fa("alice", &wrong_code(&app, &e.secret), &mfa)
        .await;
    assert_eq!(
        app.login_2fa("alice", &e.recovery_codes[0], &mfa)
            .await
            .status(),
        200
    );

    let resp = app.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = resp.text().await.unwrap();
    for line in [
        r#"twofactor_http_requests_total{method="POST",route="/signup",status="201"} 1"#,
        r#"twofactor_logins_total{factor="password",outcome="failure"} 5"#,
        r#"twofactor_logins_total{factor="recovery_code",outcome="success"} 1"#,
        r#"twofactor_logins_total{factor="second_factor",outcome="failure"} 1"#,
        "twofactor_second_factor_failures_total 1",
        r#"twofactor_lockouts_total{factor="password"} 1"#,
        "twofactor_recovery_codes_used_total 1",
        "twofactor_password_hash_queue_depth 0",
        r#"twofactor_build_info{version="#,
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // Route templates, never raw paths holding usernames.
    app.qrcode("alice", PASSWORD, None).await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(text.contains(r#"route="/qrcode/{username}""#));
    assert!(!text.contains("/qrcode/alice"));
}

#[tokio::test]
async fn a_replayed_code_is_counted_as_a_replay() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let code = app.code_now(&e.secret);
    let first = app.mfa_token("alice", PASSWORD).await;
    assert_eq!(app.login_2fa("alice", &code, &first).await.status(), 200);
    let second = app.mfa_token("alice", PASSWORD).await;
    assert_eq!(app.login_2fa("alice", &code, &second).await.status(), 401);
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(text.contains("twofactor_replays_refused_total 1"), "{text}");
}

#[tokio::test]
async fn a_request_id_is_kept_from_the_client_or_generated() {
    let Some(app) = spawn_app().await else { return };
    let resp = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "proxy-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "proxy-42");
    let resp = app
        .client
        .get(app.url("/nowhere"))
        .header("x-request-id", "not a token")
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
}
