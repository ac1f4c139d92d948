//! A tiny Lambda function for testing the local stack. What it does depends on its function
//! name (`AWS_LAMBDA_FUNCTION_NAME`, i.e. the binary name the template gives it):
//!
//! - `http*`: a `lambda_http` handler that echoes the request it sees (method, URI, path and
//!   query parameters, headers, body) as JSON, and sets two cookies.
//! - `broken*`: fails during init, as a function whose configuration is missing does.
//! - anything else: a `lambda_runtime` handler. An HTTP API event (it has `routeKey`) is
//!   answered with a v2 response whose body is the event itself; any other payload is
//!   returned as is. Controls, in the query string or the payload: `sleep_ms=N` waits,
//!   `fail=1` returns an error, `crash=1` exits the process, `invalid=1` returns a response
//!   API Gateway cannot use.

use std::time::Duration;

use lambda_http::{Body, Request, RequestExt, Response};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
    if name.starts_with("broken") {
        return Err(format!("missing configuration: {name} cannot start").into());
    }
    if name.starts_with("http") {
        lambda_http::run(lambda_http::service_fn(http_echo)).await
    } else {
        lambda_runtime::run(lambda_runtime::service_fn(raw_echo)).await
    }
}

async fn http_echo(request: Request) -> Result<Response<Body>, Error> {
    let query: Vec<(String, String)> = request
        .query_string_parameters()
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let params: Vec<(String, String)> = request
        .path_parameters()
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let headers: serde_json::Map<String, Value> = request
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect();
    let (body, binary) = match request.body() {
        Body::Empty => (String::new(), false),
        Body::Text(text) => (text.clone(), false),
        Body::Binary(bytes) => (bytes.iter().map(|b| format!("{b:02x}")).collect(), true),
        _ => (String::new(), false),
    };
    if let Some(ms) = request
        .query_string_parameters()
        .first("sleep_ms")
        .and_then(|v| v.parse().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let echo = json!({
        "method": request.method().as_str(),
        "uri": request.uri().to_string(),
        "raw_path": request.raw_http_path(),
        "path_params": params,
        "query": query,
        "headers": headers,
        "body": body,
        "binary": binary,
        "pid": std::process::id(),
    });
    let response = Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("x-echo", "yes")
        .header("set-cookie", "a=1; Path=/")
        .header("set-cookie", "b=2; Path=/")
        .body(Body::Text(echo.to_string()))?;
    Ok(response)
}

async fn raw_echo(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    let control = |name: &str| -> Option<String> {
        let from_query = payload
            .get("queryStringParameters")
            .and_then(|q| q.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned);
        from_query.or_else(|| {
            payload.get(name).map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            })
        })
    };
    if let Some(ms) = control("sleep_ms").and_then(|v| v.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if control("crash").is_some() {
        eprintln!("crashing on purpose");
        std::process::exit(3);
    }
    if control("fail").is_some() {
        return Err("failing on purpose".into());
    }
    if control("invalid").is_some() {
        return Ok(json!("not a response object"));
    }
    if payload.get("routeKey").is_none() {
        return Ok(payload);
    }
    let seen = json!({
        "event": payload,
        "request_id": context.request_id,
        "deadline": context.deadline,
        "function_arn": context.invoked_function_arn,
        "pid": std::process::id(),
        "env": {
            "AWS_LAMBDA_FUNCTION_NAME": std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok(),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok(),
            "AWS_LAMBDA_FUNCTION_VERSION": std::env::var("AWS_LAMBDA_FUNCTION_VERSION").ok(),
            "AWS_LAMBDA_LOG_GROUP_NAME": std::env::var("AWS_LAMBDA_LOG_GROUP_NAME").ok(),
            "AWS_LAMBDA_LOG_STREAM_NAME": std::env::var("AWS_LAMBDA_LOG_STREAM_NAME").ok(),
            "ECHO_EXTRA": std::env::var("ECHO_EXTRA").ok(),
            "ECHO_TEMPLATE": std::env::var("ECHO_TEMPLATE").ok(),
            "TZ": std::env::var("TZ").ok(),
            "PUBLIC_BASE_URL": std::env::var("PUBLIC_BASE_URL").ok(),
        },
    });
    let head = payload
        .pointer("/requestContext/http/method")
        .and_then(Value::as_str)
        == Some("HEAD");
    Ok(json!({
        "statusCode": 200,
        "headers": {"content-type": "application/json", "x-echo": "raw", "content-length": if head { "42" } else { "0" }},
        "body": seen.to_string(),
    }))
}
