//! The OpenAPI 3.1 document: built from the handlers' `#[utoipa::path]`
//! annotations as routes are registered (utoipa-axum), so a route cannot
//! exist without documentation. This module adds what every operation shares:
//! the error body, the bad-input and overload responses, and bearer auth.

use utoipa::openapi::path::Operation;
use utoipa::openapi::response::Response as OaResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, ObjectBuilder, OpenApi as Document, RefOr, ResponseBuilder, Type,
};
use utoipa::{OpenApi, ToSchema};

/// Every error: `{"detail": "<human message>", "code": "<machine code>"}`.
#[derive(ToSchema)]
#[schema(example = json!({"detail": "Invalid credentials", "code": "invalid_credentials"}))]
#[expect(dead_code, reason = "documents http::Error's JSON form")]
pub struct ErrorBody {
    /// What went wrong, for people; names the field for `invalid_input`.
    detail: String,
    /// What went wrong, for programs.
    code: String,
}

// Field rules shared by the request bodies, inlined into each
// (`#[schema(inline)]`) so every rule is written once.

/// A username: 1–64 of `A-Z a-z 0-9 . _ @ + -`, unique ignoring ASCII case.
#[derive(ToSchema)]
#[schema(
    min_length = 1,
    max_length = 64,
    pattern = r"^[A-Za-z0-9._@+-]+$",
    example = "alice"
)]
#[expect(dead_code, reason = "documents the field; parsed by domain::Username")]
pub struct UsernameField(String);

/// A password: 8–256 characters of any Unicode.
#[derive(ToSchema)]
#[schema(min_length = 8, max_length = 256, example = "correct horse")]
#[expect(dead_code, reason = "documents the field; parsed by domain::Password")]
pub struct PasswordField(String);

/// Body of /login and /enable-mfa.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "documents the body; read field by field by JsonObject"
)]
pub struct Credentials {
    #[schema(inline)]
    username: UsernameField,
    #[schema(inline)]
    password: PasswordField,
}

/// The document's fixed parts.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "twofactor",
        description = "Password login with TOTP two-factor authentication. Every error is JSON: \
            `{\"detail\", \"code\"}`. Bodies are JSON objects of at most 16 KiB.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0")
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "accounts", description = "Signup and MFA enrollment"),
        (name = "login", description = "Password and second-factor login"),
        (name = "session", description = "Using a session token; the user's sessions"),
        (name = "devices", description = "The signed-in user's TOTP devices"),
        (name = "account", description = "The signed-in user's recovery codes and password"),
        (name = "health", description = "Probes"),
    )
)]
pub struct ApiDoc;

/// Adds what every operation shares; call after all routes are merged (a
/// `#[openapi(modifiers)]` would run before the routes exist).
pub fn finish(doc: &mut Document) {
    {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        for item in doc.paths.paths.values_mut() {
            for op in [item.post.as_mut(), item.delete.as_mut()]
                .into_iter()
                .flatten()
                .filter(|op| op.request_body.is_some())
            {
                add_body_errors(op);
            }
            for op in [item.get.as_mut(), item.post.as_mut(), item.delete.as_mut()]
                .into_iter()
                .flatten()
            {
                add(
                    op,
                    "503",
                    error(
                        "Busy (`busy`) or database unavailable (`unavailable`)",
                        true,
                    ),
                );
            }
        }
    }
}

fn add_body_errors(op: &mut Operation) {
    add(
        op,
        "400",
        error("Body is not valid JSON (`bad_request`)", false),
    );
    add(
        op,
        "413",
        error("Body over 16 KiB (`payload_too_large`)", false),
    );
    add(
        op,
        "415",
        error(
            "Content-Type is not application/json (`unsupported_media_type`)",
            false,
        ),
    );
    add(
        op,
        "422",
        error(
            "A field breaks a rule (`invalid_input`); `detail` names it",
            false,
        ),
    );
}

fn add(op: &mut Operation, status: &str, response: OaResponse) {
    op.responses
        .responses
        .entry(status.to_owned())
        .or_insert(RefOr::T(response));
}

/// An error response with the shared body, optionally with `Retry-After`.
pub fn error(description: &str, retry_after: bool) -> OaResponse {
    let body = ContentBuilder::new()
        .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
            "ErrorBody",
        ))))
        .build();
    let mut builder = ResponseBuilder::new()
        .description(description)
        .content("application/json", body);
    if retry_after {
        builder = builder.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(1)),
                ))
                .description(Some("Seconds to wait before retrying"))
                .build(),
        );
    }
    builder.build()
}
