//! `latchkey-local`: runs the whole stack on this machine.
//!
//! - `dev`: emulators, resources, every function behind the gateway on a fixed port, the
//!   bootstrap admin; stays up until Ctrl-C or SIGTERM.
//! - `test-env -- COMMAND...`: the same on test ports (so it never clashes with `dev`),
//!   exports where everything is to COMMAND, runs it, and exits with its exit code.
//! - `dump-tables FILE`: every item of every table on the emulator named by the environment,
//!   one JSON line each (scanned for secrets at the end of `make test`).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use latchkey_local::emulators::Emulators;
use latchkey_local::gateway::{Gateway, GatewayConfig};
use latchkey_local::paths::Paths;
use latchkey_local::setup::{Aws, bootstrap_admin, default_credentials_env, rotate_keys};
use latchkey_local::stack::{Prepared, Source, prepare};
use latchkey_local::template::Template;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

const USAGE: &str = "\
usage:
  latchkey-local dev [OPTIONS]
      Starts DynamoDB Local (DYNAMODB_PORT, 8000), moto (MOTO_PORT, 5000) and every function
      behind the gateway on 127.0.0.1:API_PORT (9000); prints `ready` and runs until Ctrl-C.
  latchkey-local test-env [OPTIONS] -- COMMAND [ARGS...]
      The same on test ports (TEST_DYNAMODB_PORT 8100, TEST_MOTO_PORT 5100, an ephemeral API
      port, table latchkey-e2e); runs COMMAND with LATCHKEY_* and AWS_* exported and exits
      with its exit code.
  latchkey-local dump-tables FILE
      Writes every item of every table on the DynamoDB named by AWS_ENDPOINT_URL_DYNAMODB
      (as test-env exports it) to FILE, one `<table> <item JSON>` line each.

options:
  --root DIR        workspace root (default: LATCHKEY_ROOT, else where this was built)
  --bin-dir DIR     folder of the function binaries (default: target/debug)
  --instances N     processes per function (default: 2)
  --log-file FILE   function output goes to FILE instead of stderr

Settings such as TABLE_NAME, SENDER_EMAIL, PUBLIC_BASE_URL, PUBLIC_DOMAIN, UPLOAD_BUCKET,
BOOTSTRAP_ADMIN_EMAIL and BOOTSTRAP_ADMIN_PASSWORD are taken from the environment when set;
every other variable (RUST_LOG, *_TTL_SECONDS, ...) reaches the functions unchanged.
Log level of this tool: LATCHKEY_LOCAL_LOG (default info).";

#[derive(Debug, Default)]
struct Options {
    root: Option<PathBuf>,
    bin_dir: Option<PathBuf>,
    instances: Option<usize>,
    log_file: Option<PathBuf>,
}

enum Command {
    Dev(Options),
    TestEnv(Options, Vec<OsString>),
    DumpTables(PathBuf),
    Help,
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOCAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();

    let command = match parse(std::env::args_os().skip(1).collect()) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("latchkey-local: {e:#}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("latchkey-local: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match command {
            Command::Help => {
                println!("{USAGE}");
                Ok(ExitCode::SUCCESS)
            }
            Command::Dev(options) => dev(options).await.map(|()| ExitCode::SUCCESS),
            Command::TestEnv(options, command) => test_env(options, command).await,
            Command::DumpTables(file) => dump_tables(file).await.map(|()| ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse(args: Vec<OsString>) -> Result<Command> {
    let mut args = args.into_iter();
    let sub = args.next().context("missing subcommand")?;
    let sub = sub.to_str().context("subcommand is not UTF-8")?.to_owned();
    if matches!(sub.as_str(), "help" | "-h" | "--help") {
        return Ok(Command::Help);
    }
    if sub == "dump-tables" {
        let file = args.next().context("dump-tables needs a FILE")?;
        if let Some(extra) = args.next() {
            bail!("dump-tables takes one FILE; unexpected {extra:?}");
        }
        return Ok(Command::DumpTables(file.into()));
    }
    let mut options = Options::default();
    let mut rest = Vec::new();
    while let Some(arg) = args.next() {
        let text = arg.to_str().map(str::to_owned);
        let mut value = |flag: &str| args.next().with_context(|| format!("{flag} needs a value"));
        match text.as_deref() {
            Some("--") => {
                rest.extend(args.by_ref());
                break;
            }
            Some("--root") => options.root = Some(value("--root")?.into()),
            Some("--bin-dir") => options.bin_dir = Some(value("--bin-dir")?.into()),
            Some("--log-file") => options.log_file = Some(value("--log-file")?.into()),
            Some("--instances") => {
                let n = value("--instances")?;
                let n = n
                    .to_str()
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|n| *n > 0)
                    .context("--instances needs a positive number")?;
                options.instances = Some(n);
            }
            Some("-h" | "--help") => return Ok(Command::Help),
            _ => bail!("unexpected argument {arg:?}"),
        }
    }
    match sub.as_str() {
        "dev" if rest.is_empty() => Ok(Command::Dev(options)),
        "dev" => bail!("dev takes no command"),
        "test-env" if rest.is_empty() => bail!("test-env needs a command after --"),
        "test-env" => Ok(Command::TestEnv(options, rest)),
        other => bail!("unknown subcommand {other:?}"),
    }
}

fn port(name: &str, default: u16) -> Result<u16> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value
            .trim()
            .parse()
            .with_context(|| format!("{name}={value:?} is not a port number")),
        _ => Ok(default),
    }
}

/// A running stack: emulators, gateway, and how it was set up.
struct Running {
    paths: Paths,
    template: Template,
    emulators: Emulators,
    gateway: Gateway,
    prepared: Prepared,
    table: String,
    bin_dir: PathBuf,
}

async fn start_stack(
    options: &Options,
    dynamodb_port: u16,
    moto_port: u16,
    api: SocketAddr,
    table: String,
) -> Result<Running> {
    let paths = Paths::discover(options.root.clone())?;
    let template = Template::load(&paths.template())?;
    if api.port() != 0 {
        // Fail before the slow part if the API port is taken.
        std::net::TcpListener::bind(api).with_context(|| {
            format!("cannot serve the API on {api} (is another local stack running? set API_PORT)")
        })?;
    }
    let bin_dir = options
        .bin_dir
        .clone()
        .unwrap_or_else(|| paths.default_bin_dir());
    let emulators = Emulators::start(&paths, dynamodb_port, moto_port).await?;
    let endpoints = emulators.endpoints();
    let aws = Aws::local(&endpoints).await;
    let prepared = prepare(&aws, &endpoints, &template, &table, &[]).await?;
    let mut config = GatewayConfig::new(paths.template(), &bin_dir);
    config.addr = api;
    config.instances = options.instances.unwrap_or(2);
    config.env = prepared.env.clone();
    config.url_env = prepared.url_env.clone();
    config.moto_url = Some(endpoints.moto.clone());
    config.upload_bucket = Some(prepared.upload_bucket.clone());
    config.log_file = options.log_file.clone();
    let gateway = Gateway::start(config).await?;
    if template.function("bootstrap").is_some() {
        bootstrap_admin(&gateway).await?;
    } else {
        warn!("the template has no `bootstrap` function: no admin was created");
    }
    // As JwtSecretRotation's RotateImmediatelyOnUpdate does on deploy: the plain secret
    // becomes a keyring, its legacy generation kept.
    if template.function("rotate-keys").is_some() {
        rotate_keys(&gateway, &prepared.jwt_secret_arn).await?;
    }
    Ok(Running {
        paths,
        template,
        emulators,
        gateway,
        prepared,
        table,
        bin_dir,
    })
}

impl Running {
    async fn stop(self) {
        self.gateway.shutdown().await;
        self.emulators.stop().await;
    }
}

async fn dev(options: Options) -> Result<()> {
    let dynamodb_port = port("DYNAMODB_PORT", 8000)?;
    let moto_port = port("MOTO_PORT", 5000)?;
    let api_port = port("API_PORT", 9000)?;
    let table = std::env::var("TABLE_NAME")
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "latchkey".into());
    let mut signals = Signals::new()?;
    let running = tokio::select! {
        running = start_stack(&options, dynamodb_port, moto_port, SocketAddr::from(([127, 0, 0, 1], api_port)), table) => running?,
        () = signals.recv() => {
            info!("interrupted during start");
            return Ok(());
        }
    };
    print_banner(&running);
    println!("ready");
    signals.recv().await;
    info!("stopping");
    running.stop().await;
    Ok(())
}

fn print_banner(running: &Running) {
    let url = running.gateway.url();
    let prepared = &running.prepared;
    let (email, email_source) = &prepared.admin_email;
    let (password, password_source) = &prepared.admin_password;
    let origin = |source: &Source, variable: &str| match source {
        Source::Default => format!("default; set {variable} to change"),
        _ => format!("from {variable} in the environment"),
    };
    let sign_in = serde_json::json!({ "tenant": "admin", "email": email, "password": password })
        .to_string()
        .replace('\'', r"'\''");
    let pages: Vec<String> = running
        .template
        .function("pages")
        .map(|f| {
            f.routes
                .iter()
                .filter(|r| r.method == "GET" && !r.path.contains('{'))
                .map(|r| format!("{url}{}", r.path))
                .collect()
        })
        .unwrap_or_default();
    let moto = running.emulators.moto.url();
    println!(
        "Latchkey is running locally (workspace {}).",
        running.paths.root.display()
    );
    println!();
    println!("  API        {url}");
    println!(
        "  Sign in    curl -s -X POST {url}/v1/sessions -H 'content-type: application/json' -d '{sign_in}'"
    );
    if !pages.is_empty() {
        println!("  Pages      {}", pages.join("  "));
    }
    println!(
        "  Mailbox    {url}/_local/mail  (JSON: {url}/_local/mail.json; moto's raw data: {moto}/moto-api/data.json)"
    );
    println!(
        "  Admin      {email} ({})",
        origin(email_source, "BOOTSTRAP_ADMIN_EMAIL")
    );
    println!(
        "  Password   {password} ({})",
        origin(password_source, "BOOTSTRAP_ADMIN_PASSWORD")
    );
    println!(
        "  DynamoDB   {} (table {})",
        running.emulators.dynamodb.url(),
        running.table
    );
    println!(
        "  Functions  {} from {}",
        running.gateway.function_names().join(", "),
        running.bin_dir.display()
    );
    println!(
        "  Invoke     cargo lambda invoke bootstrap --invoke-port {} --data-ascii '{{}}'",
        running.gateway.addr().port()
    );
    // scripts/install.sh puts cargo-lambda in the project's venv, not on the user's PATH.
    println!(
        "             (cargo-lambda is in .local/venv/bin: export PATH=\"$PWD/.local/venv/bin:$PATH\")"
    );
    println!();
    println!("Ctrl-C stops everything.");
}

async fn test_env(options: Options, command: Vec<OsString>) -> Result<ExitCode> {
    let dynamodb_port = port("TEST_DYNAMODB_PORT", 8100)?;
    let moto_port = port("TEST_MOTO_PORT", 5100)?;
    let mut signals = Signals::new()?;
    let running = tokio::select! {
        running = start_stack(&options, dynamodb_port, moto_port, SocketAddr::from(([127, 0, 0, 1], 0)), "latchkey-e2e".into()) => running?,
        () = signals.recv() => return Ok(ExitCode::from(130)),
    };
    let endpoints = running.emulators.endpoints();
    let prepared = &running.prepared;
    let mut exported = endpoints.env();
    exported.extend(default_credentials_env());
    let paths = &running.paths;
    for (name, value) in [
        ("LATCHKEY_API_URL", running.gateway.url()),
        ("LATCHKEY_MOTO_URL", endpoints.moto.clone()),
        ("LATCHKEY_TEMPLATE", paths.template().display().to_string()),
        (
            "LATCHKEY_BIN_DIR",
            absolute(&running.bin_dir).display().to_string(),
        ),
        ("LATCHKEY_ROOT", paths.root.display().to_string()),
        ("JWT_SECRET_ARN", prepared.jwt_secret_arn.clone()),
        ("SENDER_EMAIL", prepared.sender_email.clone()),
        ("UPLOAD_BUCKET", prepared.upload_bucket.clone()),
        ("BOOTSTRAP_ADMIN_EMAIL", prepared.admin_email.0.clone()),
        (
            "BOOTSTRAP_ADMIN_PASSWORD",
            prepared.admin_password.0.clone(),
        ),
        ("TABLE_NAME", running.table.clone()),
    ] {
        exported.push((name.to_owned(), value));
    }
    let (program, args) = command.split_first().context("test-env needs a command")?;
    info!("running {:?} against {}", command, running.gateway.url());
    let mut child = tokio::process::Command::new(program);
    // Each test stack sets its own PUBLIC_BASE_URL (its gateway's URL): none may leak in.
    child
        .args(args)
        .envs(exported)
        .env_remove("PUBLIC_BASE_URL")
        .kill_on_drop(true);
    let mut child = child
        .spawn()
        .with_context(|| format!("running {program:?}"))?;
    let status = tokio::select! {
        status = child.wait() => status.with_context(|| format!("waiting for {program:?}"))?,
        () = signals.recv() => {
            warn!("interrupted: stopping {program:?}");
            if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
                // SAFETY: kill(2) on a child we spawned and have not reaped yet.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            match tokio::time::timeout(std::time::Duration::from_secs(10), child.wait()).await {
                Ok(status) => status.with_context(|| format!("waiting for {program:?}"))?,
                Err(_) => {
                    let _ = child.kill().await;
                    child.wait().await.with_context(|| format!("waiting for {program:?}"))?
                }
            }
        }
    };
    running.stop().await;
    Ok(exit_code(status))
}

fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        (None, Some(signal)) => ExitCode::from(u8::try_from(128 + signal).unwrap_or(1)),
        _ => ExitCode::FAILURE,
    }
}

fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// SIGINT or SIGTERM, whichever comes first.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

async fn dump_tables(file: PathBuf) -> Result<()> {
    let aws = Aws::from_env().await;
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&file).with_context(|| format!("creating {}", file.display()))?,
    );
    let count = aws.dump_tables(&mut out).await?;
    std::io::Write::flush(&mut out).with_context(|| format!("writing {}", file.display()))?;
    info!("{count} items of every table written to {}", file.display());
    Ok(())
}
