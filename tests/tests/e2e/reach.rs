//! Each function's binary links exactly the AWS SDK clients its IAM role lets it use
//! (`infra/template.yaml`), and of DynamoDB exactly the operations its role allows. A client the role may not call is code that only lengthens the
//! cold start, or a call that would fail in AWS and never locally; a service the role may
//! call with no client in the binary is a permission to take away.
//!
//! Read from the debug binaries' symbol tables (`nm`), which `make test` has just built.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
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

/// The symbol table of `binary`, as `nm` prints it.
fn symbols(binary: &Path) -> String {
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
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The SDK crates whose code is in `binary`: a crate name appears in the mangled names of
/// its own functions and of every generic instantiated over its types.
fn linked_clients(binary: &Path) -> BTreeSet<&'static str> {
    let symbols = symbols(binary);
    CLIENTS
        .iter()
        .map(|(krate, _)| *krate)
        .filter(|krate| symbols.contains(krate))
        .collect()
}

/// The DynamoDB operations whose code is in `binary`, as IAM names them (`BatchGetItem`):
/// each lives in its own module, `aws_sdk_dynamodb::operation::batch_get_item`, which the
/// linker drops when nothing calls it.
fn dynamodb_operations(binary: &Path) -> BTreeSet<String> {
    const MODULE: &str = "16aws_sdk_dynamodb9operation";
    let symbols = symbols(binary);
    symbols
        .match_indices(MODULE)
        .filter_map(|(at, _)| {
            // Mangled: the length of the next path segment, then the segment.
            let rest = &symbols[at + MODULE.len()..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let len: usize = rest[..digits].parse().ok()?;
            rest.get(digits..digits + len)
        })
        .map(|snake| {
            snake
                .split('_')
                .map(|word| word[..1].to_uppercase() + &word[1..])
                .collect()
        })
        .collect()
}

/// Every function of the template: its name, its binary (which must be built) and the
/// actions its role allows.
fn functions() -> Vec<(String, PathBuf, Vec<String>)> {
    let paths = Paths::discover(None).unwrap();
    let template = Template::load(&paths.template()).unwrap();
    let bin_dir = paths.default_bin_dir();
    template
        .functions
        .into_iter()
        .map(|function| {
            let binary = bin_dir.join(&function.binary);
            assert!(
                binary.is_file(),
                "{} is not built (cargo build --workspace --bins)",
                binary.display()
            );
            (function.binary, binary, function.actions)
        })
        .collect()
}

#[test]
fn every_function_links_the_aws_clients_its_role_allows_and_no_others() {
    let mut mismatches = Vec::new();
    for (name, binary, actions) in functions() {
        let linked = linked_clients(&binary);
        for (krate, service) in CLIENTS {
            let allowed = actions.iter().any(|a| a.starts_with(service));
            match (linked.contains(krate), allowed) {
                (true, false) => mismatches.push(format!(
                    "{} links {krate}, but its role allows no {service}* action",
                    name
                )),
                (false, true) => mismatches.push(format!(
                    "{}'s role allows {service}* actions, but it links no {krate}",
                    name
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

/// IAM has no action for `TransactWriteItems`: it authorises each write inside by its own
/// action, which the symbol table cannot see.
const TRANSACT_WRITE: &str = "TransactWriteItems";
const WRITES: [&str; 4] = ["PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem"];

#[test]
fn every_function_links_the_dynamodb_operations_its_role_allows_and_no_others() {
    let mut mismatches = Vec::new();
    for (name, binary, actions) in functions() {
        let linked = dynamodb_operations(&binary);
        let allowed: BTreeSet<String> = actions
            .iter()
            .filter_map(|a| a.strip_prefix("dynamodb:"))
            .map(str::to_owned)
            .collect();
        let transacts = linked.contains(TRANSACT_WRITE);
        for op in linked.difference(&allowed) {
            if op == TRANSACT_WRITE {
                if !WRITES.iter().any(|w| allowed.contains(*w)) {
                    mismatches.push(format!(
                        "{} writes in transactions, but its role allows no write action",
                        name
                    ));
                }
            } else {
                mismatches.push(format!(
                    "{} calls DynamoDB {op}, but its role does not allow dynamodb:{op}",
                    name
                ));
            }
        }
        for op in allowed.difference(&linked) {
            if !(transacts && WRITES.contains(&op.as_str())) {
                mismatches.push(format!(
                    "{}'s role allows dynamodb:{op}, which it never calls",
                    name
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn the_operation_check_sees_the_operations_a_function_calls() {
    // `resend` reads its users in batches, its caller and tenant one by one, replaces links
    // in transactions and spends the mail budget with an update.
    let paths = Paths::discover(None).unwrap();
    let linked = dynamodb_operations(&paths.default_bin_dir().join("resend"));
    let expected = [
        "BatchGetItem",
        "GetItem",
        "TransactWriteItems",
        "UpdateItem",
    ];
    assert_eq!(
        linked,
        expected.iter().map(|s| s.to_string()).collect(),
        "{linked:?}"
    );
}
