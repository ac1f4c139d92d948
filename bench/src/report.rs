//! BENCHMARKS.md: a header (machine, command), then one section per benchmark between
//! `<!-- bench:NAME -->` markers. A run rewrites the header and the sections it ran and keeps
//! the rest, so each section carries its own date and commit.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

const TITLE: &str = "# Benchmarks";
const HEADER_END: &str = "<!-- /bench:header -->";

/// The machine and the command, as the report's header.
pub fn header(root: &Path) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.trim() == "model name")
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| format!("{:.1} GiB", kib / (1024.0 * 1024.0)))
        .unwrap_or_else(|| "unknown".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    let command = std::env::var("BENCH_COMMAND")
        .ok()
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" "));
    let rustc = run(root, "rustc", &["--version"]).unwrap_or_else(|| "rustc ?".into());
    let mut out = String::new();
    let _ = writeln!(out, "{TITLE}\n");
    let _ = writeln!(
        out,
        "Written by `latchkey-bench` (`bench/`); run `make bench` to measure again. \
         Benchmarks print figures and never fail on a slow machine: compare ratios within one \
         run, not absolute times across machines.\n"
    );
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(
        out,
        "| machine | {model}, {cores} cores, {mem_gib} memory (Linux {}) |",
        std::env::consts::ARCH
    );
    let _ = writeln!(
        out,
        "| load | 1-minute load average {load} when the run started (the machine is shared) |"
    );
    let _ = writeln!(out, "| toolchain | {rustc} |");
    let _ = writeln!(out, "| command | `{command}` |");
    out.push_str(HEADER_END);
    out.push('\n');
    out
}

/// The commit the run measures, read when it starts: the binaries were just built from the
/// tree as it was then, and edits made while a long run goes on must not be credited to it.
pub struct Source {
    commit: String,
    dirty: bool,
}

impl Source {
    pub fn capture(root: &Path) -> Self {
        let commit = run(root, "git", &["rev-parse", "--short=12", "HEAD"])
            .unwrap_or_else(|| "unknown".into());
        let dirty = run(
            root,
            "git",
            &["status", "--porcelain", "--untracked-files=no"],
        )
        .is_some_and(|s| !s.is_empty());
        Self { commit, dirty }
    }
}

/// Where one benchmark's section goes in BENCHMARKS.md. Written when the benchmark ends, and
/// by a long one after each finished part, so that a run cut short keeps what it measured.
pub struct Sink<'a> {
    pub out: &'a Path,
    pub header: &'a str,
    pub source: &'a Source,
    pub root: &'a Path,
    pub bin_dir: &'a Path,
    pub name: &'a str,
    pub title: &'a str,
}

impl Sink<'_> {
    /// Writes `body` as the section, followed by what the figures mean: prose written from
    /// the code, in bench/notes/NAME.md, so it can be corrected without a release rebuild.
    /// Everything above it is measured.
    pub fn write(&self, body: &str) -> Result<()> {
        let notes = self
            .root
            .join("bench/notes")
            .join(format!("{}.md", self.name));
        let body = match std::fs::read_to_string(&notes) {
            Ok(text) => format!("{}\n\n{}", body.trim_end(), text.trim_end()),
            Err(_) => body.to_owned(),
        };
        let section = section(
            self.name,
            self.title,
            self.source,
            self.root,
            self.bin_dir,
            &body,
        );
        write(self.out, self.header, self.name, &section)
    }
}

/// One benchmark's section: title, when and at which commit, then its figures.
fn section(
    name: &str,
    title: &str,
    source: &Source,
    root: &Path,
    bin_dir: &Path,
    body: &str,
) -> String {
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let dirty = if source.dirty {
        " (with uncommitted changes)"
    } else {
        ""
    };
    format!(
        "<!-- bench:{name} -->\n## {title}\n\n_Measured {date} at commit `{}`{dirty}; \
         `latchkey-bench {name}`; binaries from `{}`._\n\n{}\n<!-- /bench:{name} -->\n",
        source.commit,
        bin_dir.strip_prefix(root).unwrap_or(bin_dir).display(),
        body.trim_end()
    )
}

/// Rewrites `path`: the header, and `name`'s section in place (or appended).
fn write(path: &Path, header: &str, name: &str, section: &str) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let rest = match old.find(HEADER_END) {
        Some(at) => old[at + HEADER_END.len()..].to_owned(),
        None => String::new(),
    };
    let open = format!("<!-- bench:{name} -->");
    let close = format!("<!-- /bench:{name} -->");
    let rest = match (rest.find(&open), rest.find(&close)) {
        (Some(start), Some(end)) if end > start => format!(
            "{}{}{}",
            &rest[..start],
            section.trim_end(),
            &rest[end + close.len()..]
        ),
        _ => format!("{}\n\n{}", rest.trim(), section.trim_end()),
    };
    let text = format!("{}\n\n{}\n", header.trim_end(), rest.trim());
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn run(root: &Path, program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(root)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
