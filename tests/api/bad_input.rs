use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestRunner};
use serde_json::{Value, json};

use super::helpers::{
    PASSWORD, TestApp, assert_error, assert_error_detail, assert_json_content_type, spawn_app,
};

/// Every JSON POST route with a valid body and the type of each field.
fn routes() -> Vec<(&'static str, Value)> {
    vec![
        (
            "/signup",
            json!({"username": "alice", "password": PASSWORD, "enable_mfa": false}),
        ),
        ("/login", json!({"username": "alice", "password": PASSWORD})),
        (
            "/login-2fa",
            json!({"username": "alice", "token": "123456", "mfa_token": "A".repeat(43)}),
        ),
        ("/qrcode/alice", json!({"password": PASSWORD})),
        (
            "/disable-mfa",
            json!({"username": "alice", "password": PASSWORD, "token": "123456"}),
        ),
        (
            "/enable-mfa",
            json!({"username": "alice", "password": PASSWORD}),
        ),
    ]
}

const MARKER: &str = "zebra-sekrit-8675309";
const MARKER_NUMBER: i64 = 31_337_424_242;

/// Wrong-typed values for a field, each carrying a distinctive marker.
fn wrong_values(valid: &Value) -> Vec<Value> {
    match valid {
        Value::Bool(_) => vec![
            json!(MARKER),
            json!(MARKER_NUMBER),
            json!([MARKER]),
            Value::Null,
        ],
        _ => vec![
            json!(MARKER_NUMBER),
            json!(true),
            json!([MARKER]),
            json!({"x": MARKER}),
            Value::Null,
        ],
    }
}

fn assert_no_marker(body: &Value) {
    let text = body.to_string();
    assert!(!text.contains(MARKER), "submitted value echoed: {text}");
    assert!(
        !text.contains(&MARKER_NUMBER.to_string()),
        "submitted value echoed: {text}"
    );
}

#[tokio::test]
async fn malformed_json_is_400_bad_request_on_every_route() {
    let Some(app) = spawn_app().await else { return };
    for (path, _) in routes() {
        for raw in [
            &b"{\"username\": \"alice\","[..],
            b"{username: alice}",
            b"",
            b"{\"a\":1}}",
            b"\xff\xfe{}",
        ] {
            let resp = app
                .post_raw(path, raw.to_vec(), Some("application/json"))
                .await;
            assert_eq!(
                resp.status().as_u16(),
                400,
                "{path} {:?}",
                String::from_utf8_lossy(raw)
            );
            assert_error(resp, 400, "bad_request").await;
        }
    }
}

#[tokio::test]
async fn json_that_is_not_an_object_is_422_naming_the_body() {
    let Some(app) = spawn_app().await else { return };
    for (path, _) in routes() {
        for raw in [
            "[]",
            "\"x\"",
            "1",
            "null",
            "true",
            "[{\"username\":\"alice\"}]",
        ] {
            let resp = app
                .post_raw(path, raw.as_bytes().to_vec(), Some("application/json"))
                .await;
            let body = assert_error(resp, 422, "invalid_input").await;
            let detail = body["detail"].as_str().unwrap();
            assert!(detail.starts_with("body"), "{path} {raw}: {detail}");
        }
    }
}

#[tokio::test]
async fn a_wrongly_typed_field_is_422_naming_the_field_without_echoing_the_value() {
    let Some(app) = spawn_app().await else { return };
    for (path, valid) in routes() {
        for (field, value) in valid.as_object().unwrap() {
            for wrong in wrong_values(value) {
                let mut body = valid.clone();
                body[field] = wrong.clone();
                let resp = app.post_json(path, &body).await;
                let got = assert_error(resp, 422, "invalid_input").await;
                let detail = got["detail"].as_str().unwrap();
                assert!(
                    detail.starts_with(&format!("{field}: "))
                        || detail.starts_with(&format!("{field} ")),
                    "{path} {field}={wrong}: {detail}"
                );
                assert_no_marker(&got);
            }
        }
    }
}

#[tokio::test]
async fn a_missing_required_field_is_422_naming_the_field() {
    let Some(app) = spawn_app().await else { return };
    for (path, valid) in routes() {
        for field in valid.as_object().unwrap().keys() {
            if field == "enable_mfa" {
                continue; // optional
            }
            let mut body = valid.clone();
            body.as_object_mut().unwrap().remove(field);
            let resp = app.post_json(path, &body).await;
            let got = assert_error(resp, 422, "invalid_input").await;
            let detail = got["detail"].as_str().unwrap();
            assert!(
                detail.starts_with(field.as_str()),
                "{path} without {field}: {detail}"
            );
        }
    }
}

#[tokio::test]
async fn an_out_of_bounds_password_is_not_echoed() {
    let Some(app) = spawn_app().await else { return };
    let long = format!("{MARKER}{}", "x".repeat(300));
    for pw in [long.as_str(), "zebra"] {
        let resp = app.signup("alice", pw, false).await;
        let body = assert_error(resp, 422, "invalid_input").await;
        assert!(!body.to_string().contains(pw), "password echoed: {body}");
    }
}

#[tokio::test]
async fn a_missing_or_non_json_content_type_is_415() {
    let Some(app) = spawn_app().await else { return };
    for (path, valid) in routes() {
        let bytes = serde_json::to_vec(&valid).unwrap();
        for ct in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
        ] {
            let resp = app.post_raw(path, bytes.clone(), ct).await;
            assert_error(resp, 415, "unsupported_media_type").await;
        }
    }
}

#[tokio::test]
async fn json_with_a_charset_parameter_is_accepted() {
    let Some(app) = spawn_app().await else { return };
    let body = serde_json::to_vec(&json!({"username": "alice", "password": PASSWORD})).unwrap();
    let resp = app
        .post_raw("/signup", body, Some("application/json; charset=utf-8"))
        .await;
    assert_eq!(resp.status().as_u16(), 201);
}

#[tokio::test]
async fn a_body_over_16_kib_is_413_payload_too_large() {
    let Some(app) = spawn_app().await else { return };
    for (path, valid) in routes() {
        let mut body = valid.clone();
        body["padding"] = json!("p".repeat(17 * 1024));
        let resp = app.post_json(path, &body).await;
        assert_error(resp, 413, "payload_too_large").await;
    }
    // Just under the limit is fine (extra fields are ignored).
    let mut body = json!({"username": "alice", "password": PASSWORD});
    body["padding"] = json!("p".repeat(15 * 1024));
    assert_eq!(app.post_json("/signup", &body).await.status().as_u16(), 201);
}

#[tokio::test]
async fn an_unknown_route_is_a_json_404() {
    let Some(app) = spawn_app().await else { return };
    for path in ["/nope", "/signup/extra", "/qrcode", "/login-2fa/x"] {
        let resp = app.get(path).await;
        assert_error_detail(resp, 404, "not_found", "Not Found").await;
        let resp = app.post_json(path, &json!({})).await;
        let status = resp.status().as_u16();
        assert!(status == 404 || status == 405, "POST {path}: {status}");
        assert_json_content_type(&resp);
    }
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405() {
    let Some(app) = spawn_app().await else { return };
    for path in [
        "/login",
        "/signup",
        "/login-2fa",
        "/disable-mfa",
        "/enable-mfa",
        "/qrcode/alice",
    ] {
        let resp = app.get(path).await;
        assert_error_detail(resp, 405, "method_not_allowed", "Method Not Allowed").await;
    }
    let resp = app.client.delete(app.url("/me")).send().await.unwrap();
    assert_error(resp, 405, "method_not_allowed").await;
    let resp = app
        .client
        .put(app.url("/login"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn huge_and_odd_values_never_cause_a_5xx() {
    let Some(app) = spawn_app().await else { return };
    let odd = [
        json!({"username": "a".repeat(10_000), "password": PASSWORD}),
        json!({"username": "alice", "password": "\u{0}".repeat(20)}),
        json!({"username": "alice", "password": "🔑".repeat(300)}),
        json!({"username": 1e308, "password": -0.0}),
        json!({"username": {"$ne": null}, "password": {"$gt": ""}}),
        json!({"username": "alice' OR '1'='1", "password": "' OR 1=1 --"}),
        json!({"username": "alice", "token": "9".repeat(64), "mfa_token": "A".repeat(10_000), "password": PASSWORD}),
    ];
    for (path, _) in routes() {
        for body in &odd {
            let resp = app.post_json(path, body).await;
            let status = resp.status().as_u16();
            assert!(status < 500, "{path} {body}: {status}");
            assert_json_content_type(&resp);
        }
    }
    // Deeply nested JSON.
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let resp = app
        .post_raw("/signup", deep.into_bytes(), Some("application/json"))
        .await;
    assert!(resp.status().as_u16() < 500);
}

/// JSON-ish strings: arbitrary text, near-JSON text and real JSON objects
/// built from the routes' field names.
fn jsonish() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        ".{0,40}".prop_map(Value::String),
        "[0-9 ]{0,10}".prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let key = prop_oneof![
        Just("username".to_string()),
        Just("password".to_string()),
        Just("enable_mfa".to_string()),
        Just("token".to_string()),
        Just("mfa_token".to_string()),
        "[a-z_]{1,10}",
    ];
    let object = prop::collection::btree_map(key, value, 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect()).to_string());
    prop_oneof![
        3 => object,
        1 => ".{0,200}",
        1 => r#"\{( ?"[a-z_]{0,9}" ?: ?([0-9]{0,6}|"[^"\\]{0,12}"|true|null|\[|\{),?){0,4}\}?"#,
    ]
}

#[test]
fn arbitrary_json_ish_bodies_never_cause_a_5xx() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some(app): Option<TestApp> = rt.block_on(async {
        let app = spawn_app().await?;
        app.signup_mfa("alice", PASSWORD).await;
        Some(app)
    }) else {
        return;
    };
    let mut runner = TestRunner::new(PropConfig {
        cases: 64,
        failure_persistence: None,
        ..PropConfig::default()
    });
    let result = runner.run(&jsonish(), |body| {
        rt.block_on(async {
            for path in ["/signup", "/login-2fa"] {
                let resp = app
                    .post_raw(path, body.clone().into_bytes(), Some("application/json"))
                    .await;
                let status = resp.status().as_u16();
                let ct_ok = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("application/json"));
                let text = resp.text().await.unwrap();
                prop_assert!(status < 500, "{} {:?}: {} {}", path, body, status, text);
                prop_assert!(ct_ok, "{} {:?}: not JSON content type", path, body);
                prop_assert!(
                    serde_json::from_str::<Value>(&text).is_ok(),
                    "{} {:?}: body {}",
                    path,
                    body,
                    text
                );
            }
            Ok::<(), proptest::test_runner::TestCaseError>(())
        })
    });
    drop(app);
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    result.unwrap();
}
