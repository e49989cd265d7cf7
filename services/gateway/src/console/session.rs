//! Console sessions: an office token, pasted once on the sign-in page, is kept on the
//! server under a random session id; the browser holds only that id, in a cookie that
//! is `HttpOnly` (no script reads it), `SameSite=Strict` (no other site sends it),
//! `Secure` behind TLS, and expires with the token. The token never reaches a URL or a
//! page. Every request checks the kept token again with the API's own check
//! ([`crate::auth::authenticate`]), so an expired or no-longer-hosted token ends the
//! session. Each session has a CSRF token that every form carries and every POST must
//! send back. Sessions live in the gateway's memory: a restart signs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use coord_auth::Claims;

use crate::AppState;
use crate::auth::{Caller, authenticate};
use crate::problem::Problem;

/// The session cookie's name.
pub const COOKIE: &str = "coord_session";
/// A session of a token that never expires ends after this many seconds.
const MAX_SESSION_SECS: i64 = 12 * 3600;

/// What the server keeps of one session.
#[derive(Clone)]
struct Session {
    token: String,
    csrf: String,
    ends_at: i64,
}

/// Every open session, by id.
#[derive(Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes, as hex (a session id, a CSRF token).
fn random_id() -> String {
    coord_auth::secret::random_secret()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Sessions {
    /// A new session for a verified token; returns its id and lifetime in seconds.
    fn open(&self, token: String, claims: &Claims) -> (String, i64) {
        let ends_at = claims.exp.unwrap_or(i64::MAX).min(now() + MAX_SESSION_SECS);
        let id = random_id();
        let mut open = self.open.lock().expect("sessions lock");
        let t = now();
        open.retain(|_, s| s.ends_at > t);
        open.insert(
            id.clone(),
            Session {
                token,
                csrf: random_id(),
                ends_at,
            },
        );
        (id, ends_at - t)
    }

    fn get(&self, id: &str) -> Option<Session> {
        self.open.lock().expect("sessions lock").get(id).cloned()
    }

    fn close(&self, id: &str) {
        self.open.lock().expect("sessions lock").remove(id);
    }
}

/// A signed-in person: who they are and the session's CSRF token.
#[derive(Clone)]
pub struct Visitor {
    pub caller: Caller,
    pub csrf: String,
    session: String,
}

impl Visitor {
    pub fn claims(&self) -> &Claims {
        &self.caller.0
    }

    /// Refuses a form whose `csrf` field is not this session's.
    pub fn check_csrf(&self, sent: Option<&str>) -> Result<(), Problem> {
        match sent {
            Some(sent) if constant_time_eq(sent.as_bytes(), self.csrf.as_bytes()) => Ok(()),
            _ => Err(Problem::new(
                coord_proto::ErrorKind::Forbidden,
                "csrf_token_invalid",
                "the form's CSRF token is missing or not this session's: reload the page",
            )),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session id the request's cookie names, if any.
fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then(|| value.to_owned())
        })
}

/// Why a request has no visitor: none signed in (send to the sign-in page), or a
/// session that is refused (forged, ended, or its token no longer valid).
pub enum NoVisitor {
    SignedOut,
    Refused(Problem),
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = NoVisitor;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, NoVisitor> {
        let id = cookie_value(&parts.headers).ok_or(NoVisitor::SignedOut)?;
        let refused = |code: &str, detail: &str| {
            NoVisitor::Refused(Problem::new(
                coord_proto::ErrorKind::Unauthorized,
                code,
                detail.to_owned(),
            ))
        };
        let session = state
            .console
            .sessions
            .get(&id)
            .ok_or_else(|| refused("invalid_session", "no such session: sign in again"))?;
        if session.ends_at <= now() {
            state.console.sessions.close(&id);
            return Err(refused(
                "session_expired",
                "the session has ended: sign in again",
            ));
        }
        let claims = authenticate(state, &session.token).map_err(|p| {
            state.console.sessions.close(&id);
            NoVisitor::Refused(p)
        })?;
        Ok(Visitor {
            caller: Caller(claims),
            csrf: session.csrf,
            session: id,
        })
    }
}

/// `Secure` when the request reached us over TLS (a proxy in front says so).
fn secure(headers: &HeaderMap) -> &'static str {
    let tls = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    if tls { "; Secure" } else { "" }
}

/// Refuses a form another site's page posted (login CSRF: signing the visitor's
/// browser in under someone else's token, so that what the visitor then enters is
/// recorded as that office's). Browsers say where a request comes from in
/// `Sec-Fetch-Site` (to secure origins: HTTPS or localhost) and in `Origin` (a form's
/// POST, over plain HTTP too), which must then name this host (as the client asked for
/// it: `X-Forwarded-Host` behind a proxy). A request with neither is not a browser's
/// form, and is let through.
fn same_origin(headers: &HeaderMap) -> Result<(), Problem> {
    let same = match headers.get("sec-fetch-site").map(HeaderValue::as_bytes) {
        Some(site) => matches!(site, b"same-origin" | b"none"),
        None => match headers.get(header::ORIGIN) {
            None => true,
            Some(origin) => {
                let authority = origin
                    .to_str()
                    .ok()
                    .and_then(|o| o.split_once("://"))
                    .map(|(_, authority)| authority);
                let host = headers
                    .get("x-forwarded-host")
                    .or_else(|| headers.get(header::HOST))
                    .and_then(|h| h.to_str().ok());
                authority.is_some() && authority == host
            }
        },
    };
    if same {
        return Ok(());
    }
    Err(Problem::new(
        coord_proto::ErrorKind::Forbidden,
        "cross_site_form",
        "this form was posted from another site's page: sign in from the console's own page",
    ))
}

/// Signs in with `token`: the cookie to set, or why the token is refused.
pub fn sign_in(state: &AppState, headers: &HeaderMap, token: &str) -> Result<HeaderValue, Problem> {
    same_origin(headers)?;
    let token = token.trim();
    let claims = authenticate(state, token)?;
    let (id, max_age) = state.console.sessions.open(token.to_owned(), &claims);
    let cookie = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        secure(headers)
    );
    Ok(HeaderValue::from_str(&cookie).expect("a cookie is ASCII"))
}

/// Ends the visitor's session; the cookie that clears it in the browser.
pub fn sign_out(state: &AppState, visitor: &Visitor) -> HeaderValue {
    state.console.sessions.close(&visitor.session);
    clear_cookie()
}

/// A cookie that clears the session cookie.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    ))
    .expect("ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; coord_session=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie_value(&h).as_deref(), Some("xyz"));
    }

    #[test]
    fn a_form_another_site_posted_is_refused() {
        let with = |site: &str| {
            let mut h = HeaderMap::new();
            h.insert("sec-fetch-site", site.parse().unwrap());
            same_origin(&h).is_ok()
        };
        assert!(with("same-origin") && with("none"));
        assert!(!with("cross-site") && !with("same-site"));
        assert!(same_origin(&HeaderMap::new()).is_ok(), "not a browser");
        // Over plain HTTP a browser sends no Sec-Fetch-Site, but an Origin.
        let from = |origin: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, "10.0.0.5:8080".parse().unwrap());
            h.insert(header::ORIGIN, origin.parse().unwrap());
            same_origin(&h).is_ok()
        };
        assert!(from("http://10.0.0.5:8080"));
        assert!(!from("http://evil.example") && !from("null"));
    }

    #[test]
    fn csrf_tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
