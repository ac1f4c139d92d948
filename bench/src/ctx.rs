//! What every benchmark shares: the bench's own emulators (on free ports, so a running
//! `make dev` or `make test` is never disturbed), the template, and the release binaries;
//! plus stacks whose AWS requests are counted.

use std::path::PathBuf;

use anyhow::{Context, Result};
use latchkey_local::emulators::{Emulators, free_port};
use latchkey_local::faults::FaultProxy;
use latchkey_local::paths::Paths;
use latchkey_local::setup::{Aws, Endpoints};
use latchkey_local::template::Template;
use latchkey_local::testing::{TestStack, TestStackBuilder};

pub struct Ctx {
    pub paths: Paths,
    pub template_path: PathBuf,
    pub template: Template,
    /// The release binaries: the functions and `hello-lambda`.
    pub bin_dir: PathBuf,
    emulators: Emulators,
    pub endpoints: Endpoints,
    pub aws: Aws,
}

impl Ctx {
    pub async fn start() -> Result<Self> {
        let paths = Paths::discover(None)?;
        let template_path = paths.template();
        let template = Template::load(&template_path)?;
        let bin_dir = match std::env::var_os("LATCHKEY_BIN_DIR").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            // `cargo build --release` puts this binary beside the functions.
            None => std::env::current_exe()?
                .parent()
                .context("this binary has no folder")?
                .to_owned(),
        };
        let emulators = Emulators::start(&paths, free_port()?, free_port()?)
            .await
            .context("starting DynamoDB Local and moto")?;
        let endpoints = emulators.endpoints();
        let aws = Aws::local(&endpoints).await;
        Ok(Self {
            paths,
            template_path,
            template,
            bin_dir,
            emulators,
            endpoints,
            aws,
        })
    }

    /// A stack over the release binaries on the bench's emulators.
    pub fn stack(&self) -> TestStackBuilder {
        TestStack::builder()
            .endpoints(self.endpoints.clone())
            .template(&self.template_path)
            .bin_dir(&self.bin_dir)
    }

    /// A stack whose functions reach DynamoDB and SES through counting proxies.
    pub async fn counted_stack(&self, builder: TestStackBuilder) -> Result<(TestStack, Counter)> {
        // Only SES goes through this one: S3 and Secrets Manager stay on moto directly.
        let ses = FaultProxy::start(&self.endpoints.moto).await?;
        let (stack, dynamodb) = builder
            .env("AWS_ENDPOINT_URL_SESV2", ses.url())
            .start_with_fault_proxy()
            .await?;
        Ok((stack, Counter { dynamodb, ses }))
    }

    pub async fn stop(self) {
        self.emulators.stop().await;
    }
}

/// Counts the AWS requests that a stack's functions make.
pub struct Counter {
    dynamodb: FaultProxy,
    ses: FaultProxy,
}

/// AWS requests seen between two [`Counter::take`]s.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Per DynamoDB operation (`GetItem`, ...).
    pub dynamodb: std::collections::BTreeMap<String, u64>,
    /// SES v2 `SendEmail` calls.
    pub ses_sends: u64,
    /// Any other SES v2 call.
    pub ses_other: u64,
}

/// DynamoDB operations that only read.
const READS: &[&str] = &[
    "GetItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "TransactGetItems",
];

impl Counts {
    pub fn reads(&self) -> u64 {
        self.dynamodb
            .iter()
            .filter(|(op, _)| READS.contains(&op.as_str()))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn writes(&self) -> u64 {
        self.dynamodb.values().sum::<u64>() - self.reads()
    }

    /// `GetItem ×2, TransactWriteItems ×1`.
    pub fn operations(&self) -> String {
        if self.dynamodb.is_empty() {
            return "none".into();
        }
        self.dynamodb
            .iter()
            .map(|(op, n)| format!("{op} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Counter {
    /// The requests since the last call, and starts again from zero.
    pub fn take(&self) -> Counts {
        let mut counts = Counts::default();
        for (target, n) in self.dynamodb.counts() {
            let op = target.rsplit('.').next().unwrap_or(&target).to_owned();
            *counts.dynamodb.entry(op).or_default() += n;
        }
        for (request, n) in self.ses.counts_by_path() {
            // SES v2 SendEmail is `POST /v2/email/outbound-emails`.
            if request == "POST /v2/email/outbound-emails" {
                counts.ses_sends += n;
            } else {
                counts.ses_other += n;
            }
        }
        self.dynamodb.reset_counts();
        self.ses.reset_counts();
        counts
    }
}
