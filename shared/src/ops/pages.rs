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
        // Each page extends base.html, which holds the style sheet and the shared script; the
        // two pages that set a password include the same fields.
        for (name, source) in [
            ("base.html", include_str!("../../templates/pages/base.html")),
            (
                "password-fields.html",
                include_str!("../../templates/pages/password-fields.html"),
            ),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Response<Body> {
        let req = lambda_http::http::Request::builder()
            .uri(path)
            .body(Body::Empty)
            .unwrap();
        futures::executor::block_on(handle(req))
    }

    #[test]
    fn every_page_renders_whole_with_the_nonce_in_its_csp() {
        for (path, sets_password) in [
            ("/accept-invite", true),
            ("/reset-password", true),
            ("/verify-email", false),
        ] {
            let resp = get(path);
            assert_eq!(resp.status(), 200, "{path}");
            let Body::Text(html) = resp.body() else {
                panic!("{path}: no HTML body")
            };
            let csp = resp.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap();
            let nonce = csp
                .split("'nonce-")
                .nth(1)
                .unwrap()
                .split('\'')
                .next()
                .unwrap();
            assert!(
                html.contains(&format!("<script nonce=\"{nonce}\">")),
                "{path}"
            );
            assert!(
                !html.contains("{%") && !html.contains("{{"),
                "{path}: template syntax left over"
            );
            assert!(
                html.contains("const PAGE = {"),
                "{path}: the page's own script block is missing"
            );
            assert_eq!(
                html.contains(r#"id="password-confirm""#),
                sets_password,
                "{path}: the new-password fields"
            );
        }
    }

    #[test]
    fn each_response_gets_a_fresh_nonce() {
        let csp = |r: Response<Body>| {
            r.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_ne!(csp(get("/accept-invite")), csp(get("/accept-invite")));
    }
}
