use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::helpers::{
    PASSWORD, assert_error, assert_error_detail, assert_json_content_type,
    assert_recovery_code_shape, enrollment_from, percent_decode, query_param, spawn_app,
    spawn_app_with,
};

async fn created(resp: reqwest::Response) -> Value {
    let status = resp.status();
    assert_json_content_type(&resp);
    let text = resp.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "body: {text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn signup_without_mfa_returns_201_and_only_message_and_flag() {
    let Some(app) = spawn_app().await else { return };
    let body = created(app.signup("alice", PASSWORD, false).await).await;
    assert_eq!(body["message"], "Signup successful");
    assert_eq!(body["mfa_enabled"], false);
    assert!(body.get("provisioning_uri").is_none(), "{body}");
    assert!(body.get("recovery_codes").is_none(), "{body}");
}

#[tokio::test]
async fn signup_without_the_enable_mfa_field_defaults_to_no_mfa() {
    let Some(app) = spawn_app().await else { return };
    let resp = app
        .post_json(
            "/signup",
            &json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    let body = created(resp).await;
    assert_eq!(body["mfa_enabled"], false);
}

#[tokio::test]
async fn signup_with_mfa_returns_a_provisioning_uri_and_ten_recovery_codes() {
    let Some(app) = spawn_app().await else { return };
    let body = created(app.signup("alice", PASSWORD, true).await).await;
    assert_eq!(body["message"], "Signup successful");
    assert_eq!(body["mfa_enabled"], true);
    let enrollment = enrollment_from(&body);
    assert_eq!(enrollment.recovery_codes.len(), 10);
    let distinct: HashSet<_> = enrollment.recovery_codes.iter().collect();
    assert_eq!(distinct.len(), 10, "recovery codes are not distinct");
    for code in &enrollment.recovery_codes {
        assert_recovery_code_shape(code);
    }
}

#[tokio::test]
async fn provisioning_uri_names_issuer_and_user_and_holds_a_160_bit_base32_secret() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let url = url::Url::parse(&e.provisioning_uri).unwrap();
    assert_eq!(url.scheme(), "otpauth");
    assert_eq!(url.host_str(), Some("totp"));
    assert_eq!(percent_decode(url.path()), "/twofactor:alice");
    let secret = query_param(&e.provisioning_uri, "secret").unwrap();
    assert_eq!(secret.len(), 32, "secret {secret}");
    assert!(
        secret
            .chars()
            .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)),
        "secret {secret} is not unpadded upper-case base32"
    );
    assert_eq!(e.secret.len(), 20, "160 bits");
    assert_eq!(
        query_param(&e.provisioning_uri, "issuer").as_deref(),
        Some("twofactor")
    );
    // Defaults are left out.
    for p in ["algorithm", "digits", "period"] {
        assert!(
            query_param(&e.provisioning_uri, p).is_none(),
            "{p} in {}",
            e.provisioning_uri
        );
    }
}

#[tokio::test]
async fn provisioning_uri_percent_encodes_the_issuer_and_states_non_default_parameters() {
    let Some(app) = spawn_app_with(&[
        "--issuer",
        "My Corp",
        "--totp-digits",
        "8",
        "--totp-period",
        "60",
    ])
    .await
    else {
        return;
    };
    let e = app.signup_mfa("bob.smith@example.com", PASSWORD).await;
    let uri = &e.provisioning_uri;
    assert!(!uri.contains(' '), "unencoded space in {uri}");
    let url = url::Url::parse(uri).unwrap();
    assert_eq!(percent_decode(url.path()), "/My Corp:bob.smith@example.com");
    assert_eq!(query_param(uri, "issuer").as_deref(), Some("My Corp"));
    assert_eq!(query_param(uri, "digits").as_deref(), Some("8"));
    assert_eq!(query_param(uri, "period").as_deref(), Some("60"));
    assert!(query_param(uri, "algorithm").is_none(), "{uri}");
    // And the 8-digit, 60 s code from that secret logs in.
    let token = app
        .full_login("bob.smith@example.com", PASSWORD, &e.secret)
        .await;
    assert_eq!(app.me(&token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_enrollment_gets_a_different_secret() {
    let Some(app) = spawn_app().await else { return };
    let a = app.signup_mfa("alice", PASSWORD).await;
    let b = app.signup_mfa("bob", PASSWORD).await;
    assert_ne!(a.secret, b.secret);
    let codes_a: HashSet<_> = a.recovery_codes.iter().collect();
    assert!(b.recovery_codes.iter().all(|c| !codes_a.contains(c)));
}

#[tokio::test]
async fn signup_with_an_existing_username_returns_409_user_exists() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let resp = app.signup("alice", "another password", false).await;
    assert_error_detail(resp, 409, "user_exists", "User already exists").await;
    let resp = app.signup("alice", PASSWORD, true).await;
    assert_error(resp, 409, "user_exists").await;
}

#[tokio::test]
async fn usernames_differing_only_in_ascii_case_are_the_same_account() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("Alice", PASSWORD).await;
    for name in ["alice", "ALICE", "aLiCe"] {
        let resp = app.signup(name, PASSWORD, false).await;
        assert_error_detail(resp, 409, "user_exists", "User already exists").await;
    }
}

#[tokio::test]
async fn the_first_signup_keeps_its_password_after_a_refused_duplicate() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    assert_eq!(
        app.signup("ALICE", "attacker password", false)
            .await
            .status(),
        409
    );
    assert_eq!(app.login("alice", PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(app.login("alice", "attacker password").await.status(), 401);
}

#[tokio::test]
async fn usernames_of_1_and_64_characters_are_accepted() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("a", PASSWORD).await;
    app.signup_plain(&"b".repeat(64), PASSWORD).await;
    app.signup_plain("A.b_c@d+e-9", PASSWORD).await;
}

#[tokio::test]
async fn usernames_of_0_or_65_characters_are_refused_with_422_naming_username() {
    let Some(app) = spawn_app().await else { return };
    for name in [String::new(), "c".repeat(65)] {
        let resp = app.signup(&name, PASSWORD, false).await;
        let body = assert_error(resp, 422, "invalid_input").await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.starts_with("username: "), "{detail}");
    }
}

#[tokio::test]
async fn usernames_with_forbidden_characters_are_refused_with_422() {
    let Some(app) = spawn_app().await else { return };
    for name in [
        "al ice",
        "a/b",
        "älice",
        "名前",
        "a:b",
        "a#b",
        "a?b",
        "a%20",
        "a\u{0}b",
        "a\nb",
        "a\\b",
        "a'b",
        "a\"b",
        "a,b",
        "a;b",
        " alice",
        "alice ",
        "a\u{200b}b",
    ] {
        let resp = app.signup(name, PASSWORD, false).await;
        let body = assert_error(resp, 422, "invalid_input").await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.starts_with("username: "), "{name:?}: {detail}");
    }
}

#[tokio::test]
async fn passwords_of_8_and_256_characters_are_accepted() {
    let Some(app) = spawn_app().await else { return };
    let short = "p".repeat(8);
    let long = "q".repeat(256);
    app.signup_plain("short", &short).await;
    app.signup_plain("long", &long).await;
    assert_eq!(app.login("short", &short).await.status(), StatusCode::OK);
    assert_eq!(app.login("long", &long).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn passwords_of_7_or_257_characters_are_refused_with_422_naming_password() {
    let Some(app) = spawn_app().await else { return };
    for (i, pw) in ["p".repeat(7), "q".repeat(257), String::new()]
        .iter()
        .enumerate()
    {
        let resp = app.signup(&format!("user{i}"), pw, false).await;
        let body = assert_error(resp, 422, "invalid_input").await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.starts_with("password: "), "{detail}");
    }
}

#[tokio::test]
async fn unicode_passwords_are_accepted_and_counted_in_characters() {
    let Some(app) = spawn_app().await else { return };
    // 8 characters, 17 bytes.
    let pw = "пароль🔑ü";
    assert_eq!(pw.chars().count(), 8);
    app.signup_plain("uni", pw).await;
    assert_eq!(app.login("uni", pw).await.status(), StatusCode::OK);
    // 200 two-byte characters is 400 bytes but only 200 characters.
    let long = "é".repeat(200);
    app.signup_plain("uni2", &long).await;
    assert_eq!(app.login("uni2", &long).await.status(), StatusCode::OK);
    // Passwords are compared exactly.
    assert_eq!(app.login("uni", "пароль🔑u").await.status(), 401);
}

#[tokio::test]
async fn enable_mfa_null_is_refused_with_422() {
    let Some(app) = spawn_app().await else { return };
    let resp = app
        .post_json(
            "/signup",
            &json!({"username": "alice", "password": PASSWORD, "enable_mfa": null}),
        )
        .await;
    let body = assert_error(resp, 422, "invalid_input").await;
    assert!(
        body["detail"].as_str().unwrap().starts_with("enable_mfa"),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_extra_fields_are_ignored() {
    let Some(app) = spawn_app().await else { return };
    let resp = app
        .post_json(
            "/signup",
            &json!({"username": "alice", "password": PASSWORD, "enable_mfa": false, "role": "admin"}),
        )
        .await;
    created(resp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signup_answers_503_busy_with_retry_after_when_the_hashing_queue_is_full() {
    // One worker, no queue, and a deliberately slow hash.
    let Some(app) = spawn_app_with(&[
        "--hash-workers",
        "1",
        "--hash-queue",
        "0",
        "--argon2-memory-kib",
        "16384",
        "--argon2-iterations",
        "3",
    ])
    .await
    else {
        return;
    };
    let mut set = tokio::task::JoinSet::new();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(12));
    for i in 0..12 {
        let client = app.client.clone();
        let url = app.url("/signup");
        let barrier = barrier.clone();
        set.spawn(async move {
            barrier.wait().await;
            client
                .post(url)
                .json(&json!({"username": format!("user{i}"), "password": PASSWORD}))
                .send()
                .await
                .unwrap()
        });
    }
    let (mut created_n, mut busy_n) = (0, 0);
    while let Some(resp) = set.join_next().await {
        let resp = resp.unwrap();
        match resp.status().as_u16() {
            201 => created_n += 1,
            503 => {
                assert!(
                    super::helpers::retry_after(&resp).is_some(),
                    "503 without Retry-After"
                );
                assert_error(resp, 503, "busy").await;
                busy_n += 1;
            }
            other => panic!("unexpected status {other}: {}", resp.text().await.unwrap()),
        }
    }
    assert!(created_n >= 1, "no signup got through");
    assert!(busy_n >= 1, "no request was refused as busy");
}
