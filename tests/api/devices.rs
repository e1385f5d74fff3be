//! Several named TOTP devices per account: adding (pending, 15 minutes to
//! confirm), confirming, listing without secrets, removing, login with a
//! code from any active device, replay marks per device.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::helpers::{
    PASSWORD, assert_error, assert_ok_json, secret_from_uri, spawn_app, spawn_app_with, wrong_code,
};

#[tokio::test]
async fn a_new_device_is_pending_shows_its_secret_once_and_is_listed_without_it() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let bearer = app.full_login("alice", PASSWORD, &e.secret).await;
    let device = app.add_pending_device(&bearer, "work phone").await;
    let body = &device.body;
    assert_eq!(body["label"], "work phone");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["algorithm"], "SHA1");
    assert_eq!(body["digits"], 6);
    assert_eq!(body["period"], 30);
    let uri = body["provisioning_uri"].as_str().unwrap();
    assert_eq!(secret_from_uri(uri), device.secret);
    assert!(
        body["qr_code"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );

    let list = assert_ok_json(app.devices(&bearer).await).await;
    let devices = list["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2, "{list}");
    assert_eq!(devices[0]["label"], "default");
    assert_eq!(devices[0]["default"], true);
    assert_eq!(devices[0]["status"], "active");
    assert!(devices[0]["last_used_at"].is_i64(), "{list}");
    assert_eq!(devices[1]["id"], device.id);
    assert_eq!(devices[1]["status"], "pending");
    assert!(devices[1]["created_at"].is_i64());
    assert!(devices[1]["last_used_at"].is_null());
    let text = list.to_string();
    assert!(!text.contains(body["secret"].as_str().unwrap()));
    assert!(!text.contains("secret"), "{text}");
}

#[tokio::test]
async fn adding_a_device_needs_a_session_and_the_password() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let bearer = app.full_login("alice", PASSWORD, &e.secret).await;
    let resp = app.add_device(&bearer, "phone", "not the password").await;
    assert_error(resp, 401, "invalid_credentials").await;
    let resp = app.add_device("not-a-session", "phone", PASSWORD).await;
    assert_error(resp, 401, "unauthorized").await;
    let list = assert_ok_json(app.devices(&bearer).await).await;
    assert_eq!(list["devices"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn labels_are_bounded_printable_and_unique_per_user() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let bearer = app.plain_login("alice", PASSWORD).await;
    for bad in [
        json!(""),
        json!("   "),
        json!("x".repeat(65)),
        json!("a\nb"),
        json!(7),
    ] {
        let resp = app
            .post_with(
                "/me/devices",
                &bearer,
                &json!({"label": bad, "password": PASSWORD}),
            )
            .await;
        let body = assert_error(resp, 422, "invalid_input").await;
        assert!(body["detail"].as_str().unwrap().starts_with("label"));
    }
    app.add_pending_device(&bearer, &"é".repeat(64)).await;
    app.add_pending_device(&bearer, "phone").await;
    let resp = app.add_device(&bearer, " phone ", PASSWORD).await;
    assert_error(resp, 409, "device_label_taken").await;
}

#[tokio::test]
async fn an_account_has_at_most_ten_devices() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let bearer = app.plain_login("alice", PASSWORD).await;
    for i in 0..10 {
        app.add_pending_device(&bearer, &format!("phone {i}")).await;
    }
    let resp = app.add_device(&bearer, "one more", PASSWORD).await;
    assert_error(resp, 409, "too_many_devices").await;
}

#[tokio::test]
async fn after_confirmation_codes_from_either_device_log_in() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let bearer = app.full_login("alice", PASSWORD, &e.secret).await;
    let device = app.add_pending_device(&bearer, "tablet").await;
    let resp = app
        .confirm_device(&bearer, device.id, &app.code_now(&device.secret))
        .await;
    let body = assert_ok_json(resp).await;
    assert_eq!(body["message"], "Device confirmed");
    assert!(body.get("recovery_codes").is_none(), "MFA was on already");

    app.advance(30);
    app.full_login("alice", PASSWORD, &device.secret).await;
    app.advance(30);
    app.full_login("alice", PASSWORD, &e.secret).await;
    let list = assert_ok_json(app.devices(&bearer).await).await;
    assert_eq!(list["devices"][1]["status"], "active");
    assert!(list["devices"][1]["confirmed_at"].is_i64());
    assert!(list["devices"][1]["last_used_at"].is_i64());
}

#[tokio::test]
async fn a_pending_device_never_counts_for_login() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let bearer = app.full_login("alice", PASSWORD, &e.secret).await;
    let device = app.add_pending_device(&bearer, "tablet").await;
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let resp = app
        .login_2fa("alice", &app.code_now(&device.secret), &mfa)
        .await;
    assert_error(resp, 401, "invalid_otp").await;
}

#[tokio::test]
async fn an_unconfirmed_device_expires_after_fifteen_minutes() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let bearer = app.full_login("alice", PASSWORD, &e.secret).await;
    let device = app.add_pending_device(&bearer, "tablet").await;
    app.advance(15 * 60 + 1);
    let resp = app
        .confirm_device(&bearer, device.id, &app.code_now(&device.secret))
        .await;
    assert_error(resp, 404, "device_not_found").await;
    let list = assert_ok_json(app.devices(&bearer).await).await;
    assert_eq!(list["devices"].as_array().unwrap().len(), 1, "{list}");
    // Its label is free again.
    app.add_pending_device(&bearer, "tablet").await;
}

#[tokio::test]
async fn a_wrong_first_code_is_422_invalid_code_and_confirming_twice_is_409() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let bearer = app.full_login("alice", PASSWORD, &e.secret).await;
    let device = app.add_pending_device(&bearer, "tablet").await;
    let resp = app
        .confirm_device(&bearer, device.id, &wrong_code(&app, &device.secret))
        .await;
    assert_error(resp, 422, "invalid_code").await;
    let code = app.code_now(&device.secret);
    assert_ok_json(app.confirm_device(&bearer, device.id, &code).await).await;
    let resp = app.confirm_device(&bearer, device.id, &code).await;
    assert_error(resp, 409, "device_confirmed").await;
    for id in ["0", "abc", "99999999999999999999", "123456"] {
        let resp = app
            .post_with(
                &format!("/me/devices/{id}/confirm"),
                &bearer,
                &json!({"token": "123456"}),
            )
            .await;
        assert_error(resp, 404, "device_not_found").await;
    }
}

#[tokio::test]
async fn replay_marks_are_kept_per_device() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let bearer = app.full_login("alice", PASSWORD, &e.secret).await;
    app.advance(30);
    let device = app.add_confirmed_device(&bearer, "tablet").await;
    app.advance(30);
    // Both devices' codes of this step log in once each.
    let first = app.code_now(&e.secret);
    let second = app.code_now(&device.secret);
    for code in [&first, &second] {
        let mfa = app.mfa_token("alice", PASSWORD).await;
        assert_ok_json(app.login_2fa("alice", code, &mfa).await).await;
    }
    for code in [&first, &second] {
        let mfa = app.mfa_token("alice", PASSWORD).await;
        let resp = app.login_2fa("alice", code, &mfa).await;
        assert_error(resp, 401, "invalid_otp").await;
    }
}

#[tokio::test]
async fn another_users_device_is_404() {
    let Some(app) = spawn_app().await else { return };
    let a = app.signup_mfa("alice", PASSWORD).await;
    let b = app.signup_mfa("bob", PASSWORD).await;
    let alice = app.full_login("alice", PASSWORD, &a.secret).await;
    let bob = app.full_login("bob", PASSWORD, &b.secret).await;
    let device = app.add_pending_device(&alice, "tablet").await;
    let resp = app
        .confirm_device(&bob, device.id, &app.code_now(&device.secret))
        .await;
    assert_error(resp, 404, "device_not_found").await;
    let resp = app
        .remove_device(&bob, device.id, &json!({"password": PASSWORD}))
        .await;
    assert_error(resp, 404, "device_not_found").await;
}

#[tokio::test]
async fn removing_a_device_needs_the_password_or_a_current_code_and_its_codes_stop_working() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let bearer = app.full_login("alice", PASSWORD, &e.secret).await;
    let tablet = app.add_confirmed_device(&bearer, "tablet").await;
    let watch = app.add_confirmed_device(&bearer, "watch").await;
    app.advance(30);

    let resp = app
        .remove_device(&bearer, tablet.id, &json!({"password": "not the password"}))
        .await;
    assert_error(resp, 401, "invalid_credentials").await;
    let resp = app
        .remove_device(
            &bearer,
            tablet.id,
            &json!({"token": wrong_code(&app, &e.secret)}),
        )
        .await;
    assert_error(resp, 401, "invalid_otp").await;
    let resp = app.remove_device(&bearer, tablet.id, &json!({})).await;
    assert_error(resp, 401, "proof_required").await;
    // Both given: both must be right.
    let resp = app
        .remove_device(
            &bearer,
            tablet.id,
            &json!({"password": PASSWORD, "token": wrong_code(&app, &e.secret)}),
        )
        .await;
    assert_error(resp, 401, "invalid_otp").await;

    let resp = app
        .remove_device(&bearer, tablet.id, &json!({"password": PASSWORD}))
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = app
        .remove_device(
            &bearer,
            watch.id,
            &json!({"token": app.code_now(&e.secret)}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    for secret in [&tablet.secret, &watch.secret] {
        let mfa = app.mfa_token("alice", PASSWORD).await;
        let resp = app.login_2fa("alice", &app.code_now(secret), &mfa).await;
        assert_error(resp, 401, "invalid_otp").await;
    }
    let list = assert_ok_json(app.devices(&bearer).await).await;
    assert_eq!(list["devices"].as_array().unwrap().len(), 1);
    let resp = app
        .remove_device(&bearer, tablet.id, &json!({"password": PASSWORD}))
        .await;
    assert_error(resp, 404, "device_not_found").await;
}

#[tokio::test]
async fn the_last_active_device_cannot_be_removed_but_a_pending_one_can() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    let bearer = app.full_login("alice", PASSWORD, &e.secret).await;
    let list = assert_ok_json(app.devices(&bearer).await).await;
    let default_id = list["devices"][0]["id"].as_i64().unwrap();
    let pending = app.add_pending_device(&bearer, "tablet").await;
    let resp = app
        .remove_device(&bearer, default_id, &json!({"password": PASSWORD}))
        .await;
    assert_error(resp, 409, "last_device").await;
    let resp = app
        .remove_device(&bearer, pending.id, &json!({"password": PASSWORD}))
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_user_without_mfa_turns_it_on_by_confirming_a_device_and_gets_recovery_codes() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let bearer = app.plain_login("alice", PASSWORD).await;
    let device = app.add_pending_device(&bearer, "phone").await;
    // Pending: login is still password-only.
    let me = assert_ok_json(app.me(&bearer).await).await;
    assert_eq!(me["mfa_enabled"], false);
    app.plain_login("alice", PASSWORD).await;

    app.align_to_step_start();
    let resp = app
        .confirm_device(&bearer, device.id, &app.code_now(&device.secret))
        .await;
    let body = assert_ok_json(resp).await;
    let codes = body["recovery_codes"].as_array().expect("recovery codes");
    assert_eq!(codes.len(), 10);
    let me = assert_ok_json(app.me(&bearer).await).await;
    assert_eq!(me["mfa_enabled"], true);
    assert_eq!(me["recovery_codes_remaining"], 10);

    // /login now asks for a code, and the device's next code answers it.
    app.advance(30);
    app.full_login("alice", PASSWORD, &device.secret).await;
    let mfa = app.mfa_token("alice", PASSWORD).await;
    let resp = app
        .login_2fa("alice", codes[0].as_str().unwrap(), &mfa)
        .await;
    assert_ok_json(resp).await;
    // The seed's QR endpoint is only for the default enrollment.
    let resp = app.qrcode("alice", PASSWORD, None).await;
    assert_error(resp, 409, "mfa_confirmed").await;
}

#[tokio::test]
async fn the_seed_qr_code_still_works_for_the_unconfirmed_default_device() {
    let Some(app) = spawn_app().await else { return };
    app.signup_plain("alice", PASSWORD).await;
    let bearer = app.plain_login("alice", PASSWORD).await;
    app.add_pending_device(&bearer, "tablet").await;
    let resp = app.qrcode("alice", PASSWORD, None).await;
    assert_error(resp, 409, "mfa_disabled").await;
    let e = app.signup_mfa("bob", PASSWORD).await;
    let resp = app.qrcode("bob", PASSWORD, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    app.full_login("bob", PASSWORD, &e.secret).await;
    let resp = app.qrcode("bob", PASSWORD, None).await;
    assert_error(resp, 409, "mfa_confirmed").await;
}

#[tokio::test]
async fn disable_mfa_removes_every_device_pending_ones_too() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let bearer = app.full_login("alice", PASSWORD, &e.secret).await;
    let tablet = app.add_confirmed_device(&bearer, "tablet").await;
    app.add_pending_device(&bearer, "watch").await;
    app.advance(30);
    let resp = app
        .disable_mfa("alice", PASSWORD, &app.code_now(&tablet.secret))
        .await;
    assert_ok_json(resp).await;
    let list = assert_ok_json(app.devices(&bearer).await).await;
    assert_eq!(list["devices"], json!([]));
    let me = assert_ok_json(app.me(&bearer).await).await;
    assert_eq!(me["mfa_enabled"], false);
    app.plain_login("alice", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_logins_with_one_code_of_a_second_device_let_exactly_one_through() {
    const N: usize = 16;
    let Some(app) = spawn_app_with(&["--lockout-threshold", "100"]).await else {
        return;
    };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let bearer = app.full_login("alice", PASSWORD, &e.secret).await;
    let device = app.add_confirmed_device(&bearer, "tablet").await;
    app.advance(30);
    let mut tokens = Vec::with_capacity(N);
    for _ in 0..N {
        tokens.push(app.mfa_token("alice", PASSWORD).await);
    }
    let code = app.code_now(&device.secret);
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let mut set = tokio::task::JoinSet::new();
    for mfa in tokens {
        let (client, url, code, barrier) = (
            app.client.clone(),
            app.url("/login-2fa"),
            code.clone(),
            barrier.clone(),
        );
        set.spawn(async move {
            barrier.wait().await;
            let resp = client
                .post(url)
                .json(&json!({"username": "alice", "token": code, "mfa_token": mfa}))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            (status, body)
        });
    }
    let mut ok = 0;
    while let Some(r) = set.join_next().await {
        let (status, body) = r.unwrap();
        match status {
            200 => ok += 1,
            401 => assert_eq!(body["code"], "invalid_otp", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(ok, 1, "exactly one login may use the code");
}

#[tokio::test]
async fn device_changes_land_in_the_audit_trail_and_the_metrics() {
    let Some(app) = spawn_app().await else { return };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    let bearer = app.full_login("alice", PASSWORD, &e.secret).await;
    let device = app.add_confirmed_device(&bearer, "tablet").await;
    let resp = app
        .remove_device(&bearer, device.id, &json!({"password": PASSWORD}))
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let events = app.event_names(&bearer).await;
    for name in ["device.added", "device.confirmed", "device.removed"] {
        assert!(events.iter().any(|e| e == name), "{name} in {events:?}");
    }
    for action in ["device_added", "device_confirmed", "device_removed"] {
        let sample = format!("twofactor_account_actions_total{{action=\"{action}\"}}");
        assert_eq!(app.metric(&sample).await, 1, "{sample}");
    }
}
