//! DynamoDB Local and moto as child processes that die with this one. Each counts as up only
//! once it answers a real request (ListTables, `/moto-api/data.json`), not merely when its
//! port opens: the JVM accepts connections well before DynamoDB Local can serve them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::Child;
use tracing::{debug, info};

use crate::paths::Paths;
use crate::process::{self, LogSink, Tail};
use crate::setup::{Aws, Endpoints};

/// How long an emulator may take to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running emulator; killed on drop.
pub struct Emulator {
    name: &'static str,
    url: String,
    child: Child,
    tail: Arc<Tail>,
    _workdir: Option<TempDir>,
}

impl Emulator {
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Kills the process and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        debug!("{} stopped", self.name);
    }

    /// Fails with the emulator's last output if it has exited.
    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self
            .child
            .try_wait()
            .with_context(|| format!("checking on {}", self.name))?
        {
            bail!(
                "{} exited during start ({status}); its last output:\n{}",
                self.name,
                self.tail.text()
            );
        }
        Ok(())
    }
}

/// Both emulators.
pub struct Emulators {
    pub dynamodb: Emulator,
    pub moto: Emulator,
}

impl Emulators {
    /// Starts both (in parallel) and waits until each answers.
    pub async fn start(paths: &Paths, dynamodb_port: u16, moto_port: u16) -> Result<Self> {
        let (dynamodb, moto) = tokio::try_join!(
            start_dynamodb(paths, dynamodb_port),
            start_moto(paths, moto_port)
        )?;
        Ok(Self { dynamodb, moto })
    }

    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            dynamodb: self.dynamodb.url.clone(),
            moto: self.moto.url.clone(),
        }
    }

    pub async fn stop(self) {
        tokio::join!(self.dynamodb.stop(), self.moto.stop());
    }
}

/// `java -Djava.library.path=<dir>/DynamoDBLocal_lib -jar <dir>/DynamoDBLocal.jar -inMemory
/// -sharedDb -port <port>` in a scratch working directory (it writes a metadata file there).
/// `-sharedDb` makes every credential and region see the same tables.
pub async fn start_dynamodb(paths: &Paths, port: u16) -> Result<Emulator> {
    let dir = paths.dynamodb_local_dir()?;
    ensure_port_free(
        port,
        "DynamoDB Local",
        "DYNAMODB_PORT (make dev) or TEST_DYNAMODB_PORT (make test)",
    )?;
    let workdir = TempDir::new("dynamodb")?;
    let mut cmd = process::command("java");
    cmd.arg(format!(
        "-Djava.library.path={}",
        dir.join("DynamoDBLocal_lib").display()
    ))
    .arg("-jar")
    .arg(dir.join("DynamoDBLocal.jar"))
    .args(["-inMemory", "-sharedDb", "-port", &port.to_string()])
    .current_dir(&workdir.0);
    let mut emulator = launch(
        "dynamodb",
        cmd,
        format!("http://127.0.0.1:{port}"),
        Some(workdir),
    )
    .context("starting DynamoDB Local (is Java installed?)")?;
    let endpoints = Endpoints {
        dynamodb: emulator.url.clone(),
        moto: emulator.url.clone(),
    };
    let client = Aws::local(&endpoints).await.dynamodb;
    wait_until(&mut emulator, port, || {
        let client = client.clone();
        async move {
            client
                .list_tables()
                .limit(1)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(e)))
        }
    })
    .await?;
    Ok(emulator)
}

/// `<venv>/bin/python3 local/moto_server.py -H 127.0.0.1 -p <port>`: moto's server with a
/// fix for its state dump (see that file).
pub async fn start_moto(paths: &Paths, port: u16) -> Result<Emulator> {
    let program = paths.moto_server();
    if !program.is_file() {
        bail!(
            "moto is not installed ({} is missing): run scripts/install.sh",
            program.display()
        );
    }
    ensure_port_free(
        port,
        "moto",
        "MOTO_PORT (make dev) or TEST_MOTO_PORT (make test)",
    )?;
    let mut cmd = process::command(paths.venv().join("bin").join("python3"));
    cmd.arg(paths.moto_launcher())
        .args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    let mut emulator = launch("moto", cmd, format!("http://127.0.0.1:{port}"), None)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .context("building an HTTP client")?;
    let url = format!("{}/moto-api/data.json", emulator.url);
    wait_until(&mut emulator, port, || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            http.get(&url).send().await?.error_for_status()?;
            Ok(())
        }
    })
    .await?;
    Ok(emulator)
}

/// Reads moto's state document (`/moto-api/data.json`): the mail SES accepted and the archived
/// events. moto builds it from every backend at once and, while other clients write to them,
/// now and then answers 500 or drops the connection; such a read is tried again, up to
/// `DATA_ATTEMPTS` times, before it counts as an error.
pub async fn moto_data(http: &reqwest::Client, moto_url: &str) -> Result<serde_json::Value> {
    let url = format!("{}/moto-api/data.json", moto_url.trim_end_matches('/'));
    let mut attempt = 1;
    loop {
        match read_json(http, &url).await {
            Ok(data) => return Ok(data),
            Err(err) if attempt >= DATA_ATTEMPTS => {
                return Err(err.context(format!("{attempt} attempts")));
            }
            Err(err) => {
                debug!(error = %format!("{err:#}"), attempt, "moto's data.json: trying again")
            }
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
    }
}

/// Tries of [`moto_data`]: about 2 s of waiting in all.
const DATA_ATTEMPTS: u32 = 6;

async fn read_json(http: &reqwest::Client, url: &str) -> Result<serde_json::Value> {
    http.get(url)
        .send()
        .await
        .with_context(|| format!("fetching {url}"))?
        .error_for_status()
        .with_context(|| format!("fetching {url}"))?
        .json()
        .await
        .with_context(|| format!("decoding {url}"))
}

fn launch(
    name: &'static str,
    mut cmd: tokio::process::Command,
    url: String,
    workdir: Option<TempDir>,
) -> Result<Emulator> {
    let mut child = cmd.spawn().with_context(|| format!("spawning {name}"))?;
    let tail = Arc::new(Tail::default());
    if let Some(out) = child.stdout.take() {
        process::forward(out, name.to_owned(), LogSink::Quiet, Arc::clone(&tail));
    }
    if let Some(err) = child.stderr.take() {
        process::forward(err, name.to_owned(), LogSink::Quiet, Arc::clone(&tail));
    }
    Ok(Emulator {
        name,
        url,
        child,
        tail,
        _workdir: workdir,
    })
}

/// Polls until `probe` succeeds, the emulator dies, or [`READY_TIMEOUT`] passes.
async fn wait_until<F, Fut>(emulator: &mut Emulator, port: u16, probe: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let started = tokio::time::Instant::now();
    let mut last_error = String::from("its port never opened");
    loop {
        emulator.check_alive()?;
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            match tokio::time::timeout(Duration::from_secs(10), probe()).await {
                Ok(Ok(())) => {
                    info!(
                        "{} is up at {} ({:.1} s)",
                        emulator.name,
                        emulator.url,
                        started.elapsed().as_secs_f64()
                    );
                    return Ok(());
                }
                Ok(Err(e)) => last_error = format!("{e:#}"),
                Err(_) => last_error = "a request timed out".into(),
            }
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!(
                "{} did not answer within {} s (last error: {last_error}); its last output:\n{}",
                emulator.name,
                READY_TIMEOUT.as_secs(),
                emulator.tail.text()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn ensure_port_free(port: u16, what: &str, variable: &str) -> Result<()> {
    match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => Ok(()),
        Err(e) => bail!(
            "cannot start {what} on port {port}: {e} (is another local stack running? choose another port with {variable})"
        ),
    }
}

/// A scratch folder removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "latchkey-{what}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port nothing listens on right now (for tests and ephemeral stacks).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    Ok(listener.local_addr().context("reading a free port")?.port())
}

/// Whether DynamoDB Local and moto are installed under `paths` (and Java is on the PATH).
pub fn installed(paths: &Paths) -> bool {
    paths.dynamodb_local_dir().is_ok() && paths.moto_server().is_file() && on_path("java")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}
