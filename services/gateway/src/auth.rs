//! Who is calling: every route but `/healthz`, `/readyz` and `/metrics` needs a bearer token signed
//! with the operator's key ([`coord_auth::token`]) for an office this site hosts (403
//! `office_not_hosted_here` otherwise, naming the site that hosts it). The token's
//! office and actor are the only ones a command can carry; only an operator sends
//! commands, and only an admin of the site's own office runs the operations that change
//! the site (rebuild, redrive, import). Refusals are problem documents (401 without or
//! with a bad token, 403 for a role or an office that may not) and happen before
//! anything reaches a command service. Whether the office may act for the command is
//! decided by the command service, which has the aggregate (`coord_service::acting`),
//! and refused there with 403 before anything is appended.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use coord_auth::{Claims, Role};
use coord_domain::Office;
use coord_proto::ErrorKind;

use crate::AppState;
use crate::problem::Problem;

/// The verified caller, put in the request's extensions by [`require_token`].
#[derive(Debug, Clone)]
pub struct Caller(pub Claims);

fn unauthorized(code: &str, detail: impl Into<String>) -> Response {
    with_challenge(Problem::new(ErrorKind::Unauthorized, code, detail).into_response())
}

/// A 401 names the scheme it wants (RFC 9110 §11.6.1).
fn with_challenge(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"coord\""),
    );
    response
}

/// Middleware: refuses requests without a valid `Authorization: Bearer <token>`.
pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return unauthorized(
            "missing_token",
            "send `Authorization: Bearer <token>` (coordctl token create makes one)",
        );
    };
    let token = value.to_str().ok().and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
    });
    let Some(token) = token else {
        return unauthorized(
            "malformed_authorization",
            "the Authorization header must be `Bearer <token>`",
        );
    };
    match authenticate(&state, token) {
        Ok(claims) => {
            request.extensions_mut().insert(Caller(claims));
            next.run(request).await
        }
        Err(refused) if refused.status == 401 => with_challenge(refused.into_response()),
        Err(refused) => refused.into_response(),
    }
}

/// The one check of a token, for the API's bearer header and the console's session
/// alike: it verifies with this gateway's key, has not expired, and is of an office
/// this site hosts. A refusal is the response to send.
pub fn authenticate(state: &AppState, token: &str) -> Result<Claims, Problem> {
    match state.tokens.verify(token) {
        Ok(claims) => match state.hosting.check(&claims.office) {
            Ok(()) => Ok(claims),
            Err(refused) => Err(Problem::from(refused)),
        },
        Err(e @ coord_auth::TokenError::Expired { .. }) => Err(Problem::new(
            ErrorKind::Unauthorized,
            "token_expired",
            e.to_string(),
        )),
        Err(e) => Err(Problem::new(
            ErrorKind::Unauthorized,
            "invalid_token",
            e.to_string(),
        )),
    }
}

/// May `caller` send commands? Operators only (their office is checked downstream).
pub fn authorize_command(caller: &Caller) -> Result<(), Problem> {
    if caller.0.role == Role::Operator {
        return Ok(());
    }
    Err(Problem::new(
        ErrorKind::Forbidden,
        "role_cannot_send_commands",
        format!("a {} token may read but not send commands", caller.0.role),
    ))
}

/// May `caller` run an operation that changes site `site` (a rebuild, a redrive, an
/// import)? An admin of the site's own office only.
pub fn authorize_operation(caller: &Caller, site: &Office) -> Result<(), Problem> {
    let claims = &caller.0;
    if claims.role != Role::Admin {
        return Err(Problem::new(
            ErrorKind::Forbidden,
            "role_cannot_operate",
            format!(
                "a token with role {} may not run operations: they need an admin token of \
                 office {site}",
                claims.role
            ),
        ));
    }
    if &claims.office != site {
        return Err(Problem::new(
            ErrorKind::Forbidden,
            "admin_of_another_office",
            format!(
                "this site is run by office {site}: an admin of office {} may not change it",
                claims.office
            ),
        ));
    }
    Ok(())
}
