//! Process-level tests: the real `twofactor` binary, started as a child process
//! on a fresh database of this binary's backend (an SQLite file in a temporary
//! directory, or a new database in the shared PostgreSQL cluster), killed with
//! SIGKILL or stopped with SIGTERM, and restarted on the same database and key
//! file. These check what only a whole process shows: durability across a
//! crash, what ends up at rest and in the logs, the `code` subcommand, and a
//! graceful stop.
//!
//! The harness (`ServerProcess`) is self-contained on purpose: it does not use
//! `helpers.rs`, which starts the service in-process. `durability.rs` uses it
//! too.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tempfile::TempDir;
use twofactor::auth::totp::{Algorithm, TotpParams, decode_secret, generate};

use super::backend::{self, Backend};
use super::pg;

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_twofactor");
/// How long the binary may take from spawn to its `listening on` line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERM'd server may take to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A fresh database of this binary's backend: `sqlite://DIR/db.sqlite`, or a
/// new database in the shared PostgreSQL cluster (`None` when PostgreSQL is
/// not installed and the harness announced the skip).
async fn fresh_database_url(dir: &Path) -> Option<String> {
    match backend::current() {
        Backend::Sqlite => Some(format!("sqlite://{}", dir.join("db.sqlite").display())),
        Backend::Postgres => Some(pg::shared()?.create_database().await),
    }
}

/// One running `twofactor serve`, on its own temporary data directory and a
/// fresh database of this binary's backend.
///
/// `data` holds the key file (and, on SQLite, the database) and survives
/// `kill9`/`restart`; `logs` holds the captured stderr of every run
/// (`stderr-<n>.log`), apart from `data` so that scanning the data directory
/// sees only what the service wrote there itself.
pub(crate) struct ServerProcess {
    child: Option<Child>,
    data: TempDir,
    logs: TempDir,
    database_url: String,
    extra_args: Vec<String>,
    rust_log: String,
    runs: u32,
    base: String,
}

impl ServerProcess {
    /// Starts the binary with cheap argon2 and the default log level (info).
    pub(crate) async fn start() -> Option<Self> {
        Self::start_with(&[], "info").await
    }

    /// Starts the binary with extra `serve` flags and a `RUST_LOG` value, and
    /// waits (without sleeping) for its `listening on` line. `None` only when
    /// this binary tests PostgreSQL and none is installed.
    pub(crate) async fn start_with(extra_args: &[&str], rust_log: &str) -> Option<Self> {
        let data = TempDir::new().expect("data tempdir");
        let database_url = fresh_database_url(data.path()).await?;
        let mut server = ServerProcess {
            child: None,
            data,
            logs: TempDir::new().expect("logs tempdir"),
            database_url,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            rust_log: rust_log.to_string(),
            runs: 0,
            base: String::new(),
        };
        server.spawn();
        Some(server)
    }

    /// The SQLite file (meaningful on the SQLite backend only).
    fn db_path(&self) -> PathBuf {
        self.data.path().join("db.sqlite")
    }

    fn key_path(&self) -> PathBuf {
        self.data.path().join("key")
    }

    fn stderr_path(&self, run: u32) -> PathBuf {
        self.logs.path().join(format!("stderr-{run}.log"))
    }

    /// The stderr of the current (latest) run.
    fn current_stderr_path(&self) -> PathBuf {
        self.stderr_path(self.runs)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// `http://127.0.0.1:PORT` of the current run.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "spawn while a child is running");
        self.runs += 1;
        let stderr = File::create(self.stderr_path(self.runs)).expect("stderr log file");
        let mut cmd = Command::new(BIN);
        // Nothing from the test runner's environment may steer the server.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("TWOFACTOR_") {
                cmd.env_remove(&name);
            }
        }
        cmd.arg("serve")
            .arg("--bind")
            .arg("127.0.0.1:0")
            .arg("--database-url")
            .arg(&self.database_url)
            .arg("--encryption-key-file")
            .arg(self.key_path())
            .arg("--argon2-memory-kib")
            .arg("64")
            .arg("--argon2-iterations")
            .arg("1")
            .args(&self.extra_args)
            .current_dir(self.data.path())
            .env("RUST_LOG", &self.rust_log)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut child = cmd.spawn().expect("spawn twofactor serve");

        // Read stdout on a thread until the readiness line, then keep draining
        // it so the child can never block on a full pipe.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent && let Some(rest) = line.trim().strip_prefix("listening on ") {
                    let _ = tx.send(rest.trim().to_string());
                    sent = true;
                }
            }
        });

        let deadline = Instant::now() + READY_TIMEOUT;
        let base = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(url) => break url,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!(
                            "twofactor serve exited ({status}) before `listening on`; stderr:\n{}",
                            self.read_stderr_lossy(self.runs)
                        );
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!(
                            "no `listening on` line within {READY_TIMEOUT:?}; stderr:\n{}",
                            self.read_stderr_lossy(self.runs)
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().expect("wait");
                    panic!(
                        "twofactor serve closed stdout ({status}) before `listening on`; stderr:\n{}",
                        self.read_stderr_lossy(self.runs)
                    );
                }
            }
        };
        assert!(
            base.starts_with("http://127.0.0.1:"),
            "readiness line should name http://127.0.0.1:PORT, got {base:?}"
        );
        let port: u16 = base["http://127.0.0.1:".len()..]
            .trim_end_matches('/')
            .parse()
            .unwrap_or_else(|_| panic!("no port in readiness line {base:?}"));
        assert_ne!(port, 0, "the readiness line must name the bound port");
        self.base = format!("http://127.0.0.1:{port}");
        self.child = Some(child);
    }

    fn read_stderr_lossy(&self, run: u32) -> String {
        std::fs::read(self.stderr_path(run))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// SIGKILL (`Child::kill` sends SIGKILL on Unix) and reap.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            let status = child.wait().expect("wait after SIGKILL");
            assert!(!status.success(), "a SIGKILLed process does not exit 0");
        }
    }

    /// Kills the running process (SIGKILL) if any and starts a new one on the
    /// same database and key file.
    pub(crate) fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Sends SIGTERM (with the `kill` command, no libc/nix needed) and waits
    /// for the exit, up to `STOP_TIMEOUT`. Panics if it does not exit.
    fn terminate(&mut self) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("server is running");
        let started = Instant::now();
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("run kill -TERM");
        assert!(ok.success(), "kill -TERM failed");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return (status, started.elapsed());
            }
            if started.elapsed() > STOP_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the server did not exit within {STOP_TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for run in 1..=self.runs {
                let log = self.read_stderr_lossy(run);
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- server stderr, run {run} (last 40 lines) ---");
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// One HTTP answer, fully read.
struct Resp {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "expected a JSON body (status {}), got {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header").to_string())
    }

    fn str_field(&self, field: &str) -> String {
        let body = self.json();
        body[field]
            .as_str()
            .unwrap_or_else(|| panic!("field {field:?} should be a string in {body}"))
            .to_string()
    }

    #[track_caller]
    fn expect_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }

    /// Asserts the contract's error shape `{"detail": str, "code": code}`.
    #[track_caller]
    fn expect_error(&self, status: u16, code: &str) -> &Self {
        self.expect_status(status);
        let body = self.json();
        assert_eq!(body["code"], code, "error code in {body}");
        assert!(body["detail"].is_string(), "error detail in {body}");
        self
    }
}

/// A small client for one server; every request is recorded so the log test
/// can check one line per request.
struct Api {
    http: reqwest::Client,
    base: String,
    requests: Vec<String>,
}

impl Api {
    fn new(server: &ServerProcess) -> Self {
        Api {
            http: reqwest::Client::new(),
            base: server.base.clone(),
            requests: Vec::new(),
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder, path: &str) -> Resp {
        self.requests
            .push(path.split('?').next().unwrap().to_string());
        let resp = req
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to {path} failed: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.expect("read body").to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    async fn post(&mut self, path: &str, body: Value) -> Resp {
        let req = self.http.post(format!("{}{}", self.base, path)).json(&body);
        self.send(req, path).await
    }

    async fn get_me(&mut self, token: &str) -> Resp {
        let req = self
            .http
            .get(format!("{}/me", self.base))
            .bearer_auth(token);
        self.send(req, "/me").await
    }

    async fn logout(&mut self, token: &str) -> Resp {
        let req = self
            .http
            .post(format!("{}/logout", self.base))
            .bearer_auth(token);
        self.send(req, "/logout").await
    }

    async fn get(&mut self, path: &str) -> Resp {
        let req = self.http.get(format!("{}{}", self.base, path));
        self.send(req, path).await
    }

    async fn signup(&mut self, username: &str, password: &str, enable_mfa: bool) -> Resp {
        self.post(
            "/signup",
            json!({"username": username, "password": password, "enable_mfa": enable_mfa}),
        )
        .await
    }

    async fn login(&mut self, username: &str, password: &str) -> Resp {
        self.post(
            "/login",
            json!({"username": username, "password": password}),
        )
        .await
    }

    async fn login_2fa(&mut self, username: &str, code: &str, mfa_token: &str) -> Resp {
        self.post(
            "/login-2fa",
            json!({"username": username, "token": code, "mfa_token": mfa_token}),
        )
        .await
    }
}

// ---------------------------------------------------------------------------
// TOTP helpers (the library's own generator is the oracle; test 4 pins it to
// RFC 6238's vectors)
// ---------------------------------------------------------------------------

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn code_at(params: &TotpParams, secret: &[u8], unix: u64) -> String {
    generate(params, secret, unix)
}

/// The base32 `secret` query parameter of a provisioning URI.
fn secret_of(provisioning_uri: &str) -> String {
    let url = url::Url::parse(provisioning_uri)
        .unwrap_or_else(|e| panic!("provisioning_uri {provisioning_uri:?} is not a URL: {e}"));
    assert_eq!(url.scheme(), "otpauth", "{provisioning_uri}");
    url.query_pairs()
        .find(|(k, _)| k == "secret")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no secret in {provisioning_uri}"))
}

fn secret_bytes(base32: &str) -> Vec<u8> {
    decode_secret(base32).expect("secret decodes as base32")
}

/// A code for the current step (default parameters) and that step.
fn current_code(secret: &[u8]) -> (String, u64) {
    let now = unix_now();
    (code_at(&TotpParams::default(), secret, now), now / 30)
}

fn recovery_codes_of(body: &Value) -> Vec<String> {
    let codes: Vec<String> = body["recovery_codes"]
        .as_array()
        .unwrap_or_else(|| panic!("recovery_codes array in {body}"))
        .iter()
        .map(|c| c.as_str().expect("recovery code is a string").to_string())
        .collect();
    assert_eq!(codes.len(), 10, "ten recovery codes in {body}");
    codes
}

// ---------------------------------------------------------------------------
// Byte search helpers
// ---------------------------------------------------------------------------

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return Vec::new();
    }
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

/// Whether `code` (ASCII digits) occurs as a token of its own: not inside a
/// longer run of letters or digits, and not as a measured duration
/// (`latency=123456 μs`). A 6-digit string inside a timestamp, a hex digest,
/// base64 text or a timing is chance, not a leak.
fn contains_standalone(haystack: &[u8], code: &str) -> bool {
    const TIMINGS: [&[u8]; 4] = [b"latency=", b"elapsed=", b"duration=", b"time.busy="];
    find_all(haystack, code.as_bytes()).into_iter().any(|i| {
        let before = i.checked_sub(1).map(|j| haystack[j]);
        let after = haystack.get(i + code.len()).copied();
        let is_timing = TIMINGS.iter().any(|t| haystack[..i].ends_with(t));
        !is_timing
            && !before.is_some_and(|b| b.is_ascii_alphanumeric())
            && !after.is_some_and(|b| b.is_ascii_alphanumeric())
    })
}

/// Whether `line` mentions `path` as a whole path (`/login` does not match
/// inside `/login-2fa`).
fn mentions_path(line: &str, path: &str) -> bool {
    line.match_indices(path).any(|(i, _)| {
        line[i + path.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '.')))
    })
}

// ---------------------------------------------------------------------------
// Every flow, with everything secret it handled
// ---------------------------------------------------------------------------

/// What one walk through every flow handled that must never be stored or
/// logged in the clear.
#[derive(Default)]
struct Secrets {
    /// Must never appear, compared byte for byte: passwords, base32 secrets,
    /// raw secret bytes, recovery codes (every spelling), session and MFA
    /// tokens and their raw bytes.
    strict: Vec<(String, Vec<u8>)>,
    /// TOTP codes that were used: only checked as stand-alone tokens.
    codes: Vec<String>,
}

impl Secrets {
    fn add(&mut self, label: impl Into<String>, value: impl AsRef<[u8]>) {
        self.strict.push((label.into(), value.as_ref().to_vec()));
    }

    fn add_password(&mut self, label: &str, password: &str) {
        self.add(format!("password {label}"), password);
    }

    fn add_secret(&mut self, label: &str, base32: &str) {
        self.add(format!("base32 secret {label}"), base32);
        self.add(
            format!("base32 secret {label} (lower case)"),
            base32.to_lowercase(),
        );
        self.add(format!("raw secret bytes {label}"), secret_bytes(base32));
    }

    fn add_recovery_codes(&mut self, label: &str, codes: &[String]) {
        for (i, code) in codes.iter().enumerate() {
            let plain: String = code.chars().filter(|c| *c != '-').collect();
            self.add(format!("recovery code {label}#{i}"), code);
            self.add(
                format!("recovery code {label}#{i} (upper)"),
                code.to_uppercase(),
            );
            self.add(format!("recovery code {label}#{i} (no dashes)"), &plain);
            self.add(
                format!("recovery code {label}#{i} (no dashes, upper)"),
                plain.to_uppercase(),
            );
        }
    }

    fn add_token(&mut self, label: &str, token: &str) {
        self.add(label.to_string(), token);
        if let Ok(raw) = data_encoding::BASE64URL_NOPAD.decode(token.as_bytes()) {
            self.add(format!("{label} (raw bytes)"), raw);
        }
    }

    /// Panics naming every secret found in `haystack` (from `what`).
    fn assert_absent_from(&self, what: &str, haystack: &[u8]) {
        let mut found = Vec::new();
        for (label, value) in &self.strict {
            if !find_all(haystack, value).is_empty() {
                found.push(label.clone());
            }
            // A text dump (pg_dump) writes bytea as hex.
            if !find_all(haystack, hex::encode(value).as_bytes()).is_empty() {
                found.push(format!("{label} (as hex)"));
            }
        }
        for code in &self.codes {
            if contains_standalone(haystack, code) {
                found.push(format!("TOTP code {code}"));
            }
        }
        assert!(found.is_empty(), "{what} contains: {found:?}");
    }
}

/// Walks every flow of the contract against a fresh server, asserting each
/// step's status, and returns everything secret it handled.
async fn run_every_flow(api: &mut Api) -> Secrets {
    let mut s = Secrets::default();
    let alice = "alice";
    let alice_pw = "alice correct horse 1 Ünïcode";
    let bob = "bob.b";
    let bob_pw = "bob battery staple 2";
    let wrong_pw = "definitely-the-wrong-password-77";
    s.add_password("alice", alice_pw);
    s.add_password("bob", bob_pw);
    s.add_password("wrong", wrong_pw);

    // Signup with MFA: secret and recovery codes.
    let r = api.signup(alice, alice_pw, true).await;
    r.expect_status(201);
    let body = r.json();
    let uri = r.str_field("provisioning_uri");
    let alice_b32 = secret_of(&uri);
    let alice_secret = secret_bytes(&alice_b32);
    let alice_recovery = recovery_codes_of(&body);
    s.add_secret("alice", &alice_b32);
    s.add_recovery_codes("alice", &alice_recovery);

    // The QR code, both formats, while enrollment is unconfirmed.
    let r = api
        .post(&format!("/qrcode/{alice}"), json!({"password": alice_pw}))
        .await;
    r.expect_status(200);
    assert_eq!(r.header("content-type").as_deref(), Some("image/png"));
    assert!(r.body.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG image");
    let r = api
        .post(
            &format!("/qrcode/{alice}?format=svg"),
            json!({"password": alice_pw}),
        )
        .await;
    r.expect_status(200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("image/svg+xml")),
        "svg content type"
    );

    // A failed login (the wrong password must not leak either).
    api.login(alice, wrong_pw)
        .await
        .expect_error(401, "invalid_credentials");

    // Login + TOTP.
    let r = api.login(alice, alice_pw).await;
    r.expect_status(200);
    let m1 = r.str_field("mfa_token");
    s.add_token("mfa_token alice#1", &m1);
    let (c1, _) = current_code(&alice_secret);
    s.codes.push(c1.clone());
    let r = api.login_2fa(alice, &c1, &m1).await;
    r.expect_status(200);
    let t1 = r.str_field("token");
    s.add_token("session alice#1", &t1);

    // /me
    let r = api.get_me(&t1).await;
    r.expect_status(200);
    assert_eq!(r.json()["username"], alice);
    assert_eq!(r.json()["mfa_enabled"], true);

    // Login + recovery code.
    let r = api.login(alice, alice_pw).await;
    r.expect_status(200);
    let m2 = r.str_field("mfa_token");
    s.add_token("mfa_token alice#2", &m2);
    let r = api.login_2fa(alice, &alice_recovery[0], &m2).await;
    r.expect_status(200);
    let t2 = r.str_field("token");
    s.add_token("session alice#2", &t2);

    // Bob: signup without MFA, then enable-mfa, then login with TOTP.
    api.signup(bob, bob_pw, false).await.expect_status(201);
    let r = api.login(bob, bob_pw).await;
    r.expect_status(200);
    let tb0 = r.str_field("token");
    s.add_token("session bob#0", &tb0);
    let r = api
        .post("/enable-mfa", json!({"username": bob, "password": bob_pw}))
        .await;
    r.expect_status(200);
    let body = r.json();
    let bob_b32 = secret_of(body["provisioning_uri"].as_str().expect("provisioning_uri"));
    let bob_secret = secret_bytes(&bob_b32);
    let bob_recovery = recovery_codes_of(&body);
    s.add_secret("bob", &bob_b32);
    s.add_recovery_codes("bob", &bob_recovery);
    let r = api.login(bob, bob_pw).await;
    r.expect_status(200);
    let m3 = r.str_field("mfa_token");
    s.add_token("mfa_token bob#3", &m3);
    let (cb, _) = current_code(&bob_secret);
    s.codes.push(cb.clone());
    let r = api.login_2fa(bob, &cb, &m3).await;
    r.expect_status(200);
    let tb = r.str_field("token");
    s.add_token("session bob#1", &tb);

    // Disable MFA for alice with a second recovery code, then log in plainly.
    let r = api
        .post(
            "/disable-mfa",
            json!({"username": alice, "password": alice_pw, "token": alice_recovery[1]}),
        )
        .await;
    r.expect_status(200);
    assert_eq!(r.json()["message"], "MFA disabled successfully");
    let r = api.login(alice, alice_pw).await;
    r.expect_status(200);
    let t3 = r.str_field("token");
    s.add_token("session alice#3", &t3);

    // Logout kills the token.
    let r = api.logout(&t1).await;
    r.expect_status(204);
    api.get_me(&t1).await.expect_error(401, "unauthorized");
    api.get_me(&t3).await.expect_status(200);

    api.get("/healthz").await.expect_status(200);
    s
}

fn read_all_files(dir: &Path, skip: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path != skip {
                let mut bytes = Vec::new();
                File::open(&path)
                    .and_then(|mut f| f.read_to_end(&mut bytes))
                    .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
                out.insert(path, bytes);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test]
async fn users_replay_marks_and_lockouts_survive_kill_9_and_restart() {
    // A long lockout so a slow restart cannot outlive it.
    let Some(mut server) =
        ServerProcess::start_with(&["--lockout-base-delay", "600"], "info").await
    else {
        return;
    };
    let mut api = Api::new(&server);

    // A: MFA, one accepted code C.
    let (a, a_pw) = ("Alice.Durable", "alice durable password");
    let r = api.signup(a, a_pw, true).await;
    r.expect_status(201);
    let secret = secret_bytes(&secret_of(&r.str_field("provisioning_uri")));
    let r = api.login(a, a_pw).await;
    r.expect_status(200);
    let mfa = r.str_field("mfa_token");
    let (c, step_c) = current_code(&secret);
    let r = api.login_2fa(a, &c, &mfa).await;
    r.expect_status(200);
    let session = r.str_field("token");
    api.get_me(&session).await.expect_status(200);

    // B: locked out by five wrong passwords.
    let (b, b_pw) = ("bob-locked", "bob right password");
    api.signup(b, b_pw, false).await.expect_status(201);
    for i in 0..5 {
        api.login(b, &format!("wrong password {i}"))
            .await
            .expect_error(401, "invalid_credentials");
    }
    let r = api.login(b, b_pw).await;
    r.expect_error(429, "too_many_attempts");
    assert!(r.header("retry-after").is_some(), "429 carries Retry-After");

    // C: a plain account created just before the crash.
    let (c_user, c_pw) = ("carol", "carol plain password");
    api.signup(c_user, c_pw, false).await.expect_status(201);

    server.kill9();
    server.restart();
    let mut api = Api::new(&server);

    // Code C is still spent, even with a fresh mfa_token.
    let r = api.login(a, a_pw).await;
    r.expect_status(200);
    let mfa2 = r.str_field("mfa_token");
    assert_ne!(mfa, mfa2);
    let r = api.login_2fa(a, &c, &mfa2).await;
    r.expect_error(401, "invalid_otp");
    assert_eq!(r.json()["detail"], "Invalid OTP");
    // ...while a later step's code works (so the secret survived: the key file
    // was reused, not regenerated).
    let now = unix_now();
    let later_step = (step_c + 1).max(now / 30);
    let later = code_at(&TotpParams::default(), &secret, later_step * 30);
    let r = api.login_2fa(a, &later, &mfa2).await;
    r.expect_status(200);
    assert_eq!(r.json()["message"], "Login successful");

    // B is still locked, even with the right password.
    let r = api.login(b, b_pw).await;
    r.expect_error(429, "too_many_attempts");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After is whole seconds");
    assert!((1..=600).contains(&retry), "Retry-After {retry}");

    // Carol survived.
    let r = api.login(c_user, c_pw).await;
    r.expect_status(200);
    assert_eq!(r.json()["message"], "Login successful");

    // The session from before the crash still works.
    let r = api.get_me(&session).await;
    r.expect_status(200);
    assert_eq!(r.json()["username"], a);
    assert_eq!(r.json()["mfa_enabled"], true);
}

/// `pg_dump` of the PostgreSQL installation the test cluster runs on (looked
/// up as `pg.rs` looks up `initdb`), or from `PATH`.
fn pg_dump() -> PathBuf {
    let has = |dir: &Path| dir.join("pg_dump").is_file().then(|| dir.join("pg_dump"));
    if let Some(dir) = std::env::var_os(pg::BIN_ENV) {
        return has(Path::new(&dir)).expect("pg_dump next to initdb in $TWOFACTOR_PG_BIN");
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && let Some(found) = has(Path::new(String::from_utf8_lossy(&out.stdout).trim()))
    {
        return found;
    }
    let mut versions: Vec<(u64, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e
                .file_name()
                .to_string_lossy()
                .split('.')
                .next()?
                .parse()
                .ok()?;
            Some((v, has(&e.path().join("bin"))?))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, p)| p)
        .unwrap_or_else(|| PathBuf::from("pg_dump"))
}

/// Everything stored in the server's PostgreSQL database, as a plain-SQL
/// data-only dump (run as the cluster's trusted superuser over TCP).
fn dump_database(database_url: &str) -> Vec<u8> {
    let out = Command::new(pg_dump())
        .args(["--data-only", "--no-owner", "--dbname", database_url])
        .stdin(Stdio::null())
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "pg_dump failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        find_all(&out.stdout, b"COPY public.users").len() == 1,
        "the dump holds the users table:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    out.stdout
}

/// What the service stored: every file of the data directory but the key
/// file, plus a `pg_dump` of the database on PostgreSQL.
fn stored_data(server: &ServerProcess) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut stored = read_all_files(server.data.path(), &server.key_path());
    if backend::current() == Backend::Postgres {
        stored.insert(
            PathBuf::from(format!("pg_dump of {}", server.database_url)),
            dump_database(&server.database_url),
        );
    }
    stored
}

#[tokio::test]
async fn the_database_holds_no_password_secret_code_or_token() {
    let Some(mut server) = ServerProcess::start().await else {
        return;
    };
    let mut api = Api::new(&server);
    let secrets = run_every_flow(&mut api).await;
    let key = server.key_path();
    // While it runs (on SQLite the WAL still holds the latest writes)...
    for (path, bytes) in stored_data(&server) {
        secrets.assert_absent_from(&format!("{} (server running)", path.display()), &bytes);
    }
    // ...and after a graceful stop (SQLite: checkpointed into the main file).
    let (status, _) = server.terminate();
    assert!(status.success(), "graceful stop exits 0, got {status}");

    let meta = std::fs::metadata(&key).expect("the key file was created");
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "key file mode is {:o}",
            meta.permissions().mode() & 0o777
        );
    }

    let stored = stored_data(&server);
    if backend::current() == Backend::Postgres {
        // The dump really holds the rows (usernames are stored in the clear).
        let dump = stored
            .iter()
            .find_map(|(what, bytes)| {
                what.to_string_lossy()
                    .starts_with("pg_dump of")
                    .then_some(bytes)
            })
            .expect("the pg_dump");
        assert!(!find_all(dump, b"bob.b").is_empty(), "no rows in the dump");
    }
    if backend::current() == Backend::Sqlite {
        assert!(
            stored.keys().any(|p| p == &server.db_path()),
            "the database file exists: {:?}",
            stored.keys().collect::<Vec<_>>()
        );
        assert!(
            !stored[&server.db_path()].is_empty(),
            "the database file is not empty"
        );
    }
    for (path, bytes) in &stored {
        secrets.assert_absent_from(&path.display().to_string(), bytes);
    }
}

#[tokio::test]
async fn logs_never_contain_passwords_secrets_codes_or_tokens() {
    let Some(mut server) = ServerProcess::start_with(&[], "debug").await else {
        return;
    };
    let mut api = Api::new(&server);
    let secrets = run_every_flow(&mut api).await;
    let (status, _) = server.terminate();
    assert!(status.success(), "graceful stop exits 0, got {status}");

    let log = std::fs::read(server.current_stderr_path()).expect("stderr log");
    assert!(
        !log.is_empty(),
        "the server logged something at debug level"
    );
    secrets.assert_absent_from("the server's stderr (RUST_LOG=debug)", &log);

    // At least one line per request, per path.
    let text = String::from_utf8_lossy(&log);
    let mut per_path: BTreeMap<&str, usize> = BTreeMap::new();
    for path in &api.requests {
        *per_path.entry(path.as_str()).or_default() += 1;
    }
    for (path, sent) in per_path {
        // A per-request line may name the matched route rather than the path.
        let route = if path.starts_with("/qrcode/") {
            Some("/qrcode/{username}")
        } else {
            None
        };
        let lines = text
            .lines()
            .filter(|l| mentions_path(l, path) || route.is_some_and(|r| l.contains(r)))
            .count();
        assert!(
            lines >= sent,
            "{sent} requests to {path} but only {lines} log lines mention it"
        );
    }
}

#[tokio::test]
async fn the_code_subcommand_matches_the_server() {
    // Nothing here depends on the database: run it in the SQLite binary only
    // rather than twice.
    if backend::current() != Backend::Sqlite {
        return;
    }
    // The oracle first: RFC 6238 appendix B, T = 59 s.
    let rfc_sha1 = b"12345678901234567890";
    let p8 = |algorithm| TotpParams {
        algorithm,
        digits: 8,
        period: 30,
    };
    assert_eq!(code_at(&p8(Algorithm::Sha1), rfc_sha1, 59), "94287082");
    assert_eq!(
        code_at(
            &p8(Algorithm::Sha256),
            b"12345678901234567890123456789012",
            59
        ),
        "46119246"
    );
    assert_eq!(
        code_at(
            &p8(Algorithm::Sha512),
            b"1234567890123456789012345678901234567890123456789012345678901234",
            59
        ),
        "90693936"
    );

    // 160-bit secret "12345678901234567890" in base32.
    let b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    let secret = secret_bytes(b32);
    assert_eq!(secret, rfc_sha1);

    let run = |args: &[&str]| -> (String, u64, u64) {
        let before = unix_now();
        let out = Command::new(BIN)
            .arg("code")
            .args(args)
            .output()
            .expect("run twofactor code");
        let after = unix_now();
        assert!(
            out.status.success(),
            "twofactor code {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).expect("utf-8 stdout");
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 1, "one line on stdout, got {stdout:?}");
        (lines[0].to_string(), before, after)
    };

    // Defaults: SHA1, 6 digits, 30 s — as `oathtool --totp -b`.
    let (code, before, after) = run(&[b32]);
    let params = TotpParams::default();
    let expected = [
        code_at(&params, &secret, before),
        code_at(&params, &secret, after),
    ];
    assert!(
        expected.contains(&code),
        "twofactor code printed {code:?}, expected one of {expected:?}"
    );
    assert_eq!(code.len(), 6);

    // Non-default parameters.
    let (code, before, after) = run(&[
        b32,
        "--algorithm",
        "sha256",
        "--digits",
        "8",
        "--period",
        "60",
    ]);
    let params = TotpParams {
        algorithm: Algorithm::Sha256,
        digits: 8,
        period: 60,
    };
    let expected = [
        code_at(&params, &secret, before),
        code_at(&params, &secret, after),
    ];
    assert!(
        expected.contains(&code),
        "twofactor code --algorithm sha256 --digits 8 --period 60 printed {code:?}, expected one of {expected:?}"
    );
    assert_eq!(code.len(), 8);

    // SHA512 too, since the server offers it.
    let (code, before, after) = run(&[b32, "--algorithm", "sha512"]);
    let params = TotpParams {
        algorithm: Algorithm::Sha512,
        digits: 6,
        period: 30,
    };
    let expected = [
        code_at(&params, &secret, before),
        code_at(&params, &secret, after),
    ];
    assert!(expected.contains(&code), "sha512: {code:?} vs {expected:?}");

    // A code from the subcommand is accepted by a real server.
    let Some(server) = ServerProcess::start().await else {
        return;
    };
    let mut api = Api::new(&server);
    let r = api.signup("dave", "dave's password", true).await;
    r.expect_status(201);
    let b32 = secret_of(&r.str_field("provisioning_uri"));
    let (code, _, _) = run(&[&b32]);
    let r = api.login("dave", "dave's password").await;
    let mfa = r.str_field("mfa_token");
    api.login_2fa("dave", &code, &mfa).await.expect_status(200);
}

#[tokio::test]
async fn sigterm_stops_the_server_gracefully() {
    let Some(mut server) = ServerProcess::start().await else {
        return;
    };
    // Leave a keep-alive connection open: a graceful stop must not wait on it.
    let http = reqwest::Client::new();
    let r = http
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status().as_u16(), 200);
    let _ = r.bytes().await;
    let pid = server.pid();
    let (status, took) = server.terminate();
    assert!(
        status.success(),
        "SIGTERM should end the server with exit status 0, got {status}"
    );
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    // And the port is closed.
    let r = reqwest::Client::new()
        .get(format!("{}/healthz", server.base))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(r.is_err(), "pid {pid} is gone, the port answers no more");
    drop(http);
}

#[tokio::test]
async fn a_graceful_stop_leaves_sqlite_without_a_wal() {
    let Some(mut server) = ServerProcess::start().await else {
        return;
    };
    if !server.db_path().exists() {
        // PostgreSQL.
        return;
    }
    let mut api = Api::new(&server);
    run_every_flow(&mut api).await;
    let mut wal = server.db_path().into_os_string();
    wal.push("-wal");
    assert!(
        std::path::Path::new(&wal).exists(),
        "a running server has a WAL"
    );
    let (status, _) = server.terminate();
    assert!(status.success(), "graceful stop exits 0, got {status}");
    assert!(
        !std::path::Path::new(&wal).exists(),
        "the last connection to close copies the WAL into the database and removes it"
    );
}
