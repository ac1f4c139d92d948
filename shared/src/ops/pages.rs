//! The pages people open from their mail. They spend nothing when opened: the token stays
//! in the URL fragment (never sent to a server) until the page's explicit POST.

use lambda_http::http::{HeaderValue, Method, header};
use lambda_http::{Body, Request, Response};
use minijinja::{Environment, context};
use rand::RngCore;

use crate::encoding::b64url;
use crate::http;

fn templates() -> &'static Environment<'static> {
    static ENV: std::sync::OnceLock<Environment<'static>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in [
            (
                "accept-invite.html",
                include_str!("../../templates/pages/accept-invite.html"),
            ),
            (
                "reset-password.html",
                include_str!("../../templates/pages/reset-password.html"),
            ),
            (
                "verify-email.html",
                include_str!("../../templates/pages/verify-email.html"),
            ),
        ] {
            env.add_template(name, source)
                .expect("page templates are valid");
        }
        env
    })
}

fn page_for(path: &str) -> Option<&'static str> {
    match path.trim_end_matches('/') {
        "/accept-invite" => Some("accept-invite.html"),
        "/reset-password" => Some("reset-password.html"),
        "/verify-email" => Some("verify-email.html"),
        _ => None,
    }
}

pub async fn handle(req: Request) -> Response<Body> {
    let Some(name) = page_for(req.uri().path()) else {
        return http::problem(&crate::problem::Problem::new(
            crate::problem::Code::NotFound,
            "No such page.",
        ));
    };
    let mut nonce = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let nonce = b64url(&nonce);
    let html = match templates()
        .get_template(name)
        .and_then(|t| t.render(context! { nonce => &nonce }))
    {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(error = %e, page = name, "page render failed");
            return http::problem(&crate::problem::Problem::internal());
        }
    };
    let body = if req.method() == Method::HEAD {
        Body::Empty
    } else {
        Body::Text(html)
    };
    let mut resp = Response::new(body);
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    );
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    resp
}
