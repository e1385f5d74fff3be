//! Building the service from a [`Config`] and running it: key, database,
//! hasher, router, listener, background clean-up, graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use crate::auth::password::Hasher;
use crate::clock::Clock;
use crate::config::Config;
use crate::db::{Db, challenges, credentials, sessions, throttle};
use crate::http::forwarded::TrustedProxies;
use crate::service::{AppState, Services};

/// Counters untouched this long (and not locked) are forgotten.
const THROTTLE_MEMORY: i64 = 7 * 24 * 3600;

/// A built service, bound to its port, not yet serving.
pub struct App {
    listener: TcpListener,
    state: AppState,
}

impl App {
    /// Builds the service on the system clock.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        App::build_with_clock(config, Clock::system()).await
    }

    /// Builds the service on `clock` (tests move it forward).
    pub async fn build_with_clock(config: Config, clock: Clock) -> anyhow::Result<App> {
        let sealer = config.sealer()?;
        let db = Db::connect(config.database_url.expose_secret(), config.pool_settings()).await?;
        let workers = match config.hash_workers {
            Some(n) => n as usize,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let hasher = Hasher::new(
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.argon2_parallelism,
            workers,
            config.hash_queue as usize,
        )?;
        let hasher_wait = hasher.wait_histogram();
        let state = Arc::new(Services {
            db,
            hasher,
            sealer,
            clock,
            issuer: config.issuer.clone(),
            totp: config.totp_params(),
            skew: config.totp_skew,
            max_drift: config.totp_max_drift as i64,
            lockout: config.lockout_policy(),
            session_ttl: config.session_ttl as i64,
            mfa_token_ttl: config.mfa_token_ttl as i64,
            metrics: crate::metrics::Metrics::new(hasher_wait),
            trusted_proxies: TrustedProxies::new(config.trusted_proxies.clone()),
        });
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("binding {}", config.bind))?;
        Ok(App { listener, state })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has an address")
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn run(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests and
    /// closes the database's connections.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let cleaner = tokio::spawn(clean_up(self.state.clone()));
        let state = self.state.clone();
        let router = crate::http::router(self.state);
        let served = axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP");
        cleaner.abort();
        state.db.close().await;
        served
    }
}

/// Deletes expired sessions, challenges, pending devices and stale lockout
/// counters, once a minute.
async fn clean_up(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let now = state.clock.now();
        let result = async {
            let mut tx = state.db.begin_write().await?;
            sessions::purge_expired(&mut *tx, now).await?;
            challenges::purge_expired(&mut *tx, now).await?;
            credentials::purge_expired(&mut *tx, now).await?;
            throttle::purge_stale(&mut *tx, now - THROTTLE_MEMORY, now).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "periodic clean-up failed");
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
