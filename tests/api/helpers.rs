//! Shared test harness: one real server per test, bound to 127.0.0.1:0, with a
//! fresh database (an SQLite file, or a new database in the binary's
//! PostgreSQL cluster: see `crate::BACKEND`) and key file in a temporary
//! directory, cheap argon2 and a test clock the test can move forward (never
//! sleep).
//!
//! `spawn_app*` return `None` only when this binary tests PostgreSQL and none
//! is installed (the harness has said so on stderr); tests begin with
//! `let Some(app) = spawn_app().await else { return };`.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use twofactor::auth::totp::{self, TotpParams};
use twofactor::clock::Clock;
use twofactor::config::Config;
use twofactor::startup::App;

use super::backend::{self, Backend};
use super::pg::{self, PgCluster};

/// A running server plus everything needed to talk to it and restart it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    /// The clock shared with the server; advance it to expire things.
    pub clock: Clock,
    /// Holds the key file (and the SQLite database); deleted when the last
    /// instance sharing it ends.
    pub dir: Arc<TempDir>,
    /// The `--database-url` (a fresh SQLite file or PostgreSQL database).
    pub database_url: String,
    /// The extra flags this app was started with.
    pub flags: Vec<String>,
    pub config: Config,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// What signup (or /enable-mfa) hands back for an MFA enrollment.
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub secret: Vec<u8>,
    pub provisioning_uri: String,
    pub recovery_codes: Vec<String>,
}

pub const PASSWORD: &str = "correct horse battery staple";

/// A device added by POST /me/devices.
#[derive(Debug, Clone)]
pub struct NewDevice {
    pub id: i64,
    pub secret: Vec<u8>,
    /// The whole 201 body.
    pub body: Value,
}

pub async fn spawn_app() -> Option<TestApp> {
    spawn_app_with(&[]).await
}

/// A server on a fresh database of this binary's backend, with extra flags.
pub async fn spawn_app_with(extra_flags: &[&str]) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = match backend::current() {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("db.sqlite").display()),
        Backend::Postgres => pg::shared()?.create_database().await,
    };
    Some(spawn_app_on(dir, database_url, extra_flags).await)
}

/// A server on a fresh database of `cluster` (a test's private cluster).
pub async fn spawn_app_in(cluster: &PgCluster, extra_flags: &[&str]) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = cluster.create_database().await;
    spawn_app_on(dir, database_url, extra_flags).await
}

/// A server on `database_url`, with its key file in `dir`.
pub async fn spawn_app_on(dir: TempDir, database_url: String, extra_flags: &[&str]) -> TestApp {
    let key = dir.path().join("encryption.key");
    let key = key.display().to_string();
    let mut args: Vec<&str> = vec!["--bind", "127.0.0.1:0", "--database-url", &database_url];
    args.extend(["--encryption-key-file", &key]);
    // clap refuses a repeated flag, so extra argon2 flags replace these cheap ones.
    if !extra_flags.iter().any(|f| f.starts_with("--argon2")) {
        args.extend(["--argon2-memory-kib", "64", "--argon2-iterations", "1"]);
    }
    args.extend_from_slice(extra_flags);
    let config = Config::try_parse_from(&args).expect("test config parses");
    let mut app = TestApp {
        address: String::new(),
        port: 0,
        client: http_client(),
        clock: Clock::system(),
        dir: Arc::new(dir),
        database_url,
        flags: extra_flags.iter().map(|s| s.to_string()).collect(),
        config,
        shutdown: None,
        server: None,
    };
    app.start().await;
    app
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

impl TestApp {
    async fn start(&mut self) {
        let app = App::build_with_clock(self.config.clone(), self.clock.clone())
            .await
            .expect("app builds");
        let addr = app.local_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        self.port = addr.port();
        self.address = format!("http://127.0.0.1:{}", addr.port());
        self.shutdown = Some(tx);
        self.server = Some(handle);
    }

    /// Gracefully stops the server, then starts a new one on the same
    /// database, key file, flags and clock (on a new port).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start().await;
    }

    /// Gracefully stops the server and waits until it has.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.server.take() {
            let result = tokio::time::timeout(Duration::from_secs(30), handle)
                .await
                .expect("server shuts down within 30 s")
                .expect("server task did not panic");
            result.expect("server ran without error");
        }
    }

    /// A second server on the same database, key file, flags and clock, on
    /// its own port: another instance behind the same load balancer.
    pub async fn spawn_peer(&self) -> TestApp {
        let mut peer = TestApp {
            address: String::new(),
            port: 0,
            client: http_client(),
            clock: self.clock.clone(),
            dir: Arc::clone(&self.dir),
            database_url: self.database_url.clone(),
            flags: self.flags.clone(),
            config: self.config.clone(),
            shutdown: None,
            server: None,
        };
        peer.start().await;
        peer
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn totp_params(&self) -> TotpParams {
        self.config.totp_params()
    }

    // ----- raw requests -------------------------------------------------

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        content_type: Option<&str>,
    ) -> Response {
        let mut req = self.client.post(self.url(path)).body(body);
        if let Some(ct) = content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, ct);
        }
        req.send().await.expect("request sent")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    // ----- typed endpoints ----------------------------------------------

    pub async fn signup(&self, username: &str, password: &str, enable_mfa: bool) -> Response {
        self.post_json(
            "/signup",
            &json!({"username": username, "password": password, "enable_mfa": enable_mfa}),
        )
        .await
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/login",
            &json!({"username": username, "password": password}),
        )
        .await
    }

    pub async fn login_2fa(&self, username: &str, token: &str, mfa_token: &str) -> Response {
        self.post_json(
            "/login-2fa",
            &json!({"username": username, "token": token, "mfa_token": mfa_token}),
        )
        .await
    }

    pub async fn qrcode(&self, username: &str, password: &str, format: Option<&str>) -> Response {
        let mut req = self
            .client
            .post(self.url(&format!("/qrcode/{username}")))
            .json(&json!({ "password": password }));
        if let Some(f) = format {
            req = req.query(&[("format", f)]);
        }
        req.send().await.expect("request sent")
    }

    pub async fn disable_mfa(&self, username: &str, password: &str, token: &str) -> Response {
        self.post_json(
            "/disable-mfa",
            &json!({"username": username, "password": password, "token": token}),
        )
        .await
    }

    pub async fn enable_mfa(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/enable-mfa",
            &json!({"username": username, "password": password}),
        )
        .await
    }

    pub async fn me(&self, bearer: &str) -> Response {
        self.client
            .get(self.url("/me"))
            .bearer_auth(bearer)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn logout(&self, bearer: &str) -> Response {
        self.client
            .post(self.url("/logout"))
            .bearer_auth(bearer)
            .send()
            .await
            .expect("request sent")
    }

    // ----- signed-in requests --------------------------------------------

    pub async fn get_with(&self, path: &str, bearer: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(bearer)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_with(&self, path: &str, bearer: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(bearer)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn delete_with(&self, path: &str, bearer: &str, body: &Value) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(bearer)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn devices(&self, bearer: &str) -> Response {
        self.get_with("/me/devices", bearer).await
    }

    pub async fn add_device(&self, bearer: &str, label: &str, password: &str) -> Response {
        self.post_with(
            "/me/devices",
            bearer,
            &json!({"label": label, "password": password}),
        )
        .await
    }

    pub async fn confirm_device(&self, bearer: &str, id: i64, token: &str) -> Response {
        self.post_with(
            &format!("/me/devices/{id}/confirm"),
            bearer,
            &json!({ "token": token }),
        )
        .await
    }

    /// `body` is `{"password": …}` or `{"token": …}`.
    pub async fn remove_device(&self, bearer: &str, id: i64, body: &Value) -> Response {
        self.delete_with(&format!("/me/devices/{id}"), bearer, body)
            .await
    }

    pub async fn regenerate_recovery_codes(
        &self,
        bearer: &str,
        password: &str,
        token: &str,
    ) -> Response {
        self.post_with(
            "/me/recovery-codes",
            bearer,
            &json!({"password": password, "token": token}),
        )
        .await
    }

    pub async fn change_password(
        &self,
        bearer: &str,
        current: &str,
        new: &str,
        token: Option<&str>,
    ) -> Response {
        let mut body = json!({"current_password": current, "new_password": new});
        if let Some(token) = token {
            body["token"] = json!(token);
        }
        self.post_with("/change-password", bearer, &body).await
    }

    pub async fn sessions(&self, bearer: &str) -> Response {
        self.get_with("/me/sessions", bearer).await
    }

    pub async fn revoke_session(&self, bearer: &str, id: &str) -> Response {
        self.client
            .delete(self.url(&format!("/me/sessions/{id}")))
            .bearer_auth(bearer)
            .send()
            .await
            .expect("request sent")
    }

    /// The `/me/events` event names, newest first.
    pub async fn event_names(&self, bearer: &str) -> Vec<String> {
        let body = assert_ok_json(self.get_with("/me/events", bearer).await).await;
        body["events"]
            .as_array()
            .expect("events array")
            .iter()
            .map(|e| e["event"].as_str().expect("event name").to_owned())
            .collect()
    }

    /// Adds a device, asserts 201, and returns it (pending).
    pub async fn add_pending_device(&self, bearer: &str, label: &str) -> NewDevice {
        let resp = self.add_device(bearer, label, PASSWORD).await;
        assert_eq!(resp.status(), StatusCode::CREATED, "adding {label}");
        let body: Value = resp.json().await.expect("json body");
        let secret = body["secret"].as_str().expect("secret").to_owned();
        NewDevice {
            id: body["id"].as_i64().expect("id"),
            secret: totp::decode_secret(&secret).expect("base32 secret"),
            body,
        }
    }

    /// Adds a device and confirms it with its current code (which uses up
    /// that device's current step).
    pub async fn add_confirmed_device(&self, bearer: &str, label: &str) -> NewDevice {
        let device = self.add_pending_device(bearer, label).await;
        let resp = self
            .confirm_device(bearer, device.id, &self.code_now(&device.secret))
            .await;
        assert_ok_json(resp).await;
        device
    }

    /// The value of one sample line of /metrics, 0 when absent.
    pub async fn metric(&self, sample: &str) -> u64 {
        let text = self.get("/metrics").await.text().await.expect("metrics");
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or(0)
    }

    // ----- composite helpers ----------------------------------------------

    /// Signs up without MFA and asserts 201.
    pub async fn signup_plain(&self, username: &str, password: &str) {
        let resp = self.signup(username, password, false).await;
        assert_eq!(resp.status(), StatusCode::CREATED, "signup of {username}");
    }

    /// Signs up with MFA, asserts 201 and returns the enrollment.
    pub async fn signup_mfa(&self, username: &str, password: &str) -> Enrollment {
        let resp = self.signup(username, password, true).await;
        assert_eq!(resp.status(), StatusCode::CREATED, "signup of {username}");
        enrollment_from(&resp.json::<Value>().await.expect("json body"))
    }

    /// The code for the current time step (by the shared clock).
    pub fn code_now(&self, secret: &[u8]) -> String {
        self.code_at_step_offset(secret, 0)
    }

    /// The code `offset_steps` time steps away from now.
    pub fn code_at_step_offset(&self, secret: &[u8], offset_steps: i64) -> String {
        let params = self.totp_params();
        let t = self.clock.now() + offset_steps * params.period as i64;
        totp::generate(&params, secret, t as u64)
    }

    /// Moves the clock forward to one second past the start of the next time
    /// step, so a test has (almost) a full period before the step changes.
    pub fn align_to_step_start(&self) {
        let period = self.totp_params().period as i64;
        let into = self.clock.now().rem_euclid(period);
        let by = period - into + 1;
        self.clock.advance(Duration::from_secs(by as u64));
    }

    /// Moves the clock forward by whole seconds.
    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    /// /login for an MFA user; asserts 200 and returns the `mfa_token`.
    pub async fn mfa_token(&self, username: &str, password: &str) -> String {
        let resp = self.login(username, password).await;
        assert_eq!(resp.status(), StatusCode::OK, "login of {username}");
        let body: Value = resp.json().await.expect("json body");
        body["mfa_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no mfa_token in {body}"))
            .to_string()
    }

    /// /login for a user without MFA; returns the session token.
    pub async fn plain_login(&self, username: &str, password: &str) -> String {
        let resp = self.login(username, password).await;
        assert_eq!(resp.status(), StatusCode::OK, "login of {username}");
        let body: Value = resp.json().await.expect("json body");
        body["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token in {body}"))
            .to_string()
    }

    /// Password + current TOTP code; returns the session token. Uses up the
    /// current step's code (replay protection): a second call needs the
    /// clock moved on a step.
    pub async fn full_login(&self, username: &str, password: &str, secret: &[u8]) -> String {
        let mfa = self.mfa_token(username, password).await;
        let resp = self.login_2fa(username, &self.code_now(secret), &mfa).await;
        assert_eq!(resp.status(), StatusCode::OK, "login-2fa of {username}");
        let body: Value = resp.json().await.expect("json body");
        body["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token in {body}"))
            .to_string()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Extracts the enrollment from a /signup or /enable-mfa body.
pub fn enrollment_from(body: &Value) -> Enrollment {
    let uri = body["provisioning_uri"]
        .as_str()
        .unwrap_or_else(|| panic!("no provisioning_uri in {body}"))
        .to_string();
    let codes = body["recovery_codes"]
        .as_array()
        .unwrap_or_else(|| panic!("no recovery_codes in {body}"))
        .iter()
        .map(|c| c.as_str().expect("recovery code is a string").to_string())
        .collect();
    Enrollment {
        secret: secret_from_uri(&uri),
        provisioning_uri: uri,
        recovery_codes: codes,
    }
}

/// The `secret` query parameter of a provisioning URI, decoded.
pub fn secret_from_uri(uri: &str) -> Vec<u8> {
    let b32 = query_param(uri, "secret").unwrap_or_else(|| panic!("no secret in {uri}"));
    totp::decode_secret(&b32)
        .ok()
        .unwrap_or_else(|| panic!("secret {b32} is not base32"))
}

pub fn query_param(uri: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(uri).expect("provisioning uri parses");
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Minimal percent-decoding (for the URI label).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("utf-8 label")
}

/// Asserts a JSON error of the given status and code, with a non-empty
/// `detail`; returns the body.
pub async fn assert_error(resp: Response, status: u16, code: &str) -> Value {
    let got = resp.status().as_u16();
    assert_json_content_type(&resp);
    let text = resp.text().await.expect("body");
    assert_eq!(got, status, "status (body: {text})");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    assert_eq!(body["code"], code, "code in {body}");
    let detail = body["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("no detail in {body}"));
    assert!(!detail.is_empty(), "empty detail in {body}");
    body
}

/// Like [`assert_error`] and also checks the exact `detail`.
pub async fn assert_error_detail(resp: Response, status: u16, code: &str, detail: &str) -> Value {
    let body = assert_error(resp, status, code).await;
    assert_eq!(body["detail"], detail, "detail in {body}");
    body
}

pub fn assert_json_content_type(resp: &Response) {
    let ct = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        ct.starts_with("application/json"),
        "content type {ct:?} for {} {}",
        resp.status(),
        resp.url()
    );
}

/// Asserts a 200 and returns the JSON body.
pub async fn assert_ok_json(resp: Response) -> Value {
    let status = resp.status();
    assert_json_content_type(&resp);
    let text = resp.text().await.expect("body");
    assert_eq!(status, StatusCode::OK, "status (body: {text})");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Asserts 429 too_many_attempts with a Retry-After close to `expected`
/// seconds. The header is rounded up from the remaining lock time, so a
/// second ticking between the locking failure and this request may shave
/// one (or, on a slow machine, two) seconds off.
pub async fn assert_locked(resp: Response, expected: u64) -> u64 {
    let retry = retry_after(&resp);
    assert_error(resp, 429, "too_many_attempts").await;
    let retry = retry.expect("Retry-After header on 429");
    assert!(
        retry <= expected && retry + 2 >= expected,
        "Retry-After {retry}, expected {expected}"
    );
    retry
}

pub fn retry_after(resp: &Response) -> Option<u64> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .map(|v| v.to_str().expect("ascii").parse().expect("whole seconds"))
}

/// A token as the decisions describe it: 43 base64url characters.
pub fn assert_token_shape(token: &str) {
    assert_eq!(token.len(), 43, "token {token:?} is not 43 characters");
    assert!(
        token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "token {token:?} is not base64url"
    );
}

/// "abcd-efgh-ijkl-mnop", base32 lowercase.
pub fn assert_recovery_code_shape(code: &str) {
    let groups: Vec<&str> = code.split('-').collect();
    assert_eq!(groups.len(), 4, "recovery code {code:?}");
    for g in groups {
        assert_eq!(g.len(), 4, "recovery code {code:?}");
        assert!(
            g.chars()
                .all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c)),
            "recovery code {code:?}"
        );
    }
}

/// A wrong code of the right shape, different from every code in the
/// accepted window now.
pub fn wrong_code(app: &TestApp, secret: &[u8]) -> String {
    let digits = app.totp_params().digits as usize;
    let window: Vec<String> = (-3..=3)
        .map(|o| app.code_at_step_offset(secret, o))
        .collect();
    let mut n: u64 = 123_456;
    loop {
        let c = format!("{:0width$}", n % 10u64.pow(digits as u32), width = digits);
        if !window.contains(&c) {
            return c;
        }
        n += 1;
    }
}

/// The service's own `db` layer opened on `database_url`, beside the
/// running server (as another instance would).
pub async fn open_db(database_url: &str) -> twofactor::db::Db {
    let settings = twofactor::db::PoolSettings {
        max_connections: 8,
        acquire_timeout: Duration::from_secs(10),
    };
    twofactor::db::Db::connect(database_url, settings)
        .await
        .expect("database opens")
}
