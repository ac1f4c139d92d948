//! Structured JSON logs (CloudWatch parses them), filtered by `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .init();
}

/// CloudWatch namespace of the business metrics (`METRICS_NAMESPACE`, default `Latchkey`).
fn namespace() -> &'static str {
    static NAMESPACE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAMESPACE.get_or_init(|| {
        std::env::var("METRICS_NAMESPACE")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| "Latchkey".to_owned())
    })
}

/// One line of CloudWatch embedded metric format: a count of `count` of `name`, with
/// `dimensions` (low-cardinality values only: never an address, a token or an id).
pub fn emf_line(
    namespace: &str,
    name: &str,
    dimensions: &[(&str, &str)],
    count: u64,
    at: chrono::DateTime<chrono::Utc>,
) -> String {
    let mut line = serde_json::Map::new();
    line.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [dimensions.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                "Metrics": [{"Name": name, "Unit": "Count"}],
            }],
        }),
    );
    for (key, value) in dimensions {
        line.insert((*key).into(), serde_json::Value::from(*value));
    }
    line.insert(name.into(), serde_json::Value::from(count));
    serde_json::Value::Object(line).to_string()
}

/// Counts one business event in CloudWatch: Lambda's log agent turns this stdout line into
/// the metric `name` (no API call, no permission, no latency).
pub fn metric(name: &str, dimensions: &[(&str, &str)]) {
    metric_count(name, dimensions, 1);
}

/// Counts `count` events in one line (an import's batch is one line, not hundreds).
pub fn metric_count(name: &str, dimensions: &[(&str, &str)], count: u64) {
    println!(
        "{}",
        emf_line(namespace(), name, dimensions, count, chrono::Utc::now())
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_emf_line_declares_its_metric_and_carries_its_value_and_dimensions() {
        let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let line = super::emf_line(
            "Latchkey",
            "InvitationCreated",
            &[("Tenant", "acme")],
            1,
            at,
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_800_000_000_000u64);
        let m = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(m["Namespace"], "Latchkey");
        assert_eq!(m["Dimensions"][0][0], "Tenant");
        assert_eq!(m["Metrics"][0]["Name"], "InvitationCreated");
        assert_eq!(v["Tenant"], "acme");
        assert_eq!(v["InvitationCreated"], 1);
        assert!(!line.contains('\n'));
    }

    #[test]
    fn an_emf_line_carries_a_count_of_many_events() {
        let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let line = super::emf_line("Latchkey", "InvitationCreated", &[], 500, at);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["InvitationCreated"], 500);
    }
}
