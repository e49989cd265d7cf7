//! The web console (issue 17): server-rendered pages in Vietnamese for the offices,
//! served by every site's gateway at `/` beside the API (`/v1`). Pages are minijinja
//! templates embedded in the binary ([`templates`]); a little vanilla JavaScript
//! (`static/console.js`) submits forms, follows the log's event stream to refresh a
//! page, and verifies inclusion proofs with WebCrypto. Nothing is fetched from outside.
//!
//! Every page reads through the same functions as the API's routes, and every form
//! goes through the API's command path ([`crate::commands::execute`]) as the signed-in
//! office ([`session`]): the console has no rights of its own.

pub mod download;
pub mod forms;
pub mod labels;
pub mod needs;
pub mod pages;
pub mod session;
pub mod templates;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::AppState;
use crate::problem::Problem;
use session::NoVisitor;

/// What the console keeps: its templates and the open sessions.
pub struct Console {
    pub templates: minijinja::Environment<'static>,
    pub sessions: session::Sessions,
}

impl Console {
    pub fn new() -> Self {
        Self {
            templates: templates::environment(),
            sessions: session::Sessions::default(),
        }
    }

    /// Renders template `name` with `context`.
    pub fn render(&self, name: &str, context: minijinja::Value) -> Response {
        match self
            .templates
            .get_template(name)
            .and_then(|t| t.render(context))
        {
            Ok(html) => Html(html).into_response(),
            Err(e) => {
                tracing::error!(template = name, error = %e, "console template failed");
                Problem::new(
                    coord_proto::ErrorKind::Internal,
                    "template_failed",
                    e.to_string(),
                )
                .into_response()
            }
        }
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl IntoResponse for NoVisitor {
    fn into_response(self) -> Response {
        match self {
            NoVisitor::SignedOut => Redirect::to("/sign-in").into_response(),
            NoVisitor::Refused(problem) => refused_page(&problem),
        }
    }
}

/// A page of one message: a heading, what happened in Vietnamese, the technical detail
/// (for a report to the operator), and a link on.
fn message_page(
    heading: &str,
    message: &str,
    problem: &Problem,
    link: (&str, &str),
) -> Html<String> {
    let escape = |s: &str| minijinja::HtmlEscape(s).to_string();
    Html(format!(
        "<!doctype html><html lang=\"vi\"><head><meta charset=\"utf-8\"><title>{heading}\
         </title><link rel=\"stylesheet\" href=\"/static/console.css\"></head><body><main>\
         <h1>{heading}</h1><p id=\"problem-message\">{message}</p>\
         <p class=\"meta\">{detail}</p><p><a href=\"{href}\">{text}</a></p></main></body></html>",
        heading = escape(heading),
        message = escape(message),
        detail = escape(&format!("{} ({})", problem.detail, problem.code)),
        href = link.0,
        text = escape(link.1),
    ))
}

/// A refused session: 401 with a link to sign in again, and the cookie cleared.
fn refused_page(problem: &Problem) -> Response {
    let page = message_page(
        "Phiên đăng nhập không hợp lệ",
        "Phiên đăng nhập đã hết hoặc không còn hiệu lực.",
        problem,
        ("/sign-in", "Đăng nhập lại (sign in again)"),
    );
    (
        StatusCode::UNAUTHORIZED,
        [(header::SET_COOKIE, session::clear_cookie())],
        page,
    )
        .into_response()
}

/// A page that could not be shown, said in Vietnamese with its problem's status.
pub(super) fn problem_page(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let page = message_page(
        "Không hiển thị được trang",
        forms::message_vi(&problem.code),
        problem,
        ("/", "Về trang tổng quan (overview)"),
    );
    (status, page).into_response()
}

/// The console's routes (the API's `/v1/needs` is merged with the API).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/sign-in", get(pages::sign_in_page).post(pages::sign_in))
        .route("/sign-out", post(pages::sign_out))
        .route("/districts/{unit}", get(pages::district))
        .route("/districts/{unit}/forms/{command}", post(pages::submit))
        .route("/records/{kind}/{id}", get(pages::record))
        .route("/records/{kind}/{id}/proof/{event_id}", get(pages::proof))
        .route("/offices", get(pages::offices))
        .route("/live", get(pages::live))
        .route("/downloads/{file}", get(download::download))
        .route("/static/{file}", get(templates::asset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coord_proto::ErrorKind;

    #[tokio::test]
    async fn a_page_that_cannot_be_shown_says_why_in_vietnamese_with_its_status() {
        let problem = Problem::new(
            ErrorKind::Malformed,
            "invalid_date",
            "`from` is not a date: <b>",
        );
        let response = problem_page(&problem);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(html.contains("<html lang=\"vi\">"), "{html}");
        assert!(html.contains("Ngày không hợp lệ"), "{html}");
        assert!(html.contains("&lt;b&gt; (invalid_date)"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
    }
}
