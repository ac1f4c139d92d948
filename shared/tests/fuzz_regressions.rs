//! Replays the inputs kept for each fuzz target through the target's own checks, in an
//! ordinary `cargo test` (no nightly, no libFuzzer): `fuzz/regressions/<target>/` holds every
//! input that once broke a parser (or was written to try to), `fuzz/seeds/<target>/` the
//! well-formed inputs fuzzing starts from.

use std::path::{Path, PathBuf};

#[allow(dead_code)] // the route list is for shared/tests/properties.rs
#[path = "../../fuzz/src/lib.rs"]
mod harness;

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(kind)
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `check` on every kept input of `target` and names each one that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let regressions = inputs("regressions", target);
    assert!(
        !regressions.is_empty(),
        "fuzz/regressions/{target} is empty: the replay would prove nothing"
    );
    let mut failed = Vec::new();
    for path in regressions.iter().chain(&inputs("seeds", target)) {
        let bytes = std::fs::read(path).unwrap();
        if std::panic::catch_unwind(|| check(&bytes)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(failed.is_empty(), "inputs that fail again: {failed:#?}");
}

#[test]
fn every_kept_csv_input_reads_without_breaking_a_promise() {
    replay("csv_rows", harness::csv_rows);
}

#[test]
fn every_kept_request_body_decodes_or_is_refused_with_a_4xx_problem() {
    replay("json_body", harness::json_body);
}
