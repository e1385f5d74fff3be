//! `POST /login` (password; a session, or an `mfa_token` when a second
//! factor is due) and `POST /login-2fa` (code + `mfa_token` → session).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Error;
use super::extract::JsonObject;
use super::openapi::{Credentials, ErrorBody, UsernameField};
use crate::auth::tokens::{self, TokenKey};
use crate::db::batch::Expected;
use crate::db::{challenges, credentials};
use crate::service::{
    Accept, Accepted, AppState, Checked, Client, IssuedToken, PreparedChallenge, PreparedSession,
    Settlement, Spend, Subject,
};

/// `POST /login`, `POST /login-2fa`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(login_2fa))
}

/// Body of /login-2fa.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "documents the body; read field by field by JsonObject"
)]
pub struct Login2faRequest {
    #[schema(inline)]
    username: UsernameField,
    /// A TOTP code (spaces allowed) or an unused recovery code.
    #[schema(min_length = 1, max_length = 64, example = "123456")]
    token: String,
    /// The `mfa_token` from /login.
    #[schema(
        min_length = 1,
        max_length = 64,
        example = "2n5Qy0Q3G8vX9x6m8Wq3bX2c4d5e6f7g8h9i0j1k2l3"
    )]
    mfa_token: String,
}

/// A session was issued.
#[derive(Serialize, ToSchema)]
pub struct SessionResponse {
    #[schema(example = "Login successful")]
    message: &'static str,
    token: String,
    token_type: &'static str,
    expires_in: i64,
    /// Present when a recovery code was spent, or when 2 or fewer are left.
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_codes_remaining: Option<i64>,
    /// Present when 2 or fewer recovery codes are left.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        example = "Only 2 recovery codes left; generate a new set with POST /me/recovery-codes"
    )]
    warning: Option<String>,
    /// Present when the code came from another time step than now: how far
    /// the authenticator's clock is off, in seconds (positive: fast).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 30)]
    clock_drift_seconds: Option<i64>,
}

/// At or below this many recovery codes left, /login-2fa warns.
const FEW_RECOVERY_CODES: i64 = 2;

/// A second factor is due.
#[derive(Serialize, ToSchema)]
pub struct MfaRequiredResponse {
    #[schema(example = "MFA enabled. Please submit OTP")]
    message: &'static str,
    mfa_required: bool,
    mfa_token: String,
    expires_in: i64,
}

/// Body of a 200 from /login.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginResponse {
    /// MFA off.
    Session(SessionResponse),
    /// MFA on.
    MfaRequired(MfaRequiredResponse),
}

/// How a factor check ended, for the login metrics; `None` when it ended
/// for another reason (busy, unavailable, a stale mfa_token).
fn outcome<T>(result: &Result<T, Error>) -> Option<&'static str> {
    match result {
        Ok(_) => Some("success"),
        Err(e) => failure(e),
    }
}

/// Counts a failed /login-2fa in the login metrics.
fn count_failure(app: &AppState, error: &Error) {
    if let Some(failure) = failure(error) {
        app.metrics.login("second_factor", failure);
    }
}

/// How a failed factor check ended, as [`outcome`] says it.
fn failure(error: &Error) -> Option<&'static str> {
    match error {
        Error::InvalidCredentials | Error::InvalidOtp | Error::AuthenticatorIgnoredParameters => {
            Some("failure")
        }
        Error::TooManyAttempts { .. } => Some("locked"),
        _ => None,
    }
}

/// What /login hands out, drawn before its transaction.
enum Prepared {
    Challenge(PreparedChallenge),
    Session(PreparedSession),
}

fn session_response(issued: crate::service::IssuedToken) -> SessionResponse {
    SessionResponse {
        message: "Login successful",
        token: issued.token,
        token_type: "bearer",
        expires_in: issued.expires_in,
        recovery_codes_remaining: None,
        warning: None,
        clock_drift_seconds: None,
    }
}

#[utoipa::path(post, path = "/login", tag = "login", request_body = Credentials,
    responses(
        (status = 200, description = "A session (MFA off) or an `mfa_token` for /login-2fa (MFA on)", body = LoginResponse),
        (status = 401, description = "Unknown user or wrong password (`invalid_credentials`)", body = ErrorBody),
        (status = 429, description = "Locked out after too many failures (`too_many_attempts`)", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds until the lock ends"))),
    ))]
async fn login(
    State(app): State<AppState>,
    client: Client,
    body: JsonObject,
) -> Result<Json<LoginResponse>, Error> {
    let username = body.username()?;
    let password = body.password()?;
    let checked = app.check_password(&username, &password, &client).await;
    if let Some(outcome) = outcome(&checked) {
        app.metrics.login("password", outcome);
    }
    let user = checked?;
    // The token is drawn before the write lock is taken (see PreparedSession).
    let prepared = if user.mfa_enabled {
        Prepared::Challenge(app.prepare_challenge())
    } else {
        Prepared::Session(app.prepare_session())
    };
    let user_id = user.id;
    let written = app.db.transact::<_, Error, _>({
        let (app, client, username) = (app.clone(), client.clone(), username.key().to_owned());
        move |conn| {
            Box::pin(async move {
                let subject = Subject {
                    username: &username,
                    user_id: Some(user_id),
                };
                app.audit(&mut *conn, &client, subject, "password.success", None)
                    .await?;
                Ok(match prepared {
                    Prepared::Challenge(challenge) => {
                        let challenge = app
                            .store_challenge(conn, challenge, user_id, &username)
                            .await?;
                        LoginResponse::MfaRequired(MfaRequiredResponse {
                            message: "MFA enabled. Please submit OTP",
                            mfa_required: true,
                            mfa_token: challenge.token,
                            expires_in: challenge.expires_in,
                        })
                    }
                    Prepared::Session(session) => {
                        let session = app.store_session(conn, session, user_id, &client).await?;
                        LoginResponse::Session(session_response(session))
                    }
                })
            })
        }
    });
    Ok(Json(written.await?))
}

/// Finds the challenge's user and checks `token` against that account's
/// second factor: one statement when the challenge and a device are found
/// ([`credentials::find_counting_for_challenge`], batched on PostgreSQL),
/// else the challenge and the account read apart, to tell a bad
/// `mfa_token` from MFA switched off since /login (the challenge is moot
/// then too, unless a lock says 429). With the user and the check comes the
/// login's place among those the batched read announced to the batched
/// write (PostgreSQL), kept until the login is queued there or turns back.
async fn read_second_factor(
    app: &AppState,
    challenge: &TokenKey,
    username_key: &str,
    token: &str,
) -> Result<(i64, Checked, Option<Expected>), Error> {
    let now = app.clock.now();
    let subject = |user_id| Subject {
        username: username_key,
        user_id: Some(user_id),
    };
    let reader = app.db.reader();
    if let Some((user_id, counting, expected)) =
        credentials::find_counting_for_challenge(&app.db, challenge.key(), username_key, now)
            .await?
    {
        let checked = app
            .check_counted(
                subject(user_id),
                user_id,
                counting,
                token,
                Accept::AnyFactor,
            )
            .await?
            .ok_or(Error::InvalidMfaToken)?;
        return Ok((user_id, checked, expected));
    }
    let user_id = challenges::find_for(reader, challenge, username_key, now)
        .await?
        .ok_or(Error::InvalidMfaToken)?;
    let checked = app
        .check_second_factor(subject(user_id), user_id, token, Accept::AnyFactor)
        .await?
        .ok_or(Error::InvalidMfaToken)?;
    Ok((user_id, checked, None))
}

#[utoipa::path(post, path = "/login-2fa", tag = "login", request_body = Login2faRequest,
    responses(
        (status = 200, description = "A session; with `clock_drift_seconds` when the code came from another time step than now, and `recovery_codes_remaining` + `warning` when 2 or fewer recovery codes are left", body = SessionResponse),
        (status = 401, description = "Wrong, replayed or spent code (`invalid_otp`); missing, expired or foreign `mfa_token` (`invalid_mfa_token`)", body = ErrorBody),
        (status = 422, description = "The first code of the default enrollment was made with SHA1/6 digits/30 s although the enrollment asked for other parameters (`authenticator_ignored_parameters`)", body = ErrorBody),
        (status = 429, description = "Locked out after too many failures (`too_many_attempts`)", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds until the lock ends"))),
    ))]
async fn login_2fa(
    State(app): State<AppState>,
    client: Client,
    body: JsonObject,
) -> Result<Json<SessionResponse>, Error> {
    let username = body.username()?;
    let token = body.token("token")?;
    let mfa_token = body.token("mfa_token")?;

    let challenge = tokens::parse(mfa_token).ok_or(Error::InvalidMfaToken)?;
    let (user_id, checked, expected) = read_second_factor(&app, &challenge, username.key(), token)
        .await
        .inspect_err(|e| count_failure(&app, e))?;
    // Drawn before the write lock is taken (see PreparedSession).
    let session = app.prepare_session();
    let subject = Subject {
        username: username.key(),
        user_id: Some(user_id),
    };
    let session = match app
        .login_at_once(
            subject,
            user_id,
            &checked,
            Spend {
                challenge: &challenge,
                expected,
            },
            session,
            &client,
        )
        .await
        .inspect_err(|e| count_failure(&app, e))?
    {
        Ok((settled, session)) => return Ok(Json(signed_in(&app, settled, session))),
        Err(session) => session,
    };
    let written = app.db.transact({
        let (app, client, username) = (app.clone(), client.clone(), username.key().to_owned());
        move |conn| {
            Box::pin(async move {
                let subject = Subject {
                    username: &username,
                    user_id: Some(user_id),
                };
                let accepted = match app.settle_in(conn, subject, checked, &client).await? {
                    Settlement::Accepted(accepted) => accepted,
                    // Committed: the failure counts.
                    Settlement::Refused(refused) => return Ok(Err(refused)),
                };
                if !challenges::spend(conn, &challenge, user_id, app.clock.now()).await? {
                    // Spent by a concurrent success or expired meanwhile.
                    return Err(Error::InvalidMfaToken);
                }
                let session = app.store_session(conn, session, user_id, &client).await?;
                Ok(Ok((accepted, session)))
            })
        }
    });
    let (settled, session) = written
        .await
        .and_then(|done| done.map_err(|refused| app.refused(refused, Error::InvalidOtp)))
        .inspect_err(|e| count_failure(&app, e))?;
    Ok(Json(signed_in(&app, settled, session)))
}

/// The answer to a login whose second factor is committed, counted in the
/// metrics (outside the write lock).
fn signed_in(app: &AppState, settled: Accepted, session: IssuedToken) -> SessionResponse {
    let factor = if settled.recovery_code_used {
        "recovery_code"
    } else {
        "totp"
    };
    app.metrics.login(factor, "success");
    if settled.recovery_code_used {
        app.metrics.recovery_code_used();
    }
    if settled.clock_drift_seconds.is_some() {
        app.metrics.account_action("drift_observed");
    }
    let remaining = settled.recovery_codes_remaining;
    let few = remaining <= FEW_RECOVERY_CODES;
    SessionResponse {
        recovery_codes_remaining: (settled.recovery_code_used || few).then_some(remaining),
        warning: few.then(|| {
            format!(
                "Only {remaining} recovery code(s) left; generate a new set with POST /me/recovery-codes"
            )
        }),
        clock_drift_seconds: settled.clock_drift_seconds,
        ..session_response(session)
    }
}
