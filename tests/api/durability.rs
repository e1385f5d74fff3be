//! Durability under load: the real binary takes concurrent signups (half of
//! them enrolling in MFA), is killed with SIGKILL while requests are in
//! flight, and restarted on the same database and key file. Every signup that
//! was acknowledged with a 201 must then be able to log in; requests cut off
//! by the kill may or may not have been committed, and nothing is asserted
//! about them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};
use twofactor::auth::totp::{self, TotpParams};

use super::helpers::secret_from_uri;
use super::process::ServerProcess;

/// Concurrent clients signing up users in a loop.
const CLIENTS: usize = 32;
/// Acknowledged signups to see before the kill.
const KILL_AFTER: usize = 150;
/// Bound on the wait for `KILL_AFTER` acknowledgements.
const LOAD_DEADLINE: Duration = Duration::from_secs(120);

/// A signup the server acknowledged with 201.
#[derive(Clone, Debug)]
struct Acknowledged {
    username: String,
    password: String,
    /// The TOTP secret from the 201's `provisioning_uri` (MFA signups).
    secret: Option<Vec<u8>>,
}

/// How one client's loop ended.
#[derive(Default)]
struct ClientEnd {
    /// Answers other than 201 (there should be none).
    unexpected: Vec<String>,
    /// Whether a request failed in transport (cut off by the kill).
    cut_off: bool,
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Client `n`: signs up `c<n>-<i>` for i = 0, 1, … (with MFA when n is even)
/// until a request fails in transport or `stop` is set.
async fn sign_up_in_a_loop(
    n: usize,
    base: String,
    http: reqwest::Client,
    acknowledged: Arc<Mutex<Vec<Acknowledged>>>,
    count: watch::Sender<usize>,
    stop: Arc<AtomicBool>,
) -> ClientEnd {
    let mut end = ClientEnd::default();
    let enable_mfa = n.is_multiple_of(2);
    for i in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let username = format!("c{n}-{i}");
        let password = format!("password of {username}");
        let sent = http
            .post(format!("{base}/signup"))
            .json(&json!({"username": username, "password": password, "enable_mfa": enable_mfa}))
            .send()
            .await;
        let Ok(resp) = sent else {
            end.cut_off = true;
            break;
        };
        let status = resp.status();
        // A 201 whose body never fully arrived was not acknowledged.
        let Ok(body) = resp.bytes().await else {
            end.cut_off = true;
            break;
        };
        if status != StatusCode::CREATED {
            let body = String::from_utf8_lossy(&body);
            end.unexpected.push(format!("{username}: {status} {body}"));
            continue;
        }
        let body: Value = serde_json::from_slice(&body).expect("201 body is JSON");
        let secret = enable_mfa.then(|| {
            let uri = body["provisioning_uri"]
                .as_str()
                .unwrap_or_else(|| panic!("no provisioning_uri in {body}"));
            secret_from_uri(uri)
        });
        acknowledged.lock().unwrap().push(Acknowledged {
            username,
            password,
            secret,
        });
        count.send_modify(|c| *c += 1);
    }
    end
}

/// Logs `user` in (password, then a TOTP code from the recorded secret for
/// MFA users) and checks the session on /me; `Err` says what went wrong.
async fn log_in(base: &str, http: &reqwest::Client, user: &Acknowledged) -> Result<(), String> {
    let name = &user.username;
    let post = |path: &str, body: Value| http.post(format!("{base}{path}")).json(&body).send();
    let resp = post(
        "/login",
        json!({"username": name, "password": user.password}),
    )
    .await
    .map_err(|e| format!("{name}: /login failed: {e}"))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status != StatusCode::OK {
        return Err(format!("{name}: /login answered {status} {body}"));
    }
    let token = match &user.secret {
        None => body["token"].as_str().map(str::to_string),
        Some(secret) => {
            let Some(mfa_token) = body["mfa_token"].as_str() else {
                return Err(format!("{name}: MFA signup but /login gave {body}"));
            };
            let code = totp::generate(&TotpParams::default(), secret, unix_now());
            let resp = post(
                "/login-2fa",
                json!({"username": name, "token": code, "mfa_token": mfa_token}),
            )
            .await
            .map_err(|e| format!("{name}: /login-2fa failed: {e}"))?;
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if status != StatusCode::OK {
                return Err(format!("{name}: /login-2fa answered {status} {body}"));
            }
            body["token"].as_str().map(str::to_string)
        }
    };
    let token = token.ok_or_else(|| format!("{name}: no session token"))?;
    let resp = http
        .get(format!("{base}/me"))
        .bearer_auth(&token)
        .send()
        .await
        .map_err(|e| format!("{name}: /me failed: {e}"))?;
    let status = resp.status();
    let me: Value = resp.json().await.unwrap_or(Value::Null);
    if status != StatusCode::OK || me["username"] != name.as_str() {
        return Err(format!("{name}: /me answered {status} {me}"));
    }
    if me["mfa_enabled"] != user.secret.is_some() {
        return Err(format!("{name}: /me says {me}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_signup_survives_kill_9_under_load() {
    // The harness already passes cheap argon2 flags
    // (--argon2-memory-kib 64 --argon2-iterations 1).
    let Some(mut server) = ServerProcess::start().await else {
        return;
    };
    let http = http_client();
    let acknowledged = Arc::new(Mutex::new(Vec::<Acknowledged>::new()));
    let (count_tx, mut count_rx) = watch::channel(0usize);
    let stop = Arc::new(AtomicBool::new(false));

    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            tokio::spawn(sign_up_in_a_loop(
                n,
                server.base().to_string(),
                http.clone(),
                Arc::clone(&acknowledged),
                count_tx.clone(),
                Arc::clone(&stop),
            ))
        })
        .collect();
    drop(count_tx);

    let reached = tokio::time::timeout(LOAD_DEADLINE, count_rx.wait_for(|c| *c >= KILL_AFTER))
        .await
        .map(|r| r.is_ok());
    // Kill without waiting for the clients: their requests are in flight.
    server.kill9();
    stop.store(true, Ordering::SeqCst);
    assert!(
        matches!(reached, Ok(true)),
        "{KILL_AFTER} signups were not acknowledged within {LOAD_DEADLINE:?} \
         (got {})",
        *count_rx.borrow()
    );

    let mut unexpected = Vec::new();
    let mut cut_off = 0;
    for client in clients {
        let end = client.await.expect("client task did not panic");
        unexpected.extend(end.unexpected);
        cut_off += usize::from(end.cut_off);
    }
    assert!(
        unexpected.is_empty(),
        "signups of fresh usernames answered other than 201: {unexpected:#?}"
    );
    assert!(
        cut_off > 0,
        "no request was in flight at the kill, so this proved nothing"
    );
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= KILL_AFTER);
    let with_mfa = acknowledged.iter().filter(|u| u.secret.is_some()).count();
    assert!(
        with_mfa > 0 && with_mfa < acknowledged.len(),
        "both kinds of signup were acknowledged ({with_mfa} of {} with MFA)",
        acknowledged.len()
    );

    eprintln!(
        "{} signups acknowledged ({with_mfa} with MFA); {cut_off} of {CLIENTS} clients \
         had a request cut off by the kill",
        acknowledged.len()
    );

    // Same database, same key file.
    server.restart();
    let base = server.base().to_string();
    let http = http_client();
    let gate = Arc::new(Semaphore::new(16));
    let checks: Vec<_> = acknowledged
        .into_iter()
        .map(|user| {
            let (base, http, gate) = (base.clone(), http.clone(), Arc::clone(&gate));
            tokio::spawn(async move {
                let _permit = gate.acquire().await.expect("semaphore open");
                log_in(&base, &http, &user).await
            })
        })
        .collect();
    let mut lost = Vec::new();
    for check in checks {
        if let Err(e) = check.await.expect("login task did not panic") {
            lost.push(e);
        }
    }
    assert!(
        lost.is_empty(),
        "{} acknowledged signup(s) cannot log in after kill -9 and restart: {lost:#?}",
        lost.len()
    );
}
