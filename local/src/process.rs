//! Child processes that cannot outlive the local stack (function instances, emulators), and
//! the forwarding of their output. A stray DynamoDB Local or function left behind would hold
//! a port and make the next `dev` or test run fail in confusing ways.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anyhow::{Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::task::JoinHandle;

/// A command whose process is killed when its `Child` is dropped and, on Linux, when this
/// process dies (even by SIGKILL). Output is piped; stdin is closed.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that spawned the child ends, so spawn from a
/// runtime worker thread (any async task), never from `spawn_blocking`.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    die_with_parent(&mut cmd);
    cmd
}

#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe calls
    // (prctl, getppid) and builds an io::Error without allocating.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}

/// Where child output goes: this process's stderr, or a shared log file.
#[derive(Clone, Debug)]
pub enum LogSink {
    Stderr,
    File(Arc<Mutex<File>>),
    /// Kept only in memory (for error messages) and traced at debug level.
    Quiet,
    /// Written to the inner sink and kept in `lines` too: a test stack's functions' output,
    /// for the tests that read what the functions logged.
    Kept(Box<LogSink>, Arc<Mutex<Vec<String>>>),
}

impl LogSink {
    /// Appends to `path`, creating it (and its folder) if needed.
    pub fn file(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = File::options()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening log file {}", path.display()))?;
        Ok(Self::File(Arc::new(Mutex::new(file))))
    }

    pub fn write(&self, label: &str, line: &str) {
        match self {
            Self::Stderr => {
                let _ = writeln!(std::io::stderr().lock(), "[{label}] {line}");
            }
            Self::File(file) => {
                let _ = writeln!(lock(file), "[{label}] {line}");
            }
            Self::Quiet => tracing::debug!(target: "latchkey_local::child", "[{label}] {line}"),
            Self::Kept(inner, lines) => {
                inner.write(label, line);
                lock(lines).push(format!("[{label}] {line}"));
            }
        }
    }
}

/// The last lines a process wrote, for error messages when it fails.
#[derive(Debug, Default)]
pub struct Tail {
    lines: Mutex<VecDeque<String>>,
}

impl Tail {
    const KEEP: usize = 40;

    pub fn push(&self, line: &str) {
        let mut lines = lock(&self.lines);
        if lines.len() == Self::KEEP {
            lines.pop_front();
        }
        lines.push_back(line.to_owned());
    }

    pub fn clear(&self) {
        lock(&self.lines).clear();
    }

    /// The kept lines, oldest first, joined by newlines.
    pub fn text(&self) -> String {
        lock(&self.lines)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Copies `reader` line by line to `sink` (prefixed with `label`) and into `tail`, until EOF.
pub fn forward(
    reader: impl AsyncRead + Unpin + Send + 'static,
    label: String,
    sink: LogSink,
    tail: Arc<Tail>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']);
                    tail.push(line);
                    sink.write(&label, line);
                }
            }
        }
    })
}

/// Locks a mutex, carrying on after a panic elsewhere (the data stays usable here).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
