//! The HTTP layer: one file per resource, each exporting `router()`, merged
//! here with the JSON 404/405 fallbacks, the body limit, panic catching and
//! one log line per request.

mod error;
mod extract;
mod health;
mod login;
mod mfa;
mod qrcode;
mod session;
mod signup;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use error::Error;

use crate::service::AppState;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 16 * 1024;

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(signup::router())
        .merge(login::router())
        .merge(qrcode::router())
        .merge(mfa::router())
        .merge(session::router())
        .merge(health::router())
        .fallback(|| async { Error::NotFound })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(CatchPanicLayer::custom(|_| panic_response()))
        .layer(
            TraceLayer::new_for_http()
                // The path only: no query, headers or body, so no secret.
                .make_span_with(|req: &axum::http::Request<_>| {
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
                })
                .on_request(())
                .on_response(
                    DefaultOnResponse::new()
                        .level(Level::INFO)
                        .latency_unit(tower_http::LatencyUnit::Micros),
                )
                .on_failure(()),
        )
        .layer(axum::middleware::from_fn(deadline))
        .with_state(state)
}

/// Longest a request may take before it is answered 503 `busy`.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);

/// Bounds every request's time; tower-http's own timeout answers with an
/// empty body, and every error here must be JSON.
async fn deadline(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match tokio::time::timeout(REQUEST_DEADLINE, next.run(req)).await {
        Ok(response) => response,
        Err(_) => Error::Busy.into_response(),
    }
}

fn panic_response() -> Response {
    // The panic message may hold anything; it is not logged or sent.
    tracing::error!("a request handler panicked");
    Error::Internal(anyhow::anyhow!("handler panicked")).into_response()
}
