//! Seeding through the API, as a client would: MFA accounts with a pending
//! `mfa_token` each (for the /login-2fa scenario), accounts without MFA
//! with a session each (for /me), 64 requests in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use twofactor::auth::totp::{TotpParams, decode_secret, generate};

/// The password of every seeded account.
pub const PASSWORD: &str = "bench-Passw0rd-7d1f93a2";

/// An MFA account half way through its login.
pub struct Pending {
    pub username: String,
    pub secret: Vec<u8>,
    pub mfa_token: String,
}

impl Pending {
    /// The /login-2fa body with the code of `unix_time`.
    pub fn body(&self, unix_time: u64) -> String {
        let code = generate(&TotpParams::default(), &self.secret, unix_time);
        json!({"username": self.username, "token": code, "mfa_token": self.mfa_token}).to_string()
    }
}

/// What the scenarios need.
pub struct Seeded {
    pub pending: Vec<Pending>,
    pub sessions: Vec<String>,
}

/// Creates `mfa_users` MFA accounts (signup + /login) and `sessions`
/// accounts without MFA (signup + /login).
pub async fn run(url: &str, mfa_users: usize, sessions: usize) -> anyhow::Result<Seeded> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let (c, u) = (client.clone(), url.to_owned());
    let pending = fan_out(mfa_users, move |i| {
        let (client, url) = (c.clone(), u.clone());
        async move { seed_mfa(&client, &url, &format!("bench_mfa_{i}")).await }
    })
    .await?;
    let u = url.to_owned();
    let sessions = fan_out(sessions, move |i| {
        let (client, url) = (client.clone(), u.clone());
        async move { seed_session(&client, &url, &format!("bench_me_{i}")).await }
    })
    .await?;
    Ok(Seeded { pending, sessions })
}

/// Signs an account up with the default argon2 cost of the running server.
pub async fn signup(
    client: &reqwest::Client,
    url: &str,
    username: &str,
    mfa: bool,
) -> anyhow::Result<Value> {
    post(
        client,
        url,
        "/signup",
        json!({"username": username, "password": PASSWORD, "enable_mfa": mfa}),
        201,
    )
    .await
}

async fn seed_mfa(client: &reqwest::Client, url: &str, username: &str) -> anyhow::Result<Pending> {
    let signed = signup(client, url, username, true).await?;
    let uri = signed["provisioning_uri"]
        .as_str()
        .context("no provisioning_uri")?;
    let secret = uri
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .context("no secret in the provisioning URI")?;
    let secret = decode_secret(secret).map_err(|e| anyhow::anyhow!("bad secret: {e:?}"))?;
    let login = login(client, url, username).await?;
    let mfa_token = login["mfa_token"]
        .as_str()
        .context("no mfa_token")?
        .to_owned();
    Ok(Pending {
        username: username.to_owned(),
        secret,
        mfa_token,
    })
}

async fn seed_session(
    client: &reqwest::Client,
    url: &str,
    username: &str,
) -> anyhow::Result<String> {
    signup(client, url, username, false).await?;
    let login = login(client, url, username).await?;
    Ok(login["token"]
        .as_str()
        .context("no session token")?
        .to_owned())
}

async fn login(client: &reqwest::Client, url: &str, username: &str) -> anyhow::Result<Value> {
    let body = json!({"username": username, "password": PASSWORD});
    post(client, url, "/login", body, 200).await
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    body: Value,
    want: u16,
) -> anyhow::Result<Value> {
    let response = client
        .post(format!("{url}{path}"))
        .json(&body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status != want {
        bail!("POST {path}: {status} {body}");
    }
    Ok(body)
}

/// Runs `job(0..n)` with 64 in flight, keeping the results in order.
async fn fan_out<T, F, Fut>(n: usize, job: F) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (job, next) = (job.clone(), next.clone());
        workers.spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(done);
                }
                done.push((i, job(i).await?));
            }
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(result) = workers.join_next().await {
        all.extend(result??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, t)| t).collect())
}
