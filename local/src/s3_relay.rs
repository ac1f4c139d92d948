//! Delivers the upload bucket's S3 notifications to the functions, as AWS does.
//!
//! The template's `S3` events become the bucket's notification configuration on moto, with a
//! queue as the destination (moto cannot invoke a process of ours): moto then writes the
//! real S3 event document for each matching upload to that queue. The relay long-polls the
//! queue and hands each document, unchanged, to the function as an asynchronous invocation,
//! retried twice on a function error like Lambda's asynchronous invocations. The function's
//! code is the one that runs in AWS; only the delivery differs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use aws_config::BehaviorVersion;
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
    QueueConfiguration, S3KeyFilter,
};
use aws_sdk_sqs::types::QueueAttributeName;
use axum::body::Bytes;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::runtime::{FunctionPool, InvokeRequest, Outcome};
use crate::template::S3EventSpec;

/// Attempts per event: the first and Lambda's two asynchronous retries.
const ATTEMPTS: u32 = 3;
/// Pause between attempts (Lambda waits a minute or more; locally a second will do).
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// A running relay; stops polling when dropped.
pub struct S3Relay {
    task: JoinHandle<()>,
}

impl Drop for S3Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Configures `bucket`'s notifications for `targets` (function, its S3 event) and starts
/// relaying them. `None` when there is nothing to relay.
pub async fn start(
    moto_url: &str,
    bucket: &str,
    targets: Vec<(Arc<FunctionPool>, S3EventSpec)>,
) -> Result<Option<S3Relay>> {
    if targets.is_empty() {
        return Ok(None);
    }
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(crate::setup::REGION))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "local",
            "local",
            None,
            None,
            "latchkey-local",
        ))
        .endpoint_url(moto_url)
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );

    let queue_name = format!("s3-events-{bucket}");
    let queue_url = sqs
        .create_queue()
        .queue_name(&queue_name)
        .send()
        .await
        .with_context(|| format!("creating queue {queue_name}"))?
        .queue_url
        .context("moto returned no queue URL")?;
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .context("reading the queue ARN")?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .context("moto returned no queue ARN")?;

    let mut routes = HashMap::new();
    let mut queues = Vec::new();
    for (pool, spec) in targets {
        let id = format!("{}-{}", pool.name(), spec.name);
        let rules = spec
            .key_rules
            .iter()
            .map(|(name, value)| {
                FilterRule::builder()
                    .name(FilterRuleName::from(name.to_ascii_lowercase().as_str()))
                    .value(value)
                    .build()
            })
            .collect::<Vec<_>>();
        let mut queue = QueueConfiguration::builder()
            .id(&id)
            .queue_arn(&queue_arn)
            .set_events(Some(
                spec.events
                    .iter()
                    .map(|e| Event::from(e.as_str()))
                    .collect(),
            ));
        if !rules.is_empty() {
            queue = queue.filter(
                NotificationConfigurationFilter::builder()
                    .key(S3KeyFilter::builder().set_filter_rules(Some(rules)).build())
                    .build(),
            );
        }
        queues.push(queue.build().context("building a queue configuration")?);
        routes.insert(id, pool);
    }
    s3.put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .set_queue_configurations(Some(queues))
                .build(),
        )
        .send()
        .await
        .with_context(|| format!("configuring the notifications of bucket {bucket}"))?;
    info!(
        "relaying S3 events of bucket {bucket} to {} function(s)",
        routes.len()
    );
    let task = tokio::spawn(relay(sqs, queue_url, routes));
    Ok(Some(S3Relay { task }))
}

async fn relay(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    routes: HashMap<String, Arc<FunctionPool>>,
) {
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await;
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                debug!("S3 relay: receive failed: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for message in messages {
            if let Some(body) = message.body.as_deref() {
                dispatch(body, &routes);
            }
            if let Some(handle) = message.receipt_handle.as_deref() {
                let _ = sqs
                    .delete_message()
                    .queue_url(&queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await;
            }
        }
    }
}

/// Sends one S3 event document to the function its notification names.
fn dispatch(body: &str, routes: &HashMap<String, Arc<FunctionPool>>) {
    let Ok(document) = serde_json::from_str::<serde_json::Value>(body) else {
        warn!("S3 relay: a message that is not JSON; dropped");
        return;
    };
    // S3 sends a test event when the configuration is set; it is not for the function.
    if document.get("Event").and_then(|e| e.as_str()) == Some("s3:TestEvent") {
        return;
    }
    let configuration = document["Records"][0]["s3"]["configurationId"]
        .as_str()
        .unwrap_or_default();
    let Some(pool) = routes.get(configuration).cloned() else {
        warn!("S3 relay: event for unknown configuration {configuration:?}; dropped");
        return;
    };
    let payload = Bytes::from(body.to_owned());
    tokio::spawn(async move {
        let wait = pool.timeout() + Duration::from_secs(60);
        for attempt in 1..=ATTEMPTS {
            let request = InvokeRequest {
                payload: payload.clone(),
                ..InvokeRequest::default()
            };
            match pool.invoke(request, wait).await {
                Ok(Outcome::Response(_)) => return,
                Ok(Outcome::Error(error)) => warn!(
                    "S3 event to {} failed (attempt {attempt} of {ATTEMPTS}): {}",
                    pool.name(),
                    String::from_utf8_lossy(&error)
                ),
                Err(e) => warn!("S3 event to {}: {e}", pool.name()),
            }
            tokio::time::sleep(RETRY_DELAY).await;
        }
    });
}
