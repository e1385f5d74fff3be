//! `x-request-id`: taken from the request when it is a sane token (so a
//! proxy's id carries through), generated otherwise, put on the request's
//! log span and returned on the response.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::crypto::fill_random;

const HEADER: &str = "x-request-id";

/// The request's id, in the request's extensions.
#[derive(Clone, Debug)]
pub struct RequestId(String);

impl RequestId {
    /// The id as sent and logged.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn acceptable(value: &HeaderValue) -> Option<&str> {
    let s = value.to_str().ok()?;
    let ok = (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then_some(s)
}

fn generate() -> String {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes);
    hex::encode(bytes)
}

/// Middleware: tags the request and its response with an id.
pub async fn tag(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(acceptable)
        .map_or_else(generate, str::to_owned);
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(req).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_tokens_are_taken_from_the_client() {
        let ok = |s: &'static str| acceptable(&HeaderValue::from_static(s)).is_some();
        assert!(ok("abc-123_x.y:z"));
        assert!(!ok("has space"));
        assert!(!ok(""));
        assert!(acceptable(&HeaderValue::from_str(&"a".repeat(129)).unwrap()).is_none());
        assert_eq!(generate().len(), 32);
    }
}
