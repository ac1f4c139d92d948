//! HTTP plumbing shared by every API function: strict JSON bodies, path and query
//! parameters, responses, and the one place where a [`Problem`] becomes a response.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::problem::{Code, Problem};

/// JSON bodies larger than this are refused before parsing (CSV uploads go through S3).
pub const MAX_JSON_BODY: usize = 256 * 1024;

pub type HttpResult = Result<Response<Body>, Problem>;

/// Parses a JSON body strictly: content type, size, syntax, then shape (unknown fields
/// are refused by the request types themselves with `deny_unknown_fields`).
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, Problem> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(Problem::new(
            Code::UnsupportedMediaType,
            "Send the body as JSON with 'Content-Type: application/json'.",
        ));
    }
    let bytes = body_bytes(req);
    if bytes.len() > MAX_JSON_BODY {
        return Err(Problem::new(
            Code::PayloadTooLarge,
            format!("The body is larger than {MAX_JSON_BODY} bytes."),
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::new(
            Code::MalformedJson,
            "The request body is empty; send a JSON object.",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = T::deserialize(&mut de).map_err(json_problem)?;
    de.end().map_err(json_problem)?;
    Ok(value)
}

fn json_problem(err: serde_json::Error) -> Problem {
    use serde_json::error::Category;
    match err.classify() {
        Category::Data => Problem::new(
            Code::ValidationFailed,
            format!(
                "The body does not have the expected shape: {}.",
                strip_position(&err)
            ),
        ),
        Category::Syntax | Category::Eof | Category::Io => Problem::new(
            Code::MalformedJson,
            format!("The body is not valid JSON: {err}."),
        ),
    }
}

/// serde's message ends with " at line X column Y", which is noise for a data error.
fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

pub fn body_bytes(req: &Request) -> &[u8] {
    match req.body() {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

pub fn path_param(req: &Request, name: &str) -> Option<String> {
    req.path_parameters().first(name).map(str::to_owned)
}

pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters().first(name).map(str::to_owned)
}

/// Every value of a query parameter, in order (none when absent).
pub fn query_values(req: &Request, name: &str) -> Vec<String> {
    req.query_string_parameters()
        .all(name)
        .unwrap_or_default()
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// An optional query parameter, parsed: absent is `None`, and a value `parse` refuses is
/// 400 `validation_failed` with `detail`.
pub fn parsed_query<T>(
    req: &Request,
    name: &str,
    parse: impl FnOnce(&str) -> Option<T>,
    detail: impl Into<String>,
) -> Result<Option<T>, Problem> {
    match query_param(req, name) {
        None => Ok(None),
        Some(raw) => parse(&raw)
            .map(Some)
            .ok_or_else(|| Problem::new(Code::ValidationFailed, detail)),
    }
}

/// The network the caller's requests come from, for limits per source: the caller's address
/// (see [`client_address`]), widened to its /64 for IPv6, where one subscriber commonly holds
/// a whole /64 and could take a fresh address for every request.
pub fn source_network(req: &Request, trusted_proxies: u8) -> Option<String> {
    let peer = match req.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => {
            ctx.http.source_ip.as_deref()?
        }
        _ => return None,
    };
    // As bytes: one entry a client wrote that is not text must not hide the proxies' entries.
    let forwarded_for = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .map(HeaderValue::as_bytes);
    let caller = client_address(peer, forwarded_for, trusted_proxies);
    Some(network_of(caller))
}

/// The caller's address: the peer API Gateway saw (`sourceIp`), or, behind `trusted_proxies`
/// proxies that each append who called them to X-Forwarded-For, the entry that many hops back
/// from the peer. Only the entries those proxies wrote are read, right to left, so whatever a
/// client puts in the header itself is never taken as its address. A chain shorter than the
/// proxies, or an entry that is not an address, means the request did not come through them:
/// then it is the peer.
fn client_address<'a>(
    peer: &'a str,
    forwarded_for: impl DoubleEndedIterator<Item = &'a [u8]>,
    trusted_proxies: u8,
) -> &'a str {
    if trusted_proxies == 0 {
        return peer;
    }
    let mut hops = forwarded_for
        .rev()
        .flat_map(|value| value.rsplit(|byte| *byte == b','))
        .map(|entry| std::str::from_utf8(entry).map(str::trim))
        .filter(|entry| entry.map_or(true, |text| !text.is_empty()))
        .peekable();
    // API Gateway appends the peer itself; a proxy in front may not have.
    hops.next_if_eq(&Ok(peer));
    match hops.nth(usize::from(trusted_proxies) - 1) {
        Some(Ok(entry)) if entry.parse::<std::net::IpAddr>().is_ok() => entry,
        _ => peer,
    }
}

fn network_of(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
            }
        },
        Ok(ip) => ip.to_string(),
        // API Gateway always gives an address; anything else is kept as it came.
        Err(_) => ip.to_owned(),
    }
}

pub fn bearer_token(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub fn json<T: Serialize>(status: u16, body: &T) -> Response<Body> {
    match serde_json::to_string(body) {
        Ok(text) => with_body(status, "application/json", Body::Text(text)),
        Err(err) => {
            tracing::error!(error = %err, "response serialisation failed");
            problem(&Problem::internal())
        }
    }
}

pub fn empty(status: u16) -> Response<Body> {
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::NO_CONTENT);
    resp
}

pub fn problem(problem: &Problem) -> Response<Body> {
    let mut resp = with_body(
        problem.status(),
        "application/problem+json",
        Body::Text(problem.to_json()),
    );
    if let Some(secs) = problem.retry_after
        && let Ok(value) = HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, value);
    }
    resp
}

fn with_body(status: u16, content_type: &'static str, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Turns an operation's outcome into the response; problems are logged at the right level.
pub fn respond(result: HttpResult) -> Response<Body> {
    match result {
        Ok(resp) => resp,
        Err(p) => {
            if p.status() >= 500 {
                tracing::warn!(code = p.code.as_str(), "request failed");
            } else {
                tracing::info!(
                    code = p.code.as_str(),
                    status = p.status(),
                    "request refused"
                );
            }
            problem(&p)
        }
    }
}

/// Refuses any route that is reached with a method it does not serve (defence in depth:
/// API Gateway already routes by method).
pub fn method_not_allowed() -> Problem {
    Problem::new(Code::NotFound, "No such route.")
}

/// `?limit=` for listings: 1 to 100, default 50.
/// The `cursor` query parameter: absent, or one this API handed out as `next_cursor`.
/// Anything else is refused rather than read as "from the start", which would loop a client.
pub fn page_cursor(req: &Request) -> Result<Option<String>, Problem> {
    match query_param(req, "cursor") {
        None => Ok(None),
        Some(raw) if crate::store::items::decode_cursor(&raw).is_some() => Ok(Some(raw)),
        Some(_) => Err(Problem::new(
            Code::ValidationFailed,
            "cursor must be a next_cursor value returned by this API.",
        )),
    }
}

pub fn page_limit(req: &Request) -> Result<i32, Problem> {
    match query_param(req, "limit") {
        None => Ok(50),
        Some(raw) => match raw.parse::<i32>() {
            Ok(n) if (1..=100).contains(&n) => Ok(n),
            _ => Err(Problem::new(
                Code::ValidationFailed,
                "limit must be a whole number from 1 to 100.",
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::{client_address, network_of};

    #[test]
    fn the_caller_is_read_only_from_the_entries_trusted_proxies_wrote() {
        const PEER: &str = "198.51.100.9";
        // (X-Forwarded-For values as they arrive, trusted proxies, the caller)
        let cases: [(&[&str], u8, &str); 12] = [
            (&[], 0, PEER),
            (&["203.0.113.7, 198.51.100.9"], 0, PEER),
            // No proxy is trusted, so a client's own header is ignored.
            (&["192.0.2.66"], 0, PEER),
            // CloudFront appended the viewer, API Gateway the CloudFront edge (the peer).
            (&["203.0.113.7, 198.51.100.9"], 1, "203.0.113.7"),
            // The same when the gateway did not append the peer.
            (&["203.0.113.7"], 1, "203.0.113.7"),
            // Whatever the client sent before the proxy's entry is not read.
            (&["192.0.2.66, 10.0.0.1, 203.0.113.7"], 1, "203.0.113.7"),
            // Two proxies: the first appended the caller, the second the first.
            (&["192.0.2.66, 203.0.113.7, 10.9.8.7"], 2, "203.0.113.7"),
            // Several header lines are one list, in order.
            (&["203.0.113.7", "10.9.8.7, 198.51.100.9"], 2, "203.0.113.7"),
            (&["2001:db8::5 , 198.51.100.9"], 1, "2001:db8::5"),
            // Too short a chain: the request did not come through the proxies.
            (&["198.51.100.9"], 1, PEER),
            (&["203.0.113.7"], 2, PEER),
            // What stands at the proxy's place is not an address.
            (&["203.0.113.7:443, unknown"], 1, PEER),
        ];
        for (forwarded_for, proxies, caller) in cases {
            let values = forwarded_for.iter().map(|value| value.as_bytes());
            let got = client_address(PEER, values, proxies);
            assert_eq!(got, caller, "{forwarded_for:?} behind {proxies}");
        }
    }

    #[test]
    fn an_oversized_chain_a_client_wrote_still_yields_the_caller_the_proxy_saw() {
        let forged = "192.0.2.1, ".repeat(100_000);
        let forwarded_for = format!("{forged}203.0.113.7");

        let caller = client_address("198.51.100.9", std::iter::once(forwarded_for.as_bytes()), 1);

        assert_eq!(caller, "203.0.113.7");
    }

    #[test]
    fn a_client_entry_that_is_not_text_does_not_hide_the_proxy_entry() {
        let forwarded_for: &[u8] = b"caf\xe9 \xff, 203.0.113.7";

        let caller = client_address("198.51.100.9", std::iter::once(forwarded_for), 1);

        assert_eq!(caller, "203.0.113.7");
    }

    #[test]
    fn a_source_is_counted_by_its_address_or_its_ipv6_slash_64() {
        for (seen, network) in [
            ("203.0.113.7", "203.0.113.7"),
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
            ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
            ("2001:DB8::1", "2001:db8:0:0::/64"),
            ("::ffff:203.0.113.7", "203.0.113.7"),
            ("not an address", "not an address"),
        ] {
            assert_eq!(network_of(seen), network, "{seen}");
        }
    }
}
