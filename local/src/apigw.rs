//! The two translations an API Gateway HTTP API does around a Lambda integration: an HTTP
//! request into a payload format 2.0 event, and the function's v2 response object back into
//! an HTTP response. Written against what AWS sends, so `lambda_http` sees the same JSON
//! locally as deployed.

use std::net::SocketAddr;

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, Response, StatusCode, Version, request};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};

use crate::router::RouteMatch;

/// Largest request body API Gateway accepts.
pub const MAX_REQUEST_BODY: usize = 10 * 1024 * 1024;

/// The account id the local stack pretends to be.
pub const ACCOUNT_ID: &str = "123456789012";

/// What API Gateway knows about a request besides the request itself.
#[derive(Debug, Clone)]
pub struct Origin {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub request_id: String,
    pub now: DateTime<Utc>,
}

/// Builds the payload format 2.0 event of a request that matched `route`.
pub fn build_event(
    parts: &request::Parts,
    body: &[u8],
    origin: &Origin,
    route: &RouteMatch,
) -> Value {
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for name in parts.headers.keys() {
        let values = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        if name == header::COOKIE {
            for value in values {
                cookies.extend(
                    value
                        .split(';')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(str::to_owned),
                );
            }
        } else {
            headers.insert(
                name.as_str().to_owned(),
                Value::String(values.collect::<Vec<_>>().join(",")),
            );
        }
    }
    // API Gateway appends the peer to X-Forwarded-For and sets the other forwarding headers.
    let forwarded_for = match headers.get("x-forwarded-for").and_then(Value::as_str) {
        Some(existing) => format!("{existing}, {}", origin.peer.ip()),
        None => origin.peer.ip().to_string(),
    };
    headers.insert("x-forwarded-for".into(), forwarded_for.into());
    headers.insert(
        "x-forwarded-port".into(),
        origin.local.port().to_string().into(),
    );
    headers.insert("x-forwarded-proto".into(), "http".into());
    headers.insert("x-amzn-trace-id".into(), trace_id(origin.now).into());

    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let host_name = host
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host.as_str(), |(h, _)| h);
    let domain_prefix = host_name.split('.').next().unwrap_or(host_name).to_owned();
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let raw_query = parts.uri.query().unwrap_or("");

    let mut event = Map::new();
    event.insert("version".into(), "2.0".into());
    event.insert("routeKey".into(), route.route_key.clone().into());
    event.insert("rawPath".into(), parts.uri.path().into());
    event.insert("rawQueryString".into(), raw_query.into());
    if !cookies.is_empty() {
        event.insert("cookies".into(), cookies.into());
    }
    event.insert("headers".into(), Value::Object(headers));
    let query = query_parameters(raw_query);
    if !query.is_empty() {
        event.insert("queryStringParameters".into(), Value::Object(query));
    }
    if !route.path_parameters.is_empty() {
        event.insert("pathParameters".into(), json!(route.path_parameters));
    }
    event.insert(
        "requestContext".into(),
        json!({
            "accountId": ACCOUNT_ID,
            "apiId": "local",
            "domainName": host,
            "domainPrefix": domain_prefix,
            "http": {
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "protocol": protocol(parts.version),
                "sourceIp": origin.peer.ip().to_string(),
                "userAgent": user_agent,
            },
            "requestId": origin.request_id,
            "routeKey": route.route_key,
            "stage": "$default",
            "time": origin.now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": origin.now.timestamp_millis(),
        }),
    );
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    match body_field(body, content_type) {
        Some((text, encoded)) => {
            event.insert("body".into(), text.into());
            event.insert("isBase64Encoded".into(), encoded.into());
        }
        None => {
            event.insert("isBase64Encoded".into(), false.into());
        }
    }
    Value::Object(event)
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    }
}

/// `Root=1-<epoch hex>-<96 random bits>`, the X-Ray format API Gateway uses.
fn trace_id(now: DateTime<Utc>) -> String {
    format!(
        "Root=1-{:08x}-{:024x}",
        now.timestamp(),
        rand::random::<u128>() >> 32
    )
}

/// Decoded query parameters; repeated keys joined by commas, as API Gateway does.
fn query_parameters(raw: &str) -> Map<String, Value> {
    let mut params: Map<String, Value> = Map::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode_str(key).decode_utf8_lossy().into_owned();
        let value = percent_decode_str(value).decode_utf8_lossy().into_owned();
        match params.get_mut(&key) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                params.insert(key, Value::String(value));
            }
        }
    }
    params
}

/// The `body` value and `isBase64Encoded`; `None` when there is no body.
fn body_field(body: &[u8], content_type: Option<&str>) -> Option<(String, bool)> {
    if body.is_empty() {
        return None;
    }
    if content_type.is_some_and(is_text)
        && let Ok(text) = std::str::from_utf8(body)
    {
        return Some((text.to_owned(), false));
    }
    Some((BASE64.encode(body), true))
}

/// Content types API Gateway passes as text.
fn is_text(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || matches!(
            essence.as_str(),
            "application/json" | "application/xml" | "application/x-www-form-urlencoded"
        )
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Headers the gateway owns on the wire; a function's values for them are not forwarded.
const HOP_BY_HOP: [&str; 4] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
];

/// Turns a function's v2 response payload into an HTTP response. `Err` says why the payload
/// is not a valid response (API Gateway then answers 500).
pub fn into_response(
    payload: &[u8],
    method: &Method,
    request_id: &str,
) -> Result<Response<Body>, String> {
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| format!("response is not JSON: {e}"))?;
    let object = value.as_object().ok_or("response is not a JSON object")?;
    let status = object
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or("response has no valid statusCode")?;
    let encoded = match object.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("isBase64Encoded is not a boolean".into()),
    };
    let body = match object.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) if encoded => BASE64
            .decode(text)
            .map_err(|e| format!("body is not valid base64: {e}"))?,
        Some(Value::String(text)) => text.clone().into_bytes(),
        Some(_) => return Err("body is not a string".into()),
    };

    let mut headers = HeaderMap::new();
    let mut content_length = None;
    if let Some(map) = object.get("headers").filter(|h| !h.is_null()) {
        let map = map.as_object().ok_or("headers is not an object")?;
        for (name, value) in map {
            let value = scalar(value).ok_or_else(|| format!("header {name} is not a string"))?;
            if name.eq_ignore_ascii_case("content-length") {
                content_length = Some(value.clone());
            }
            append(&mut headers, name, &value)?;
        }
    }
    if let Some(map) = object.get("multiValueHeaders").filter(|h| !h.is_null()) {
        let map = map
            .as_object()
            .ok_or("multiValueHeaders is not an object")?;
        for (name, values) in map {
            let values = values
                .as_array()
                .ok_or_else(|| format!("multiValueHeaders.{name} is not an array"))?;
            if headers.contains_key(name.to_ascii_lowercase().as_str()) {
                continue;
            }
            for value in values {
                let value = scalar(value)
                    .ok_or_else(|| format!("multiValueHeaders.{name} holds a non-string"))?;
                append(&mut headers, name, &value)?;
            }
        }
    }
    if let Some(cookies) = object.get("cookies").filter(|c| !c.is_null()) {
        for cookie in cookies.as_array().ok_or("cookies is not an array")? {
            let cookie = cookie.as_str().ok_or("cookies holds a non-string")?;
            let value =
                HeaderValue::from_str(cookie).map_err(|_| format!("invalid cookie {cookie:?}"))?;
            headers.append(header::SET_COOKIE, value);
        }
    }
    headers.insert(
        "apigw-requestid",
        HeaderValue::from_str(request_id).map_err(|e| e.to_string())?,
    );

    let mut response = Response::builder().status(status);
    if method == Method::HEAD {
        // No body on the wire, but the length the function announced.
        let length = content_length.unwrap_or_else(|| body.len().to_string());
        response = response.header(header::CONTENT_LENGTH, length);
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(body)
    };
    let mut response = response.body(body).map_err(|e| e.to_string())?;
    response.headers_mut().extend(headers);
    Ok(response)
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn append(headers: &mut HeaderMap, name: &str, value: &str) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    if HOP_BY_HOP.contains(&lower.as_str()) {
        return Ok(());
    }
    let name = HeaderName::from_bytes(lower.as_bytes())
        .map_err(|_| format!("invalid header name {name:?}"))?;
    let value =
        HeaderValue::from_str(value).map_err(|_| format!("invalid value for header {name}"))?;
    headers.append(name, value);
    Ok(())
}

/// API Gateway's own JSON error answer, e.g. 404 `{"message":"Not Found"}`.
pub fn error_response(status: StatusCode, message: &str, request_id: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(json!({ "message": message }).to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("apigw-requestid", id);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use axum::http::Request;

    use super::*;

    fn event_for(request: Request<()>, body: &[u8]) -> Value {
        let (parts, ()) = request.into_parts();
        let origin = Origin {
            peer: "10.1.2.3:5555".parse().expect("addr"),
            local: "127.0.0.1:9000".parse().expect("addr"),
            request_id: "rid".into(),
            now: DateTime::from_timestamp(1_795_435_200, 0).expect("time"),
        };
        let route = RouteMatch {
            route_key: "POST /v1/t/{tenant}".into(),
            function: "f".into(),
            path_parameters: BTreeMap::from([("tenant".to_owned(), "a b".to_owned())]),
        };
        build_event(&parts, body, &origin, &route)
    }

    #[test]
    fn event_has_the_v2_shape() {
        let request = Request::post("/v1/t/a%20b?x=1&y=2&x=3&flag")
            .header("Host", "acme.latchkey.test:9000")
            .header("User-Agent", "ua/1")
            .header("X-Multi", "a")
            .header("X-Multi", "b")
            .header("Cookie", "s=1; t=2")
            .header("Content-Type", "application/json; charset=utf-8")
            .body(())
            .expect("request");
        let event = event_for(request, br#"{"a":1}"#);
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["routeKey"], "POST /v1/t/{tenant}");
        assert_eq!(event["rawPath"], "/v1/t/a%20b");
        assert_eq!(event["rawQueryString"], "x=1&y=2&x=3&flag");
        assert_eq!(event["cookies"], json!(["s=1", "t=2"]));
        assert_eq!(event["headers"]["x-multi"], "a,b");
        assert!(event["headers"].get("cookie").is_none());
        assert_eq!(event["headers"]["x-forwarded-for"], "10.1.2.3");
        assert_eq!(
            event["queryStringParameters"],
            json!({"x": "1,3", "y": "2", "flag": ""})
        );
        assert_eq!(event["pathParameters"], json!({"tenant": "a b"}));
        let ctx = &event["requestContext"];
        assert_eq!(ctx["domainName"], "acme.latchkey.test:9000");
        assert_eq!(ctx["domainPrefix"], "acme");
        assert_eq!(ctx["http"]["sourceIp"], "10.1.2.3");
        assert_eq!(ctx["http"]["method"], "POST");
        assert_eq!(ctx["http"]["userAgent"], "ua/1");
        assert_eq!(ctx["http"]["protocol"], "HTTP/1.1");
        assert_eq!(ctx["stage"], "$default");
        assert_eq!(ctx["time"], "23/Nov/2026:12:00:00 +0000");
        assert_eq!(ctx["timeEpoch"], 1_795_435_200_000_i64);
        assert_eq!(event["body"], r#"{"a":1}"#);
        assert_eq!(event["isBase64Encoded"], false);
    }

    #[test]
    fn binary_and_untyped_bodies_are_base64() {
        let png = Request::post("/")
            .header("Content-Type", "image/png")
            .body(())
            .expect("request");
        let event = event_for(png, b"abc");
        assert_eq!(
            (event["body"].as_str(), event["isBase64Encoded"].as_bool()),
            (Some("YWJj"), Some(true))
        );
        let bad_utf8 = Request::post("/")
            .header("Content-Type", "text/plain")
            .body(())
            .expect("request");
        assert_eq!(event_for(bad_utf8, &[0xff, 0xfe])["isBase64Encoded"], true);
        let none = Request::get("/").body(()).expect("request");
        let event = event_for(none, b"");
        assert!(event.get("body").is_none() && event.get("queryStringParameters").is_none());
        for ct in [
            "text/csv",
            "application/problem+json",
            "application/x-www-form-urlencoded",
            "application/xml",
        ] {
            let request = Request::post("/")
                .header("Content-Type", ct)
                .body(())
                .expect("request");
            assert_eq!(event_for(request, b"a=1")["isBase64Encoded"], false, "{ct}");
        }
    }

    #[test]
    fn response_headers_cookies_and_base64() {
        let payload = json!({
            "statusCode": 201,
            "headers": {"content-type": "text/plain", "X-A": "1", "content-length": "999"},
            "multiValueHeaders": {"x-b": ["1", "2"], "x-a": ["ignored"]},
            "cookies": ["a=1", "b=2"],
            "body": "aGk=",
            "isBase64Encoded": true
        });
        let response =
            into_response(payload.to_string().as_bytes(), &Method::GET, "rid").expect("valid");
        assert_eq!(response.status(), StatusCode::CREATED);
        let h = response.headers();
        assert_eq!(h.get_all("x-a").iter().count(), 1);
        assert_eq!(h.get_all("x-b").iter().count(), 2);
        assert_eq!(h.get_all("set-cookie").iter().count(), 2);
        assert!(h.get("content-length").is_none());
    }

    #[test]
    fn invalid_responses_are_rejected() {
        for payload in [
            r#""just a string""#,
            r#"{"body":"x"}"#,
            r#"{"statusCode":"200"}"#,
            "not json",
            r#"{"statusCode":200,"body":"%%","isBase64Encoded":true}"#,
        ] {
            assert!(
                into_response(payload.as_bytes(), &Method::GET, "rid").is_err(),
                "{payload}"
            );
        }
        assert!(into_response(br#"{"statusCode":204}"#, &Method::GET, "rid").is_ok());
    }
}
