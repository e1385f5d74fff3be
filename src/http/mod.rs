//! The HTTP layer: one file per resource, each exporting `router()`, merged
//! here with the JSON 404/405 fallbacks, the body limit, panic catching and
//! one log line per request.

mod account;
mod devices;
mod error;
mod extract;
pub mod forwarded;
mod health;
mod login;
mod mfa;
pub mod openapi;
mod qrcode;
mod request_id;
mod session;
mod signup;
mod web;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

pub use error::Error;

use crate::service::AppState;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 16 * 1024;

/// Every documented route, with the OpenAPI document they make.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(signup::router())
        .merge(login::router())
        .merge(qrcode::router())
        .merge(mfa::router())
        .merge(session::router())
        .merge(devices::router())
        .merge(account::router())
        .merge(health::router())
}

/// The OpenAPI document served at `/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = api().split_for_parts();
    openapi::finish(&mut doc);
    doc
}

/// The whole service: the API, `/openapi.json` and the `/docs` explorer.
pub fn router(state: AppState) -> Router {
    let (api, mut doc) = api().split_for_parts();
    openapi::finish(&mut doc);
    api.merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .merge(web::router())
        .layer(axum::middleware::from_fn_with_state(state.clone(), count))
        .fallback(|| async { Error::NotFound })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(CatchPanicLayer::custom(|_| panic_response()))
        .layer(
            TraceLayer::new_for_http()
                // The path only: no query, headers or body, so no secret.
                .make_span_with(|req: &axum::http::Request<_>| {
                    let id = req
                        .extensions()
                        .get::<request_id::RequestId>()
                        .map_or("", |id| id.as_str());
                    tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
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
        .layer(axum::middleware::from_fn(request_id::tag))
        .layer(axum::middleware::from_fn(web::security_headers))
        .with_state(state)
}

/// Records every request in the metrics, by matched route template.
async fn count(
    axum::extract::State(app): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16();
    app.metrics
        .request(method.as_str(), &route, status, started.elapsed());
    response
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

#[cfg(test)]
mod tests {
    /// Routes registered with plain axum calls would be missing from the
    /// OpenAPI document; every route must go through `routes!(handler)`.
    #[test]
    fn every_route_is_registered_with_its_documentation() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            // The web front end's pages are not API operations.
            if path.ends_with("web.rs") {
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            let code = source.split("#[cfg(test)]").next().unwrap_or_default();
            for forbidden in [".route(", ".route_service(", ".nest("] {
                assert!(
                    !code.contains(forbidden),
                    "{}: undocumented route via {forbidden}",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn the_document_lists_every_operation() {
        let doc = super::openapi_document();
        let mut ops: Vec<String> = doc
            .paths
            .paths
            .iter()
            .flat_map(|(path, item)| {
                let get = item.get.as_ref().map(|_| format!("GET {path}"));
                let post = item.post.as_ref().map(|_| format!("POST {path}"));
                let delete = item.delete.as_ref().map(|_| format!("DELETE {path}"));
                get.into_iter().chain(post).chain(delete)
            })
            .collect();
        ops.sort();
        assert_eq!(
            ops,
            [
                "DELETE /me/devices/{id}",
                "DELETE /me/sessions/{id}",
                "GET /healthz",
                "GET /me",
                "GET /me/devices",
                "GET /me/events",
                "GET /me/sessions",
                "GET /metrics",
                "GET /readyz",
                "POST /change-password",
                "POST /disable-mfa",
                "POST /enable-mfa",
                "POST /login",
                "POST /login-2fa",
                "POST /logout",
                "POST /me/devices",
                "POST /me/devices/{id}/confirm",
                "POST /me/recovery-codes",
                "POST /qrcode/{username}",
                "POST /signup",
            ]
        );
    }
}
