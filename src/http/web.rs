//! The web front end at `/`: static HTML, CSS and JavaScript from `web/`,
//! embedded in the binary (no network, no build step), a client of the JSON
//! API. Also owns the browser security headers that every response of the
//! service carries ([`security_headers`]).
//!
//! These pages are not API operations: they are plain axum routes, kept out
//! of the OpenAPI document on purpose.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use sha2::{Digest, Sha256};

use crate::service::AppState;

/// One embedded file.
struct Asset {
    content_type: HeaderValue,
    body: &'static [u8],
    /// Strong validator: a hash of the body, computed once.
    etag: LazyLock<HeaderValue>,
}

/// Defines a static [`Asset`] from a file of `web/`.
macro_rules! asset {
    ($name:ident, $file:literal, $content_type:literal) => {
        static $name: Asset = Asset {
            content_type: HeaderValue::from_static($content_type),
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $file)),
            etag: LazyLock::new(|| etag_of($name.body)),
        };
    };
}

asset!(INDEX, "index.html", "text/html; charset=utf-8");
asset!(SCRIPT, "app.js", "text/javascript; charset=utf-8");
asset!(API_SCRIPT, "api.js", "text/javascript; charset=utf-8");
asset!(UI_SCRIPT, "ui.js", "text/javascript; charset=utf-8");
asset!(ENROLL_SCRIPT, "enroll.js", "text/javascript; charset=utf-8");
asset!(
    ACCOUNT_SCRIPT,
    "account.js",
    "text/javascript; charset=utf-8"
);
asset!(
    DEVICES_SCRIPT,
    "devices.js",
    "text/javascript; charset=utf-8"
);
asset!(STYLE, "app.css", "text/css; charset=utf-8");
asset!(ICON, "favicon.svg", "image/svg+xml");

fn etag_of(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    let tag = format!("\"{}\"", hex::encode(&digest[..12]));
    // Hex between quotes is always a valid header value.
    HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"web\""))
}

/// `GET /`, the page's ES modules (`/app.js` imports the others), `/app.css`,
/// `/favicon.svg`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", file(&INDEX))
        .route("/app.js", file(&SCRIPT))
        .route("/api.js", file(&API_SCRIPT))
        .route("/ui.js", file(&UI_SCRIPT))
        .route("/enroll.js", file(&ENROLL_SCRIPT))
        .route("/account.js", file(&ACCOUNT_SCRIPT))
        .route("/devices.js", file(&DEVICES_SCRIPT))
        .route("/app.css", file(&STYLE))
        .route("/favicon.svg", file(&ICON))
}

fn file(asset: &'static Asset) -> MethodRouter<AppState> {
    get(move |headers: HeaderMap| async move { serve(asset, &headers) })
}

/// The asset, or 304 when the browser's copy is current. `no-cache`: the
/// browser revalidates every time, so a new binary is picked up at once.
fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let etag = asset.etag.clone();
    let cached = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().as_bytes() == etag.as_bytes()));
    let headers = [(header::CACHE_CONTROL, NO_CACHE), (header::ETAG, etag)];
    if cached {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (
        headers,
        [(header::CONTENT_TYPE, asset.content_type.clone())],
        asset.body,
    )
        .into_response()
}

const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");

/// The policy of every response: nothing but this origin's own script and
/// style (no inline code), no framing, no plugins, no base or form tricks.
/// `blob:` images are the enrollment QR code (an SVG from /qrcode), `data:`
/// images the QR code of a device added from the account page (a PNG
/// `data:` URI in the answer of `POST /me/devices`).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// The policy of `/docs`: Swagger UI (vendored) sets inline styles and shows
/// `data:` images, so styles are relaxed there; scripts are still only the
/// server's own files.
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

// Checked when compiling: `from_static` of an invalid value fails the build.
const CSP_VALUE: HeaderValue = HeaderValue::from_static(CSP);
const DOCS_CSP_VALUE: HeaderValue = HeaderValue::from_static(DOCS_CSP);
const DENY: HeaderValue = HeaderValue::from_static("DENY");
const NO_REFERRER: HeaderValue = HeaderValue::from_static("no-referrer");
const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");

/// Adds the browser security headers to every response: CSP (relaxed on
/// `/docs`), `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`,
/// `X-Content-Type-Options: nosniff`. Headers a handler set are kept.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let docs = req.uri().path().starts_with("/docs");
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    let csp = if docs { DOCS_CSP_VALUE } else { CSP_VALUE };
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, csp),
        (header::X_FRAME_OPTIONS, DENY),
        (header::REFERRER_POLICY, NO_REFERRER),
        (header::X_CONTENT_TYPE_OPTIONS, NOSNIFF),
    ] {
        headers.entry(name).or_insert(value);
    }
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn etags_are_quoted_and_differ_by_content() {
        let a = super::etag_of(b"a");
        let b = super::etag_of(b"b");
        assert_ne!(a, b);
        let a = a.to_str().unwrap();
        assert!(
            a.starts_with('"') && a.ends_with('"') && a.len() == 26,
            "{a}"
        );
    }
}
