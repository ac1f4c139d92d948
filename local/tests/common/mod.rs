//! Shared by the integration tests: fixture paths and a bin dir in which every function
//! name is the echo binary.

#![allow(dead_code)] // each test crate uses a different part

use std::path::{Path, PathBuf};

use latchkey_local::{Gateway, GatewayConfig};

pub const ECHO: &str = env!("CARGO_BIN_EXE_latchkey-local-echo");

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// A temporary folder holding `name -> latchkey-local-echo` links; removed on drop.
pub struct BinDir(pub PathBuf);

impl BinDir {
    pub fn new(names: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "latchkey-local-test-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).expect("create bin dir");
        for name in names {
            std::os::unix::fs::symlink(ECHO, dir.join(name)).expect("link echo");
        }
        Self(dir)
    }

    /// Every function of the main fixture template.
    pub fn all() -> Self {
        Self::new(&["raw", "http", "slow", "bootstrap", "broken"])
    }
}

impl Drop for BinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn config(template: &str, bins: &BinDir) -> GatewayConfig {
    let mut config = GatewayConfig::new(fixture(template), &bins.0);
    config.env = vec![("ECHO_EXTRA".into(), "extra".into())];
    config.url_env = Some("PUBLIC_BASE_URL".into());
    config
}

pub async fn start(template: &str, bins: &BinDir, instances: usize) -> Gateway {
    let mut config = config(template, bins);
    config.instances = instances;
    Gateway::start(config).await.expect("gateway starts")
}

/// A gateway over the main fixture template, every function the echo binary, with the
/// stack's logs shown on failure. Derefs to the gateway; the links go when it does.
pub struct EchoStack {
    gateway: Gateway,
    _bins: BinDir,
}

impl std::ops::Deref for EchoStack {
    type Target = Gateway;

    fn deref(&self) -> &Gateway {
        &self.gateway
    }
}

pub async fn echo_stack(instances: usize) -> EchoStack {
    logs();
    let bins = BinDir::all();
    let gateway = start("template.yaml", &bins, instances).await;
    EchoStack {
        gateway,
        _bins: bins,
    }
}

/// Logs of the stack while a test runs (shown by the test runner on failure).
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("latchkey_local=debug")
        .with_test_writer()
        .try_init();
}
