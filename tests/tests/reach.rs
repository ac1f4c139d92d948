//! Each function's binary links exactly the AWS SDK clients its IAM role lets it use
//! (`infra/template.yaml`). A client the role may not call is code that only lengthens the
//! cold start, or a call that would fail in AWS and never locally; a service the role may
//! call with no client in the binary is a permission to take away.
//!
//! Read from the debug binaries' symbol tables (`nm`), which `make test` has just built.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use latchkey_local::paths::Paths;
use latchkey_local::template::Template;

/// An SDK crate, and the IAM service prefix whose actions it calls.
const CLIENTS: [(&str, &str); 6] = [
    ("aws_sdk_dynamodb", "dynamodb:"),
    ("aws_sdk_sesv2", "ses:"),
    ("aws_sdk_eventbridge", "events:"),
    ("aws_sdk_secretsmanager", "secretsmanager:"),
    ("aws_sdk_s3", "s3:"),
    ("aws_sdk_lambda", "lambda:"),
];

/// The SDK crates whose code is in `binary`: a crate name appears in the mangled names of
/// its own functions and of every generic instantiated over its types.
fn linked_clients(binary: &Path) -> BTreeSet<&'static str> {
    let out = Command::new("nm")
        .arg("--defined-only")
        .arg(binary)
        .output()
        .unwrap_or_else(|e| panic!("running nm (binutils) on {}: {e}", binary.display()));
    assert!(
        out.status.success(),
        "nm {}: {}",
        binary.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let symbols = String::from_utf8_lossy(&out.stdout);
    CLIENTS
        .iter()
        .map(|(krate, _)| *krate)
        .filter(|krate| symbols.contains(krate))
        .collect()
}

#[test]
fn every_function_links_the_aws_clients_its_role_allows_and_no_others() {
    let paths = Paths::discover(None).unwrap();
    let template = Template::load(&paths.template()).unwrap();
    let bin_dir = paths.default_bin_dir();
    let mut mismatches = Vec::new();
    for function in &template.functions {
        let binary = bin_dir.join(&function.binary);
        assert!(
            binary.is_file(),
            "{} is not built (cargo build --workspace --bins)",
            binary.display()
        );
        let linked = linked_clients(&binary);
        for (krate, service) in CLIENTS {
            let allowed = function.actions.iter().any(|a| a.starts_with(service));
            match (linked.contains(krate), allowed) {
                (true, false) => mismatches.push(format!(
                    "{} links {krate}, but its role allows no {service}* action",
                    function.binary
                )),
                (false, true) => mismatches.push(format!(
                    "{}'s role allows {service}* actions, but it links no {krate}",
                    function.binary
                )),
                _ => {}
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn the_reach_check_sees_a_client_where_one_is_linked() {
    // The check above passes trivially if nm sees no SDK symbols at all; `invite` sends
    // mail, publishes events and reads the table, so all three must show.
    let paths = Paths::discover(None).unwrap();
    let linked = linked_clients(&paths.default_bin_dir().join("invite"));
    for krate in ["aws_sdk_dynamodb", "aws_sdk_sesv2", "aws_sdk_eventbridge"] {
        assert!(
            linked.contains(krate),
            "invite should link {krate}: {linked:?}"
        );
    }
}
