#!/usr/bin/env python3
"""Which crates a binary's start-up relocations belong to (see bench/notes/cold-start.md).

    bench/scripts/relocations-by-crate.py BINARY...

Every R_*_RELATIVE relocation is a pointer the dynamic loader writes before `main`. Each is
counted for the crate of the symbol it points into (a vtable's entry points at a method), or
else of the symbol it lies in (a named table); pointers between unnamed constants count as
such. The binaries need their symbols, with v0 mangling so that generic code names its type
arguments, which the release profile strips:

    CARGO_PROFILE_RELEASE_STRIP=false RUSTFLAGS="-C symbol-mangling-version=v0" \\
      cargo build --release --target-dir target/syms -p sessions -p invite

Needs readelf and nm (binutils). Prints a Markdown table, one column per binary.
"""
import bisect
import collections
import re
import subprocess
import sys

# (a crate named in the symbol, its group): the first that a symbol names wins, so that
# core::ptr::drop_in_place::<aws_sdk_dynamodb::X> counts for aws-sdk-dynamodb.
GROUPS = [
    ("aws_sdk_", None),  # each SDK client on its own line, named by its crate
    ("aws_smithy_", "aws-smithy-* (the clients' shared runtime)"),
    ("aws_runtime", "aws-runtime, aws-types, aws-sigv4"),
    ("aws_types", "aws-runtime, aws-types, aws-sigv4"),
    ("aws_sigv4", "aws-runtime, aws-types, aws-sigv4"),
    ("aws_credential_types", "aws-runtime, aws-types, aws-sigv4"),
    # aws-lc's OID and curve tables are C statics, named without a crate
    ("kObject", "TLS (rustls, aws-lc)"),
    ("nid_to_digest", "TLS (rustls, aws-lc)"),
    ("p256", "TLS (rustls, aws-lc)"),
    ("p384", "TLS (rustls, aws-lc)"),
    ("aws_lc", "TLS (rustls, aws-lc)"),
    ("rustls", "TLS (rustls, aws-lc)"),
    ("webpki", "TLS (rustls, aws-lc)"),
    ("h2::", "h2 (HTTP/2)"),
    ("hyper", "hyper, http, tower"),
    ("http::", "hyper, http, tower"),
    ("http_body", "hyper, http, tower"),
    ("tower", "hyper, http, tower"),
    ("lambda_", "Lambda runtime (lambda_runtime, lambda_http, encoding_rs)"),
    ("aws_lambda_events", "Lambda runtime (lambda_runtime, lambda_http, encoding_rs)"),
    ("encoding_rs", "Lambda runtime (lambda_runtime, lambda_http, encoding_rs)"),
    ("tokio", "tokio"),
    ("tracing", "tracing"),
    ("serde", "serde, serde_json"),
    ("latchkey", "latchkey"),
    ("core::", "std, core, alloc"),
    ("alloc::", "std, core, alloc"),
    ("std::", "std, core, alloc"),
]
UNNAMED = "(unnamed constants)"
OTHER = "other crates"


def run(*args):
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def symbols(path):
    found = []
    for line in run("nm", "-S", "-C", "--defined-only", path).splitlines():
        m = re.match(r"^([0-9a-f]+) ([0-9a-f]+) \w (.*)$", line)
        if m:
            found.append((int(m[1], 16), int(m[2], 16), m[3]))
    found.sort()
    return found


def relative_relocations(path):
    for line in run("readelf", "-r", "-W", path).splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2].endswith("_RELATIVE"):
            yield int(fields[0], 16), int(fields[3], 16)


def group(name):
    for crate, label in GROUPS:
        m = re.search(r"(^|[^A-Za-z0-9_])" + re.escape(crate) + r"([a-z0-9_]*)", name)
        if m:
            return label or ("aws-sdk-" + m[2]).replace("_", "-")
    return OTHER


def by_crate(path):
    syms = symbols(path)
    starts = [s[0] for s in syms]

    def containing(addr):
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0 and syms[i][0] <= addr < syms[i][0] + max(syms[i][1], 1):
            return syms[i][2]
        return None

    counts = collections.Counter()
    for at, target in relative_relocations(path):
        name = containing(target) or containing(at)
        counts[group(name) if name else UNNAMED] += 1
    return counts


def main(paths):
    if not paths:
        sys.exit(__doc__)
    columns = {p.rstrip("/").rsplit("/", 1)[-1]: by_crate(p) for p in paths}
    rows = sorted(
        {g for c in columns.values() for g in c},
        key=lambda g: (g in (OTHER, UNNAMED), -max(c[g] for c in columns.values())),
    )
    print("| relocations pointing into | " + " | ".join(f"`{b}`" for b in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for g in rows:
        print(f"| {g} | " + " | ".join(f"{c[g]:,}" for c in columns.values()) + " |")
    print("| total | " + " | ".join(f"{sum(c.values()):,}" for c in columns.values()) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
