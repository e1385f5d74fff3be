//! The web front end at `/`: its files, content types, caching and the
//! browser security headers (on the pages and on the JSON API). The flows
//! themselves are walked in a real browser by `tests/browser/`.

use reqwest::StatusCode;

use super::helpers::spawn_app;

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// The strict policy's directives (every page but /docs).
const STRICT: &[&str] = &[
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
];

fn assert_security_headers(resp: &reqwest::Response, strict: bool) {
    let csp = header(resp, "content-security-policy");
    let what = format!("{} {}", resp.status(), resp.url());
    for directive in ["script-src 'self'", "frame-ancestors 'none'"] {
        assert!(
            csp.contains(directive),
            "{what}: CSP {csp:?} lacks {directive}"
        );
    }
    assert!(!csp.contains("unsafe-eval"), "{what}: {csp}");
    assert!(
        !csp.split(';')
            .any(|d| d.trim().starts_with("script-src") && d.contains("unsafe-inline")),
        "{what}: {csp}"
    );
    if strict {
        for directive in STRICT {
            assert!(
                csp.contains(directive),
                "{what}: CSP {csp:?} lacks {directive}"
            );
        }
        assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    }
    assert_eq!(header(resp, "x-frame-options"), "DENY", "{what}");
    assert_eq!(header(resp, "referrer-policy"), "no-referrer", "{what}");
    assert_eq!(header(resp, "x-content-type-options"), "nosniff", "{what}");
}

/// The page's scripts: ES modules, `app.js` importing the others.
const SCRIPTS: &[&str] = &[
    "/app.js",
    "/api.js",
    "/ui.js",
    "/enroll.js",
    "/account.js",
    "/devices.js",
];

/// The modules a script imports (`from './x.js'`), as paths.
fn imports_of(script: &str) -> Vec<String> {
    script
        .split("from './")
        .skip(1)
        .filter_map(|rest| rest.split_once('\''))
        .map(|(name, _)| format!("/{name}"))
        .collect()
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_their_types_and_headers() {
    let Some(app) = spawn_app().await else { return };
    let mut assets = vec![
        ("/", "text/html; charset=utf-8"),
        ("/app.css", "text/css; charset=utf-8"),
        ("/favicon.svg", "image/svg+xml"),
    ];
    assets.extend(
        SCRIPTS
            .iter()
            .map(|s| (*s, "text/javascript; charset=utf-8")),
    );
    for (path, content_type) in assets {
        let resp = app.get(path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&resp, "content-type"), content_type, "{path}");
        assert_eq!(header(&resp, "cache-control"), "no-cache", "{path}");
        assert!(header(&resp, "etag").starts_with('"'), "{path}: no ETag");
        assert_security_headers(&resp, true);
        assert!(!resp.bytes().await.unwrap().is_empty(), "{path}: empty");
    }
}

#[tokio::test]
async fn every_module_the_page_imports_is_served_and_listed() {
    let Some(app) = spawn_app().await else { return };
    let html = app.get("/").await.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/app.js"></script>"#));
    let mut seen = vec!["/app.js".to_string()];
    let mut i = 0;
    while i < seen.len() {
        let resp = app.get(&seen[i]).await;
        assert_eq!(resp.status(), StatusCode::OK, "{} is imported", seen[i]);
        let text = resp.text().await.unwrap();
        for module in imports_of(&text) {
            if !seen.contains(&module) {
                seen.push(module);
            }
        }
        i += 1;
    }
    seen.sort();
    let mut listed: Vec<String> = SCRIPTS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(seen, listed, "the modules imported from /app.js");
}

#[tokio::test]
async fn an_unchanged_asset_is_answered_304() {
    let Some(app) = spawn_app().await else { return };
    let etag = header(&app.get("/app.js").await, "etag");
    let resp = app
        .client
        .get(app.url("/app.js"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = app
        .client
        .get(app.url("/app.js"))
        .header("if-none-match", "\"something else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_page_has_no_inline_script_and_no_outside_reference() {
    let Some(app) = spawn_app().await else { return };
    let html = app.get("/").await.text().await.unwrap();
    // Every <script> has a src and no content: the CSP forbids inline code.
    for chunk in html.split("<script").skip(1) {
        let (tag, rest) = chunk.split_once('>').expect("a closed <script> tag");
        assert!(tag.contains("src=\"/"), "inline script: <script{tag}>");
        assert!(
            rest.starts_with("</script>"),
            "script with content: <script{tag}>{}",
            &rest[..rest.len().min(40)]
        );
    }
    for forbidden in ["style=", "<style", "javascript:"] {
        assert!(!html.contains(forbidden), "page contains {forbidden:?}");
    }
    // No inline event handlers (` onclick=` and the like) either.
    for (i, _) in html.match_indices(" on") {
        let name: String = html[i + 3..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase())
            .collect();
        let after = html[i + 3 + name.len()..].chars().next();
        assert!(
            name.is_empty() || after != Some('='),
            "inline handler on{name}="
        );
    }
    // Nothing loaded from elsewhere: no CDN, no fonts, no analytics.
    for path in ["/", "/app.css"].iter().chain(SCRIPTS) {
        let text = app.get(path).await.text().await.unwrap();
        for scheme in ["http://", "https://"] {
            assert!(!text.contains(scheme), "{path} refers to {scheme}");
        }
    }
    // No code made from strings, no HTML parsed from strings, no storage:
    // the scripts build the page with DOM calls and keep the token in memory.
    for path in SCRIPTS {
        let text = app.get(path).await.text().await.unwrap();
        for forbidden in [
            "eval(",
            "new Function",
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "localStorage.",
            "sessionStorage.",
            "document.cookie",
        ] {
            assert!(!text.contains(forbidden), "{path} uses {forbidden}");
        }
    }
    // The OTP fields say what they are to phones and password managers.
    assert!(html.contains(r#"inputmode="numeric""#));
    assert!(html.contains(r#"autocomplete="one-time-code""#));
    assert!(html.contains(r#"name="viewport""#));
}

#[tokio::test]
async fn every_input_has_a_label() {
    let Some(app) = spawn_app().await else { return };
    let html = app.get("/").await.text().await.unwrap();
    let mut inputs = 0;
    for chunk in html.split("<input").skip(1) {
        let tag = chunk.split_once('>').expect("closed <input>").0;
        let id = tag
            .split("id=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_else(|| panic!("<input{tag}> has no id"));
        assert!(
            html.contains(&format!("<label for=\"{id}\"")),
            "no <label for=\"{id}\">"
        );
        inputs += 1;
    }
    assert!(inputs >= 19, "only {inputs} inputs");
}

#[tokio::test]
async fn the_json_api_and_errors_carry_the_security_headers_too() {
    let Some(app) = spawn_app().await else { return };
    let resp = app.get("/healthz").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_security_headers(&resp, true);
    let resp = app.get("/no-such-page").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_security_headers(&resp, true);
    let resp = app.login("nobody", "wrong password").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_security_headers(&resp, true);
}

#[tokio::test]
async fn docs_get_a_policy_swagger_ui_can_live_with() {
    let Some(app) = spawn_app().await else { return };
    let resp = app.get("/docs/").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_security_headers(&resp, false);
}

#[tokio::test]
async fn the_page_is_not_an_api_operation() {
    let Some(app) = spawn_app().await else { return };
    let doc: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();
    let paths = doc["paths"].as_object().expect("paths");
    for path in ["/", "/app.css", "/favicon.svg"].iter().chain(SCRIPTS) {
        assert!(!paths.contains_key(*path), "{path} in the OpenAPI document");
    }
    // Only GET: a POST to the page is 405, in JSON like every error.
    let resp = app.client.post(app.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
}
