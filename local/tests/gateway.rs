//! The gateway and the runtime emulator against a real Lambda binary (the echo function,
//! built on `lambda_http` and `lambda_runtime`): routing, the event and response shapes,
//! concurrency, crashes, timeouts, readiness and the Invoke API.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{BinDir, echo_stack, logs, start};
use latchkey_local::Gateway;
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// The event the raw echo function received, from its v2 response.
async fn seen(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-echo"], "raw");
    let body: Value = response.json().await.expect("json");
    body
}

#[tokio::test]
async fn routes_like_api_gateway_and_sends_v2_events() {
    let gateway = echo_stack(1).await;
    let url = gateway.url();
    let http = client();

    let response = http
        .post(format!("{url}/v1/tenants/acme%20co/invitations?x=1&x=2&y"))
        .header("content-type", "application/json")
        .header("cookie", "a=1; b=2")
        .header("X-Custom", "v")
        .body(r#"{"hello":"world"}"#)
        .send()
        .await
        .expect("send");
    let answer = seen(response).await;
    let event = &answer["event"];
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["routeKey"], "POST /v1/tenants/{tenant}/invitations");
    assert_eq!(event["rawPath"], "/v1/tenants/acme%20co/invitations");
    assert_eq!(event["rawQueryString"], "x=1&x=2&y");
    assert_eq!(event["queryStringParameters"], json!({"x": "1,2", "y": ""}));
    assert_eq!(event["pathParameters"], json!({"tenant": "acme co"}));
    assert_eq!(event["cookies"], json!(["a=1", "b=2"]));
    assert_eq!(event["headers"]["x-custom"], "v");
    assert_eq!(event["headers"]["host"], gateway.addr().to_string());
    assert_eq!(event["body"], r#"{"hello":"world"}"#);
    assert_eq!(event["isBase64Encoded"], false);
    let ctx = &event["requestContext"];
    assert_eq!(ctx["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(ctx["http"]["method"], "POST");
    assert_eq!(ctx["domainName"], gateway.addr().to_string());
    assert_eq!(
        (
            ctx["stage"].as_str(),
            ctx["accountId"].as_str(),
            ctx["apiId"].as_str()
        ),
        (Some("$default"), Some("123456789012"), Some("local"))
    );
    assert!(
        ctx["timeEpoch"]
            .as_i64()
            .is_some_and(|t| t > 1_700_000_000_000)
    );
    // What the process and lambda_runtime's Context see.
    assert_eq!(
        answer["function_arn"],
        "arn:aws:lambda:us-east-1:123456789012:function:raw"
    );
    let deadline = answer["deadline"].as_u64().expect("deadline");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    assert!(
        deadline > now + 8_000 && deadline <= now + 10_500,
        "deadline {deadline} vs now {now} (timeout 10 s)"
    );
    let env = &answer["env"];
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "raw");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/raw");
    assert!(
        env["AWS_LAMBDA_LOG_STREAM_NAME"]
            .as_str()
            .is_some_and(|s| s.contains("[$LATEST]"))
    );
    assert_eq!(
        env["ECHO_EXTRA"], "extra",
        "the config wins over the template"
    );
    assert_eq!(env["ECHO_TEMPLATE"], "from-template");
    assert_eq!(env["TZ"], ":UTC");
    assert_eq!(env["PUBLIC_BASE_URL"], url.as_str());

    // A literal segment wins over a parameter; a greedy parameter takes the rest.
    let me = seen_event(&http, &format!("{url}/v1/users/me")).await;
    assert_eq!(me["routeKey"], "GET /v1/users/me");
    assert!(
        me.get("pathParameters").is_none()
            && me.get("queryStringParameters").is_none()
            && me.get("body").is_none()
    );
    let user = seen_event(&http, &format!("{url}/v1/users/u-42")).await;
    assert_eq!(
        (
            user["routeKey"].as_str(),
            user["pathParameters"]["id"].as_str()
        ),
        (Some("GET /v1/users/{id}"), Some("u-42"))
    );
    let files = seen_event(&http, &format!("{url}/files/a/b%2Fc/d.txt")).await;
    assert_eq!(files["pathParameters"]["proxy"], "a/b/c/d.txt");

    // No route: API Gateway's 404, for an unknown path and for a known path with another method.
    for (method, path) in [
        ("GET", "/nowhere"),
        ("DELETE", "/v1/users/u-42"),
        ("GET", "/v1/users/u-42/extra"),
        ("GET", "/files"),
    ] {
        let response = http
            .request(method.parse().expect("method"), format!("{url}{path}"))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 404, "{method} {path}");
        assert_eq!(
            response.text().await.expect("text"),
            r#"{"message":"Not Found"}"#
        );
    }

    // HEAD: the function's headers, no body.
    let head = http.head(format!("{url}/page")).send().await.expect("head");
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["x-echo"], "raw");
    assert_eq!(head.headers()["content-length"], "42");
    assert!(head.bytes().await.expect("body").is_empty());
    let get = seen_event(&http, &format!("{url}/page")).await;
    assert_eq!(get["requestContext"]["http"]["method"], "GET");

    // Binary bodies arrive base64-encoded; text with an unknown type too.
    let bytes = vec![0u8, 159, 146, 150, 255];
    let response = http
        .post(format!("{url}/upload"))
        .header("content-type", "image/png")
        .body(bytes.clone())
        .send()
        .await
        .expect("send");
    let event = &seen(response).await["event"];
    assert_eq!(event["isBase64Encoded"], true);
    assert_eq!(
        BASE64
            .decode(event["body"].as_str().expect("body"))
            .expect("base64"),
        bytes
    );
    let response = http
        .post(format!("{url}/upload"))
        .header("content-type", "text/csv")
        .body("a,b\n1,2\n")
        .send()
        .await
        .expect("send");
    let event = &seen(response).await["event"];
    assert_eq!(
        (event["isBase64Encoded"].as_bool(), event["body"].as_str()),
        (Some(false), Some("a,b\n1,2\n"))
    );

    // Over 10 MiB: 413 as API Gateway says it.
    let big = vec![b'a'; 10 * 1024 * 1024 + 1];
    let response = http
        .post(format!("{url}/upload"))
        .header("content-type", "text/plain")
        .body(big)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.text().await.expect("text"),
        r#"{"message":"Request Entity Too Large"}"#
    );

    // A function error, or a response API Gateway cannot use: 500.
    for query in ["fail=1", "invalid=1"] {
        let response = http
            .get(format!("{url}/v1/users/x?{query}"))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 500, "{query}");
        assert!(response.headers().contains_key("apigw-requestid"));
        assert_eq!(
            response.text().await.expect("text"),
            r#"{"message":"Internal Server Error"}"#
        );
    }
}

async fn seen_event(http: &reqwest::Client, url: &str) -> Value {
    let response = http.get(url).send().await.expect("send");
    seen(response).await["event"].clone()
}

#[tokio::test]
async fn lambda_http_functions_see_the_request_and_set_cookies() {
    let gateway = echo_stack(1).await;
    let url = gateway.url();
    let http = client();

    let response = http
        .get(format!("{url}/http/w%C3%B6rld?q=1&q=2"))
        .header("cookie", "s=abc")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-echo"], "yes");
    assert_eq!(response.headers()["content-type"], "application/json");
    let cookies: Vec<&str> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(cookies, ["a=1; Path=/", "b=2; Path=/"]);
    let echo: Value = response.json().await.expect("json");
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["raw_path"], "/http/w%C3%B6rld");
    assert_eq!(
        echo["uri"],
        format!("http://{}/http/w%C3%B6rld?q=1&q=2", gateway.addr())
    );
    assert_eq!(echo["path_params"], json!([["name", "wörld"]]));
    assert_eq!(echo["query"], json!([["q", "1"], ["q", "2"]]));
    assert_eq!(echo["headers"]["cookie"], "s=abc");

    let response = http
        .post(format!("{url}/http/bin"))
        .header("content-type", "application/octet-stream")
        .body(vec![1u8, 2, 255])
        .send()
        .await
        .expect("send");
    let echo: Value = response.json().await.expect("json");
    assert_eq!(
        (echo["binary"].as_bool(), echo["body"].as_str()),
        (Some(true), Some("0102ff"))
    );
    let response = http
        .post(format!("{url}/http/json"))
        .header("content-type", "application/json")
        .body(r#"{"a":1}"#)
        .send()
        .await
        .expect("send");
    let echo: Value = response.json().await.expect("json");
    assert_eq!(
        (echo["binary"].as_bool(), echo["body"].as_str()),
        (Some(false), Some(r#"{"a":1}"#))
    );
}

#[tokio::test]
async fn instances_serve_requests_in_parallel() {
    let gateway = echo_stack(3).await;
    let url = gateway.url();
    let http = client();
    let started = Instant::now();
    let requests = (0..3).map(|i| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let response = http
                .get(format!("{url}/v1/users/{i}?sleep_ms=1500"))
                .send()
                .await
                .expect("send");
            seen(response).await["pid"].as_u64().expect("pid")
        }
    });
    let pids: HashSet<u64> = futures_join_all(requests).await.into_iter().collect();
    let elapsed = started.elapsed();
    assert_eq!(pids.len(), 3, "each request ran in its own instance");
    assert!(
        elapsed < Duration::from_millis(2800),
        "3 × 1.5 s in parallel took {elapsed:?}"
    );
}

/// Runs futures concurrently on the current task (no extra dependency for join_all).
async fn futures_join_all<
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
>(
    futures: impl Iterator<Item = F>,
) -> Vec<T> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn a_crashed_instance_fails_its_request_and_is_replaced() {
    logs();
    let bins = BinDir::all();
    let log_file = bins.0.join("logs").join("functions.log");
    let mut config = common::config("template.yaml", &bins);
    config.instances = 1;
    config.log_file = Some(log_file.clone());
    let gateway = Gateway::start(config).await.expect("gateway starts");
    let url = gateway.url();
    let http = client();
    let before = seen(
        http.get(format!("{url}/v1/users/a"))
            .send()
            .await
            .expect("send"),
    )
    .await["pid"]
        .clone();
    let crashed = http
        .get(format!("{url}/v1/users/a?crash=1"))
        .send()
        .await
        .expect("send");
    assert_eq!(crashed.status(), 500);
    // The replacement serves the next request (it may still be starting: that request waits).
    let after = seen(
        http.get(format!("{url}/v1/users/a"))
            .send()
            .await
            .expect("send"),
    )
    .await["pid"]
        .clone();
    assert_ne!(before, after, "a new process took over");

    // Through the Invoke API the crash is a function error, as Lambda reports it.
    let error = gateway
        .invoke("raw", json!({"crash": true}))
        .await
        .expect_err("crash is an error");
    assert!(
        format!("{error:#}").contains("Runtime.ExitError"),
        "{error:#}"
    );
    assert_eq!(
        gateway
            .invoke("raw", json!({"ok": 1}))
            .await
            .expect("works again"),
        json!({"ok": 1})
    );

    // Function output went to the log file, prefixed with the instance.
    let logs = std::fs::read_to_string(&log_file).expect("log file");
    assert!(logs.contains("[raw#0] crashing on purpose"), "{logs}");

    // Shutdown ends the processes.
    let pid = seen(
        http.get(format!("{url}/v1/users/a"))
            .send()
            .await
            .expect("send"),
    )
    .await["pid"]
        .as_u64()
        .expect("pid");
    gateway.shutdown().await;
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "instance {pid} is gone"
    );
}

#[tokio::test]
async fn an_invocation_past_the_timeout_fails_and_the_instance_is_replaced() {
    let gateway = echo_stack(1).await;
    let started = Instant::now();
    let error = gateway
        .invoke("slow", json!({"sleep_ms": 5000}))
        .await
        .expect_err("times out");
    let text = format!("{error:#}");
    assert!(
        text.contains("Sandbox.Timedout") && text.contains("Task timed out after 1.00 seconds"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        gateway
            .invoke("slow", json!({"n": 2}))
            .await
            .expect("a fresh instance answers"),
        json!({"n": 2})
    );
}

#[tokio::test]
async fn start_fails_naming_a_function_that_dies_during_init() {
    logs();
    let bins = BinDir::all();
    let started = Instant::now();
    let error = Gateway::start(common::config("broken.yaml", &bins))
        .await
        .err()
        .expect("start fails");
    let text = format!("{error:#}");
    assert!(text.contains("function broken failed to start"), "{text}");
    assert!(
        text.contains("missing configuration: broken cannot start"),
        "the init error is shown: {text}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));

    let error = Gateway::start(common::config("missing.yaml", &bins))
        .await
        .err()
        .expect("start fails");
    assert!(
        format!("{error:#}").contains("function ghost: binary"),
        "{error:#}"
    );
}

#[tokio::test]
async fn the_invoke_api_behaves_like_lambda() {
    let gateway = echo_stack(1).await;
    let url = gateway.url();
    let http = client();

    let response = http
        .post(format!("{url}/2015-03-31/functions/bootstrap/invocations"))
        .body(r#"{"a":[1,2]}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-amz-executed-version"], "$LATEST");
    assert!(!response.headers().contains_key("x-amz-function-error"));
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        json!({"a": [1, 2]})
    );

    let arn = "arn:aws:lambda:us-east-1:123456789012:function:raw:$LATEST";
    let response = http
        .post(format!("{url}/2015-03-31/functions/{arn}/invocations"))
        .body(r#"{"fail":1}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-amz-function-error"], "Unhandled");
    let error: Value = response.json().await.expect("json");
    assert_eq!(error["errorMessage"], "failing on purpose");
    assert!(error["errorType"].is_string());

    let response = http
        .post(format!("{url}/2015-03-31/functions/nope/invocations"))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["x-amzn-errortype"],
        "ResourceNotFoundException"
    );
    let response = http
        .post(format!("{url}/2015-03-31/functions/raw/invocations"))
        .body("{oops")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 400);
    let response = http
        .post(format!("{url}/2015-03-31/functions/raw/invocations"))
        .header("x-amz-invocation-type", "Event")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 202);

    assert_eq!(
        gateway
            .invoke("bootstrap", json!({}))
            .await
            .expect("invoke"),
        json!({})
    );
    assert!(gateway.invoke("nope", json!({})).await.is_err());
    assert_eq!(
        gateway.function_names(),
        ["bootstrap", "http", "raw", "slow"]
    );
}

/// `cargo lambda invoke` (from the project venv, or the PATH) against the gateway, on its
/// default address `[::1]` and on 127.0.0.1. Fails when cargo-lambda is not installed.
#[tokio::test]
async fn cargo_lambda_invoke_works_against_the_gateway() {
    logs();
    let venv =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.local/venv/bin/cargo-lambda");
    let program = if venv.is_file() {
        venv
    } else if let Some(found) = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("cargo-lambda"))
            .find(|p| p.is_file())
    }) {
        found
    } else {
        // A skip would report success for what never ran.
        panic!("cargo-lambda is not installed: run scripts/install.sh (it puts it in .local/venv)");
    };
    let bins = BinDir::all();
    let gateway = start("template.yaml", &bins, 1).await;
    let data = bins.0.join("event.json");
    std::fs::write(&data, r#"{"hello": "cargo lambda"}"#).expect("write event");
    let port = gateway.addr().port().to_string();
    for address in [None, Some("127.0.0.1")] {
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(["lambda", "invoke", "--invoke-port", &port, "--data-file"])
            .arg(&data)
            .arg("bootstrap");
        if let Some(address) = address {
            cmd.args(["--invoke-address", address]);
        }
        let output = cmd.output().await.expect("run cargo-lambda");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{address:?}: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let answer: Value = serde_json::from_str(stdout.trim()).expect("json output");
        assert_eq!(answer, json!({"hello": "cargo lambda"}));
    }
}

#[tokio::test]
async fn dropping_the_gateway_kills_its_processes() {
    let gateway = echo_stack(1).await;
    let response = client()
        .get(format!("{}/v1/users/a", gateway.url()))
        .send()
        .await
        .expect("send");
    let pid = seen(response).await["pid"].as_u64().expect("pid");
    drop(gateway);
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.contains(") Z "))
    };
    for _ in 0..100 {
        if !alive() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("instance {pid} outlived its gateway");
}
