//! The bodies of the fuzz targets: each takes the fuzzer's bytes, runs a parser on them and
//! panics when the parser breaks one of its promises (a panic of its own included).
//!
//! They use nothing but `latchkey` and serde, so that `shared/tests/fuzz_regressions.rs`
//! includes this very file and replays every saved input under `fuzz/regressions/` through
//! the same checks in an ordinary `cargo test`; `shared/tests/properties.rs` uses [`ROUTES`].

use latchkey::csv_rows::{CsvRows, MAX_CELL_BYTES};
use latchkey::http::{json_body as decode_json, problem as problem_response};
use latchkey::lambda_http::http::header::CONTENT_TYPE;
use latchkey::lambda_http::{Body, Request};
use latchkey::ops;
use latchkey::problem::Problem;

/// Rows read before stopping, so that one input stays fast (the reader streams).
const MAX_ROWS: usize = 10_000;

/// The CSV reader: never panics, and what it yields keeps its promises.
pub fn csv_rows(data: &[u8]) {
    let Ok(rows) = CsvRows::new(data) else {
        return;
    };
    let mut last_line = 1;
    let mut failed = false;
    for row in rows.max_rows(MAX_ROWS) {
        assert!(!failed, "a row after an error");
        match row {
            Ok(row) => {
                assert!(row.line >= last_line, "line numbers go back: {row:?}");
                last_line = row.line;
                for cell in std::iter::once(&row.email).chain(row.role.as_ref()) {
                    assert!(cell.len() <= MAX_CELL_BYTES, "a cell over the limit");
                    assert_eq!(cell, cell.trim_matches(|c: char| c.is_ascii_whitespace()));
                }
                // An empty email is possible (other columns filled): the row checks refuse it.
                assert!(row.role.as_ref().is_none_or(|r| !r.is_empty()));
            }
            Err(_) => failed = true,
        }
    }
}

/// Decodes a body as one route's request type; only the outcome matters here.
pub type Decode = fn(&Request) -> Result<(), Problem>;

fn decode<T: serde::de::DeserializeOwned>(req: &Request) -> Result<(), Problem> {
    decode_json::<T>(req).map(drop)
}

/// Every JSON request body the API accepts, by route.
pub const ROUTES: &[(&str, Decode)] = &[
    ("POST /v1/sessions", decode::<ops::sessions::SignIn>),
    ("POST /v1/tenants", decode::<ops::tenants::CreateTenant>),
    (
        "POST /v1/tenants/{t}/invitations",
        decode::<ops::invite::InviteRequest>,
    ),
    ("PATCH /v1/users/{id}", decode::<ops::users::UserPatch>),
    ("POST /v1/invitations/accept", decode::<ops::accept::Accept>),
    ("POST /v1/password/forgot", decode::<ops::password::Forgot>),
    ("POST /v1/password/reset", decode::<ops::password::Reset>),
    (
        "POST /v1/users/{id}/email-change",
        decode::<ops::email::EmailChange>,
    ),
    ("POST /v1/email/verify", decode::<ops::email::Verify>),
];

/// A request as API Gateway hands it over: a content type (or none) and a body.
pub fn request(content_type: Option<&str>, body: Body) -> Request {
    let mut req = Request::new(body);
    if let Some(value) = content_type.and_then(|ct| ct.parse().ok()) {
        req.headers_mut().insert(CONTENT_TYPE, value);
    }
    req
}

/// Decodes `req` as every route's body: each gives a value or a 4xx problem, and the
/// problem's response is problem JSON with that status. Returns what went wrong.
pub fn check_every_route(req: &Request) -> Result<(), String> {
    for (route, decode) in ROUTES {
        let Err(problem) = decode(req) else { continue };
        let status = problem.status();
        if !(400..500).contains(&status) {
            return Err(format!("{route}: not a 4xx: {problem:?}"));
        }
        let body: serde_json::Value = serde_json::from_str(&problem.to_json())
            .map_err(|e| format!("{route}: problem JSON does not parse: {e}"))?;
        if body["status"] != status || body["code"] != problem.code.as_str() {
            return Err(format!("{route}: problem JSON {body} for {problem:?}"));
        }
        let response = problem_response(&problem);
        if response.status().as_u16() != status {
            return Err(format!("{route}: response status {}", response.status()));
        }
    }
    Ok(())
}

/// Request decoding: the first byte picks the content type and the body's form (text or
/// binary, as API Gateway passes either); the rest is the body.
pub fn json_body(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_type = match selector % 4 {
        0 | 1 => Some("application/json"),
        2 => Some("application/json; charset=utf-8"),
        _ => None,
    };
    let body = match std::str::from_utf8(body) {
        Ok(text) if selector & 4 == 0 => Body::Text(text.to_owned()),
        _ => Body::Binary(body.to_vec()),
    };
    if let Err(broken) = check_every_route(&request(content_type, body)) {
        panic!("{broken}");
    }
}
