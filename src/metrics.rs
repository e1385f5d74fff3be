//! Prometheus metrics, one registry per running service (no global state,
//! so several services in one process — as in tests — don't mix figures).
//! Labels are bounded: routes are the matched templates (`/qrcode/{username}`),
//! never raw paths, and no label ever holds a username or a secret.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::auth::lockout::Factor;

/// Labels of the HTTP request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method.
    pub method: String,
    /// Matched route template, or `unmatched`.
    pub route: String,
    /// Response status.
    pub status: u16,
}

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// HTTP method.
    pub method: String,
    /// Matched route template, or `unmatched`.
    pub route: String,
}

/// Labels of login outcomes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoginLabels {
    /// `password`, `totp`, `recovery_code` or `second_factor` (a failed code).
    pub factor: &'static str,
    /// `success`, `failure` or `locked`.
    pub outcome: &'static str,
}

/// Labels naming a factor.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FactorLabels {
    /// `password` or `second_factor`.
    pub factor: &'static str,
}

/// Labels of account changes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    /// `device_added`, `device_confirmed`, `device_removed`,
    /// `parameters_ignored`, `recovery_codes_regenerated`,
    /// `password_changed`, `weak_password_refused`, `session_revoked` or
    /// `drift_observed`.
    pub action: &'static str,
}

/// Labels of the build-info gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~13 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

/// Every metric the service records.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    logins: Family<LoginLabels, Counter>,
    second_factor_failures: Counter,
    replays_refused: Counter,
    lockouts: Family<FactorLabels, Counter>,
    recovery_codes_used: Counter,
    account_actions: Family<ActionLabels, Counter>,
    hash_queue_depth: Gauge,
}

impl Metrics {
    /// Registers every metric; `hash_wait` is the password hasher's own
    /// queue-wait histogram.
    pub fn new(hash_wait: Histogram) -> Metrics {
        let mut registry = Registry::with_prefix("twofactor");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        let latency = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register(
            "logins",
            "Login steps by factor and outcome",
            logins.clone(),
        );
        let second_factor_failures = Counter::default();
        registry.register(
            "second_factor_failures",
            "Failed second-factor attempts (login-2fa and disable-mfa)",
            second_factor_failures.clone(),
        );
        let replays_refused = Counter::default();
        registry.register(
            "replays_refused",
            "TOTP codes refused because their step was already used",
            replays_refused.clone(),
        );
        let lockouts = Family::<FactorLabels, Counter>::default();
        registry.register("lockouts", "Lockouts started, by factor", lockouts.clone());
        let recovery_codes_used = Counter::default();
        registry.register(
            "recovery_codes_used",
            "Recovery codes spent",
            recovery_codes_used.clone(),
        );
        let account_actions = Family::<ActionLabels, Counter>::default();
        registry.register(
            "account_actions",
            "Account changes: devices, recovery codes, passwords, sessions, clock drift",
            account_actions.clone(),
        );
        let hash_queue_depth = Gauge::default();
        registry.register(
            "password_hash_queue_depth",
            "Password hashes running or waiting",
            hash_queue_depth.clone(),
        );
        registry.register(
            "password_hash_wait_seconds",
            "Time a password hash waited for a worker",
            hash_wait,
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "Build information", build);
        Metrics {
            registry,
            requests,
            latency,
            logins,
            second_factor_failures,
            replays_refused,
            lockouts,
            recovery_codes_used,
            account_actions,
            hash_queue_depth,
        }
    }

    /// Records one HTTP request.
    pub fn request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let (method, route) = (method.to_owned(), route.to_owned());
        self.latency
            .get_or_create(&RouteLabels {
                method: method.clone(),
                route: route.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    /// Records a login step.
    pub fn login(&self, factor: &'static str, outcome: &'static str) {
        self.logins
            .get_or_create(&LoginLabels { factor, outcome })
            .inc();
    }

    /// Records a failed second-factor attempt.
    pub fn second_factor_failure(&self) {
        self.second_factor_failures.inc();
    }

    /// Records a refused replay.
    pub fn replay_refused(&self) {
        self.replays_refused.inc();
    }

    /// Records the start of a lockout.
    pub fn lockout(&self, factor: Factor) {
        self.lockouts
            .get_or_create(&FactorLabels {
                factor: factor.as_str(),
            })
            .inc();
    }

    /// Records a spent recovery code.
    pub fn recovery_code_used(&self) {
        self.recovery_codes_used.inc();
    }

    /// Records an account change (see [`ActionLabels`]).
    pub fn account_action(&self, action: &'static str) {
        self.account_actions
            .get_or_create(&ActionLabels { action })
            .inc();
    }

    /// The text exposition, with the hash queue depth read now.
    pub fn render(&self, hash_queue_depth: usize) -> String {
        self.hash_queue_depth.set(hash_queue_depth as i64);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
